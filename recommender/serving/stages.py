"""List building as named stages run in order: section, candidates, scoring, rules, diversity,
explanations.

Each stage is a small object with a ``name`` and ``__call__(build) -> build``: it reads what the
stages before it left in the :class:`ListBuild` and fills in its own part (candidates set
``index``, scoring sets ``cand``, rules narrow ``cand`` and pick ``pins``, diversity sets
``chosen``, explanations set ``items``). A :class:`Pipeline` is a name plus its stages, wired once
per engine (:func:`feed_pipeline`, :func:`related_pipeline`), so editorial rules, section filters
and experiments plug in as stages instead of growing one method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from recommender import arrays

from .catalog import Snapshot
from .explain import feed_items, related_items
from .exploration import explore
from .features import FeatureJob, learned_stage
from .live import LiveState, scan_window
from .plugins import PluginCandidates, PluginScoring
from .ranking import (
    FUTURE_GRACE,
    Candidates,
    ReaderProfile,
    WindowSummary,
    diversify,
    feed_candidates,
    listable,
    mmr,
    related_candidates,
    score_feed,
    score_related,
)
from .results import RankedItem
from .rules import ListScope, RuleSet, apply_multipliers, fold, folded_codes, target_mask

FRESH_ALL_MAX = 256  # up to this many fresh articles, every one is a related candidate
EDITOR_REASON = "Pilihan redaksi"
_NONE = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class ListFilter:
    """A section filter: the categories and regions asked for (names, any case; empty: any)."""

    categories: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.categories or self.regions)

    def key(self) -> tuple:
        """The same filter however it was spelled (a cache key)."""
        return (tuple(sorted({fold(c) for c in self.categories})), tuple(sorted({fold(r) for r in self.regions})))


@dataclass
class ListBuild:
    """One list on its way through the stages.

    Inputs (set by the engine): ``kind`` ("feed" or "related"), the live ``state`` and its
    ``snap``shot, ``now``, ``size`` (items wanted), ``profile`` (feeds), ``anchor`` (related),
    ``offset`` and ``served`` (a feed page: articles its chain served before), ``filters``,
    ``rules``. Each stage then fills in what it produces; ``empty_reason`` says why a list is empty
    when a stage knows (an unknown section).
    """

    kind: str
    state: LiveState
    snap: Snapshot
    now: float
    size: int
    summary_fn: Callable[[], WindowSummary | None]
    profile: ReaderProfile | None = None
    anchor: int = -1
    offset: int = 0
    served: np.ndarray = field(default_factory=lambda: _NONE)
    filters: ListFilter = field(default_factory=ListFilter)
    rules: RuleSet = field(default_factory=RuleSet)
    # the list's seed (exploration draws) and whether its learned-stage features are kept (the
    # feature log): the engine decides both per list
    seed: int = 0
    keep_features: bool = False
    # ranker: with no ranker in the bundle, the features to log, computed off the request path
    feature_job: FeatureJob | None = None
    # section: filter codes (None: that dimension is not filtered)
    category_codes: np.ndarray | None = None
    region_codes: np.ndarray | None = None
    # candidates: catalog indices (None: the whole window, which scoring scans)
    index: np.ndarray | None = None
    # scoring, narrowed by rules: candidates with features and scores
    cand: Candidates | None = None
    # rules: pinned articles (scored like the rest) and their page positions (0-based) -> row of ``pinned``
    pinned: Candidates | None = None
    pins: dict[int, int] = field(default_factory=dict)
    # diversity: positions into ``cand``, in list order (pins not included)
    chosen: np.ndarray = field(default_factory=lambda: _NONE)
    # explanations: the list, pins placed; the pinned ones' article id -> position
    # exploration: P(each chosen item at its slot), shape (len(chosen),); None when it did not run
    propensity: np.ndarray | None = None
    explored: bool = False
    items: tuple[RankedItem, ...] = ()
    pin_positions: dict[str, int] = field(default_factory=dict)
    empty_reason: str | None = None
    user_id: str | None = None  # whom a feed is for (what bring-your-own plugins see)
    plugin_reader: object = None  # that reader as plugins see it (serving.plugins.Reader), made once per list
    _summary: tuple = ()

    def window(self) -> WindowSummary | None:
        """The window summary (None: a small window, scored in full), computed once per list."""
        if not self._summary:
            self._summary = (self.summary_fn(),)
        return self._summary[0]

    def in_section(self, index: np.ndarray) -> np.ndarray:
        """Which of ``index`` the section filter lets through, shape (n,) bool."""
        keep = np.ones(index.size, dtype=bool)
        if self.category_codes is not None:
            keep &= arrays.isin(self.snap.category(index), self.category_codes)
        if self.region_codes is not None:
            keep &= arrays.isin(self.snap.region(index), self.region_codes)
        return keep

    def scope(self) -> ListScope:
        cats = frozenset(fold(c) for c in self.filters.categories)
        regs = frozenset(fold(r) for r in self.filters.regions)
        if self.kind == "feed":
            return ListScope("feed", cats, regs)
        meta = self.snap.meta(self.anchor)
        return ListScope("related", cats, regs, meta.article_id, int(self.snap.story(np.array([self.anchor]))[0]),
                         meta.category, meta.region)


class Stage(Protocol):
    name: str

    def __call__(self, build: ListBuild) -> ListBuild: ...


@dataclass(frozen=True)
class Pipeline:
    """A named list builder: its stages, run in order."""

    name: str
    stages: tuple[Stage, ...]

    def run(self, build: ListBuild) -> ListBuild:
        for stage in self.stages:
            build = stage(build)
        return build


# -- section ----------------------------------------------------------------------------------
class Section:
    """Section filter names -> label codes; a filter naming no known section empties the list."""

    name = "section"

    def __call__(self, b: ListBuild) -> ListBuild:
        if not b.filters:
            return b
        for attr, labels, names, noun in (("category_codes", b.state.categories, b.filters.categories, "category"),
                                          ("region_codes", b.state.regions, b.filters.regions, "region")):
            if not names:
                continue
            codes = folded_codes(list(labels.names))
            found = sorted({c for n in names for c in codes.get(fold(n), [])})
            if not found:
                b.empty_reason = f"no articles in {noun} {', '.join(names)}: not a {noun} of this catalog"
                b.index = _NONE
            setattr(b, attr, np.array(found, dtype=np.int64))
        return b


# -- candidates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeedCandidates:
    """The articles that can reach a feed's top (see :func:`ranking.feed_candidates`); a small
    window is scored whole instead (``index`` None). A section adds its best articles from the
    window summary's per-category and per-region lists and keeps only its own."""

    recent: int = 10
    clusters: int = 16
    per_seed: int = 10
    name: str = "candidates"

    def __call__(self, b: ListBuild) -> ListBuild:
        if b.empty_reason is not None:
            return b
        summary = b.window()
        if summary is None:
            b.index = None
            return b
        index = feed_candidates(b.snap, b.profile, summary, b.now, b.state.fresh_neighbours, recent=self.recent,
                                clusters=self.clusters, per_seed=self.per_seed)
        if b.filters:
            pools = [summary.by_category.get(int(c), _NONE) for c in (b.category_codes if b.category_codes is not None
                                                                       else ())]
            pools += [summary.by_region.get(int(r), _NONE) for r in (b.region_codes if b.region_codes is not None
                                                                      else ())]
            extra = arrays.unique(np.concatenate([_NONE, *[np.asarray(p, dtype=np.int64) for p in pools]]))
            extra = extra[extra < b.snap.n_total]
            extra = extra[listable(b.snap, b.snap.published_at(extra), b.snap.deleted(extra), b.now)
                          & ~arrays.isin(extra, b.profile.read)]
            index = arrays.union1d(index, extra)
            index = index[b.in_section(index)]
        b.index = index
        return b


@dataclass(frozen=True)
class RelatedCandidates:
    """The anchor's neighbour lists, fresh arrivals near it, and for an archive article one scan."""

    fresh_neighbours: int = 40
    name: str = "candidates"

    def __call__(self, b: ListBuild) -> ListBuild:
        if b.empty_reason is not None:
            return b
        state, snap, anchor = b.state, b.snap, b.anchor
        extra = state.fresh_neighbours.get(anchor)
        if extra is None and not (snap.model.window_start <= anchor < snap.n_base):
            # an archive article outside the window: one scan of the window's text vectors
            extra = scan_window(snap, snap.text(np.array([anchor]))[0], self.fresh_neighbours)
        fresh = None
        if snap.n_fresh > FRESH_ALL_MAX:  # many arrivals: only those that found the anchor among their neighbours
            fresh = np.array(state.fresh_reverse.get(anchor, ()), dtype=np.int64)
            fresh = fresh[fresh < snap.n_total]
        index = related_candidates(snap, anchor, extra, fresh)
        b.index = index[b.in_section(index)] if b.filters else index
        return b


# -- scoring ----------------------------------------------------------------------------------
class FeedScoring:
    """The reader's scores (:func:`ranking.score_feed`): candidates on the window's scale, or the
    whole window (less what the reader read) when it is small."""

    name = "scoring"

    def score(self, b: ListBuild, index: np.ndarray) -> Candidates:
        return score_feed(b.snap, b.profile, b.state.counters, b.now, index=index, summary=b.window())

    def __call__(self, b: ListBuild) -> ListBuild:
        if b.empty_reason is not None:
            b.cand = self.score(b, _NONE)
        elif b.index is None:
            cand = score_feed(b.snap, b.profile, b.state.counters, b.now)
            b.cand = cand.take(b.in_section(cand.index)) if b.filters else cand
        else:
            b.cand = self.score(b, b.index)
        return b


class LearnedRanking:
    """The bundle's learned ranker re-scores the best candidates (:func:`features.learned_stage`);
    without one in the bundle the blend's scores stay, and a list whose features are logged gets
    a :class:`features.FeatureJob` (computed when the list is written, not while its reader waits)."""

    name = "ranker"

    def __call__(self, b: ListBuild) -> ListBuild:
        if b.cand is None or b.profile is None:
            return b
        if b.keep_features and getattr(b.snap.model, "learned", None) is None:
            if b.cand.index.size:
                b.feature_job = FeatureJob.of(b.snap, b.profile, b.state.counters, b.now, b.cand)
        else:
            b.cand = learned_stage(b.snap, b.profile, b.state.counters, b.now, b.cand, keep_features=b.keep_features)
        return b


class RelatedScoring:
    """Similarity to the anchor blended with freshness and popularity (:func:`ranking.score_related`);
    a thin neighbourhood (or one taken down, or not yet published) is topped up with the window's
    popular articles of the anchor's category (or of the section asked for)."""

    name = "scoring"

    def score(self, b: ListBuild, index: np.ndarray) -> Candidates:
        return score_related(b.snap, b.anchor, index, b.state.counters, b.now)

    def __call__(self, b: ListBuild) -> ListBuild:
        if b.empty_reason is not None:
            b.cand = self.score(b, _NONE)
            return b
        snap, anchor = b.snap, b.anchor
        cand = self.score(b, b.index)
        if cand.index.size < b.size:
            summary = b.window()
            if summary is None:
                pool = snap.window()
            elif b.filters:
                parts = [summary.by_category.get(int(c), _NONE) for c in (b.category_codes if b.category_codes
                                                                           is not None else ())]
                parts += [summary.by_region.get(int(r), _NONE) for r in (b.region_codes if b.region_codes
                                                                         is not None else ())]
                pool = np.concatenate([_NONE, *[np.asarray(p, dtype=np.int64) for p in parts]])
            else:
                pool = np.concatenate([summary.popular, summary.by_category.get(
                    int(snap.category(np.array([anchor]))[0]), summary.popular)])
            index = arrays.union1d(b.index, pool)
            index = index[index != anchor]
            if b.filters:
                index = index[b.in_section(index)]
            b.index = index
            cand = self.score(b, index)
        b.cand = cand
        return b


# -- business rules ---------------------------------------------------------------------------
class ExcludeServed:
    """A feed page leaves out what the earlier pages of its chain served."""

    name = "served"

    def __call__(self, b: ListBuild) -> ListBuild:
        if b.served.size:
            b.cand = b.cand.take(~arrays.isin(b.cand.index, b.served))
        return b


@dataclass(frozen=True)
class EditorialRules:
    """Editors' rules that cover this list now: blocks drop matching candidates, boosts and buries
    scale their scores, pins take their articles out of the candidates into ``pins``.

    A pin is placed only where its article could be shown at all: published, not taken down, not
    blocked here, in the section asked for, not the anchor, not read or hidden by the reader and
    not served on an earlier page. Of two pins for one position the newer wins.
    """

    scoring: FeedScoring | RelatedScoring
    name: str = "rules"

    def __call__(self, b: ListBuild) -> ListBuild:
        if not b.rules.rules or b.size <= 0:
            return b
        state, snap = b.state, b.snap

        def story_of(article_id: str) -> int:
            i = state.index_of(article_id)
            return int(snap.story(np.array([i]))[0]) if 0 <= i < snap.n_total else -1

        rules = b.rules.applying(b.scope(), b.now, story_of)
        if not rules:
            return b
        ids = {r.target.get("article_id") for r in rules} - {None}
        article_index = {a: state.index_of(a) for a in ids}
        cats, regs = folded_codes(list(state.categories.names)), folded_codes(list(state.regions.names))
        cand = b.cand
        factors = np.ones(cand.index.size)
        blocked = np.zeros(cand.index.size, dtype=bool)
        blocks = [r for r in rules if r.kind == "block"]
        for rule in rules:
            if rule.kind in ("boost", "bury"):
                factors[target_mask(rule, snap, cand.index, article_index, cats, regs)] *= float(rule.factor)
            elif rule.kind == "block":
                blocked |= target_mask(rule, snap, cand.index, article_index, cats, regs)
        if blocked.any():
            cand, factors = cand.take(~blocked), factors[~blocked]
        if (factors != 1.0).any():
            cand = Candidates(cand.index, cand.features, apply_multipliers(cand.score, factors))
        page: dict[int, int] = {}
        for rule in reversed([r for r in rules if r.kind == "pin"]):
            i = article_index.get(rule.target.get("article_id"), -1)
            pos = int(rule.position) - 1 - b.offset
            if not 0 <= pos < b.size or pos in page or i in page.values() or not self._showable(b, i, blocks,
                                                                                                  article_index):
                continue
            page[pos] = i
        if page:
            wanted = np.array(list(page.values()), dtype=np.int64)
            in_cand = arrays.isin(cand.index, wanted)
            missing = wanted[~arrays.isin(wanted, cand.index)]
            pinned = _concat(cand.take(in_cand), self.scoring.score(b, missing)) if missing.size else cand.take(in_cand)
            cand = cand.take(~in_cand)
            row = {int(i): k for k, i in enumerate(pinned.index.tolist())}
            b.pinned = pinned
            b.pins = {pos: row[i] for pos, i in sorted(page.items()) if i in row}  # (a near-copy of the anchor is not)
        b.cand = cand
        if blocked.any() and not cand.index.size and b.pinned is None:  # say so: not "none published"
            b.empty_reason = ("every article this list could show now is blocked by an editorial rule "
                              "(see 'newsrec rules list')")
        return b

    @staticmethod
    def _showable(b: ListBuild, i: int, blocks: list, article_index: dict) -> bool:
        snap = b.snap
        if not 0 <= i < snap.n_total or i == b.anchor:
            return False
        one = np.array([i], dtype=np.int64)
        if snap.deleted(one)[0] or snap.published_at(one)[0] > b.now + FUTURE_GRACE:
            return False
        if b.filters and not b.in_section(one)[0]:
            return False
        if arrays.isin(one, b.served)[0]:
            return False
        if b.profile is not None and (arrays.isin(one, b.profile.read)[0] or arrays.isin(one, b.profile.hidden)[0]):
            return False
        cats, regs = folded_codes(list(b.state.categories.names)), folded_codes(list(b.state.regions.names))
        return not any(target_mask(r, snap, one, article_index, cats, regs)[0] for r in blocks)


def _concat(a: Candidates, b: Candidates) -> Candidates:
    return Candidates(np.concatenate([a.index, b.index]),
                      {k: np.concatenate([a.features[k], b.features[k]]) for k in a.features if k in b.features},
                      np.concatenate([a.score, b.score]))


# -- diversity --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Diversify:
    """Greedy diversity over the rest of the list: pins keep their places. ``RankingParams.diversity``
    picks the caps (:func:`ranking.diversify`, the default) or MMR penalties (:func:`ranking.mmr`)."""

    kind: str
    name: str = "diversity"

    def __call__(self, b: ListBuild) -> ListBuild:
        p = b.snap.model.ranking
        n = max(0, b.size - len(b.pins))
        if p.diversity == "mmr":  # penalties, not caps; related lists (like their caps) judge stories pair by pair
            text = b.cand.features.get("text") if self.kind != "feed" else None
            b.chosen = mmr(b.snap, b.cand, n, p.mmr_lambda, p.duplicate_similarity,
                           uncapped=None if text is None else text >= p.related_follow_up_similarity,
                           story_labels=self.kind == "feed", categories=self.kind == "feed")
        elif self.kind == "feed":
            b.chosen = diversify(b.snap, b.cand, n, p.feed_max_per_story, p.feed_max_category_share,
                                 p.duplicate_similarity)
        else:
            text = b.cand.features.get("text")  # the anchor's own follow-ups are not held back by the story cap
            b.chosen = diversify(b.snap, b.cand, n, p.related_max_per_story, 1.0, p.duplicate_similarity,
                                 story_similarity=p.related_story_similarity,
                                 uncapped=None if text is None else text >= p.related_follow_up_similarity)
        return b


# -- exploration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Explore:
    """With probability ``epsilon`` (seeded by the list) the list is a random ordered draw from
    the ``pool`` best candidates instead of the greedy one (:func:`exploration.explore`); each
    chosen item's selection probability goes to ``propensity``. Pins keep their places (shown
    with probability 1). Off (no stage) when epsilon is 0."""

    epsilon: float
    pool: int = 40
    name: str = "exploration"

    def __call__(self, b: ListBuild) -> ListBuild:
        if b.cand is None or b.chosen.size == 0:
            return b
        b.chosen, b.propensity, b.explored = explore(b.chosen, b.cand.score, self.epsilon, self.pool, b.seed)
        return b


# -- explanations -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Explain:
    """The list's items with their reasons; pins placed at their positions ("Pilihan redaksi")."""

    kind: str
    name: str = "explanations"

    def _items(self, b: ListBuild, cand: Candidates, rows: np.ndarray) -> tuple[RankedItem, ...]:
        if self.kind == "feed":
            return feed_items(b.snap, cand, rows, b.profile)
        return related_items(b.snap, cand, rows, b.snap.meta(b.anchor))

    def __call__(self, b: ListBuild) -> ListBuild:
        items = list(self._items(b, b.cand, b.chosen))
        if b.pins:
            rows = np.array(list(b.pins.values()), dtype=np.int64)
            pinned = self._items(b, b.pinned, rows)
            for pos, item in zip(b.pins, pinned):  # ascending: a later insert never moves an earlier pin
                at = min(pos, len(items))
                items.insert(at, dataclasses.replace(item, reason=EDITOR_REASON))
                b.pin_positions[item.article_id] = at
        b.items = tuple(items)
        return b


def feed_pipeline(recent: int, clusters: int, per_seed: int, explore_epsilon: float = 0.0,
                  explore_pool: int = 40) -> Pipeline:
    scoring = FeedScoring()
    exploring = (Explore(explore_epsilon, explore_pool),) if explore_epsilon > 0 else ()
    return Pipeline("feed", (Section(), FeedCandidates(recent, clusters, per_seed), PluginCandidates(),
                             scoring, LearnedRanking(), PluginScoring(), ExcludeServed(),
                             EditorialRules(scoring), Diversify("feed"), *exploring, Explain("feed")))


def related_pipeline(fresh_neighbours: int) -> Pipeline:
    scoring = RelatedScoring()
    return Pipeline("related", (Section(), RelatedCandidates(fresh_neighbours), PluginCandidates(), scoring,
                                PluginScoring(), EditorialRules(scoring),
                                Diversify("related"), Explain("related")))
