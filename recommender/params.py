"""Every tunable number in one place, as plain dataclasses that round-trip through JSON.

``newsrec tune`` writes a JSON file of these; ``newsrec train`` reads it and stores the
ranking part in the bundle so the service ranks exactly as evaluated.
"""

from __future__ import annotations

import json
import math
import re
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


DIVERSITY_MODES = ("caps", "mmr")
# RankingParams fields that are hours, days, minutes, counts or caps: 0 or less means nothing
POSITIVE_PARAMETERS = ("related_fresh_half_life_hours", "feed_fresh_half_life_hours", "trending_half_life_hours",
                       "related_max_per_story", "feed_max_per_story", "session_minutes", "window_days",
                       "min_window_articles")
MAX_PARAMETER = 1e6  # a weight or a shape past this is a typo (1e308 overflowed the blend)


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
    # "caps": the story cap and category share above; "mmr": maximal marginal relevance trading score
    # (weight mmr_lambda) against story and category redundancy (serving.ranking.mmr). Measured in
    # benchmarks/quality.py: caps stays the default (README, "MMR against the caps")
    diversity: str = "caps"
    mmr_lambda: float = 0.7
    duplicate_similarity: float = 0.92
    ctr_prior_strength: float = 20.0
    # live click-through over the clicks expected at the positions shown (a position curve fitted at
    # training) instead of over plain impressions
    ctr_position_corrected: bool = True
    trending_half_life_hours: float = 6.0
    window_days: float = 7.0
    # an archive (or a sample) whose last window_days hold fewer articles: the newest this many instead
    min_window_articles: int = 200

    def __post_init__(self) -> None:
        if self.diversity not in DIVERSITY_MODES:
            raise ValueError(f"diversity must be one of {', '.join(DIVERSITY_MODES)}, got {self.diversity!r}")
        if isinstance(self.mmr_lambda, bool) or not isinstance(self.mmr_lambda, (int, float)) \
                or not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda must be a number between 0 and 1, got {self.mmr_lambda!r}")


PLUGIN_ROLES = ("scorer", "candidates", "embedder")
PLUGIN_LISTS = ("feed", "related")
# what each role runs on unless the config says: a scorer and a candidate source feeds, an embedder related lists
PLUGIN_DEFAULT_LISTS = {"scorer": ("feed",), "candidates": ("feed",), "embedder": ("related",)}
_PLUGIN_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
_PLUGIN_NAME = re.compile(r"[a-z][a-z0-9]{0,15}")


@dataclass(frozen=True)
class PluginSpec:
    """One bring-your-own model of the training config (see ``recommender.models.plugins``).

    ``role``: "scorer" (adds ``weight`` x its score to each candidate), "candidates" (adds up to
    ``k`` articles to a feed's candidates) or "embedder" (article vectors: ``weight`` x cosine
    similarity to the anchor, or to the reader's history, plus neighbour lists for related
    candidates). ``path`` is ``package.module:Class``; ``params`` its keyword arguments (JSON);
    ``lists`` the lists it runs on; ``name`` (default ``p0``, ``p1``... by position) names its
    arrays in the bundle and its rows in metrics.
    """

    role: str
    path: str
    name: str = ""
    params: dict = field(default_factory=dict)
    weight: float = 1.0
    lists: tuple[str, ...] = ()
    k: int = 50

    @classmethod
    def from_dict(cls, data: Any, position: int = 0) -> "PluginSpec":
        """A checked spec from its JSON object; ValueError saying what to fix."""
        where = f"plugins[{position}]"
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be an object like {{\"role\": \"scorer\", \"path\": \"pkg.mod:Class\"}}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        role = data.get("role")
        if role not in PLUGIN_ROLES:
            raise ValueError(f"{where}: role must be one of {', '.join(PLUGIN_ROLES)}; got {role!r}")
        path = data.get("path")
        if not isinstance(path, str) or not _PLUGIN_PATH.fullmatch(path):
            raise ValueError(f"{where}: path must name a class as 'package.module:Class'; got {path!r}")
        name = data.get("name") or f"p{position}"
        if not isinstance(name, str) or not _PLUGIN_NAME.fullmatch(name):
            raise ValueError(f"{where}: name must be 1-16 lowercase letters and digits, starting with a letter; "
                             f"got {name!r}")
        params = data.get("params", {})
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise ValueError(f"{where}: params must be a JSON object of keyword arguments")
        weight = data.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"{where}: weight must be a finite number; got {weight!r}")
        lists = data.get("lists") or PLUGIN_DEFAULT_LISTS[role]
        if isinstance(lists, str) or not all(x in PLUGIN_LISTS for x in lists):
            raise ValueError(f"{where}: lists must be a list drawn from {', '.join(PLUGIN_LISTS)}; got {lists!r}")
        if role == "candidates" and "related" in lists:
            raise ValueError(f"{where}: a candidate source runs on feeds only (related candidates come from an "
                             "embedder's neighbour lists)")
        k = data.get("k", 50)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
            raise ValueError(f"{where}: k must be an integer from 1 to 1000; got {k!r}")
        return cls(role=role, path=path, name=name, params=dict(params), weight=float(weight),
                   lists=tuple(dict.fromkeys(lists)), k=k)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "path": self.path, "name": self.name, "params": self.params,
                "weight": self.weight, "lists": list(self.lists), "k": self.k}


def plugins_from_list(data: Any) -> tuple[PluginSpec, ...]:
    if not isinstance(data, (list, tuple)):
        raise ValueError("plugins must be a list of objects like {\"role\": \"scorer\", \"path\": \"pkg.mod:Class\"}")
    specs = tuple(s if isinstance(s, PluginSpec) else PluginSpec.from_dict(s, i) for i, s in enumerate(data))
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"plugins: name(s) {', '.join(twice)} used twice; give each plugin its own name")
    return specs


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
    # bring-your-own models, fitted after newsrec's own (recommender.models.plugins)
    plugins: tuple[PluginSpec, ...] = ()

    def __post_init__(self) -> None:
        # the JSON shape is accepted too (``TrainParams(plugins=[{"role": ..., "path": ...}])``), checked once here
        if not (isinstance(self.plugins, tuple) and all(isinstance(p, PluginSpec) for p in self.plugins)):
            object.__setattr__(self, "plugins", plugins_from_list(self.plugins))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["plugins"] = [p.to_dict() for p in self.plugins]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainParams":
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
        _check_numbers(cls, data)
        weights = data.pop("weights", {})
        if isinstance(weights, dict):
            _check_numbers(EventWeights, weights, "weights.")
            for name in ("impression", "click", "read", "share"):
                if weights.get(name, 0) < 0:  # implicit refuses a negative weight mid-training
                    raise ValueError(f"weights.{name} must be 0 or more, got {weights[name]!r}")
        weights = EventWeights(**weights)
        ranking = check_ranking(ranking_from_dict(data.pop("ranking", {})))
        plugins = plugins_from_list(data.pop("plugins", []))
        return cls(weights=weights, ranking=ranking, plugins=plugins, **data)

    @classmethod
    def load(cls, path: str | Path) -> "TrainParams":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    def with_overrides(self, **changes: Any) -> "TrainParams":
        return replace(self, **changes)


def _check_numbers(cls, data: dict[str, Any], prefix: str = "") -> None:
    """ValueError naming a number of a training config (top level, weights) that is not one: a string, null,
    8.5 factors or 0 of them reached numpy or implicit and ended ``newsrec train`` in a traceback."""
    for f in fields(cls):
        value = data.get(f.name)
        if f.name not in data or f.name in ("weights", "ranking", "plugins") or "str" in str(f.type) \
                or (value is None and "None" in str(f.type)):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{prefix}{f.name} must be a finite number, got {value!r}")
        least = 1 if f.name == "factors" else 0
        if "int" in str(f.type):
            if value != int(value) or value < least:
                raise ValueError(f"{prefix}{f.name} must be a whole number of at least {least}, got {value!r}")
            data[f.name] = int(value)  # 10.0 (as JSON may write it) would reach numpy as a float shape


def check_ranking(ranking: RankingParams) -> RankingParams:
    """``ranking`` if its numbers are in range, else ValueError naming the field. Checked where
    parameters come in (a training config, an experiment's variant), not when a bundle or a stored
    experiment is loaded, so what was accepted before keeps loading.

    Why: ages are divided by the half-lives, and 0 made every score NaN (served as ``"score":
    null``, in no order); a weight of 1e308 overflowed the blend the same way; a story cap below 1
    let nothing through but the fill-up, so the cap was silently off."""
    for f in fields(RankingParams):
        value = getattr(ranking, f.name)
        if f.name == "diversity" or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > MAX_PARAMETER:
            raise ValueError(f"{f.name} must be a finite number of at most {MAX_PARAMETER:g} in size, got {value!r}")
    for name in POSITIVE_PARAMETERS:
        if not getattr(ranking, name) > 0:
            raise ValueError(f"{name} must be above 0, got {getattr(ranking, name)!r}")
    for name in ("fatigue_impressions", "ctr_prior_strength"):
        if getattr(ranking, name) < 0:
            raise ValueError(f"{name} must be 0 or more, got {getattr(ranking, name)!r}")
    if not 0 < ranking.feed_max_category_share <= 1:
        raise ValueError(f"feed_max_category_share must be above 0 and at most 1, got {ranking.feed_max_category_share!r}")
    return ranking


def ranking_from_dict(data: dict[str, Any]) -> RankingParams:
    known = {f.name for f in fields(RankingParams)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown ranking parameter(s): {', '.join(sorted(unknown))}")
    return RankingParams(**data)
