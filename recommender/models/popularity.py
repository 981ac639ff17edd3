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
    # position correction (see :func:`position_curve`): ``expected`` sums, per article, the click
    # rate of the position of each exposure relative to the first position; None: not kept
    expected: np.ndarray | None = None
    curve: np.ndarray | None = None
    # the site-wide click-through, summed over every article once per change (not once per feed)
    _global: tuple[float, float] | None = field(default=None, repr=False, compare=False)
    _global_corrected: tuple[float, float] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, n_items: int, as_of: float, half_life_hours: float) -> "DecayedCounters":
        z = lambda: np.zeros(n_items, dtype=np.float64)  # noqa: E731
        return cls(z(), z(), z(), as_of, half_life_hours)

    @classmethod
    def from_events(cls, item_index: np.ndarray, event: np.ndarray, ts: np.ndarray, n_items: int, as_of: float,
                    half_life_hours: float, engagement_weights: np.ndarray | None = None,
                    position: np.ndarray | None = None, curve: np.ndarray | None = None) -> "DecayedCounters":
        """Counters from event arrays (codes as in :data:`recommender.domain.EVENT_CODES`); with a
        position ``curve``, also the position-weighted exposures (``position`` as in :meth:`add`)."""
        ew = engagement_weights if engagement_weights is not None else np.array([0.0, 1.0, 1.0, 2.0, 0.0])  # a hide adds none
        ones = np.ones(ts.shape[0])
        shown_mask = (event == EVENT_CODES["impression"]) * ones
        clicks = decayed_counts(item_index, ts, (event == EVENT_CODES["click"]) * ones, n_items, as_of, half_life_hours)
        shown = decayed_counts(item_index, ts, shown_mask, n_items, as_of, half_life_hours)
        engaged = decayed_counts(item_index, ts, ew[event.astype(np.intp)], n_items, as_of, half_life_hours)
        expected = None
        if curve is not None:
            weight = position_weights(curve, position, ts.shape[0])
            expected = decayed_counts(item_index, ts, shown_mask * weight, n_items, as_of, half_life_hours)
            curve = np.asarray(curve, dtype=np.float64)
        return cls(clicks, shown, engaged, as_of, half_life_hours, expected, curve)

    def advance(self, now: float) -> None:
        """Move the reference time forward, decaying every counter."""
        if now <= self.as_of:
            return
        factor = float(np.exp2(-(now - self.as_of) / (self.half_life_hours * HOUR)))
        for arr in (self.clicks, self.impressions, self.engagement, self.expected):
            if arr is not None:
                arr *= factor
        self.as_of = now
        self._global = self._global_corrected = None

    def grow(self, n_items: int) -> None:
        if n_items > self.clicks.shape[0]:
            pad = n_items - self.clicks.shape[0]
            self.clicks = np.concatenate([self.clicks, np.zeros(pad)])
            self.impressions = np.concatenate([self.impressions, np.zeros(pad)])
            self.engagement = np.concatenate([self.engagement, np.zeros(pad)])
            if self.expected is not None:
                self.expected = np.concatenate([self.expected, np.zeros(max(n_items - self.expected.shape[0], 0))])

    def add(self, item_index: np.ndarray, event: np.ndarray, ts: np.ndarray,
            engagement_weights: np.ndarray | None = None, position: np.ndarray | None = None) -> None:
        """Add events (any time; later than ``as_of`` counts more, as it should).

        ``position``: each event's 0-based position in the list it was shown in (-1 unknown),
        shape (n,); an exposure adds its position's weight to ``expected`` (unknown: 1).
        """
        ew = engagement_weights if engagement_weights is not None else np.array([0.0, 1.0, 1.0, 2.0, 0.0])  # a hide adds none
        keep = item_index >= 0
        item_index, event, ts = item_index[keep], event[keep], ts[keep]
        decay = np.exp2(-(self.as_of - ts) / (self.half_life_hours * HOUR))
        shown = event == EVENT_CODES["impression"]
        np.add.at(self.clicks, item_index, decay * (event == EVENT_CODES["click"]))
        np.add.at(self.impressions, item_index, decay * shown)
        np.add.at(self.engagement, item_index, decay * ew[event.astype(np.intp)])
        if self.expected is not None:
            weight = position_weights(self.curve, None if position is None else np.asarray(position)[keep], ts.size)
            np.add.at(self.expected, item_index, decay * shown * weight)
        self._global = self._global_corrected = None

    def keep_expected(self, curve: np.ndarray, expected: np.ndarray | None = None) -> None:
        """Start keeping position-weighted exposures (``expected``: as counted so far; default
        the plain impressions, i.e. every earlier exposure counted as at the first position)."""
        self.curve = np.asarray(curve, dtype=np.float64)
        expected = np.array(expected, dtype=np.float64) if expected is not None else self.impressions.copy()
        n = self.clicks.shape[0]
        self.expected = np.concatenate([expected[:n], np.zeros(max(n - expected.shape[0], 0))])
        self._global = self._global_corrected = None

    def corrected_ctr(self, index: np.ndarray, prior_strength: float) -> tuple[np.ndarray, float]:
        """Click-through over the clicks expected at the positions shown, smoothed towards the
        site's: ``(clicks + a*p) / (expected + a)``, shape (n,), and the prior ``p``."""
        expected = self.expected if self.expected is not None else self.impressions
        totals = self._global_expected()
        prior = totals[0] / totals[1] if totals[1] > 0 else 0.05
        clicks = self.clicks[index]
        return (clicks + prior_strength * prior) / (np.maximum(expected[index], clicks) + prior_strength), prior

    def _global_expected(self) -> tuple[float, float]:
        totals = self._global_corrected
        if totals is None:
            expected = self.expected if self.expected is not None else self.impressions
            totals = self._global_corrected = (float(self.clicks.sum()), float(expected.sum()))
        return totals

    def ctr(self, prior_ctr: float, prior_strength: float = 20.0) -> np.ndarray:
        """Beta-smoothed click-through per item: ``(clicks + a*p) / (impressions + a)``."""
        return (self.clicks + prior_strength * prior_ctr) / (np.maximum(self.impressions, self.clicks) + prior_strength)

    def global_ctr(self, default: float = 0.05) -> float:
        totals = self._global
        if totals is None:
            totals = self._global = (float(self.clicks.sum()), float(self.impressions.sum()))
        return totals[0] / totals[1] if totals[1] > 0 else default


# examination by position when the log says too little: (k + 1) ** -0.5, k = 0 the first position
DEFAULT_CURVE_POWER = 0.5
CURVE_POSITIONS = 50
CURVE_FLOOR = 0.05


def default_curve(n_positions: int = CURVE_POSITIONS) -> np.ndarray:
    """The prior position curve, shape (n_positions,), 1.0 at the first position."""
    return (np.arange(n_positions) + 1.0) ** -DEFAULT_CURVE_POWER


def position_curve(shown: np.ndarray, clicks: np.ndarray, prior_strength: float = 200.0,
                   n_positions: int = CURVE_POSITIONS) -> np.ndarray:
    """Click rate by position relative to the first position, estimated from a log.

    ``shown`` and ``clicks`` count exposures and clicks per 0-based position (any length). Each
    position's rate is smoothed towards the default curve scaled to the log's top rate (with
    ``prior_strength`` pseudo-exposures), made non-increasing (a lower slot is never examined
    more) and floored at ``CURVE_FLOOR``. Returns shape (n_positions,), float64, ``[0] == 1``.
    """
    s = np.zeros(n_positions)
    c = np.zeros(n_positions)
    m = min(n_positions, len(shown), len(clicks))
    s[:m], c[:m] = np.asarray(shown, dtype=np.float64)[:m], np.asarray(clicks, dtype=np.float64)[:m]
    prior = default_curve(n_positions)
    top = (c[0] + 1.0) / (s[0] + 1.0 / 0.05) if s[0] > 0 else 0.05  # the first position's rate, smoothed
    rate = (c + prior_strength * top * prior) / (s + prior_strength)
    curve = np.minimum.accumulate(rate / rate[0])
    return np.clip(curve, CURVE_FLOOR, 1.0)


def position_weights(curve: np.ndarray | None, position: np.ndarray | None, n: int) -> np.ndarray:
    """Each exposure's expected click rate relative to the first position, shape (n,): the curve
    at its position (the last value beyond the curve), 1.0 when the position is unknown."""
    if curve is None or position is None:
        return np.ones(n)
    position = np.asarray(position, dtype=np.int64)
    known = position >= 0
    return np.where(known, np.asarray(curve)[np.clip(position, 0, len(curve) - 1)], 1.0)
