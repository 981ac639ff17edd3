"""The embedded SQLite backend of :class:`~recommender.store.base.Store`.

WAL mode, ``synchronous=FULL`` so an acknowledged write survives a crash, one connection per
thread. Internally readers and articles get integer keys so the events table stays narrow and
training can load it as arrays.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import math
import os
import sqlite3
import struct
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from recommender import arrays
from recommender.domain import EVENT_CODES, EVENT_TYPES, Article, Interaction, Preferences

from .base import (
    CHANGE_CODES,
    CHANGE_KINDS,
    AuditEntry,
    EditorialRule,
    EVENT_SOURCES,
    Change,
    ExperimentList,
    FeatureLogRow,
    InteractionLog,
    ReadSetRow,
    ServedList,
    Store,
    StoredArticle,
    StoredExperiment,
    StoreDiskError,
    StoreError,
    StoreUnavailable,
    _click_through_rows,
    _event_ranges,
    _json_list,
    _salted_hashes,
    _types,
    checkpoint_read_set,
    export_queries,
    pack_features,
    pack_read_set,
    read_set_chunks,
    unpack_features,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None

log = logging.getLogger(__name__)

SCHEMA_VERSION = 14  # 4 was left for the served lists while staged models took 5; they are 6: a
# database at 5 (from before served lists) has run no 4 and would never run it

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS article_keys (
        key INTEGER PRIMARY KEY,
        article_id TEXT NOT NULL UNIQUE
    );
    CREATE TABLE IF NOT EXISTS users (
        key INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL UNIQUE
    );
    CREATE TABLE IF NOT EXISTS articles (
        key INTEGER PRIMARY KEY REFERENCES article_keys(key),
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        category TEXT NOT NULL,
        region TEXT,
        tags TEXT NOT NULL,
        url TEXT,
        published_at REAL NOT NULL,
        language TEXT NOT NULL,
        updated_at REAL NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS articles_published ON articles(published_at);
    CREATE INDEX IF NOT EXISTS articles_updated ON articles(updated_at);
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        eid INTEGER NOT NULL UNIQUE,
        user_key INTEGER NOT NULL,
        article_key INTEGER NOT NULL,
        event INTEGER NOT NULL,
        ts REAL NOT NULL,
        dwell REAL,
        list_id TEXT,
        position INTEGER,
        history INTEGER NOT NULL DEFAULT 0,
        received_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_user_ts ON events(user_key, ts);
    CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
    CREATE TABLE IF NOT EXISTS preferences (
        user_key INTEGER PRIMARY KEY REFERENCES users(key),
        categories TEXT NOT NULL,
        regions TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # a reader's history (feeds read it on every request, newest first, per event type: a reader's
    # impressions are never scanned to find their reads) from the index alone: ~0.33 -> 0.14 ms for
    # 150 events at 10M events, as the rows' own pages (one random page each) are no longer read
    2: """
    CREATE INDEX IF NOT EXISTS events_user_cover ON events(user_key, event, ts, seq, article_key, dwell);
    DROP INDEX IF EXISTS events_user_ts;
    """,
    # the change log every worker follows (see Store), tombstones of forgotten readers, a sequence
    # counter that never goes back (INTEGER PRIMARY KEY alone reuses the largest rowid once its
    # row is deleted), and the flag that keeps a reader's repeats out of live counters
    3: """
    CREATE TABLE IF NOT EXISTS changes (
        pos INTEGER PRIMARY KEY AUTOINCREMENT,
        kind INTEGER NOT NULL,
        ref TEXT,
        lo INTEGER NOT NULL DEFAULT 0,
        hi INTEGER NOT NULL DEFAULT 0,
        at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS changes_visibility ON changes(pos) WHERE kind IN (2, 3);
    CREATE TABLE IF NOT EXISTS forgotten (
        user_hash TEXT PRIMARY KEY,
        at REAL NOT NULL
    );
    INSERT OR IGNORE INTO meta(key, value) VALUES ('forget_salt', lower(hex(randomblob(16))));
    ALTER TABLE events ADD COLUMN counted INTEGER NOT NULL DEFAULT 1;
    INSERT OR IGNORE INTO meta(key, value) SELECT 'event_seq', CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM events;
    """,
    # the live model version every replica serves (one row, changed by compare-and-set in
    # promote_model) and an index that finds the ``model`` changes of the log without a scan
    5: f"""
    CREATE TABLE IF NOT EXISTS live_model (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version TEXT NOT NULL,
        promoted_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS changes_model ON changes(pos) WHERE kind IN ({CHANGE_CODES["model"]});
    """,
    # a served list as one row (Store.add_served_lists), its article keys packed as int64
    # little-endian: a feed's 20 impression rows cost ~0.5 ms of CPU at 10M events (4 B-trees each).
    # ``seq`` comes from the events' counter; ``position`` is the first item's position. Indexes:
    # a reader's lists (forget, history) and their times (first_seq_since, time-bounded loads).
    6: """
    CREATE TABLE IF NOT EXISTS served_lists (
        seq INTEGER PRIMARY KEY,
        list_id TEXT NOT NULL,
        user_key INTEGER NOT NULL,
        ts REAL NOT NULL,
        position INTEGER NOT NULL DEFAULT 0,
        model_version TEXT,
        variant TEXT,
        strategy TEXT,
        article_keys BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS served_lists_user ON served_lists(user_key, ts);
    CREATE INDEX IF NOT EXISTS served_lists_ts ON served_lists(ts);
    """,
    # API keys every replica honours (their SHA-256 only; Store.add_api_key), and an index that
    # finds the log's ``keys`` changes without a scan (each worker looks once a second)
    7: f"""
    CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        created TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE
    );
    CREATE INDEX IF NOT EXISTS changes_keys ON changes(pos) WHERE kind IN ({CHANGE_CODES["keys"]});
    """,
    # editors' rules (Store.add_rule: pins, boosts, buries, blocks; the rule itself as JSON) and the
    # audit log of every change to them (who: the API key id, when, what)
    8: """
    CREATE TABLE IF NOT EXISTS editorial_rules (
        rule_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        spec TEXT NOT NULL,
        starts_at REAL,
        expires_at REAL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        removed_at REAL,
        removed_by TEXT
    );
    CREATE TABLE IF NOT EXISTS editorial_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS editorial_audit_rule ON editorial_audit(rule_id, seq);
    """,
    # experiments (recommender.experiments): their definitions, what each served list of one was
    # (experiment, variant config, interleaved teams; ADD COLUMN: no rewrite of the table), and an
    # index over the log's ``experiment`` changes, as for ``model`` ones
    9: f"""
    CREATE TABLE IF NOT EXISTS experiments (
        name TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        created_at REAL NOT NULL,
        stopped_at REAL
    );
    ALTER TABLE served_lists ADD COLUMN experiment TEXT;
    ALTER TABLE served_lists ADD COLUMN config TEXT;
    ALTER TABLE served_lists ADD COLUMN teams TEXT;
    CREATE INDEX IF NOT EXISTS served_lists_experiment ON served_lists(experiment, seq) WHERE experiment IS NOT NULL;
    CREATE INDEX IF NOT EXISTS changes_experiment ON changes(pos) WHERE kind IN ({CHANGE_CODES["experiment"]});
    """,
    # a reader's clicks, reads and shares by sequence number: the read-set cache of a heavy reader
    # (serving.readsets) asks for the newest and the ones after what it holds, not for all 30k again
    10: """
    CREATE INDEX IF NOT EXISTS events_user_reads ON events(user_key, seq, ts, article_key) WHERE event IN (1, 2, 3);
    """,
    # the learned stage's feature vectors of a sample of served lists (Store.add_feature_logs):
    # the items' keys (int64), the feature names (JSON) and the vectors (float32, items x names)
    # packed, and each item's selection probability when the exploration stage ran. Indexes: a
    # reader's rows (forget) and their times (training loads, retention).
    11: """
    CREATE TABLE IF NOT EXISTS feature_log (
        list_id TEXT PRIMARY KEY,
        user_key INTEGER NOT NULL,
        ts REAL NOT NULL,
        position INTEGER NOT NULL DEFAULT 0,
        article_keys BLOB NOT NULL,
        names TEXT NOT NULL,
        features BLOB NOT NULL,
        propensities BLOB
    );
    CREATE INDEX IF NOT EXISTS feature_log_user ON feature_log(user_key);
    CREATE INDEX IF NOT EXISTS feature_log_ts ON feature_log(ts);
    """,
    # a reader's hides and client-posted impressions by sequence number (PostgreSQL's schema 8): the
    # probe every feed makes (reader_version) takes their smallest and largest in two index probes
    # instead of scanning them all in the covering index (a reader with 29,000 impressions: 3.1 ms)
    12: """
    CREATE INDEX IF NOT EXISTS events_user_other ON events(user_key, seq) WHERE event IN (0, 4);
    """,
    # a reader's clicks, reads and shares by time, covering what a profile reads: their newest 300
    # (every feed that is not cached) are one range read in order, not three ranges of the covering
    # index merged by a sort (a reader with 7,000 of them: 0.72 -> 0.15 ms; 2.3 s at 10M events)
    13: """
    CREATE INDEX IF NOT EXISTS events_user_read_ts ON events(user_key, ts, seq, article_key, event, dwell)
        WHERE event IN (1, 2, 3);
    """,
    # the read-set checkpoint training writes (Store.put_read_sets, models.readsets): a heavy
    # reader's distinct read keys up to ``hi`` (little-endian int64), those stamped after ``until``
    # with their times (float64) apart; valid while their smallest read seq is ``first_seq``
    14: """
    CREATE TABLE IF NOT EXISTS read_sets (
        user_key INTEGER PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        since_ts REAL NOT NULL,
        until_ts REAL NOT NULL,
        hi INTEGER NOT NULL,
        keys BLOB NOT NULL,
        later_keys BLOB NOT NULL,
        later_ts BLOB NOT NULL
    );
    """,
}


# primary result codes of a write that failed at the disk, not at a lock
_DISK_CODES = frozenset({sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT,
                         sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CANTOPEN})


def _unavailable(exc: sqlite3.Error) -> bool:
    """Locked, busy, I/O error, unreadable or corrupt file; not a programming error."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


@functools.lru_cache(maxsize=64)
def _history_sql(events: Sequence[str] | None, ids: bool, seq: bool = False) -> str:
    """A reader's newest ``:limit`` events of the given types at or after ``:since``, newest first:
    ``(article_id or article_key, event, ts, dwell)`` (and ``seq`` with ``seq``); named parameters
    ``user``, ``since``, ``limit``. Rows of the events table only (served lists: ``_SERVED_HISTORY``).

    One index seek per event type, each stopping after ``:limit`` rows, then a sort of at most
    4 x ``:limit`` rows: a reader who opened their feed a thousand times since their last click
    has 20,000 newer impressions, which a single newest-first scan would step over.
    """
    codes = sorted({EVENT_CODES[e] for e in events}) if events is not None else sorted(EVENT_CODES.values())
    ranges = _event_ranges(codes)
    if len(ranges) == 1 and not ids:  # one seek already in order: no subquery, no sort (a feed's 500
        # impressions: 0.37 -> 0.27 ms; its 300 clicks, reads and shares: see schema 13)
        return (f"SELECT article_key, event, ts, dwell{', seq' if seq else ''} FROM events "
                f"WHERE user_key = (SELECT key FROM users WHERE user_id = :user) AND {ranges[0]} "
                f"AND ts >= :since ORDER BY ts DESC, seq DESC LIMIT :limit")
    per_type = " UNION ALL ".join(
        f"SELECT * FROM (SELECT article_key, event, ts, seq, dwell FROM events WHERE user_key = "
        f"(SELECT key FROM users WHERE user_id = :user) AND {where} AND ts >= :since "
        f"ORDER BY ts DESC, seq DESC LIMIT :limit)" for where in ranges)
    if ids:
        return (f"SELECT k.article_id, h.event, h.ts, h.dwell{', h.seq' if seq else ''} FROM ({per_type}) h "
                f"JOIN article_keys k ON k.key = h.article_key ORDER BY h.ts DESC, h.seq DESC LIMIT :limit")
    return (f"SELECT article_key, event, ts, dwell{', seq' if seq else ''} FROM ({per_type}) "
            f"ORDER BY ts DESC, seq DESC LIMIT :limit")


# a reader's newest ``:limit`` served lists at or after ``:since`` (each holds at least one of the
# newest ``:limit`` impressions), newest first, from the reader index
_SERVED_HISTORY = ("SELECT seq, ts, position, list_id, article_keys FROM served_lists WHERE user_key = "
                   "(SELECT key FROM users WHERE user_id = :user) AND ts >= :since ORDER BY ts DESC, seq DESC "
                   "LIMIT :limit")


def _newest_lists(cursor: sqlite3.Cursor, limit: int, chunk: int = 32) -> list[tuple]:
    """Rows of :data:`_SERVED_HISTORY` (newest first) until their items reach ``limit``: an older
    list's items come after all of those (a reader refreshing their feed has thousands of lists,
    and each row costs more than the index step that finds it)."""
    lists: list[tuple] = []
    items = 0
    while items < limit:
        rows = cursor.fetchmany(chunk)
        for row in rows:
            lists.append(row)
            items += len(row[4]) >> 3
            if items >= limit:
                break
        if len(rows) < chunk:
            break
    cursor.close()
    return lists


def _read_errors(method):
    """Turn a read that SQLite refuses into :class:`StoreUnavailable`.

    Callers that can answer without the store (the engine's lists, the live poll) catch
    StoreError; a raw sqlite3 error would escape them and turn a degraded list into a 500.
    """

    def _raise(exc: sqlite3.Error):
        if _unavailable(exc):
            raise StoreUnavailable(f"database read failed: {exc}") from exc
        raise exc

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(self, *args, **kwargs):
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                _raise(exc)

        return generator

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            _raise(exc)

    return wrapper



_READER_VERSION_SQL = (
    "WITH u AS (SELECT key FROM users WHERE user_id = :user) SELECT "
    "(SELECT MIN(seq) FROM events WHERE user_key = (SELECT key FROM u) AND event IN (1, 2, 3)), "
    "(SELECT MAX(seq) FROM events WHERE user_key = (SELECT key FROM u) AND event IN (1, 2, 3)), "
    # one aggregate a subquery: SQLite answers a lone MIN or MAX from an index, both together by a scan
    "(SELECT MIN(seq) FROM events WHERE user_key = (SELECT key FROM u) AND event IN (0, 4)) || ',' || "
    "(SELECT MAX(seq) FROM events WHERE user_key = (SELECT key FROM u) AND event IN (0, 4)), "
    "(SELECT updated_at FROM preferences WHERE user_key = (SELECT key FROM u)), "
    "EXISTS (SELECT 1 FROM served_lists WHERE user_key = (SELECT key FROM u))")


def _distinct_keys(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct non-negative store keys (a count per key: faster than sorting 10M of them)."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.bincount(keys)).astype(np.int64)


def _first(row: tuple):
    return row[0]


def _served(types: tuple[str, ...] | None) -> bool:
    """Whether a history of these event types (None: all) holds served lists' items."""
    return types is None or "impression" in types


def _pack_keys(keys: Sequence[int]) -> bytes:
    """A served list's article keys as stored: int64 little-endian, in list order."""
    return struct.pack(f"<{len(keys)}q", *keys)


def _unpack_keys(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The article keys of packed lists, concatenated in list order (int64, shape (m,)), and how many
    each list holds (int64, shape (len(blobs),)): one join and one buffer view, no loop per item."""
    counts = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) >> 3
    return np.frombuffer(b"".join(blobs), dtype="<i8").astype(np.int64), counts


def _list_positions(first: Sequence[int], counts: np.ndarray) -> np.ndarray:
    """The position of every item of lists whose first items are at ``first``, shape (sum(counts),)."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(np.asarray(first, dtype=np.int64), counts) + np.arange(int(counts.sum())) - starts


def _merge_positions(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the values of two sorted arrays go when merged, ``b``'s after ``a``'s equal ones:
    ``(pos_a, pos_b)``, each int64 of its input's shape, together ``arange(a.size + b.size)``."""
    pos_b = np.searchsorted(a, b, side="right") + np.arange(b.size)
    taken = np.zeros(a.size + b.size, dtype=bool)
    taken[pos_b] = True
    return np.flatnonzero(~taken), pos_b


def _merge_by_time(a_ts: np.ndarray, a_seq: np.ndarray, b_ts: np.ndarray, b_seq: np.ndarray) -> np.ndarray:
    """The order of ``concatenate([a, b])`` by (time, sequence number), shape (n + m,).

    ``a`` and ``b`` are each in that order already; rows of ``b`` with one sequence number (a served
    list's items) keep their order. A linear merge, then only runs of a time both sides share are
    sorted, by sequence number.
    """
    n, m = a_ts.size, b_ts.size
    pos_a, pos_b = _merge_positions(a_ts, b_ts)
    order = np.empty(n + m, dtype=np.int64)
    order[pos_a] = np.arange(n)
    order[pos_b] = np.arange(n, n + m)
    shared = arrays.unique(b_ts[np.searchsorted(a_ts, b_ts, side="left") < pos_b - np.arange(m)])
    if shared.size:
        starts = np.searchsorted(a_ts, shared, side="left") + np.searchsorted(b_ts, shared, side="left")
        lengths = np.searchsorted(a_ts, shared, side="right") + np.searchsorted(b_ts, shared, side="right") - starts
        run = np.repeat(np.arange(shared.size), lengths)
        index = np.arange(lengths.sum()) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        rows = order[index]
        seq = np.where(rows < n, a_seq[np.minimum(rows, n - 1)], b_seq[np.maximum(rows - n, 0)])
        order[index] = rows[np.lexsort((seq, run))]
    return order



class _Connection(sqlite3.Connection):
    """A connection that carries its thread's handle on the writers' lock file (see ``_write``)."""

    write_lock_fd: int | None = None
    write_state: dict | None = None  # the store's {"error": ...}, set by each write (see ``_write``)


class SQLiteStore(Store):
    """SQLite in WAL mode, one connection per thread.

    Parameters
    ----------
    path : str or Path
        Database file (created with its folder if missing). ``":memory:"`` is refused
        because every thread needs to see the same data.
    timeout : float
        Seconds to wait on a locked database before raising :class:`StoreUnavailable`.
    synchronous : str
        ``FULL`` (default) makes every commit durable before it returns.
    """

    def __init__(self, path: str | Path, timeout: float = 5.0, synchronous: str = "FULL"):
        if str(path) == ":memory:":
            raise ValueError("SQLiteStore needs a file path; use a temporary folder in tests.")
        self.path = Path(path)
        self.timeout = timeout
        self.synchronous = synchronous
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_state: dict = {"error": None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate(self._conn())

    @property
    def write_error(self) -> str | None:
        return self._write_state["error"]

    def check_writable(self) -> None:
        conn = self._conn()
        with self._write(conn):  # 64 KiB in and out again: a write that needs free pages, as real ones do
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('write_probe', hex(zeroblob(32768)))")
            conn.execute("DELETE FROM meta WHERE key = 'write_probe'")

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False,
                                       factory=_Connection)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.execute("PRAGMA secure_delete=ON")  # a forgotten reader's rows are zeroed, not left in free pages
                conn.execute("PRAGMA foreign_keys=OFF")
                conn.execute("PRAGMA cache_size=-65536")
                conn.execute("PRAGMA temp_store=MEMORY")
                # checkpoint every ~40 MB of log instead of 4 MB: pages written again meanwhile are
                # copied once (batched ingest +30-50 %, single-event commit p99 halved at 10M events)
                conn.execute("PRAGMA wal_autocheckpoint=10000")
                # reads through a shared memory map instead of each connection's private page cache:
                # gunicorn's 5 connections per worker held ~300 MB of copies of the OS page cache
                # after a load test, and a reader's history reads ~30 % faster (SQLite caps it at 2 GB)
                conn.execute("PRAGMA mmap_size=2147418112")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot open database {self.path}: {exc}") from exc
            if fcntl is not None:
                try:
                    conn.write_lock_fd = os.open(f"{self.path}.writelock", os.O_RDWR | os.O_CREAT, 0o644)
                except OSError:  # read-only folder: SQLite's own busy handler still serializes writers
                    conn.write_lock_fd = None
            conn.write_state = self._write_state
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if conn.write_lock_fd is not None:
                os.close(conn.write_lock_fd)
                conn.write_lock_fd = None
            conn.close()
            self._local.conn = None

    # a bulk importer's batch of 50,000 new events dirties ~85k pages of the two random-keyed event
    # indexes (eid, reader) at 10M events: they must all fit in the page cache until the commit, or
    # SQLite spills them to the log mid-batch and writes some of them twice
    BULK_CACHE_KIB = 384 * 1024

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """This thread's connection with a page cache that holds a bulk batch, and no memory map.

        Larger transactions write each touched index page once per batch instead of once per
        5,000 rows (bytes written per event ~1.8x fewer at 10M events). The memory map is off because
        an importer touches most index pages: mapped, they all count in its resident size (>1 GB);
        read into the bounded cache instead, it stays at ~0.5 GB at no measurable cost in speed.
        Both settings are restored on the way out, so a long-lived connection is unchanged.
        """
        with self._unmapped() as conn:
            cache = conn.execute("PRAGMA cache_size").fetchone()[0]
            conn.execute(f"PRAGMA cache_size=-{self.BULK_CACHE_KIB}")
            try:
                yield
            finally:
                conn.execute(f"PRAGMA cache_size={int(cache)}")

    @contextlib.contextmanager
    def _unmapped(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection with the memory map off for the block (restored after)."""
        conn = self._conn()
        mmap = conn.execute("PRAGMA mmap_size").fetchone()[0]
        conn.execute("PRAGMA mmap_size=0")
        try:
            yield conn
        finally:
            conn.execute(f"PRAGMA mmap_size={int(mmap)}")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with self._write(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"database {self.path} has schema version {current}, newer than this code ({SCHEMA_VERSION}); "
                    "upgrade newsrec."
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                log.info("migrating %s to schema version %d", self.path, version)
                for statement in MIGRATIONS.get(version, "").split(";"):  # 4 has none (see SCHEMA_VERSION)
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(version),),
                )

    @_read_errors
    def schema_version(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    class _write:
        """BEGIN IMMEDIATE ... COMMIT, mapping lock errors to StoreUnavailable.

        Writers first take an exclusive ``flock`` on ``<db>.writelock`` (every thread and process
        has its own handle), polled every 0.1-1 ms: SQLite's busy handler sleeps 1, 2, 5, 10, 15,
        20, 25 ms... between tries, so a waiting writer (an event post behind an impressions
        batch of another worker) would otherwise lose tens of milliseconds after the lock frees.
        """

        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn
            self.fd = getattr(conn, "write_lock_fd", None)
            self.state = getattr(conn, "write_state", None)

        def _lock(self) -> None:
            deadline, pause = time.monotonic() + 5.0, 0.0001
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable("database is busy: another writer holds it for over 5 s") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.001)

        def _unlock(self) -> None:
            if self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)

        def __enter__(self) -> sqlite3.Connection:
            if self.fd is not None:
                self._lock()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self._unlock()
                raise self._refused("database is busy", exc) from exc
            return self.conn

        def __exit__(self, exc_type, exc, tb) -> bool:
            try:
                return self._finish(exc_type, exc)
            finally:
                self._unlock()

        def _finish(self, exc_type, exc) -> bool:
            if exc_type is None:
                try:
                    self.conn.execute("COMMIT")
                except sqlite3.OperationalError as err:
                    self._rollback()
                    raise self._refused("commit failed", err) from err
                if self.state is not None:
                    self.state["error"] = None
                return False
            self._rollback()
            if isinstance(exc, sqlite3.Error) and _unavailable(exc):
                raise self._refused("database error", exc) from exc
            return False

        def _rollback(self) -> None:
            # after a failed COMMIT (I/O error, full disk) SQLite may have rolled back already
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error as err:  # the connection rolls back when it is next used
                    log.warning("rollback failed: %s", err)

        def _refused(self, what: str, err: sqlite3.Error) -> StoreUnavailable:
            """The error to raise; a disk failure is also remembered as the store's ``write_error``."""
            if (getattr(err, "sqlite_errorcode", 0) & 0xFF) in _DISK_CODES:
                if self.state is not None:
                    self.state["error"] = f"{what}: {err}"
                return StoreDiskError(f"{what}: {err}")
            return StoreUnavailable(f"{what}: {err}")

    # -- keys --------------------------------------------------------------------------------
    @staticmethod
    def _keys(conn: sqlite3.Connection, table: str, column: str, ids: Iterable[str]) -> dict[str, int]:
        """Key for every id, creating missing ones (inside the caller's transaction)."""
        unique = list(dict.fromkeys(ids))
        keys: dict[str, int] = {}
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            conn.executemany(f"INSERT OR IGNORE INTO {table}({column}) VALUES (?)", [(i,) for i in part])
            marks = ",".join("?" * len(part))
            keys.update(conn.execute(f"SELECT {column}, key FROM {table} WHERE {column} IN ({marks})", part))
        return keys

    @staticmethod
    def _lookup(conn: sqlite3.Connection, table: str, column: str, ids: Sequence[str]) -> dict[str, int]:
        keys: dict[str, int] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            keys.update(conn.execute(f"SELECT {column}, key FROM {table} WHERE {column} IN ({marks})", part))
        return keys

    @staticmethod
    def _log(conn: sqlite3.Connection, kind: str, refs: Sequence[str | None] = (None,), lo: int = 0, hi: int = 0,
             at: float | None = None) -> None:
        """Append changes inside the caller's write transaction: one writer at a time, so the
        AUTOINCREMENT positions are in commit order."""
        code, at = CHANGE_CODES[kind], time.time() if at is None else at
        conn.executemany("INSERT INTO changes(kind, ref, lo, hi, at) VALUES (?,?,?,?,?)",
                         [(code, ref, lo, hi, at) for ref in refs])

    # -- articles ----------------------------------------------------------------------------
    def upsert_articles(self, articles: Iterable[Article]) -> int:
        batch = list(articles)
        if not batch:
            return 0
        conn = self._conn()
        now = time.time()
        with self._write(conn):
            keys = self._keys(conn, "article_keys", "article_id", [a.article_id for a in batch])
            conn.executemany(
                """INSERT INTO articles(key, title, body, category, region, tags, url, published_at, language,
                                        updated_at, deleted)
                   VALUES (?,?,?,?,?,?,?,?,?,?,0)
                   ON CONFLICT(key) DO UPDATE SET title=excluded.title, body=excluded.body,
                       category=excluded.category, region=excluded.region, tags=excluded.tags, url=excluded.url,
                       published_at=excluded.published_at, language=excluded.language,
                       updated_at=excluded.updated_at,
                       body=CASE WHEN articles.deleted THEN '' ELSE excluded.body END""",
                [
                    (keys[a.article_id], a.title, a.body, a.category, a.region, _json_list(a.tags), a.url,
                     a.published_at, a.language, now)
                    for a in batch
                ],
            )
            self._log(conn, "article", list(dict.fromkeys(a.article_id for a in batch)), at=now)
        return len(batch)

    @staticmethod
    def _article_from_row(row: tuple) -> StoredArticle:
        key, article_id, title, body, category, region, tags, url, published_at, language, deleted, updated = row
        article = Article(
            article_id=article_id, title=title, body=body, category=category, published_at=published_at,
            region=region, tags=tuple(json.loads(tags)), url=url, language=language,
        )
        return StoredArticle(key=key, article=article, deleted=bool(deleted), updated_at=updated)

    _ARTICLE_SELECT = (
        "SELECT a.key, k.article_id, a.title, a.body, a.category, a.region, a.tags, a.url, a.published_at, "
        "a.language, a.deleted, a.updated_at FROM articles a JOIN article_keys k ON k.key = a.key"
    )

    @_read_errors
    def get_articles(self, article_ids: Sequence[str], include_deleted: bool = False) -> dict[str, Article]:
        conn = self._conn()
        out: dict[str, Article] = {}
        ids = list(dict.fromkeys(article_ids))
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = f"{self._ARTICLE_SELECT} WHERE k.article_id IN ({marks})"
            if not include_deleted:
                sql += " AND a.deleted = 0"
            for row in conn.execute(sql, part):
                stored = self._article_from_row(row)
                out[stored.article.article_id] = stored.article
        return out

    @_read_errors
    def deleted_article_ids(self) -> set[str]:
        rows = self._conn().execute(
            "SELECT k.article_id FROM articles a JOIN article_keys k ON k.key = a.key WHERE a.deleted = 1"
        )
        return {r[0] for r in rows}

    def takedown_article(self, article_id: str) -> bool:
        return self._set_deleted(article_id, True)

    def restore_article(self, article_id: str) -> bool:
        return self._set_deleted(article_id, False)

    def _set_deleted(self, article_id: str, deleted: bool) -> bool:
        conn = self._conn()
        now = time.time()
        with self._write(conn):
            # a takedown also blanks the body: the text of a legally removed article is not kept
            cur = conn.execute(
                f"UPDATE articles SET deleted = ?, {'body = ' + repr('') + ', ' if deleted else ''}updated_at = ? "
                "WHERE key = (SELECT key FROM article_keys WHERE article_id = ?)",
                (int(deleted), now, article_id),
            )
            if cur.rowcount == 0:
                return False
            self._log(conn, "takedown" if deleted else "restore", [article_id], at=now)
            return True

    @_read_errors
    def get_stored_articles(self, article_ids: Sequence[str]) -> dict[str, StoredArticle]:
        out: dict[str, StoredArticle] = {}
        ids = list(dict.fromkeys(article_ids))
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            rows = self._conn().execute(
                self._ARTICLE_SELECT + f" WHERE k.article_id IN ({','.join('?' * len(part))})", part).fetchall()
            for row in rows:
                stored = self._article_from_row(row)
                out[stored.article.article_id] = stored
        return out

    @_read_errors
    def iter_articles(self, published_since: float | None = None, include_deleted: bool = False) -> Iterator[StoredArticle]:
        sql = self._ARTICLE_SELECT + " WHERE a.published_at >= ?"
        if not include_deleted:
            sql += " AND a.deleted = 0"
        sql += " ORDER BY a.published_at, a.key"
        cur = self._conn().execute(sql, (published_since if published_since is not None else -1.0,))
        while True:
            rows = cur.fetchmany(2000)
            if not rows:
                return
            for row in rows:
                yield self._article_from_row(row)

    # -- events ------------------------------------------------------------------------------
    def add_events(self, events: Iterable[Interaction], source: str = "client") -> tuple[int, int]:
        if source not in EVENT_SOURCES:
            raise ValueError(f"source must be one of {EVENT_SOURCES}, got {source!r}")
        given = list(events)
        if not given:
            return 0, 0
        conn = self._conn()
        now = time.time()
        with self._write(conn):
            batch = self._drop_forgotten(conn, given) if source == "served" else given
            if not batch:
                return 0, len(given)
            users = self._keys(conn, "users", "user_id", [e.user_id for e in batch])
            articles = self._keys(conn, "article_keys", "article_id", [e.article_id for e in batch])
            counted = self._counted(conn, batch, users, articles) if source == "client" else [1] * len(batch)
            # explicit sequence numbers from a counter that only goes up (drawn under the write lock:
            # commit order), so a follower's cursor never passes a row that is written later
            lo = int(conn.execute("SELECT value FROM meta WHERE key = 'event_seq'").fetchone()[0]) + 1
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO events(seq, eid, user_key, article_key, event, ts, dwell, list_id, position, "
                "history, received_at, counted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (lo + i, e.key64(), users[e.user_id], articles[e.article_id], EVENT_CODES[e.event], e.ts,
                     e.dwell_seconds, e.list_id, e.position, int(e.history), now, flag)
                    for i, (e, flag) in enumerate(zip(batch, counted))
                ],
            )
            inserted = conn.total_changes - before
            if inserted:
                hi = lo + len(batch) - 1
                conn.execute("UPDATE meta SET value = ? WHERE key = 'event_seq'", (str(hi),))
                self._log(conn, "events", lo=lo, hi=hi, at=now)
        return inserted, len(given) - inserted

    def _list_keys(self, conn: sqlite3.Connection, batch) -> tuple[dict[str, int], dict[str, int]]:
        """(reader keys, article keys) of served lists or feature-log rows (``user_id``,
        ``article_ids``). Served articles are nearly always known: looked up, only the missing ones
        created (INSERT OR IGNORE first costs one more index probe per id: 30 % of a list's write)."""
        users = self._keys(conn, "users", "user_id", [s.user_id for s in batch])
        ids = list(dict.fromkeys(a for s in batch for a in s.article_ids))
        articles = self._lookup(conn, "article_keys", "article_id", ids)
        if len(articles) < len(ids):
            articles.update(self._keys(conn, "article_keys", "article_id", [a for a in ids if a not in articles]))
        return users, articles

    def add_served_lists(self, lists: Iterable[ServedList]) -> int:
        given = [s for s in lists if s.article_ids]  # an empty list showed nothing
        if not given:
            return 0
        conn = self._conn()
        now = time.time()
        with self._write(conn):
            batch = self._drop_forgotten(conn, given)
            if not batch:
                return 0
            users, articles = self._list_keys(conn, batch)
            # the events' counter, drawn under the write lock: a follower's cursor covers both tables
            lo = int(conn.execute("SELECT value FROM meta WHERE key = 'event_seq'").fetchone()[0]) + 1
            conn.executemany(
                "INSERT INTO served_lists(seq, list_id, user_key, ts, position, model_version, variant, strategy, "
                "article_keys, experiment, config, teams) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(lo + i, s.list_id, users[s.user_id], s.ts, s.offset, s.model_version, s.variant, s.strategy,
                  _pack_keys([articles[a] for a in s.article_ids]), s.experiment, s.config, s.teams)
                 for i, s in enumerate(batch)],
            )
            hi = lo + len(batch) - 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'event_seq'", (str(hi),))
            self._log(conn, "events", lo=lo, hi=hi, at=now)
        return len(batch)

    def add_feature_logs(self, rows: Iterable[FeatureLogRow]) -> int:
        given = [r for r in rows if r.article_ids]
        if not given:
            return 0
        packed = {r.list_id: pack_features(r) for r in given}  # a malformed row fails here, before the write
        conn = self._conn()
        with self._write(conn):
            batch = self._drop_forgotten(conn, given)
            if not batch:
                return 0
            users, articles = self._list_keys(conn, batch)
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO feature_log(list_id, user_key, ts, position, article_keys, names, features, "
                "propensities) VALUES (?,?,?,?,?,?,?,?)",
                [(r.list_id, users[r.user_id], float(r.ts), int(r.offset),
                  _pack_keys([articles[a] for a in r.article_ids]), *packed[r.list_id]) for r in batch])
            return conn.total_changes - before

    @_read_errors
    def feature_logs(self, start: float | None = None, end: float | None = None) -> list[FeatureLogRow]:
        conn = self._conn()
        rows = conn.execute(
            "SELECT f.list_id, u.user_id, f.ts, f.position, f.article_keys, f.names, f.features, f.propensities "
            "FROM feature_log f JOIN users u ON u.key = f.user_key WHERE f.ts >= ? AND f.ts < ? ORDER BY f.ts, f.list_id",
            (-math.inf if start is None else float(start), math.inf if end is None else float(end))).fetchall()
        keys = [np.frombuffer(r[4], dtype="<i8") for r in rows]
        ids = self._id_map(conn, "article_keys", "article_id",
                           arrays.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64))
        return [unpack_features(r[0], r[1], r[2], r[3], [ids[int(k)] for k in k_], r[5], r[6], r[7])
                for r, k_ in zip(rows, keys)]

    # the rows the prunes delete, said once for the deletes and for count_prunable (a dry run)
    _OLD_FEATURE_ROWS = "FROM feature_log WHERE ts < ?"
    _PRUNABLE_CHANGES = ("FROM changes WHERE pos < ? AND at < ? AND pos NOT IN "
                         "(SELECT MAX(pos) FROM changes GROUP BY kind)")

    def prune_feature_logs(self, older_than: float) -> int:
        conn = self._conn()
        removed = 0
        while True:
            with self._write(conn):
                n = conn.execute(f"DELETE FROM feature_log WHERE rowid IN (SELECT rowid {self._OLD_FEATURE_ROWS} "
                                 "LIMIT 10000)", (float(older_than),)).rowcount
            removed += n
            if n < 10_000:
                return removed

    HOUR = 3600.0

    def _counted(self, conn: sqlite3.Connection, batch: list[Interaction], users: dict[str, int],
                 articles: dict[str, int]) -> list[int]:
        """1 for the first event of each (reader, article, type, clock hour), 0 for repeats: one
        reader posting 300 clicks moves trending and click-through as much as one click does."""
        flags, seen = [], set()
        for e in batch:
            bucket = math.floor(e.ts / self.HOUR)
            key = (users[e.user_id], articles[e.article_id], EVENT_CODES[e.event], bucket)
            if key in seen or e.history:
                flags.append(0 if key in seen else 1)
                continue
            seen.add(key)
            row = conn.execute(  # the covering reader index: one seek
                "SELECT 1 FROM events WHERE user_key = ? AND event = ? AND ts >= ? AND ts < ? AND article_key = ? "
                "LIMIT 1", (key[0], key[2], bucket * self.HOUR, (bucket + 1) * self.HOUR, key[1])).fetchone()
            flags.append(0 if row else 1)
        return flags

    def _drop_forgotten(self, conn: sqlite3.Connection, batch: list) -> list:
        """Served lists (:class:`ServedList` or impression events, anything with ``user_id`` and
        ``ts``) of readers forgotten after the list was served, or forgotten and not back since (no
        row of their own), are not written: logging never recreates a forgotten reader."""
        hashes = self._forget_hash(conn, list(dict.fromkeys(e.user_id for e in batch)))
        by_hash = {h: u for u, h in hashes.items()}
        forgotten: dict[str, float] = {}
        values = list(by_hash)
        for start in range(0, len(values), 500):
            part = values[start:start + 500]
            forgotten.update((by_hash[h], at) for h, at in conn.execute(
                f"SELECT user_hash, at FROM forgotten WHERE user_hash IN ({','.join('?' * len(part))})", part))
        if not forgotten:
            return batch
        back = self._lookup(conn, "users", "user_id", list(forgotten))
        return [e for e in batch if e.user_id not in forgotten or (e.user_id in back and e.ts > forgotten[e.user_id])]

    @_read_errors
    def user_events(self, user_id: str, since: float | None = None, limit: int = 500,
                    events: Sequence[str] | None = None) -> list[Interaction]:
        types = _types(events)
        since = since if since is not None else -1.0
        if _served(types):  # items of served lists carry their list id and position
            keys, codes, ts, dwell, lists, positions = self._history_with_lists(user_id, since, limit, types)
            ids = self.article_ids_for_keys(arrays.unique(keys).tolist())
            return [
                Interaction(user_id=user_id, article_id=ids[k], event=EVENT_TYPES[ev], ts=t,
                            dwell_seconds=None if math.isnan(dw) else dw, list_id=lists[i] if i >= 0 else None,
                            position=p if i >= 0 else None)
                for k, ev, t, dw, i, p in zip(keys.tolist(), codes.tolist(), ts.tolist(), dwell.tolist(),
                                              positions[0].tolist(), positions[1].tolist())
            ]
        rows = self._conn().execute(_history_sql(types, ids=True),
                                    {"user": user_id, "since": since, "limit": int(limit)}).fetchall()
        return [
            Interaction(user_id=user_id, article_id=a, event=EVENT_TYPES[ev], ts=ts, dwell_seconds=dw)
            for a, ev, ts, dw in reversed(rows)
        ]

    @_read_errors
    def user_event_arrays(self, user_id: str, limit: int = 500, events: Sequence[str] | None = None
                          ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        types = _types(events)
        if _served(types):
            keys, codes, ts, dwell, _, _ = self._history_with_lists(user_id, -1.0, limit, types)
            ids = self.article_ids_for_keys(arrays.unique(keys).tolist())
            return [ids[k] for k in keys.tolist()], codes, ts, dwell.astype(np.float32)
        rows = self._conn().execute(
            _history_sql(types, ids=True), {"user": user_id, "since": -1.0, "limit": int(limit)}).fetchall()
        if not rows:
            return [], np.zeros(0, np.int8), np.zeros(0, np.float64), np.zeros(0, np.float32)
        ids, kinds, ts, dwell = zip(*reversed(rows))
        return (list(ids), np.array(kinds, dtype=np.int8), np.array(ts, dtype=np.float64),
                np.array(dwell, dtype=np.float64).astype(np.float32))  # None -> NaN

    @_read_errors
    def user_event_keys(self, user_id: str, limit: int = 500, events: Sequence[str] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        types = _types(events)
        if _served(types):
            keys, codes, ts, dwell, _, _ = self._history_with_lists(user_id, -1.0, limit, types)
            return keys, codes, ts, dwell.astype(np.float32)
        # from the covering index alone: no article row, no id string per event
        rows = self._conn().execute(
            _history_sql(types, ids=False), {"user": user_id, "since": -1.0, "limit": int(limit)}).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.float64), np.zeros(0, np.float32)
        table = np.array(rows[::-1], dtype=np.float64)  # keys < 2^53: exact; dwell None -> NaN
        return (table[:, 0].astype(np.int64), table[:, 1].astype(np.int8), table[:, 2],
                table[:, 3].astype(np.float32))

    def _history_with_lists(self, user_id: str, since: float, limit: int, types: tuple[str, ...] | None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple, tuple]:
        """A reader's newest ``limit`` events of ``types`` since ``since``, the items of their served
        lists among them as impressions, oldest first (by time, seq, position in the list).

        Returns ``(article keys int64, codes int8, ts float64, dwell float64 NaN if none, list ids,
        (index into list ids, -1 for event rows; position in the list), both int64)``, arrays of shape (n,).
        """
        conn = self._conn()
        params = {"user": user_id, "since": since, "limit": int(limit)}
        rows = conn.execute(_history_sql(types, ids=False, seq=True), params).fetchall()
        lists = _newest_lists(conn.execute(_SERVED_HISTORY, params), int(limit))
        table = np.array(rows, dtype=np.float64).reshape(-1, 5)  # key, event, ts, dwell, seq
        list_seq, list_ts, first, list_ids, blobs = zip(*lists) if lists else ((), (), (), (), ())
        keys, counts = _unpack_keys(blobs)
        which = np.repeat(np.arange(len(lists)), counts)
        within = np.arange(keys.size) - np.repeat(np.cumsum(counts) - counts, counts)
        ts = np.concatenate([table[:, 2], np.repeat(np.array(list_ts, dtype=np.float64), counts)])
        seq = np.concatenate([table[:, 4], np.repeat(np.array(list_seq, dtype=np.float64), counts)])
        order = np.lexsort((np.concatenate([np.zeros(len(rows)), within]), seq, ts))
        order = order[max(order.size - int(limit), 0):]
        n, m = len(rows), keys.size
        position = np.repeat(np.array(first, np.int64), counts) + within
        return (np.concatenate([table[:, 0].astype(np.int64), keys])[order],
                np.concatenate([table[:, 1].astype(np.int8), np.zeros(m, np.int8)])[order],
                ts[order],
                np.concatenate([table[:, 3], np.full(m, np.nan)])[order],
                list_ids,
                (np.concatenate([np.full(n, -1, np.int64), which])[order],
                 np.concatenate([np.full(n, -1, np.int64), position])[order]))

    @_read_errors
    def article_ids_for_keys(self, keys: Sequence[int] | None = None) -> dict[int, str]:
        if keys is None:
            return dict(self._conn().execute("SELECT key, article_id FROM article_keys"))
        out: dict[int, str] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            out.update(self._conn().execute(
                f"SELECT key, article_id FROM article_keys WHERE key IN ({','.join('?' * len(part))})", part))
        return out

    @_read_errors
    def event_keys_after(self, seq: int, upto: int | None = None, since_ts: float | None = None,
                         limit: int = 20_000, positions: bool = False) -> tuple:
        # no join and no id strings: every worker reads every impression back once a second
        conn = self._conn()
        # Two tables, two statements, two snapshots: a write committed between them would be in the
        # second only, and a cursor past it would skip its rows in the first. Sequence numbers are
        # drawn in commit order, so reading only up to the counter as it was before both is enough.
        committed = int(conn.execute("SELECT value FROM meta WHERE key = 'event_seq'").fetchone()[0])
        args = (int(seq), min(int(upto) if upto is not None else 1 << 62, committed),
                since_ts if since_ts is not None else -1.0, int(limit))
        rows = conn.execute(
            "SELECT seq, article_key, event, ts, history = 0 AND counted = 1, COALESCE(position, -1) FROM events "
            "WHERE seq > ? AND seq <= ? AND ts >= ? ORDER BY seq LIMIT ?", args).fetchall()
        lists = conn.execute("SELECT seq, ts, article_keys, position FROM served_lists WHERE seq > ? AND seq <= ? "
                             "AND ts >= ? ORDER BY seq LIMIT ?", args).fetchall()
        if not rows and not lists:
            empty = (int(seq), np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.float64))
            return (*empty, np.zeros(0, np.int64)) if positions else empty
        # a side that stopped at ``limit`` may hold more after its last row: read both up to the lower end
        full = [side[-1][0] for side in (rows, lists) if len(side) >= limit]
        cursor = min(full) if full else max(side[-1][0] for side in (rows, lists) if side)
        rows = rows[:bisect.bisect_right(rows, cursor, key=_first)]
        lists = lists[:bisect.bisect_right(lists, cursor, key=_first)]
        table = np.array(rows, dtype=np.float64).reshape(-1, 6)  # seq and keys < 2^53: exact
        table = table[table[:, 4] > 0]  # filtered here, not in SQL: the cursor still passes them
        if not lists:
            out = (int(cursor), table[:, 1].astype(np.int64), table[:, 2].astype(np.int8), table[:, 3])
            return (*out, table[:, 5].astype(np.int64)) if positions else out
        # a served list's items are impressions at its sequence number, in list order
        list_seq, list_ts, blobs, first = zip(*lists)
        keys, counts = _unpack_keys(blobs)
        pos_events, pos_items = _merge_positions(table[:, 0], np.repeat(np.array(list_seq, dtype=np.float64), counts))
        out_keys = np.empty(pos_events.size + pos_items.size, dtype=np.int64)
        out_codes = np.zeros(out_keys.size, dtype=np.int8)
        out_ts = np.empty(out_keys.size, dtype=np.float64)
        out_keys[pos_events], out_codes[pos_events], out_ts[pos_events] = table[:, 1], table[:, 2], table[:, 3]
        out_keys[pos_items], out_ts[pos_items] = keys, np.repeat(np.array(list_ts, dtype=np.float64), counts)
        if not positions:
            return int(cursor), out_keys, out_codes, out_ts
        out_pos = np.empty(out_keys.size, dtype=np.int64)
        out_pos[pos_events] = table[:, 5]
        out_pos[pos_items] = _list_positions(first, counts)
        return int(cursor), out_keys, out_codes, out_ts, out_pos

    @_read_errors
    def first_seq_since(self, ts: float) -> int:
        row = self._conn().execute(
            "SELECT MIN(s) FROM (SELECT MIN(seq) AS s FROM events WHERE ts >= :ts "
            "UNION ALL SELECT MIN(seq) FROM served_lists WHERE ts >= :ts)", {"ts": ts}).fetchone()
        return int(row[0]) if row[0] is not None else self.log_position()[1] + 1

    @_read_errors
    def data_version(self) -> int | None:
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])

    @_read_errors
    def log_position(self) -> tuple[int, int]:
        row = self._conn().execute(  # one statement: one snapshot
            "SELECT (SELECT COALESCE(MAX(pos), 0) FROM changes), (SELECT value FROM meta WHERE key = 'event_seq')"
        ).fetchone()
        return int(row[0]), int(row[1])

    @_read_errors
    def changes_after(self, pos: int, limit: int = 10_000, kinds: Sequence[str] | None = None) -> list[Change]:
        sql = "SELECT pos, kind, ref, lo, hi, at FROM changes WHERE pos > ?"
        if kinds is not None:
            codes = sorted(CHANGE_CODES[k] for k in kinds)
            sql += f" AND kind IN ({','.join(str(c) for c in codes)})"  # (2, 3): the visibility index
        rows = self._conn().execute(sql + " ORDER BY pos LIMIT ?", (int(pos), int(limit))).fetchall()
        return [Change(p, CHANGE_KINDS[k], ref, lo, hi, at) for p, k, ref, lo, hi, at in rows]

    # -- the live model ----------------------------------------------------------------------
    @_read_errors
    def live_model(self) -> str | None:
        row = self._conn().execute("SELECT version FROM live_model WHERE id = 1").fetchone()
        return None if row is None else row[0]

    def promote_model(self, version: str, expected: str | None = ...) -> bool:
        if not isinstance(version, str) or not 0 < len(version) <= 128:
            raise ValueError(f"version must be a model version string of 1-128 characters, got {version!r}")
        conn = self._conn()
        now = time.time()
        with self._write(conn):  # the read and the write under one write lock: a compare-and-set
            row = conn.execute("SELECT version FROM live_model WHERE id = 1").fetchone()
            live = None if row is None else row[0]
            if expected is not ... and live != expected:
                return False
            if live == version:  # already live: no change for the followers to act on
                return True
            conn.execute("INSERT INTO live_model(id, version, promoted_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE "
                         "SET version = excluded.version, promoted_at = excluded.promoted_at", (version, now))
            self._log(conn, "model", [version], at=now)
        return True

    @_read_errors
    def load_interactions(self, start: float | None = None, end: float | None = None) -> InteractionLog:
        with self._unmapped() as conn:  # a training load reads every page once: mapped, they all count in its RSS
            conn.execute("BEGIN")  # one snapshot: the log position is exactly what the arrays hold
            try:
                change_pos, event_seq = self.log_position()
                log_ = self._load_interactions(start, end)
            finally:
                conn.execute("COMMIT")
        return dataclasses.replace(log_, change_pos=change_pos, event_seq=event_seq)

    def _load_interactions(self, start: float | None, end: float | None) -> InteractionLog:
        conn = self._conn()
        bounds = (start if start is not None else -1.0, end if end is not None else 1e18)
        # Python builds an object per value fetched (10M events: most of the load time), so the
        # two keys travel as one integer and event code, history flag and seq as another.
        packed = all(conn.execute(f"SELECT COALESCE(MAX(key), 0) < {1 << 31} FROM {t}").fetchone()[0]
                     for t in ("users", "article_keys"))
        columns = ("(user_key << 32) | article_key, ts, event | (history << 2) | (seq << 3), dwell" if packed else
                   "user_key, ts, event | (history << 2) | (seq << 3), dwell, article_key")
        cur = conn.execute(f"SELECT {columns}, COALESCE(position, -1) FROM events WHERE ts >= ? AND ts < ?", bounds)
        dtype = [("keys", "<i8"), ("ts", "<f8"), ("code", "<i8"), ("dwell", "<f8")]  # NULL dwell -> NaN
        if not packed:
            dtype.append(("article_key", "<i8"))
        dtype.append(("position", "<i8"))
        chunks: list[np.ndarray] = []
        while True:
            rows = cur.fetchmany(200_000)
            if not rows:
                break
            chunks.append(np.array(rows, dtype=dtype))
        table = np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)
        if np.any(np.diff(table["ts"]) < 0):  # rows come in arrival order, nearly always time order
            table = table[np.argsort(table["ts"], kind="stable")]  # (time, seq): ties keep arrival order
        user_key = table["keys"] >> 32 if packed else table["keys"]
        article_key = table["keys"] & 0xFFFFFFFF if packed else table["article_key"]
        event = (table["code"] & 3).astype(np.int8)
        ts = np.ascontiguousarray(table["ts"])
        dwell = table["dwell"].astype(np.float32)
        history = ((table["code"] >> 2) & 1).astype(bool)
        position = np.ascontiguousarray(table["position"])
        lists = conn.execute("SELECT seq, user_key, ts, article_keys, position FROM served_lists WHERE ts >= ? "
                             "AND ts < ? ORDER BY ts, seq", bounds).fetchall()
        if lists:  # each served list's items as impressions, merged in by (time, seq)
            list_seq, list_user, list_ts, blobs, first = zip(*lists)
            keys, counts = _unpack_keys(blobs)
            item_ts = np.repeat(np.array(list_ts, dtype=np.float64), counts)
            order = _merge_by_time(ts, table["code"] >> 3, item_ts, np.repeat(np.array(list_seq, np.int64), counts))
            del table
            user_key = np.concatenate([user_key, np.repeat(np.array(list_user, np.int64), counts)])[order]
            article_key = np.concatenate([article_key, keys])[order]
            event = np.concatenate([event, np.zeros(keys.size, np.int8)])[order]
            ts = np.concatenate([ts, item_ts])[order]
            dwell = np.concatenate([dwell, np.full(keys.size, np.nan, np.float32)])[order]
            history = np.concatenate([history, np.zeros(keys.size, bool)])[order]
            position = np.concatenate([position, _list_positions(first, counts)])[order]
        user_ids = self._id_map(conn, "users", "user_id", _distinct_keys(user_key))
        article_ids = self._id_map(conn, "article_keys", "article_id", _distinct_keys(article_key))
        return InteractionLog(
            user_key=user_key,
            article_key=article_key,
            event=event,
            ts=ts,
            dwell=dwell,
            history=history,
            user_ids=user_ids,
            article_ids=article_ids,
            position=position,
        )

    @staticmethod
    def _id_map(conn: sqlite3.Connection, table: str, column: str, keys: np.ndarray) -> dict[int, str]:
        if keys.size == 0:
            return {}
        total = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        if keys.size > total // 4:
            wanted = set(keys.tolist())
            return {k: v for k, v in conn.execute(f"SELECT key, {column} FROM {table}") if k in wanted}
        out: dict[int, str] = {}
        values = keys.tolist()
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            marks = ",".join("?" * len(part))
            out.update(conn.execute(f"SELECT key, {column} FROM {table} WHERE key IN ({marks})", part))
        return out

    # -- readers -----------------------------------------------------------------------------
    def set_preferences(self, prefs: Preferences) -> None:
        conn = self._conn()
        with self._write(conn):
            key = self._keys(conn, "users", "user_id", [prefs.user_id])[prefs.user_id]
            conn.execute(
                "INSERT INTO preferences(user_key, categories, regions, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(user_key) DO UPDATE SET categories=excluded.categories, regions=excluded.regions, "
                "updated_at=excluded.updated_at",
                (key, _json_list(prefs.categories), _json_list(prefs.regions), time.time()),
            )
            self._log(conn, "preferences")  # no reader id: the log outlives a forget

    @_read_errors
    def get_preferences(self, user_id: str) -> Preferences | None:
        row = self._conn().execute(
            "SELECT p.categories, p.regions FROM preferences p JOIN users u ON u.key = p.user_key WHERE u.user_id = ?",
            (user_id,),
        ).fetchone()
        if row is None:
            return None
        return Preferences(user_id=user_id, categories=tuple(json.loads(row[0])), regions=tuple(json.loads(row[1])))

    def forget_user(self, user_id: str) -> dict[str, int]:
        conn = self._conn()
        now = time.time()
        with self._write(conn):
            # the tombstone first: tokens issued before it are refused, served lists logged after it
            # are dropped (add_events), events the reader posts afterwards are kept
            hashed = self._forget_hash(conn, [user_id])[user_id]
            conn.execute("INSERT INTO forgotten(user_hash, at) VALUES (?, ?) ON CONFLICT(user_hash) DO UPDATE SET "
                         "at = excluded.at", (hashed, now))
            self._log(conn, "forget", [hashed], at=now)
            row = conn.execute("SELECT key FROM users WHERE user_id = ?", (user_id,)).fetchone()
            if row is None:
                removed = {"events": 0, "preferences": 0, "user": 0}
            else:
                key = row[0]
                events = conn.execute("DELETE FROM events WHERE user_key = ?", (key,)).rowcount
                # the items of their served lists count as the impressions they are
                events += conn.execute("SELECT COALESCE(SUM(length(article_keys)), 0) / 8 FROM served_lists "
                                       "WHERE user_key = ?", (key,)).fetchone()[0]
                conn.execute("DELETE FROM served_lists WHERE user_key = ?", (key,))
                conn.execute("DELETE FROM feature_log WHERE user_key = ?", (key,))
                conn.execute("DELETE FROM read_sets WHERE user_key = ?", (key,))
                prefs = conn.execute("DELETE FROM preferences WHERE user_key = ?", (key,)).rowcount
                conn.execute("DELETE FROM users WHERE key = ?", (key,))
                removed = {"events": events, "preferences": prefs, "user": 1}
        # Deleted rows can linger in free pages and the WAL: checkpoint so they are overwritten.
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:  # pragma: no cover - a reader holds the WAL; it is reused later
            log.debug("checkpoint after forget deferred")
        return removed

    @_read_errors
    def forgotten_at(self, user_id: str) -> float | None:
        conn = self._conn()
        row = conn.execute("SELECT at FROM forgotten WHERE user_hash = ?",
                           (self._forget_hash(conn, [user_id])[user_id],)).fetchone()
        return None if row is None else float(row[0])

    def _forget_hash(self, conn: sqlite3.Connection, user_ids: Sequence[str]) -> dict[str, str]:
        """Tombstones name a reader by a salted hash: a forgotten id is not kept in clear."""
        salt = getattr(self, "_salt", None)
        if salt is None:
            salt = self._salt = conn.execute("SELECT value FROM meta WHERE key = 'forget_salt'").fetchone()[0]
        return _salted_hashes(salt, user_ids)

    @_read_errors
    def list_click_through(self, since: float) -> list[dict]:
        conn = self._conn()
        shown = conn.execute("SELECT strategy, variant, position, length(article_keys) / 8, COUNT(*) FROM served_lists "
                             "WHERE ts >= ? GROUP BY 1, 2, 3, 4", (since,)).fetchall()
        clicked = conn.execute(
            "SELECT s.strategy, s.variant, e.position, COUNT(*) FROM events e JOIN served_lists s ON s.list_id = e.list_id "
            "WHERE e.event = ? AND e.ts >= ? AND e.position IS NOT NULL AND s.ts >= ? GROUP BY 1, 2, 3",
            (EVENT_TYPES.index("click"), since, since)).fetchall()
        return _click_through_rows(shown, clicked)

    def stats(self) -> dict:
        conn = self._conn()
        by_type = dict.fromkeys(EVENT_TYPES, 0)
        for code, count in conn.execute("SELECT event, COUNT(*) FROM events GROUP BY event"):
            by_type[EVENT_TYPES[code]] = count
        lists, items, newest_list = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(article_keys)), 0) / 8, MAX(ts) FROM served_lists").fetchone()
        by_type["impression"] += items  # a served list is one impression per item
        newest = max((t for t in (conn.execute("SELECT MAX(ts) FROM events").fetchone()[0], newest_list)
                      if t is not None), default=None)
        articles, deleted = conn.execute("SELECT COUNT(*), COALESCE(SUM(deleted), 0) FROM articles").fetchone()
        known_ids = conn.execute("SELECT COUNT(*) FROM article_keys").fetchone()[0]
        return {
            "database": str(self.path),
            "schema_version": self.schema_version(),
            "articles": articles - deleted,
            "articles_taken_down": deleted,
            "articles_referenced_without_text": known_ids - articles,
            "readers": conn.execute("SELECT COUNT(*) FROM users").fetchone()[0],
            "readers_with_preferences": conn.execute("SELECT COUNT(*) FROM preferences").fetchone()[0],
            "events": sum(by_type.values()),
            "events_by_type": by_type,
            "served_lists": lists,
            "newest_event_ts": newest,
        }

    # -- read sets, keys of ids, newest articles ------------------------------------------------
    @_read_errors
    def user_read_keys(self, user_id: str, since: float, until: float | None = None,
                       events: Sequence[str] = ("click", "read", "share")) -> np.ndarray:
        # one range of the covering index (user_key, event, ts, ...) per type: no row is read
        codes = sorted({EVENT_CODES[e] for e in events})
        if not codes:
            return np.zeros(0, dtype=np.int64)
        sql = " UNION ALL ".join(
            "SELECT article_key FROM events WHERE user_key = (SELECT key FROM users WHERE user_id = :user) "
            f"AND event = {int(code)} AND ts >= :since AND ts <= :until" for code in codes)
        params = {"user": user_id, "since": float(since), "until": float(until) if until is not None else 1e18}
        rows = self._conn().execute(sql, params).fetchall()
        keys = np.array(rows, dtype=np.int64).reshape(-1)
        if EVENT_CODES["impression"] in codes:  # and what their served lists showed
            blobs = [r[0] for r in self._conn().execute(
                "SELECT article_keys FROM served_lists WHERE user_key = (SELECT key FROM users WHERE user_id = :user) "
                "AND ts >= :since AND ts <= :until", params)]
            keys = np.concatenate([keys, _unpack_keys(blobs)[0]])
        return arrays.unique(keys)

    @_read_errors
    def article_keys(self, article_ids: Sequence[str]) -> dict[str, int]:
        return self._lookup(self._conn(), "article_keys", "article_id", list(article_ids))

    @_read_errors
    def newest_articles(self, limit: int, published_until: float | None = None) -> list[StoredArticle]:
        rows = self._conn().execute(
            self._ARTICLE_SELECT + " WHERE a.deleted = 0 AND a.published_at <= ? "
            "ORDER BY a.published_at DESC, a.key DESC LIMIT ?",
            (published_until if published_until is not None else 1e18, max(int(limit), 0))).fetchall()
        return [self._article_from_row(r) for r in reversed(rows)]

    # -- experiments ---------------------------------------------------------------------------
    def create_experiment(self, name: str, definition: str, at: float) -> bool:
        conn = self._conn()
        with self._write(conn):
            if conn.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone():
                return False
            conn.execute("INSERT INTO experiments(name, definition, created_at) VALUES (?,?,?)", (name, definition, at))
            self._log(conn, "experiment", [name], at=at)
        return True

    def stop_experiment(self, name: str, at: float) -> bool | None:
        conn = self._conn()
        with self._write(conn):
            row = conn.execute("SELECT stopped_at FROM experiments WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            if row[0] is not None:
                return False
            conn.execute("UPDATE experiments SET stopped_at = ? WHERE name = ?", (at, name))
            self._log(conn, "experiment", [name], at=at)
        return True

    @_read_errors
    def experiments(self) -> list[StoredExperiment]:
        rows = self._conn().execute(
            "SELECT name, definition, created_at, stopped_at FROM experiments ORDER BY created_at, name").fetchall()
        return [StoredExperiment(*row) for row in rows]

    @_read_errors
    def experiment_lists(self, name: str) -> list[ExperimentList]:
        rows = self._conn().execute(
            "SELECT s.list_id, COALESCE(u.user_id, ''), s.ts, s.variant, s.position, length(s.article_keys) / 8, "
            "s.config, s.teams FROM served_lists s LEFT JOIN users u ON u.key = s.user_key "
            "WHERE s.experiment = ? ORDER BY s.seq", (name,)).fetchall()
        return [ExperimentList(*row) for row in rows]

    @_read_errors
    def experiment_clicks(self, name: str, since: float | None = None) -> list[tuple[str, int]]:
        # the experiment's time bounds the events read (events_ts); its list ids are looked up once
        rows = self._conn().execute(
            "SELECT DISTINCT e.list_id, e.position FROM events e WHERE e.ts >= ? AND e.event = ? "
            "AND e.list_id IS NOT NULL AND e.position IS NOT NULL "
            "AND e.list_id IN (SELECT list_id FROM served_lists WHERE experiment = ?)",
            (-1e18 if since is None else float(since), EVENT_CODES["click"], name)).fetchall()
        return [(list_id, int(position)) for list_id, position in rows]

    # -- editorial rules ---------------------------------------------------------------------
    def add_rule(self, rule: EditorialRule, who: str) -> None:
        conn = self._conn()
        now = time.time()
        spec = json.dumps(rule.to_json(), ensure_ascii=False, sort_keys=True)
        with self._write(conn):
            try:
                conn.execute("INSERT INTO editorial_rules(rule_id, kind, spec, starts_at, expires_at, created_at, "
                             "created_by) VALUES (?,?,?,?,?,?,?)",
                             (rule.rule_id, rule.kind, spec, rule.starts_at, rule.expires_at, rule.created_at,
                              rule.created_by))
            except sqlite3.IntegrityError:
                raise StoreError(f"rule {rule.rule_id} exists already") from None
            conn.execute("INSERT INTO editorial_audit(at, who, action, rule_id, detail) VALUES (?,?,?,?,?)",
                         (now, who, "create", rule.rule_id, spec))
            self._log(conn, "rules", [rule.rule_id], at=now)

    def remove_rule(self, rule_id: str, who: str) -> bool:
        conn = self._conn()
        now = time.time()
        with self._write(conn):
            row = conn.execute("SELECT spec FROM editorial_rules WHERE rule_id = ? AND removed_at IS NULL",
                               (rule_id,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE editorial_rules SET removed_at = ?, removed_by = ? WHERE rule_id = ?",
                         (now, who, rule_id))
            conn.execute("INSERT INTO editorial_audit(at, who, action, rule_id, detail) VALUES (?,?,?,?,?)",
                         (now, who, "delete", rule_id, row[0]))
            self._log(conn, "rules", [rule_id], at=now)
            return True

    @_read_errors
    def list_rules(self) -> list[EditorialRule]:
        rows = self._conn().execute("SELECT spec FROM editorial_rules WHERE removed_at IS NULL "
                                    "ORDER BY created_at, rule_id").fetchall()
        return [EditorialRule.from_json(json.loads(spec)) for (spec,) in rows]

    @_read_errors
    def audit_log(self, limit: int = 100, rule_id: str | None = None) -> list[AuditEntry]:
        where, args = ("WHERE rule_id = ?", [rule_id]) if rule_id is not None else ("", [])
        rows = self._conn().execute(f"SELECT seq, at, who, action, rule_id, detail FROM editorial_audit {where} "
                                    "ORDER BY seq DESC LIMIT ?", (*args, int(limit))).fetchall()
        return [AuditEntry(seq, at, who, action, rid, json.loads(detail)) for seq, at, who, action, rid, detail in rows]

    # -- API keys ----------------------------------------------------------------------------
    def add_api_key(self, key_id: str, role: str, name: str, created: str, sha256: str) -> None:
        conn = self._conn()
        try:
            with self._write(conn):
                conn.execute("INSERT INTO api_keys(key_id, role, name, created, sha256) VALUES (?,?,?,?,?)",
                             (key_id, role, name, created, sha256))
                self._log(conn, "keys", [key_id])
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"API key {key_id} is stored already") from exc

    def revoke_api_key(self, key_id: str) -> bool:
        conn = self._conn()
        with self._write(conn):
            if conn.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,)).rowcount == 0:
                return False
            self._log(conn, "keys", [key_id])
        return True

    @_read_errors
    def api_keys(self) -> list[tuple[str, str, str, str, str]]:
        return [tuple(r) for r in self._conn().execute(
            "SELECT key_id, role, name, created, sha256 FROM api_keys ORDER BY created, key_id")]

    # -- change-log retention ----------------------------------------------------------------
    def prune_changes(self, before_pos: int, older_than: float, batch: int = 10_000) -> int:
        conn = self._conn()
        removed = 0
        while True:
            with self._write(conn):
                n = conn.execute(
                    f"DELETE FROM changes WHERE pos IN (SELECT pos {self._PRUNABLE_CHANGES} ORDER BY pos LIMIT ?)",
                    (int(before_pos), float(older_than), int(batch))).rowcount
            removed += n
            if n < batch:
                return removed

    @_read_errors
    def count_prunable(self, before_pos: int, older_than: float, feature_log_older_than: float) -> tuple[int, int]:
        changes, features = self._conn().execute(  # one statement: one snapshot
            f"SELECT (SELECT COUNT(*) {self._PRUNABLE_CHANGES}), (SELECT COUNT(*) {self._OLD_FEATURE_ROWS})",
            (int(before_pos), float(older_than), float(feature_log_older_than))).fetchone()
        return int(changes), int(features)

    # -- copying a whole store ---------------------------------------------------------------
    _EXPORT_SQL = export_queries(live_model="SELECT version, promoted_at FROM live_model")
    # portable row -> this backend's row, and back (booleans are integers here, lists packed int64)
    _BOOLS = {"articles": (10,), "events": (9, 10)}

    @_read_errors
    def export_rows(self, table: str, batch: int = 50_000) -> Iterator[list[tuple]]:
        cur = self._conn().execute(self._EXPORT_SQL[table])
        bools = self._BOOLS.get(table, ())
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                return
            if table == "served_lists":
                rows = [r[:8] + (tuple(np.frombuffer(r[8], dtype="<i8").tolist()),) + r[9:] for r in rows]
            elif bools:
                rows = [tuple(bool(v) if i in bools else v for i, v in enumerate(r)) for r in rows]
            yield rows

    def import_rows(self, table: str, rows: Sequence[tuple]) -> int:
        from .base import PORTABLE_TABLES

        columns = list(PORTABLE_TABLES[table])
        if table == "served_lists":
            rows = [tuple(r[:8]) + (_pack_keys(r[8]),) + tuple(r[9:]) for r in rows]
        elif table in self._BOOLS:
            bools = self._BOOLS[table]
            rows = [tuple(int(v) if i in bools else v for i, v in enumerate(r)) for r in rows]
        if table == "live_model":
            columns = ["id", "version", "promoted_at"]
            rows = [(1, *r) for r in rows if r[0] is not None]
        sql = f"INSERT INTO {table}({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        if table == "live_model":
            sql += " ON CONFLICT(id) DO UPDATE SET version = excluded.version, promoted_at = excluded.promoted_at"
        conn = self._conn()
        with self.bulk_load(), self._write(conn):
            conn.executemany(sql, rows)
        return len(rows)

    @_read_errors
    def copy_state(self) -> dict:
        conn = self._conn()
        salt = conn.execute("SELECT value FROM meta WHERE key = 'forget_salt'").fetchone()[0]
        pos = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'changes'").fetchone()[0]
        seq = int(conn.execute("SELECT value FROM meta WHERE key = 'event_seq'").fetchone()[0])
        return {"forget_salt": salt, "event_seq": seq, "change_pos": max(int(pos), self.log_position()[0])}

    def finish_import(self, state: dict) -> None:
        conn = self._conn()
        with self._write(conn):
            conn.execute("UPDATE meta SET value = ? WHERE key = 'forget_salt'", (state["forget_salt"],))
            seq = max(int(state["event_seq"]),
                      *(conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {t}").fetchone()[0]
                        for t in ("events", "served_lists")))
            conn.execute("UPDATE meta SET value = MAX(CAST(value AS INTEGER), ?) WHERE key = 'event_seq'", (seq,))
            # AUTOINCREMENT hands out past the largest position ever stored: make that the source's
            pos = int(state["change_pos"])
            if conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'changes'", (pos,)).rowcount == 0:
                conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('changes', ?)", (pos,))
        self._salt = None
        conn.execute("ANALYZE")

    @_read_errors
    def is_empty(self) -> bool:
        conn = self._conn()
        return not any(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0] for t in self._EXPORT_SQL)

    def clear(self) -> None:
        conn = self._conn()
        with self._write(conn):
            for table in self._EXPORT_SQL:
                conn.execute(f"DELETE FROM {table}")

    # -- a reader's read set, incrementally ----------------------------------------------------

    @_read_errors
    def reader_version(self, user_id: str) -> tuple | None:
        # index probes only: the reads index (click, read, share) and the covering index (hides)
        row = self._conn().execute(_READER_VERSION_SQL, {"user": user_id}).fetchone()
        return (None, *row[:-1], bool(row[-1]))  # takedowns: Engine._apply_visibility asks PRAGMA data_version

    @_read_errors
    def user_read_bounds(self, user_id: str) -> tuple[int, int] | None:
        reader = "user_key = (SELECT key FROM users WHERE user_id = :user) AND event IN (1, 2, 3)"
        row = self._conn().execute(f"SELECT (SELECT MIN(seq) FROM events WHERE {reader}), "
                                   f"(SELECT MAX(seq) FROM events WHERE {reader})", {"user": user_id}).fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    @_read_errors
    def user_read_rows(self, user_id: str, since: float, after_seq: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        params = {"user": user_id, "since": float(since), "after": int(after_seq)}
        if after_seq > 0:
            sql = ("SELECT article_key, ts, seq FROM events WHERE user_key = (SELECT key FROM users WHERE "
                   "user_id = :user) AND event IN (1, 2, 3) AND seq > :after AND ts >= :since")
        else:  # one range of the covering index per type, as user_read_keys
            sql = " UNION ALL ".join(
                "SELECT article_key, ts, seq FROM events WHERE user_key = (SELECT key FROM users WHERE user_id = :user) "
                f"AND event = {code} AND ts >= :since" for code in (1, 2, 3))
        rows = self._conn().execute(sql, params).fetchall()
        table = np.array(rows, dtype=np.float64).reshape(-1, 3)  # keys and seq < 2^53: exact
        return table[:, 0].astype(np.int64), table[:, 1], table[:, 2].astype(np.int64)

    # A heavy reader's first read set: tens of thousands of rows, which as Python tuples cost ~1.3 us
    # each (user_read_rows); their keys as one comma-separated text per event type, parsed by numpy,
    # cost ~0.3 us (a reader of 6,000 events: 5.5 -> 1.3 ms). Times cannot travel that way (SQLite
    # writes a REAL with 15 digits), so the split at ``until`` is made in SQL.
    _READ_SET_SQL = " UNION ALL ".join(
        "SELECT group_concat(article_key) FILTER (WHERE ts <= :until), MAX(seq) FROM events WHERE user_key = "
        f"(SELECT key FROM users WHERE user_id = :user) AND event = {code} AND ts >= :since" for code in (1, 2, 3))
    _READ_SET_FUTURE_SQL = " UNION ALL ".join(
        "SELECT article_key, ts, seq FROM events WHERE user_key = (SELECT key FROM users WHERE user_id = :user) "
        f"AND event = {code} AND ts > :until AND ts >= :since AND seq <= :hi" for code in (1, 2, 3))

    # the reader's checkpoint row, if it covers the window asked and their oldest read is the one it was made with
    _CHECKPOINT_SQL = (
        "SELECT c.keys, c.later_keys, c.later_ts, c.hi FROM read_sets c JOIN users u ON u.key = c.user_key "
        "WHERE u.user_id = :user AND c.since_ts <= :since AND c.until_ts <= :until AND c.first_seq = "
        "(SELECT MIN(seq) FROM events WHERE user_key = u.key AND event IN (1, 2, 3))")
    _AFTER_CHECKPOINT_SQL = (
        "SELECT article_key, ts, seq FROM events WHERE user_key = (SELECT key FROM users WHERE user_id = :user) "
        "AND event IN (1, 2, 3) AND seq > :hi AND ts >= :since")

    @_read_errors
    def user_read_set(self, user_id: str, since: float, until: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        params = {"user": user_id, "since": float(since), "until": float(until)}
        conn = self._conn()
        if conn.in_transaction:  # (never in a request; a caller's own transaction is its snapshot)
            checkpointed = self._checkpointed_read_set(conn, params)
        else:
            conn.execute("BEGIN")  # the row and the events after it from one snapshot (a forget between)
            try:
                checkpointed = self._checkpointed_read_set(conn, params)
            finally:
                conn.execute("COMMIT")
        if checkpointed is not None:
            return checkpointed
        parts = conn.execute(self._READ_SET_SQL, params).fetchall()
        hi = max((int(top) for _, top in parts if top is not None), default=0)
        texts = [text for text, _ in parts if text]
        keys = np.fromstring(",".join(texts), dtype=np.int64, sep=",") if texts else np.zeros(0, np.int64)
        # a second statement, a second snapshot: only what the first one's largest seq covers
        later = conn.execute(self._READ_SET_FUTURE_SQL, {**params, "hi": hi}).fetchall()
        table = np.array(later, dtype=np.float64).reshape(-1, 3)
        return keys, table[:, 0].astype(np.int64), table[:, 1], hi

    def _checkpointed_read_set(self, conn: sqlite3.Connection, params: dict
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
        """:meth:`user_read_set` from the reader's checkpoint row and their reads after it; None
        without a usable row."""
        row = conn.execute(self._CHECKPOINT_SQL, params).fetchone()
        if row is None:
            return None
        hi = int(row[3])
        after = conn.execute(self._AFTER_CHECKPOINT_SQL, {**params, "hi": hi}).fetchall()
        table = np.array(after, dtype=np.float64).reshape(-1, 3)  # keys and seq < 2^53: exact
        return checkpoint_read_set(row[0], row[1], row[2], hi, table[:, 0].astype(np.int64), table[:, 1],
                                   table[:, 2].astype(np.int64), params["until"])

    def put_read_sets(self, rows: Sequence[ReadSetRow], since: float, until: float, hi: int) -> int:
        conn = self._conn()
        with self._write(conn):
            conn.execute("DELETE FROM read_sets")
        kept = 0
        for chunk in read_set_chunks(rows):  # the write lock let go between chunks: posts wait for one at most
            with self._write(conn):
                for row in chunk:
                    kept += conn.execute(
                        "INSERT OR REPLACE INTO read_sets(user_key, first_seq, since_ts, until_ts, hi, keys, "
                        "later_keys, later_ts) SELECT u.key, :first, :since, :until, :hi, :keys, :later_keys, "
                        ":later_ts FROM users u WHERE u.user_id = :user AND (SELECT MIN(seq) FROM events "
                        "WHERE user_key = u.key AND event IN (1, 2, 3)) = :first",
                        {"user": row.user_id, "first": int(row.first_seq), "since": float(since),
                         "until": float(until), "hi": int(hi), **pack_read_set(row)}).rowcount
        return kept

    @_read_errors
    def read_set_readers(self) -> list[str]:
        return [r[0] for r in self._conn().execute(
            "SELECT u.user_id FROM read_sets c JOIN users u ON u.key = c.user_key ORDER BY u.user_id")]
