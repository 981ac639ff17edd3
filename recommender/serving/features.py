"""Features of the learned ranking stage, computed from the live state when a list is built.

One function, :func:`feed_features`, turns the scored candidates of a feed (or of a logged
impression, offline) into a feature matrix: the blend's own parts, online clicks and exposures
in several decayed windows, click-through with several priors, clicks against what the
exposure predicts, time since first exposure and first click, the reader's side (text
similarity to their newest clicked articles and to what they were shown and did not click,
max and mean; how often they skipped the candidate itself; their own click-through), the
ranks of these inside the candidate list, the list's size and the reader's history length.
Everything is as of the list: the reader's skipped articles come from their last impressions
(the newest 50 distinct), read by the engine for every list. The engine calls it for
feeds and for :meth:`~recommender.serving.engine.Engine.score`, which the offline replay
uses, so training sees exactly the features serving computes. :func:`learned_stage` re-scores
the best candidates with the bundle's :class:`~recommender.models.learned.LearnedRanker`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.models.exposure import NEVER, ExposureStats
from recommender.models.neighbours import top_k
from recommender.models.popularity import DecayedCounters

from .catalog import Snapshot
from .ranking import HOUR, Candidates, ReaderProfile

BLEND_PARTS = ("fresh", "trending", "ctr", "follow_category", "follow_region", "affinity", "content", "session",
               "cf")
WINDOW_NAMES = ("1h", "6h", "24h", "all")  # ExposureStats.half_lives_hours (1, 6, 24, 10,000)
CTR_PRIORS = (1.0, 10.0, 100.0)  # pseudo-impressions at the site's click-through
MAX_HOURS = 1000.0
READER_SIMILARITY = ("clicked_sim_max", "clicked_sim_mean", "skipped_sim_max", "skipped_sim_mean")
MAX_CLICKED = 50  # the reader's newest clicked articles compared with each candidate (bounded: a feed does it)
READER_CTR_PRIOR = 10.0  # pseudo-impressions at the site's click-through for the reader's own click-through
RANKED = ("blend", "ctr_6h_p10", "ctr_all_p10", "clicks_6h", "impressions_6h", "excess_1h", "excess_6h",
          "excess_24h", "excess_all", "since_first_impression", "since_first_click", "content", "affinity",
          "clicked_sim_max", "skipped_sim_max")
PREFIX = "lf_"  # feature columns in Candidates.features
LEARNED_POOL = 100  # feed candidates the learned stage re-scores (best by the blend; a page is 20)


def feature_names() -> list[str]:
    """Column names of :func:`feed_features`, in order."""
    names = ["blend", *BLEND_PARTS]
    for w in WINDOW_NAMES:
        names += [f"clicks_{w}", f"impressions_{w}", f"excess_{w}"]
    names += [f"ctr_{w}_p{int(a)}" for w in ("6h", "all") for a in CTR_PRIORS] + ["ctr_1h_p10", "ctr_24h_p10"]
    names += ["since_first_impression", "since_first_click", "age"]
    names += [*READER_SIMILARITY, "skipped_count", "reader_ctr", "reader_impressions"]
    names += [f"rank_{name}" for name in RANKED]
    names += ["list_size", "history_length"]
    return names


FEATURE_NAMES = tuple(feature_names())


def _hours_since(t: np.ndarray, now: float) -> np.ndarray:
    """log(1 + hours since ``t``), capped; -1 where ``t`` is NEVER (never happened)."""
    hours = np.clip((now - t) / HOUR, 0.0, MAX_HOURS)
    return np.where(t >= NEVER, -1.0, np.log1p(hours))


def _percentiles(x: np.ndarray) -> np.ndarray:
    """Rank of each value in its column in [0, 1] (1 = largest), x shape (n, k); ties share their
    average rank, a column holding NaN is all NaN (as scipy's ``rankdata``, which costs ~0.12 ms a
    call: one sort of all columns here instead of a call per column)."""
    n = x.shape[0]
    if n < 2:
        return np.ones_like(x, dtype=np.float64)
    order = np.argsort(x, axis=0, kind="stable")
    ordered = np.take_along_axis(x, order, axis=0)
    rows = np.broadcast_to(np.arange(n)[:, None], x.shape)
    differs = ordered[1:] != ordered[:-1]  # a tie group ends here and the next one starts
    first = np.maximum.accumulate(np.where(np.vstack([np.ones((1, x.shape[1]), bool), differs]), rows, 0), axis=0)
    last = np.minimum.accumulate(np.where(np.vstack([differs, np.ones((1, x.shape[1]), bool)]), rows, n - 1)[::-1],
                                 axis=0)[::-1]
    out = np.empty(x.shape, dtype=np.float64)
    np.put_along_axis(out, order, (first + last) / 2.0 / (n - 1.0), axis=0)
    out[:, np.isnan(x).any(axis=0)] = np.nan
    return out


def _similarity(text: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max and mean cosine of each row of ``text`` (n, d) with the rows of ``others`` (k, d) that
    have a text vector; zeros when none has (articles without text say nothing)."""
    n = text.shape[0]
    norms = np.linalg.norm(others, axis=1) if others.size else np.zeros(0)
    others = others[norms > 1e-9] / norms[norms > 1e-9, None] if others.size else others
    if others.shape[0] == 0 or n == 0:
        return np.zeros(n), np.zeros(n)
    t_norm = np.linalg.norm(text, axis=1)
    sims = (text @ others.T) / np.where(t_norm > 1e-9, t_norm, 1.0)[:, None]
    return sims.max(axis=1).astype(np.float64), sims.mean(axis=1).astype(np.float64)


def recent_unique(items: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` newest distinct entries of ``items`` (oldest first in, newest first out)."""
    newest = np.asarray(items, dtype=np.int64)[::-1]
    _, first = np.unique(newest, return_index=True)
    return newest[np.sort(first)][:k]


def _times_shown(profile: ReaderProfile, index: np.ndarray) -> np.ndarray:
    """How often the reader was shown each candidate without clicking it (their last impressions)."""
    if profile.shown.size == 0:
        return np.zeros(index.size)
    order = np.argsort(profile.shown)
    shown, counts = profile.shown[order], profile.shown_counts[order]
    at = np.clip(np.searchsorted(shown, index), 0, shown.size - 1)
    return np.where(shown[at] == index, counts[at], 0).astype(np.float64)


@dataclass(frozen=True)
class ExposureRows:
    """What :func:`feed_features` reads of the live exposure counters for some candidates, copied
    (the counters move with every poll): clicks and impressions per window, shape (windows, n),
    first impression and first click times, shape (n,), and the site's click-through per window."""

    clicks: np.ndarray
    impressions: np.ndarray
    first_impression: np.ndarray
    first_click: np.ndarray
    site: tuple[float, ...]


def exposure_rows(counters: DecayedCounters, index: np.ndarray) -> ExposureRows:
    """The exposure counters' rows of ``index`` as they are now (zeros and NEVER without any)."""
    n = index.size
    exposure: ExposureStats | None = getattr(counters, "exposure", None)
    if exposure is None or exposure.n_items == 0:
        zeros = np.zeros((len(WINDOW_NAMES), n))
        return ExposureRows(zeros, zeros, np.full(n, NEVER), np.full(n, NEVER), (0.05,) * len(WINDOW_NAMES))
    ok = index < exposure.n_items
    safe = np.where(ok, index, 0)
    return ExposureRows(np.where(ok, exposure.clicks[:, safe], 0.0), np.where(ok, exposure.impressions[:, safe], 0.0),
                        np.where(ok, exposure.first_impression[safe], NEVER),
                        np.where(ok, exposure.first_click[safe], NEVER),
                        tuple(exposure.global_ctr(j) for j in range(len(WINDOW_NAMES))))


def feed_features(snap: Snapshot, profile: ReaderProfile, counters: DecayedCounters | None, now: float,
                  cand: Candidates, exposure: ExposureRows | None = None) -> np.ndarray:
    """Feature matrix of scored feed candidates, shape (n, len(FEATURE_NAMES)), float64.

    ``cand`` comes from :func:`~recommender.serving.ranking.score_feed` (its features and
    blend score). ``counters`` may carry :class:`~recommender.models.exposure.ExposureStats`
    (``counters.exposure``); without them the exposure columns are zero. ``exposure``: those
    rows, taken before (:func:`exposure_rows`; ``counters`` is then not read).
    """
    index = cand.index
    n = index.size
    cols: dict[str, np.ndarray] = {"blend": np.asarray(cand.score, dtype=np.float64)}
    for name in BLEND_PARTS:
        cols[name] = np.asarray(cand.features.get(name, np.zeros(n)), dtype=np.float64)
    rows = exposure if exposure is not None else exposure_rows(counters, index)
    clicks, shown, site = rows.clicks, rows.impressions, rows.site
    first_impression, first_click = rows.first_impression, rows.first_click
    for j, w in enumerate(WINDOW_NAMES):
        expected = shown[j] * site[j]
        cols[f"clicks_{w}"] = np.log1p(clicks[j])
        cols[f"impressions_{w}"] = np.log1p(shown[j])
        cols[f"excess_{w}"] = (clicks[j] - expected) / np.sqrt(expected + 1.0)

    def ctr(j: int, prior: float) -> np.ndarray:
        p = max(site[j], 1e-6)
        return (clicks[j] + prior * p) / (np.maximum(shown[j], clicks[j]) + prior) / p

    for a in CTR_PRIORS:
        cols[f"ctr_6h_p{int(a)}"] = ctr(1, a)
        cols[f"ctr_all_p{int(a)}"] = ctr(3, a)
    cols["ctr_1h_p10"], cols["ctr_24h_p10"] = ctr(0, 10.0), ctr(2, 10.0)
    cols["since_first_impression"] = _hours_since(first_impression, now)
    cols["since_first_click"] = _hours_since(first_click, now)
    cols["age"] = _hours_since(snap.published_at(index), now)
    # the reader: what they clicked and what they were shown and skipped, as of this list
    text = snap.text(index)
    cols["clicked_sim_max"], cols["clicked_sim_mean"] = _similarity(
        text, snap.text(recent_unique(profile.positives, MAX_CLICKED)))
    cols["skipped_sim_max"], cols["skipped_sim_mean"] = _similarity(text, snap.text(profile.skipped))
    cols["skipped_count"] = np.log1p(_times_shown(profile, index))
    site_all = max(site[-1], 1e-6)
    reader = (profile.impressions_clicked + READER_CTR_PRIOR * site_all) / (
        profile.impressions_seen + READER_CTR_PRIOR) / site_all
    cols["reader_ctr"] = np.full(n, reader)
    cols["reader_impressions"] = np.full(n, np.log1p(profile.impressions_seen))
    ranked = [cols[name] for name in RANKED]
    since = RANKED.index("since_first_impression")  # newest exposure ranks highest; never shown counts as newest
    ranked[since] = -np.where(ranked[since] < 0, 0.0, ranked[since])
    for name, column in zip(RANKED, _percentiles(np.column_stack(ranked)).T):
        cols[f"rank_{name}"] = column
    cols["list_size"] = np.full(n, np.log1p(n))
    cols["history_length"] = np.full(n, np.log1p(profile.positives.size))
    return np.column_stack([cols[name] for name in FEATURE_NAMES]) if n else np.zeros((0, len(FEATURE_NAMES)))


def learned_stage(snap: Snapshot, profile: ReaderProfile, counters: DecayedCounters, now: float,
                  cand: Candidates, pool: int = LEARNED_POOL, keep_features: bool = False) -> Candidates:
    """Re-score the best ``pool`` candidates (by the blend) with the model's learned ranker.

    Without a ranker in the model the candidates come back as they are (the blend decides),
    unless ``keep_features``: then the feature columns are added as ``lf_<name>`` (the offline
    replay records them to train a ranker; the feature log stores a served feed's), for the same
    ``pool`` best by the blend that a ranker would score (NaN beyond it). Candidates beyond the pool keep their blend order
    below the re-scored ones.
    """
    ranker = getattr(snap.model, "learned", None)
    if (ranker is None and not keep_features) or cand.index.size == 0:
        return cand
    head = _pool(cand, pool)
    part = cand.take(head)
    X = feed_features(snap, profile, counters, now, part)
    features = dict(cand.features)
    if keep_features:  # columns of one matrix: one allocation, not one per feature
        kept = np.full((cand.index.size, len(FEATURE_NAMES)), np.nan)
        kept[head] = X
        for j, name in enumerate(FEATURE_NAMES):
            features[PREFIX + name] = kept[:, j]
    if ranker is None:
        return Candidates(cand.index, features, cand.score)
    learned = ranker.decision_function(align(X, ranker))
    score = np.asarray(cand.score, dtype=np.float64).copy()
    features["blend"] = score.copy()
    rest = ~head
    if rest.any():  # below every re-scored one, in blend order
        tail = score[rest]
        span = float(tail.max() - tail.min()) + 1.0
        score[rest] = float(learned.min()) - 2.0 + (tail - tail.min()) / span
    score[head] = learned
    features["learned"] = np.where(head, score, np.nan)
    return Candidates(cand.index, features, score)


def align(X: np.ndarray, ranker) -> np.ndarray:
    """``X`` (columns :data:`FEATURE_NAMES`) in the ranker's column order.

    A column the ranker learned that serving does not compute (a training-only feature such
    as the logged position) takes the constant the ranker names in ``serving_values_``.
    """
    names = ranker.feature_names_
    if tuple(names) == FEATURE_NAMES:
        return X
    where = {name: j for j, name in enumerate(FEATURE_NAMES)}
    constants = getattr(ranker, "serving_values_", {}) or {}
    out = np.empty((X.shape[0], len(names)))
    for k, name in enumerate(names):
        if name in where:
            out[:, k] = X[:, where[name]]
        elif name in constants:
            out[:, k] = constants[name]
        else:
            raise ValueError(f"the learned ranker needs feature {name!r}, which this version does not compute; "
                             "retrain the ranker")
    return out


def _pool(cand: Candidates, pool: int) -> np.ndarray:
    """Which candidates the learned stage scores (bool, shape (n,)): the ``pool`` best by the blend."""
    if cand.index.size <= pool:  # (the offline replay passes its whole list as the pool)
        return np.ones(cand.index.size, dtype=bool)
    head = np.zeros(cand.index.size, dtype=bool)
    head[top_k(cand.score, pool)] = True
    return head


@dataclass(frozen=True)
class FeatureJob:
    """A feed's learned-stage features to be logged, computed later (off the request path) from
    what they are computed from as of the list: its snapshot, the reader's profile, the scored
    pool and the pool's rows of the exposure counters, copied (:func:`exposure_rows`).

    For a bundle without a ranker (nothing on the list depends on the features), so a sampled
    feed costs its reader ~0.06-0.09 ms instead of ~0.5 (300 feeds at 10M events). Same matrix as :func:`learned_stage`
    with ``keep_features`` computed at once, unless an article of the pool is edited in between
    (its text and time are read from the snapshot, which shares them with the live catalog).
    """

    snap: Snapshot
    profile: ReaderProfile
    now: float
    pool: Candidates
    exposure: ExposureRows

    @classmethod
    def of(cls, snap: Snapshot, profile: ReaderProfile, counters: DecayedCounters, now: float, cand: Candidates,
           pool: int = LEARNED_POOL) -> "FeatureJob":
        head = _pool(cand, pool)  # of the candidates' columns, only those the features read
        part = Candidates(cand.index[head], {name: cand.features[name][head] for name in BLEND_PARTS
                                             if name in cand.features}, cand.score[head])
        return cls(snap, profile, now, part, exposure_rows(counters, part.index))

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Feature rows of the catalog indices ``index``, shape (len(index), len(FEATURE_NAMES));
        NaN for one outside the pool (a pin)."""
        X = feed_features(self.snap, self.profile, None, self.now, self.pool, exposure=self.exposure)
        out = np.full((index.size, len(FEATURE_NAMES)), np.nan)
        row = rows_of(self.pool.index, index)
        out[row >= 0] = X[row[row >= 0]]
        return out


def rows_of(candidates: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Where each catalog index of ``index`` is in ``candidates`` (distinct indices, any order):
    its row, or -1 when it is not there (a pinned article the learned stage did not score)."""
    if candidates.size == 0:
        return np.full(index.size, -1, dtype=np.int64)
    order = np.argsort(candidates, kind="stable")
    at = order[np.minimum(np.searchsorted(candidates[order], index), order.size - 1)]
    return np.where(candidates[at] == index, at, -1)
