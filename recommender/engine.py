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
from .domain import EVENT_CODES, Article, Interaction, Preferences
from .model import ArticleMeta, FreshArticles, Labels, ModelError, ServingModel, empty_model
from .neighbours import cosine_neighbours
from .popularity import DecayedCounters
from .ranking import (
    Candidates, build_profile, diversify, related_candidates, score_feed, score_related,
)
from .results import NotFound, RankedItem, RankedList
from .store import Store, StoreError

log = logging.getLogger(__name__)

DAY = 86_400.0
ANONYMOUS = "anonymous"
ENGAGEMENT = np.array([0.0, 1.0, 1.0, 2.0])


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

    def snapshot(self) -> Snapshot:
        return Snapshot(self.model, self.fresh, self.fresh.count, self.deleted_base)

    def index_of(self, article_id: str) -> int:
        i = self.model.item_ids.get(article_id)
        return i if i >= 0 else self.fresh_index.get(article_id, -1)

    def indices(self, article_ids: list[str]) -> np.ndarray:
        return np.fromiter((self.index_of(a) for a in article_ids), dtype=np.int64, count=len(article_ids))


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
        self._state = self._fallback_state()
        try:
            if read_current(self.models_dir) is not None:
                self.reload()
        except (BundleError, ModelError) as exc:
            log.error("no model loaded, serving fallback lists: %s", exc)

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
                model = ServingModel.from_bundle(bundle)
            except (BundleError, ModelError, ValueError, OSError) as exc:
                self.last_reload_error = str(exc)
                self._failed_version = version or self._safe_current()
                raise BundleError(str(exc)) from exc
            state = self._new_state(model)
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
        if state.model.version is None:
            reasons.append("no model loaded: serving recent popular articles")
        if self.last_reload_error:
            reasons.append(f"last reload failed: {self.last_reload_error}")
        if self._store_error:
            reasons.append(f"store unavailable: {self._store_error}")
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
    def _add_fresh(self, state: LiveState, article: Article) -> int:
        """Embed, bridge, place in a story and find neighbours for an article the model has not seen."""
        with state.lock:
            existing = state.index_of(article.article_id)
            if existing >= 0:
                if existing >= state.model.n_items:
                    state.fresh.deleted[existing - state.model.n_items] = False
                else:
                    state.deleted_base[existing] = False
                return existing
            model = state.model
            text, factors = model.embed(article.title, article.body)
            snap = state.snapshot()
            story = state.next_story
            neighbours = None
            if np.any(text) and snap.n_total:
                W = snap.window_arrays()
                sims = W["text"] @ text
                k = min(self.config.fresh_neighbours, sims.size)
                top = np.argpartition(-sims, k - 1)[:k] if k < sims.size else np.arange(sims.size)
                top = top[np.argsort(-sims[top])]
                neighbours = (W["index"][top], sims[top].astype(np.float32))
                if sims[top[0]] >= model.story_similarity:
                    story = int(W["story"][top[0]])
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
            state.fresh_index[article.article_id] = index
            return index

    def _mark_deleted(self, state: LiveState, article_id: str) -> None:
        i = state.index_of(article_id)
        if i < 0:
            return
        if i < state.model.n_items:
            state.deleted_base[i] = True
        else:
            state.fresh.deleted[i - state.model.n_items] = True

    def _poll_articles(self, state: LiveState) -> None:
        changed = self.store.articles_changed_since(state.article_cursor)
        for stored in changed:
            if stored.deleted:
                self._mark_deleted(state, stored.article.article_id)
            elif state.index_of(stored.article.article_id) < 0:
                self._add_fresh(state, stored.article)
            state.article_cursor = max(state.article_cursor, stored.updated_at - 5.0)

    def _poll_events(self, state: LiveState, since_ts: float | None = None) -> None:
        while True:
            cursor, rows = self.store.events_after(state.event_cursor, since_ts=since_ts)
            if not rows:
                return
            state.event_cursor = cursor
            ids, codes, ts = zip(*rows)
            self._count(state, list(ids), np.array(codes, dtype=np.int8), np.array(ts, dtype=np.float64))

    def _count(self, state: LiveState, article_ids: list[str], codes: np.ndarray, ts: np.ndarray) -> None:
        idx = state.indices(article_ids)
        state.counters.grow(state.model.n_items + state.fresh.count + 256)
        state.counters.add(idx, codes, ts, ENGAGEMENT)

    def refresh(self) -> None:
        """One poll: new or taken-down articles and new events from every worker."""
        state = self._state
        try:
            state.counters.advance(self.clock())
            self._poll_articles(state)
            self._poll_events(state)
            self._store_error = None
        except StoreError as exc:
            self._store_error = str(exc)

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
            except Exception:  # keep serving; the next tick retries
                log.exception("background refresh failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.flush_impressions()
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
        return removed

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
        """Write queued served lists as impression events (off the request thread)."""
        batch: list[Interaction] = []
        while len(batch) < 50_000:
            try:
                user_id, list_id, article_ids, ts, offset = self._impressions.get_nowait()
            except queue.Empty:
                break
            for pos, article_id in enumerate(article_ids):
                batch.append(Interaction(user_id=user_id, article_id=article_id, event="impression", ts=ts,
                                         event_id=f"{list_id}.{offset + pos}", list_id=list_id,
                                         position=offset + pos))
        if batch:
            self.store.add_events(batch)
        return len(batch)

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
        snap = state.snapshot()
        extra = state.fresh_neighbours.get(anchor)
        model = state.model
        if extra is None and not (model.window_start <= anchor < snap.n_base):
            # an archive article outside the window: one scan of the window's text vectors
            vec = snap.text(np.array([anchor]))
            W = snap.window_arrays()
            idx, sim = cosine_neighbours(vec, W["text"], self.config.fresh_neighbours)
            extra = (np.where(idx[0] >= 0, W["index"][np.maximum(idx[0], 0)], -1), sim[0])
        candidates = related_candidates(snap, anchor, extra)
        if candidates.size < limit:  # thin neighbourhood: top up from the window
            candidates = np.union1d(candidates, snap.window())
            candidates = candidates[candidates != anchor]
        cand = score_related(snap, anchor, candidates, state.counters, now)
        p = model.ranking
        chosen = diversify(snap, cand, limit, p.related_max_per_story, 1.0, p.duplicate_similarity)
        anchor_meta = snap.meta(anchor)
        has_text = model.embedder is not None
        strategy = ("hybrid" if model.has_cf else "content") if has_text else "fallback-popular"
        items = tuple(self._item(snap, cand, pos, self._related_reason(snap, cand, pos, anchor_meta))
                      for pos in chosen)
        ranked = RankedList(items, strategy, model.version, _list_id())
        if user_id:
            self._log_impressions(user_id, ranked, now)
        return ranked

    def _profile(self, state: LiveState, snap: Snapshot, user_id: str, now: float):
        """The reader's profile from their stored events (so a click counts at once) and follows."""
        try:
            events = self.store.user_events(user_id, limit=self.config.max_reader_events)
            prefs = self.store.get_preferences(user_id)
        except StoreError:
            events, prefs = [], None
        events = [e for e in events if e.ts <= now]
        items_idx = state.indices([e.article_id for e in events])
        codes = np.array([EVENT_CODES[e.event] for e in events], dtype=np.int8)
        ts = np.array([e.ts for e in events], dtype=np.float64)
        dwell = np.array([np.nan if e.dwell_seconds is None else e.dwell_seconds for e in events], dtype=np.float32)
        cats = np.array([state.categories.code(c, add=False) for c in (prefs.categories if prefs else ())],
                        dtype=np.int64)
        regs = np.array([state.regions.code(r, add=False) for r in (prefs.regions if prefs else ())], dtype=np.int64)
        return build_profile(snap, items_idx, codes, ts, dwell, cats, regs, now)

    def score(self, user_id: str, article_ids: list[str]) -> np.ndarray:
        """Feed scores of given candidates (an impression's list), shape (n,); unknown articles get -inf.

        Offline evaluation ranks logged impressions with this, through the same features as the feed.
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
        known = index >= 0
        if known.any():
            out[known] = score_feed(snap, profile, state.counters, now, index=index[known]).score
        return out

    def feed(self, user_id: str, limit: int = 20, cursor: str | None = None) -> RankedList:
        offset = _decode_cursor(cursor)
        state = self._state
        now = self.clock()
        snap = state.snapshot()
        profile = self._profile(state, snap, user_id, now)
        cand = score_feed(snap, profile, state.counters, now)
        p = state.model.ranking
        depth = min(offset + limit, self.config.max_feed_depth)
        chosen = diversify(snap, cand, depth, p.feed_max_per_story, p.feed_max_category_share,
                           p.duplicate_similarity)
        page = chosen[offset: offset + limit]
        items = tuple(self._item(snap, cand, pos, self._feed_reason(snap, cand, pos, profile, state)) for pos in page)
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
    @staticmethod
    def _item(snap: Snapshot, cand: Candidates, pos: int, reason: str) -> RankedItem:
        meta = snap.meta(int(cand.index[pos]))
        return RankedItem(meta.article_id, meta.title, meta.url, meta.category, meta.region, meta.published_at,
                          round(float(cand.score[pos]), 6), reason)

    @staticmethod
    def _top_reason(cand: Candidates, pos: int, names: tuple[str, ...]) -> str:
        return max(names, key=lambda n: float(cand.features.get(f"w_{n}", np.zeros(pos + 1))[pos]))

    def _related_reason(self, snap: Snapshot, cand: Candidates, pos: int, anchor: ArticleMeta) -> str:
        top = self._top_reason(cand, pos, ("text", "coread", "cf", "fresh", "popular", "same_category"))
        meta = snap.meta(int(cand.index[pos]))
        return {
            "text": f"Masih terkait dengan: {anchor.title}",
            "coread": "Pembaca artikel ini juga membaca",
            "cf": "Disukai pembaca artikel ini",
            "fresh": f"Terbaru di {meta.category}",
            "popular": f"Populer di {meta.region or meta.category}",
            "same_category": f"Terbaru di {meta.category}",
        }[top]

    def _feed_reason(self, snap: Snapshot, cand: Candidates, pos: int, profile, state: LiveState) -> str:
        top = self._top_reason(cand, pos, ("content", "session", "affinity", "cf", "follow_category",
                                           "follow_region", "trending", "ctr", "fresh"))
        meta = snap.meta(int(cand.index[pos]))
        if top in ("content", "session") and profile.positives.size:
            read = np.unique(profile.positives)
            sims = snap.text(read) @ snap.text(np.array([cand.index[pos]]))[0]
            return f"Karena Anda membaca: {snap.meta(int(read[int(np.argmax(sims))])).title}"
        if top == "cf":
            return "Pembaca dengan minat serupa membaca ini"
        if top == "affinity":
            return f"Karena Anda sering membaca {meta.category}"
        if top == "follow_category":
            return f"Topik yang Anda ikuti: {meta.category}"
        if top == "follow_region":
            return f"Berita {meta.region} yang Anda ikuti"
        if top in ("trending", "ctr"):
            return f"Populer di {meta.region or meta.category}"
        return f"Berita terbaru: {meta.category}"


def _list_id() -> str:
    return "l" + secrets.token_hex(8)
