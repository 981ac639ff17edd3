"""Off-policy evaluation: judge a candidate ranker from a log of lists served with known
selection probabilities (the exploration stage, :mod:`recommender.serving.exploration`).

Item-position inverse propensity scoring: a click at slot k of a logged list counts for the
candidate when the candidate would have put the same item at slot k, weighted by 1 / the
probability that the logging policy put it there. Under the item-position click model (a
click at a slot depends on the item and the slot only) this is unbiased for the candidate's
click-through per slot; the self-normalized form divides by the summed weights instead of the
number of slots (a little biased, much less variance). The click-through counted in the log is
the logging policy's own value, not the candidate's: that is the naive estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from recommender.store import FeatureLogRow, Store


@dataclass(frozen=True)
class LoggedSlots:
    """Every shown slot of the logged lists, shape (n,) each.

    Attributes
    ----------
    list_index : ndarray of int64
        Which logged list (0..g-1).
    slot : ndarray of int64
        0-based position in that list.
    item : ndarray of int64 or object
        What was shown there.
    click : ndarray of float64
        1 = clicked.
    propensity : ndarray of float64
        P(this item at this slot) under the logging policy, in (0, 1].
    """

    list_index: np.ndarray
    slot: np.ndarray
    item: np.ndarray
    click: np.ndarray
    propensity: np.ndarray

    @classmethod
    def from_lists(cls, shown: Sequence[Sequence], clicks: Sequence[Sequence[float]],
                   propensities: Sequence[Sequence[float]]) -> "LoggedSlots":
        """From per-list sequences (items in list order, their clicks, their probabilities)."""
        lengths = [len(s) for s in shown]
        if [len(c) for c in clicks] != lengths or [len(p) for p in propensities] != lengths:
            raise ValueError("shown, clicks and propensities must have one value per shown item of each list")
        p = np.concatenate([np.asarray(x, dtype=np.float64) for x in propensities]) if lengths else np.zeros(0)
        if p.size and not ((p > 0) & (p <= 1)).all():
            raise ValueError("propensities must be in (0, 1]: a logged item had probability "
                             f"{float(p[~((p > 0) & (p <= 1))][0])!r}")
        return cls(np.repeat(np.arange(len(lengths)), lengths),
                   np.concatenate([np.arange(n) for n in lengths]) if lengths else np.zeros(0, np.int64),
                   np.concatenate([np.asarray(s, dtype=object if _strings(s) else np.int64) for s in shown])
                   if lengths else np.zeros(0, np.int64),
                   np.concatenate([np.asarray(c, dtype=np.float64) for c in clicks]) if lengths else np.zeros(0), p)


def _strings(values: Sequence) -> bool:
    return any(isinstance(v, str) for v in values)


def candidate_items(logged: LoggedSlots, candidate_lists: Sequence[Sequence]) -> np.ndarray:
    """What the candidate puts at each logged slot, shape (n,) (None past the end of its list).

    ``candidate_lists[g]`` is the candidate's ordered list for the context of logged list ``g``."""
    out = np.empty(logged.slot.size, dtype=object)
    for r, (g, k) in enumerate(zip(logged.list_index.tolist(), logged.slot.tolist())):
        ranked = candidate_lists[g]
        out[r] = ranked[k] if k < len(ranked) else None
    return out


def ips_estimate(logged: LoggedSlots, candidate_lists: Sequence[Sequence], clip: float | None = None) -> dict:
    """Estimates of the candidate's click-through per slot over the logged lists' slots.

    Returns ``{"ips", "snips", "naive", "matched", "slots", "matches", "effective_slots"}``:
    ``naive`` is the logged click-through (the logging policy's value), ``matched`` the
    unweighted click-through of the slots where the candidate agrees with the log,
    ``effective_slots`` Kish's effective sample size of the weights (small: a noisy estimate).
    ``clip`` caps each weight (less variance, biased down).
    """
    n = logged.slot.size
    if n == 0:
        return {"ips": float("nan"), "snips": float("nan"), "naive": float("nan"), "matched": float("nan"),
                "slots": 0, "matches": 0, "effective_slots": 0.0}
    target = candidate_items(logged, candidate_lists)
    match = np.fromiter((t is not None and t == a for t, a in zip(target, logged.item)), dtype=bool, count=n)
    weight = np.where(match, 1.0 / logged.propensity, 0.0)
    if clip is not None:
        weight = np.minimum(weight, clip)
    total = float(weight.sum())
    return {
        "ips": float((logged.click * weight).sum() / n),
        "snips": float((logged.click * weight).sum() / total) if total > 0 else float("nan"),
        "naive": float(logged.click.mean()),
        "matched": float(logged.click[match].mean()) if match.any() else float("nan"),
        "slots": int(n),
        "matches": int(match.sum()),
        "effective_slots": float(total ** 2 / (weight ** 2).sum()) if total > 0 else 0.0,
    }


def logged_slots(store: Store, start: float | None = None, end: float | None = None,
                 label_window: float = 1800.0) -> tuple[LoggedSlots, list[FeatureLogRow]]:
    """The explored log of ``[start, end)`` from the store: every feature-log row that carries
    selection probabilities (served with the exploration stage on), its items' clicks joined
    by reader, article and time (as training labels them). Returns the slots and the rows (the
    contexts a candidate ranks: reader, time, shown items)."""
    from .learning import clicked, reader_clicks

    rows = [r for r in store.feature_logs(start, end) if r.propensities is not None]
    if not rows:
        return LoggedSlots.from_lists([], [], []), rows
    lo = min(r.ts for r in rows)
    hi = max(r.ts for r in rows) + label_window
    clicks = reader_clicks(store, lo, hi if end is None else min(hi, end))
    return LoggedSlots.from_lists([list(r.article_ids) for r in rows], [clicked(clicks, r, label_window) for r in rows],
                                  [r.propensities for r in rows]), rows
