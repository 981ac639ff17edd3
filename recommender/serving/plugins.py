"""Bring-your-own models (:mod:`recommender.models.plugins`) as list-building stages.

:class:`PluginCandidates` adds a candidate source's articles to a feed's candidates and an
embedder's neighbour lists to a related list's; :class:`PluginScoring` adds each scorer's and
embedder's weighted score (feature ``plugin_<name>``, weighted ``w_plugin_<name>``, shown in the
console's score parts). :func:`apply_plugin_scores` is the same scoring for
``Engine.score`` (the offline replay), so evaluation ranks as serving does. A plugin that raises
or returns something malformed is counted and skipped for that list; the list is still served.
"""

from __future__ import annotations

import numpy as np

from recommender import arrays
from recommender.models.plugins import Items, LoadedPlugin, Reader, unit_rows

from .catalog import Snapshot
from .live import LiveState
from .ranking import Candidates, ReaderProfile, listable

FRESH_CACHE_MAX = 4096  # embeddings of fresh articles an embedder plugin keeps per worker


def article_ids(snap: Snapshot, index: np.ndarray) -> np.ndarray:
    """External ids of catalog indices, shape (n,) str."""
    index = np.asarray(index, dtype=np.int64)
    base = index < snap.n_base
    out = np.empty(index.size, dtype=object)
    if base.any():
        out[base] = snap.model.item_ids.ids[index[base]]
    for k in np.flatnonzero(~base):
        out[k] = snap.meta(int(index[k])).article_id
    return out.astype(np.str_) if index.size else np.zeros(0, dtype=np.str_)


def items_of(state: LiveState, snap: Snapshot, index: np.ndarray, published_at: np.ndarray | None = None) -> Items:
    """The articles at catalog ``index`` as a plugin sees them (columns computed on first use;
    ``published_at`` when the caller has it already)."""
    index = np.asarray(index, dtype=np.int64)

    def names(labels, codes: np.ndarray) -> np.ndarray:
        table = np.array(list(labels.names) + [""], dtype=np.str_)  # code -1 (no region) -> ""
        codes = codes.astype(np.int64)
        return table[np.where((codes >= 0) & (codes < len(labels.names)), codes, len(labels.names))]

    return Items(index.size, {
        "article_id": lambda: article_ids(snap, index),
        "category": lambda: names(state.categories, snap.category(index)),
        "region": lambda: names(state.regions, snap.region(index)),
        "title": lambda: np.array([snap.title(int(i)) for i in index], dtype=np.str_),
        "published_at": published_at if published_at is not None else (lambda: snap.published_at(index)),
        "text": lambda: snap.text(index),
    })


def reader_of(state: LiveState, snap: Snapshot, profile: ReaderProfile | None, user_id: str | None, now: float,
              anchor: int = -1) -> Reader:
    """What a plugin knows about whom a list is for (a related list: the anchor, no history)."""
    if profile is None:
        return Reader(user_id, anchor=article_ids(snap, np.array([anchor]))[0] if anchor >= 0 else None, now=now)
    cats, regs = state.categories, state.regions
    return Reader(user_id, history=article_ids(snap, profile.positives),
                  followed_categories=tuple(n for n in (cats.name(int(c)) for c in profile.followed_categories) if n),
                  followed_regions=tuple(n for n in (regs.name(int(r)) for r in profile.followed_regions) if n),
                  now=now)


def _reader(b) -> Reader:
    """The build's reader view, made once per list."""
    if b.plugin_reader is None:
        b.plugin_reader = reader_of(b.state, b.snap, b.profile, b.user_id, b.now, b.anchor)
    return b.plugin_reader


def embeddings(plugin: LoadedPlugin, state: LiveState, snap: Snapshot, index: np.ndarray) -> np.ndarray:
    """Unit vectors of catalog ``index`` by an embedder plugin, (n, d): the bundle's for its
    articles, ``embed`` for fresh ones (kept per worker, up to ``FRESH_CACHE_MAX``)."""
    index = np.asarray(index, dtype=np.int64)
    vectors = plugin.vectors
    out = np.zeros((index.size, vectors.shape[1]), dtype=np.float32)
    base = index < snap.n_base
    out[base] = vectors[index[base]]
    fresh = index[~base]
    if fresh.size:
        cache = plugin.fresh_vectors
        found = {i: cache.get(i) for i in fresh.tolist()}  # read once: another thread may clear the cache
        missing = np.array([i for i, v in found.items() if v is None], dtype=np.int64)
        if missing.size:
            new = unit_rows(plugin.model.embed(items_of(state, snap, missing)), missing.size,
                            f"plugin {plugin.name}")
            if new.shape[1] != vectors.shape[1]:
                raise ValueError(f"embed() returned {new.shape[1]} dimensions for fresh articles, "
                                 f"{vectors.shape[1]} at training")
            if len(cache) + missing.size > FRESH_CACHE_MAX:
                cache.clear()
            found.update(zip(missing.tolist(), new))
            cache.update(zip(missing.tolist(), new))
        out[~base] = np.stack([found[i] for i in fresh.tolist()])
    return out


def _plugin_scores(plugin: LoadedPlugin, state: LiveState, snap: Snapshot, index: np.ndarray, reader: Reader,
                   profile: ReaderProfile | None, anchor: int) -> np.ndarray | None:
    """One plugin's scores of ``index``, shape (n,) float64; None when it has nothing to say
    (an embedder and a reader without history). Raises on a malformed answer."""
    if plugin.spec.role == "scorer":
        scores = np.asarray(plugin.model.score(reader, items_of(state, snap, index)), dtype=np.float64)
        if scores.shape != (index.size,):
            raise ValueError(f"score() must return shape ({index.size},); got {scores.shape}")
    else:
        if anchor >= 0:
            query = embeddings(plugin, state, snap, np.array([anchor]))[0]
        elif profile is not None and profile.positives.size:
            query = embeddings(plugin, state, snap, profile.positives).mean(axis=0)
            norm = float(np.linalg.norm(query))
            if norm < 1e-9:
                return None
            query = query / norm
        else:
            return None
        scores = (embeddings(plugin, state, snap, index) @ query).astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("returned NaN or infinite scores")
    return scores


def apply_plugin_scores(state: LiveState, snap: Snapshot, cand: Candidates, kind: str, reader: Reader,
                        profile: ReaderProfile | None = None, anchor: int = -1) -> Candidates:
    """``cand`` with every scorer's and embedder's weighted score added (for ``kind`` lists)."""
    plugins = [p for p in snap.model.plugins if p.spec.role != "candidates" and kind in p.spec.lists]
    if not plugins or cand.index.size == 0:
        return cand
    features = dict(cand.features)
    score = np.array(cand.score, dtype=np.float64)
    for plugin in plugins:
        try:
            values = _plugin_scores(plugin, state, snap, cand.index, reader, profile, anchor)
        except Exception as exc:  # a data scientist's code: the list is served without it
            plugin.failed(kind, exc)
            continue
        if values is None:
            continue
        weighted = plugin.spec.weight * values
        features[f"plugin_{plugin.name}"] = values
        features[f"w_plugin_{plugin.name}"] = weighted
        score += weighted
    return Candidates(cand.index, features, score)


class PluginScoring:
    """Scorer and embedder plugins add their weighted scores to the candidates' blended scores."""

    name = "plugin scoring"

    def __call__(self, b):
        if b.cand is not None and b.snap.model.plugins:
            b.cand = apply_plugin_scores(b.state, b.snap, b.cand, b.kind, _reader(b), b.profile, b.anchor)
        return b


class PluginCandidates:
    """A candidate source's articles join a feed's candidates; an embedder's neighbour lists join
    a related list's. (A small window, scored whole, needs no candidates.)"""

    name = "plugin candidates"

    def __call__(self, b):
        plugins = b.snap.model.plugins
        if not plugins or b.empty_reason is not None or b.index is None:
            return b
        extra = [_related_extra(b, p) for p in plugins if b.kind == "related" and p.spec.role == "embedder"
                 and "related" in p.spec.lists and p.neighbours is not None]
        sources = [p for p in plugins if b.kind == "feed" and p.spec.role == "candidates" and "feed" in p.spec.lists]
        if sources:
            extra += _feed_extra(b, sources)
        extra = [e for e in extra if e.size]
        if extra:
            index = arrays.union1d(b.index, np.concatenate(extra))
            b.index = index[b.in_section(index)] if b.filters else index
        return b


def _related_extra(b, plugin: LoadedPlugin) -> np.ndarray:
    model = b.snap.model
    if not model.window_start <= b.anchor < b.snap.n_base:
        return np.zeros(0, dtype=np.int64)
    idx = np.asarray(plugin.neighbours[0][b.anchor - model.window_start], dtype=np.int64)
    idx = idx[(idx >= 0) & (idx != b.anchor)]
    return idx[~b.snap.deleted(idx)] if idx.size else idx


def _feed_extra(b, sources: list[LoadedPlugin]) -> list[np.ndarray]:
    snap, profile = b.snap, b.profile
    W = snap.window_arrays(("index", "deleted", "published_at"))  # views when nothing arrived since training
    window = W["index"]  # contiguous: catalog index i is at i - window_start
    keep = listable(snap, W["published_at"], W["deleted"], b.now)
    if profile is not None:
        for gone in (profile.read, profile.hidden):
            gone = np.asarray(gone, dtype=np.int64) - snap.model.window_start
            keep[gone[(gone >= 0) & (gone < keep.size)]] = False
    if b.filters:
        keep &= b.in_section(window)
    published = W["published_at"][keep]
    window = window[keep]
    items = items_of(b.state, snap, window, published_at=published)
    reader = _reader(b)
    out = []
    for plugin in sources:
        try:
            pos = np.asarray(plugin.model.candidates(reader, items, plugin.spec.k))
            if pos.size and (pos.ndim != 1 or pos.dtype.kind not in "iu" or pos.min() < 0 or pos.max() >= window.size):
                raise ValueError(f"candidates() must return a 1-d array of integer positions into items "
                                 f"(0 to {window.size - 1}); got {pos.dtype} {pos.shape}")
        except Exception as exc:
            plugin.failed(b.kind, exc)
            continue
        out.append(window[pos[: plugin.spec.k].astype(np.int64)])
    return out


