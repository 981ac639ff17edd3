"""Time-decayed popularity and click-through counters.

The same arithmetic serves offline (training) and online (the live counters in the
service): values are kept as of a reference time and decayed by half-life on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recommender.domain import EVENT_CODES

HOUR = 3600.0


def decayed_counts(item_index: np.ndarray, ts: np.ndarray, weight: np.ndarray, n_items: int, as_of: float,
                   half_life_hours: float) -> np.ndarray:
    """Sum of ``weight * 2^-(age / half_life)`` per item, shape (n_items,), float64."""
    keep = (item_index >= 0) & (ts <= as_of)
    decay = np.exp2(-(as_of - ts[keep]) / (half_life_hours * HOUR))
    return np.bincount(item_index[keep], weights=weight[keep] * decay, minlength=n_items).astype(np.float64)


@dataclass
class DecayedCounters:
    """Per-article decayed clicks, impressions and engagement, kept as of ``as_of``.

    Arrays have shape (n_items,); ``grow`` makes room for articles that arrive.
    """

    clicks: np.ndarray
    impressions: np.ndarray
    engagement: np.ndarray
    as_of: float
    half_life_hours: float
    # the site-wide click-through, summed over every article once per change (not once per feed)
    _global: tuple[float, float] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, n_items: int, as_of: float, half_life_hours: float) -> "DecayedCounters":
        z = lambda: np.zeros(n_items, dtype=np.float64)  # noqa: E731
        return cls(z(), z(), z(), as_of, half_life_hours)

    @classmethod
    def from_events(cls, item_index: np.ndarray, event: np.ndarray, ts: np.ndarray, n_items: int, as_of: float,
                    half_life_hours: float, engagement_weights: np.ndarray | None = None) -> "DecayedCounters":
        """Counters from event arrays (codes as in :data:`recommender.domain.EVENT_CODES`)."""
        ew = engagement_weights if engagement_weights is not None else np.array([0.0, 1.0, 1.0, 2.0, 0.0])  # a hide adds none
        ones = np.ones(ts.shape[0])
        clicks = decayed_counts(item_index, ts, (event == EVENT_CODES["click"]) * ones, n_items, as_of, half_life_hours)
        shown = decayed_counts(item_index, ts, (event == EVENT_CODES["impression"]) * ones, n_items, as_of,
                               half_life_hours)
        engaged = decayed_counts(item_index, ts, ew[event.astype(np.intp)], n_items, as_of, half_life_hours)
        return cls(clicks, shown, engaged, as_of, half_life_hours)

    def advance(self, now: float) -> None:
        """Move the reference time forward, decaying every counter."""
        if now <= self.as_of:
            return
        factor = float(np.exp2(-(now - self.as_of) / (self.half_life_hours * HOUR)))
        for arr in (self.clicks, self.impressions, self.engagement):
            arr *= factor
        self.as_of = now
        self._global = None

    def grow(self, n_items: int) -> None:
        if n_items > self.clicks.shape[0]:
            pad = n_items - self.clicks.shape[0]
            self.clicks = np.concatenate([self.clicks, np.zeros(pad)])
            self.impressions = np.concatenate([self.impressions, np.zeros(pad)])
            self.engagement = np.concatenate([self.engagement, np.zeros(pad)])

    def add(self, item_index: np.ndarray, event: np.ndarray, ts: np.ndarray,
            engagement_weights: np.ndarray | None = None) -> None:
        """Add events (any time; later than ``as_of`` counts more, as it should)."""
        ew = engagement_weights if engagement_weights is not None else np.array([0.0, 1.0, 1.0, 2.0, 0.0])  # a hide adds none
        keep = item_index >= 0
        item_index, event, ts = item_index[keep], event[keep], ts[keep]
        decay = np.exp2(-(self.as_of - ts) / (self.half_life_hours * HOUR))
        np.add.at(self.clicks, item_index, decay * (event == EVENT_CODES["click"]))
        np.add.at(self.impressions, item_index, decay * (event == EVENT_CODES["impression"]))
        np.add.at(self.engagement, item_index, decay * ew[event.astype(np.intp)])
        self._global = None

    def ctr(self, prior_ctr: float, prior_strength: float = 20.0) -> np.ndarray:
        """Beta-smoothed click-through per item: ``(clicks + a*p) / (impressions + a)``."""
        return (self.clicks + prior_strength * prior_ctr) / (np.maximum(self.impressions, self.clicks) + prior_strength)

    def global_ctr(self, default: float = 0.05) -> float:
        totals = self._global
        if totals is None:
            totals = self._global = (float(self.clicks.sum()), float(self.impressions.sum()))
        return totals[0] / totals[1] if totals[1] > 0 else default
