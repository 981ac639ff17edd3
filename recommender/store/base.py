"""The storage contract: what newsrec needs from a database, whatever the backend.

Every backend (``sqlite.SQLiteStore``, ``postgres.PostgresStore``) implements :class:`Store`; the
engine, the jobs and the importers use nothing else. Imports only ``recommender.domain``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from recommender.domain import EVENT_CODES, Article, Interaction, Preferences


class StoreError(RuntimeError):
    """The store cannot do what was asked (e.g. the database is locked or unreadable)."""


class StoreUnavailable(StoreError):
    """The database is busy or unreachable; the caller should retry later."""


class StoreDiskError(StoreUnavailable):
    """A write failed at the disk (I/O error, disk full, read-only or damaged file): retrying
    helps only once the disk is fixed. ``Store.write_error`` says so until a write succeeds."""



class WriteWatch(ABC):
    """Notices of committed writes about readers (:meth:`Store.watch_writes`), on a connection of
    its own. A notice is a list of reader ids, or None for "every reader": a takedown or restore
    (every list may change) or a write about too many readers to name."""

    @abstractmethod
    def notices(self, timeout: float) -> list[list[str] | None]:
        """The notices that arrived together, once at least one did (empty after ``timeout``
        seconds without one). Raises :class:`StoreUnavailable` when the connection is lost:
        notices may have been missed."""

    @abstractmethod
    def close(self) -> None:
        """Stop listening and close the connection."""


def _json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _salted_hashes(salt: str, user_ids: Sequence[str]) -> dict[str, str]:
    """How tombstones (and the log's ``forget`` changes) name a reader, on every backend: a salted
    SHA-256 of the id, so a forgotten id is not kept in clear."""
    return {u: hashlib.sha256(f"{salt}|{u}".encode("utf-8")).hexdigest() for u in user_ids}


def _types(events: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if events is None else tuple(sorted(set(events)))



def _click_through_rows(shown: Iterable[tuple], clicked: Iterable[tuple]) -> list[dict]:
    """Rows of :meth:`Store.list_click_through` from ``(strategy, variant, first position, items,
    lists)`` groups of served lists and ``(strategy, variant, position, clicks)`` groups of clicks."""
    counts: dict[tuple, list[int]] = {}
    for strategy, variant, first, items, lists in shown:
        for position in range(int(first), int(first) + int(items)):
            counts.setdefault((strategy, variant, position), [0, 0])[0] += int(lists)
    for strategy, variant, position, clicks in clicked:
        counts.setdefault((strategy, variant, int(position)), [0, 0])[1] += int(clicks)
    return [{"strategy": k[0], "variant": k[1], "position": k[2], "impressions": v[0], "clicks": v[1]}
            for k, v in sorted(counts.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "", kv[0][2]))]


@dataclass(frozen=True)
class InteractionLog:
    """Interactions as parallel arrays, the shape training wants.

    Attributes
    ----------
    user_key, article_key : ndarray of int64, shape (n,)
        Store keys (not contiguous); map them with ``user_ids`` / ``article_ids``.
    event : ndarray of int8, shape (n,)
        Codes into :data:`recommender.domain.EVENT_TYPES`.
    ts : ndarray of float64, shape (n,)
        Epoch seconds.
    dwell : ndarray of float32, shape (n,)
        Dwell seconds, NaN when not given.
    history : ndarray of bool, shape (n,)
        True for clicks imported from a history with no real time.
    user_ids, article_ids : dict[int, str]
        Key to external id for every key in the arrays.
    change_pos, event_seq : int
        :meth:`Store.log_position` in the same read: a model fitted on this log resumes
        following the store from there.
    position : ndarray of int64, shape (n,), or None
        Each event's 0-based position in the list it came from (a served list's items: the
        list's first position + k), -1 when not from a list; None from a backend that does not say.
    """

    user_key: np.ndarray
    article_key: np.ndarray
    event: np.ndarray
    ts: np.ndarray
    dwell: np.ndarray
    history: np.ndarray
    user_ids: dict[int, str]
    article_ids: dict[int, str]
    change_pos: int = 0
    event_seq: int = 0
    position: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True)
class StoredArticle:
    """An article with its store key and takedown flag."""

    key: int
    article: Article
    deleted: bool = False
    updated_at: float = 0.0


# What a change-log entry says changed. Followers apply the *current* state of what it names
# (an article's row, a reader's tombstone), so applying one twice is harmless; events are the
# exception and are counted by sequence number, exactly once.
CHANGE_KINDS = ("events", "article", "takedown", "restore", "preferences", "forget", "model", "keys", "rules", "experiment")
CHANGE_CODES = {name: code for code, name in enumerate(CHANGE_KINDS)}
# who wrote events (:meth:`Store.add_events`): a client (counted once per reader, article, type and
# clock hour in live counters), lists the service served (never recreate a forgotten reader), a
# trusted bulk import (no per-event checks)
EVENT_SOURCES = ("client", "served", "import")


@dataclass(frozen=True)
class Change:
    """One committed write, in commit order.

    Attributes
    ----------
    pos : int
        Position in the change log; strictly increasing in commit order, never reused.
    kind : str
        One of :data:`CHANGE_KINDS`.
    ref : str or None
        The article id (article, takedown, restore); for ``forget`` a salted hash of the reader id
        (the log outlives the forget and must not name the reader); None otherwise.
    lo, hi : int
        For ``events``: the batch's event sequence numbers are in ``[lo, hi]`` (gaps where a
        duplicate was ignored). 0 otherwise.
    at : float
        Wall-clock time of the write (epoch seconds).
    """

    pos: int
    kind: str
    ref: str | None = None
    lo: int = 0
    hi: int = 0
    at: float = 0.0


@dataclass(frozen=True)
class ServedList:
    """A list the service showed a reader, stored as one row (not one impression row per item).

    Live counters, training and evaluation expand it into one impression per item, at position
    ``offset + k`` for ``article_ids[k]``; forgetting the reader deletes it.
    """

    list_id: str
    user_id: str
    ts: float
    article_ids: tuple[str, ...]
    offset: int = 0
    model_version: str | None = None
    variant: str | None = None
    strategy: str | None = None
    # inside an experiment: its name, the variant's config (``NAME@HASH``) and, for an interleaved
    # list, each item's team as one digit per item ("0110": first, second, second, first variant)
    experiment: str | None = None
    config: str | None = None
    teams: str | None = None


@dataclass(frozen=True)
class FeatureLogRow:
    """The learned stage's feature vectors of one served list's items, as serving computed them.

    Stored beside the served list (same ``list_id``) for a sample of lists, so a ranker trains on
    exactly what serving saw. ``names`` travel with every row: a later feature set still reads
    old rows by name. With the exploration stage on, ``propensities`` holds each item's
    probability of being drawn at its slot (1.0 where the greedy list decided alone).

    Attributes
    ----------
    features : ndarray of float32, shape (len(article_ids), len(names))
        NaN rows for items the learned stage did not score (a pinned article).
    propensities : ndarray of float64, shape (len(article_ids),), or None
    """

    list_id: str
    user_id: str
    ts: float
    article_ids: tuple[str, ...]
    names: tuple[str, ...]
    features: np.ndarray
    offset: int = 0
    propensities: np.ndarray | None = None


def pack_features(row: FeatureLogRow) -> tuple[str, bytes, bytes | None]:
    """``(names JSON, features float32 LE, propensities float64 LE or None)``: a row's portable
    columns, the same bytes on every backend."""
    X = np.asarray(row.features, dtype="<f4")
    if X.shape != (len(row.article_ids), len(row.names)):
        raise ValueError(f"features must have shape ({len(row.article_ids)}, {len(row.names)}) "
                         f"(items x names); got {X.shape}")
    p = None
    if row.propensities is not None:
        p = np.asarray(row.propensities, dtype="<f8")
        if p.shape != (len(row.article_ids),):
            raise ValueError(f"propensities must have one value per item ({len(row.article_ids)}); got {p.shape}")
        p = p.tobytes()
    return json.dumps(list(row.names)), X.tobytes(), p


def unpack_features(list_id: str, user_id: str, ts: float, offset: int, article_ids: Sequence[str], names: str,
                    features: bytes, propensities: bytes | None) -> FeatureLogRow:
    """The inverse of :func:`pack_features` (``article_ids`` already mapped from keys)."""
    cols = tuple(json.loads(names))
    X = np.frombuffer(bytes(features), dtype="<f4").reshape(len(article_ids), len(cols)).astype(np.float64)
    p = None if propensities is None else np.frombuffer(bytes(propensities), dtype="<f8").copy()
    return FeatureLogRow(list_id, user_id, float(ts), tuple(article_ids), cols, X, int(offset), p)


@dataclass(frozen=True)
class ExperimentList:
    """A served list of an experiment as its report reads it (``size`` items from ``offset``)."""

    list_id: str
    user_id: str
    ts: float
    variant: str | None
    offset: int
    size: int
    config: str | None = None
    teams: str | None = None


@dataclass(frozen=True)
class StoredExperiment:
    """An experiment row: its definition (JSON, see ``recommender.experiments.definition``)."""

    name: str
    definition: str
    created_at: float
    stopped_at: float | None = None


# editorial rules (:class:`EditorialRule`): a pin puts an article at a position; a boost or bury
# multiplies matching articles' scores; a block keeps matching articles out
RULE_KINDS = ("pin", "boost", "bury", "block")
RULE_LISTS = ("feed", "related")


@dataclass(frozen=True)
class EditorialRule:
    """An editor's rule over lists, from ``starts_at`` (None: at once) until ``expires_at``.

    Attributes
    ----------
    rule_id : str
    kind : str
        One of :data:`RULE_KINDS`.
    scope : dict
        Which lists it applies to: ``{"list": "feed"|"related", "category"?, "region"?,
        "article_id"? (related: the anchor), "story"? (related: an article whose story's lists)}``.
    target : dict
        What it changes: a pin's article is ``{"article_id"}``; boosts, buries and blocks match
        ``{"article_id"}``, ``{"category"}`` or ``{"region"}``.
    position : int or None
        A pin's position, 1 = first.
    factor : float or None
        A boost's (> 1) or bury's (< 1) score multiplier.
    starts_at, expires_at : float or None
        Epoch seconds; a rule applies while ``starts_at <= now < expires_at``.
    created_at : float
    created_by : str
        The API key id (or ``cli:USER``) that made it.
    """

    rule_id: str
    kind: str
    scope: dict
    target: dict
    position: int | None = None
    factor: float | None = None
    starts_at: float | None = None
    expires_at: float | None = None
    created_at: float = 0.0
    created_by: str = ""

    def to_json(self) -> dict:
        return {"rule_id": self.rule_id, "kind": self.kind, "scope": dict(self.scope), "target": dict(self.target),
                "position": self.position, "factor": self.factor, "starts_at": self.starts_at,
                "expires_at": self.expires_at, "created_at": self.created_at, "created_by": self.created_by}

    @classmethod
    def from_json(cls, data: dict) -> "EditorialRule":
        return cls(**{k: data.get(k) for k in ("rule_id", "kind", "scope", "target", "position", "factor",
                                                "starts_at", "expires_at", "created_at", "created_by")})


@dataclass(frozen=True)
class AuditEntry:
    """One change to the editorial rules: who (key id), when, what (``create``/``delete``, the rule)."""

    seq: int
    at: float
    who: str
    action: str
    rule_id: str
    detail: dict


PROFILE_EVENTS = ("click", "read", "share")  # the events that say what a reader is interested in
_READ_CODES = frozenset(EVENT_CODES[e] for e in PROFILE_EVENTS)


def _event_ranges(codes: Iterable[int]) -> list[str]:
    """SQL conditions, one index range each, that together select events of ``codes``: one event
    type each (the covering index by type and time), except clicks, reads and shares together
    when all three are asked (their partial index by time: SQLite schema 13, PostgreSQL 9),
    written as the partial indexes state it (SQLite uses one only for a query stating its term)."""
    codes = sorted(set(codes))
    ranges = [f"event = {int(code)}" for code in codes if code not in _READ_CODES]
    if _READ_CODES <= set(codes):
        return ranges + [f"event IN ({', '.join(str(c) for c in sorted(_READ_CODES))})"]
    return ranges + [f"event = {int(code)}" for code in codes if code in _READ_CODES]


@dataclass(frozen=True)
class ReaderVersion:
    """What :meth:`Store.reader_version` says about a reader (without the takedown position)."""

    reads_first: int | None  # click/read/share: smallest and largest sequence number
    reads_last: int | None
    other_events: object  # hides and client-posted impressions (bounds, None when there are none)
    preferences_at: float | None
    served: bool = False  # lists the engine served them are stored (impressions too, not in the bounds)

    @property
    def has_reads(self) -> bool:
        return self.reads_first is not None

    @property
    def has_other_events(self) -> bool:
        return self.other_events is not None

    @property
    def has_preferences(self) -> bool:
        return self.preferences_at is not None

    @property
    def has_impressions(self) -> bool:
        return self.other_events is not None or bool(self.served)

    def reads_asked(self, history: int, impressions: int, window: tuple[float, float], read_set: bool) -> dict:
        """:meth:`Store.reader_reads` keyword arguments for what this version says is there: each read
        it says would come back empty is not asked (``read_set``: a heavy reader's, if wanted)."""
        return {"history": history if self.has_reads else 0, "preferences": self.has_preferences,
                "hides": window if self.has_other_events else None,
                "impressions": impressions if self.has_impressions else 0,
                "read_set": window if read_set and self.has_reads else None}


class ReadSetRow(NamedTuple):
    """One reader's row of the read-set checkpoint (:meth:`Store.put_read_sets`)."""

    user_id: str
    first_seq: int  # their smallest click/read/share sequence number when computed
    keys: np.ndarray  # distinct article keys of their reads up to the checkpoint's ``until``, int64
    later_keys: np.ndarray  # their reads stamped after ``until`` (sequence numbers up to ``hi``), int64
    later_ts: np.ndarray  # and those reads' times, float64


def read_set_chunks(rows: Iterable[ReadSetRow], rows_at_most: int = 50, bytes_at_most: int = 1 << 20
                    ) -> Iterator[list[ReadSetRow]]:
    """Checkpoint rows in the chunks :meth:`Store.put_read_sets` writes a transaction each: a
    writer waiting for one (SQLite's lock) waits for at most ~1 MB of rows."""
    chunk: list[ReadSetRow] = []
    size = 0
    for row in rows:
        chunk.append(row)
        size += 8 * (len(row.keys) + 2 * len(row.later_keys))
        if len(chunk) >= rows_at_most or size >= bytes_at_most:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def pack_read_set(row: ReadSetRow) -> dict[str, bytes]:
    """A checkpoint row's arrays as stored: little-endian int64 keys, float64 times."""
    return {"keys": np.ascontiguousarray(row.keys, dtype="<i8").tobytes(),
            "later_keys": np.ascontiguousarray(row.later_keys, dtype="<i8").tobytes(),
            "later_ts": np.ascontiguousarray(row.later_ts, dtype="<f8").tobytes()}


def checkpoint_read_set(keys: bytes, later_keys: bytes, later_ts: bytes, hi: int, after_keys: np.ndarray,
                        after_ts: np.ndarray, after_seq: np.ndarray, until: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """:meth:`Store.user_read_set` from a checkpoint row (as stored) and the reader's reads after
    its ``hi`` (``ts >= since``): the row's keys and every read stamped by ``until`` are due."""
    stored_later = np.frombuffer(later_keys, dtype="<i8").astype(np.int64)
    stored_ts = np.frombuffer(later_ts, dtype="<f8").astype(np.float64)
    all_keys = np.concatenate([stored_later, np.asarray(after_keys, dtype=np.int64)])
    all_ts = np.concatenate([stored_ts, np.asarray(after_ts, dtype=np.float64)])
    due = all_ts <= until
    return (np.concatenate([np.frombuffer(keys, dtype="<i8").astype(np.int64), all_keys[due]]),
            all_keys[~due], all_ts[~due], max(int(hi), int(np.max(after_seq, initial=0))))


class ReaderReads(NamedTuple):
    """:meth:`Store.reader_reads`: each None when not asked for."""

    history: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None  # as user_event_keys
    preferences: Preferences | None
    hides: np.ndarray | None  # sorted distinct article keys
    impressions: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    # as user_read_set; None too when the history held every click/read/share of the reader
    read_set: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None


class Store(ABC):
    """What newsrec needs from a database. Implementations must be thread-safe.

    **The change log.** Every write appends, in its own transaction, a :class:`Change` whose
    ``pos`` is assigned in commit order, and event rows get sequence numbers (``seq``) in commit
    order too. A follower (each serving worker) keeps two cursors, the last ``pos`` and the last
    ``seq`` it applied, reads :meth:`changes_after` and :meth:`event_keys_after`, and so sees every
    committed write once, in order, whatever worker or host wrote it. Sequence values are never
    reused (a forgotten reader's rows leave gaps), so a cursor never skips a new row.

    Commit order is what a backend must guarantee: SQLite has one writer at a time, so values
    drawn inside a write transaction are commit-ordered. On a shared database with concurrent
    writers (PostgreSQL), sequence values are *not* commit-ordered: a transaction that drew
    ``pos`` 7 may commit after one that drew 8, and a follower that read 8 and moved its cursor
    past 7 would never see 7. The PostgreSQL backend therefore serializes the part of each
    writing transaction that draws ``seq``/``pos`` values, through a transaction-scoped advisory
    lock taken before the first value is drawn and released at commit, so no transaction can
    draw a higher value and commit while a lower one is still open.
    """

    #: why the last write failed at the disk (see :class:`StoreDiskError`); None once one succeeds
    write_error: str | None = None

    def check_writable(self) -> None:
        """Write something trivial, so :attr:`write_error` clears once the disk works again;
        raises :class:`StoreUnavailable` while it does not."""

    @abstractmethod
    def upsert_articles(self, articles: Iterable[Article]) -> int:
        """Insert or update articles in place (idempotent); returns how many were written.

        A taken-down article stays down (only :meth:`restore_article` brings it back): a routine
        re-import must not undo a legal takedown."""

    @abstractmethod
    def get_articles(self, article_ids: Sequence[str], include_deleted: bool = False) -> dict[str, Article]:
        """Articles by id; missing ids are absent from the result."""

    @abstractmethod
    def get_stored_articles(self, article_ids: Sequence[str]) -> dict[str, StoredArticle]:
        """Articles by id with their key and takedown flag (taken-down ones included)."""

    @abstractmethod
    def takedown_article(self, article_id: str) -> bool:
        """Mark an article as taken down; returns False if it was unknown."""

    @abstractmethod
    def restore_article(self, article_id: str) -> bool:
        """Undo a takedown; returns False if the article is unknown."""

    @abstractmethod
    def deleted_article_ids(self) -> set[str]:
        """Ids of every taken-down article."""

    @abstractmethod
    def add_events(self, events: Iterable[Interaction], source: str = "client") -> tuple[int, int]:
        """Store events durably; returns (inserted, duplicates).

        An event's idempotency key is its reader plus its ``event_id`` (or, without one, its
        content), so two readers' ``"e1"`` are two events and a retried delivery is stored once.
        ``source`` is one of :data:`EVENT_SOURCES`: ``client`` events count in live counters at
        most once per reader, article, event type and clock hour; ``served`` rows (the lists the
        service showed) are dropped for a reader forgotten after the list was served, and never
        recreate a forgotten reader."""

    @abstractmethod
    def set_preferences(self, prefs: Preferences) -> None: ...

    @abstractmethod
    def get_preferences(self, user_id: str) -> Preferences | None: ...

    @abstractmethod
    def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything stored about a reader up to now, their served lists included, in one
        transaction, and record when (:meth:`forgotten_at`); idempotent. Returns counts removed
        (``events`` counts a deleted list's items as the impressions they are)."""

    @abstractmethod
    def forgotten_at(self, user_id: str) -> float | None:
        """When the reader was last forgotten (epoch seconds), or None."""

    @abstractmethod
    def user_events(self, user_id: str, since: float | None = None, limit: int = 500,
                    events: Sequence[str] | None = None) -> list[Interaction]:
        """A reader's most recent events (of the ``events`` types; default all), newest last.

        With impressions asked for, the items of the reader's served lists are among them (ordered
        by time, then sequence number, then position), each with its ``list_id`` and ``position``."""

    @abstractmethod
    def user_event_keys(self, user_id: str, limit: int = 500, events: Sequence[str] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A reader's newest events as arrays, oldest first: (article keys int64, event codes int8,
        ts float64, dwell float32 NaN if none), served lists' items included as in :meth:`user_events`.
        Keys map to ids through :meth:`article_ids_for_keys`."""

    @abstractmethod
    def article_ids_for_keys(self, keys: Sequence[int] | None = None) -> dict[int, str]:
        """Article id of each known key (see :meth:`user_event_keys`); every key when None."""

    # -- served lists and the live model (the portal-scale issue builds these) ---------------
    def add_served_lists(self, lists: Iterable[ServedList]) -> int:
        """Store served lists durably, one row each, with sequence numbers from the events'
        sequence (an ``events`` change covers them), so :meth:`event_keys_after` and
        :meth:`load_interactions` return their items as impressions. A list served to a reader
        forgotten after ``ts`` (or forgotten and not back since) is dropped, as with
        ``add_events(source="served")``. Returns how many were stored."""
        raise NotImplementedError

    def live_model(self) -> str | None:
        """The promoted model version every replica serves (None: none promoted yet)."""
        raise NotImplementedError

    def promote_model(self, version: str, expected: str | None = ...) -> bool:
        """Make ``version`` the live model (a ``model`` change every follower sees). With
        ``expected``, only if the live version is still ``expected`` (compare-and-set: two
        trainers or operators at once cannot overwrite each other unseen); returns whether it was set.

        ``expected=None`` sets it only while no version is live (adopting a legacy ``CURRENT``
        file). The check, the write and the change (``ref`` = the version) are one transaction.
        Promoting the version that is already live returns True and appends no change. Serving
        workers look for ``model`` changes once a second with ``changes_after(pos,
        kinds=("model",))``: a backend indexes them so that this is not a scan of the log
        since the last promotion (SQLite: a partial index)."""
        raise NotImplementedError

    # -- the learned stage's feature log (a sample of served lists) ---------------------------
    def add_feature_logs(self, rows: Iterable[FeatureLogRow]) -> int:
        """Store feature rows (one per served list; a ``list_id`` stored already is skipped). As
        with :meth:`add_served_lists`, a row of a reader forgotten after ``ts`` (or forgotten and
        not back since) is dropped. Returns how many were stored."""
        raise NotImplementedError

    def feature_logs(self, start: float | None = None, end: float | None = None) -> list[FeatureLogRow]:
        """Feature rows with ``start <= ts < end``, oldest first."""
        raise NotImplementedError

    def prune_feature_logs(self, older_than: float) -> int:
        """Delete feature rows served before ``older_than`` (epoch seconds); returns how many."""
        raise NotImplementedError

    # -- following the change log ------------------------------------------------------------
    def data_version(self) -> int | None:
        """A number that changes when another connection commits (this thread's view), or None
        when the backend cannot say cheaply: lets a follower skip a query when nothing changed."""
        return None

    @abstractmethod
    def log_position(self) -> tuple[int, int]:
        """``(pos, seq)``: the newest change position and event sequence number, read together
        (what a follower that loads state now must continue from)."""

    @abstractmethod
    def changes_after(self, pos: int, limit: int = 10_000, kinds: Sequence[str] | None = None) -> list[Change]:
        """Committed changes with position > ``pos`` (of ``kinds``; default all), oldest first."""

    @abstractmethod
    def event_keys_after(self, seq: int, upto: int | None = None, since_ts: float | None = None,
                         limit: int = 20_000, positions: bool = False) -> tuple:
        """Events that count in live counters with ``seq < s <= upto`` (and ``ts >= since_ts``):
        ``(cursor, article keys int64, codes int8, ts float64)``; the cursor is the last ``seq``
        read (``seq`` when none). History rows and events beyond a reader's one per hour are left out.
        A served list's items come back as impressions (code 0) at the list's ``seq``, in list order,
        merged with event rows by ``seq``; ``limit`` counts rows (an event or a whole list).

        ``positions=True`` adds a fifth array, int64: each row's 0-based position in its list
        (a served list's items: the list's first position + k; an event: its stored position),
        -1 when it has none (what position-corrected click-through counts exposures with)."""

    @abstractmethod
    def first_seq_since(self, ts: float) -> int:
        """Smallest event or served-list sequence number with a time at or after ``ts`` (1 past the
        end when none)."""

    @abstractmethod
    def load_interactions(self, start: float | None = None, end: float | None = None) -> InteractionLog:
        """Events with ``start <= ts < end`` as arrays, with the log position they were read at.

        Served lists of that time are expanded into one impression per item (no dwell, not history),
        merged in by (time, sequence number), each list's items in list order."""

    @abstractmethod
    def iter_articles(self, published_since: float | None = None, include_deleted: bool = False) -> Iterator[StoredArticle]: ...

    @abstractmethod
    def stats(self) -> dict: ...

    def close(self) -> None:  # pragma: no cover - trivial default
        pass

    @abstractmethod
    def user_read_keys(self, user_id: str, since: float, until: float | None = None,
                       events: Sequence[str] = ("click", "read", "share")) -> np.ndarray:
        """Distinct store article keys of every ``events`` event of the reader with ``since <= ts``
        (and ``ts <= until`` if given), sorted int64, shape (m,).

        All of them, however many events that is: what a feed leaves out as already read (the
        profile scores with the last few hundred events only). One index range per event type.
        """

    @abstractmethod
    def article_keys(self, article_ids: Sequence[str]) -> dict[str, int]:
        """Store article key of each known id (the keys of :meth:`user_event_keys` and
        :class:`InteractionLog`); unknown ids are absent. Keys never change once given."""

    @abstractmethod
    def newest_articles(self, limit: int, published_until: float | None = None) -> list[StoredArticle]:
        """The ``limit`` newest articles not taken down (published at or before ``published_until``
        if given), oldest first: a serving window when the last days hold too few articles."""

    # -- what the newsroom console shows ----------------------------------------------------
    def list_click_through(self, since: float) -> list[dict]:
        """Impressions and clicks of the lists served since ``since``, per strategy, variant and
        position: rows ``{"strategy", "variant", "position", "impressions", "clicks"}`` sorted by
        those keys. A click counts when it names (``list_id``, ``position``) a list served since
        ``since`` (served lists of a forgotten reader are gone, and so are their clicks)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Settings for a bulk importer's writes in this thread (none by default)."""
        yield

    def prepare_import(self, events: list[Interaction]) -> list[Interaction]:
        """The same events, with whatever work on them needs no database done ahead (none by
        default); what ``add_events(..., source="import")`` is then given. The importer calls it
        in its reader thread, while the previous batch is being written."""
        return events

    # -- experiments (recommender.experiments) -----------------------------------------------
    def create_experiment(self, name: str, definition: str, at: float) -> bool:
        """Store a new experiment (``definition`` is its JSON) and append an ``experiment`` change
        (``ref`` = the name) in the same transaction, so every worker starts assigning at once.
        Returns False, storing nothing, when the name is taken (stopped experiments included)."""
        raise NotImplementedError

    def stop_experiment(self, name: str, at: float) -> bool | None:
        """Stop an experiment from ``at`` on (an ``experiment`` change); None if the name is
        unknown, False if it was stopped already (nothing changes), True if stopped now."""
        raise NotImplementedError

    def experiments(self) -> list[StoredExperiment]:
        """Every experiment, stopped ones included, oldest first."""
        raise NotImplementedError

    def experiment_lists(self, name: str) -> list[ExperimentList]:
        """The served lists of an experiment, in the order they were stored."""
        raise NotImplementedError

    def experiment_clicks(self, name: str, since: float | None = None) -> list[tuple[str, int]]:
        """``(list_id, position)`` of every click event (at or after ``since``) whose ``list_id`` names
        a served list of the experiment, each pair once (a reader clicking one item twice is one click)."""
        raise NotImplementedError
    # -- editorial rules (pins, boosts, buries, blocks) and their audit log ------------------
    def add_rule(self, rule: EditorialRule, who: str) -> None:
        """Store a rule, an audit entry (``create``) and a ``rules`` change, in one transaction:
        every follower reloads the rules. Raises StoreError when ``rule_id`` exists."""
        raise NotImplementedError

    def remove_rule(self, rule_id: str, who: str) -> bool:
        """Remove a rule (audit entry ``delete`` and a ``rules`` change, one transaction); False
        if no such rule is in force (unknown or removed already)."""
        raise NotImplementedError

    def list_rules(self) -> list[EditorialRule]:
        """Every rule not removed, expired ones included (the engine checks times at list time),
        oldest first."""
        raise NotImplementedError

    def audit_log(self, limit: int = 100, rule_id: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` audit entries (of one rule if given), newest first."""
        raise NotImplementedError

    # -- API keys shared by every replica ----------------------------------------------------
    def add_api_key(self, key_id: str, role: str, name: str, created: str, sha256: str) -> None:
        """Store an API key's record (never the key itself: its SHA-256) with a ``keys`` change
        (``ref`` = the key id), so every worker of every host honours it; a key id or hash stored
        already raises :class:`StoreError`."""
        raise NotImplementedError

    def revoke_api_key(self, key_id: str) -> bool:
        """Delete a key's record, with a ``keys`` change; returns False if there was none."""
        raise NotImplementedError

    def api_keys(self) -> list[tuple[str, str, str, str, str]]:
        """Every stored key as ``(key_id, role, name, created, sha256)``, oldest first."""
        raise NotImplementedError

    # -- change-log retention ----------------------------------------------------------------
    def prune_changes(self, before_pos: int, older_than: float, batch: int = 10_000) -> int:
        """Delete changes with ``pos < before_pos`` written before ``older_than`` (epoch seconds),
        in transactions of ``batch`` rows (writers wait for one batch, not for the whole prune);
        returns how many. The newest change of each kind is always kept: ``log_position`` and a
        follower of one kind (``model``, ``keys``) read it. Which ``before_pos`` is safe is the
        caller's to say (``training.retention``: the oldest bundle's ``change_pos``)."""
        raise NotImplementedError

    def count_prunable(self, before_pos: int, older_than: float, feature_log_older_than: float) -> tuple[int, int]:
        """``(changes, feature rows)``: how many rows :meth:`prune_changes` ``(before_pos, older_than)``
        and :meth:`prune_feature_logs` ``(feature_log_older_than)`` would delete now, by the same
        conditions, deleting nothing (``newsrec store prune --dry-run``)."""
        raise NotImplementedError

    # -- copying a whole store to another backend (``newsrec migrate-store``) -----------------
    def export_rows(self, table: str, batch: int = 50_000) -> Iterator[list[tuple]]:
        """The rows of one of :data:`PORTABLE_TABLES`, in batches, with its columns in that order
        and in the backend-neutral form described there (keys, sequence numbers and log positions
        as stored, so a model fitted on this store catches up on the copy)."""
        raise NotImplementedError

    def import_rows(self, table: str, rows: Sequence[tuple]) -> int:
        """Bulk-insert rows of :meth:`export_rows` as they are (no change is logged: the log is
        copied too); returns how many. Only into an empty store (:meth:`is_empty`)."""
        raise NotImplementedError

    def copy_state(self) -> dict:
        """What a copy needs besides the rows: ``forget_salt`` (tombstones are salted hashes),
        ``event_seq`` and ``change_pos`` (the highest values handed out: never handed out again)."""
        raise NotImplementedError

    def finish_import(self, state: dict) -> None:
        """After :meth:`import_rows`: take over the source's :meth:`copy_state` (counters never go
        back below it) and refresh the planner's statistics."""
        raise NotImplementedError

    def is_empty(self) -> bool:
        """True when no article, reader, event, list, change or key is stored."""
        raise NotImplementedError

    def clear(self) -> None:
        """Delete every row (``migrate-store --force`` onto a store that holds data)."""
        raise NotImplementedError

    # -- a reader's cached feed (``Engine.feed``) -----------------------------------------------
    #: whether :meth:`watch_writes` tells of writes (a lag then costs milliseconds, not itself)
    tells_writes = False

    def watch_writes(self) -> WriteWatch | None:
        """A new :class:`WriteWatch`: which readers any connection of any host writes for, told as
        the writes commit, so that a worker reusing :meth:`reader_version` answers for a while
        (``EngineConfig.lag_seconds``) drops them at once instead of at the end of the while.
        None: this backend tells nothing (its lists then run behind by up to the lag).
        Raises :class:`StoreUnavailable` when the database cannot be reached."""
        return None

    def reader_version(self, user_id: str) -> tuple | None:
        """What a feed reads about the reader, as one comparable value, in one round trip:
        ``(visibility, smallest and largest sequence number of their click/read/share events, the
        same of their other events (hides, impressions a client posted), preferences updated_at,
        whether any list served to them is stored)``.
        Any event posted by any worker of any host raises a largest number (served lists, a
        separate table, do not: only whether there are any, so that a feed reads their impressions);
        a forget deletes them (afterwards a smallest number is above any seen before, or there is
        none); a preference change moves ``updated_at``.
        ``visibility`` is the newest takedown/restore position where that costs nothing more
        (else None: the engine checks visibility its own way). None altogether: this backend
        cannot say, and feeds are not cached."""
        return None

    def reader_reads(self, user_id: str, history: int = 0, preferences: bool = False,
                     hides: tuple[float, float] | None = None, impressions: int = 0,
                     read_set: tuple[float, float] | None = None) -> ReaderReads:
        """What a feed reads about a reader once :meth:`reader_version` said what there is, together:
        ``history``: their newest that many click/read/share events (:meth:`user_event_keys`);
        ``preferences`` (:meth:`get_preferences`); ``hides``: ``(since, until)`` of the keys of their
        hides (:meth:`user_read_keys`); ``impressions``: their newest that many impressions
        (:meth:`user_event_keys`); ``read_set``: ``(since, until)`` of :meth:`user_read_set`, answered
        only for a reader with at least ``history`` click/read/share events (a heavy reader: the
        history does not hold them all; else None). What is not asked for is None. A backend with
        round trips sends them at once (PostgreSQL: one statement, the read set's condition checked
        by the server)."""
        recent = self.user_event_keys(user_id, limit=history, events=PROFILE_EVENTS) if history > 0 else None
        heavy = read_set is not None and recent is not None and recent[0].size >= history
        return ReaderReads(
            recent,
            self.get_preferences(user_id) if preferences else None,
            self.user_read_keys(user_id, hides[0], until=hides[1], events=("hide",)) if hides is not None else None,
            self.user_event_keys(user_id, limit=impressions, events=("impression",)) if impressions > 0 else None,
            self.user_read_set(user_id, read_set[0], read_set[1]) if heavy else None)

    def reader_version_and_reads(self, user_id: str, history: int, impressions: int, window: tuple[float, float],
                                 read_set: bool) -> tuple[tuple | None, ReaderReads | None]:
        """:meth:`reader_version`, then the :meth:`reader_reads` a feed makes for a reader it has
        no cached page of: ``history`` and ``impressions`` as there, preferences, hides in
        ``window`` and (``read_set``) a heavy reader's read set in ``window``. ``(None, None)``
        when the version cannot be had. Every read is made after the version (a click landing in
        between is in the reads, not the version: the page is kept as older than it is, and
        the next request rebuilds it). Here each read the version says is empty is skipped; a
        backend with round trips sends the version and every read at once instead (PostgreSQL:
        one statement, one snapshot of both, so a reader new to the worker costs one wait for the
        server, not two).
        Raises what the store raises."""
        version = self.reader_version(user_id)
        if version is None:
            return None, None
        return version, self.reader_reads(
            user_id, **ReaderVersion(*version[1:]).reads_asked(history, impressions, window, read_set))

    # -- a reader's read set, incrementally (``serving.readsets``) ------------------------------
    def user_read_bounds(self, user_id: str) -> tuple[int, int] | None:
        """``(smallest, largest)`` sequence number of the reader's click, read and share events
        (any time), or None when there is none: two index probes. A new event raises the largest;
        a forget removes every event, so afterwards the smallest is above any number seen before."""
        raise NotImplementedError

    def user_read_rows(self, user_id: str, since: float, after_seq: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The reader's click, read and share events with ``ts >= since`` and ``seq > after_seq``:
        ``(article keys int64, ts float64, seq int64)``, each shape (m,), in no particular order.
        With ``after_seq`` > 0 an index on (reader, seq) reads only the new ones."""
        raise NotImplementedError

    def user_read_set(self, user_id: str, since: float, until: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """What a reader's read set starts from (all of :meth:`user_read_rows` with ``ts >= since``,
        split at ``until``): ``(keys with ts <= until, keys after until, their ts, largest seq)``,
        keys int64 in no order and not distinct, largest seq 0 when there is none. Every event with
        a sequence number up to the largest one is in it (a backend reading in two statements
        leaves out what committed in between, so a delta read after that number gets it)."""
        keys, ts, seq = self.user_read_rows(user_id, since)
        due = ts <= until
        return keys[due], keys[~due], ts[~due], int(seq.max(initial=0))

    def put_read_sets(self, rows: Sequence[ReadSetRow], since: float, until: float, hi: int) -> int:
        """Replace the read-set checkpoint (``models.readsets``, written by training): for each row's
        reader, the distinct keys of their click/read/share events with ``since <= ts <= until`` and
        sequence numbers up to ``hi``, and those stamped after ``until`` apart. A row is kept only
        while the reader's smallest read sequence number is still ``first_seq`` (a forget committed
        since the rows were computed leaves none), checked in the write; a forget deletes it.
        Returns the rows kept.

        :meth:`user_read_set` (and ``reader_reads(read_set=...)``) then answers such a reader from
        their row and the events after ``hi`` alone, whenever the row covers the ``since`` and
        ``until`` asked and their smallest read number is still ``first_seq``; the keys due may then
        include reads before ``since`` (of articles published before it)."""
        raise NotImplementedError

    def read_set_readers(self) -> list[str]:
        """The readers the read-set checkpoint holds a row for, sorted."""
        raise NotImplementedError


#: The tables a store copy moves, in copy order, and their portable columns. Booleans are bool,
#: ``tags``/``categories``/``regions`` JSON text, ``kind``/``event`` codes, a served list's
#: ``article_keys`` a tuple of int, ``dwell``/``list_id``/``position`` may be None.
PORTABLE_TABLES: dict[str, tuple[str, ...]] = {
    "article_keys": ("key", "article_id"),
    "users": ("key", "user_id"),
    "articles": ("key", "title", "body", "category", "region", "tags", "url", "published_at", "language",
                 "updated_at", "deleted"),
    "events": ("seq", "eid", "user_key", "article_key", "event", "ts", "dwell", "list_id", "position", "history",
               "counted", "received_at"),
    "served_lists": ("seq", "list_id", "user_key", "ts", "position", "model_version", "variant", "strategy",
                     "article_keys", "experiment", "config", "teams"),
    "preferences": ("user_key", "categories", "regions", "updated_at"),
    # the read-set checkpoint (put_read_sets): keys little-endian int64, times float64, as bytes
    "read_sets": ("user_key", "first_seq", "since_ts", "until_ts", "hi", "keys", "later_keys", "later_ts"),
    "forgotten": ("user_hash", "at"),
    "changes": ("pos", "kind", "ref", "lo", "hi", "at"),
    "live_model": ("version", "updated_at"),
    "api_keys": ("key_id", "role", "name", "created", "sha256"),
    "editorial_rules": ("rule_id", "kind", "spec", "starts_at", "expires_at", "created_at", "created_by",
                        "removed_at", "removed_by"),
    "editorial_audit": ("seq", "at", "who", "action", "rule_id", "detail"),
    "experiments": ("name", "definition", "created_at", "stopped_at"),
    # names JSON text; article_keys int64, features float32 and propensities float64 (or None) as
    # little-endian bytes (see pack_features)
    "feature_log": ("list_id", "user_key", "ts", "position", "article_keys", "names", "features", "propensities"),
}


def export_queries(**own: str) -> dict[str, str]:
    """One SELECT per table of :data:`PORTABLE_TABLES`: its portable columns in order, ordered by
    the first (a key, sequence number or name). ``own`` gives a backend's whole query for a table
    it stores otherwise (SQLite's ``live_model`` calls ``updated_at`` ``promoted_at``)."""
    return {table: own.get(table, f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}")
            for table, columns in PORTABLE_TABLES.items()}
