"""What the rankers return: small immutable records the API turns into JSON."""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field, fields

# a feed cursor names every article its chain served (~2-3 bytes each): ~500 fit, and a chain
# that would not fit ends there. Still well inside a request line (gunicorn: 4094 bytes).
CURSOR_MAX_CHARS = 2048


class InvalidCursor(ValueError):
    """A feed cursor this reader was not given (changed, another reader's, too long, another layout):
    the client's mistake, told apart from any other ValueError, which is a bug."""


class NotFound(KeyError):
    """The article or reader asked for is not known (or was taken down)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else "not found"


@dataclass(frozen=True)
class RankedItem:
    """One recommended article, with a reason a reader can understand."""

    article_id: str
    title: str
    url: str | None
    category: str
    region: str | None
    published_at: float
    score: float
    reason: str


_ITEM_FIELDS = operator.attrgetter(*(f.name for f in fields(RankedItem)))


def pack_items(items: tuple[RankedItem, ...]) -> tuple[tuple, ...]:
    """Items as plain tuples of their fields, for a cache to keep (:func:`unpack_items`).

    Python's cycle collector stops tracking a tuple of strings and numbers (and then the tuples
    holding only such tuples) in its first passes; a dataclass instance it tracks for good. 20,000 cached feed pages of items made each full
    collection walk ~460,000 objects (~200 ms, every thread of the worker waiting); it runs each
    time the objects that survived grew by a quarter, i.e. every few thousand pages built.
    """
    return tuple(map(_ITEM_FIELDS, items))


def unpack_items(packed: tuple[tuple, ...]) -> tuple[RankedItem, ...]:
    """:func:`pack_items` undone (~0.6 us an item)."""
    return tuple(itertools.starmap(RankedItem, packed))


@dataclass(frozen=True)
class RankedList:
    """A served list: its items, how it was made and its id for click attribution."""

    items: tuple[RankedItem, ...]
    strategy: str
    model_version: str | None
    list_id: str
    next_cursor: str | None = None
    extra: dict = field(default_factory=dict)
    #: a feed's first page: "hit" (served again from the per-reader cache) or "miss" (built and
    #: kept); None where the cache was not asked (later pages, explain, cache off, store down)
    cache: str | None = field(default=None, compare=False)
    #: the items as the cache keeps them (:func:`pack_items`): the very same tuple each time the
    #: page is served from the cache (the API keeps the items' JSON by it); None when not kept
    packed: tuple | None = field(default=None, compare=False, repr=False)
