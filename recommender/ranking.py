"""Scoring and diversifying related lists and reader feeds on a catalog snapshot.

Every function here is vectorized over candidates and free of I/O: the engine gathers the
inputs (reader events, preferences, live counters) and the offline replay calls the same
functions, so what is evaluated is what is served.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .catalog import Snapshot
from .domain import EVENT_CODES
from .neighbours import top_k
from .params import RankingParams
from .popularity import DecayedCounters

HOUR = 3600.0
FUTURE_GRACE = 60.0
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


def title_overlap(a: str, b: str) -> float:
    """Jaccard overlap of two titles' words."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(wa & wb) / max(len(wa | wb), 1)


def near_duplicate(snap: Snapshot, i: int, j: int, text_similarity: float, threshold: float) -> bool:
    """Two versions of one article: very close text *and* mostly the same headline words.

    Dense text vectors alone put every article of a story (and, on a small catalog, of a
    recurring kind of story) close together; the headline check keeps story mates apart
    from true copies.
    """
    if text_similarity < threshold:
        return False
    return title_overlap(snap.meta(i).title, snap.meta(j).title) >= TITLE_OVERLAP_DUPLICATE


def freshness(published_at: np.ndarray, now: float, half_life_hours: float) -> np.ndarray:
    age_hours = np.maximum(now - published_at, 0.0) / HOUR
    return np.exp2(-age_hours / half_life_hours)


def trending(engagement: np.ndarray) -> np.ndarray:
    """Engagement on a log scale in [0, 1] relative to the candidates' maximum."""
    top = float(engagement.max()) if engagement.size else 0.0
    if top <= 0:
        return np.zeros_like(engagement, dtype=np.float64)
    return np.log1p(engagement) / math.log1p(top)


def ctr_lift(counters: DecayedCounters, index: np.ndarray, prior_strength: float) -> np.ndarray:
    """Smoothed click-through relative to the site's, in [-1/3, 1]: 0 means average."""
    prior = counters.global_ctr()
    clicks, shown = counters.clicks[index], counters.impressions[index]
    ctr = (clicks + prior_strength * prior) / (np.maximum(shown, clicks) + prior_strength)
    return np.clip(ctr / max(prior, 1e-6) - 1.0, -1.0, 3.0) / 3.0


def standardize(x: np.ndarray) -> np.ndarray:
    if x.size < 2:
        return np.zeros_like(x)
    sd = float(x.std())
    if sd < 1e-9:
        return np.zeros_like(x)
    return np.clip((x - x.mean()) / sd, -3.0, 3.0) / 3.0


def build_profile(snap: Snapshot, items: np.ndarray, events: np.ndarray, ts: np.ndarray, dwell: np.ndarray,
                  followed_categories: np.ndarray, followed_regions: np.ndarray, now: float) -> ReaderProfile:
    """Fold a reader's events (global indices, -1 for unknown articles) into a profile.

    The CF vector is solved from the item factors of everything they engaged with, so a
    click posted a moment ago already moves the next feed.
    """
    model = snap.model
    params = model.ranking
    known = items >= 0
    positive = known & np.isin(events, POSITIVE_CODES)
    pos_items, pos_ts = items[positive], ts[positive]
    read = np.unique(pos_items)
    if pos_items.size == 0:
        return ReaderProfile(read, pos_items, np.zeros(0), pos_items, None, None, None, followed_categories,
                             followed_regions)
    w = model.weights.event_weight(events[positive], dwell[positive]) * model.weights.decay(pos_ts, now)
    # aggregate per item, as the training matrix does
    uniq, inverse = np.unique(pos_items, return_inverse=True)
    agg = np.bincount(inverse, weights=w).astype(np.float64)
    cf_vector = None
    if model.has_cf:
        from .cf import fold_in

        Y = snap.factors(uniq)
        cf_vector = fold_in(Y, model.gram, np.arange(uniq.size), 1.0 + model.alpha * agg)
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
               index: np.ndarray | None = None) -> Candidates:
    """Score window articles (or the given ``index``, e.g. an impression's candidates) for a reader.

    Without ``index``, deleted, not-yet-published and already-read articles are dropped.
    """
    p = snap.model.ranking
    if index is None:
        W = snap.window_arrays()
        valid = ~W["deleted"] & (W["published_at"] <= now + FUTURE_GRACE)
        if profile.read.size:
            valid &= ~np.isin(W["index"], profile.read)
        index = W["index"][valid]
        cols = {name: W[name][valid] for name in ("published_at", "category", "region", "text", "factors", "story")}
    else:
        index = np.asarray(index, dtype=np.int64)
        cols = {"published_at": snap.published_at(index), "category": snap.category(index),
                "region": snap.region(index), "text": snap.text(index), "factors": snap.factors(index),
                "story": snap.story(index)}
    f: dict[str, np.ndarray] = {}
    f["fresh"] = freshness(cols["published_at"], now, p.feed_fresh_half_life_hours)
    f["trending"] = trending(counters.engagement[index])
    f["ctr"] = ctr_lift(counters, index, p.ctr_prior_strength)
    f["follow_category"] = np.isin(cols["category"], profile.followed_categories).astype(np.float64)
    f["follow_region"] = np.isin(cols["region"], profile.followed_regions).astype(np.float64)
    f["affinity"] = np.zeros(index.size)
    if profile.category_affinity is not None:
        cat = cols["category"].astype(np.int64)
        known = (cat >= 0) & (cat < profile.category_affinity.size)
        f["affinity"][known] = profile.category_affinity[cat[known]]
    text = cols["text"]
    f["content"] = text @ profile.content if profile.content is not None else np.zeros(index.size)
    f["session"] = text @ profile.session_vector if profile.session_vector is not None else np.zeros(index.size)
    if profile.cf_vector is not None:
        f["cf"] = standardize(cols["factors"] @ profile.cf_vector)
    else:
        f["cf"] = np.zeros(index.size)
    weights = {"fresh": p.feed_fresh, "trending": p.feed_trending, "ctr": p.feed_ctr,
               "follow_category": p.feed_follow_category, "follow_region": p.feed_follow_region,
               "content": p.feed_content, "session": p.feed_session, "cf": p.feed_cf,
               "affinity": p.feed_category_affinity}
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


def related_candidates(snap: Snapshot, anchor: int, extra: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Union of the anchor's precomputed neighbour lists, fresh arrivals and ``extra``."""
    model = snap.model
    parts = [snap.n_base + np.arange(snap.n_fresh)]
    if model.window_start <= anchor < snap.n_base:
        row = anchor - model.window_start
        for idx, _ in model.neighbours.values():
            parts.append(idx[row][idx[row] >= 0].astype(np.int64))
    if extra is not None:
        parts.append(extra[0][extra[0] >= 0].astype(np.int64))
    cand = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    return cand[cand != anchor]


def score_related(snap: Snapshot, anchor: int, candidates: np.ndarray, counters: DecayedCounters,
                  now: float) -> Candidates:
    """Blend text, co-reading and CF similarity with freshness and popularity."""
    p = snap.model.ranking
    model = snap.model
    valid = ~snap.deleted(candidates) & (snap.published_at(candidates) <= now + FUTURE_GRACE)
    index = candidates[valid]
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


def diversify(snap: Snapshot, cand: Candidates, n: int, max_per_story: int, max_category_share: float,
              duplicate_similarity: float, pool: int | None = None) -> np.ndarray:
    """Greedy re-ranking: best score first, skipping near-duplicates, a story's extra copies and
    a category that already fills more than ``max_category_share`` of the list so far.

    Every rule looks only at what was already chosen, and the pool does not depend on ``n``
    for ordinary page sizes, so the first ``k`` items are the same whatever ``n >= k`` is:
    pages never repeat or skip an item. Returns positions into ``cand`` (at most ``n``).
    """
    if cand.index.size == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    order = top_k(cand.score, pool or max(300, 3 * n))
    text = snap.text(cand.index[order])
    has_text = np.any(text, axis=1)
    stories: dict[int, int] = {}
    categories: dict[int, int] = {}
    chosen: list[int] = []
    chosen_rows: list[int] = []
    remaining = list(range(order.size))  # ranks still in play, best first
    while len(chosen) < n and remaining:
        allowed = math.ceil(max_category_share * (len(chosen) + 1))
        pick = None
        for slot, rank in enumerate(remaining):
            pos = int(order[rank])
            if stories.get(int(cand.features["story"][pos]), 0) >= max_per_story:
                continue
            if categories.get(int(cand.features["category"][pos]), 0) + 1 > allowed:
                continue
            pick = slot
            break
        if pick is None:  # better a less diverse list than a short one
            pick = 0
        rank = remaining.pop(pick)
        pos = int(order[rank])
        if chosen_rows and has_text[rank]:
            sims = text[chosen_rows] @ text[rank]
            close = np.flatnonzero(sims >= duplicate_similarity)
            if any(near_duplicate(snap, int(cand.index[order[chosen_rows[c]]]), int(cand.index[pos]),
                                  float(sims[c]), duplicate_similarity) for c in close):
                continue
        chosen.append(pos)
        chosen_rows.append(rank)
        story, category = int(cand.features["story"][pos]), int(cand.features["category"][pos])
        stories[story] = stories.get(story, 0) + 1
        categories[category] = categories.get(category, 0) + 1
    return np.asarray(chosen, dtype=np.int64)
