"""The storage contract: what newsrec needs from a database, whatever the backend.

Every backend (``sqlite.SQLiteStore`` today) implements :class:`Store`; the engine, the jobs
and the importers use nothing else. Imports only ``recommender.domain``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from recommender.domain import EVENT_CODES, Article, Interaction, Preferences


class StoreError(RuntimeError):
    """The store cannot do what was asked (e.g. the database is locked or unreadable)."""


class StoreUnavailable(StoreError):
    """The database is busy or unreachable; the caller should retry later."""



def _types(events: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if events is None else tuple(sorted(set(events)))



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
    """

    user_key: np.ndarray
    article_key: np.ndarray
    event: np.ndarray
    ts: np.ndarray
    dwell: np.ndarray
    history: np.ndarray
    user_ids: dict[int, str]
    article_ids: dict[int, str]

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True)
class StoredArticle:
    """An article with its store key and takedown flag."""

    key: int
    article: Article
    deleted: bool = False
    updated_at: float = 0.0


class Store(ABC):
    """What newsrec needs from a database. Implementations must be thread-safe."""

    @abstractmethod
    def upsert_articles(self, articles: Iterable[Article]) -> int:
        """Insert or update articles in place (idempotent); returns how many were written."""

    @abstractmethod
    def get_articles(self, article_ids: Sequence[str], include_deleted: bool = False) -> dict[str, Article]:
        """Articles by id; missing ids are absent from the result."""

    @abstractmethod
    def takedown_article(self, article_id: str) -> bool:
        """Mark an article as taken down; returns False if it was unknown."""

    @abstractmethod
    def add_events(self, events: Iterable[Interaction]) -> tuple[int, int]:
        """Store events durably; returns (inserted, duplicates)."""

    @abstractmethod
    def set_preferences(self, prefs: Preferences) -> None: ...

    @abstractmethod
    def get_preferences(self, user_id: str) -> Preferences | None: ...

    @abstractmethod
    def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything stored about a reader; returns counts removed."""

    @abstractmethod
    def user_events(self, user_id: str, since: float | None = None, limit: int = 500,
                    events: Sequence[str] | None = None) -> list[Interaction]:
        """A reader's most recent events (of the ``events`` types; default all), newest last."""

    def user_event_arrays(self, user_id: str, limit: int = 500, events: Sequence[str] | None = None
                          ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`user_events` as (article ids, event codes int8, ts float64, dwell float32 NaN if none),
        oldest first: what a feed needs, without an object per event."""
        rows = self.user_events(user_id, limit=limit, events=events)
        return ([e.article_id for e in rows], np.array([EVENT_CODES[e.event] for e in rows], dtype=np.int8),
                np.array([e.ts for e in rows], dtype=np.float64),
                np.array([np.nan if e.dwell_seconds is None else e.dwell_seconds for e in rows], dtype=np.float32))

    def user_event_keys(self, user_id: str, limit: int = 500, events: Sequence[str] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """:meth:`user_event_arrays` with the store's integer article keys (int64) instead of ids,
        or None when the store has no such keys (callers then use the ids)."""
        return None

    def article_ids_for_keys(self, keys: Sequence[int] | None = None) -> dict[int, str]:
        """Article id of each known key (see :meth:`user_event_keys`); every key when None."""
        return {}

    def event_keys_after(self, seq: int, since_ts: float | None = None, limit: int = 20_000
                         ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray] | None:
        """:meth:`events_after` as arrays with integer article keys: (cursor, keys int64, codes int8,
        ts float64), or None when the store has no such keys."""
        return None

    @abstractmethod
    def load_interactions(self, start: float | None = None, end: float | None = None) -> InteractionLog: ...

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

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Settings for a bulk importer's writes in this thread (none by default)."""
        yield

