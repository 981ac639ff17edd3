"""What the rankers return: small immutable records the API turns into JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

# a feed cursor names every article its chain served (~2-3 bytes each): ~500 fit, and a chain
# that would not fit ends there. Still well inside a request line (gunicorn: 4094 bytes).
CURSOR_MAX_CHARS = 2048


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
