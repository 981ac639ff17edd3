"""The numbers of an experiment report: small pure functions over counts (NaN on empty input).

Readers, not impressions, are what is randomized: one reader's lists share their taste, so their
clicks are not independent draws. Click-through per variant therefore gets its interval by the
delta method over readers (the ratio of two sums over independent units; Deng et al. 2018,
"Applying the Delta Method in Metric Analytics"), which a Wilson interval over impressions would
make too narrow. Wilson intervals are used where the units are independent: per position, and the
interleaving win share over lists.

The delta method's variance is 0 when a variant has no click at all (or only clicks): its
interval was [0, 0], and a difference against it "excluded zero" on 0 clicks in 500 against 5 in
500 (Fisher's exact p = 0.06). So the variance is never taken below that of independent
impressions at the Agresti-Coull proportion ((clicks + z^2/2) / (impressions + z^2)). Readers'
clicks are positively correlated, so the delta method's is the larger one but at or near those
ends (or, by chance, when clicks are about independent: then the floor is at most slightly wider).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _scipy_stats

Z95 = 1.959963984540054


def wilson(successes: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; ``(nan, nan)`` with no trials."""
    if trials <= 0:
        return float("nan"), float("nan")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio(clicks: np.ndarray, impressions: np.ndarray) -> tuple[float, float]:
    """Click-through over units and the variance of that estimate (delta method).

    Parameters
    ----------
    clicks, impressions : ndarray, shape (m,)
        Per randomization unit (reader): clicks and impressions.

    Returns
    -------
    (ctr, variance) : NaN when there are no impressions; variance NaN with fewer than 2 units.
    """
    clicks = np.asarray(clicks, dtype=np.float64)
    impressions = np.asarray(impressions, dtype=np.float64)
    total = impressions.sum()
    if total <= 0:
        return float("nan"), float("nan")
    ctr = clicks.sum() / total
    m = clicks.size
    if m < 2:
        return float(ctr), float("nan")
    residual = clicks - ctr * impressions
    mean_n = total / m
    adjusted = (clicks.sum() + Z95 * Z95 / 2) / (total + Z95 * Z95)  # the floor (module docstring)
    return float(ctr), float(max(residual.var(ddof=1) / (m * mean_n * mean_n), adjusted * (1 - adjusted) / total))


def normal_ci(estimate: float, variance: float, z: float = Z95) -> tuple[float, float]:
    if not (math.isfinite(estimate) and math.isfinite(variance)):
        return float("nan"), float("nan")
    half = z * math.sqrt(max(variance, 0.0))
    return estimate - half, estimate + half


def ctr_interval(clicks: np.ndarray, impressions: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """``(ctr, (lo, hi), variance)`` of one variant from per-reader counts."""
    ctr, var = ratio(clicks, impressions)
    lo, hi = normal_ci(ctr, var)
    if math.isfinite(lo):
        lo, hi = max(0.0, lo), min(1.0, hi)
    return ctr, (lo, hi), var


def difference(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, tuple[float, float]]:
    """``b - a`` of two independent ``(estimate, variance)`` pairs with its 95 % interval."""
    diff = b[0] - a[0]
    return diff, normal_ci(diff, a[1] + b[1])


def srm_p(observed: Sequence[int], shares: Sequence[float]) -> float:
    """Sample-ratio-mismatch check: chi-square p-value of the units per variant against the shares.

    A tiny p (say < 0.001) means assignment or logging is broken and the report cannot be trusted.
    """
    observed = np.asarray(observed, dtype=np.float64)
    total = observed.sum()
    if total <= 0:
        return float("nan")
    expected = total * np.asarray(shares, dtype=np.float64) / np.sum(shares)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return float(_scipy_stats.chi2.sf(chi2, df=observed.size - 1))


def win_share(wins_a: int, wins_b: int) -> tuple[float, tuple[float, float]]:
    """Share of decided interleaved lists that ``b`` won, with its Wilson interval (0.5: no preference)."""
    decided = wins_a + wins_b
    if decided == 0:
        return float("nan"), (float("nan"), float("nan"))
    return wins_b / decided, wilson(wins_b, decided)


def excludes_zero(interval: tuple[float, float]) -> bool:
    lo, hi = interval
    return bool(math.isfinite(lo) and (lo > 0 or hi < 0))
