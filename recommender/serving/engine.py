"""The serving engine: a loaded model, live counters and fresh articles, answering lists.

One :class:`Engine` per process. A background thread polls the store about once a second
for new events and articles (so every gunicorn worker sees what any worker accepted) and for
``model`` changes: the version the store names live (``recommender.models.versions``) is the one
served, by every worker of every replica. A reload builds the new state beside the old one
and swaps a single reference, so no request sees half a model. With a lag (``lag_seconds``,
PostgreSQL's default), a second thread follows the store's notices of writes
(``serving.freshness``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from recommender import arrays
from recommender.domain import ANONYMOUS, Article, Interaction, Preferences
from recommender.models.bundle import BundleError, bundle_signature, load_bundle, read_current
from recommender.models.exposure import ExposureStats, with_exposure
from recommender.models.popularity import DecayedCounters, default_curve
from recommender.models.served import Labels, ModelError, ServingModel, empty_model
from recommender.models.versions import MODEL_CHANGES, live_version
from recommender.store import (PROFILE_EVENTS, EditorialRule, FeatureLogRow, ReaderReads, ReaderVersion, ServedList,
                               Store, StoredArticle, StoreError)

from .catalog import FreshArticles, Snapshot
from .features import FEATURE_NAMES, PREFIX, FeatureJob, learned_stage, recent_unique, rows_of
from .freshness import RecentVersions
from .live import ENGAGEMENT, LiveState, bundle_clusters, window_clusters
from .ranking import (
    FUTURE_GRACE,
    ReaderProfile,
    WindowSummary,
    build_profile,
    factor_moments,
    score_feed,
    summarize_window,
)
from .readsets import ReadSets
from .results import CURSOR_MAX_CHARS, InvalidCursor, NotFound, RankedItem, RankedList, pack_items, unpack_items
from .rules import RuleSet, check_named_articles
from .exploration import list_seed
from .plugins import apply_plugin_scores, reader_of
from .stages import ListBuild, ListFilter, feed_pipeline, related_pipeline

log = logging.getLogger(__name__)

DAY = 86_400.0
ARTICLE_CHANGES = ("article", "takedown", "restore")
VISIBILITY_CHANGES = ("takedown", "restore")
FOLLOW_BATCH = 5000  # changes read per query while following the log
# served lists (one row each) per transaction: an event post waits behind one chunk at most
# (PostgreSQL's commit-order lock is held for the insert: ~3 ms for 100 lists, ~10 ms for 500)
SERVED_LIST_CHUNK = 100
# between two chunks of a backlog the store's write lock stays free this long: SQLite's is polled
# (every 0.1-1 ms), and a flush taking it again at once kept a waiting event post out to the end
SERVED_LIST_PAUSE = 0.001
RELATED_TOP_UP = 10  # a reader's related list reaches further down in multiples of this many
MAX_SKIPPED = 50  # a reader's newest shown-not-clicked articles the learned stage compares candidates with
READ_CLOCK_SKEW = DAY  # reads are looked up from this long before the window's oldest article
ARTICLE_KEYS_KEPT = 200_000  # article id -> store key entries an engine keeps for cursors
RETRY_FAILED_SECONDS = 60.0  # a live version that failed is tried again this often even if its folder is unchanged
MAX_LAG_SECONDS = 2.0  # EngineConfig.lag_seconds at most: a write shows on every host within 2 s
# EngineConfig.lag_seconds left unset, on a store that tells of committed writes (Store.watch_writes:
# PostgreSQL): notices end a reuse within milliseconds, this is only the bound for a lost one
NOTICED_LAG_SECONDS = 1.0
# the notices thread reads at most this often: each wake-up costs a worker ~0.05-0.08 ms of CPU
# whatever it reads (benchmarks/README, "nineteenth round"), a notice waits at most this long more
NOTICE_PAUSE_SECONDS = 0.005


@dataclass(frozen=True)
class EngineConfig:
    """Service knobs that are not model parameters."""

    poll_interval: float = 1.0
    fallback_window_days: float = 3.0
    max_reader_events: int = 300
    max_reader_impressions: int = 500  # a reader's last impressions counted for fatigue
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
    # the feature log (Store.add_feature_logs): the share of logged feeds whose learned-stage
    # feature vectors are stored with the list (0: none), drawn per list from its id
    feature_log_rate: float = 0.05
    # exploration (serving.exploration): the share of feeds drawn at random from the
    # ``explore_pool`` best candidates (0: off). Every feed then gets a feature-log row with its
    # items' selection probabilities (off-policy evaluation needs them); the feature vectors
    # themselves only for the ``feature_log_rate`` sample.
    explore_epsilon: float = 0.0
    explore_pool: int = 40
    # a reader's first feed page is kept this long per worker (0: never) and served again while
    # nothing it was built from changed: the reader's own events (any type) and preferences
    # (Store.reader_version, asked on every request; see lag_seconds), takedowns, article changes, rules and the
    # model take effect at once; popularity and the fatigue of lists served to the reader (the
    # served_lists the engine logs itself) within this many seconds
    feed_cache_seconds: float = 30.0
    feed_cache_size: int = 20_000
    # how far behind other workers' and hosts' writes a list may be (serving.freshness): 0 asks the
    # store before every list (their clicks and takedowns show at once); > 0 reuses its answers
    # for a reader, and for takedowns, up to that many seconds (this engine's own writes show at
    # once; on PostgreSQL any worker's as soon as its notice arrives). None: NOTICED_LAG_SECONDS on
    # a store that tells of writes, else 0
    lag_seconds: float | None = None


CURSOR_VERSION = 1
CURSOR_MAX_SERVED = 10_000
CURSOR_MAX_KEY = 1 << 48
_CURSOR_TAG = 8  # bytes of checksum
_CURSOR_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _cursor_tag(user_id: str, payload: bytes) -> bytes:
    """Checksum of a cursor's payload and the reader it was served to."""
    return hashlib.blake2b(user_id.encode("utf-8") + b"\0" + payload, digest_size=_CURSOR_TAG,
                           person=b"newsrec-cursor").digest()


def _varints(values: list[int]) -> bytes:
    out = bytearray()
    for v in values:
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _encode_cursor(user_id: str, served: int, keys: np.ndarray) -> str:
    """A self-contained cursor: how many articles the chain served and their store keys.

    Layout (then URL-safe base64 without padding): version byte, varint ``served``, the sorted
    distinct keys as varints of their gaps (the first as itself), an 8-byte checksum of all that
    and the reader. Store keys are the same in every worker, host and model version; recent
    articles have close keys, so a key takes ~2 bytes.
    """
    keys = arrays.unique(np.asarray(keys, dtype=np.int64))
    gaps = np.diff(keys, prepend=0)
    if keys.size:
        gaps[1:] -= 1  # strictly increasing: a gap of 1 is stored as 0
    payload = bytes([CURSOR_VERSION]) + _varints([int(served)] + gaps.tolist())
    return base64.urlsafe_b64encode(payload + _cursor_tag(user_id, payload)).decode().rstrip("=")


def _decode_cursor(cursor: str | None, user_id: str) -> tuple[int, np.ndarray]:
    """``(served, keys)`` of a cursor :func:`_encode_cursor` made for this reader; ``(0, [])`` for none.

    Raises InvalidCursor (the API answers 400) on anything else: too long, not URL-safe base64, a
    changed character, a cursor of another reader, or an unknown layout.
    """
    if not cursor:
        return 0, np.zeros(0, dtype=np.int64)
    problem = "pass the next_cursor of a previous page of this reader unchanged, or none to start over"
    if len(cursor) > CURSOR_MAX_CHARS:
        raise InvalidCursor(f"cursor is too long: {problem}")
    if not _CURSOR_ALPHABET.issuperset(cursor) or len(cursor) % 4 == 1:
        raise InvalidCursor(f"cursor is not valid: {problem}")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != cursor:  # stray bits: not one we wrote
        raise InvalidCursor(f"cursor is not valid: {problem}")
    payload, tag = raw[:-_CURSOR_TAG], raw[-_CURSOR_TAG:]
    if len(payload) < 2 or not hmac.compare_digest(tag, _cursor_tag(user_id, payload)):
        raise InvalidCursor(f"cursor is not valid for this reader: {problem}")
    if payload[0] != CURSOR_VERSION:
        raise InvalidCursor(f"cursor is of another version: {problem}")
    values, v, shift = [], 0, 0
    for byte in payload[1:]:
        v |= (byte & 0x7F) << shift
        shift += 7
        if shift > 63:
            raise InvalidCursor(f"cursor is not valid: {problem}")
        if not byte & 0x80:
            values.append(v)
            v, shift = 0, 0
    if shift or not values:
        raise InvalidCursor(f"cursor is not valid: {problem}")
    served = values[0]
    if not 0 <= served <= CURSOR_MAX_SERVED or len(values) - 1 > served or max(values) >= CURSOR_MAX_KEY:
        raise InvalidCursor(f"cursor is out of range: {problem}")
    gaps = np.array(values[1:], dtype=np.int64)
    if gaps.size:
        gaps[1:] += 1
    return served, np.cumsum(gaps)


class Engine:
    """Related lists and feeds from the current model, the store and live signals.

    Parameters
    ----------
    store : Store
    models_dir : Path
        Where bundles are written (the folder every replica mounts); the version the store
        names live is loaded from there.
    config : EngineConfig, optional
    clock : callable, optional
        Seconds since the epoch; injectable for replay and tests.
    """

    def __init__(self, store: Store, models_dir: str | Path, config: EngineConfig | None = None,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.models_dir = Path(models_dir)
        self.config = config or EngineConfig()
        if self.config.lag_seconds is None:
            self.config = dataclasses.replace(
                self.config, lag_seconds=NOTICED_LAG_SECONDS if store.tells_writes else 0.0)
        self.clock = clock
        self.last_reload_error: str | None = None
        self._failed_version: str | None = None
        self._failed_signature: tuple | None = None  # its folder when it failed: retried once that changes
        self._failed_at = 0.0  # monotonic time of that failure
        self._live: str | None = None  # the version the store names live, as last read
        self._live_known = False  # False until the store has answered which version is live
        self._model_pos = 0  # log position up to which ``model`` changes were read
        self._store_error: str | None = None
        self._impressions: queue.Queue = queue.Queue(maxsize=self.config.impression_queue)
        self._visibility_seen = threading.local()  # per request thread: the store's data version it saw
        self.impressions_dropped = 0
        self.features_dropped = 0  # feature rows lost to a full queue (their lists may be logged)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reload_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._article_keys: dict[str, int] = {}  # article id -> store key, for cursors
        self._read_sets = ReadSets(store)  # heavy readers' read sets, kept up to date by sequence number
        self._state: LiveState | None = None
        self._rules = RuleSet()  # editors' rules, read whole on each ``rules`` change and swapped
        if not 0.0 <= self.config.lag_seconds <= MAX_LAG_SECONDS:
            raise ValueError(f"lag_seconds must be between 0 and {MAX_LAG_SECONDS:g}; got {self.config.lag_seconds!r}")
        self._recent = RecentVersions(self.config.lag_seconds, self.config.feed_cache_size)
        self._notices_thread: threading.Thread | None = None
        self.write_notices = "off (lag_seconds 0: every list asks the store)" if self.config.lag_seconds <= 0 \
            else "not started"
        if not 0.0 <= self.config.feature_log_rate <= 1.0 or not 0.0 <= self.config.explore_epsilon <= 1.0:
            raise ValueError("feature_log_rate and explore_epsilon must be between 0 and 1; got "
                             f"{self.config.feature_log_rate!r} and {self.config.explore_epsilon!r}")
        self._feed_pipeline = feed_pipeline(self.config.feed_seeds, self.config.feed_clusters,
                                            self.config.feed_neighbours_per_seed, self.config.explore_epsilon,
                                            self.config.explore_pool)
        self._related_pipeline = related_pipeline(self.config.fresh_neighbours)
        self._read_live()
        self._rules_loaded = False
        self._load_rules()
        try:
            if self._live is not None:
                self.reload(self._live)
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
        state = LiveState(
            model=model, fresh=FreshArticles(text_dims, factor_dims), deleted_base=np.zeros(n, dtype=bool),
            fresh_index={}, fresh_neighbours={}, categories=Labels(model.categories), regions=Labels(model.regions),
            counters=self._bundle_counters(model), next_story=int(model.story.max()) + 1 if n else 0,
        )
        try:
            self._catch_up(state)
            self._store_error = None
        except StoreError as exc:
            self._store_error = str(exc)
            log.error("store unavailable while loading live state (retried on the next poll): %s", exc)
        return state

    def _bundle_counters(self, model: ServingModel) -> DecayedCounters:
        counters = DecayedCounters(
            np.array(model.counters["clicks"], dtype=np.float64),
            np.array(model.counters["impressions"], dtype=np.float64),
            np.array(model.counters["engagement"], dtype=np.float64),
            model.as_of if model.n_items else self.clock(), model.ranking.trending_half_life_hours,
        )
        curve = getattr(model, "position_curve", None)
        counters.keep_expected(curve if curve is not None else default_curve(), model.counters.get("expected"))
        counters.grow(model.n_items + 256)
        # exposure windows and first-seen times for the learned ranking stage (serving.features)
        return with_exposure(counters, ExposureStats.from_arrays(getattr(model, "exposure_arrays", {}), counters.as_of))

    def _catch_up(self, state: LiveState) -> None:
        """Bring a new state level with the store, from where its model was fitted.

        The bundle holds what the store held at ``as_of`` and the log position it was read at:
        events with ``ts >= as_of`` among those, and every event written after, are counted here;
        articles published since ``as_of`` (scheduled ones too: they show once due) and every
        takedown, restore and edit since the fitted position are applied. On a store error the
        state stays not caught up and the next poll starts again from the bundle's counters, so
        nothing is counted twice.
        """
        model = state.model
        pos, seq = self.store.log_position()
        if model.n_items:
            start = model.as_of
            fitted_pos = int(model.manifest.get("change_pos", pos))
            fitted_seq = model.manifest.get("event_seq")
            chosen = self.store.iter_articles(published_since=start)
        else:  # no model: the newest articles (fallback lists, widened for an archive), nothing to replay
            now = self.clock()
            chosen = fallback_articles(self.store, now, self.config.fallback_window_days,
                                       model.ranking.min_window_articles)
            # counting from the oldest chosen article: a widened window's articles keep their popularity
            start = min([now - self.config.fallback_window_days * DAY]
                        + [s.article.published_at for s in chosen[:1]])
            fitted_pos, fitted_seq = pos, None
        counters = self._bundle_counters(model)
        for article_id in self.store.deleted_article_ids():
            i = model.item_ids.get(article_id)
            if i >= 0:
                state.deleted_base[i] = True
        arrivals = []
        for stored in chosen:
            if state.index_of(stored.article.article_id) < 0:
                arrivals.append(stored.article)
                state.applied[stored.article.article_id] = stored.updated_at
        state.add_fresh_many(arrivals, self.config.fresh_neighbours)
        while fitted_pos < pos:  # edits, takedowns and restores since the model's snapshot
            changes = self.store.changes_after(fitted_pos, kinds=ARTICLE_CHANGES)
            if not changes:
                break
            self._apply_articles(state, [c.ref for c in changes if c.pos <= pos])
            fitted_pos = changes[-1].pos
        first = self.store.first_seq_since(start) - 1
        if fitted_seq is None:
            self._count_events(state, counters, first, seq, since_ts=start)
        else:  # events up to the fitted position are in the bundle when stamped before as_of
            self._count_events(state, counters, min(first, int(fitted_seq)), int(fitted_seq), since_ts=start)
            self._count_events(state, counters, int(fitted_seq), seq)
        counters.grow(model.n_items + state.fresh.count + 256)  # room for every arrival, counted or not
        state.counters = counters
        state.change_cursor = state.visibility_cursor = pos
        state.event_cursor = seq
        state.caught_up = True

    def _fallback_state(self) -> LiveState:
        return self._new_state(empty_model())

    def reload(self, version: str | None = None, before_swap: Callable[[str], None] | None = None) -> str:
        """Load ``version`` (default: the live one, read from the store now) beside the serving one
        and swap; raises BundleError on a bad or missing bundle (the serving one stays).

        ``before_swap(version)`` runs once the bundle has loaded and before this worker serves it
        (a promotion's compare-and-set): whatever it raises leaves the serving one serving."""
        with self._reload_lock:
            if version is None:
                self._check_live()
                version = self._live
                if version is None:
                    raise BundleError("no model version is live: stage one with 'newsrec train' and make it live "
                                      "with 'newsrec models promote VERSION'")
            signature = bundle_signature(self.models_dir, version)  # before loading: a copy that lands meanwhile counts
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
                self._failed_version, self._failed_signature = version, signature
                self._failed_at = time.monotonic()
                raise BundleError(message) from exc
            state = self._new_state(model)
            state.clusters = bundle_clusters(arrays, model)
            if before_swap is not None:
                before_swap(model.version)
            self._state = state
            self.last_reload_error = None
            self._failed_version = self._failed_signature = None
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

    def _read_live(self) -> None:
        """Read which version is live (a database naming none adopts ``CURRENT``, once) and
        from where ``model`` changes are followed. While the store does not answer, the version
        ``CURRENT`` names (the copy written at each promotion) stands in until it does."""
        try:
            pos = self.store.log_position()[0]
            self._live = live_version(self.store, self.models_dir)
            self._model_pos, self._live_known = pos, True
        except StoreError as exc:
            self._store_error = str(exc)
            self._live = self._safe_current()
            log.error("store unavailable: %s; serving %s (named by CURRENT) until it says which version is live",
                      exc, self._live)

    def _check_live(self) -> None:
        """Take in the ``model`` changes committed since the last look (an indexed read)."""
        if not self._live_known:
            self._read_live()
            return
        while True:
            changes = self.store.changes_after(self._model_pos, limit=FOLLOW_BATCH, kinds=MODEL_CHANGES)
            if changes:
                self._note_live(changes[-1])
            if len(changes) < FOLLOW_BATCH:
                return

    def _note_live(self, change) -> None:
        if change.pos > self._model_pos:
            self._model_pos, self._live = change.pos, change.ref

    def maybe_reload(self) -> bool:
        """Load the live version if another one serves: after a promotion or a rollback from any
        host (a ``model`` change in the log), or, for a live version that failed to load, once its
        folder has changed (copied in or repaired) and otherwise every ``RETRY_FAILED_SECONDS``
        (a passing error), not every poll: a damaged bundle would be hashed again each second."""
        try:
            self._check_live()
        except StoreError as exc:  # keep serving; the next poll asks again
            self._store_error = str(exc)
        live = self._live
        if self._failed_version != live:  # the version that failed is not the live one: nothing to report
            self.last_reload_error = self._failed_version = self._failed_signature = None
        if live is None or live == self.model_version:
            return False
        if (live == self._failed_version and time.monotonic() - self._failed_at < RETRY_FAILED_SECONDS
                and bundle_signature(self.models_dir, live) == self._failed_signature):
            return False
        try:
            self.reload(live)
        except BundleError as exc:
            log.error("refused model %s: %s", live, exc)
            return False
        return True

    def status(self) -> dict:
        state = self._state
        reasons = []
        try:  # the present state, also without the background poll
            live = self.store.live_model() if self._live_known else self._live
        except StoreError:
            live = self._live
        serving = state.model.version
        if serving is None:
            reasons.append("no model loaded: serving recent popular articles" + (
                "" if live else " (no model version is live: stage one with 'newsrec train' and make it live with "
                                "'newsrec models promote VERSION')"))
        if self.last_reload_error and self._failed_version == live:
            keeps = f"{serving} keeps serving" if serving else "fallback lists meanwhile"
            reasons.append(f"last reload failed: the live model {live} cannot be loaded here ({keeps}; retried when "
                           f"its folder changes): {self.last_reload_error}")
        if self._store_error:
            reasons.append(f"store unavailable: {self._store_error}")
        if self.store.write_error:
            reasons.append(f"store writes failing: {self.store.write_error}")
        return {
            "model_version": serving,
            "live_version": live,
            "degraded": bool(reasons),
            "reasons": reasons,
            "last_reload_error": self.last_reload_error,
            "articles_in_window": int(state.model.n_items - state.model.window_start + state.fresh.count),
            "fresh_articles": int(state.fresh.count),
            "impressions_dropped": self.impressions_dropped,
            "lag_seconds": self._recent.lag,
            "write_notices": self.write_notices,
            # bring-your-own plugins: failures while building lists in this worker (each list served without)
            "plugin_errors": {p.name: {"role": p.spec.role, "errors": p.errors, "last_error": p.last_error}
                              for p in getattr(state.model, "plugins", ())},
        }

    # -- following the store ----------------------------------------------------------------
    def follow(self, state: LiveState | None = None) -> int:
        """Apply every change committed after the state's cursor, in commit order; returns how many.

        Every worker of every host follows the same log, so an edit, takedown, restore or event
        accepted anywhere reaches every list, once.
        """
        state = state or self._state
        applied = 0
        while True:
            changes = self.store.changes_after(state.change_cursor, limit=FOLLOW_BATCH)
            if not changes:
                return applied
            refs = [c.ref for c in changes if c.kind in ARTICLE_CHANGES]
            if refs:
                self._apply_articles(state, refs)
            hi = max((c.hi for c in changes if c.kind == "events"), default=0)
            if hi > state.event_cursor:
                state.event_cursor = self._count_events(state, state.counters, state.event_cursor, hi)
            if any(c.kind == "rules" for c in changes):
                self._load_rules(state)
            promoted = [c for c in changes if c.kind == "model"]
            if promoted:
                self._note_live(promoted[-1])
            state.change_cursor = changes[-1].pos
            applied += len(changes)
            # a promotion or rollback: load the live version now; its state catches up with the
            # store as it loads, so this one is done
            if promoted and state is self._state and self._live != state.model.version and self.maybe_reload():
                return applied
            if len(changes) < FOLLOW_BATCH:
                return applied

    def _apply_articles(self, state: LiveState, article_ids: list[str]) -> None:
        """Make these articles as they are stored now: new, edited, taken down or restored
        (the current row, so applying a change twice or late is harmless)."""
        ids = list(dict.fromkeys(article_ids))
        stored = self.store.get_stored_articles(ids)
        arrivals = []
        for article_id in ids:
            found = stored.get(article_id)
            if found is None:
                continue
            if state.applied.get(article_id) == found.updated_at:
                continue  # this very row is applied already (a replay after a catch-up, a second change)
            index = state.index_of(article_id)
            if found.deleted:
                state.mark_deleted(article_id)
            elif index < 0:
                arrivals.append(found.article)
            else:
                state.update(index, found.article)
            state.applied[article_id] = found.updated_at
        if arrivals:
            state.add_fresh_many(arrivals, self.config.fresh_neighbours)

    def _apply_visibility(self, state: LiveState, newest: int | None = None) -> None:
        """Takedowns and restores committed by any worker, applied before a list is built: a
        legal takedown must not be served by the other worker until its next poll. ``newest``:
        the position of the newest one, when the caller read it already (nothing to do if applied)."""
        if not state.caught_up:
            return
        if newest is not None and newest <= state.visibility_cursor:
            return
        seen = self._visibility_seen
        if newest is None and getattr(seen, "state", None) is state and self._recent.within(seen.at):
            return  # lag_seconds: this thread looked less than the lag ago
        try:
            asked = self._recent.ask()
            # nothing committed by another connection since this thread last looked: nothing to read
            version = self.store.data_version()
            if version is not None and getattr(seen, "state", None) is state and seen.version == version:
                seen.at = asked
                return
            changes = self.store.changes_after(state.visibility_cursor, limit=1000, kinds=VISIBILITY_CHANGES)
            if changes:
                self._apply_articles(state, [c.ref for c in changes])
                state.visibility_cursor = changes[-1].pos
            seen.state, seen.version, seen.at = state, version, asked
        except StoreError as exc:
            self._store_error = str(exc)

    def _count_events(self, state: LiveState, counters: DecayedCounters, after: int, upto: int,
                      since_ts: float | None = None) -> int:
        """Count events with ``after < seq <= upto`` into ``counters``; returns the last seq read."""
        cursor = after
        while cursor < upto:
            # in chunks, letting request threads have the interpreter between them (sleep(0)):
            # thousands of impressions a second come back here
            new_cursor, keys, codes, ts, positions = self.store.event_keys_after(cursor, upto=upto, since_ts=since_ts,
                                                                                 positions=True)
            if new_cursor == cursor:
                break
            cursor = new_cursor
            if keys.size:
                counters.grow(state.model.n_items + state.fresh.count + 256)
                counters.add(state.indices_of_keys(keys, self.store), codes, np.minimum(ts, self.clock()),
                             ENGAGEMENT, positions)
            time.sleep(0)
        return max(cursor, upto)

    def refresh(self) -> None:
        """One poll: every change any worker committed since the last one."""
        state = self._state
        try:
            if not state.caught_up:  # a store error interrupted the load: start again from the bundle
                retry = self._new_state(state.model)
                if not retry.caught_up:
                    return
                retry.clusters = state.clusters
                self._state = state = retry
            state.counters.advance(self.clock())
            if not self._rules_loaded:  # the store failed when they were first read
                self._load_rules(state)
            self.follow(state)
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
        if (refresh or summary is None or abs(now - summary.at) > self.config.summary_max_age
                or now >= summary.next_due):  # a scheduled article falls due: a candidate from now on
            if state.base_moments is None:
                state.base_moments = factor_moments(state.model.item_factors[state.model.window_start:])
            if state.clusters is None:
                state.clusters = window_clusters(state.model)
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
        self.start_notices()

    def start_notices(self) -> None:
        """With a lag, follow the store's notices of committed writes (:meth:`Store.watch_writes`)
        on a thread of their own: a reader written for by any worker of any host, or a takedown,
        ends the reuse of the store's answers at once (serving.freshness)."""
        if self._recent.lag <= 0 or self._notices_thread is not None:
            return
        self._stop.clear()
        self._notices_thread = threading.Thread(target=self._follow_notices, name="newsrec-notices", daemon=True)
        self._notices_thread.start()

    def _follow_notices(self) -> None:
        watch = None
        while not self._stop.is_set():
            try:
                if watch is None:
                    watch = self.store.watch_writes()
                    if watch is None:
                        self.write_notices = "none: this store tells of no writes (lists lag by up to lag_seconds)"
                        return
                    self._recent.clear()  # answers kept before listening may have missed a notice
                    if self.write_notices.startswith("lost"):
                        log.info("listening again for the store's notices of writes")
                    self.write_notices = "listening"
                batch = watch.notices(timeout=0.5)
                for readers in batch:
                    if readers is None:
                        self._recent.clear()
                    else:
                        self._recent.drop(readers)
                if batch:  # what arrives meanwhile is read together: a wake-up per pause, not per write
                    self._stop.wait(NOTICE_PAUSE_SECONDS)
            except Exception as exc:  # keep serving, within the lag; listen again shortly
                if watch is not None:
                    watch.close()
                    watch = None
                if self.write_notices == "listening" or not isinstance(exc, StoreError):
                    log.warning("lost the store's notices of writes (listening again; lists lag by up to %g s "
                                "meanwhile): %s", self._recent.lag, exc, exc_info=not isinstance(exc, StoreError))
                self.write_notices = f"lost (listening again; lists lag by up to lag_seconds meanwhile): {exc}"
                self._stop.wait(1.0)
        if watch is not None:
            watch.close()

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
        if self._notices_thread is not None:
            self._notices_thread.join(timeout=5)
            self._notices_thread = None
        try:
            self.flush_impressions()
        except StoreError:
            pass

    # -- editorial rules ---------------------------------------------------------------------
    def _load_rules(self, state: LiveState | None = None) -> None:
        """Read every rule in force and swap the set (a ``rules`` change, from any worker or host);
        cached related lists are built again with them."""
        try:
            self._rules = RuleSet(tuple(self.store.list_rules()))
            self._rules_loaded = True
        except StoreError as exc:
            self._store_error = str(exc)
            return
        except NotImplementedError:  # a store without editorial rules
            self._rules_loaded = True
            return
        state = state or self._state
        if state is not None:
            state.related_cache = {}
            state.feed_cache = {}

    @property
    def rules(self) -> RuleSet:
        return self._rules

    def add_rule(self, rule: EditorialRule, who: str) -> None:
        """Store a pin, boost, bury or block (audited as ``who``); this worker applies it at once,
        the others on their next poll (the ``rules`` change). Raises NotFound for a pin of an
        article the store does not hold, or a rule scoped to such an article's related lists
        (a typo would otherwise be a rule that never shows)."""
        check_named_articles(self.store, rule)
        self.store.add_rule(rule, who)
        self._load_rules()

    def remove_rule(self, rule_id: str, who: str) -> bool:
        found = self.store.remove_rule(rule_id, who)
        if found:
            self._load_rules()
        return found

    # -- writes ----------------------------------------------------------------------------
    def record_events(self, events: list[Interaction]) -> tuple[int, int]:
        """Store durably. Feeds read the reader's events from the store, so the next feed reflects
        them at once; popularity counters pick them up on the next poll in every worker."""
        inserted, duplicates = self.store.add_events(events)
        self._recent.drop({event.user_id for event in events})
        return inserted, duplicates

    def publish_articles(self, articles: list[Article]) -> int:
        """Store, then apply here at once as stored (a taken-down article stays down); other
        workers apply the change when they follow the log."""
        written = self.store.upsert_articles(articles)
        self._apply_articles(self._state, [a.article_id for a in articles])
        return written

    def takedown(self, article_id: str) -> bool:
        found = self.store.takedown_article(article_id)
        self._state.mark_deleted(article_id)
        return found

    def restore(self, article_id: str) -> bool:
        """Undo a takedown (the only way back: publishing again keeps an article down)."""
        found = self.store.restore_article(article_id)
        if found:
            self._apply_articles(self._state, [article_id])
        return found

    def forget_user(self, user_id: str) -> dict:
        """Delete what is stored about the reader up to now; idempotent.

        The store keeps a tombstone: tokens issued before it are refused, and lists served before
        it (queued here or in another worker) are dropped when they are written, so nothing needs
        a second pass; events the reader posts afterwards are kept.
        """
        removed = self.store.forget_user(user_id)
        self._recent.drop((user_id,))
        kept = []
        while True:  # this worker's queued lists of the reader are dropped now rather than at the write
            try:
                item = self._impressions.get_nowait()
            except queue.Empty:
                break
            if item.user_id != user_id:
                kept.append(item)
        for item in kept:
            self._impressions.put_nowait(item)
        return removed

    def forgotten_at(self, user_id: str) -> float | None:
        return self.store.forgotten_at(user_id)

    def get_preferences(self, user_id: str) -> Preferences | None:
        return self.store.get_preferences(user_id)

    def set_preferences(self, prefs: Preferences) -> None:
        self.store.set_preferences(prefs)
        self._recent.drop((prefs.user_id,))

    # -- impressions -----------------------------------------------------------------------
    def _log_impressions(self, user_id: str | None, ranked: RankedList, now: float) -> None:
        if not self.config.log_impressions or not ranked.items:
            return
        try:
            self._impressions.put_nowait(ServedList(
                list_id=ranked.list_id, user_id=user_id or ANONYMOUS, ts=now,
                article_ids=tuple(i.article_id for i in ranked.items), offset=ranked.extra.get("offset", 0),
                model_version=ranked.model_version, variant=None, strategy=ranked.strategy))
        except queue.Full:
            self.impressions_dropped += len(ranked.items)

    def _log_features(self, user_id: str, state: LiveState, build, ranked: RankedList, now: float,
                      with_features: bool) -> None:
        """Queue the learned stage's feature vectors of the items shown (NaN rows for items it did
        not score, a pin) if ``with_features``, else none (a row with no names: an explored list
        outside the sample carries only its probabilities), and, with exploration on, each item's
        selection probability."""
        index = state.indices([item.article_id for item in ranked.items])
        names = FEATURE_NAMES if with_features else ()
        X = np.full((index.size, len(names)), np.nan)
        cand = build.cand
        job = build.feature_job if with_features else None
        if job is None and with_features and cand is not None and (PREFIX + FEATURE_NAMES[0]) in cand.features \
                and cand.index.size:
            rows = rows_of(cand.index, index)  # the items' rows in cand (-1: not scored)
            found = rows >= 0
            X[found] = np.column_stack([cand.features[PREFIX + name][rows[found]] for name in FEATURE_NAMES])
        propensity = None
        if build.propensity is not None:  # pins were placed with probability 1
            chosen = dict(zip(cand.index[build.chosen].tolist(), build.propensity.tolist()))
            propensity = np.array([chosen.get(int(k), 1.0) for k in index.tolist()])
        row = FeatureLogRow(list_id=ranked.list_id, user_id=user_id or ANONYMOUS, ts=now,
                            article_ids=tuple(i.article_id for i in ranked.items), names=names,
                            features=X, offset=ranked.extra.get("offset", 0), propensities=propensity)
        try:
            self._impressions.put_nowait(row if job is None else _PendingFeatures(row, job, index))
        except queue.Full:
            self.features_dropped += 1

    def log_served(self, served: ServedList) -> None:
        """Queue a served list built outside this engine (an experiment's, which records its
        variant), written off the request path with this engine's own lists."""
        if not self.config.log_impressions or not served.article_ids:
            return
        try:
            self._impressions.put_nowait(served)
        except queue.Full:
            self.impressions_dropped += len(served.article_ids)

    def flush_impressions(self) -> int:
        """Write queued served lists, one row each (off the request thread); returns the impressions
        (their items) handed to the store.

        While the store refuses writes the lists stay queued (up to ``impression_queue``; beyond
        that their items are counted in ``impressions_dropped``) and 0 is returned. One flush at a
        time: a caller waits for one in flight (the background thread's), so what was queued before
        the call is written when it returns, not still on its way from another thread.
        """
        with self._flush_lock:
            return self._flush_impressions()

    def _flush_impressions(self) -> int:
        written = 0
        while written < 50_000:
            batch: list[ServedList] = []
            while len(batch) < SERVED_LIST_CHUNK:
                try:
                    batch.append(self._impressions.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                break
            lists = [item for item in batch if isinstance(item, ServedList)]
            rows = []  # feature rows (FeatureLogRow), their vectors computed now where they were put off
            for item in batch:
                row = item.resolve() if isinstance(item, _PendingFeatures) else item
                if row is None:
                    self.features_dropped += 1
                elif not isinstance(row, ServedList):
                    rows.append(row)
            try:
                self.store.add_served_lists(lists)
                lists = []  # written: a failure below re-queues only the feature rows
                if rows:
                    self.store.add_feature_logs(rows)
            except StoreError as exc:
                for item in lists + rows:
                    try:
                        self._impressions.put_nowait(item)
                    except queue.Full:
                        if isinstance(item, ServedList):
                            self.impressions_dropped += len(item.article_ids)
                        else:
                            self.features_dropped += 1
                log.warning("impressions kept in memory, the store refused them: %s", exc)
                return written
            written += sum(len(item.article_ids) for item in batch if isinstance(item, ServedList))
            if not self._impressions.empty():
                time.sleep(SERVED_LIST_PAUSE)
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
            index = state.add_fresh(found[article_id], self.config.fresh_neighbours)
        snap = state.snapshot()
        if snap.deleted(np.array([index]))[0]:
            raise NotFound(f"article {article_id} was taken down")
        return index

    def related(self, article_id: str, limit: int = 10, user_id: str | None = None,
                filters: ListFilter | None = None) -> RankedList:
        """Articles to show under ``article_id`` (of the sections ``filters`` names); with ``user_id``,
        less what that reader read or hid in the serving window (topped up from further down the
        list so it keeps ``limit`` items; pins keep their positions)."""
        state = self._state
        self._apply_visibility(state)
        now = self.clock()
        anchor = self._locate(state, article_id)
        filters = filters or ListFilter()
        items, strategy, pins, empty = self._shared_related(state, anchor, limit, now, filters)
        drop = sink = np.zeros(0, np.int64)
        if user_id:  # what the reader read or hid comes out; the stories they hid go last
            snap = state.snapshot()
            hidden = self._window_reads(state, snap, user_id, now, events=("hide",))
            drop = arrays.union1d(self._window_reads(state, snap, user_id, now), hidden)
            sink = arrays.unique(snap.story(hidden))
        depth = limit
        while drop.size:
            # the shared list is the same for every reader (and cached): the reader's reads come out after
            kept = _unread(state, items, drop, pins, sink)
            if len(kept) >= limit or len(items) < depth:  # enough, or the whole list is this short
                items = kept[:limit]
                break
            # at least twice as deep (a few rounds at most), in whole steps (cache entries readers share)
            depth = -(-max(2 * depth, limit + len(items) - len(kept)) // RELATED_TOP_UP) * RELATED_TOP_UP
            items, strategy, pins, empty = self._shared_related(state, anchor, depth, now, filters)
        extra = {"empty_reason": empty or _empty_reason(filters)} if not items else {}
        ranked = RankedList(items, strategy, state.model.version, _list_id(), extra=extra)
        if user_id:
            self._log_impressions(user_id, ranked, now)
        return ranked

    def _shared_related(self, state: LiveState, anchor: int, limit: int, now: float,
                        filters: ListFilter | None = None) -> tuple[tuple[RankedItem, ...], str, dict, str | None]:
        """The related list of ``anchor`` every reader shares: (items, strategy, pinned article id ->
        position, empty reason), cached per (anchor, limit, section)."""
        model = state.model
        filters = filters or ListFilter()
        ttl = self.config.related_cache_seconds
        cache = state.related_cache  # before the snapshot: a change applied meanwhile replaces it
        key = (anchor, limit, filters.key()) if filters else (anchor, limit)
        cached = cache.get(key) if ttl > 0 else None
        # (expires on the monotonic clock, items, strategy, engine clock time a candidate it left out
        # falls due or a rule starts or ends, pins, empty reason)
        if cached is not None and cached[0] > time.monotonic() and now < cached[3]:
            return unpack_items(cached[1]), cached[2], cached[4], cached[5]
        snap = state.snapshot()
        rules = self._rules
        build = self._related_pipeline.run(ListBuild(
            "related", state, snap, now, limit, lambda: self._window_summary(state, snap, now), anchor=anchor,
            filters=filters, rules=rules))
        has_text = model.embedder is not None
        strategy = ("hybrid" if model.has_cf else "content") if has_text else "fallback-popular"
        items = build.items
        if ttl > 0:  # into the cache of the snapshot's time: one replaced since is no longer read
            if len(cache) >= self.config.related_cache_size:
                try:
                    cache.pop(next(iter(cache)), None)  # the oldest entry
                except (RuntimeError, StopIteration):  # another thread changed it meanwhile
                    pass
            due = min(_next_due(snap, build.index if build.index is not None else np.zeros(0, np.int64), now),
                      rules.next_change(now))
            cache[key] = (time.monotonic() + ttl, pack_items(items), strategy, due, build.pin_positions,
                          build.empty_reason)
        return items, strategy, build.pin_positions, build.empty_reason

    def _profile(self, state: LiveState, snap: Snapshot, user_id: str, now: float,
                 known: ReaderVersion | None = None) -> ReaderProfile:
        """The reader's profile from their stored events (so a click counts at once) and follows."""
        return self._profile_and_history(state, snap, user_id, now, known)[0]

    def _profile_and_history(self, state: LiveState, snap: Snapshot, user_id: str, now: float,
                             known: ReaderVersion | None = None, reads: ReaderReads | None = None
                             ) -> tuple[ReaderProfile, tuple[np.ndarray, np.ndarray] | None]:
        """:meth:`_profile` and ``(article keys, ts)`` of every click/read/share of theirs when the
        profile read them all (fewer than ``max_reader_events``: most readers), else None.

        ``known``: what :meth:`Store.reader_version` said just before; reads it says would come
        back empty (no click/read/share, no preferences) are not made. ``reads``: those reads,
        made already (:meth:`_reader_reads`)."""
        history = None
        try:
            # impressions say nothing about interest: the last events that do (served lists would crowd them out)
            limit = self.config.max_reader_events
            if reads is not None:
                keys, codes, ts, dwell = reads.history if reads.history is not None else _no_events()
            elif known is not None and not known.has_reads:
                keys, codes, ts, dwell = _no_events()
            else:
                keys, codes, ts, dwell = self.store.user_event_keys(user_id, limit=limit, events=PROFILE_EVENTS)
            if keys.size < limit:
                history = keys, ts
            items_idx = state.indices_of_keys(keys, self.store)
            if reads is not None:
                prefs = reads.preferences
            else:
                prefs = (None if known is not None and not known.has_preferences
                         else self.store.get_preferences(user_id))
        except StoreError:
            items_idx, codes, ts, dwell = _no_events()
            prefs = None
            history = None
        past = ts <= now
        if not past.all():
            items_idx, codes, ts, dwell = items_idx[past], codes[past], ts[past], dwell[past]
        cats = np.array([state.categories.code(c, add=False) for c in (prefs.categories if prefs else ())],
                        dtype=np.int64)
        regs = np.array([state.regions.code(r, add=False) for r in (prefs.regions if prefs else ())], dtype=np.int64)
        profile = build_profile(snap, items_idx, codes, ts, dwell, cats, regs, now)
        return self._reader_controls(state, snap, profile, user_id, now, known, reads), history

    def _reader_reads(self, snap: Snapshot, user_id: str, now: float, known: ReaderVersion) -> ReaderReads:
        """Every read of the reader's profile the probe says is not empty, sent together
        (:meth:`Store.reader_reads`: one round trip on PostgreSQL); nothing when the store fails
        (the profile is then built without them, as when each read failed)."""
        since = self._reads_since(snap, now)
        try:
            # a heavy reader's read set (the store answers it only for one): what _window_reads needs next
            return self.store.reader_reads(user_id, **known.reads_asked(
                self.config.max_reader_events, self.config.max_reader_impressions, (since, now),
                read_set=not self._read_sets.holds(user_id)))
        except StoreError:
            return ReaderReads(None, None, None, None)

    def _reader_controls(self, state: LiveState, snap: Snapshot, profile: ReaderProfile, user_id: str,
                         now: float, known: ReaderVersion | None = None,
                         reads: ReaderReads | None = None) -> ReaderProfile:
        """The profile with what the reader hid ("tidak tertarik", in the serving window) and how
        often their last ``max_reader_impressions`` impressions showed each article they did not
        click (impression fatigue). Unchanged when the store fails."""
        shown = counts = skipped = np.zeros(0, dtype=np.int64)
        seen = clicked_seen = 0
        try:
            hidden = np.zeros(0, dtype=np.int64)
            stored = known is None or known.has_other_events  # no hide or impression event stored: no hides
            if stored and reads is not None:  # read already (with nothing when that failed)
                hidden = self._catalog_indices(state, reads.hides if reads.hides is not None else hidden)
            elif stored:
                hidden = self._window_reads(state, snap, user_id, now, events=("hide",), raise_errors=True)
            # always read (not only for fatigue): the learned stage's features use the skipped articles and
            # the reader's own click-through, and must not depend on the blend's settings (training = serving)
            # nor on the feed cache: a reader's impressions are mostly the lists served to them
            shown_any = known is None or known.has_impressions
            if shown_any and self.config.max_reader_impressions > 0:
                if reads is not None:
                    keys, _, ts, _ = reads.impressions if reads.impressions is not None else _no_events()
                else:
                    keys, _, ts, _ = self.store.user_event_keys(user_id, limit=self.config.max_reader_impressions,
                                                                events=("impression",))
                index = state.indices_of_keys(keys[ts <= now], self.store)
                index = index[index >= 0]
                was_clicked = arrays.isin(index, profile.positives)
                seen, clicked_seen = int(index.size), int(was_clicked.sum())
                shown, counts = np.unique(index, return_counts=True)
                not_clicked = ~arrays.isin(shown, profile.positives)
                shown, counts = shown[not_clicked], counts[not_clicked].astype(np.int64)
                skipped = recent_unique(index[~was_clicked], MAX_SKIPPED)  # each article's newest showing first
        except StoreError:
            return profile
        if hidden.size == 0 and seen == 0:
            return profile
        cats = snap.category(hidden).astype(np.int64)
        cats = cats[cats >= 0]
        return dataclasses.replace(
            profile, hidden=hidden, hidden_stories=arrays.unique(snap.story(hidden)),
            hidden_categories=np.bincount(cats, minlength=len(state.categories.names)) if cats.size else None,
            shown=shown, shown_counts=counts, skipped=skipped, impressions_seen=seen, impressions_clicked=clicked_seen)

    def _window_reads(self, state: LiveState, snap: Snapshot, user_id: str, now: float,
                      events: tuple[str, ...] = PROFILE_EVENTS, raise_errors: bool = False,
                      history: tuple[np.ndarray, np.ndarray] | None = None,
                      known: ReaderVersion | None = None, first: tuple | None = None) -> np.ndarray:
        """Catalog indices of every article the reader clicked, read or shared in the serving window
        (sorted int64): a list leaves them all out, not just those of the profile's last events.

        Nobody reads an article before it is published, so events since the window's oldest
        article (less a day for skewed clocks) hold them all. Empty when the store fails.
        ``history``: ``(keys, ts)`` of all the reader's click/read/share events, read just before
        (no query then); ``known``: the probe's sequence bounds of those (for the read-set cache);
        ``first``: ``Store.user_read_set`` of the reader from ``since`` to ``now``, read just before.
        """
        since = self._reads_since(snap, now)
        read_sets = self._read_sets
        try:
            if history is not None and set(events) == set(PROFILE_EVENTS):
                keys, ts = history
                keys = arrays.unique(keys[(ts >= since) & (ts <= now)])
            elif set(events) == set(PROFILE_EVENTS):  # what ReadSets keeps
                bounds = ((known.reads_first, known.reads_last) if known is not None and known.has_reads
                          else None)
                keys = read_sets.keys(user_id, since, until=now, bounds=bounds, first=first)
            else:
                keys = self.store.user_read_keys(user_id, since, until=now, events=events)
            return self._catalog_indices(state, keys)
        except StoreError:
            if raise_errors:
                raise
            return np.zeros(0, dtype=np.int64)

    @staticmethod
    def _reads_since(snap: Snapshot, now: float) -> float:
        """Nobody reads an article before it is published: a reader's events since the window's
        oldest article (less a day for skewed clocks) hold every read of a window article."""
        return _window_published_since(snap, now) - READ_CLOCK_SKEW

    def _catalog_indices(self, state: LiveState, keys: np.ndarray) -> np.ndarray:
        """Sorted distinct catalog indices of store article keys (unknown ones left out); raises StoreError."""
        index = state.indices_of_keys(keys, self.store)
        return arrays.unique(index[index >= 0])

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
            cand = learned_stage(snap, profile, state.counters, now, cand, pool=cand.index.size, keep_features=features)
            if state.model.plugins:  # bring-your-own scorers, as the feed pipeline's PluginScoring stage
                cand = apply_plugin_scores(state, snap, cand, "feed", reader_of(state, snap, profile, user_id, now),
                                           profile)
            out[known] = cand.score
            for name, values in cand.features.items():
                columns[name] = np.full(len(article_ids), np.nan)
                columns[name][known] = values
        return (out, columns) if features else out

    def feed(self, user_id: str, limit: int = 20, cursor: str | None = None,
             filters: ListFilter | None = None, log: bool = True, explain: bool = False) -> RankedList:
        """A page of the reader's feed: the current ranking minus what they read in the window and
        minus every article the earlier pages of this chain served (named by ``cursor``).

        Pages therefore never repeat one another, even when a click reorders the ranking between
        them, on whatever worker each is asked. A chain ends (``next_cursor`` None) after
        ``max_feed_depth`` articles. Raises InvalidCursor on a cursor this reader was not given.
        ``log=False`` (the console looking at a reader's feed) logs no served list; ``explain`` puts
        each item's weighted score parts in ``extra["parts"]`` (``{feature: value}`` per item).
        """
        served_before, served_keys = _decode_cursor(cursor, user_id)
        state = self._state
        now = self.clock()
        cached = None
        if not cursor and not explain and self.config.feed_cache_seconds > 0:
            cached = self._cached_feed(state, user_id, limit, filters, now)
            if isinstance(cached, RankedList):
                if log:
                    self._log_impressions(user_id, cached, now)
                return cached
        else:
            self._apply_visibility(state)
        snap = state.snapshot()
        known = ReaderVersion(*cached[2]) if cached is not None else None
        reads = None
        if known is not None:  # the reads made with the version, unless the window moved since
            reads = cached[3] if cached[3] is not None and cached[4] == self._reads_since(snap, now) else (
                self._reader_reads(snap, user_id, now, known))
        profile, history = self._profile_and_history(state, snap, user_id, now, known, reads)
        read = (self._window_reads(state, snap, user_id, now, history=history, known=known,
                                   first=reads.read_set if reads is not None else None)
                if known is None or known.has_reads else np.zeros(0, dtype=np.int64))
        read = arrays.union1d(read, profile.hidden)  # a hidden article never comes back to that reader
        if read.size:  # the profile scores with the last events; every read in the window is left out
            profile = dataclasses.replace(profile, read=arrays.union1d(profile.read, read))
        size = max(0, min(limit, self.config.max_feed_depth - served_before))
        list_id = _list_id()
        seed = list_seed(list_id)
        keep = log and self.config.log_impressions and (seed >> 40) / float(1 << 24) < self.config.feature_log_rate
        build = self._feed_pipeline.run(ListBuild(
            "feed", state, snap, now, size, lambda: self._window_summary(state, snap, now), profile=profile,
            offset=served_before, served=self._served_indices(state, served_keys), filters=filters or ListFilter(),
            rules=self._rules, seed=seed, keep_features=keep, user_id=user_id))
        items = build.items
        if state.model.embedder is None:
            strategy = "fallback-popular"
        elif profile.is_cold:
            strategy = "cold-start"
        else:
            strategy = "hybrid"
        next_cursor = None
        depth = served_before + len(items)
        if len(items) == limit and build.cand.index.size > build.chosen.size and depth < self.config.max_feed_depth:
            next_cursor = self._next_cursor(state, user_id, depth, served_keys, [item.article_id for item in items])
        extra = {"offset": served_before}
        if not items:
            extra["empty_reason"] = build.empty_reason or _empty_reason(filters)
        if explain:
            extra["parts"] = _score_parts(state, build, items)
        ranked = RankedList(items, strategy, state.model.version, list_id, next_cursor=next_cursor, extra=extra,
                            cache="miss" if cached is not None else None,
                            packed=pack_items(items) if cached is not None else None)
        if cached is not None:
            self._keep_feed(*cached[:3], ranked, build, snap, now)
        if log:
            self._log_impressions(user_id, ranked, now)
            if items and (keep or build.propensity is not None):
                self._log_features(user_id, state, build, ranked, now, keep)
        return ranked

    def _cached_feed(self, state: LiveState, user_id: str, limit: int, filters: ListFilter | None, now: float):
        """The reader's cached first page as a new list (its own list id), or, on a miss, what
        :meth:`_keep_feed` needs to keep the page about to be built and the reads made with the
        version: ``(cache, key, version, reads, since)`` (``reads`` None: not made; ``since``
        their window start); None when nothing can be kept (the store cannot say what the
        reader's version is).

        One store round trip (``Store.reader_version``), which also says on PostgreSQL whether a
        takedown is new; takedowns are applied before the cache is looked at (one replaces it).
        A reader with no page kept cannot hit: the reads the page needs go with the version
        (``Store.reader_version_and_reads``: the same one round trip on PostgreSQL).
        """
        key = (user_id, limit, filters.key()) if filters else (user_id, limit)
        reads = since = None
        try:
            kept = key in state.feed_cache
            version = self._recent.get(user_id) if kept else None  # (None unless lag_seconds: answered < lag ago)
            if version is None:
                asked = self._recent.ask()
                if kept:
                    version = self.store.reader_version(user_id)
                else:
                    since = self._reads_since(state.snapshot(), now)
                    version, reads = self.store.reader_version_and_reads(
                        user_id, history=self.config.max_reader_events, impressions=self.config.max_reader_impressions,
                        window=(since, now), read_set=not self._read_sets.holds(user_id))
                self._recent.put(user_id, version, asked)
        except StoreError:
            version = None
        self._apply_visibility(state, version[0] if version is not None else None)
        if version is None:
            return None
        cache = state.feed_cache  # after the takedowns: one applied meanwhile replaced it
        hit = cache.get(key)
        # (version, expires on the monotonic clock, engine clock it was built at, clock time a
        # candidate it left out falls due or a rule starts or ends, the list)
        if (hit is not None and hit[0] == version[1:] and hit[1] > time.monotonic()
                and hit[2] <= now < hit[3] and now - hit[2] <= self.config.feed_cache_seconds):
            items, strategy, model_version, next_cursor, extra = hit[4]
            return RankedList(unpack_items(items), strategy, model_version, _list_id(), next_cursor=next_cursor,
                              extra=dict(extra), cache="hit", packed=items)
        return cache, key, version[1:], reads, since

    def _keep_feed(self, cache: dict, key: tuple, version: tuple, ranked: RankedList, build: ListBuild,
                   snap: Snapshot, now: float) -> None:
        """Keep a first page built from ``version`` of the reader (read before the page was built:
        a click that landed meanwhile makes the next request miss, never the other way round)."""
        if len(cache) >= self.config.feed_cache_size:
            try:
                cache.pop(next(iter(cache)), None)  # the oldest entry
            except (RuntimeError, StopIteration):  # another thread changed it meanwhile
                pass
        times = cache.get(None)  # the window's publication times, sorted: the cache is replaced when they change
        if times is None:
            times = cache[None] = np.sort(snap.published_at(np.arange(snap.model.window_start, snap.n_total)))
        later = int(np.searchsorted(times, now + FUTURE_GRACE, side="right"))
        due = min(float(times[later]) - FUTURE_GRACE if later < times.size else float("inf"),
                  build.rules.next_change(now) if build.rules is not None else float("inf"))
        # the page as tuples of plain values, which the cycle collector stops walking (pack_items)
        page = (ranked.packed, ranked.strategy, ranked.model_version, ranked.next_cursor, tuple(ranked.extra.items()))
        cache[key] = (version, time.monotonic() + self.config.feed_cache_seconds, now, due, page)

    def _served_indices(self, state: LiveState, keys: np.ndarray) -> np.ndarray:
        """Catalog indices of a cursor's store keys (articles this worker lacks are left out)."""
        if keys.size == 0:
            return np.zeros(0, dtype=np.int64)
        try:
            index = state.indices_of_keys(keys, self.store)
        except StoreError:  # the keys this worker already knows, without the store
            table = state.key_index
            index = table[keys[keys < table.size]] if table.size else np.zeros(0, dtype=np.int64)
        return index[index >= 0]

    def _next_cursor(self, state: LiveState, user_id: str, served: int, keys: np.ndarray,
                     page_ids: list[str]) -> str | None:
        """The cursor after a page: the chain's keys plus the page's; None when it would not fit."""
        # an article's store key never changes: the state met most of them mapping readers' histories
        # (every one, once the background thread has polled); the rest are asked once per article
        page_keys = state.keys_of_indices(state.indices(page_ids))
        known = self._article_keys
        # one get per id, and this call's answers from its own dict: another request thread may clear
        # the shared one (past ARTICLE_KEYS_KEPT) at any moment (`in` then `[]` raised KeyError)
        looked = [k if k >= 0 else known.get(a, -1) for a, k in zip(page_ids, page_keys.tolist())]
        missing = [a for a, k in zip(page_ids, looked) if k < 0]
        try:
            if missing:
                found = self.store.article_keys(missing)
                if len(known) > ARTICLE_KEYS_KEPT:
                    known.clear()
                known.update(found)
                looked = [k if k >= 0 else found.get(a, -1) for a, k in zip(page_ids, looked)]
            page_keys = np.array([k for k in looked if k >= 0], dtype=np.int64)
        except StoreError:  # the store is down: the next page may repeat this one, it is not refused
            page_keys = page_keys[page_keys >= 0]
        cursor = _encode_cursor(user_id, served, np.concatenate([keys, page_keys]))
        if len(cursor) > CURSOR_MAX_CHARS:
            log.info("feed chain of %d articles ends: its cursor would exceed %d characters", served,
                     CURSOR_MAX_CHARS)
            return None
        return cursor

    # -- the newsroom console and the public widget ------------------------------------------
    def inspect_related(self, article_id: str, limit: int = 10, others: tuple[str, ...] = ()) -> dict:
        """The related list of ``article_id`` as readers get it, each item's score parts and why
        each of ``others`` is or is not in it (for the newsroom console; raises NotFound like
        :meth:`related`).

        Returns ``{"list": RankedList, "parts": [{"score", "parts": {name: weighted part}} or None
        per item], "verdicts": [Verdict per other]}`` (:mod:`recommender.serving.inspect`).
        """
        from .inspect import candidates_of, score_parts, verdict

        ranked = self.related(article_id, limit=limit)
        state = self._state
        now = self.clock()
        anchor = self._locate(state, article_id)
        index = state.indices([item.article_id for item in ranked.items])
        listed = index[index >= 0]
        snap = state.snapshot()
        candidates = candidates_of(state, snap, anchor, self.config.fresh_neighbours)
        reader = reader_of(state, snap, None, None, now, anchor)

        def plugins(cand):  # as the related pipeline's PluginScoring stage scores them (none: unchanged)
            return apply_plugin_scores(state, snap, cand, "related", reader, anchor=anchor)
        parts = score_parts(snap, anchor, arrays.union1d(candidates, listed), state.counters, now, plugins)
        stored = self.store.get_stored_articles(list(others)) if others else {}
        verdicts = []
        for other in others:
            gone = other in stored and stored[other].deleted
            try:
                where = -1 if gone or other not in stored else self._locate(state, other)
            except NotFound:
                where = -1
            verdicts.append(verdict(snap, anchor, where, other, listed, candidates, parts, state.counters,
                                    now, gone, plugins))
        return {"list": ranked, "parts": [parts.get(int(i)) for i in index.tolist()], "verdicts": verdicts}

    def log_ranked(self, ranked: RankedList, user_id: str | None = None) -> None:
        """Log a list served without a reader's related/feed call (the public Artikel Terkait
        widget: ``user_id`` None is the anonymous reader), off the request path like the others."""
        self._log_impressions(user_id, ranked, self.clock())


def fallback_articles(store: Store, now: float, window_days: float, min_articles: int) -> list[StoredArticle]:
    """The articles a state without a model serves, oldest first.

    Those published since ``window_days`` before ``now`` (scheduled ones too: ranking shows them
    once due); when fewer than ``min_articles`` of them are due, also the newest due articles up
    to ``min_articles`` (an archive, or a sample generated weeks ago, has nothing recent, and
    ``RankingParams.min_window_articles`` widens a trained window the same way).
    """
    recent = list(store.iter_articles(published_since=now - window_days * DAY))
    due = sum(stored.article.published_at <= now + FUTURE_GRACE for stored in recent)
    if due >= min_articles:
        return recent
    chosen = {stored.key: stored for stored in store.newest_articles(min_articles, published_until=now + FUTURE_GRACE)}
    chosen.update((stored.key, stored) for stored in recent)
    return sorted(chosen.values(), key=lambda stored: (stored.article.published_at, stored.key))


def _next_due(snap: Snapshot, index: np.ndarray, now: float) -> float:
    """Clock time the first of ``index`` that is not yet published may be shown (inf: none waits)."""
    published = snap.published_at(index)
    later = published[published > now + FUTURE_GRACE]
    return float(later.min()) - FUTURE_GRACE if later.size else float("inf")


def _window_published_since(snap: Snapshot, now: float) -> float:
    """Publication time of the oldest article a list may show (``now`` when there is none): the
    window's start, or its oldest arrival since training when it started after that."""
    since = snap.window_since
    if snap.model.window_start < snap.n_base:
        return since
    fresh = snap.fresh.published_at[: snap.n_fresh]
    fresh = fresh[fresh >= since]
    return float(fresh.min()) if fresh.size else now


def _unread(state: LiveState, items: tuple[RankedItem, ...], read: np.ndarray,
            pins: dict[str, int] | None = None, sink: np.ndarray | None = None) -> tuple[RankedItem, ...]:
    """``items`` less those whose catalog index is in ``read`` (sorted), those of the ``sink``
    stories moved last; pinned items that stay go back to their positions (``pins``: article id
    -> position)."""
    index = state.indices([item.article_id for item in items])
    keep = ~arrays.isin(index, read)
    if sink is not None and sink.size:
        snap = state.snapshot()
        known = index >= 0
        sunk = np.zeros(index.size, dtype=bool)
        sunk[known] = arrays.isin(snap.story(index[known]), sink)
        order = np.argsort(sunk, kind="stable")
        items, keep = tuple(items[k] for k in order.tolist()), keep[order]
    if not pins:
        return tuple(item for item, k in zip(items, keep.tolist()) if k)
    rest = [item for item, k in zip(items, keep.tolist()) if k and item.article_id not in pins]
    for item in sorted((item for item, k in zip(items, keep.tolist()) if k and item.article_id in pins),
                       key=lambda item: pins[item.article_id]):
        rest.insert(min(pins[item.article_id], len(rest)), item)
    return tuple(rest)


def _empty_reason(filters: ListFilter | None) -> str:
    if filters:
        return "no article of this section can be shown now (none published in the serving window, or all read)"
    return "no article can be shown now"


def _score_parts(state: LiveState, build, items: tuple[RankedItem, ...]) -> list[dict[str, float]]:
    """Each item's weighted score parts (``{feature: value}``), from the scored candidates or the
    pinned ones; an item found in neither gets ``{}``. The parts add up to the item's score: the
    blend's, each plugin's (``plugin_<name>``) and, when the score is more than their sum (a
    learned ranker re-scored it, an editor's boost or bury multiplied it), ``adjustment``."""
    sources = [c for c in (build.cand, build.pinned) if c is not None]
    parts = []
    for k in state.indices([item.article_id for item in items]).tolist():
        row: dict[str, float] = {}
        for cand in sources:
            hit = np.flatnonzero(cand.index == k)
            if hit.size:
                row = {name[2:]: float(cand.features[name][hit[0]]) for name in cand.features if name.startswith("w_")}
                rest = float(cand.score[hit[0]]) - sum(row.values())
                if abs(rest) > 1e-9:
                    row["adjustment"] = rest
                break
        parts.append(row)
    return parts


def _no_events() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A reader's (keys, codes, times, dwell) when there are none to read (or the store failed)."""
    return np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.float64), np.zeros(0, np.float32)


@dataclass(frozen=True)
class _PendingFeatures:
    """A feature-log row whose vectors are computed when it is written (:class:`FeatureJob`)."""

    row: FeatureLogRow
    job: FeatureJob
    index: np.ndarray  # the shown items' catalog indices

    @property
    def user_id(self) -> str:  # (a forget drops the reader's queued rows by it)
        return self.row.user_id

    def resolve(self) -> FeatureLogRow | None:
        try:
            return dataclasses.replace(self.row, features=self.job.rows(self.index))
        except Exception:  # a row lost is better than the writer thread stopping
            log.exception("feature log row of list %s dropped: its features failed", self.row.list_id)
            return None


def _list_id() -> str:
    return "l" + secrets.token_hex(8)
