"""The live state of one loaded model: its catalog plus fresh arrivals, takedowns, live counters.

:class:`LiveState` is built beside the serving one on a reload and swapped whole; the engine's
background thread keeps it following the store (new articles, takedowns, events), so every
worker sees what any worker accepted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from recommender import arrays
from recommender.domain import Article
from recommender.models.neighbours import spherical_kmeans, top_k
from recommender.models.popularity import DecayedCounters
from recommender.models.served import ArticleMeta, Labels, ServingModel
from recommender.store import Store

from .catalog import BaseEdits, FreshArticles, Snapshot
from .ranking import WindowSummary

# what each event code adds to an article's engagement (impression, click, read, share, hide)
ENGAGEMENT = np.array([0.0, 1.0, 1.0, 2.0, 0.0])


def _at_least(table: np.ndarray, size: int, fill: int) -> np.ndarray:
    """``table`` if it holds ``size`` entries, else a copy grown (at least doubled) with ``fill``."""
    if size <= table.size:
        return table
    grown = np.full(max(size, 2 * table.size, 1024), fill, dtype=table.dtype)
    grown[: table.size] = table
    return grown


@dataclass
class LiveState:
    """Everything one model version needs at serving time; replaced whole on reload."""

    model: ServingModel
    fresh: FreshArticles
    deleted_base: np.ndarray
    fresh_index: dict[str, int]
    fresh_neighbours: dict[int, tuple[np.ndarray, np.ndarray]]
    categories: Labels
    regions: Labels
    counters: DecayedCounters
    # where this state stands in the store's change log (see Store): every committed change up to
    # ``change_cursor`` and every event up to ``event_cursor`` is applied, nothing after them.
    # ``caught_up`` is False until the catch-up after a load succeeded (the cursors mean nothing before).
    change_cursor: int = 0
    event_cursor: int = 0
    visibility_cursor: int = 0  # takedowns and restores, checked before every list
    caught_up: bool = False
    next_story: int = 0
    edits: BaseEdits | None = None  # bundle articles edited since training
    applied: dict[str, float] = field(default_factory=dict)  # article id -> stored updated_at applied
    lock: threading.RLock = field(default_factory=threading.RLock)
    summary: WindowSummary | None = None
    base_moments: tuple[np.ndarray, np.ndarray] | None = None
    clusters: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # centroids, cluster of each window article
    summary_built: float = float("-inf")  # time.monotonic() of the last summary
    # (anchor, limit) -> (expires, items, strategy, next due). A change replaces the dict rather
    # than clearing it: a list being built from the snapshot before the change goes into the old one
    related_cache: dict = field(default_factory=dict)
    # (reader, limit, sections) -> the first page of their feed (Engine.feed), replaced the same way
    # on every article change (arrival, edit, takedown, restore) and rules change
    feed_cache: dict = field(default_factory=dict)
    # window article -> fresh articles that have it among their neighbours (related candidates)
    fresh_reverse: dict[int, list[int]] = field(default_factory=dict)
    # store article key -> catalog index (-1 unknown, -2 not asked yet): a reader's history as
    # integer keys maps to indices in one gather instead of a dict lookup per event
    key_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # the other way round: catalog index -> store key (-1 not known yet), for a feed's cursor
    index_key: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    key_lock: threading.Lock = field(default_factory=threading.Lock)
    keys_learned: bool = False

    def snapshot(self) -> Snapshot:
        return Snapshot(self.model, self.fresh, self.fresh.count, self.deleted_base, self.edits)

    def index_of(self, article_id: str) -> int:
        i = self.model.item_ids.get(article_id)
        return i if i >= 0 else self.fresh_index.get(article_id, -1)

    def indices_of_keys(self, keys: np.ndarray, store: Store) -> np.ndarray:
        """Catalog index of each store article key (-1 unknown); keys not seen before are resolved
        through the store once."""
        if keys.size == 0:
            return keys.astype(np.int64)
        table = self.key_index
        if int(keys.max()) >= table.size:
            with self.key_lock:
                table = self._grow_key_table(int(keys.max()) + 1)
        index = table[keys]
        if (index == -2).any():
            with self.key_lock:
                missing = arrays.unique(keys[index == -2])
                ids = store.article_ids_for_keys(missing.tolist())
                table = self.key_index
                table[missing] = found = self.indices([ids.get(k, "") for k in missing.tolist()])
                self._note_keys(missing, found)
                index = table[keys]
        return index

    def keys_of_indices(self, index: np.ndarray) -> np.ndarray:
        """Store key of each catalog index (-1 where this state has not met it: ask the store)."""
        table = self.index_key
        index = np.asarray(index, dtype=np.int64)
        known = (index >= 0) & (index < table.size)
        return np.where(known, table[np.where(known, index, 0)] if table.size else -1, -1)

    def learn_all_keys(self, store: Store) -> None:
        """Map every article key at once (the background thread does this after a model loads, so
        that a worker's first feeds do not each ask the store about their readers' articles)."""
        ids = store.article_ids_for_keys()
        self.keys_learned = True
        if not ids:
            return
        keys = np.fromiter(ids.keys(), dtype=np.int64, count=len(ids))
        with self.key_lock:  # under the lock: an article arriving meanwhile is either seen or forgotten after
            self._grow_key_table(int(keys.max()) + 1)[keys] = index = self.indices(list(ids.values()))
            self._note_keys(keys, index)

    def _note_keys(self, keys: np.ndarray, index: np.ndarray) -> None:
        """Remember the store key of each catalog index found; call under ``key_lock``."""
        found = index >= 0
        if not found.any():
            return
        keys, index = keys[found], index[found]
        table = _at_least(self.index_key, int(index.max()) + 1, -1)
        table[index] = keys
        self.index_key = table

    def _grow_key_table(self, size: int) -> np.ndarray:
        """The key table, at least ``size`` long (new keys not asked yet); call under ``key_lock``."""
        self.key_index = table = _at_least(self.key_index, size, -2)
        return table

    def forget_unknown_keys(self) -> None:
        """An article arrived: keys that were unknown may be it."""
        with self.key_lock:
            table = self.key_index
            table[table == -1] = -2

    def indices(self, article_ids: list[str]) -> np.ndarray:
        index = self.model.item_ids.indices(article_ids)
        if self.fresh_index:
            get = self.fresh_index.get
            for k in np.flatnonzero(index < 0).tolist():
                index[k] = get(article_ids[k], -1)
        return index

    def add_fresh(self, article: Article, n_neighbours: int,
                  embedded: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None) -> int:
        """Embed, bridge, place in a story and find neighbours for an article the model has not seen.

        ``embedded``: its (text, factors, similarities to the bundle's window) when computed for
        many articles at once (:meth:`add_fresh_many`).
        """
        with self.lock:
            existing = self.index_of(article.article_id)
            if existing >= 0:  # known: only an explicit update (a stored edit or restore) changes it
                return existing
            model = self.model
            text, factors, base_sims = embedded or (*model.embed(article.title, article.body), None)
            snap = self.snapshot()
            story = self.next_story
            neighbours = None
            if np.any(text) and snap.n_total:
                nb_index, nb_sims = scan_window(snap, text, n_neighbours, base_sims)
                neighbours = (nb_index, nb_sims)
                if nb_sims.size and nb_sims[0] >= model.story_similarity:
                    story = int(snap.story(nb_index[:1])[0])
            if story == self.next_story:
                self.next_story += 1
            meta = ArticleMeta(article.article_id, article.title, article.url, article.category, article.region,
                               article.published_at)
            pos = self.fresh.append(meta, text, factors, self.categories.code(article.category),
                                     self.regions.code(article.region), story)
            index = model.n_items + pos
            self.counters.grow(index + 1 + 256)
            if neighbours is not None:
                self.fresh_neighbours[index] = neighbours
                for other in neighbours[0].tolist():
                    self.fresh_reverse.setdefault(other, []).append(index)
            self.fresh_index[article.article_id] = index
            self.forget_unknown_keys()
            self.related_cache = {}
            self.feed_cache = {}
            return index

    def update(self, index: int, article: Article) -> None:
        """Bring a known article level with its stored row: visible, and its headline, url,
        section, region and time as edited. A fresh article is embedded again; a bundle article
        keeps its trained vectors until the next training."""
        with self.lock:
            meta = ArticleMeta(article.article_id, article.title, article.url, article.category, article.region,
                               article.published_at)
            category, region = self.categories.code(article.category), self.regions.code(article.region)
            n = self.model.n_items
            if index >= n:
                pos = index - n
                self.fresh.deleted[pos] = False
                self.fresh.meta[pos] = meta
                self.fresh.category_code[pos], self.fresh.region_code[pos] = category, region
                self.fresh.published_at[pos] = meta.published_at
                self.fresh.text[pos], self.fresh.factors[pos] = self.model.embed(article.title, article.body)
            else:
                self.deleted_base[index] = False
                if self.edits is None and self.model.meta(index) == meta:
                    self.related_cache = {}
                    self.feed_cache = {}
                    return
                edits = self.edits or BaseEdits.of(self.model)
                edits.metas[index] = meta
                edits.category[index], edits.region[index] = category, region
                edits.published_at[index] = meta.published_at
                self.edits = edits
            self.related_cache = {}
            self.feed_cache = {}

    def mark_deleted(self, article_id: str) -> None:
        i = self.index_of(article_id)
        if i < 0:
            return
        if i < self.model.n_items:
            self.deleted_base[i] = True
        else:
            self.fresh.deleted[i - self.model.n_items] = True
        self.related_cache = {}
        self.feed_cache = {}

    def add_fresh_many(self, articles: list[Article], n_neighbours: int, block: int = 64) -> None:
        """:meth:`add_fresh` for many articles, in order, comparing blocks of them with the bundle's
        window in one matrix product (1,000 articles: ~1 s instead of ~5 s of one scan each)."""
        model = self.model
        window = model.text_vectors[model.window_start:]
        for start in range(0, len(articles), block):
            part = [a for a in articles[start:start + block] if self.index_of(a.article_id) < 0]
            if not part:
                continue
            embedded = [model.embed(a.title, a.body) for a in part]
            sims = np.stack([text for text, _ in embedded]) @ window.T if window.shape[0] else None
            for j, (article, (text, factors)) in enumerate(zip(part, embedded)):
                self.add_fresh(article, n_neighbours, (text, factors, None if sims is None else sims[j]))

    def count(self, idx: np.ndarray, codes: np.ndarray, ts: np.ndarray, now: float) -> None:
        self.counters.grow(self.model.n_items + self.fresh.count + 256)
        # an event stamped in the future (a skewed or hostile clock) counts as now: its decay weight
        # 2^(age/half-life) would otherwise overflow to inf and poison every popularity score
        self.counters.add(idx, codes, np.minimum(ts, now), ENGAGEMENT)


def bundle_clusters(arrays: dict[str, np.ndarray], model: ServingModel) -> dict | None:
    """The window clusters training stored in the bundle (large windows only), else None."""
    out = {}
    for name in ("text", "cf"):
        C, labels = arrays.get(f"cluster_{name}_centroids"), arrays.get(f"cluster_{name}_labels")
        if C is not None and labels is not None and labels.shape[0] == model.n_items - model.window_start:
            out[name] = (np.asarray(C, dtype=np.float32), np.asarray(labels, dtype=np.int64))
    return out if "text" in out else None


def window_clusters(model: ServingModel) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Spherical k-means (sqrt(n) clusters) of the window's text vectors and CF factors (~1 s at 100k)."""
    out = {}
    w0 = model.window_start
    for name, vectors in (("text", model.text_vectors[w0:]), ("cf", model.item_factors[w0:])):
        if name == "cf" and not model.has_cf:
            continue
        X = np.asarray(vectors, dtype=np.float32)
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        out[name] = spherical_kmeans(X, max(1, int(np.sqrt(X.shape[0]))), seed=0)
    return out


def scan_window(snap: Snapshot, vector: np.ndarray, k: int,
                 base_sims: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` window articles most similar to ``vector``, best first: (global indices, sims float32).

    Scans the bundle's window in place (a view of the shared array) and the fresh overlay apart,
    instead of concatenating them: a 100k-article window is 51 MB that a copy would move per call.
    ``base_sims`` are the similarities to the bundle's window when already computed.
    """
    model, w0 = snap.model, snap.model.window_start
    if base_sims is None:
        base_sims = model.text_vectors[w0:] @ vector
    sims = np.concatenate([base_sims, snap.fresh.text[: snap.n_fresh] @ vector])
    k = min(k, sims.size)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    top = top_k(sims, k)
    index = np.where(top < snap.n_base - w0, top + w0, top - (snap.n_base - w0) + snap.n_base)
    return index.astype(np.int64), sims[top].astype(np.float32)
