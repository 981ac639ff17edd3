"""The serving engine: a loaded model, live counters and fresh articles, answering lists.

One :class:`Engine` per process. A background thread polls the store about once a second
for new events and articles (so every gunicorn worker sees what any worker accepted) and
watches the bundle ``CURRENT`` pointer. A reload builds the new state beside the old one
and swaps a single reference, so no request sees half a model.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .bundle import BundleError, load_bundle, read_current
from .catalog import Snapshot
from .domain import Article, Interaction, Preferences
from .model import ArticleMeta, FreshArticles, Labels, ModelError, ServingModel, empty_model
from .neighbours import spherical_kmeans, top_k
from .popularity import DecayedCounters
from .ranking import (
    Candidates, ReaderProfile, WindowSummary, build_profile, diversify, factor_moments, feed_candidates,
    related_candidates, score_feed, score_related, summarize_window,
)
from .results import NotFound, RankedItem, RankedList
from .store import Store, StoreError

log = logging.getLogger(__name__)

DAY = 86_400.0
ANONYMOUS = "anonymous"
ENGAGEMENT = np.array([0.0, 1.0, 1.0, 2.0])
FRESH_ALL_MAX = 256  # up to this many fresh articles, every one is a related candidate
PROFILE_EVENTS = ("click", "read", "share")
IMPRESSION_CHUNK = 1000  # rows per impressions transaction (~20-60 ms at 10M events)


@dataclass(frozen=True)
class EngineConfig:
    """Service knobs that are not model parameters."""

    poll_interval: float = 1.0
    fallback_window_days: float = 3.0
    max_reader_events: int = 300
    fresh_neighbours: int = 40
    max_feed_depth: int = 500
    log_impressions: bool = True
    impression_queue: int = 100_000
    # windows larger than this are scored on candidates (see ranking.WindowSummary), smaller ones in full
    full_scan_max: int = 20_000
    feed_pool: int = 500
    feed_pool_per_label: int = 200
    feed_pool_per_cluster: int = 30
    feed_clusters: int = 16  # clusters nearest the reader's vectors whose best are candidates
    feed_seeds: int = 10  # newest reads whose neighbours are candidates
    feed_neighbours_per_seed: int = 10
    summary_max_age: float = 30.0  # clock seconds before a request recomputes it itself
    summary_refresh: float = 5.0  # seconds between the background thread's recomputations
    # a related list is the same for every reader: each worker keeps one per (article, limit) this
    # long (0: never). A new or taken-down article empties the cache at once.
    related_cache_seconds: float = 30.0
    related_cache_size: int = 20_000


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
    event_cursor: int = 0
    article_cursor: float = 0.0
    next_story: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    summary: WindowSummary | None = None
    base_moments: tuple[np.ndarray, np.ndarray] | None = None
    clusters: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # centroids, cluster of each window article
    summary_built: float = float("-inf")  # time.monotonic() of the last summary
    related_cache: dict = field(default_factory=dict)  # (anchor, limit) -> (expires, items, strategy)
    # window article -> fresh articles that have it among their neighbours (related candidates)
    fresh_reverse: dict[int, list[int]] = field(default_factory=dict)
    # store article key -> catalog index (-1 unknown, -2 not asked yet): a reader's history as
    # integer keys maps to indices in one gather instead of a dict lookup per event
    key_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    key_lock: threading.Lock = field(default_factory=threading.Lock)
    keys_learned: bool = False

    def snapshot(self) -> Snapshot:
        return Snapshot(self.model, self.fresh, self.fresh.count, self.deleted_base)

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
                missing = np.unique(keys[index == -2])
                ids = store.article_ids_for_keys(missing.tolist())
                table = self.key_index
                table[missing] = self.indices([ids.get(k, "") for k in missing.tolist()])
                index = table[keys]
        return index

    def learn_all_keys(self, store: Store) -> None:
        """Map every article key at once (the background thread does this after a model loads, so
        that a worker's first feeds do not each ask the store about their readers' articles)."""
        ids = store.article_ids_for_keys()
        self.keys_learned = True
        if not ids:
            return
        keys = np.fromiter(ids.keys(), dtype=np.int64, count=len(ids))
        with self.key_lock:  # under the lock: an article arriving meanwhile is either seen or forgotten after
            self._grow_key_table(int(keys.max()) + 1)[keys] = self.indices(list(ids.values()))

    def _grow_key_table(self, size: int) -> np.ndarray:
        """The key table, at least ``size`` long (new keys not asked yet); call under ``key_lock``."""
        table = self.key_index
        if size > table.size:
            grown = np.full(max(size, 2 * table.size, 1024), -2, dtype=np.int64)
            grown[: table.size] = table
            self.key_index = table = grown
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


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = int(json.loads(raw)["o"])
    except Exception:
        raise ValueError("cursor is not valid: pass the next_cursor of a previous page unchanged") from None
    if not 0 <= offset <= 10_000:
        raise ValueError("cursor is out of range")
    return offset


class Engine:
    """Related lists and feeds from the current model, the store and live signals.

    Parameters
    ----------
    store : Store
    models_dir : Path
        Where bundles are published; the ``CURRENT`` version is loaded.
    config : EngineConfig, optional
    clock : callable, optional
        Seconds since the epoch; injectable for replay and tests.
    """

    def __init__(self, store: Store, models_dir: str | Path, config: EngineConfig | None = None,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.models_dir = Path(models_dir)
        self.config = config or EngineConfig()
        self.clock = clock
        self.last_reload_error: str | None = None
        self._failed_version: str | None = None
        self._store_error: str | None = None
        self._impressions: queue.Queue = queue.Queue(maxsize=self.config.impression_queue)
        self.impressions_dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reload_lock = threading.Lock()
        self._forget_again: list[tuple[float, str]] = []  # (monotonic due time, user_id)
        self._forget_lock = threading.Lock()
        self._state: LiveState | None = None
        try:
            if read_current(self.models_dir) is not None:
                self.reload()
        except (BundleError, ModelError) as exc:
            log.error("no model loaded, serving fallback lists: %s", exc)
        if self._state is None:  # only now: it reads the last days of articles and events (seconds at scale)
            self._state = self._fallback_state()

    # -- model lifecycle -------------------------------------------------------------------
    @property
    def model_version(self) -> str | None:
        return self._state.model.version

    def _new_state(self, model: ServingModel) -> LiveState:
        n = model.n_items
        text_dims, factor_dims = model.dims
        now = self.clock()
        as_of = model.as_of if n else now
        counters = DecayedCounters(
            np.array(model.counters["clicks"], dtype=np.float64),
            np.array(model.counters["impressions"], dtype=np.float64),
            np.array(model.counters["engagement"], dtype=np.float64),
            as_of, model.ranking.trending_half_life_hours,
        )
        counters.grow(n + 256)
        state = LiveState(
            model=model, fresh=FreshArticles(text_dims, factor_dims), deleted_base=np.zeros(n, dtype=bool),
            fresh_index={}, fresh_neighbours={}, categories=Labels(model.categories), regions=Labels(model.regions),
            counters=counters, next_story=int(model.story.max()) + 1 if n else 0,
        )
        trained_wall = float(model.manifest.get("trained_at_wall", 0.0)) if n else 0.0
        state.article_cursor = trained_wall - 60.0 if n else 0.0
        since = now - self.config.fallback_window_days * DAY
        try:
            # catch up: taken-down bundle articles, articles published since training, recent events
            deleted = self.store.deleted_article_ids()
            for article_id in deleted:
                i = model.item_ids.get(article_id)
                if i >= 0:
                    state.deleted_base[i] = True
            if not n:
                for stored in self.store.iter_articles(published_since=since):
                    self._add_fresh(state, stored.article)
                state.article_cursor = time.time() - 60.0
            self._poll_articles(state)
            start_ts = as_of if n else since
            state.event_cursor = self.store.first_seq_since(start_ts) - 1
            self._poll_events(state, since_ts=start_ts)
            self._store_error = None
        except StoreError as exc:
            self._store_error = str(exc)
            log.error("store unavailable while loading live state: %s", exc)
        return state

    def _fallback_state(self) -> LiveState:
        return self._new_state(empty_model())

    def reload(self, version: str | None = None) -> str:
        """Load ``version`` (default: CURRENT) beside the serving one and swap; raises on a bad bundle."""
        with self._reload_lock:
            try:
                bundle = load_bundle(self.models_dir, version)
                # plain ndarray views of the memory-mapped arrays: same shared pages, without
                # np.memmap's Python-level indexing on every element read in the request path
                arrays = {name: np.asarray(value) for name, value in bundle.arrays.items()}
                model = ServingModel(bundle.version, arrays, bundle.documents, bundle.manifest)
            except (BundleError, ModelError, ValueError, OSError) as exc:
                # /readyz and the reload answer show this: bundle-relative paths, not the server's folders
                message = str(exc).replace(f"{self.models_dir}{os.sep}", "").replace(str(self.models_dir), "<models>")
                self.last_reload_error = message
                self._failed_version = version or self._safe_current()
                raise BundleError(message) from exc
            state = self._new_state(model)
            state.clusters = _bundle_clusters(arrays, model)
            self._state = state
            self.last_reload_error = None
            self._failed_version = None
            log.info("serving model %s (%d articles, %d in window)", model.version, model.n_items,
                     model.n_items - model.window_start)
            return model.version

    def use_model(self, model: ServingModel) -> None:
        """Serve an in-memory model (offline replay, tests) instead of a published bundle."""
        with self._reload_lock:
            self._state = self._new_state(model)

    def _safe_current(self) -> str | None:
        try:
            return read_current(self.models_dir)
        except BundleError:
            return None

    def maybe_reload(self) -> bool:
        """Reload if CURRENT names a version other than the served one (and not a known-bad one)."""
        current = self._safe_current()
        if self._failed_version != current:  # the version that failed is no longer CURRENT: nothing to report
            self.last_reload_error = self._failed_version = None
        if current is None or current == self.model_version or current == self._failed_version:
            return False
        try:
            self.reload(current)
        except BundleError as exc:
            log.error("refused model %s: %s", current, exc)
            return False
        return True

    def status(self) -> dict:
        state = self._state
        reasons = []
        current = self._safe_current()  # the present state, also without the background poll
        if state.model.version is None:
            reasons.append("no model loaded: serving recent popular articles" + (
                "" if current else " (CURRENT is missing or unreadable: publish one with 'newsrec train')"))
        if self.last_reload_error and self._failed_version == current:
            reasons.append(f"last reload failed: {self.last_reload_error}")
        if self._store_error:
            reasons.append(f"store unavailable: {self._store_error}")
        if self.store.write_error:
            reasons.append(f"store writes failing: {self.store.write_error}")
        return {
            "model_version": state.model.version,
            "degraded": bool(reasons),
            "reasons": reasons,
            "last_reload_error": self.last_reload_error,
            "articles_in_window": int(state.model.n_items - state.model.window_start + state.fresh.count),
            "fresh_articles": int(state.fresh.count),
            "impressions_dropped": self.impressions_dropped,
        }

    # -- live updates ----------------------------------------------------------------------
    def _add_fresh(self, state: LiveState, article: Article,
                   embedded: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None) -> int:
        """Embed, bridge, place in a story and find neighbours for an article the model has not seen.

        ``embedded``: its (text, factors, similarities to the bundle's window) when computed for
        many articles at once (:meth:`_add_fresh_many`).
        """
        with state.lock:
            existing = state.index_of(article.article_id)
            if existing >= 0:
                if existing >= state.model.n_items:
                    state.fresh.deleted[existing - state.model.n_items] = False
                else:
                    state.deleted_base[existing] = False
                return existing
            model = state.model
            text, factors, base_sims = embedded or (*model.embed(article.title, article.body), None)
            snap = state.snapshot()
            story = state.next_story
            neighbours = None
            if np.any(text) and snap.n_total:
                nb_index, nb_sims = _scan_window(snap, text, self.config.fresh_neighbours, base_sims)
                neighbours = (nb_index, nb_sims)
                if nb_sims.size and nb_sims[0] >= model.story_similarity:
                    story = int(snap.story(nb_index[:1])[0])
            if story == state.next_story:
                state.next_story += 1
            meta = ArticleMeta(article.article_id, article.title, article.url, article.category, article.region,
                               article.published_at)
            pos = state.fresh.append(meta, text, factors, state.categories.code(article.category),
                                     state.regions.code(article.region), story)
            index = model.n_items + pos
            state.counters.grow(index + 1 + 256)
            if neighbours is not None:
                state.fresh_neighbours[index] = neighbours
                for other in neighbours[0].tolist():
                    state.fresh_reverse.setdefault(other, []).append(index)
            state.fresh_index[article.article_id] = index
            state.forget_unknown_keys()
            state.related_cache.clear()
            return index

    def _mark_deleted(self, state: LiveState, article_id: str) -> None:
        i = state.index_of(article_id)
        if i < 0:
            return
        if i < state.model.n_items:
            state.deleted_base[i] = True
        else:
            state.fresh.deleted[i - state.model.n_items] = True
        state.related_cache.clear()

    def _poll_articles(self, state: LiveState) -> None:
        # Ids and flags first, full rows only for articles this worker does not have: after a bulk
        # import thousands of rows stay inside the 5 s overlap, and parsing them all on every poll
        # held the GIL for tens of milliseconds a second (the p99 of every request paid for it).
        changes = self.store.article_changes_since(state.article_cursor)
        unknown = [a for a, deleted, _ in changes if not deleted and state.index_of(a) < 0]
        fetched = self.store.get_articles(unknown) if unknown else {}
        if len(fetched) >= 16:  # e.g. a restart hours after training: one matrix product for all of them
            self._add_fresh_many(state, [fetched[a] for a, deleted, _ in changes if not deleted and a in fetched])
        for article_id, deleted, updated_at in changes:
            if deleted:
                self._mark_deleted(state, article_id)
            elif article_id in fetched and state.index_of(article_id) < 0:
                self._add_fresh(state, fetched[article_id])
            state.article_cursor = max(state.article_cursor, updated_at - 5.0)

    def _add_fresh_many(self, state: LiveState, articles: list[Article], block: int = 64) -> None:
        """:meth:`_add_fresh` for many articles, in order, comparing blocks of them with the bundle's
        window in one matrix product (1,000 articles: ~1 s instead of ~5 s of one scan each)."""
        model = state.model
        window = model.text_vectors[model.window_start:]
        for start in range(0, len(articles), block):
            part = [a for a in articles[start:start + block] if state.index_of(a.article_id) < 0]
            if not part:
                continue
            embedded = [model.embed(a.title, a.body) for a in part]
            sims = np.stack([text for text, _ in embedded]) @ window.T if window.shape[0] else None
            for j, (article, (text, factors)) in enumerate(zip(part, embedded)):
                self._add_fresh(state, article, (text, factors, None if sims is None else sims[j]))

    def _poll_events(self, state: LiveState, since_ts: float | None = None) -> None:
        while True:
            # in chunks, letting request threads have the interpreter between them (sleep(0)):
            # thousands of impressions a second come back here
            keyed = self.store.event_keys_after(state.event_cursor, since_ts=since_ts)
            if keyed is not None:
                cursor, keys, codes, ts = keyed
                if keys.size == 0:
                    return
                idx = state.indices_of_keys(keys, self.store)
            else:
                cursor, rows = self.store.events_after(state.event_cursor, since_ts=since_ts)
                if not rows:
                    return
                ids, codes, ts = zip(*rows)
                idx, codes, ts = state.indices(list(ids)), np.array(codes, dtype=np.int8), np.array(ts, np.float64)
            state.event_cursor = cursor
            self._count(state, idx, codes, ts)
            time.sleep(0)

    def _count(self, state: LiveState, idx: np.ndarray, codes: np.ndarray, ts: np.ndarray) -> None:
        state.counters.grow(state.model.n_items + state.fresh.count + 256)
        # an event stamped in the future (a skewed or hostile clock) counts as now: its decay weight
        # 2^(age/half-life) would otherwise overflow to inf and poison every popularity score
        state.counters.add(idx, codes, np.minimum(ts, self.clock()), ENGAGEMENT)

    def refresh(self) -> None:
        """One poll: new or taken-down articles and new events from every worker."""
        state = self._state
        try:
            state.counters.advance(self.clock())
            self._poll_articles(state)
            self._poll_events(state)
            if not state.keys_learned:
                state.learn_all_keys(self.store)
            self._store_error = None
        except StoreError as exc:
            self._store_error = str(exc)
        if self.store.write_error:  # writes failed at the disk: a trial write tells when they work again
            try:
                self.store.check_writable()
            except StoreError:
                pass
        if time.monotonic() - state.summary_built >= self.config.summary_refresh:
            self._window_summary(state, state.snapshot(), self.clock(), refresh=True)

    def _window_summary(self, state: LiveState, snap: Snapshot, now: float,
                        refresh: bool = False) -> WindowSummary | None:
        """The summary a large window's feeds are scored with (None: scan the window in full).

        The background poll refreshes it; a request recomputes it only when it is missing or old.
        """
        if snap.n_total - state.model.window_start <= self.config.full_scan_max:
            return None
        summary = state.summary
        if refresh or summary is None or abs(now - summary.at) > self.config.summary_max_age:
            if state.base_moments is None:
                state.base_moments = factor_moments(state.model.item_factors[state.model.window_start:])
            if state.clusters is None:
                state.clusters = _window_clusters(state.model)
            summary = summarize_window(snap, state.counters, now, state.base_moments, self.config.feed_pool,
                                       self.config.feed_pool_per_label, state.clusters,
                                       self.config.feed_pool_per_cluster)
            state.summary, state.summary_built = summary, time.monotonic()
        return summary

    def start_background(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="newsrec-live", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.poll_interval):
            try:
                self.maybe_reload()
                self.refresh()
                self.flush_impressions()
                self.forget_pending()
            except Exception:  # keep serving; the next tick retries
                log.exception("background refresh failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.flush_impressions()
            self.forget_pending(now=float("inf"))
        except StoreError:
            pass

    # -- writes ----------------------------------------------------------------------------
    def record_events(self, events: list[Interaction]) -> tuple[int, int]:
        """Store durably. Feeds read the reader's events from the store, so the next feed reflects
        them at once; popularity counters pick them up on the next poll in every worker."""
        inserted, duplicates = self.store.add_events(events)
        return inserted, duplicates

    def publish_articles(self, articles: list[Article]) -> int:
        written = self.store.upsert_articles(articles)
        state = self._state
        for article in articles:
            self._add_fresh(state, article)
        return written

    def takedown(self, article_id: str) -> bool:
        found = self.store.takedown_article(article_id)
        self._mark_deleted(self._state, article_id)
        return found

    def forget_user(self, user_id: str) -> dict:
        removed = self.store.forget_user(user_id)
        # queued impressions of this reader must not be written after the deletion
        kept = []
        while True:
            try:
                item = self._impressions.get_nowait()
            except queue.Empty:
                break
            if item[0] != user_id:
                kept.append(item)
        for item in kept:
            self._impressions.put_nowait(item)
        # Other workers (and a flush already under way here) may still write lists they served this
        # reader: they flush within a poll, so forget once more after two polls (background thread).
        with self._forget_lock:
            self._forget_again.append((time.monotonic() + 2.0 * self.config.poll_interval + 0.5, user_id))
        return removed

    def forget_pending(self, now: float | None = None) -> int:
        """Run the second pass of :meth:`forget_user` for readers whose wait is over; returns how many.

        A store failure keeps the remaining readers for the next tick.
        """
        now = time.monotonic() if now is None else now
        with self._forget_lock:
            due = [user for at, user in self._forget_again if at <= now]
            self._forget_again = [(at, user) for at, user in self._forget_again if at > now]
        for i, user_id in enumerate(due):
            try:
                self.store.forget_user(user_id)
            except StoreError as exc:
                with self._forget_lock:
                    self._forget_again.extend((0.0, user) for user in due[i:])
                log.warning("second forget pass postponed, the store refused it: %s", exc)
                return i
        return len(due)

    def get_preferences(self, user_id: str) -> Preferences | None:
        return self.store.get_preferences(user_id)

    def set_preferences(self, prefs: Preferences) -> None:
        self.store.set_preferences(prefs)

    # -- impressions -----------------------------------------------------------------------
    def _log_impressions(self, user_id: str | None, ranked: RankedList, now: float) -> None:
        if not self.config.log_impressions or not ranked.items:
            return
        try:
            self._impressions.put_nowait((user_id or ANONYMOUS, ranked.list_id, [i.article_id for i in ranked.items],
                                          now, ranked.extra.get("offset", 0)))
        except queue.Full:
            self.impressions_dropped += len(ranked.items)

    def flush_impressions(self) -> int:
        """Write queued served lists as impression events (off the request thread).

        While the store refuses writes the lists stay queued (up to ``impression_queue``; beyond
        that they are counted in ``impressions_dropped``) and 0 is returned.
        """
        written = 0
        while written < 50_000:
            # transactions of ~IMPRESSION_CHUNK rows: an event post waits for one of them at most
            batch: list[Interaction] = []
            taken = []
            while len(batch) < IMPRESSION_CHUNK:
                try:
                    item = self._impressions.get_nowait()
                except queue.Empty:
                    break
                taken.append(item)
                user_id, list_id, article_ids, ts, offset = item
                for pos, article_id in enumerate(article_ids):
                    batch.append(Interaction(user_id=user_id, article_id=article_id, event="impression", ts=ts,
                                             event_id=f"{list_id}.{offset + pos}", list_id=list_id,
                                             position=offset + pos))
            if not batch:
                break
            try:
                self.store.add_events(batch)
            except StoreError as exc:
                for item in taken:
                    try:
                        self._impressions.put_nowait(item)
                    except queue.Full:
                        self.impressions_dropped += len(item[2])
                log.warning("impressions kept in memory, the store refused them: %s", exc)
                return written
            written += len(batch)
        return written

    # -- reading lists ---------------------------------------------------------------------
    def _locate(self, state: LiveState, article_id: str) -> int:
        index = state.index_of(article_id)
        if index < 0:
            try:
                found = self.store.get_articles([article_id])
            except StoreError:
                found = {}
            if article_id not in found:
                raise NotFound(f"article {article_id} is not known (or was taken down)")
            index = self._add_fresh(state, found[article_id])
        snap = state.snapshot()
        if snap.deleted(np.array([index]))[0]:
            raise NotFound(f"article {article_id} was taken down")
        return index

    def related(self, article_id: str, limit: int = 10, user_id: str | None = None) -> RankedList:
        state = self._state
        now = self.clock()
        anchor = self._locate(state, article_id)
        model = state.model
        ttl = self.config.related_cache_seconds
        cached = state.related_cache.get((anchor, limit)) if ttl > 0 else None
        if cached is not None and cached[0] > time.monotonic():
            ranked = RankedList(cached[1], cached[2], model.version, _list_id())
            if user_id:
                self._log_impressions(user_id, ranked, now)
            return ranked
        snap = state.snapshot()
        extra = state.fresh_neighbours.get(anchor)
        if extra is None and not (model.window_start <= anchor < snap.n_base):
            # an archive article outside the window: one scan of the window's text vectors
            extra = _scan_window(snap, snap.text(np.array([anchor]))[0], self.config.fresh_neighbours)
        fresh = None
        if snap.n_fresh > FRESH_ALL_MAX:  # many arrivals: only those that found the anchor among their neighbours
            fresh = np.array(state.fresh_reverse.get(anchor, ()), dtype=np.int64)
            fresh = fresh[fresh < snap.n_total]
        candidates = related_candidates(snap, anchor, extra, fresh)
        cand = score_related(snap, anchor, candidates, state.counters, now)
        if cand.index.size < limit:  # thin neighbourhood (or neighbours taken down / not yet published): top up
            summary = self._window_summary(state, snap, now)
            pool = snap.window() if summary is None else np.concatenate(
                [summary.popular, summary.by_category.get(int(snap.category(np.array([anchor]))[0]), summary.popular)])
            candidates = np.union1d(candidates, pool)
            candidates = candidates[candidates != anchor]
            cand = score_related(snap, anchor, candidates, state.counters, now)
        p = model.ranking
        chosen = diversify(snap, cand, limit, p.related_max_per_story, 1.0, p.duplicate_similarity,
                           story_similarity=p.related_story_similarity)
        anchor_meta = snap.meta(anchor)
        has_text = model.embedder is not None
        strategy = ("hybrid" if model.has_cf else "content") if has_text else "fallback-popular"
        items = self._related_items(snap, cand, chosen, anchor_meta)
        if ttl > 0:
            if len(state.related_cache) >= self.config.related_cache_size:
                try:
                    state.related_cache.pop(next(iter(state.related_cache)), None)  # the oldest entry
                except (RuntimeError, StopIteration):  # another thread changed it meanwhile
                    pass
            state.related_cache[(anchor, limit)] = (time.monotonic() + ttl, items, strategy)
        ranked = RankedList(items, strategy, model.version, _list_id())
        if user_id:
            self._log_impressions(user_id, ranked, now)
        return ranked

    def _profile(self, state: LiveState, snap: Snapshot, user_id: str, now: float):
        """The reader's profile from their stored events (so a click counts at once) and follows."""
        try:
            # impressions say nothing about interest: the last events that do (served lists would crowd them out)
            limit = self.config.max_reader_events
            keyed = self.store.user_event_keys(user_id, limit=limit, events=PROFILE_EVENTS)
            if keyed is not None:
                keys, codes, ts, dwell = keyed
                items_idx = state.indices_of_keys(keys, self.store)
            else:
                ids, codes, ts, dwell = self.store.user_event_arrays(user_id, limit=limit, events=PROFILE_EVENTS)
                items_idx = state.indices(ids)
            prefs = self.store.get_preferences(user_id)
        except StoreError:
            items_idx, codes, ts, dwell = (np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.float64),
                                           np.zeros(0, np.float32))
            prefs = None
        past = ts <= now
        if not past.all():
            items_idx, codes, ts, dwell = items_idx[past], codes[past], ts[past], dwell[past]
        cats = np.array([state.categories.code(c, add=False) for c in (prefs.categories if prefs else ())],
                        dtype=np.int64)
        regs = np.array([state.regions.code(r, add=False) for r in (prefs.regions if prefs else ())], dtype=np.int64)
        return build_profile(snap, items_idx, codes, ts, dwell, cats, regs, now)

    def score(self, user_id: str, article_ids: list[str], features: bool = False):
        """Feed scores of given candidates (an impression's list), shape (n,); unknown articles get -inf.

        Offline evaluation ranks logged impressions with this, through the same features as the feed.
        With ``features`` it returns ``(scores, columns)``: every feature column of
        :func:`score_feed`, shape (n,), NaN for unknown articles (ablations and tuning re-blend them).
        """
        state = self._state
        now = self.clock()
        index = state.indices(list(article_ids))
        for i in np.flatnonzero(index < 0):
            try:
                index[i] = self._locate(state, article_ids[i])
            except NotFound:
                pass
        snap = state.snapshot()
        profile = self._profile(state, snap, user_id, now)
        out = np.full(len(article_ids), -np.inf)
        columns: dict[str, np.ndarray] = {}
        known = index >= 0
        if known.any():
            cand = score_feed(snap, profile, state.counters, now, index=index[known])
            out[known] = cand.score
            for name, values in cand.features.items():
                columns[name] = np.full(len(article_ids), np.nan)
                columns[name][known] = values
        return (out, columns) if features else out

    def feed(self, user_id: str, limit: int = 20, cursor: str | None = None) -> RankedList:
        offset = _decode_cursor(cursor)
        state = self._state
        now = self.clock()
        snap = state.snapshot()
        profile = self._profile(state, snap, user_id, now)
        summary = self._window_summary(state, snap, now)
        if summary is None:
            cand = score_feed(snap, profile, state.counters, now)
        else:
            index = feed_candidates(snap, profile, summary, now, state.fresh_neighbours,
                                    recent=self.config.feed_seeds, clusters=self.config.feed_clusters,
                                    per_seed=self.config.feed_neighbours_per_seed)
            cand = score_feed(snap, profile, state.counters, now, index=index, summary=summary)
        p = state.model.ranking
        depth = min(offset + limit, self.config.max_feed_depth)
        chosen = diversify(snap, cand, depth, p.feed_max_per_story, p.feed_max_category_share,
                           p.duplicate_similarity)
        page = chosen[offset: offset + limit]
        items = self._feed_items(snap, cand, page, profile)
        if state.model.embedder is None:
            strategy = "fallback-popular"
        elif profile.is_cold:
            strategy = "cold-start"
        else:
            strategy = "hybrid"
        more = offset + limit < min(cand.index.size, self.config.max_feed_depth) and len(page) == limit
        ranked = RankedList(items, strategy, state.model.version, _list_id(),
                            next_cursor=_encode_cursor(offset + limit) if more else None, extra={"offset": offset})
        self._log_impressions(user_id, ranked, now)
        return ranked

    # -- presentation ----------------------------------------------------------------------
    RELATED_REASONS = ("text", "coread", "cf", "fresh", "popular", "same_category")
    FEED_REASONS = ("content", "session", "affinity", "cf", "follow_category", "follow_region", "trending", "ctr",
                    "fresh")

    @staticmethod
    def _top_reasons(cand: Candidates, positions: np.ndarray, names: tuple[str, ...]) -> list[str]:
        """Per position, the feature that added most to its score (the first of equals)."""
        zeros = np.zeros(len(positions))
        weighted = np.stack([cand.features[f"w_{n}"][positions] if f"w_{n}" in cand.features else zeros
                             for n in names])
        return [names[k] for k in np.argmax(weighted, axis=0).tolist()]

    @staticmethod
    def _items(snap: Snapshot, cand: Candidates, positions: np.ndarray, metas: list[ArticleMeta],
               reasons: list[str]) -> tuple[RankedItem, ...]:
        scores = [round(x, 6) for x in cand.score[positions].tolist()]
        return tuple(RankedItem(m.article_id, m.title, m.url, m.category, m.region, m.published_at, score, reason)
                     for m, score, reason in zip(metas, scores, reasons))

    def _related_items(self, snap: Snapshot, cand: Candidates, chosen: np.ndarray,
                       anchor: ArticleMeta) -> tuple[RankedItem, ...]:
        metas = [snap.meta(int(i)) for i in cand.index[chosen].tolist()]
        reasons = []
        for top, meta in zip(self._top_reasons(cand, chosen, self.RELATED_REASONS), metas):
            reasons.append({
                "text": f"Masih terkait dengan: {anchor.title}",
                "coread": "Pembaca artikel ini juga membaca",
                "cf": "Disukai pembaca artikel ini",
                "fresh": f"Terbaru di {meta.category}",
                "popular": f"Populer di {meta.region or meta.category}",
                "same_category": f"Terbaru di {meta.category}",
            }[top])
        return self._items(snap, cand, chosen, metas, reasons)

    def _feed_items(self, snap: Snapshot, cand: Candidates, page: np.ndarray,
                    profile: ReaderProfile) -> tuple[RankedItem, ...]:
        index = cand.index[page]
        metas = [snap.meta(int(i)) for i in index.tolist()]
        tops = self._top_reasons(cand, page, self.FEED_REASONS)
        because = None  # per item, the read article its text is closest to (one product for the page)
        if profile.positives.size and any(t in ("content", "session") for t in tops):
            read = np.unique(profile.positives)
            because = read[np.argmax(snap.text(read) @ snap.text(index).T, axis=0)].tolist()
        reasons = []
        for k, (top, meta) in enumerate(zip(tops, metas)):
            if top in ("content", "session") and because is not None:
                reasons.append(f"Karena Anda membaca: {snap.meta(because[k]).title}")
            elif top == "cf":
                reasons.append("Pembaca dengan minat serupa membaca ini")
            elif top == "affinity":
                reasons.append(f"Karena Anda sering membaca {meta.category}")
            elif top == "follow_category":
                reasons.append(f"Topik yang Anda ikuti: {meta.category}")
            elif top == "follow_region":
                reasons.append(f"Berita {meta.region} yang Anda ikuti")
            elif top in ("trending", "ctr"):
                reasons.append(f"Populer di {meta.region or meta.category}")
            else:
                reasons.append(f"Berita terbaru: {meta.category}")
        return self._items(snap, cand, page, metas, reasons)


def _bundle_clusters(arrays: dict[str, np.ndarray], model: ServingModel) -> dict | None:
    """The window clusters training stored in the bundle (large windows only), else None."""
    out = {}
    for name in ("text", "cf"):
        C, labels = arrays.get(f"cluster_{name}_centroids"), arrays.get(f"cluster_{name}_labels")
        if C is not None and labels is not None and labels.shape[0] == model.n_items - model.window_start:
            out[name] = (np.asarray(C, dtype=np.float32), np.asarray(labels, dtype=np.int64))
    return out if "text" in out else None


def _window_clusters(model: ServingModel) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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


def _scan_window(snap: Snapshot, vector: np.ndarray, k: int,
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


def _list_id() -> str:
    return "l" + secrets.token_hex(8)
