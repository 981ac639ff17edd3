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
from typing import Iterable, Iterator, Sequence

import numpy as np

from recommender.domain import Article, Interaction, Preferences


class StoreError(RuntimeError):
    """The store cannot do what was asked (e.g. the database is locked or unreadable)."""


class StoreUnavailable(StoreError):
    """The database is busy or unreachable; the caller should retry later."""


class StoreDiskError(StoreUnavailable):
    """A write failed at the disk (I/O error, disk full, read-only or damaged file): retrying
    helps only once the disk is fixed. ``Store.write_error`` says so until a write succeeds."""



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
CHANGE_KINDS = ("events", "article", "takedown", "restore", "preferences", "forget", "model")
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
                         limit: int = 20_000) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """Events that count in live counters with ``seq < s <= upto`` (and ``ts >= since_ts``):
        ``(cursor, article keys int64, codes int8, ts float64)``; the cursor is the last ``seq``
        read (``seq`` when none). History rows and events beyond a reader's one per hour are left out.
        A served list's items come back as impressions (code 0) at the list's ``seq``, in list order,
        merged with event rows by ``seq``; ``limit`` counts rows (an event or a whole list)."""

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

