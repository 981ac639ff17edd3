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

from recommender import arrays
from recommender.domain import ValidationError, check_id, control_character, format_time, parse_time
from recommender.store import EditorialRule, Store
from recommender.store.base import RULE_KINDS, RULE_LISTS

from .catalog import Snapshot
from .results import NotFound


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
        return arrays.isin(snap.category(index), category_codes.get(fold(target["category"]), []))
    if target.get("region") is not None:
        return arrays.isin(snap.region(index), region_codes.get(fold(target["region"]), []))
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


MAX_POSITION = 100
MAX_LABEL = 100
FACTOR_RANGE = (0.01, 100.0)
_SCOPE_KEYS = frozenset({"list", "category", "region", "article_id", "story"})
_TARGET_KEYS = ("article_id", "category", "region")


def _label(value, name: str) -> str:
    if isinstance(value, str):
        bad = control_character(value)  # the set article labels refuse: a lone surrogate cannot be stored
        if bad is not None:
            raise ValidationError(f"{name} must be a section name, printable text: found control character "
                                  f"U+{ord(bad):04X}")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LABEL:
        raise ValidationError(f"{name} must be a section name of 1-{MAX_LABEL} printable characters")
    return value.strip()


def parse_scope(value) -> dict:
    """A rule's scope from JSON: ``{"list": "feed"|"related", "category"?, "region"?, "article_id"?,
    "story"?}`` (the last two for related lists only)."""
    if not isinstance(value, dict):
        raise ValidationError('scope must be an object such as {"list": "feed"} or {"list": "related", '
                              '"article_id": "..."}')
    unknown = sorted(set(value) - _SCOPE_KEYS)
    if unknown:
        raise ValidationError(f"unknown scope field(s): {', '.join(map(str, unknown[:5]))}; "
                              f"use {', '.join(sorted(_SCOPE_KEYS))}")
    if value.get("list") not in RULE_LISTS:
        raise ValidationError(f"scope.list must be one of {', '.join(RULE_LISTS)}")
    scope = {"list": value["list"]}
    for key in ("category", "region"):
        if value.get(key) is not None:
            scope[key] = _label(value[key], f"scope.{key}")
    for key in ("article_id", "story"):
        if value.get(key) is not None:
            if scope["list"] != "related":
                raise ValidationError(f"scope.{key} names the article whose related lists the rule covers: "
                                      "it goes with list 'related'")
            scope[key] = check_id(value[key], f"scope.{key}")
    return scope


def _times(body: dict, now: float, expiry_required: bool) -> tuple[float | None, float | None]:
    starts = parse_time(body["starts_at"], "starts_at") if body.get("starts_at") is not None else None
    if body.get("expires_at") is None:
        if expiry_required:
            raise ValidationError("expires_at is required (ISO-8601 time or epoch seconds): a pin does not "
                                  "stay forever")
        return starts, None
    expires = parse_time(body["expires_at"], "expires_at")
    if expires <= max(now, starts or now):
        raise ValidationError("expires_at must be later than now and than starts_at")
    return starts, expires


def rule_view(rule: EditorialRule, now: float) -> dict:
    """A rule as the API, the console and ``newsrec pins|rules list --json`` show it: times in
    ISO-8601 (WIB), and ``active``: whether it applies at ``now``."""
    def when(ts: float | None) -> str | None:
        return None if ts is None else format_time(ts)

    out = {"rule_id": rule.rule_id, "kind": rule.kind, "scope": rule.scope, "target": rule.target,
           "starts_at": when(rule.starts_at), "expires_at": when(rule.expires_at),
           "created_at": when(rule.created_at), "created_by": rule.created_by,
           "active": (rule.starts_at is None or rule.starts_at <= now) and (rule.expires_at is None
                                                                            or now < rule.expires_at)}
    if rule.kind == "pin":
        out.update(pin_id=rule.rule_id, article_id=rule.target["article_id"], position=rule.position)
    else:
        out["factor"] = rule.factor
    return out


def check_named_articles(store: Store, rule: EditorialRule) -> None:
    """Raises NotFound for a pin of an article the store does not hold (published, embargoed or
    taken down: it may come back), or for any rule scoped to the related lists of such an article:
    a typo would otherwise be a rule that never shows. (A boost, bury or block may name an article
    still to come: a block can be in place before it arrives.)"""
    named = {"pinned": rule.target["article_id"]} if rule.kind == "pin" else {}
    if rule.scope.get("article_id") is not None:
        named["anchor"] = rule.scope["article_id"]
    if not named:
        return
    held = store.get_articles(list(named.values()), include_deleted=True)
    for role, article_id in named.items():
        if article_id not in held:
            then = "pin it" if role == "pinned" else "scope the rule to its related lists"
            raise NotFound(f"article {article_id} is not in the store: publish it first (POST /v1/articles or "
                           f"'newsrec ingest articles'), then {then}")


def parse_pin(body, rule_id: str, now: float, who: str) -> EditorialRule:
    """A pin from its JSON body: ``{"article_id", "position" (1 = first), "scope", "starts_at"?,
    "expires_at"}``; raises ValidationError naming the field."""
    if not isinstance(body, dict):
        raise ValidationError('send a pin object: {"article_id", "position", "scope", "expires_at"}')
    unknown = sorted(set(body) - {"article_id", "position", "scope", "starts_at", "expires_at"})
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(map(str, unknown[:5]))}")
    article_id = check_id(body.get("article_id"), "article_id")
    position = body.get("position")
    if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= MAX_POSITION:
        raise ValidationError(f"position must be a whole number from 1 (first) to {MAX_POSITION}")
    scope = parse_scope(body.get("scope"))
    starts, expires = _times(body, now, expiry_required=True)
    return EditorialRule(rule_id, "pin", scope, {"article_id": article_id}, position=position, starts_at=starts,
                         expires_at=expires, created_at=now, created_by=who)


def parse_rule(body, rule_id: str, now: float, who: str) -> EditorialRule:
    """A boost, bury or block from its JSON body: ``{"kind": "boost"|"bury"|"block", "target":
    {"article_id"|"category"|"region": ...}, "scope", "factor" (boost > 1, bury < 1), "starts_at"?,
    "expires_at"?}``; raises ValidationError naming the field."""
    if not isinstance(body, dict):
        raise ValidationError('send a rule object: {"kind", "target", "scope", "factor"?, "expires_at"?}')
    unknown = sorted(set(body) - {"kind", "target", "scope", "factor", "starts_at", "expires_at"})
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(map(str, unknown[:5]))}")
    kind = body.get("kind")
    if kind not in RULE_KINDS or kind == "pin":
        raise ValidationError("kind must be boost, bury or block (pins are made with POST /v1/admin/pins)")
    target = body.get("target")
    if not isinstance(target, dict) or len(target) != 1 or next(iter(target)) not in _TARGET_KEYS:
        raise ValidationError('target must name one of article_id, category, region: e.g. {"category": "Politik"}')
    (key, value), = target.items()
    target = {key: check_id(value, "target.article_id") if key == "article_id" else _label(value, f"target.{key}")}
    factor = body.get("factor")
    if kind == "block":
        if factor is not None:
            raise ValidationError("a block takes no factor")
    else:
        low, high = FACTOR_RANGE
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))):
            raise ValidationError(f"factor must be a number (boost > 1, bury < 1); got {factor!r:.60}")
        if isinstance(factor, int) and abs(factor) > high:  # out of range (and maybe too long for a float)
            factor = 2.0 * high if factor > 0 else -2.0 * high
        if factor is None:
            raise ValidationError(f"factor is required for a {kind}: a number (boost > 1, bury < 1)")
        if not math.isfinite(factor):  # sent, so not "required": 1e400 in JSON is inf, a form may say "nan"
            raise ValidationError(f"factor must be a finite number (boost > 1, bury < 1); got {factor!r}")
        if kind == "boost" and not 1.0 < factor <= high:
            raise ValidationError(f"a boost's factor must be above 1 and at most {high:g}")
        if kind == "bury" and not low <= factor < 1.0:
            raise ValidationError(f"a bury's factor must be at least {low:g} and below 1")
        factor = float(factor)
    scope = parse_scope(body.get("scope"))
    starts, expires = _times(body, now, expiry_required=False)
    return EditorialRule(rule_id, kind, scope, target, factor=factor, starts_at=starts, expires_at=expires,
                         created_at=now, created_by=who)
