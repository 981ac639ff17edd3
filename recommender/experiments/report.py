"""An experiment's report from its served lists and the clicks that name them.

Served lists record their experiment, variant and (interleaved) each item's team; clicks carry
the ``list_id`` and ``position`` of the list they came from. Everything here is counted from
those two, so a report says exactly what readers saw and did.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from recommender.domain import ANONYMOUS
from recommender.store import ExperimentList

from . import stats
from .definition import Experiment

MAX_POSITIONS = 20  # CTR by position is reported for the first this many positions


def _num(x: float, digits: int = 6) -> float | None:
    return round(float(x), digits) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _ci(interval: Sequence[float]) -> list[float | None]:
    return [_num(interval[0]), _num(interval[1])]


def _units(lists: Sequence[ExperimentList]) -> list[str]:
    """The randomization unit of each list: its reader, or the list itself for anonymous ones."""
    return [s.list_id if s.user_id == ANONYMOUS else "u:" + s.user_id for s in lists]


def build_report(experiment: Experiment, lists: Sequence[ExperimentList], clicks: Iterable[tuple[str, int]]) -> dict:
    """The report as JSON-ready data.

    Parameters
    ----------
    lists : served lists of the experiment (any order)
    clicks : (list_id, position) of every click that names one of them; repeats count once

    Returns
    -------
    dict
        ``{"experiment", "mode", "variants": {LABEL: {"lists", "impressions", "clicks", "readers",
        "ctr", "ctr_ci", "by_position"}}, "difference", "difference_ci", "differences", "srm_p"}``;
        ``difference`` is the second variant's CTR minus the first's (the control), ``differences``
        every variant against the control. Interleaving adds ``"wins"`` and credits each click to
        the variant that put the item in the list.
    """
    clicked: dict[str, set[int]] = defaultdict(set)
    for list_id, position in clicks:
        if position is not None:
            clicked[list_id].add(int(position))
    labels = experiment.labels
    n_var = len(labels)
    units = _units(lists)
    unit_index = {u: i for i, u in enumerate(dict.fromkeys(units))}
    m = len(unit_index)
    # per variant and unit: clicks and impressions
    c = np.zeros((n_var, m))
    n = np.zeros((n_var, m))
    n_lists = np.zeros(n_var, dtype=np.int64)
    pos_shown = np.zeros((n_var, MAX_POSITIONS), dtype=np.int64)
    pos_clicks = np.zeros((n_var, MAX_POSITIONS), dtype=np.int64)
    label_index = {label: i for i, label in enumerate(labels)}
    wins = np.zeros(3, dtype=np.int64)  # first variant, second variant, ties (interleaving)
    first_team = np.zeros(2, dtype=np.int64)
    unit_variant: dict[int, set[int]] = defaultdict(set)
    interleaved = experiment.mode == "interleave"
    for s, unit in zip(lists, units):
        u = unit_index[unit]
        hits = {p - s.offset for p in clicked.get(s.list_id, ()) if 0 <= p - s.offset < s.size}
        if interleaved:
            teams = [int(t) for t in (s.teams or "")][: s.size]
            if len(teams) < s.size:
                continue  # not a list this report can credit
            votes = [0, 0]
            for k, team in enumerate(teams):
                n[team, u] += 1
                if k + s.offset < MAX_POSITIONS:
                    pos_shown[team, k + s.offset] += 1
                if k in hits:
                    votes[team] += 1
                    c[team, u] += 1
                    if k + s.offset < MAX_POSITIONS:
                        pos_clicks[team, k + s.offset] += 1
            n_lists += 1
            wins[0 if votes[0] > votes[1] else 1 if votes[1] > votes[0] else 2] += 1
            if s.offset == 0 and teams:
                first_team[teams[0]] += 1
            continue
        v = label_index.get(s.variant)
        if v is None:
            continue
        unit_variant[u].add(v)
        n_lists[v] += 1
        n[v, u] += s.size
        c[v, u] += len(hits)
        top = min(s.size, MAX_POSITIONS - s.offset)
        if top > 0:
            pos_shown[v, s.offset: s.offset + top] += 1
            for k in hits:
                if k + s.offset < MAX_POSITIONS:
                    pos_clicks[v, k + s.offset] += 1
    variants: dict[str, dict] = {}
    estimates = []
    for v, label in enumerate(labels):
        mine = n[v] > 0
        ctr, ci, var = stats.ctr_interval(c[v, mine], n[v, mine])
        estimates.append((ctr, var))
        by_position = []
        for k in range(MAX_POSITIONS):
            if pos_shown[v, k]:
                lo, hi = stats.wilson(pos_clicks[v, k], pos_shown[v, k])
                by_position.append({"position": k, "shown": int(pos_shown[v, k]), "clicks": int(pos_clicks[v, k]),
                                    "ctr": _num(pos_clicks[v, k] / pos_shown[v, k]), "ctr_ci": _ci((lo, hi))})
        variants[label] = {
            "lists": int(n_lists[v]), "impressions": int(n[v].sum()), "clicks": int(c[v].sum()),
            "readers": int(mine.sum()), "ctr": _num(ctr), "ctr_ci": _ci(ci),
            "config": experiment.variants[v].config, "model_version": experiment.variants[v].model_version,
            "by_position": by_position,
        }
    differences = {}
    for v in range(1, n_var):
        if interleaved:  # both variants are in every list: a paired difference over readers
            diff, ci = _paired_difference(c[0], n[0], c[v], n[v])
        else:
            diff, ci = stats.difference(estimates[0], estimates[v])
        differences[labels[v]] = {"difference": _num(diff), "ci": _ci(ci), "excludes_zero": stats.excludes_zero(ci)}
    first = differences[labels[1]]
    out = {
        "experiment": experiment.name,
        "mode": experiment.mode,
        "control": labels[0],
        "variants": variants,
        "difference": first["difference"],
        "difference_ci": first["ci"],
        "differences": differences,
    }
    if interleaved:
        share, share_ci = stats.win_share(int(wins[0]), int(wins[1]))
        out["wins"] = {labels[0]: int(wins[0]), labels[1]: int(wins[1]), "ties": int(wins[2]),
                       "share": _num(share), "share_ci": _ci(share_ci)}
        # the coin of team-draft: the first item's team is 50/50 when merging and logging work
        out["srm_p"] = _num(stats.srm_p(first_team, (1, 1)))
    else:
        units_per_variant = np.zeros(n_var, dtype=np.int64)
        for vs in unit_variant.values():
            for v in vs:
                units_per_variant[v] += 1
        out["srm_p"] = _num(stats.srm_p(units_per_variant, experiment.shares))
        out["units"] = {label: int(units_per_variant[v]) for v, label in enumerate(labels)}
    return out


def _paired_difference(ca: np.ndarray, na: np.ndarray, cb: np.ndarray, nb: np.ndarray
                       ) -> tuple[float, tuple[float, float]]:
    """CTR of b minus CTR of a when every unit saw both (interleaving), with its delta-method interval."""
    keep = (na + nb) > 0
    ca, na, cb, nb = ca[keep], na[keep], cb[keep], nb[keep]
    if na.sum() <= 0 or nb.sum() <= 0:
        return float("nan"), (float("nan"), float("nan"))
    ra, rb = ca.sum() / na.sum(), cb.sum() / nb.sum()
    m = ca.size
    if m < 2:
        return rb - ra, (float("nan"), float("nan"))
    d = (cb - rb * nb) / nb.mean() - (ca - ra * na) / na.mean()
    return rb - ra, stats.normal_ci(rb - ra, d.var(ddof=1) / m)
