"""Exposure statistics: clicks and impressions per article in several decayed windows, and
when each article was first shown and first clicked.

The learned ranking stage reads them (:mod:`recommender.serving.features`). Training counts
them from the event log into the bundle as of ``as_of``; the service keeps counting every event
it follows, with the same arithmetic, so the features a list is ranked with are the ones the
replay computed for training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recommender.domain import EVENT_CODES
from recommender.models.popularity import DecayedCounters

HOUR = 3600.0
HALF_LIVES_HOURS = (1.0, 6.0, 24.0, 10_000.0)  # the last one: about everything since the log started
NEVER = 1.0e15  # first_impression / first_click of an article never shown / clicked (finite: bundles refuse inf)


@dataclass
class ExposureStats:
    """Decayed clicks and impressions per window, first impression and first click per article.

    Attributes (w = windows, n = articles)
    ----------
    clicks, impressions : ndarray of float64, shape (w, n)
        As of ``as_of``; window ``j`` decays with half-life ``half_lives_hours[j]``.
    first_impression, first_click : ndarray of float64, shape (n,)
        Epoch seconds, ``NEVER`` (1e15) if never.
    as_of : float
    half_lives_hours : tuple of float
    """

    clicks: np.ndarray
    impressions: np.ndarray
    first_impression: np.ndarray
    first_click: np.ndarray
    as_of: float
    half_lives_hours: tuple[float, ...] = HALF_LIVES_HOURS
    # per window, the sums of clicks and impressions over every article (a feature of every logged
    # list; a sum over the catalog costs ~15 us): kept until the counts change, as DecayedCounters does
    _global: tuple[tuple[float, ...], tuple[float, ...]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, n_items: int, as_of: float, half_lives_hours: tuple[float, ...] = HALF_LIVES_HOURS
              ) -> "ExposureStats":
        w = len(half_lives_hours)
        return cls(np.zeros((w, n_items)), np.zeros((w, n_items)), np.full(n_items, NEVER),
                   np.full(n_items, NEVER), float(as_of), tuple(half_lives_hours))

    @classmethod
    def from_events(cls, item_index: np.ndarray, event: np.ndarray, ts: np.ndarray, n_items: int, as_of: float,
                    half_lives_hours: tuple[float, ...] = HALF_LIVES_HOURS) -> "ExposureStats":
        """Statistics of the events stamped at or before ``as_of`` (codes as in ``EVENT_CODES``)."""
        stats = cls.empty(n_items, as_of, half_lives_hours)
        keep = ts <= as_of
        stats.add(np.asarray(item_index)[keep], np.asarray(event)[keep], np.asarray(ts, dtype=np.float64)[keep])
        return stats

    @property
    def n_items(self) -> int:
        return int(self.first_impression.shape[0])

    def grow(self, n_items: int) -> None:
        pad = n_items - self.n_items
        if pad <= 0:
            return
        w = len(self.half_lives_hours)
        self.clicks = np.concatenate([self.clicks, np.zeros((w, pad))], axis=1)
        self.impressions = np.concatenate([self.impressions, np.zeros((w, pad))], axis=1)
        self.first_impression = np.concatenate([self.first_impression, np.full(pad, NEVER)])
        self.first_click = np.concatenate([self.first_click, np.full(pad, NEVER)])
        self._global = None

    def advance(self, now: float) -> None:
        """Move the reference time forward, decaying every window."""
        if now <= self.as_of:
            return
        factors = np.exp2(-(now - self.as_of) / (np.asarray(self.half_lives_hours) * HOUR))[:, None]
        self.clicks *= factors
        self.impressions *= factors
        self.as_of = float(now)
        self._global = None

    def add(self, item_index: np.ndarray, event: np.ndarray, ts: np.ndarray) -> None:
        """Count events (unknown articles, index < 0, are skipped)."""
        item_index = np.asarray(item_index, dtype=np.int64)
        keep = (item_index >= 0) & (item_index < self.n_items)
        item, event, ts = item_index[keep], np.asarray(event)[keep], np.asarray(ts, dtype=np.float64)[keep]
        if item.size == 0:
            return
        click = event == EVENT_CODES["click"]
        shown = event == EVENT_CODES["impression"]
        for j, half_life in enumerate(self.half_lives_hours):
            decay = np.exp2(-(self.as_of - ts) / (half_life * HOUR))
            np.add.at(self.clicks[j], item, decay * click)
            np.add.at(self.impressions[j], item, decay * shown)
        np.minimum.at(self.first_impression, item[shown], ts[shown])
        np.minimum.at(self.first_click, item[click], ts[click])
        self._global = None

    def global_ctr(self, window: int, default: float = 0.05) -> float:
        totals = self._global
        if totals is None:
            totals = self._global = (tuple(float(row.sum()) for row in self.clicks),
                                     tuple(float(row.sum()) for row in self.impressions))
        shown = totals[1][window]
        return totals[0][window] / shown if shown > 0 else default

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the bundle (``exposure_*``)."""
        return {"exposure_clicks": self.clicks, "exposure_impressions": self.impressions,
                "exposure_first_impression": self.first_impression, "exposure_first_click": self.first_click,
                "exposure_half_lives_hours": np.asarray(self.half_lives_hours, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays, as_of: float) -> "ExposureStats | None":
        """Writable copies of the bundle's arrays; None if the bundle has none (trained before them)."""
        if "exposure_clicks" not in arrays:
            return None
        return cls(np.array(arrays["exposure_clicks"], dtype=np.float64),
                   np.array(arrays["exposure_impressions"], dtype=np.float64),
                   np.array(arrays["exposure_first_impression"], dtype=np.float64),
                   np.array(arrays["exposure_first_click"], dtype=np.float64), float(as_of),
                   tuple(float(h) for h in np.asarray(arrays["exposure_half_lives_hours"]).tolist()))


@dataclass
class ExposureCounters(DecayedCounters):
    """The live popularity counters plus :class:`ExposureStats`, counted from the same events."""

    exposure: ExposureStats | None = None

    def advance(self, now: float) -> None:
        super().advance(now)
        if self.exposure is not None:
            self.exposure.advance(now)

    def grow(self, n_items: int) -> None:
        super().grow(n_items)
        if self.exposure is not None:
            self.exposure.grow(n_items)

    def add(self, item_index: np.ndarray, event: np.ndarray, ts: np.ndarray,
            engagement_weights: np.ndarray | None = None, position: np.ndarray | None = None) -> None:
        super().add(item_index, event, ts, engagement_weights, position)
        if self.exposure is not None:
            self.exposure.grow(self.clicks.shape[0])
            self.exposure.add(item_index, event, ts)


def with_exposure(counters: DecayedCounters, exposure: ExposureStats | None) -> ExposureCounters:
    """``counters`` carrying ``exposure`` (empty statistics as of the counters' time if None)."""
    if exposure is None:
        exposure = ExposureStats.empty(counters.clicks.shape[0], counters.as_of)
    exposure.grow(counters.clicks.shape[0])
    exposure.advance(counters.as_of)
    return ExposureCounters(counters.clicks, counters.impressions, counters.engagement, counters.as_of,
                            counters.half_life_hours, expected=counters.expected, curve=counters.curve,
                            exposure=exposure)
