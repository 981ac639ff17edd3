"""Why a related list is what it is: the parts of each item's score, and why an article is absent.

For the newsroom console (``api.console``): read-only, off the serving path, built from the same
ranking functions as :meth:`Engine.related` (candidates, ``score_related``, the story cap of
``diversify`` or, with ``diversity = "mmr"``, MMR's penalty), so what it says matches what readers get.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from recommender import arrays

from .catalog import Snapshot
from .explain import RELATED_REASONS
from .ranking import FUTURE_GRACE, Candidates, near_duplicate, related_candidates, score_related

# why an article is not in a related list, most decisive first
VERDICTS = {
    "listed": "in the list",
    "anchor": "the article itself",
    "unknown": "not in the catalog",
    "taken_down": "taken down",
    "scheduled": "not published yet (scheduled)",
    "outside_window": "outside the serving window (older than the window the model serves)",
    "not_candidate": "not a candidate: not among the article's text, co-reading or CF neighbours",
    "duplicate_of_anchor": "a near-duplicate of the article itself",
    "story_capped": "same story capped: enough articles of its story are already listed",
    "mmr_redundant": "held back by MMR diversity: too like the articles already listed for its score",
    "duplicate_of_listed": "a near-duplicate of an article already listed",
    "scored_lower": "scored below the last listed article",
}


@dataclass(frozen=True)
class Verdict:
    article_id: str
    code: str
    detail: str
    score: float | None = None
    parts: dict | None = None

    @property
    def text(self) -> str:
        return VERDICTS[self.code] + (f" ({self.detail})" if self.detail else "")


def score_parts(snap: Snapshot, anchor: int, index: np.ndarray, counters, now: float,
                plugins: Callable[[Candidates], Candidates] | None = None) -> dict[int, dict]:
    """Per catalog index, ``{"score": s, "parts": {name: weighted part}}`` as ``score_related`` scores
    ``index`` together (popularity is relative to the most engaging of them: score the whole candidate
    set, not one article alone); indices it refuses (taken down, not yet published) are absent.
    ``plugins``: the related pipeline's plugin scoring, whose parts show as ``plugin_<name>``."""
    cand = score_related(snap, anchor, arrays.unique(np.asarray(index, dtype=np.int64)), counters, now)
    if plugins is not None:
        cand = plugins(cand)
    names = [name for name in RELATED_REASONS if f"w_{name}" in cand.features]
    names += [name[2:] for name in cand.features if name.startswith("w_plugin_")]
    out = {}
    for k, i in enumerate(cand.index.tolist()):
        parts = {name: float(cand.features[f"w_{name}"][k]) for name in names}
        out[i] = {"score": float(cand.score[k]), "parts": parts}
    return out


def verdict(snap: Snapshot, anchor: int, index: int, article_id: str, listed: np.ndarray,
            candidates: np.ndarray, scored: dict[int, dict], counters, now: float,
            deleted_in_store: bool, plugins: Callable[[Candidates], Candidates] | None = None) -> Verdict:
    """Why catalog article ``index`` is or is not in the related list ``listed`` of ``anchor``
    (``index`` < 0: not in this worker's catalog). ``scored``: :func:`score_parts` of the
    candidates and the listed articles together (with ``plugins``, as here)."""
    model = snap.model
    p = model.ranking
    if deleted_in_store:
        return Verdict(article_id, "taken_down", "")
    if index < 0:
        return Verdict(article_id, "unknown", "")
    if index == anchor:
        return Verdict(article_id, "anchor", "")
    if snap.deleted(np.array([index]))[0]:
        return Verdict(article_id, "taken_down", "")
    found = scored.get(index)
    if found is None:  # not a candidate: scored as if it were one more
        found = score_parts(snap, anchor, arrays.union1d(candidates, [index]), counters, now, plugins).get(index)
    score, parts = (found["score"], found["parts"]) if found else (None, None)
    if index in set(listed.tolist()):
        return Verdict(article_id, "listed", "", score, parts)
    published = float(snap.published_at(np.array([index]))[0])
    if published > now + FUTURE_GRACE:
        return Verdict(article_id, "scheduled", "")
    if index < model.window_start or published < snap.window_since:
        return Verdict(article_id, "outside_window", "", score, parts)
    if index not in set(candidates.tolist()):
        return Verdict(article_id, "not_candidate", "", score, parts)
    text = snap.text(np.array([anchor, index]))
    similarity = float(text[0] @ text[1])
    if similarity >= p.duplicate_similarity and near_duplicate(snap, anchor, index, similarity, p.duplicate_similarity):
        return Verdict(article_id, "duplicate_of_anchor", f"text similarity {similarity:.2f}", score, parts)
    last = min((scored[i]["score"] for i in listed.tolist() if i in scored), default=-np.inf)
    if score is not None and score > last and listed.size:
        others = snap.text(listed) @ text[1]
        if p.diversity == "mmr":  # no cap: a penalty for resembling what is listed (ranking.mmr)
            for k in np.flatnonzero(others >= p.duplicate_similarity).tolist():
                if near_duplicate(snap, int(listed[k]), index, float(others[k]), p.duplicate_similarity):
                    return Verdict(article_id, "duplicate_of_listed", snap.meta(int(listed[k])).article_id, score,
                                   parts)
            closest = float(others.max()) if np.any(text[1]) else 0.0
            return Verdict(article_id, "mmr_redundant", f"text similarity up to {closest:.2f} to listed articles, "
                                                       f"mmr_lambda {p.mmr_lambda}", score, parts)
        if p.related_story_similarity is not None and np.any(text[1]):
            same_story = int((others >= p.related_story_similarity).sum())
        else:
            same_story = int((snap.story(listed) == snap.story(np.array([index]))[0]).sum())
        if same_story >= p.related_max_per_story:
            return Verdict(article_id, "story_capped", f"{same_story} of its story listed, at most "
                                                      f"{p.related_max_per_story}", score, parts)
        for k in np.flatnonzero(others >= p.duplicate_similarity).tolist():
            if near_duplicate(snap, int(listed[k]), index, float(others[k]), p.duplicate_similarity):
                return Verdict(article_id, "duplicate_of_listed", snap.meta(int(listed[k])).article_id, score, parts)
    return Verdict(article_id, "scored_lower", f"{score:.3f} < {last:.3f}" if score is not None else "", score, parts)


def candidates_of(state, snap: Snapshot, anchor: int, fresh_neighbours: int) -> np.ndarray:
    """The anchor's related candidates as :meth:`Engine._shared_related` gathers them (before the
    top-up a thin neighbourhood gets from the window's popular articles)."""
    from .live import scan_window

    model = snap.model
    extra = state.fresh_neighbours.get(anchor)
    if extra is None and not (model.window_start <= anchor < snap.n_base):
        extra = scan_window(snap, snap.text(np.array([anchor]))[0], fresh_neighbours)
    return related_candidates(snap, anchor, extra, None)
