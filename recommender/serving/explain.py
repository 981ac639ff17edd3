"""Why an item is in a list: the score part that added most, said in Indonesian for readers; and
which score parts the console lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from recommender import arrays
from recommender.models.served import ArticleMeta

from .catalog import Snapshot
from .ranking import Candidates, ReaderProfile
from .results import RankedItem

RELATED_REASONS = ("text", "coread", "cf", "fresh", "popular", "same_category")
FEED_REASONS = ("content", "session", "affinity", "cf", "follow_category", "follow_region", "trending", "ctr",
                "fresh")


def part_names(known: tuple[str, ...], rows: Iterable[Mapping[str, float]]) -> list[str]:
    """The score parts to show for ``rows`` (``{part: weighted value}`` each): ``known`` first, then
    every other part a row has (a reader's hides and fatigue, ``plugin_<name>``, ``adjustment``) in
    the order first met, so the parts shown add up to the score."""
    names = dict.fromkeys(known)
    for row in rows:
        names.update(dict.fromkeys(row or ()))
    return list(names)


def top_reasons(cand: Candidates, positions: np.ndarray, names: tuple[str, ...]) -> list[str]:
    """Per position, the feature that added most to its score (the first of equals)."""
    zeros = np.zeros(len(positions))
    weighted = np.stack([cand.features[f"w_{n}"][positions] if f"w_{n}" in cand.features else zeros
                         for n in names])
    return [names[k] for k in np.argmax(weighted, axis=0).tolist()]

def _items(snap: Snapshot, cand: Candidates, positions: np.ndarray, metas: list[ArticleMeta],
           reasons: list[str]) -> tuple[RankedItem, ...]:
    scores = [round(x, 6) for x in cand.score[positions].tolist()]
    return tuple(RankedItem(m.article_id, m.title, m.url, m.category, m.region, m.published_at, score, reason)
                 for m, score, reason in zip(metas, scores, reasons))

def related_items(snap: Snapshot, cand: Candidates, chosen: np.ndarray,
                   anchor: ArticleMeta) -> tuple[RankedItem, ...]:
    metas = snap.metas(cand.index[chosen])
    reasons = []
    for top, meta in zip(top_reasons(cand, chosen, RELATED_REASONS), metas):
        reasons.append({
            "text": f"Masih terkait dengan: {anchor.title}",
            "coread": "Pembaca artikel ini juga membaca",
            "cf": "Disukai pembaca artikel ini",
            "fresh": f"Terbaru di {meta.category}",
            "popular": f"Populer di {meta.region or meta.category}",
            "same_category": f"Terbaru di {meta.category}",
        }[top])
    return _items(snap, cand, chosen, metas, reasons)

def feed_items(snap: Snapshot, cand: Candidates, page: np.ndarray,
                profile: ReaderProfile) -> tuple[RankedItem, ...]:
    index = cand.index[page]
    metas = snap.metas(index)
    tops = top_reasons(cand, page, FEED_REASONS)
    because = None  # per item, the read article its text is closest to (one product for the page)
    if profile.positives.size and any(t in ("content", "session") for t in tops):
        read = arrays.unique(profile.positives)
        because = snap.metas(read[np.argmax(snap.text(read) @ snap.text(index).T, axis=0)])
    reasons = []
    for k, (top, meta) in enumerate(zip(tops, metas)):
        if top in ("content", "session") and because is not None:
            reasons.append(f"Karena Anda membaca: {because[k].title}")
        elif top == "cf":
            reasons.append("Pembaca dengan minat serupa membaca ini")
        elif top == "affinity":
            reasons.append(f"Karena Anda sering membaca {meta.category}")
        elif top == "follow_category":
            reasons.append(f"Topik yang Anda ikuti: {meta.category}")
        elif top == "follow_region":
            reasons.append(f"Berita {meta.region} yang Anda ikuti")
        elif top in ("trending", "ctr"):
            reasons.append(f"Populer di {meta.region or meta.category}")
        else:
            reasons.append(f"Berita terbaru: {meta.category}")
    return _items(snap, cand, page, metas, reasons)
