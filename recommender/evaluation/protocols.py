"""Offline evaluation protocols: newsrec against baselines on a time split of the store.

Every protocol cuts the event stream at one instant (:mod:`recommender.splitting`): models
learn from events strictly before the cut, and are judged on what readers did after it.

* ``impressions`` (batch, MIND-style): every logged test impression is ranked by the models
  as they stood at the cut; AUC, MRR, nDCG@5 and nDCG@10 per impression, averaged.
* ``replay`` (what production does): the same impressions, but the test period is replayed
  in time order through newsrec's live parts (popularity and click-through counters, the
  reader's fold-in from their own new clicks, newly seen articles). Each impression is scored
  with the state just before it: events strictly earlier than the impression are recorded
  first, the impression's own impressions and clicks only after it was scored.
* ``topk``: for each test reader, at their first test-period click, every article of the
  serving window is ranked; Recall/nDCG/Hit@5,10,20 against what they read in the next day.
* ``related``: for anchor articles, every earlier article of the window is ranked; ground
  truth is co-reading in the test period, or editor links when given (``editor_links``);
  ``same_category@10`` is the share of each list in the anchor's category.

Beyond accuracy is measured on every top-10 list: catalog coverage, novelty, intra-list
diversity, category entropy, freshness and the share of the top-1% most popular articles.

Newsrec is evaluated through the serving :class:`recommender.engine.Engine` (what is
evaluated is what is served), on a private copy of the store that holds only pre-cut events.
Ablations ``newsrec-no-<part>`` drop one feature weight from the very same scores.
"""

from __future__ import annotations

import copy
import difflib
import logging
import math
import sqlite3
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from recommender.domain import ANONYMOUS, EVENT_TYPES, Interaction, format_time
from recommender.params import TrainParams
from recommender.store import SQLiteStore, Store

from .baselines import BASELINES, IMPRESSION, Events, FitData, Scorer, make_baselines
from .metrics import (
    auc,
    break_ties,
    category_entropy,
    freshness_hours,
    impression_metrics,
    intra_list_diversity,
    novelty,
    paired_bootstrap,
    popular_share,
    rank_biased_entropy,
    rank_biased_overlap,
    reciprocal_rank,
    top_popular_items,
    topk_metrics,
)
from .splitting import check_no_leak, last_days_cut

log = logging.getLogger(__name__)

__all__ = [
    "ABLATIONS",
    "PROTOCOLS",
    "Catalog",
    "Evaluation",
    "Query",
    "Split",
    "choose_cut",
    "editor_link_pairs",
    "impression_queries",
    "load_split",
    "related_queries",
    "topk_queries",
]

PROTOCOLS = ("impressions", "replay", "topk", "related")
ONLINE = {"impressions": False, "replay": True, "topk": True, "related": False}
HOUR = 3600.0
DAY = 86_400.0
FUTURE_GRACE = 60.0  # the engine's tolerance for "published just now"
FAR_FUTURE = 4.0e9  # engine clock while it is built (so its fallback state loads nothing)
KS = (5, 10, 20)
LIST_LENGTH = 10  # beyond-accuracy lists
RELATED_DEPTH = 100  # ranked items kept per related/topk query (MRR is counted within them)
FRESHNESS_BINS = (0.0, 1.0, 3.0, 6.0, 12.0, 24.0, 48.0, 72.0, 168.0, np.inf)

# Ablations: newsrec with one group of feed weights set to zero (same scores minus the parts).
ABLATIONS: dict[str, tuple[str, ...]] = {
    "no-ctr": ("ctr",),
    "no-trending": ("trending",),
    "no-fresh": ("fresh",),
    "no-cf": ("cf",),
    "no-content": ("content",),
    "no-session": ("session",),
    "no-affinity": ("affinity",),
    "no-follow": ("follow_category", "follow_region"),
}
FEED_WEIGHTS = {"fresh": "feed_fresh", "trending": "feed_trending", "ctr": "feed_ctr",
                "follow_category": "feed_follow_category", "follow_region": "feed_follow_region",
                "content": "feed_content", "session": "feed_session", "cf": "feed_cf",
                "affinity": "feed_category_affinity"}
RELATED_ABLATIONS: dict[str, dict[str, float]] = {
    "no-text": {"related_text": 0.0},
    "no-coread": {"related_coread": 0.0},
    "no-cf": {"related_cf": 0.0},
    "no-fresh": {"related_fresh": 0.0},
    "no-popular": {"related_popular": 0.0},
    "no-same-category": {"related_same_category": 0.0},
    "no-story-cap": {"related_max_per_story": 1_000},  # diversification: several articles of one story
    "no-follow-ups": {"related_follow_up_similarity": 2.0},  # the anchor's follow-ups held back by the cap too
}
SCORE_COLUMN = "__score__"  # newsrec's own score among the kept feature columns
HEADLINE = {"impressions": ("auc", "mrr", "ndcg@5", "ndcg@10"), "replay": ("auc", "mrr", "ndcg@5", "ndcg@10"),
            "topk": ("recall@10", "ndcg@10", "mrr"), "related": ("recall@10", "ndcg@10", "mrr")}


# --------------------------------------------------------------------------------------------
# Data: one index space for articles and readers, split at the cut
# --------------------------------------------------------------------------------------------
@dataclass
class Catalog:
    """Every article the store knows (with or without a row), in one index space.

    Attributes (n = articles)
    ----------
    ids : ndarray of str, shape (n,)
    published_at : ndarray of float64, shape (n,)
    category : ndarray of int64, shape (n,)
        Codes into ``category_names``.
    has_text : ndarray of bool, shape (n,)
        False for placeholders (an id without a title or body, as MIND's missing news) and,
        once :meth:`Evaluation.prepare` embedded the text, for text without an indexable word.
    pairs : list of (title, body)
        Text for the embedder; ``("", "")`` for placeholders.
    """

    ids: np.ndarray
    published_at: np.ndarray
    category: np.ndarray
    category_names: list[str]
    has_text: np.ndarray
    pairs: list[tuple[str, str]]
    index: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @cached_property
    def by_publication(self) -> np.ndarray:
        """Article indices in order of publication, shape (n,)."""
        return np.argsort(self.published_at, kind="stable")


@dataclass
class Split:
    """Articles, readers and the events on both sides of ``cut`` (train < cut <= test < end)."""

    catalog: Catalog
    users: list[str]
    train: Events
    test: Events
    cut: float
    end: float | None
    anonymous: int = -1

    @property
    def n_users(self) -> int:
        return len(self.users)


def _is_placeholder(article_id: str, title: str, body: str) -> bool:
    return not body.strip() and (not title.strip() or title.strip() == article_id)


def load_split(store: Store, cut: float, end: float | None = None) -> Split:
    """Load the store as arrays split at ``cut``; events at or after ``end`` are left out.

    Raises ValueError (from :func:`recommender.splitting.check_no_leak`) if the store returned
    a training event at or after the cut or a test event before it.
    """
    if end is not None and end <= cut:
        raise ValueError(f"end ({end}) must be after the cut ({cut}); pass a later --cut or fewer test days")
    ids, published, categories, pairs, has_text = [], [], [], [], []
    for stored in store.iter_articles():
        a = stored.article
        placeholder = _is_placeholder(a.article_id, a.title, a.body)
        ids.append(a.article_id)
        published.append(a.published_at)
        categories.append(a.category)
        has_text.append(not placeholder)
        pairs.append(("", "") if placeholder else (a.title, a.body))
    train_log = store.load_interactions(end=cut)
    test_log = store.load_interactions(start=cut, end=end)
    check_no_leak(train_log.ts, test_log.ts, cut)
    index = {a: i for i, a in enumerate(ids)}
    # ids referenced by events but without an article row: known, without text
    first_seen: dict[str, float] = {}
    for lg in (train_log, test_log):
        if len(lg) == 0:
            continue
        keys, first = np.unique(lg.article_key, return_index=True)
        for key, pos in zip(keys.tolist(), first.tolist()):
            aid = lg.article_ids[key]
            if aid not in index and aid not in first_seen:
                first_seen[aid] = float(lg.ts[pos])
    for aid, ts in first_seen.items():
        index[aid] = len(ids)
        ids.append(aid)
        published.append(ts)
        categories.append("unknown")
        has_text.append(False)
        pairs.append(("", ""))
    names = sorted(set(categories))
    code = {c: i for i, c in enumerate(names)}
    catalog = Catalog(np.array(ids, dtype=np.str_), np.asarray(published, dtype=np.float64),
                      np.array([code[c] for c in categories], dtype=np.int64), names,
                      np.asarray(has_text, dtype=bool), pairs, index)
    users: dict[str, int] = {}
    for lg in (train_log, test_log):
        for uid in lg.user_ids.values():
            users.setdefault(uid, len(users))
    train, test = (_events(lg, index, users) for lg in (train_log, test_log))
    log.info("split at %s: %d articles, %d readers, %d train and %d test events", format_time(cut), len(catalog),
             len(users), len(train), len(test))
    return Split(catalog, list(users), train, test, float(cut), end, users.get(ANONYMOUS, -1))


def _events(lg, article_index: dict[str, int], user_index: dict[str, int]) -> Events:
    def mapped(keys: np.ndarray, names: dict[int, str], index: dict[str, int]) -> np.ndarray:
        if keys.size == 0:
            return np.zeros(0, dtype=np.int64)
        uniq, inverse = np.unique(keys, return_inverse=True)
        lookup = np.array([index.get(names[k], -1) for k in uniq.tolist()], dtype=np.int64)
        return lookup[inverse]

    return Events(mapped(lg.user_key, lg.user_ids, user_index), mapped(lg.article_key, lg.article_ids, article_index),
                  lg.event.astype(np.int8), lg.ts.astype(np.float64), lg.dwell.astype(np.float32),
                  lg.history.astype(bool))


def choose_cut(store: Store, test_days: float = 1.0, cut: float | None = None) -> float:
    """The evaluation cut: ``cut`` if given, else local midnight ``test_days`` before the last event."""
    if cut is not None:
        return float(cut)
    lg = store.load_interactions()
    ts = lg.ts[~lg.history]
    if ts.size == 0:
        raise ValueError("the store has no events to split: every protocol ranks against readers' impressions, "
                         "clicks or co-reading, which a text-only corpus does not have; ingest events "
                         "(related lists of a text-only corpus against its editors' links: benchmarks/quality.py, on "
                         "the Indonesian news set)")
    return last_days_cut(ts, test_days)


# --------------------------------------------------------------------------------------------
# Queries: what each protocol asks the models to rank
# --------------------------------------------------------------------------------------------
@dataclass
class Query:
    """One thing to rank at one moment; models see only state strictly before ``ts``.

    Attributes
    ----------
    user : int
        Reader index (-1 for related lists).
    ts : float
        The moment, epoch seconds.
    items : ndarray of int64, shape (m,)
        Candidate article indices.
    labels : ndarray of float64, shape (m,), optional
        Clicks per candidate (impressions).
    relevant : ndarray of int64, optional
        Relevant article indices (topk, related).
    anchor : int
        The anchor article of a related list, else -1.
    """

    user: int
    ts: float
    items: np.ndarray
    labels: np.ndarray | None = None
    relevant: np.ndarray | None = None
    anchor: int = -1

    @property
    def truth_item(self) -> int:
        """The article whose category files this query in the per-category breakdown."""
        if self.anchor >= 0:
            return self.anchor
        if self.labels is not None:
            return int(self.items[int(np.argmax(self.labels))])
        return int(self.relevant[0])


def _user_positive_times(events: Events, anonymous: int) -> dict[tuple[int, int], list[float]]:
    keep = events.positive & (events.item >= 0) & (events.user != anonymous)
    out: dict[tuple[int, int], list[float]] = defaultdict(list)
    for u, i, t in zip(events.user[keep].tolist(), events.item[keep].tolist(), events.ts[keep].tolist()):
        out[(u, i)].append(t)
    return out


def impression_queries(split: Split, gap_seconds: float = 30.0, label_window_seconds: float = 1800.0) -> list[Query]:
    """Logged test impressions, one query per shown list.

    Impressions of one reader no more than ``gap_seconds`` apart form one list (MIND stamps a
    list with one time; a portal logs its items a moment apart). A candidate is clicked if the
    reader clicked, read or shared it after the list was shown, within ``label_window_seconds``
    and before their next list. Lists with no click, or only clicks, are left out (AUC is
    undefined for them), as in MIND.
    """
    test = split.test
    keep = (test.event == IMPRESSION) & (test.item >= 0) & (test.user != split.anonymous)
    u, t, it = test.user[keep], test.ts[keep], test.item[keep]
    if u.size == 0:
        return []
    order = np.lexsort((t, u))
    u, t, it = u[order], t[order], it[order]
    new = np.ones(u.size, dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (np.diff(t) > gap_seconds)
    starts = np.flatnonzero(new)
    stops = np.append(starts[1:], u.size)
    clicks = _user_positive_times(test, split.anonymous)
    queries = []
    for g, (a, b) in enumerate(zip(starts.tolist(), stops.tolist())):
        user, t0, t1 = int(u[a]), float(t[a]), float(t[b - 1])
        limit = t1 + label_window_seconds
        if g + 1 < starts.size and u[starts[g + 1]] == user:
            limit = min(limit, float(t[starts[g + 1]]))
        items = it[a:b]
        _, first = np.unique(items, return_index=True)
        items = items[np.sort(first)]
        labels = np.array([any(t0 <= x < limit for x in clicks.get((user, i), ())) for i in items.tolist()],
                          dtype=np.float64)
        if 0 < labels.sum() < labels.size:
            queries.append(Query(user, t0, items, labels=labels))
    queries.sort(key=lambda q: (q.ts, q.user))
    return queries


def _published_between(catalog: Catalog, lo: float, hi: float) -> np.ndarray:
    """Sorted indices of the articles published in ``[lo, hi]``."""
    order = catalog.by_publication
    pub = catalog.published_at[order]
    return np.sort(order[np.searchsorted(pub, lo, side="left"): np.searchsorted(pub, hi, side="right")])


def _train_history(split: Split) -> dict[int, np.ndarray]:
    ev = split.train
    keep = ev.positive & (ev.item >= 0)
    users, items = ev.user[keep], ev.item[keep]
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    return {int(g[0]): i for g, i in zip(np.split(users, bounds), np.split(items, bounds)) if g.size}


def topk_queries(split: Split, window_days: float = 7.0, horizon_hours: float = 24.0) -> list[Query]:
    """One query per test reader, at their first test-period positive event.

    Candidates are the articles published in the ``window_days`` before that moment that the
    reader has not engaged with yet; relevant are those they engage with in the next
    ``horizon_hours``.
    """
    test = split.test
    keep = test.positive & (test.item >= 0) & (test.user != split.anonymous)
    users, items, ts = test.user[keep], test.item[keep], test.ts[keep]
    history = _train_history(split)
    queries = []
    for user in np.unique(users).tolist():
        mine = users == user
        moment = float(ts[mine].min())
        cands = _published_between(split.catalog, moment - window_days * DAY, moment + FUTURE_GRACE)
        seen = history.get(user)
        if seen is not None and seen.size:
            cands = cands[~np.isin(cands, seen)]
        later = items[mine & (ts < moment + horizon_hours * HOUR)]
        relevant = np.intersect1d(later, cands)
        if relevant.size and cands.size > 1:
            queries.append(Query(int(user), moment, cands, relevant=relevant))
    queries.sort(key=lambda q: (q.ts, q.user))
    return queries


def related_queries(split: Split, links: dict[str, set[str]] | None = None, window_days: float = 7.0,
                    session_gap_minutes: float = 30.0) -> list[Query]:
    """Anchors with their relevant related articles.

    With ``links`` (anchor id -> linked ids, e.g. an editor's "Baca juga"), the list is asked
    for when the anchor is published; otherwise the ground truth is co-reading in the test
    period (articles read in one session with the anchor) and the list is asked for at the
    cut, or when the anchor is published if later. Candidates are the articles of the window
    published by then, so no model can propose an article that did not exist yet.
    """
    cat = split.catalog
    truth: dict[int, set[int]] = defaultdict(set)
    if links is not None:
        for anchor, targets in links.items():
            a = cat.index.get(anchor)
            if a is None:
                continue
            truth[a].update(cat.index[t] for t in targets if t in cat.index and t != anchor)
    else:
        test = split.test
        keep = test.positive & (test.item >= 0) & (test.user != split.anonymous)
        u, it, t = test.user[keep], test.item[keep], test.ts[keep]
        order = np.lexsort((t, u))
        u, it, t = u[order], it[order], t[order]
        new = np.ones(u.size, dtype=bool)
        new[1:] = (u[1:] != u[:-1]) | (np.diff(t) > session_gap_minutes * 60.0)
        session = np.cumsum(new)
        for s in np.unique(session):
            members = set(it[session == s].tolist())
            if len(members) > 1:
                for a in members:
                    truth[a].update(members - {a})
    queries = []
    for anchor in sorted(truth):
        published = float(cat.published_at[anchor])
        moment = published if links is not None else max(split.cut, published)
        cands = _published_between(cat, moment - window_days * DAY, moment + FUTURE_GRACE)
        cands = cands[cands != anchor]
        relevant = np.intersect1d(np.fromiter(truth[anchor], dtype=np.int64), cands)
        if relevant.size:
            queries.append(Query(-1, moment, cands, relevant=relevant, anchor=int(anchor)))
    queries.sort(key=lambda q: (q.ts, q.anchor))
    return queries


QUERY_BUILDERS: dict[str, Callable[..., list[Query]]] = {
    "impressions": impression_queries, "replay": impression_queries, "topk": topk_queries,
    "related": related_queries,
}


# --------------------------------------------------------------------------------------------
# Editor links ("Baca juga") as related-article ground truth
# --------------------------------------------------------------------------------------------
def editor_link_pairs(titles: Sequence[str], bodies: Sequence[str], threshold: float = 0.9) -> dict[int, set[int]]:
    """Article index -> indices of the corpus articles its "Baca juga:" links name.

    A link's text is compared with every title sharing at least half of its words, on the
    link's prefix of the title's length (scrapers glue the next sentence onto the link), with
    ``difflib``; the best title at ratio >= ``threshold`` is the target. Same routine as
    ``benchmarks/text_quality.py``.
    """
    from recommender.text.cleaning import extract_editor_links, normalize, unescape_html

    norm = [normalize(unescape_html(t)) for t in titles]
    by_word: dict[str, set[int]] = defaultdict(set)
    for j, title in enumerate(norm):
        for word in set(title.split()):
            by_word[word].add(j)
    out: dict[int, set[int]] = defaultdict(set)
    for i, body in enumerate(bodies):
        for link in extract_editor_links(body):
            text = normalize(link)
            shared = Counter(j for w in set(text.split()) for j in by_word.get(w, ()))
            best, best_j = 0.0, -1
            for j, n_shared in shared.items():
                if j == i or n_shared < 0.5 * len(set(norm[j].split())):
                    continue
                ratio = difflib.SequenceMatcher(None, text[: len(norm[j])], norm[j], autojunk=False).ratio()
                if ratio > best:
                    best, best_j = ratio, j
            if best >= threshold:
                out[i].add(best_j)
    return dict(out)


# --------------------------------------------------------------------------------------------
# newsrec through the serving engine
# --------------------------------------------------------------------------------------------
def build_replay_store(store: Store, split: Split, path: str | Path) -> SQLiteStore:
    """A new store holding the articles, preferences and the pre-cut events of ``split``.

    Written with ``synchronous=OFF``: it is a throw-away copy, and a replay writes to it once
    per impression.
    """
    replay = SQLiteStore(path, synchronous="OFF")
    batch, last = [], None
    for stored in store.iter_articles():
        batch.append(stored.article)
        if len(batch) >= 5000:
            replay.upsert_articles(batch)
            last, batch = batch[-1], []
    if batch:
        replay.upsert_articles(batch)
        last = batch[-1]
    written = time.time()
    n_articles = len(split.catalog)
    record_events(replay, split, split.train, prefix="t")
    for user in split.users:
        prefs = store.get_preferences(user)
        if prefs is not None:
            replay.set_preferences(prefs)
    if last is not None and n_articles > SETTLE_ABOVE:
        # The engine re-reads every article written in the 5 s before the newest write at each
        # poll (a guard against out-of-order commits). After a bulk copy that is the whole
        # catalog at every replayed impression; writing one article again later moves it past.
        time.sleep(max(0.0, ARTICLE_POLL_OVERLAP - (time.time() - written)))
        replay.upsert_articles([last])
    return replay


SETTLE_ABOVE = 2000  # articles; below this re-reading them at each poll costs less than waiting
ARTICLE_POLL_OVERLAP = 5.5  # seconds, just over the engine's 5 s overlap


def copy_store(source: str | Path, target: str | Path) -> SQLiteStore:
    """A consistent copy of an SQLite store file (SQLite's online backup), opened for writing."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return SQLiteStore(target, synchronous="OFF")


def record_events(store: Store, split: Split, events: Events, prefix: str = "r", offset: int = 0) -> int:
    """Write ``events`` (evaluation indices) to ``store`` as interactions; returns how many."""
    ids, users = split.catalog.ids, split.users
    batch = []
    for n, (u, i, e, t, d, h) in enumerate(zip(events.user.tolist(), events.item.tolist(), events.event.tolist(),
                                               events.ts.tolist(), events.dwell.tolist(), events.history.tolist())):
        if i < 0:
            continue
        batch.append(Interaction(users[u], str(ids[i]), EVENT_TYPES[e], t, None if d != d else d,
                                 event_id=f"{prefix}{offset + n}", history=h))
    for start in range(0, len(batch), 20_000):
        store.add_events(batch[start:start + 20_000])
    return len(batch)


class NewsrecRunner:
    """One newsrec configuration served by an :class:`Engine` on the replay store.

    Parameters
    ----------
    name : str
        Row name (``newsrec`` for the full hybrid).
    model : ServingModel
        Trained on events before the cut.
    store : Store
        The replay store (pre-cut events, plus whatever the replay records).
    split : Split
    ablations : bool
        Also produce ``<name>-no-<part>`` rows from the same scores.
    """

    def __init__(self, name: str, model, store: Store, split: Split, ablations: bool = True,
                 models_dir: str | Path | None = None):
        from recommender.serving.engine import Engine, EngineConfig

        self.name = name
        self.model = model
        self.split = split
        self.now = FAR_FUTURE
        self._tmp = None
        if models_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="newsrec-eval-models-")
            models_dir = self._tmp.name
        # no feed cache: a replay's popularity at each moment counts, not up to 30 s before
        self.engine = Engine(store, models_dir, EngineConfig(log_impressions=False, poll_interval=3600.0,
                                                             feed_cache_seconds=0.0), clock=lambda: self.now)
        weights = {part: getattr(model.ranking, attr) for part, attr in FEED_WEIGHTS.items()}
        self.ablations = {f"{name}-{abl}": parts for abl, parts in ABLATIONS.items()
                          if ablations and any(weights[p] != 0 for p in parts)}
        # each bring-your-own scorer or embedder of feeds: the same scores without it (what it adds, same run)
        self.ablations.update({f"{name}-no-plugin_{p.name}": (f"plugin_{p.name}",)
                               for p in getattr(model, "plugins", ())
                               if ablations and p.spec.role != "candidates" and "feed" in p.spec.lists})

    @property
    def names(self) -> list[str]:
        return [self.name, *self.ablations]

    def start(self, now: float) -> None:
        """Load the model with the clock at ``now`` (live counters start from the model's)."""
        self.now = now
        self.engine.use_model(self.model)

    def refresh(self, now: float) -> None:
        """Pick up events the replay recorded before ``now``."""
        self.now = max(self.now, now)
        self.engine.refresh()

    def score(self, query: Query) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Scores of every row for the query's candidates, and the raw feature columns."""
        self.now = query.ts
        ids = [str(a) for a in self.split.catalog.ids[query.items]]
        scores, columns = self.engine.score(self.split.users[query.user], ids, features=True)
        scores = _finite(scores)
        out = {self.name: scores}
        for name, parts in self.ablations.items():
            out[name] = scores - sum(np.nan_to_num(columns.get(f"w_{p}", 0.0)) for p in parts)
        return out, columns

    def related(self, query: Query, depth: int) -> np.ndarray:
        """Ranked catalog indices of the engine's related list for the query's anchor."""
        self.now = query.ts
        ranked = self.engine.related(str(self.split.catalog.ids[query.anchor]), limit=depth)
        index = self.split.catalog.index
        return np.array([index[item.article_id] for item in ranked.items if item.article_id in index], dtype=np.int64)

    def close(self) -> None:
        self.engine.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def _plugin_failures(runners: list[NewsrecRunner]) -> list[str]:
    """Notes for the report: a bring-your-own plugin that failed was left out of those lists, so
    the newsrec rows are without it there (the warnings alone went to the log)."""
    seen: dict[int, str] = {}
    for runner in runners:
        for plugin in getattr(runner.model, "plugins", ()):  # the model the engine serves; copies share them
            if plugin.errors and id(plugin) not in seen:
                seen[id(plugin)] = (f"plugin {plugin.name} ({plugin.spec.role}) failed {plugin.errors} times and was "
                                    f"left out of those lists, so the newsrec rows are without it there; last "
                                    f"error: {plugin.last_error}")
    return list(seen.values())


def _finite(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        low = float(scores[~bad].min()) if (~bad).any() else 0.0
        scores = np.where(bad, low - 1.0, scores)
    return scores


def _with_ranking(model, **changes):
    """A shallow copy of a served model with different ranking weights (arrays are shared)."""
    variant = copy.copy(model)
    variant.ranking = replace(model.ranking, **changes)
    return variant


# --------------------------------------------------------------------------------------------
# Collecting per-query results
# --------------------------------------------------------------------------------------------
@dataclass
class _Rows:
    """Per-query metric values and top-10 lists of one model."""

    metrics: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    curve: list[np.ndarray] = field(default_factory=list)
    lists: list[np.ndarray] = field(default_factory=list)
    moments: list[float] = field(default_factory=list)


def _ndcg_curve(labels_in_rank_order: np.ndarray, k_max: int) -> np.ndarray:
    """MIND nDCG@1..k_max of one ranked impression, shape (k_max,)."""
    gains = (2.0 ** labels_in_rank_order - 1.0) / np.log2(np.arange(2, labels_in_rank_order.size + 2))
    ideal_labels = np.sort(labels_in_rank_order)[::-1]
    ideal = (2.0 ** ideal_labels - 1.0) / np.log2(np.arange(2, ideal_labels.size + 2))
    dcg, idcg = np.cumsum(gains), np.cumsum(ideal)
    k = np.minimum(np.arange(1, k_max + 1), labels_in_rank_order.size) - 1
    return dcg[k] / idcg[k]


class _Collector:
    def __init__(self, kind: str, seed: int, category: np.ndarray):
        self.kind = kind
        self.seed = seed
        self.rngs: dict[str, np.random.Generator] = {}
        self.category = category
        self.rows: dict[str, _Rows] = defaultdict(_Rows)

    def rng(self, name: str) -> np.random.Generator:
        """Each row's own tie-break draws (seed and name), so its figures do not depend on which
        other rows ran before it (ablations, plugins, a baseline left out)."""
        if name not in self.rngs:
            self.rngs[name] = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        return self.rngs[name]

    def add_scores(self, name: str, query: Query, scores: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        rows = self.rows[name]
        if self.kind in ("impressions", "replay"):
            strict = break_ties(scores, self.rng(name))  # one random tie-break for every rank metric and list
            values = impression_metrics(query.labels, strict)
            values["auc"] = auc(query.labels, scores)  # ties count 0.5: the expectation over tie-breaks
            for metric, value in values.items():
                rows.metrics[metric].append(value)
            order = np.argsort(-strict, kind="stable")
            rows.curve.append(_ndcg_curve(query.labels[order], 10))
            rows.lists.append(query.items[order[:LIST_LENGTH]])
            rows.moments.append(query.ts)
        else:
            strict = break_ties(scores, self.rng(name))
            depth = min(RELATED_DEPTH, strict.size)
            top = np.argpartition(-strict, depth - 1)[:depth] if depth < strict.size else np.arange(strict.size)
            top = top[np.argsort(-strict[top], kind="stable")]
            self.add_ranking(name, query, query.items[top])

    def add_ranking(self, name: str, query: Query, ranked: np.ndarray) -> None:
        rows = self.rows[name]
        ranked = np.asarray(ranked, dtype=np.int64)[:RELATED_DEPTH]
        for metric, value in topk_metrics(ranked, query.relevant, KS).items():
            rows.metrics[metric].append(value)
        rows.metrics["mrr"].append(reciprocal_rank(ranked, query.relevant))
        if query.anchor >= 0:  # ground truth (c): the anchor's category
            top = ranked[:LIST_LENGTH]
            same = self.category[top] == self.category[query.anchor]
            rows.metrics["same_category@10"].append(float(same.mean()) if top.size else np.nan)
        hits = np.isin(ranked[:20], query.relevant)
        curve = np.cumsum(np.pad(hits, (0, 20 - hits.size))) / query.relevant.size
        rows.curve.append(curve)
        rows.lists.append(ranked[:LIST_LENGTH])
        rows.moments.append(query.ts)


# --------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------
class Evaluation:
    """Prepare once (split, models, baselines), then run one or more protocols.

    Parameters
    ----------
    store : Store
        Holds articles and events (it is only read).
    cut : float
        Training sees events strictly before it.
    end : float, optional
        Events at or after it are ignored (tuning keeps the test period out this way).
    variants : dict of str to TrainParams, optional
        newsrec configurations to evaluate, by row name; default ``{"newsrec": TrainParams()}``.
        The first one also gets the ablation rows.
    baselines : list of str or Scorer, optional
        Baseline names (default: all in :data:`recommender.baselines.BASELINES`) or unfitted scorers.
    editor_links : dict of str to set of str, optional
        Ground truth for the ``related`` protocol (else co-reading in the test period).
    seed : int
    show_progress : bool
        A progress bar on stderr while queries are scored.
    """

    def __init__(self, store: Store, cut: float, end: float | None = None,
                 variants: dict[str, TrainParams] | None = None, baselines: list[str] | None = None,
                 editor_links: dict[str, set[str]] | None = None, seed: int = 0, show_progress: bool = False,
                 ablations: bool = True):
        self.store = store
        self.cut = float(cut)
        self.end = end
        self.variants = dict(variants or {"newsrec": TrainParams()})
        self.baselines = list(BASELINES) if baselines is None else list(baselines)
        self.editor_links = editor_links
        self.seed = seed
        self.show_progress = show_progress
        self.ablations = ablations
        self.timings: dict[str, float] = {}

    # -- preparation -------------------------------------------------------------------------
    def prepare(self) -> "Evaluation":
        from recommender.models.fitting import build_model

        t0 = time.perf_counter()
        self.split_ = load_split(self.store, self.cut, self.end)
        self.timings["load"] = time.perf_counter() - t0
        self.models_ = {}
        self.built_reports_ = {}
        for name, params in self.variants.items():
            t0 = time.perf_counter()
            built = build_model(self.store, params, as_of=self.cut, seed=self.seed)
            self.models_[name] = built.serving_model(version=f"eval-{name}")
            self.built_reports_[name] = {k: v for k, v in built.report.items() if k != "timings_seconds"}
            self.timings[f"train {name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        embedder = next(iter(self.models_.values())).embedder
        cat = self.split_.catalog
        if embedder is not None:
            self.text_sparse_ = embedder.transform_tfidf(cat.pairs)
            self.text_dense_ = np.asarray(embedder.transform(cat.pairs), dtype=np.float32)
            # a title of stopwords only ("Ini Dia") or one letter embeds to zeros: no text either
            cat.has_text = cat.has_text & self.text_dense_.any(axis=1)
            empty = ~cat.has_text
            self.text_dense_[empty] = 0.0
            self.text_sparse_ = sp.diags((~empty).astype(np.float32)) @ self.text_sparse_
        else:
            self.text_sparse_, self.text_dense_ = None, None
        self.timings["text"] = time.perf_counter() - t0
        train = self.split_.train
        self.has_events_ = len(train) > 0
        self.fit_data_ = FitData(self.split_.n_users, len(cat), train, self.cut, self.text_sparse_)
        t0 = time.perf_counter()
        scorers = [b if isinstance(b, Scorer) else make_baselines([b], self.seed)[0] for b in self.baselines]
        self.baselines_ = [b.fit(self.fit_data_) for b in scorers if self._applies(b)]
        self.timings["baselines"] = time.perf_counter() - t0
        keep = train.positive & (train.item >= 0)
        readers = np.zeros(len(cat))
        if keep.any():
            pairs = np.unique(np.stack([train.user[keep], train.item[keep]]), axis=1)
            readers = np.bincount(pairs[1], minlength=len(cat)).astype(np.float64)
        self.popularity_ = readers
        n_readers = max(int(np.unique(train.user[keep]).size), 1)
        self.novelty_p_ = (readers + 1.0) / (n_readers + 1.0)
        self.top_popular_ = top_popular_items(readers, 0.01) if readers.any() else np.zeros(0, dtype=np.int64)
        t0 = time.perf_counter()
        self._tmp = tempfile.TemporaryDirectory(prefix="newsrec-eval-")
        self.replay_base_ = Path(self._tmp.name) / "pre-cut.sqlite3"
        build_replay_store(self.store, self.split_, self.replay_base_).close()
        self.timings["replay store"] = time.perf_counter() - t0
        return self

    def add_model(self, name: str, model) -> None:
        """Evaluate one more served model (e.g. with a learned ranking stage) beside the variants."""
        if not hasattr(self, "models_"):
            raise RuntimeError("call prepare() before add_model()")
        self.models_[name] = model

    def close(self) -> None:
        """Remove the temporary pre-cut store."""
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Evaluation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _applies(self, scorer: Scorer) -> bool:
        if scorer.needs_text and self.text_sparse_ is None:
            return False
        return not (scorer.needs_events and not self.has_events_)

    def queries(self, protocol: str, max_queries: int | None = None) -> list[Query]:
        """The protocol's queries (a seeded, time-ordered subsample if ``max_queries``)."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
        if protocol == "related":
            queries = related_queries(self.split_, self.editor_links)
        else:
            queries = QUERY_BUILDERS[protocol](self.split_)
        if max_queries is not None and len(queries) > max_queries:
            rng = np.random.default_rng(self.seed)
            keep = np.sort(rng.choice(len(queries), size=max_queries, replace=False))
            queries = [queries[i] for i in keep]
        return queries

    # -- running -----------------------------------------------------------------------------
    def run(self, protocol: str, max_queries: int | None = None, keep_columns: bool = False) -> dict[str, Any]:
        """Run one protocol; returns the report entry ``{"protocol", "n_test", "models", ...}``."""
        if not hasattr(self, "split_"):
            self.prepare()
        t_start = time.perf_counter()
        queries = self.queries(protocol, max_queries)
        online = ONLINE[protocol]
        collector = _Collector(protocol, self.seed, self.split_.catalog.category)
        self.columns_: list[tuple[Query, dict[str, np.ndarray]]] = []
        baselines = [b for b in self.baselines_ if online or b.name != "online_ctr"]
        if protocol == "related":
            baselines = [b for b in baselines if _has_related(b)]
        for b in baselines:  # online baselines start every run from their state at the cut
            if b.online:
                b.fit(self.fit_data_)
        history = _train_history(self.split_)
        with ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="newsrec-eval-"))
            replay_store = copy_store(self.replay_base_, Path(tmp) / "replay.sqlite3")
            stack.callback(replay_store.close)
            runners = self._runners(protocol, replay_store, stack)
            start = queries[0].ts if queries else self.cut
            for runner in runners:
                runner.start(start)
            test = self.split_.test
            fed = 0
            for query in _progress(queries, protocol, self.show_progress):
                if online:  # record what happened strictly before the query, never the query itself
                    stop = int(np.searchsorted(test.ts, query.ts, side="left"))
                    if stop > fed:
                        new = test.take(slice(fed, stop))
                        record_events(replay_store, self.split_, new, offset=fed)
                        for b in baselines:
                            if b.online:
                                b.partial_fit(new)
                        _extend_history(history, new)
                        fed = stop
                    for runner in runners:  # the service polls every second, new events or not
                        runner.refresh(query.ts)
                self._score_query(protocol, query, runners, baselines, history, collector, keep_columns)
            failures = _plugin_failures(runners)
        entry = self._summarize(protocol, queries, collector)
        if failures:
            entry.setdefault("notes", []).extend(failures)
        entry["seconds"] = round(time.perf_counter() - t_start, 1)
        return entry

    def _runners(self, protocol: str, replay_store: Store, stack: ExitStack) -> list[NewsrecRunner]:
        """One engine per newsrec configuration (related ablations change the ranking, so they get their own)."""
        configs = []
        for n, (name, model) in enumerate(self.models_.items()):
            configs.append((name, model, self.ablations and n == 0 and protocol != "related"))
            if protocol == "related" and n == 0 and self.ablations:
                known = {f.name for f in fields(model.ranking)}
                for abl, changes in RELATED_ABLATIONS.items():
                    if set(changes) <= known and any(getattr(model.ranking, k) != v for k, v in changes.items()):
                        configs.append((f"{name}-{abl}", _with_ranking(model, **changes), False))
        runners = []
        for name, model, ablations in configs:
            runners.append(NewsrecRunner(name, model, replay_store, self.split_, ablations=ablations))
            stack.callback(runners[-1].close)
        return runners

    def _score_query(self, protocol, query, runners, baselines, history, collector, keep_columns) -> None:
        hist = history.get(query.user) if query.user >= 0 else None
        if protocol == "related":
            for runner in runners:
                collector.add_ranking(runner.name, query, runner.related(query, RELATED_DEPTH))
            for b in baselines:
                collector.add_scores(b.name, query, b.related(query.anchor, query.items, query.ts))
            return
        for runner in runners:
            scores, columns = runner.score(query)
            for name, values in scores.items():
                collector.add_scores(name, query, values)
            if keep_columns and runner is runners[0]:
                self.columns_.append((query, {**columns, SCORE_COLUMN: scores[runner.name]}))
        for b in baselines:
            collector.add_scores(b.name, query, b.score(query.user, query.items, query.ts, hist))

    # -- summaries ---------------------------------------------------------------------------
    def _summarize(self, protocol: str, queries: list[Query], collector: _Collector) -> dict[str, Any]:
        cat = self.split_.catalog
        models: dict[str, dict[str, float]] = {}
        candidates = np.unique(np.concatenate([q.items for q in queries])) if queries else np.zeros(0, np.int64)
        order = [n for n in collector.rows if n.startswith("newsrec")] + [
            n for n in BASELINES if n in collector.rows]
        for name in order:
            rows = collector.rows[name]
            values = {m: _nanmean(v) for m, v in rows.metrics.items()}
            values.update(self._beyond(rows, candidates))
            models[name] = {k: _round(v) for k, v in values.items()}
        # how far a re-ranking moves the top 10: the story cap (served vs scored without it) and
        # every other configuration against newsrec (e.g. the learned stage against the blend)
        for name in list(models):
            pairs = [(f"{name}-no-story-cap", "rbo_scored_vs_served")] if f"{name}-no-story-cap" in collector.rows \
                else []
            if name != "newsrec" and name in self.models_ and "newsrec" in collector.rows:
                pairs.append(("newsrec", "rbo_vs_newsrec"))
            for other, key in pairs:
                models[name][key] = _round(_nanmean([rank_biased_overlap(x, y) for x, y in zip(
                    collector.rows[other].lists, collector.rows[name].lists)]))
        headline = HEADLINE[protocol]
        baselines = [n for n in models if not n.startswith("newsrec")]
        gains, significance = {}, {}
        if "newsrec" in models and baselines:
            for metric in headline:
                best = max(baselines, key=lambda n: _or(models[n].get(metric), -np.inf))
                gains[metric] = {"best_baseline": best, "baseline": models[best][metric],
                                 "newsrec": models["newsrec"][metric],
                                 "gain": _round(models["newsrec"][metric] - models[best][metric])}
            rivals = {gains[m]["best_baseline"] for m in headline} | ({"online_ctr"} & set(models))
            for rival in sorted(rivals):
                significance[f"newsrec vs {rival}"] = {
                    m: {k: _round(v) for k, v in paired_bootstrap(
                        collector.rows["newsrec"].metrics[m], collector.rows[rival].metrics[m],
                        n_resamples=2000, rng=self.seed).items()}
                    for m in headline}
        for variant in self.models_:  # every other configuration (e.g. the learned stage) against online click-through
            if variant != "newsrec" and variant in collector.rows and "online_ctr" in collector.rows:
                significance[f"{variant} vs online_ctr"] = {
                    m: {k: _round(v) for k, v in paired_bootstrap(
                        collector.rows[variant].metrics[m], collector.rows["online_ctr"].metrics[m],
                        n_resamples=2000, rng=self.seed).items()}
                    for m in headline}
        split = self.split_
        n_train = len(split.train)
        entry: dict[str, Any] = {
            "protocol": protocol,
            "n_test": len(queries),
            "models": models,
            "gain_over_best_baseline": gains,
            "significance": significance,
            "data_window": {
                "train_start": format_time(float(split.train.ts[~split.train.history].min()))
                if (~split.train.history).any() else None,
                "cut": format_time(self.cut),
                "test_end": format_time(float(split.test.ts.max())) if len(split.test) else None,
                "train_events": n_train,
                "test_events": len(split.test),
                "articles": len(cat),
                "candidates": int(candidates.size),
                "readers": split.n_users,
            },
            "settings": {
                "online": ONLINE[protocol], "seed": self.seed, "list_length": LIST_LENGTH,
                "ranked_depth": RELATED_DEPTH if protocol in ("topk", "related") else None,
                "ground_truth": ("editor links" if self.editor_links is not None else "co-reading in the test period")
                if protocol == "related" else None,
            },
            "params": {name: m.manifest.get("parameters") for name, m in self.models_.items()},
            "training_report": self.built_reports_,
            "timings_seconds": {k: round(v, 1) for k, v in self.timings.items()},
            "details": self._details(protocol, queries, collector),
        }
        return entry

    def _beyond(self, rows: _Rows, candidates: np.ndarray) -> dict[str, float]:
        if not rows.lists:
            return {}
        cat = self.split_.catalog
        lists = rows.lists
        pooled = np.concatenate(lists)
        ages_at = np.concatenate([np.full(lst.size, t) for lst, t in zip(lists, rows.moments)])
        out = {
            "coverage": float(np.unique(pooled).size / max(candidates.size, 1)),
            "novelty": novelty(lists, self.novelty_p_) if self.popularity_.any() else np.nan,
            "category_entropy": _nanmean([category_entropy(cat.category[lst]) for lst in lists]),
            "rank_biased_entropy": _nanmean([rank_biased_entropy(cat.category[lst]) for lst in lists]),
            "freshness_hours": freshness_hours(cat.published_at[pooled], ages_at),
            "popular_share": popular_share(lists, self.top_popular_) if self.top_popular_.size else np.nan,
        }
        if self.text_dense_ is not None:
            div = []
            for lst in lists:
                with_text = lst[cat.has_text[lst]]
                if with_text.size >= 2:
                    div.append(intra_list_diversity(self.text_dense_[with_text]))
            out["diversity"] = _nanmean(div)
        return out

    def _details(self, protocol: str, queries: list[Query], collector: _Collector) -> dict[str, Any]:
        """Data for the plots (curves, histograms, breakdowns); baselines and newsrec only."""
        cat = self.split_.catalog
        names = [n for n in collector.rows if n == "newsrec" or n in BASELINES or n in self.variants]
        at_k = {n: [_round(x) for x in np.nanmean(np.vstack(collector.rows[n].curve), axis=0)]
                for n in names if collector.rows[n].curve}
        # popularity bias: deciles of pre-cut readers among articles that had any
        pop = self.popularity_
        engaged = pop > 0
        edges = np.unique(np.quantile(pop[engaged], np.linspace(0, 1, 11))) if engaged.any() else np.array([0.0])
        def bin_of(items: np.ndarray) -> np.ndarray:
            b = np.searchsorted(edges, pop[items], side="right")
            return np.where(pop[items] > 0, np.clip(b, 1, len(edges)), 0)
        n_bins = len(edges) + 1
        curve = {}
        for n in names:
            pooled = np.concatenate(collector.rows[n].lists) if collector.rows[n].lists else np.zeros(0, np.int64)
            counts = np.bincount(bin_of(pooled), minlength=n_bins)[:n_bins]
            curve[n] = [_round(x) for x in counts / max(counts.sum(), 1)]
        truth = np.concatenate([q.items[q.labels > 0] if q.labels is not None else q.relevant for q in queries]) \
            if queries else np.zeros(0, np.int64)
        counts = np.bincount(bin_of(truth), minlength=n_bins)[:n_bins]
        curve["(clicked / relevant)"] = [_round(x) for x in counts / max(counts.sum(), 1)]
        fresh = {}
        for n in names:
            rows = collector.rows[n]
            if not rows.lists:
                continue
            ages = np.concatenate([(t - cat.published_at[lst]) / HOUR for lst, t in zip(rows.lists, rows.moments)])
            hist, _ = np.histogram(np.clip(ages, 0, 1e6), bins=np.array(FRESHNESS_BINS[:-1] + (1e7,)))
            fresh[n] = hist.tolist()
        metric = "auc" if protocol in ("impressions", "replay") else "recall@10"
        groups = np.array([cat.category[q.truth_item] for q in queries], dtype=np.int64)
        per_cat: dict[str, dict[str, float]] = {}
        common = [c for c, k in Counter(groups.tolist()).most_common() if k >= 10][:12]
        for n in names:
            values = np.asarray(collector.rows[n].metrics.get(metric, []), dtype=np.float64)
            if values.size != groups.size:
                continue
            per_cat[n] = {cat.category_names[c]: _round(_nanmean(values[groups == c])) for c in common}
        return {
            "at_k": {"metric": "ndcg" if protocol in ("impressions", "replay") else "recall", "values": at_k},
            "popularity_curve": {"bins": ["never read"] + [f"decile {i}" for i in range(1, n_bins)], "share": curve},
            "freshness_hist": {"edges_hours": [x if np.isfinite(x) else None for x in FRESHNESS_BINS],
                               "counts": fresh},
            "per_category": {"metric": metric, "values": per_cat,
                             "queries": {cat.category_names[c]: int((groups == c).sum()) for c in common}},
        }


def _has_related(scorer: Scorer) -> bool:
    return type(scorer).related is not Scorer.related


def _extend_history(history: dict[int, np.ndarray], events: Events) -> None:
    keep = events.positive & (events.item >= 0)
    for u, i in zip(events.user[keep].tolist(), events.item[keep].tolist()):
        old = history.get(u)
        history[u] = np.append(old, i) if old is not None else np.array([i], dtype=np.int64)


def _progress(items: list, desc: str, show: bool) -> Iterable:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=" queries", mininterval=0.5, file=sys.stderr)


def _nanmean(values) -> float:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or np.all(np.isnan(arr)):
        return float("nan")
    return float(np.nanmean(arr))


def _round(value, digits: int = 4):
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return None if not math.isfinite(value) else round(value, digits)


def _or(value, default):
    return default if value is None else value


def evaluate(store: Store, protocols: Sequence[str], cut: float, **kwargs) -> dict[str, dict[str, Any]]:
    """Run several protocols on one prepared evaluation; returns protocol -> report entry."""
    max_queries = kwargs.pop("max_queries", None)
    with Evaluation(store, cut, **kwargs) as ev:
        ev.prepare()
        return {p: ev.run(p, max_queries=max_queries) for p in protocols}


# --------------------------------------------------------------------------------------------
# Tuning on a validation period carved from the training period
# --------------------------------------------------------------------------------------------
