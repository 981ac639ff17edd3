"""Every tunable number in one place, as plain dataclasses that round-trip through JSON.

``newsrec tune`` writes a JSON file of these; ``newsrec train`` reads it and stores the
ranking part in the bundle so the service ranks exactly as evaluated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from recommender.domain import EVENT_CODES

DAY = 86_400.0


@dataclass(frozen=True)
class EventWeights:
    """How much each kind of event says about interest.

    An impression without a click is no positive (weight 0); a read is worth more the
    longer it lasted, up to ``dwell_cap`` times ``read``; old events fade with
    ``half_life_days`` (``None``: no decay).
    """

    impression: float = 0.0
    click: float = 1.0
    read: float = 2.0
    share: float = 4.0
    dwell_reference: float = 60.0
    dwell_cap: float = 3.0
    half_life_days: float | None = 14.0

    def to_dict(self) -> dict:
        return asdict(self)

    def event_weight(self, event: np.ndarray, dwell: np.ndarray) -> np.ndarray:
        """Weight per event, shape (n,), float32; one vectorized expression."""
        # a hide says "not this": no interest weight (the feed uses it to sink, not to learn from)
        table = np.array([self.impression, self.click, self.read, self.share, 0.0], dtype=np.float32)
        weight = table[event.astype(np.intp)]
        is_read = event == EVENT_CODES["read"]
        if is_read.any():
            scale = np.where(np.isnan(dwell), 1.0, dwell / self.dwell_reference)
            scale = np.clip(scale, 0.25, self.dwell_cap).astype(np.float32)
            weight = np.where(is_read, weight * scale, weight)
        return weight.astype(np.float32)

    def decay(self, ts: np.ndarray, now: float) -> np.ndarray:
        if not self.half_life_days:
            return np.ones_like(ts, dtype=np.float32)
        age_days = np.maximum(now - ts, 0.0) / DAY
        return np.exp2(-age_days / self.half_life_days).astype(np.float32)


@dataclass(frozen=True)
class RankingParams:
    """Blend weights and shapes used at serving time (and by the offline replay)."""

    # related articles
    related_text: float = 1.0
    related_coread: float = 0.6
    related_cf: float = 0.2
    related_fresh: float = 0.15
    related_popular: float = 0.05
    related_same_category: float = 0.3  # editors link within a section (0.05 before; measured in benchmarks/quality.py)
    related_fresh_half_life_hours: float = 48.0
    related_max_per_story: int = 4
    related_story_similarity: float = 0.7  # two articles this close count as one story (pairwise)
    # a candidate this close to the anchor is a follow-up of its story, which editors link: the story
    # cap does not hold it back (above 1: off)
    related_follow_up_similarity: float = 0.65
    # feed
    feed_cf: float = 0.5
    feed_content: float = 1.0
    feed_session: float = 0.8
    feed_category_affinity: float = 1.0
    feed_follow_category: float = 1.0
    feed_follow_region: float = 0.5
    feed_trending: float = 0.5
    feed_ctr: float = 1.0
    feed_fresh: float = 0.6
    feed_fresh_half_life_hours: float = 24.0
    feed_max_per_story: int = 2
    feed_max_category_share: float = 0.7
    # reader controls: a hidden article's story sinks by this much for that reader; a category hidden
    # n times sinks by this much times (1 - 1/n) (one hide: the article only)
    feed_hide_story: float = 2.0
    feed_hide_category: float = 1.0
    # impression fatigue: an article shown to a reader this many times without a click sinks in their
    # feed, by up to ``feed_fatigue`` (reached at twice as many showings); 0 turns it off
    fatigue_impressions: int = 3
    feed_fatigue: float = 0.5
    session_minutes: float = 30.0
    # both
    duplicate_similarity: float = 0.92
    ctr_prior_strength: float = 20.0
    # live click-through over the clicks expected at the positions shown (a position curve fitted at
    # training) instead of over plain impressions
    ctr_position_corrected: bool = True
    trending_half_life_hours: float = 6.0
    window_days: float = 7.0
    # an archive (or a sample) whose last window_days hold fewer articles: the newest this many instead
    min_window_articles: int = 200


@dataclass(frozen=True)
class TrainParams:
    """What ``newsrec train`` fits."""

    n_components: int = 128
    title_weight: float = 3.0
    max_features: int = 200_000
    text_fit_max_docs: int = 50_000
    cf_method: str = "als"
    cf_weighting: str = "none"  # or "bm25": damp heavy readers and very popular articles
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    bridge_alpha: float = 1.0
    bridge_min_interactions: int = 5
    bridge_blend_k: float = 10.0
    coread_session_gap_minutes: float = 30.0
    coread_half_life_days: float = 7.0
    neighbours: int = 40
    story_similarity: float = 0.5
    history_days: float | None = 60.0
    min_cf_interactions: int = 20
    weights: EventWeights = field(default_factory=EventWeights)
    ranking: RankingParams = field(default_factory=RankingParams)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainParams":
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
        weights = EventWeights(**data.pop("weights", {}))
        ranking = ranking_from_dict(data.pop("ranking", {}))
        return cls(weights=weights, ranking=ranking, **data)

    @classmethod
    def load(cls, path: str | Path) -> "TrainParams":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    def with_overrides(self, **changes: Any) -> "TrainParams":
        return replace(self, **changes)


def ranking_from_dict(data: dict[str, Any]) -> RankingParams:
    known = {f.name for f in fields(RankingParams)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown ranking parameter(s): {', '.join(sorted(unknown))}")
    return RankingParams(**data)
