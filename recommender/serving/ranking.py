"""Scoring and diversifying related lists and reader feeds on a catalog snapshot.

Every function here is vectorized over candidates and free of I/O: the engine gathers the
inputs (reader events, preferences, live counters) and the offline replay calls the same
functions, so what is evaluated is what is served.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

import numpy as np

from recommender import arrays
from recommender.domain import EVENT_CODES
from recommender.models.neighbours import top_k
from recommender.models.popularity import DecayedCounters

from .catalog import Snapshot

HOUR = 3600.0
FUTURE_GRACE = 60.0  # seconds an article stamped ahead of the server's clock counts as due (CMS clock skew)
POSITIVE_CODES = (EVENT_CODES["click"], EVENT_CODES["read"], EVENT_CODES["share"])


@dataclass
class Candidates:
    """Candidate indices with named feature columns, all shape (n,)."""

    index: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    score: np.ndarray | None = None

    def take(self, keep: np.ndarray) -> "Candidates":
        return Candidates(self.index[keep], {k: v[keep] for k, v in self.features.items()},
                          None if self.score is None else self.score[keep])


@dataclass
class ReaderProfile:
    """What the feed knows about a reader at request time."""

    read: np.ndarray  # global indices already read (excluded)
    positives: np.ndarray  # global indices of positive events, oldest first
    weights: np.ndarray  # decayed confidence weight per positive
    session: np.ndarray  # positives of the current session
    cf_vector: np.ndarray | None
    content: np.ndarray | None
    session_vector: np.ndarray | None
    followed_categories: np.ndarray
    followed_regions: np.ndarray
    category_affinity: np.ndarray | None = None  # share of the reader's engagement per category code
    hidden: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # "tidak tertarik": never shown
    hidden_stories: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hidden_categories: np.ndarray | None = None  # hides per category code
    shown: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # articles shown, not clicked
    shown_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # times each was shown
    skipped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # newest shown-not-clicked first
    impressions_seen: int = 0  # the reader's last impressions counted (their own click-through)
    impressions_clicked: int = 0  # of those, how many they clicked

    @property
    def is_cold(self) -> bool:
        return self.positives.size == 0


def _unit(v: np.ndarray | None) -> np.ndarray | None:
    if v is None:
        return None
    n = float(np.linalg.norm(v))
    return None if n < 1e-9 else (v / n).astype(np.float32)


TITLE_OVERLAP_DUPLICATE = 0.6
_WORD = re.compile(r"[0-9a-z]+")


@functools.lru_cache(maxsize=1 << 16)
def _title_words(title: str) -> frozenset[str]:
    """A title's words (memoized: a story's headlines are compared again and again)."""
    return frozenset(_WORD.findall(title.lower()))


def title_overlap(a: str, b: str) -> float:
    """Jaccard overlap of two titles' words."""
    wa, wb = _title_words(a), _title_words(b)
    return len(wa & wb) / max(len(wa | wb), 1)


def near_duplicate(snap: Snapshot, i: int, j: int, text_similarity: float, threshold: float) -> bool:
    """Two versions of one article: very close text *and* mostly the same headline words.

    Dense text vectors alone put every article of a story (and, on a small catalog, of a
    recurring kind of story) close together; the headline check keeps story mates apart
    from true copies.
    """
    if text_similarity < threshold:
        return False
    return title_overlap(snap.title(i), snap.title(j)) >= TITLE_OVERLAP_DUPLICATE


def listable(snap: Snapshot, published_at: np.ndarray, deleted: np.ndarray, now: float) -> np.ndarray:
    """Which articles a list may show: not taken down, published (``FUTURE_GRACE``), and not
    from before the serving window (:attr:`Snapshot.window_since`: a late-arriving archive article)."""
    return ~deleted & (published_at <= now + FUTURE_GRACE) & (published_at >= snap.window_since)


def freshness(published_at: np.ndarray, now: float, half_life_hours: float) -> np.ndarray:
    age_hours = np.maximum(now - published_at, 0.0) / HOUR
    return np.exp2(-age_hours / half_life_hours)


def trending(engagement: np.ndarray, top: float | None = None) -> np.ndarray:
    """Engagement on a log scale in [0, 1] relative to the candidates' maximum (or ``top``, if larger)."""
    top = max(float(engagement.max()) if engagement.size else 0.0, top or 0.0)
    if top <= 0:
        return np.zeros_like(engagement, dtype=np.float64)
    return np.log1p(engagement) / math.log1p(top)


def ctr_lift(counters: DecayedCounters, index: np.ndarray, prior_strength: float,
             position_corrected: bool = False) -> np.ndarray:
    """Smoothed click-through relative to the site's, in [-1/3, 1]: 0 means average.

    ``position_corrected``: clicks over the clicks expected at the positions where the article
    was shown (:meth:`DecayedCounters.corrected_ctr`), so a slot low in lists is not held against it.
    """
    if position_corrected and counters.expected is not None:
        ctr, prior = counters.corrected_ctr(index, prior_strength)
        return np.clip(ctr / max(prior, 1e-6) - 1.0, -1.0, 3.0) / 3.0
    prior = counters.global_ctr()
    clicks, shown = counters.clicks[index], counters.impressions[index]
    ctr = (clicks + prior_strength * prior) / (np.maximum(shown, clicks) + prior_strength)
    return np.clip(ctr / max(prior, 1e-6) - 1.0, -1.0, 3.0) / 3.0


def standardize(x: np.ndarray, mean: float | None = None, sd: float | None = None) -> np.ndarray:
    """``(x - mean) / sd`` clipped to 3 sd and scaled to [-1, 1]; mean and sd default to x's own."""
    if mean is None or sd is None:
        if x.size < 2:
            return np.zeros_like(x)
        mean, sd = float(x.mean()), float(x.std())
    if sd < 1e-9:
        return np.zeros_like(x)
    return np.clip((x - mean) / sd, -3.0, 3.0) / 3.0


def _member(codes: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """1.0 where a (small, non-negative) code is among ``chosen``, else 0.0; a lookup, not a sort."""
    codes = codes.astype(np.int64, copy=False)
    chosen = np.asarray(chosen, dtype=np.int64)
    chosen = chosen[chosen >= 0]
    if chosen.size == 0 or codes.size == 0:
        return np.zeros(codes.size)
    table = np.zeros(max(int(chosen.max()), int(codes.max())) + 2)
    table[chosen] = 1.0
    return table[np.where(codes >= 0, codes, table.size - 1)]


def build_profile(snap: Snapshot, items: np.ndarray, events: np.ndarray, ts: np.ndarray, dwell: np.ndarray,
                  followed_categories: np.ndarray, followed_regions: np.ndarray, now: float) -> ReaderProfile:
    """Fold a reader's events (global indices, -1 for unknown articles) into a profile.

    The CF vector is solved from the item factors of everything they engaged with, so a
    click posted a moment ago already moves the next feed.
    """
    model = snap.model
    params = model.ranking
    known = items >= 0
    positive = known & arrays.isin(events, POSITIVE_CODES)
    pos_items, pos_ts = items[positive], ts[positive]
    if pos_items.size == 0:
        return ReaderProfile(pos_items, pos_items, np.zeros(0), pos_items, None, None, None, followed_categories,
                             followed_regions)
    w = model.weights.event_weight(events[positive], dwell[positive]) * model.weights.decay(pos_ts, now)
    # aggregate per item, as the training matrix does
    uniq, inverse = np.unique(pos_items, return_inverse=True)
    read = uniq
    agg = np.bincount(inverse, weights=w).astype(np.float64)
    cf_vector = None
    if model.has_cf:  # weighted and solved as training did (BM25 row weights, ALS or BPR: FoldIn)
        cf_vector = model.fold_in.vector(snap.factors(uniq), uniq, agg)
    text = snap.text(uniq)
    content = _unit((text * agg[:, None]).sum(axis=0))
    last = float(pos_ts.max())
    session_gap = params.session_minutes * 60.0
    in_session = pos_ts >= last - session_gap
    session_vector = None
    if now - last <= 6 * session_gap:
        session_vector = _unit(snap.text(pos_items[in_session]).sum(axis=0))
    cats = snap.category(uniq).astype(np.int64)
    # smoothed towards uniform so that one click does not make a reader a one-topic reader
    n_cats = int(max(cats.max() + 1, len(snap.model.categories)))
    prior_strength = 3.0
    affinity = (np.bincount(cats, weights=agg, minlength=n_cats) + prior_strength / n_cats) / (
        float(agg.sum()) + prior_strength)
    return ReaderProfile(read, pos_items, agg, pos_items[in_session], cf_vector, content, session_vector,
                         followed_categories, followed_regions, affinity)


def score_feed(snap: Snapshot, profile: ReaderProfile, counters: DecayedCounters, now: float,
               index: np.ndarray | None = None, summary: "WindowSummary | None" = None) -> Candidates:
    """Score window articles (or the given ``index``, e.g. an impression's candidates) for a reader.

    Without ``index``, deleted, not-yet-published and already-read articles are dropped. With a
    ``summary`` (``index`` then holds :func:`feed_candidates`), trending and CF are put on the
    whole window's scale, so a candidate scores as it would in a scan of the window.
    """
    p = snap.model.ranking
    if index is None:
        W = snap.window_arrays()
        valid = listable(snap, W["published_at"], W["deleted"], now)
        if profile.read.size:
            valid &= ~arrays.isin(W["index"], profile.read)
        index = W["index"][valid]
        cols = {name: W[name][valid] for name in ("published_at", "category", "region", "text", "factors", "story")}
    else:
        index = np.asarray(index, dtype=np.int64)
        cols = {"published_at": snap.published_at(index), "category": snap.category(index),
                "region": snap.region(index), "text": snap.text(index), "factors": snap.factors(index),
                "story": snap.story(index)}
    f: dict[str, np.ndarray] = {}
    f["fresh"] = freshness(cols["published_at"], now, p.feed_fresh_half_life_hours)
    f["trending"] = trending(counters.engagement[index], summary.engagement_max if summary else None)
    f["ctr"] = ctr_lift(counters, index, p.ctr_prior_strength, p.ctr_position_corrected)
    f["follow_category"] = _member(cols["category"], profile.followed_categories)
    f["follow_region"] = _member(cols["region"], profile.followed_regions)
    f["affinity"] = np.zeros(index.size)
    if profile.category_affinity is not None:
        cat = cols["category"].astype(np.int64)
        known = (cat >= 0) & (cat < profile.category_affinity.size)
        f["affinity"][known] = profile.category_affinity[cat[known]]
    text = cols["text"]
    f["content"] = text @ profile.content if profile.content is not None else np.zeros(index.size)
    f["session"] = text @ profile.session_vector if profile.session_vector is not None else np.zeros(index.size)
    if profile.cf_vector is not None:
        f["cf"] = standardize(cols["factors"] @ profile.cf_vector,
                              *(summary.cf_scale(profile.cf_vector) if summary else (None, None)))
    else:
        f["cf"] = np.zeros(index.size)
    f["hide_story"], f["hide_category"], f["fatigue"] = reader_controls(profile, index, cols["story"],
                                                                       cols["category"], p.fatigue_impressions)
    weights = {"fresh": p.feed_fresh, "trending": p.feed_trending, "ctr": p.feed_ctr,
               "follow_category": p.feed_follow_category, "follow_region": p.feed_follow_region,
               "content": p.feed_content, "session": p.feed_session, "cf": p.feed_cf,
               "affinity": p.feed_category_affinity, "hide_story": -p.feed_hide_story,
               "hide_category": -p.feed_hide_category, "fatigue": -p.feed_fatigue}
    score = np.zeros(index.size)
    for name, weight in weights.items():
        f[name] = np.asarray(f[name], dtype=np.float64)
        f[f"w_{name}"] = weight * f[name]
        score += f[f"w_{name}"]
    cand = Candidates(index, f, score)
    cand.features["story"] = cols["story"]
    cand.features["category"] = cols["category"].astype(np.int64)
    cand.features["region"] = cols["region"].astype(np.int64)
    return cand


def reader_controls(profile: ReaderProfile, index: np.ndarray, story: np.ndarray, category: np.ndarray,
                    fatigue_after: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reader's own signals against candidates, each shape (n,) in [0, 1]: the story of an
    article they hid (1), a category they hid n times (1 - 1/n), and impression fatigue (shown
    ``fatigue_after`` times without a click: 1/2, rising to 1 at twice that; 0 turns it off)."""
    n = index.size
    hide_story = np.zeros(n)
    if profile.hidden_stories.size:
        hide_story = arrays.isin(story, profile.hidden_stories).astype(np.float64)
    hide_category = np.zeros(n)
    counts = profile.hidden_categories
    if counts is not None and counts.size:
        cat = np.asarray(category, dtype=np.int64)
        known = (cat >= 0) & (cat < counts.size)
        times = np.zeros(n)
        times[known] = counts[cat[known]]
        hide_category = np.where(times > 0, 1.0 - 1.0 / np.maximum(times, 1.0), 0.0)
    fatigue = np.zeros(n)
    if fatigue_after > 0 and profile.shown.size:
        order = np.argsort(profile.shown)
        shown, counts_shown = profile.shown[order], profile.shown_counts[order]
        at = np.clip(np.searchsorted(shown, index), 0, shown.size - 1)
        times = np.where(shown[at] == index, counts_shown[at], 0)
        fatigue = np.where(times >= fatigue_after, np.minimum(times / (2.0 * fatigue_after), 1.0), 0.0)
    return hide_story, hide_category, fatigue


@dataclass(frozen=True)
class WindowSummary:
    """Reader-independent facts about a large window, refreshed about once a second.

    Scanning 100k window articles per feed costs ~30 ms; scoring a few thousand candidates
    well under one. The candidates are the articles that can reach the top: the best by the
    reader-independent part of the score (fresh, trending, click-through), overall and per
    category and region (follows and category affinity), plus the neighbours of what the
    reader read (content, session, CF), plus the best of the text clusters nearest to the
    reader's content and session vectors and of the factor clusters nearest to their CF vector
    (articles of one cluster are about equally close to a reader, so the reader-independent
    part of the score decides among them). These facts keep
    candidate features on the window's scale: trending relative to the window's most engaging
    article, CF standardized with the window's mean and spread (exact for any reader vector,
    from the factors' moments).

    Attributes
    ----------
    at : float
        Clock time it describes.
    n_fresh : int
        Fresh articles it has seen.
    popular : ndarray of int64, shape (pool,)
    by_category, by_region : dict of int to ndarray of int64
        Best articles per category / region code.
    engagement_max : float
    factor_sum : ndarray of float64, shape (k,)
    factor_outer : ndarray of float64, shape (k, k)
    n_articles : int
    centroids : dict of str to ndarray of float32, shape (c, d)
        Unit centroids of the window's ``"text"`` vectors and ``"cf"`` factors.
    by_cluster : dict of str to ndarray of int64, shape (c, per_cluster)
        Best articles of each cluster (-1 padded).
    next_due : float
        Clock time the first scheduled (not yet published) article may be shown, inf if none
        waits: from then on the summary is out of date.
    """

    at: float
    n_fresh: int
    popular: np.ndarray
    by_category: dict[int, np.ndarray]
    by_region: dict[int, np.ndarray]
    engagement_max: float
    factor_sum: np.ndarray
    factor_outer: np.ndarray
    n_articles: int
    centroids: dict[str, np.ndarray] = field(default_factory=dict)
    by_cluster: dict[str, np.ndarray] = field(default_factory=dict)
    next_due: float = math.inf

    def cf_scale(self, vector: np.ndarray) -> tuple[float, float]:
        """Mean and standard deviation over the window of ``factors @ vector``."""
        x = np.asarray(vector, dtype=np.float64)
        n = max(self.n_articles, 1)
        mean = float(self.factor_sum @ x) / n
        var = float(x @ self.factor_outer @ x) / n - mean * mean
        return mean, math.sqrt(max(var, 0.0))


def factor_moments(factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum (k,) and sum of outer products (k, k) of factor rows, float64."""
    F = np.asarray(factors, dtype=np.float64)
    return F.sum(axis=0), F.T @ F


def summarize_window(snap: Snapshot, counters: DecayedCounters, now: float,
                     base_moments: tuple[np.ndarray, np.ndarray], pool: int = 1000,
                     per_label: int = 200, clusters: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                     per_cluster: int = 30) -> WindowSummary:
    """The :class:`WindowSummary` of ``snap`` at ``now``.

    ``base_moments`` are :func:`factor_moments` of the bundle's window (computed once per model);
    ``clusters`` maps ``"text"`` and ``"cf"`` to centroids (c, d) and the cluster of every bundle
    window article; fresh articles are added here.
    """
    p = snap.model.ranking
    W = snap.window_arrays(("index", "published_at", "category", "region", "deleted"))
    due = W["published_at"] <= now + FUTURE_GRACE
    valid = listable(snap, W["published_at"], W["deleted"], now)
    waiting = W["published_at"][~W["deleted"] & ~due]
    index = W["index"][valid]
    engagement = counters.engagement[index]
    prior = (p.feed_fresh * freshness(W["published_at"][valid], now, p.feed_fresh_half_life_hours)
             + p.feed_trending * trending(engagement) + p.feed_ctr * ctr_lift(counters, index, p.ctr_prior_strength,
                                                                          p.ctr_position_corrected))
    order = np.argsort(-prior, kind="stable")
    ranked = index[order]

    def per_code(codes: np.ndarray) -> dict[int, np.ndarray]:
        codes = codes[order]
        return {int(c): ranked[codes == c][:per_label] for c in arrays.unique(codes)}

    centroids, by_cluster = {}, {}
    fresh_vectors = {"text": snap.fresh.text[: snap.n_fresh], "cf": snap.fresh.factors[: snap.n_fresh]}
    for name, (C, base_labels) in (clusters or {}).items():
        fresh_labels = np.argmax(fresh_vectors[name] @ C.T, axis=1) if snap.n_fresh else []
        labels = np.concatenate([base_labels, fresh_labels]).astype(np.int64)[valid][order]
        by_label = np.argsort(labels, kind="stable")  # within a cluster, best prior first
        starts = np.searchsorted(labels[by_label], np.arange(C.shape[0] + 1))
        rank = np.arange(labels.size) - starts[labels[by_label]]
        keep = rank < per_cluster
        best = np.full((C.shape[0], per_cluster), -1, dtype=np.int64)
        best[labels[by_label][keep], rank[keep]] = ranked[by_label][keep]
        centroids[name], by_cluster[name] = C, best
    fresh_sum, fresh_outer = factor_moments(snap.fresh.factors[: snap.n_fresh])
    return WindowSummary(
        at=now, n_fresh=snap.n_fresh, popular=ranked[:pool],
        by_category=per_code(W["category"][valid].astype(np.int64)),
        by_region=per_code(W["region"][valid].astype(np.int64)),
        engagement_max=float(engagement.max()) if engagement.size else 0.0,
        factor_sum=base_moments[0] + fresh_sum, factor_outer=base_moments[1] + fresh_outer,
        n_articles=snap.n_base - snap.model.window_start + snap.n_fresh,
        centroids=centroids, by_cluster=by_cluster,
        next_due=float(waiting.min()) - FUTURE_GRACE if waiting.size else math.inf,
    )


def feed_candidates(snap: Snapshot, profile: ReaderProfile, summary: WindowSummary, now: float,
                    fresh_neighbours: dict[int, tuple[np.ndarray, np.ndarray]], recent: int = 10,
                    clusters: int = 8, per_seed: int = 10) -> np.ndarray:
    """Articles that can reach the top of this reader's feed (see :class:`WindowSummary`), shape (m,).

    Deleted, not-yet-published and already-read articles are left out. The best ``per_seed``
    neighbours of the ``recent`` newest reads join them (at 100k articles, 10 x 10 find as many of a
    full scan's top 20 as 20 x 40 did once the category lists hold 200: ~1,600 candidates, not 2,400).
    """
    model = snap.model
    parts = [summary.popular]
    codes = [int(c) for c in profile.followed_categories]
    if profile.category_affinity is not None:
        uniform = 1.0 / max(profile.category_affinity.size, 1)
        codes += np.flatnonzero(profile.category_affinity > uniform).tolist()
    parts += [summary.by_category[c] for c in set(codes) if c in summary.by_category]
    parts += [summary.by_region[int(r)] for r in profile.followed_regions if int(r) in summary.by_region]
    for name, vector in (("text", profile.content), ("text", profile.session_vector), ("cf", profile.cf_vector)):
        if vector is not None and name in summary.centroids:
            parts.append(summary.by_cluster[name][top_k(summary.centroids[name] @ vector, clusters)].ravel())
    if profile.positives.size and recent > 0:
        seeds: list[int] = []  # the newest distinct reads
        for i in profile.positives[::-1].tolist():
            if i not in seeds:
                seeds.append(i)
                if len(seeds) == recent:
                    break
        seeds_np = np.array(seeds, dtype=np.int64)
        base = seeds_np[(seeds_np >= model.window_start) & (seeds_np < snap.n_base)] - model.window_start
        for idx, _ in model.neighbours.values():
            parts.append(idx[base, :per_seed].ravel())
        parts += [fresh_neighbours[i][0][:per_seed] for i in seeds if i >= snap.n_base and i in fresh_neighbours]
    # the union as a bitmap over the catalog: cheaper than sorting ~4,000 ids and then searching the reads
    picked = np.concatenate([np.asarray(part, dtype=np.int64) for part in parts])
    mark = np.zeros(snap.n_total, dtype=bool)
    mark[picked[(picked >= 0) & (picked < snap.n_total)]] = True
    read = profile.read[profile.read < snap.n_total]  # (an article may arrive after the snapshot)
    mark[read] = False
    cand = np.flatnonzero(mark)
    return cand[listable(snap, snap.published_at(cand), snap.deleted(cand), now)]


def related_candidates(snap: Snapshot, anchor: int, extra: tuple[np.ndarray, np.ndarray] | None,
                       fresh: np.ndarray | None = None) -> np.ndarray:
    """Union of the anchor's precomputed neighbour lists, fresh arrivals and ``extra``.

    ``fresh`` limits the fresh arrivals to those given (e.g. the ones whose neighbour lists hold
    the anchor); by default every fresh article is a candidate.
    """
    model = snap.model
    parts = [snap.n_base + np.arange(snap.n_fresh) if fresh is None else np.asarray(fresh, dtype=np.int64)]
    if model.window_start <= anchor < snap.n_base:
        row = anchor - model.window_start
        for idx, _ in model.neighbours.values():
            parts.append(idx[row][idx[row] >= 0].astype(np.int64))
    if extra is not None:
        parts.append(extra[0][extra[0] >= 0].astype(np.int64))
    cand = arrays.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    return cand[cand != anchor]


def score_related(snap: Snapshot, anchor: int, candidates: np.ndarray, counters: DecayedCounters,
                  now: float) -> Candidates:
    """Blend text, co-reading and CF similarity with freshness and popularity."""
    p = snap.model.ranking
    model = snap.model
    index = candidates[listable(snap, snap.published_at(candidates), snap.deleted(candidates), now)]
    f: dict[str, np.ndarray] = {}
    anchor_text = snap.text(np.array([anchor]))[0]
    text = snap.text(index)
    f["text"] = (text @ anchor_text).astype(np.float64)
    coread = np.zeros(index.size)
    if model.window_start <= anchor < snap.n_base:
        idx, sim = model.neighbours["coread"]
        row = anchor - model.window_start
        lookup = dict(zip(idx[row].tolist(), sim[row].tolist()))
        coread = np.fromiter((lookup.get(i, 0.0) for i in index.tolist()), dtype=np.float64, count=index.size)
    f["coread"] = coread
    if model.has_cf:
        factors = snap.factors(index)
        anchor_f = _unit(snap.factors(np.array([anchor]))[0])
        norms = np.maximum(np.linalg.norm(factors, axis=1), 1e-9)
        f["cf"] = (factors @ anchor_f) / norms if anchor_f is not None else np.zeros(index.size)
    else:
        f["cf"] = np.zeros(index.size)
    f["fresh"] = freshness(snap.published_at(index), now, p.related_fresh_half_life_hours)
    f["popular"] = trending(counters.engagement[index])
    f["same_category"] = (snap.category(index) == snap.category(np.array([anchor]))[0]).astype(np.float64)
    weights = {"text": p.related_text, "coread": p.related_coread, "cf": p.related_cf, "fresh": p.related_fresh,
               "popular": p.related_popular, "same_category": p.related_same_category}
    no_text = not np.any(anchor_text)
    if no_text:  # fallback without a text model: same category, fresh and popular
        weights = {"same_category": 1.0, "fresh": 0.5, "popular": 0.5}
    score = np.zeros(index.size)
    for name, weight in weights.items():
        f[f"w_{name}"] = weight * f[name]
        score += f[f"w_{name}"]
    # another version of the anchor itself is not "related", it is the same article
    not_duplicate = np.ones(index.size, dtype=bool)
    if not no_text:
        for k in np.flatnonzero(f["text"] >= p.duplicate_similarity):
            not_duplicate[k] = not near_duplicate(snap, anchor, int(index[k]), float(f["text"][k]),
                                                  p.duplicate_similarity)
    cand = Candidates(index, f, score).take(not_duplicate)
    cand.features["story"] = snap.story(cand.index)
    cand.features["category"] = snap.category(cand.index).astype(np.int64)
    cand.features["region"] = snap.region(cand.index).astype(np.int64)
    return cand


def _copies_a_chosen(snap: Snapshot, cand: Candidates, order: np.ndarray, chosen_rows: list[int], rank: int,
                     sims: list[float], threshold: float) -> bool:
    """Whether the candidate at ``rank`` (of ``order``) is a near-duplicate of one already chosen;
    ``sims``: its text similarity to each of ``chosen_rows``. Most picks are close to none, and are
    answered by one max without a headline compared (diversify: 0.35 -> 0.32 ms a list)."""
    if max(sims) < threshold:
        return False
    j = int(cand.index[order[rank]])
    return any(near_duplicate(snap, int(cand.index[order[chosen_rows[c]]]), j, sim, threshold)
               for c, sim in enumerate(sims) if sim >= threshold)


def diversify(snap: Snapshot, cand: Candidates, n: int, max_per_story: int, max_category_share: float,
              duplicate_similarity: float, pool: int | None = None, story_similarity: float | None = None,
              uncapped: np.ndarray | None = None) -> np.ndarray:
    """Greedy re-ranking: best score first, skipping near-duplicates, a story's extra copies and
    a category that already fills more than ``max_category_share`` of the list so far.

    Every rule looks only at what was already chosen, and the pool does not depend on ``n``
    for ordinary page sizes, so the first ``k`` items are the same whatever ``n >= k`` is:
    pages never repeat or skip an item. Returns positions into ``cand`` (at most ``n``).

    With ``story_similarity``, "the same story" is judged pair by pair (a candidate at least
    that similar to an already chosen article counts as another copy of its story) instead of
    by story labels: labels are connected components, which chain unrelated articles together
    on a real catalog and then cap lists that are not repetitive at all.

    ``uncapped`` (bool, shape (n,) like ``cand``) marks candidates the story cap does not hold
    back (a related list's follow-ups of the anchor's own story, which editors link); they
    still count as copies for the others, and duplicates and category shares still apply.
    """
    if cand.index.size == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    order = top_k(cand.score, pool or max(300, 3 * n))
    text = snap.text(cand.index[order])
    has_text = np.any(text, axis=1).tolist()
    story = cand.features["story"][order].tolist()
    free = (np.zeros(order.size, dtype=bool) if uncapped is None else np.asarray(uncapped, dtype=bool)[order]).tolist()
    category_np = arrays.unique_inverse(cand.features["category"][order])[1].ravel()
    stories: dict[int, int] = {}  # chosen so far per story (by label)
    n_categories = int(category_np.max()) + 1
    categories = [0] * n_categories
    pairwise = story_similarity is not None and all(has_text)
    copies = np.zeros(order.size, dtype=np.int64)  # pairwise: chosen articles each rank resembles
    copies_list = copies.tolist()
    # ranks of each category, best first. A rank whose story is used up stays blocked for good, so
    # the best rank that fits is the smallest head among the categories that still have room:
    # ~10 steps per item instead of a pass over every rank
    by_category = np.argsort(category_np, kind="stable")
    bounds = np.searchsorted(category_np[by_category], np.arange(n_categories + 1)).tolist()
    by_category = by_category.tolist()
    queues = [by_category[bounds[c]:bounds[c + 1]] for c in range(n_categories)]
    heads = [0] * n_categories
    in_play = [True] * order.size
    category = category_np.tolist()
    first = 0  # the best rank still in play
    best = 0  # the best rank in play whose story has room (a story once full stays full)
    chosen: list[int] = []
    chosen_rows: list[int] = []
    chosen_text = np.empty((min(n, order.size), text.shape[1]), dtype=text.dtype)
    while len(chosen) < n:
        while first < order.size and not in_play[first]:
            first += 1
        if first >= order.size:
            break
        allowed = math.ceil(max_category_share * (len(chosen) + 1))
        rank = -1
        while best < order.size and (not in_play[best] or (not free[best] and (
                copies_list[best] if pairwise else stories.get(story[best], 0)) >= max_per_story)):
            best += 1
        if best < order.size and categories[category[best]] < allowed:
            rank = best  # it heads its category's queue and no other head is better: no scan
        for c in range(n_categories if rank < 0 else 0):
            if categories[c] >= allowed:
                continue
            queue, h = queues[c], heads[c]
            while h < len(queue) and (not in_play[queue[h]] or (not free[queue[h]] and (
                    copies_list[queue[h]] if pairwise else stories.get(story[queue[h]], 0)) >= max_per_story)):
                h += 1
            heads[c] = h
            if h < len(queue) and (rank < 0 or queue[h] < rank):
                rank = queue[h]
        if rank < 0:  # nothing fits: better a less diverse list than a short one
            rank = first
        in_play[rank] = False
        if chosen_rows and has_text[rank]:
            sims = (chosen_text[: len(chosen_rows)] @ text[rank]).tolist()
            if _copies_a_chosen(snap, cand, order, chosen_rows, rank, sims, duplicate_similarity):
                continue
        chosen_text[len(chosen)] = text[rank]
        chosen.append(int(order[rank]))
        chosen_rows.append(rank)
        stories[story[rank]] = stories.get(story[rank], 0) + 1
        categories[category[rank]] += 1
        if pairwise:
            copies += (text @ text[rank]) >= story_similarity
            copies_list = copies.tolist()
    return np.asarray(chosen, dtype=np.int64)


def mmr(snap: Snapshot, cand: Candidates, n: int, lam: float, duplicate_similarity: float,
        pool: int | None = None, uncapped: np.ndarray | None = None, story_labels: bool = True,
        categories: bool = True) -> np.ndarray:
    """Maximal marginal relevance (Carbonell & Goldstein 1998), an alternative to :func:`diversify`'s caps.

    Each step takes the candidate with the best ``lam * relevance - (1 - lam) * redundancy``.
    Relevance is the score min-max scaled over the pool, so ``lam`` means the same whatever the
    blend's scale. Redundancy is a penalty, not a cap: the story term (highest text cosine to an
    article already chosen, or 1 for a chosen article with the same story label when
    ``story_labels``) averaged with the share of the list so far in the candidate's category
    (when ``categories``). ``lam=1`` is the score order. Near-duplicates are skipped as in
    :func:`diversify`; ``uncapped`` candidates (the anchor's follow-ups) carry no story term.
    Like :func:`diversify`, each step looks only at what was already chosen, so pages are stable.
    Returns positions into ``cand`` (at most ``n``).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"mmr_lambda must be between 0 and 1, got {lam}")
    if cand.index.size == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    order = top_k(cand.score, pool or max(300, 3 * n))
    score = np.asarray(cand.score, dtype=np.float64)[order]
    span = float(score.max() - score.min())
    relevance = (score - score.min()) / span if span > 0 else np.ones(order.size)
    text = snap.text(cand.index[order])
    has_text = np.any(text, axis=1)
    story = cand.features["story"][order]
    free = np.zeros(order.size, dtype=bool) if uncapped is None else np.asarray(uncapped, dtype=bool)[order]
    category = arrays.unique_inverse(cand.features["category"][order])[1].ravel()
    in_category = np.zeros(int(category.max()) + 1)
    closest = np.zeros(order.size)  # highest text similarity to a chosen article
    open_ = np.ones(order.size, dtype=bool)
    chosen: list[int] = []
    chosen_rows: list[int] = []
    while len(chosen) < n and open_.any():
        value = lam * relevance
        if chosen and lam < 1.0:
            story_term = np.where(free, 0.0, closest)
            redundancy = (story_term + in_category[category] / len(chosen)) / 2 if categories else story_term
            value = value - (1.0 - lam) * redundancy
        value = np.where(open_, value, -np.inf)
        rank = int(np.argmax(value))  # ties go to the better score (lower rank)
        open_[rank] = False
        if chosen_rows and has_text[rank]:
            sims = (text[chosen_rows] @ text[rank]).tolist()
            if _copies_a_chosen(snap, cand, order, chosen_rows, rank, sims, duplicate_similarity):
                continue
        chosen.append(int(order[rank]))
        chosen_rows.append(rank)
        if has_text[rank]:
            closest = np.maximum(closest, text @ text[rank])
        if story_labels:
            closest[story == story[rank]] = 1.0
        in_category[category[rank]] += 1
    return np.asarray(chosen, dtype=np.int64)
