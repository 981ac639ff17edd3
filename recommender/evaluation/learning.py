"""Training the learned ranking stage: feature rows of served lists and their clicks, the
ranker chosen on the last day before the cut, corrected for position bias.

Where serving logged a list's feature vectors (the feature log, ``Store.feature_logs``), those
rows are used as they were served (:func:`log_rows`): nothing is recomputed, so a ranker trains
on exactly what serving saw. The other lists come from the replay protocol run over the period
before the cut: every logged impression is scored by the engine with the state just before it,
and the engine records the features it computed (:func:`recommender.serving.features.learned_stage`
with ``keep_features``). :func:`learning_rows` joins the two and says how many came from each.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.domain import EVENT_CODES, format_time
from recommender.models.learned import LearnedRanker
from recommender.params import TrainParams
from recommender.serving.features import FEATURE_NAMES, PREFIX
from recommender.store import Store

from .protocols import Evaluation, Query
from .splitting import validation_cut
from .tuning import _group_metrics, _objective

log = logging.getLogger(__name__)

POSITION = "position"  # training-only column (position bias as a feature), scored as 0 at serving
POSITION_BIAS = ("none", "ipw", "feature")
# "list": every list weighs the same in training (a long list does not outvote a short one), as the
# per-list metrics judge it
LIST_WEIGHTING = ("none", "list")
# the ranker settings tried on the validation day (trees, then the simple fallback)
CANDIDATES: tuple[dict[str, Any], ...] = (
    {"kind": "hgb", "max_iter": 100, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 100},
    {"kind": "hgb", "max_iter": 200, "learning_rate": 0.03, "max_leaf_nodes": 7, "min_samples_leaf": 200},
    {"kind": "hgb", "max_iter": 300, "learning_rate": 0.03, "max_leaf_nodes": 7, "min_samples_leaf": 500,
     "l2_regularization": 10.0},
    {"kind": "logistic", "C": 1.0},
    {"kind": "logistic", "C": 0.2},
    {"kind": "logistic", "C": 0.05},
)


@dataclass
class RankingData:
    """Feature rows of logged lists (n rows, g lists).

    Attributes
    ----------
    X : ndarray of float64, shape (n, f)
        Columns :data:`~recommender.serving.features.FEATURE_NAMES`.
    y : ndarray of float64, shape (n,)
        1 = clicked.
    group : ndarray of int64, shape (n,)
        The list (0..g-1) of each row.
    position : ndarray of int64, shape (n,)
        Where the row's article was shown in its list (0 = first).
    ts : ndarray of float64, shape (g,)
        When each list was shown.
    """

    X: np.ndarray
    y: np.ndarray
    group: np.ndarray
    position: np.ndarray
    ts: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.ts.size)

    def take(self, lists: np.ndarray) -> "RankingData":
        """Only the lists where ``lists`` (g,) is True, renumbered."""
        new_id = np.cumsum(lists) - 1
        rows = lists[self.group]
        return RankingData(self.X[rows], self.y[rows], new_id[self.group[rows]], self.position[rows], self.ts[lists])


def _empty() -> RankingData:
    return RankingData(np.zeros((0, len(FEATURE_NAMES))), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
                       np.zeros(0))


def concat(parts: list[RankingData]) -> RankingData:
    """The lists of every part, renumbered one after another."""
    parts = [p for p in parts if p.n_groups]
    if not parts:
        return _empty()
    offsets = np.cumsum([0] + [p.n_groups for p in parts[:-1]])
    return RankingData(np.vstack([p.X for p in parts]), np.concatenate([p.y for p in parts]),
                       np.concatenate([p.group + o for p, o in zip(parts, offsets)]),
                       np.concatenate([p.position for p in parts]), np.concatenate([p.ts for p in parts]))


def from_columns(columns: list[tuple[Query, dict[str, np.ndarray]]],
                 skip: set[tuple[str, float]] | None = None, users: list[str] | None = None) -> RankingData:
    """Rows from the replay's recorded columns (``Evaluation.run(..., keep_columns=True)``);
    articles the engine did not know (no features) are left out, and so are the lists named in
    ``skip`` as ``(reader id, time)`` (``users`` maps a query's reader index to its id)."""
    Xs, ys, groups, positions, ts = [], [], [], [], []
    for query, cols in columns:
        if PREFIX + FEATURE_NAMES[0] not in cols:
            continue
        if skip and users is not None and (users[query.user], round(float(query.ts), 3)) in skip:
            continue
        X = np.column_stack([cols[PREFIX + name] for name in FEATURE_NAMES])
        known = ~np.isnan(X).any(axis=1)
        labels = query.labels[known]
        if not 0 < labels.sum() < labels.size:
            continue
        Xs.append(X[known])
        ys.append(labels)
        groups.append(np.full(labels.size, len(ts), dtype=np.int64))
        positions.append(np.flatnonzero(known))
        ts.append(query.ts)
    if not ts:
        return _empty()
    return RankingData(np.concatenate(Xs), np.concatenate(ys), np.concatenate(groups), np.concatenate(positions),
                       np.asarray(ts, dtype=np.float64))


POSITIVE_CODES = (EVENT_CODES["click"], EVENT_CODES["read"], EVENT_CODES["share"])


def reader_clicks(store: Store, start: float, end: float) -> dict[tuple[str, str], list[float]]:
    """Times of every click, read or share in ``[start, end)`` by ``(reader id, article id)``."""
    lg = store.load_interactions(start=start, end=end)
    pos = np.isin(lg.event, POSITIVE_CODES) & ~lg.history
    clicks: dict[tuple[str, str], list[float]] = {}
    for u, a, t in zip(lg.user_key[pos].tolist(), lg.article_key[pos].tolist(), lg.ts[pos].tolist()):
        clicks.setdefault((lg.user_ids[u], lg.article_ids[a]), []).append(t)
    return clicks


def clicked(clicks: dict[tuple[str, str], list[float]], row, label_window: float) -> np.ndarray:
    """1.0 for each item of a logged list its reader clicked within ``label_window`` s after it was shown."""
    return np.array([any(row.ts <= t < row.ts + label_window for t in clicks.get((row.user_id, a), ()))
                     for a in row.article_ids], dtype=np.float64)


def log_rows(store: Store, start: float, end: float, label_window: float = 1800.0
             ) -> tuple[RankingData, set[tuple[str, float]]]:
    """Rows of the lists served in ``[start, end)`` whose feature vectors were logged, as served.

    An item is clicked when its reader clicked, read or shared it within ``label_window``
    seconds after the list was shown (article + reader + time, as the replay labels impressions;
    nothing at or after ``end`` is read). Columns are matched to
    :data:`~recommender.serving.features.FEATURE_NAMES` by name: a row logged by a feature set
    that lacks one of today's columns is not used (the replay covers its list). Items the
    learned stage did not score (NaN rows: a pin) are left out, and lists with no click or only
    clicks, as in the replay.

    Returns the rows and the ``(reader id, time rounded to ms)`` of every list they cover.
    """
    logged = store.feature_logs(start, end)
    covered: set[tuple[str, float]] = set()
    if not logged:
        return _empty(), covered
    clicks = reader_clicks(store, start, end)
    Xs, ys, groups, positions, ts = [], [], [], [], []
    for row in logged:
        where = {name: j for j, name in enumerate(row.names)}
        if any(name not in where for name in FEATURE_NAMES):
            continue
        covered.add((row.user_id, round(float(row.ts), 3)))
        X = row.features[:, [where[name] for name in FEATURE_NAMES]]
        labels = clicked(clicks, row, label_window)
        known = ~np.isnan(X).any(axis=1)
        if not 0 < labels[known].sum() < known.sum():
            continue
        Xs.append(X[known])
        ys.append(labels[known])
        groups.append(np.full(int(known.sum()), len(ts), dtype=np.int64))
        positions.append(row.offset + np.flatnonzero(known))
        ts.append(row.ts)
    if not ts:
        return _empty(), covered
    return RankingData(np.concatenate(Xs), np.concatenate(ys), np.concatenate(groups), np.concatenate(positions),
                       np.asarray(ts, dtype=np.float64)), covered


def learning_rows(store: Store, cut: float, params: TrainParams, days: float, seed: int = 0,
                  max_queries: int | None = None, show_progress: bool = False) -> tuple[RankingData, dict]:
    """Rows of the lists in the ``days`` before ``cut``: as logged where serving logged their
    feature vectors (:func:`log_rows`), replayed through the engine for the rest
    (:func:`replay_rows`). The info says how many lists and rows came from each."""
    start = replay_start(store, cut, days)
    logged, covered = log_rows(store, start, cut)
    replayed, info = replay_rows(store, cut, params, days, seed=seed, max_queries=max_queries,
                                 show_progress=show_progress, skip=covered, start=start)
    data = concat([logged, replayed])
    info.update(lists=data.n_groups, rows=int(data.y.size), clicks=int(data.y.sum()),
                logged_lists=logged.n_groups, logged_rows=int(logged.y.size),
                replayed_lists=replayed.n_groups, replayed_rows=int(replayed.y.size))
    return data, info


def replay_start(store: Store, cut: float, days: float) -> float:
    """Where the ``days`` before ``cut`` start (:func:`validation_cut` of the events before it)."""
    lg = store.load_interactions(end=cut)
    ts = lg.ts[~lg.history]
    if ts.size == 0:
        raise ValueError("no events before the cut: the learned stage needs impressions and clicks")
    return validation_cut(ts, days)


def replay_rows(store: Store, cut: float, params: TrainParams, days: float, seed: int = 0,
                max_queries: int | None = None, show_progress: bool = False,
                skip: set[tuple[str, float]] | None = None, start: float | None = None) -> tuple[RankingData, dict]:
    """Feature rows of the impressions in the ``days`` before ``cut``, replayed through the engine
    with a model trained on what precedes them; nothing at or after ``cut`` is loaded. Lists named
    in ``skip`` (``(reader id, time)``, see :func:`log_rows`) are left out of the rows. ``start``:
    :func:`replay_start` when the caller has it already (the events before the cut are read once)."""
    start = replay_start(store, cut, days) if start is None else start
    t0 = time.perf_counter()
    with Evaluation(store, start, end=cut, variants={"newsrec": params}, baselines=[], seed=seed,
                    show_progress=show_progress, ablations=False) as ev:
        ev.prepare()
        ev.run("replay", max_queries=max_queries, keep_columns=True)
        data = from_columns(ev.columns_, skip=skip, users=ev.split_.users)
    info = {"start": format_time(start), "end": format_time(cut), "lists": data.n_groups, "rows": int(data.y.size),
            "clicks": int(data.y.sum()), "seconds": round(time.perf_counter() - t0, 1)}
    return data, info


def position_propensity(data: RankingData, smoothing: float = 50.0) -> np.ndarray:
    """Examination propensity per position, relative to the best position, shape (max position + 1,).

    Estimated from the logged positions as each position's smoothed click-through over the
    highest one's (a ranked log ties relevance to position too, so this over-corrects rather
    than under-corrects), floored at 0.1 so one rare position cannot dominate training.
    """
    n = int(data.position.max()) + 1 if data.position.size else 1
    clicks = np.bincount(data.position, weights=data.y, minlength=n)
    shown = np.bincount(data.position, minlength=n).astype(np.float64)
    site = clicks.sum() / max(shown.sum(), 1.0)
    ctr = (clicks + smoothing * site) / (shown + smoothing)
    return np.clip(ctr / ctr.max(), 0.1, 1.0)


def fit_ranker(data: RankingData, settings: dict[str, Any], position_bias: str = "none",
               seed: int = 0, list_weighting: str = "none") -> LearnedRanker:
    """A :class:`LearnedRanker` on ``data`` with one way of handling position bias:
    ``none``, ``ipw`` (clicks weighted by 1 / propensity of their position) or ``feature``
    (the position is a column in training, scored as position 0 at serving); with
    ``list_weighting="list"`` every list's rows weigh 1 / its size in all."""
    if position_bias not in POSITION_BIAS:
        raise ValueError(f"position_bias must be one of {', '.join(POSITION_BIAS)}; got {position_bias!r}")
    if list_weighting not in LIST_WEIGHTING:
        raise ValueError(f"list_weighting must be one of {', '.join(LIST_WEIGHTING)}; got {list_weighting!r}")
    names, X, weight, serving = list(FEATURE_NAMES), data.X, None, None
    if position_bias == "ipw":
        propensity = position_propensity(data)
        weight = np.where(data.y > 0, 1.0 / propensity[data.position], 1.0)
    if list_weighting == "list":
        size = np.bincount(data.group, minlength=data.n_groups).astype(np.float64)
        weight = (1.0 if weight is None else weight) / size[data.group]
    if weight is not None:
        weight = weight / weight.mean()
    if position_bias == "feature":
        names.append(POSITION)
        X = np.column_stack([data.X, data.position.astype(np.float64)])
        serving = {POSITION: 0.0}
    ranker = LearnedRanker(**settings, random_state=seed)
    return ranker.fit(X, data.y, names, sample_weight=weight, serving_values=serving)


def list_metrics(data: RankingData, scores: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Mean AUC, MRR and nDCG@10 over the lists, ranking each by ``scores`` (n,)."""
    return _group_metrics(data.group, np.asarray(scores, dtype=np.float64), data.y, data.n_groups,
                          np.random.default_rng(seed))


def serving_scores(ranker: LearnedRanker, data: RankingData) -> np.ndarray:
    """Scores as serving computes them (training-only columns at their serving constants)."""
    from recommender.serving.features import align

    return ranker.decision_function(align(data.X, ranker))


def choose_ranker(data: RankingData, validation_start: float, seed: int = 0,
                  candidates: tuple[dict[str, Any], ...] = CANDIDATES) -> tuple[LearnedRanker, dict[str, Any]]:
    """Fit each candidate setting on the lists before ``validation_start``, judge it on the lists
    from then on, then refit the best (setting and position-bias handling) on every list.

    The report holds every candidate's validation metrics beside the blend's and online
    click-through's (the ``ctr_6h_p10`` column) on the same lists.
    """
    later = data.ts >= validation_start
    if not later.any() or later.all():
        raise ValueError("the validation period must hold some lists and leave some before it")
    fit_part, val_part = data.take(~later), data.take(later)
    names = list(FEATURE_NAMES)
    report: dict[str, Any] = {
        "fit_lists": fit_part.n_groups, "validation_lists": val_part.n_groups,
        "validation_start": format_time(validation_start),
        "reference": {"blend": list_metrics(val_part, val_part.X[:, names.index("blend")], seed),
                      "online ctr (ctr_all_p10)": list_metrics(val_part, val_part.X[:, names.index("ctr_all_p10")],
                                                               seed)},
        "candidates": [],
    }
    best: tuple[float, dict, str, str] | None = None
    # every setting as it is, then each position correction with the best setting, then list weighting
    # with the best of those
    trials = ([(settings, "none", "none") for settings in candidates] + [(None, bias, "none") for bias in
                                                                         POSITION_BIAS[1:]]
              + [(None, None, weighting) for weighting in LIST_WEIGHTING[1:]])
    for settings, bias, weighting in trials:
        if settings is None:  # the best setting so far
            settings = best[1]
        if bias is None:  # the best position-bias handling so far
            bias = best[2]
        t0 = time.perf_counter()
        ranker = fit_ranker(fit_part, settings, bias, seed, weighting)
        metrics = list_metrics(val_part, serving_scores(ranker, val_part), seed)
        record = {"settings": settings, "position_bias": bias, "list_weighting": weighting, "validation": metrics,
                  "objective": _objective(metrics), "seconds": round(time.perf_counter() - t0, 2)}
        report["candidates"].append(record)
        log.info("learned ranker %s / %s / %s: %s", settings, bias, weighting, metrics)
        if best is None or record["objective"] > best[0]:
            best = (record["objective"], settings, bias, weighting)
    assert best is not None
    report["chosen"] = {"settings": best[1], "position_bias": best[2], "list_weighting": best[3]}
    return fit_ranker(data, best[1], best[2], seed, best[3]), report


def with_learned(model, ranker: LearnedRanker | None):
    """A shallow copy of a served model that ranks feeds with ``ranker`` (arrays are shared)."""
    import copy

    variant = copy.copy(model)
    variant.learned = ranker
    return variant


# groups of feature columns, for the ablation that says what the learned stage gains from what
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "blend parts": ("blend", "fresh", "trending", "ctr", "follow_category", "follow_region", "affinity", "content",
                    "session", "cf"),
    "decayed windows (1 h, 6 h, 24 h)": tuple(n for n in FEATURE_NAMES if any(
        part in n for part in ("_1h", "_6h", "_24h")) and not n.startswith("rank_")),
    "all-time window": tuple(n for n in FEATURE_NAMES if "_all" in n and not n.startswith("rank_")),
    "first exposure, first click, age": ("since_first_impression", "since_first_click", "age"),
    "similarity to clicked (max, mean)": ("clicked_sim_max", "clicked_sim_mean"),
    "shown and not clicked (similarity, times)": ("skipped_sim_max", "skipped_sim_mean", "skipped_count"),
    "reader's own click-through": ("reader_ctr", "reader_impressions"),
    "ranks inside the list": tuple(n for n in FEATURE_NAMES if n.startswith("rank_")),
    "list size, reader history": ("list_size", "history_length"),
}


def feature_ablation(data: RankingData, validation_start: float, settings: dict[str, Any], seed: int = 0
                     ) -> dict[str, dict[str, float]]:
    """Validation metrics of ``settings`` fitted without each group of :data:`FEATURE_GROUPS`
    (and with online click-through alone), on the same split as :func:`choose_ranker`."""
    later = data.ts >= validation_start
    fit_part, val_part = data.take(~later), data.take(later)
    names = list(FEATURE_NAMES)
    out = {}
    for label, dropped in [("all features", ())] + [(f"without {g}", cols) for g, cols in FEATURE_GROUPS.items()] \
            + [("online ctr (ctr_all_p10) alone", tuple(n for n in names if n != "ctr_all_p10"))]:
        keep = [j for j, n in enumerate(names) if n not in dropped]
        ranker = LearnedRanker(**settings, random_state=seed).fit(fit_part.X[:, keep], fit_part.y,
                                                                  [names[j] for j in keep])
        out[label] = {k: round(v, 4) for k, v in list_metrics(
            val_part, ranker.decision_function(val_part.X[:, keep]), seed).items()}
    return out
