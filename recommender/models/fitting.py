"""The training job: store -> text embeddings, ALS, bridge, co-reading, popularity,
neighbour lists -> a bundle (arrays + JSON) that the service loads.

``build_model`` does the work in memory (evaluation uses it on a time split without
publishing); ``train`` also writes the bundle as a staged version (and can promote it).
"""

from __future__ import annotations

import logging
import mmap
import os
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from recommender.domain import ANONYMOUS, EVENT_CODES, format_time
from recommender.models import plugins, provenance, versions
from recommender.models.bridge import TextToFactorBridge
from recommender.models.bundle import write_bundle
from recommender.models.cf import METHODS as CF_METHODS
from recommender.models.cf import CollaborativeFilter, FoldIn
from recommender.models.coread import CoReading
from recommender.models.interactions import BM25Weighting, confidence_matrix
from recommender.models.neighbours import clustered_neighbours, cosine_neighbours, story_labels
from recommender.models.exposure import ExposureStats
from recommender.models.popularity import CURVE_POSITIONS, DecayedCounters, position_curve
from recommender.models.readsets import heavy_read_sets
from recommender.models.served import ServingModel
from recommender.params import TrainParams
from recommender.store import Store, StoreError
from recommender.text.embedding import ArticleEmbedder

log = logging.getLogger(__name__)

DAY = 86_400.0
FUTURE_TOLERANCE = 300.0
POSITIVE = np.array([EVENT_CODES["click"], EVENT_CODES["read"], EVENT_CODES["share"]])
EXACT_NEIGHBOURS_MAX = 20_000  # window articles; larger windows use a clustered search


class TrainingError(RuntimeError):
    """Training cannot produce a usable model from this data; the message says why."""


@dataclass
class BuiltModel:
    """Everything a bundle holds, before it is written."""

    arrays: dict[str, np.ndarray]
    documents: dict[str, Any]
    manifest: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    # in memory only, never written to the bundle: "cf" (the fitted CollaborativeFilter, its trained
    # reader vectors) and "cf_reader_keys" (the store key of each of its rows), for checks and evaluation;
    # "read_sets" (with build_model(read_sets=True)) what train stores with Store.put_read_sets
    fitted: dict[str, Any] = field(default_factory=dict)

    def serving_model(self, version: str | None = None) -> ServingModel:
        return ServingModel(version, self.arrays, self.documents, self.manifest)


class _Stages:
    """Wall time and peak memory of each stage, for the summary and the benchmark."""

    def __init__(self, show_progress: bool):
        self.timings: dict[str, float] = {}
        self.show_progress = show_progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.show_progress:
            print(f"  {name} ...", flush=True, end="")
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)
        if self.show_progress:
            print(f" {self.timings[name]:.1f}s", flush=True)


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_model(store: Store, params: TrainParams | None = None, as_of: float | None = None,
                seed: int | None = 0, show_progress: bool = False, read_sets: bool = False) -> BuiltModel:
    """Fit every part on the data known at ``as_of`` (default: now).

    Events at or after ``as_of`` are ignored (a time split never leaks), and so are
    articles published after it; they reach the service as fresh articles. With ``read_sets``,
    heavy readers' read sets as of the load (``models.readsets``) go to ``fitted["read_sets"]``
    as ``(rows, since, until, hi)``, for :meth:`Store.put_read_sets`.
    """
    params = params or TrainParams()
    stages = _Stages(show_progress)
    now = time.time()
    as_of = now if as_of is None else float(as_of)
    report: dict[str, Any] = {}
    in_memory: dict[str, Any] = {}  # BuiltModel.fitted

    with stages.stage("load articles"):
        # the change log position before the articles are read: the service replays every article
        # change after it (replaying one already seen is harmless; missing one is not)
        change_pos, _ = store.log_position()
        stored = list(store.iter_articles())
        report["articles_skipped_future"] = len(stored)  # published after as_of: served as fresh articles
        stored = [s for s in stored if s.article.published_at <= as_of + FUTURE_TOLERANCE]
        report["articles_skipped_future"] -= len(stored)
        if not stored:
            raise TrainingError("the catalog has no articles published before the training time: "
                                "ingest articles first (newsrec ingest articles FILE)")
        stored.sort(key=lambda s: (s.article.published_at, s.article.article_id))
        articles = [s.article for s in stored]
        key_to_item = {s.key: i for i, s in enumerate(stored)}
        n_items = len(articles)
        published = np.array([a.published_at for a in articles], dtype=np.float64)
        categories = sorted({a.category for a in articles})
        regions = sorted({a.region for a in articles if a.region})
        cat_code = {c: i for i, c in enumerate(categories)}
        reg_code = {r: i for i, r in enumerate(regions)}
        report["articles"] = n_items
        report["articles_empty_body"] = sum(1 for a in articles if not a.body.strip())
        articles_read = provenance.article_digest(np.array([s.key for s in stored], dtype=np.int64),
                                                  np.array([s.updated_at for s in stored], dtype=np.float64))

    with stages.stage("load events"):
        start = as_of - params.history_days * DAY if params.history_days else None
        log_ = store.load_interactions(start=start, end=as_of)
        # store key -> item index through a lookup array (10M events: a dict per event takes seconds)
        lookup = np.full(max(key_to_item, default=0) + 2, -1, dtype=np.int64)
        lookup[np.fromiter(key_to_item, dtype=np.int64, count=n_items)] = np.arange(n_items)
        item = lookup[np.clip(log_.article_key, -1, lookup.size - 1)]
        anonymous = [k for k, v in log_.user_ids.items() if v == ANONYMOUS]
        keep = item >= 0
        if anonymous:
            keep &= ~np.isin(log_.user_key, anonymous)
        first = ~repeated_events(log_.user_key, log_.article_key, log_.event, log_.ts)
        report["events_loaded"] = len(log_)
        # what was read, by position and count (see recommender.models.provenance); not the change-log
        # position: a promotion or an API key written between two trainings is not data
        data_parts = {"event_seq": int(log_.event_seq), "events": len(log_), "articles": n_items,
                      "articles_digest": articles_read,
                      "events_ts": [float(log_.ts.min()), float(log_.ts.max())] if len(log_) else None}
        report["data_fingerprint"] = provenance.fingerprint({**data_parts, "params": params.to_dict()})
        report["code_version"] = provenance.code_version()
        report["events_skipped_unknown_article"] = int((item < 0).sum())
        report["events_skipped_duplicate"] = int((~first & (item >= 0)).sum())
        keep &= first
        # load_interactions stops at as_of; events stamped later than the wall clock are a client's bad clock
        report["events_skipped_future"] = len(store.load_interactions(start=max(as_of, now + FUTURE_TOLERANCE)))
        user_keys, user_index = np.unique(log_.user_key[keep], return_inverse=True)
        item, event, ts, dwell = item[keep], log_.event[keep], log_.ts[keep], log_.dwell[keep]
        position = log_.position[keep] if log_.position is not None else np.full(item.size, -1, dtype=np.int64)
        report["events_used"] = int(keep.sum())
        report["readers"] = int(user_keys.size)
        report["events_max_per_reader"] = int(np.bincount(user_index).max()) if user_index.size else 0

    if read_sets:
        with stages.stage("read sets"):
            rows = heavy_read_sets(store, log_.user_key, log_.article_key, log_.event, log_.user_ids,
                                   int(log_.event_seq), as_of)
            # ts in [start, as_of): the keys due by the largest time below as_of; later ones kept apart
            in_memory["read_sets"] = (rows, -1.0 if start is None else float(start),
                                      float(np.nextafter(as_of, -np.inf)), int(log_.event_seq))
            report["read_sets_readers"] = len(rows)

    with stages.stage("text features"):
        docs = [(a.title, a.body) for a in articles]  # the embedder strips page furniture itself
        fit_docs = docs[-params.text_fit_max_docs:] if params.text_fit_max_docs else docs
        embedder = ArticleEmbedder(n_components=params.n_components, title_weight=params.title_weight,
                                   max_features=params.max_features, random_state=seed)
        try:
            fitted = embedder.fit_transform(fit_docs)  # the fit articles are the newest: tokenized once
        except ValueError as exc:
            raise TrainingError(f"cannot fit text features: {exc}") from exc
        older = docs[: len(docs) - len(fit_docs)]
        text_vectors = np.ascontiguousarray(
            np.concatenate([_transform_forked(embedder, older), fitted]) if older else fitted, dtype=np.float32)

    positive = np.isin(event, POSITIVE)
    with stages.stage("collaborative filtering"):
        matrix = confidence_matrix(user_index, item, event, ts, dwell, (int(user_keys.size), n_items),
                                   params.weights, now=as_of)
        evidence = np.bincount(item[positive], minlength=n_items).astype(np.int32)
        weighting = None
        if params.cf_weighting == "bm25":  # fitted once and kept: the service weighs a reader's row the same way
            weighting = BM25Weighting().fit(matrix)
            matrix = weighting.transform(matrix)
        elif params.cf_weighting != "none":
            raise TrainingError(f"cf_weighting must be 'none' or 'bm25'; got {params.cf_weighting!r}")
        if params.cf_method not in CF_METHODS:
            raise TrainingError(f"cf_method must be one of {', '.join(CF_METHODS)}; got {params.cf_method!r}")
        has_cf = matrix.nnz >= params.min_cf_interactions and user_keys.size >= 2 and n_items >= 2
        if has_cf:
            cf = CollaborativeFilter(method=params.cf_method, factors=params.factors,
                                     regularization=params.regularization, alpha=params.alpha,
                                     iterations=params.iterations, random_state=seed).fit(matrix)
            learned = cf.item_factors_
            in_memory["cf"], in_memory["cf_reader_keys"] = cf, user_keys
        else:
            report["cf_skipped"] = f"only {matrix.nnz} positive reader-article pairs (< {params.min_cf_interactions})"
            learned = np.zeros((n_items, params.factors), dtype=np.float32)

    with stages.stage("bridge"):
        bridge = TextToFactorBridge(alpha=params.bridge_alpha, min_interactions=params.bridge_min_interactions,
                                    blend_k=params.bridge_blend_k).fit(text_vectors, learned, evidence)
        item_factors = bridge.blend(learned, bridge.predict(text_vectors), evidence) if has_cf else learned
        report["bridge_fitted_on"] = bridge.n_fitted_
        # a reader is folded in against the factors training solved the trained readers against (the
        # learned ones, and their Gram matrix), not the bridged blend that scores articles
        cf_fold_in = FoldIn.fit(params.cf_method, learned, params.alpha, params.regularization, weighting,
                                random_state=seed)

    with stages.stage("co-reading"):
        coread = CoReading(session_gap_minutes=params.coread_session_gap_minutes,
                           half_life_days=params.coread_half_life_days, k=params.neighbours)
        coread.fit(user_index[positive], item[positive], ts[positive], n_items, now=as_of)

    with stages.stage("popularity"):
        curve = fit_position_curve(event, position)
        counters = DecayedCounters.from_events(item, event, ts, n_items, as_of,
                                               params.ranking.trending_half_life_hours, position=position, curve=curve)
        report["position_curve_head"] = [round(float(v), 3) for v in curve[:10]]
        # the learned stage's windows: clicks on lists shown, so not the clicks imported from a history
        shown_log = ~log_.history[keep]
        exposure = ExposureStats.from_events(item[shown_log], event[shown_log], ts[shown_log], n_items, as_of)

    with stages.stage("neighbour lists"):
        window_start = window_start_index(published, as_of, params.ranking.window_days,
                                          params.ranking.min_window_articles)
        report["window_widened"] = bool(window_start < np.searchsorted(
            published, as_of - params.ranking.window_days * DAY, side="left"))
        window = np.arange(window_start, n_items)
        wt = text_vectors[window_start:]
        t_idx, t_sim, t_clusters = _neighbours(wt, params.neighbours, seed)
        t_idx = np.where(t_idx >= 0, t_idx + window_start, -1).astype(np.int32)
        norms = np.linalg.norm(item_factors, axis=1, keepdims=True)
        unit_factors = (item_factors / np.maximum(norms, 1e-12)).astype(np.float32)
        if has_cf:
            wf = unit_factors[window_start:]
            c_idx, c_sim, c_clusters = _neighbours(wf, params.neighbours, seed)
            c_idx = np.where(c_idx >= 0, c_idx + window_start, -1).astype(np.int32)
        else:
            c_idx = np.full((window.size, params.neighbours), -1, dtype=np.int32)
            c_sim = np.zeros((window.size, params.neighbours), dtype=np.float32)
            c_clusters = None
        r_idx, r_sim = coread.neighbours_[window_start:], coread.scores_[window_start:]
        story = np.arange(n_items, dtype=np.int32)
        local = story_labels(np.where(t_idx >= 0, t_idx - window_start, -1), t_sim, params.story_similarity)
        story[window_start:] = local + n_items
        report["window_articles"] = int(window.size)
        report["stories_in_window"] = int(np.unique(local).size)

    plugin_arrays: dict[str, np.ndarray] = {}
    plugin_document: list = []
    if params.plugins:  # bring-your-own models (recommender.models.plugins), on the same data as ours
        with stages.stage("plugins"):
            plugin_arrays, plugin_document, report["plugins"] = _fit_plugins(
                params, articles, text_vectors, log_.user_ids, user_keys, user_index, item, event, ts, dwell, as_of,
                window_start, seed)

    arrays: dict[str, np.ndarray] = {
        "item_ids": np.array([a.article_id for a in articles], dtype=np.str_),
        "published_at": published,
        "category_code": np.array([cat_code[a.category] for a in articles], dtype=np.int16),
        "region_code": np.array([reg_code[a.region] if a.region else -1 for a in articles], dtype=np.int16),
        "text_vectors": text_vectors,
        "item_factors": np.ascontiguousarray(item_factors, dtype=np.float32),
        "evidence": evidence,
        "story": story,
        "bridge_coef": bridge.coef_,
        "bridge_intercept": bridge.intercept_,
        "text_nb_idx": t_idx, "text_nb_sim": t_sim,
        "cf_nb_idx": c_idx, "cf_nb_sim": c_sim,
        "coread_nb_idx": np.ascontiguousarray(r_idx), "coread_nb_sim": np.ascontiguousarray(r_sim),
        "pop_clicks": counters.clicks, "pop_impressions": counters.impressions,
        "pop_engagement": counters.engagement,
        "pop_expected": counters.expected, "position_curve": curve,
    }
    fold_arrays, fold_document = cf_fold_in.to_bundle()
    arrays.update(fold_arrays)
    arrays.update({f"text_{k}": v for k, v in embedder.to_arrays().items()})
    arrays.update(exposure.to_arrays())
    arrays.update(plugin_arrays)
    for name, clusters in (("text", t_clusters), ("cf", c_clusters)):
        if clusters is not None:  # window clusters of a large window (see recommender.ranking.WindowSummary)
            arrays[f"cluster_{name}_centroids"] = np.ascontiguousarray(clusters[0], dtype=np.float32)
            arrays[f"cluster_{name}_labels"] = clusters[1].astype(np.int32)
    documents = {
        "catalog": {"titles": [a.title for a in articles], "urls": [a.url for a in articles],
                    "categories": categories, "regions": regions},
        "embedder_params": _jsonable(embedder.get_params()),
        "params": {"window_start": window_start, "as_of": as_of, "has_cf": bool(has_cf),
                   "alpha": params.alpha, "weights": params.weights.to_dict(),
                   "ranking": params.to_dict()["ranking"], "story_similarity": params.story_similarity,
                   "cf_fold_in": fold_document},
        "report": report,
    }
    if plugin_document:
        documents[plugins.DOCUMENT] = _jsonable(plugin_document)
    report["timings_seconds"] = stages.timings
    report["peak_memory_mb"] = round(peak_memory_mb(), 1)
    manifest = {
        "data_window": {"start": format_time(start) if start else None, "end": format_time(as_of)},
        "trained_at_wall": now,
        # where the service resumes following the store (see Engine._catch_up): article changes
        # after change_pos, events after event_seq (and those up to it stamped at or after as_of)
        "change_pos": int(change_pos),
        "event_seq": int(log_.event_seq),
        "parameters": params.to_dict(),
        "data_fingerprint": report["data_fingerprint"],
        "data_read": data_parts,
        # "code_version" (the package version) is the bundle format's own key: this says which commit
        "code": report["code_version"],
        "counts": {k: report[k] for k in ("articles", "readers", "events_used", "window_articles")},
        "seed": seed,
    }
    return BuiltModel(arrays, documents, manifest, report, in_memory)


def _fit_plugins(params: TrainParams, articles: list, text_vectors: np.ndarray, user_ids: dict, user_keys: np.ndarray,
                 user_index: np.ndarray, item: np.ndarray, event: np.ndarray, ts: np.ndarray, dwell: np.ndarray,
                 as_of: float, window_start: int, seed: int | None):
    """The configured plugins fitted on the training events and catalog (what :func:`build_model`
    saw); their window neighbour lists by the same search as the text ones."""
    interactions = plugins.Interactions(
        reader=user_index.astype(np.int64), article=item.astype(np.int64), event=event.astype(np.int8), ts=ts,
        weight=params.weights.event_weight(event, dwell) * params.weights.decay(ts, as_of),
        reader_ids=np.array([user_ids.get(int(k), "") for k in user_keys], dtype=np.str_))
    items = plugins.Items(len(articles), {
        "article_id": lambda: np.array([a.article_id for a in articles], dtype=np.str_),
        "category": lambda: np.array([a.category for a in articles], dtype=np.str_),
        "region": lambda: np.array([a.region or "" for a in articles], dtype=np.str_),
        "title": lambda: np.array([a.title for a in articles], dtype=np.str_),
        "published_at": lambda: np.array([a.published_at for a in articles], dtype=np.float64),
        "text": text_vectors})

    def neighbours(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx, sim, _ = _neighbours(unit[window_start:], params.neighbours, seed)
        return np.where(idx >= 0, idx + window_start, -1).astype(np.int32), sim.astype(np.float32)

    try:
        return plugins.fit_plugins(params.plugins, interactions, items, neighbours)
    except plugins.PluginError as exc:
        raise TrainingError(str(exc)) from exc


def fit_position_curve(event: np.ndarray, position: np.ndarray) -> np.ndarray:
    """The position curve (:func:`recommender.models.popularity.position_curve`) of a log's
    impressions and clicks that carry a position (shape (n,) each; -1: none)."""
    known = (position >= 0) & (position < CURVE_POSITIONS)
    shown = np.bincount(position[known & (event == EVENT_CODES["impression"])], minlength=CURVE_POSITIONS)
    clicks = np.bincount(position[known & (event == EVENT_CODES["click"])], minlength=CURVE_POSITIONS)
    return position_curve(shown, clicks)


def window_start_index(published: np.ndarray, as_of: float, window_days: float, min_articles: int) -> int:
    """First article of the serving window in ``published`` (ascending): those of the last
    ``window_days`` before ``as_of``, or the newest ``min_articles`` if that holds fewer.

    An archive, or a sample generated weeks ago, has nothing in the last days: served as it
    is, every list would be empty.
    """
    start = int(np.searchsorted(published, as_of - window_days * DAY, side="left"))
    return min(start, max(published.shape[0] - int(min_articles), 0))


def _transform_forked(embedder: ArticleEmbedder, docs: list, n_jobs: int | None = None,
                      min_docs: int = 5_000) -> np.ndarray:
    """``embedder.transform(docs)`` on every core: tokenizing is pure Python, one core per process.

    Forked children transform their share into one shared anonymous memory map and exit; nothing
    is pickled. Where fork is unavailable, for small inputs, or if a child fails, the parent
    transforms that share itself.
    """
    n_jobs = min(n_jobs or os.cpu_count() or 1, max(1, len(docs) // min_docs))
    if n_jobs <= 1 or not hasattr(os, "fork"):
        return embedder.transform(docs)
    dims = int(embedder.n_components_)
    bounds = np.linspace(0, len(docs), n_jobs + 1).astype(int)
    shared = mmap.mmap(-1, max(1, len(docs) * dims * 4))
    out = np.frombuffer(shared, dtype=np.float32, count=len(docs) * dims).reshape(len(docs), dims)
    children = {}
    for j in range(1, n_jobs):
        pid = os.fork()
        if pid == 0:  # child: transform its share, then leave without running the parent's cleanup
            status = 1
            try:
                out[bounds[j]:bounds[j + 1]] = embedder.transform(docs[bounds[j]:bounds[j + 1]])
                status = 0
            finally:
                os._exit(status)
        children[pid] = j
    out[bounds[0]:bounds[1]] = embedder.transform(docs[bounds[0]:bounds[1]])
    for pid, j in children.items():
        _, status = os.waitpid(pid, 0)
        if status != 0:
            log.warning("text transform worker %d failed (status %d); redoing its share here", pid, status)
            out[bounds[j]:bounds[j + 1]] = embedder.transform(docs[bounds[j]:bounds[j + 1]])
    result = out.copy()
    del out
    shared.close()
    return result


def _neighbours(vectors: np.ndarray, k: int, seed: int | None):
    """Exact neighbour lists up to ``EXACT_NEIGHBOURS_MAX`` window articles, clustered search above.

    The exact self-join grows with the square of the window (about half an hour at 100k articles
    on two cores); the clustered search finds ~96-99 % of the same neighbours in seconds
    (``benchmarks/training.py`` reports the recall). Returns (indices, scores, clusters), the
    clusters (centroids, label per row) only from the clustered search, else None; the service
    picks feed candidates with them.
    """
    n = vectors.shape[0]
    if n <= EXACT_NEIGHBOURS_MAX:
        return (*cosine_neighbours(vectors, vectors, k, query_ids=np.arange(n)), None)
    return clustered_neighbours(vectors, k, seed=seed, return_clusters=True)


def repeated_events(user: np.ndarray, article: np.ndarray, event: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """True for every event but the first of each group with the same reader, article, kind and
    time (a resend under a new event_id), shape (n,).

    One sort of a 64-bit hash (10M events: ~2 s); equal hashes are compared field by field.
    """
    with np.errstate(over="ignore"):
        h = ((user.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
             ^ (article.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
             ^ (event.astype(np.uint64) * np.uint64(0x165667B19E3779F9))
             ^ (np.ascontiguousarray(ts, dtype=np.float64).view(np.uint64) * np.uint64(0x27D4EB2F165667C5)))
    order = np.argsort(h, kind="stable")
    pair = np.flatnonzero(h[order[1:]] == h[order[:-1]])
    i, j = order[pair], order[pair + 1]
    same = (user[i] == user[j]) & (article[i] == article[j]) & (event[i] == event[j]) & (ts[i] == ts[j])
    repeated = np.zeros(h.size, dtype=bool)
    repeated[j[same]] = True
    return repeated


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def attach_learned(built: BuiltModel, ranker, report: dict | None = None) -> BuiltModel:
    """Put a fitted :class:`~recommender.models.learned.LearnedRanker` into the bundle (plain
    ``learned_*`` arrays and the ``learned`` document): the service then ranks feeds with it."""
    arrays, document = ranker.to_bundle()
    built.arrays.update(arrays)
    built.documents["learned"] = _jsonable({**document, "report": report or {}})
    built.report["learned_ranker"] = {"kind": ranker.kind, "features": len(ranker.feature_names_)}
    return built


def _put_read_sets(store: Store, built: BuiltModel) -> None:
    """Store the heavy readers' read sets of this training (any version served uses them: they
    are the store's own facts); a failure leaves the previous ones, which stay correct, and is logged."""
    rows, since, until, hi = built.fitted["read_sets"]
    start = time.perf_counter()
    try:
        kept = store.put_read_sets(rows, since, until, hi)
    except StoreError as exc:
        log.warning("heavy readers' read sets not stored (feeds read them in full meanwhile): %s", exc)
        return
    built.report["read_sets_stored"] = kept
    built.report["timings_seconds"]["read sets write"] = round(time.perf_counter() - start, 3)


def train(store: Store, models_dir: str | Path, params: TrainParams | None = None, as_of: float | None = None,
          seed: int | None = 0, keep: int = 5, show_progress: bool = False, promote: bool = False,
          learned=None, learned_report: dict | None = None,
          protect: Callable[[], Iterable[str]] = tuple) -> tuple[str, BuiltModel]:
    """Build the model, check it loads, then write it atomically as a staged version; returns
    (version, model).

    With ``promote``, the version is then made live, if the live version is still the one at the
    start of training (a rollback meanwhile wins: :class:`~recommender.models.versions.PromotionConflict`
    is raised and the version stays staged). Pruning keeps ``keep`` versions and never removes
    the live one nor those ``protect()`` names (e.g. the variants of running experiments), asked
    right before the write, as the live version is: what changed during training counts.
    """
    live_before = versions.live_version(store, models_dir)
    built = build_model(store, params, as_of=as_of, seed=seed, show_progress=show_progress, read_sets=True)
    if learned is not None:  # a learned ranking stage (see recommender.evaluation.learning)
        attach_learned(built, learned, learned_report)
    broken = sorted(name for name, a in built.arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all())
    if broken:
        raise TrainingError(f"refusing to publish a model with NaN or infinite values in {', '.join(broken)}; "
                            "check the events (times, dwell) and the training parameters")
    built.serving_model()  # refuse to publish what the service could not load
    start = time.perf_counter()
    live_now = store.live_model()  # (a rollback during training too)
    # and what a rollback goes back to: staged trainings pruning it left an operator no way back
    kept = {*protect(), *(v for v in (live_before, live_now, versions.previous_version(store, models_dir, live_now))
                          if v is not None)}
    version = write_bundle(models_dir, built.arrays, built.documents, manifest_extra=built.manifest, keep=keep,
                           publish=False, protect=kept)
    built.report["timings_seconds"]["bundle write"] = round(time.perf_counter() - start, 3)
    _put_read_sets(store, built)
    if promote:
        try:
            versions.promote(store, models_dir, version, expected=live_before, verify=False)
        except versions.PromotionConflict as exc:
            exc.built = built  # staged all the same: the caller reports it as it would a promoted one
            raise
    return version, built
