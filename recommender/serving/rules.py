"""Editors' rules (pins, boosts, buries, blocks) as served: which apply to a list at a time.

The engine holds one immutable :class:`RuleSet`, read whole from the store at start and again
whenever a ``rules`` change arrives in the log, and swapped as one reference. Start and expiry
are checked against the engine clock when a list is built, so an expired rule vanishes on every
worker without a reload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from recommender.store import EditorialRule

from .catalog import Snapshot


def fold(name: str | None) -> str | None:
    """Category and region names compare without case (``politik`` is ``Politik``)."""
    return None if name is None else name.casefold()


@dataclass(frozen=True)
class ListScope:
    """What a list is, as rule scopes name it: its kind, the section filter, the anchor."""

    kind: str  # "feed" | "related"
    categories: frozenset[str] = frozenset()  # folded names of the section filter (empty: none)
    regions: frozenset[str] = frozenset()
    anchor_id: str | None = None  # related lists
    anchor_story: int = -1
    anchor_category: str | None = None
    anchor_region: str | None = None


@dataclass(frozen=True)
class RuleSet:
    """The rules in force (not removed), expired or future ones included, oldest first."""

    rules: tuple[EditorialRule, ...] = ()

    def active(self, now: float) -> list[EditorialRule]:
        return [r for r in self.rules if (r.starts_at is None or r.starts_at <= now)
                and (r.expires_at is None or now < r.expires_at)]

    def next_change(self, now: float) -> float:
        """Clock time the next rule starts or expires after ``now`` (inf: none): a list cached
        before it must be built again from then on."""
        times = [t for r in self.rules for t in (r.starts_at, r.expires_at) if t is not None and t > now]
        return min(times, default=math.inf)

    def applying(self, scope: ListScope, now: float, story_of: Callable[[str], int]) -> list[EditorialRule]:
        """Active rules whose scope covers this list (``story_of``: an article id's story label, -1
        when unknown)."""
        return [r for r in self.active(now) if covers(r.scope, scope, story_of)]


def covers(rule_scope: dict, scope: ListScope, story_of: Callable[[str], int]) -> bool:
    """Whether a rule's scope covers a list.

    Feed scopes: no section applies to every feed; ``category`` / ``region`` to feeds whose section
    filter names it. Related scopes: ``article_id`` the lists under that article, ``story`` those
    under any article of that article's story, ``category`` / ``region`` those under articles of that
    section (or filtered to it). Every key given must match.
    """
    if rule_scope.get("list") != scope.kind:
        return False
    category, region = fold(rule_scope.get("category")), fold(rule_scope.get("region"))
    if scope.kind == "feed":
        return ((category is None or category in scope.categories)
                and (region is None or region in scope.regions))
    if rule_scope.get("article_id") is not None and rule_scope["article_id"] != scope.anchor_id:
        return False
    if rule_scope.get("story") is not None:
        story = story_of(rule_scope["story"])
        if story < 0 or story != scope.anchor_story:
            return False
    if category is not None and category != fold(scope.anchor_category) and category not in scope.categories:
        return False
    if region is not None and region != fold(scope.anchor_region) and region not in scope.regions:
        return False
    return True


def target_mask(rule: EditorialRule, snap: Snapshot, index: np.ndarray, article_index: dict[str, int],
                category_codes: dict[str, list[int]], region_codes: dict[str, list[int]]) -> np.ndarray:
    """Which of ``index`` (catalog indices, shape (n,)) a boost, bury or block matches, shape (n,) bool."""
    target = rule.target
    if target.get("article_id") is not None:
        return index == article_index.get(target["article_id"], -1)
    if target.get("category") is not None:
        return np.isin(snap.category(index), category_codes.get(fold(target["category"]), []))
    if target.get("region") is not None:
        return np.isin(snap.region(index), region_codes.get(fold(target["region"]), []))
    return np.zeros(index.size, dtype=bool)


def folded_codes(names: list[str]) -> dict[str, list[int]]:
    """Folded label name -> every code whose name folds to it."""
    out: dict[str, list[int]] = {}
    for code, name in enumerate(names):
        if name is not None:
            out.setdefault(name.casefold(), []).append(code)
    return out


def apply_multipliers(score: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Scores times a boost's or bury's factor, measured from the lowest candidate's score.

    Feed and related scores may be negative, where a plain product would turn a boost into a bury;
    scaling the distance above the floor keeps a factor > 1 a lift and < 1 a drop for every item.
    """
    if score.size == 0:
        return score
    floor = float(score.min()) - 1.0  # one unit below: the lowest candidate moves too
    return floor + (score - floor) * factors
