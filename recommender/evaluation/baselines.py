"""Baseline scorers that newsrec is compared with in every evaluation run.

Each baseline is a small estimator over one integer index space of articles and readers
(built by :mod:`recommender.evaluation`): ``fit`` sees only events before the evaluation
cut, ``score`` ranks a list of candidate articles for a reader at a moment, ``related``
ranks candidates for an anchor article, and ``partial_fit`` feeds events of the test
period in time order during an online replay. Only baselines marked ``online`` learn from
``partial_fit``; the others are frozen at the cut, as a nightly batch model would be.

The reader's own positive events before the moment (``history``) are passed in by the
caller, so every baseline sees the same reader information as newsrec.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from recommender.domain import EVENT_CODES
from recommender.models.coread import CoReading

log = logging.getLogger(__name__)

__all__ = [
    "BASELINES",
    "ALSScorer",
    "CoReadScorer",
    "ContentScorer",
    "CtrPopularScorer",
    "Events",
    "FitData",
    "OnlineCtrScorer",
    "PopularScorer",
    "RandomScorer",
    "RecentPopularScorer",
    "Scorer",
    "make_baselines",
]

HOUR = 3600.0
CLICK = EVENT_CODES["click"]
IMPRESSION = EVENT_CODES["impression"]
POSITIVE_CODES = np.array([EVENT_CODES["click"], EVENT_CODES["read"], EVENT_CODES["share"]], dtype=np.int8)


@dataclass(frozen=True)
class Events:
    """Events as parallel arrays in the evaluation's index space, sorted by time.

    Attributes
    ----------
    user, item : ndarray of int64, shape (n,)
        Reader and article indices (``item`` is -1 for an article outside the catalog).
    event : ndarray of int8, shape (n,)
        Codes into :data:`recommender.domain.EVENT_TYPES`.
    ts : ndarray of float64, shape (n,)
        Epoch seconds.
    dwell : ndarray of float32, shape (n,)
        Dwell seconds, NaN when not given.
    history : ndarray of bool, shape (n,)
        Clicks imported from a history without a real time.
    """

    user: np.ndarray
    item: np.ndarray
    event: np.ndarray
    ts: np.ndarray
    dwell: np.ndarray
    history: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def take(self, index: np.ndarray | slice) -> "Events":
        return Events(self.user[index], self.item[index], self.event[index], self.ts[index], self.dwell[index],
                      self.history[index])

    @property
    def positive(self) -> np.ndarray:
        """Mask of clicks, reads and shares, shape (n,)."""
        return np.isin(self.event, POSITIVE_CODES)

    @classmethod
    def empty(cls) -> "Events":
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), np.zeros(0, dtype=np.int8), np.zeros(0), np.zeros(0, dtype=np.float32),
                   np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class FitData:
    """What a baseline may learn from: events strictly before the cut, and article text.

    Attributes
    ----------
    n_users, n_items : int
        Sizes of the index spaces (test-period readers and articles included).
    events : Events
        Training events only (``ts < cut``).
    cut : float
        The evaluation cut, epoch seconds.
    text : csr_matrix or ndarray of shape (n_items, n_features), optional
        L2-normalized article text vectors (zero rows for articles without text). Text of
        a test-period article may be used: it is known when the article is published.
    """

    n_users: int
    n_items: int
    events: Events
    cut: float
    text: sp.csr_matrix | np.ndarray | None = None


class Scorer(BaseEstimator):
    """Interface shared by the baselines (and the newsrec adapter in :mod:`recommender.evaluation`)."""

    name: ClassVar[str] = "scorer"
    online: ClassVar[bool] = False
    needs_events: ClassVar[bool] = True  # useless without interactions (e.g. a text-only corpus)
    needs_text: ClassVar[bool] = False

    def fit(self, data: FitData) -> "Scorer":
        self.n_items_ = data.n_items
        return self

    def partial_fit(self, events: Events) -> "Scorer":
        """Learn from test-period events replayed before the next moment (online baselines only)."""
        return self

    def score(self, user: int, items: np.ndarray, now: float, history: np.ndarray) -> np.ndarray:
        """Scores of candidate ``items`` (shape (m,)) for reader ``user`` at ``now``; higher is better.

        ``history`` holds the item indices of the reader's positive events before ``now``.
        """
        raise NotImplementedError(f"{self.name} cannot rank a reader's candidates")

    def related(self, anchor: int, items: np.ndarray, now: float) -> np.ndarray:
        """Scores of candidate ``items`` (shape (m,)) as related articles of ``anchor``."""
        raise NotImplementedError(f"{self.name} cannot rank related articles")


class RandomScorer(Scorer):
    """Uniform random scores: the floor every model must clear."""

    name = "random"
    needs_events = False

    def __init__(self, random_state: int | None = 0):
        self.random_state = random_state

    def fit(self, data: FitData) -> "RandomScorer":
        super().fit(data)
        self.rng_ = np.random.default_rng(self.random_state)
        return self

    def score(self, user, items, now, history):
        check_is_fitted(self, "rng_")
        return self.rng_.random(len(items))

    def related(self, anchor, items, now):
        check_is_fitted(self, "rng_")
        return self.rng_.random(len(items))


class PopularScorer(Scorer):
    """Most popular: count of positive events per article (online: every event seen so far)."""

    name = "popular"
    online = True

    def fit(self, data: FitData) -> "PopularScorer":
        super().fit(data)
        ev = data.events
        keep = ev.positive & (ev.item >= 0)
        self.counts_ = np.bincount(ev.item[keep], minlength=data.n_items).astype(np.float64)
        return self

    def partial_fit(self, events: Events) -> "PopularScorer":
        check_is_fitted(self, "counts_")
        keep = events.positive & (events.item >= 0)
        np.add.at(self.counts_, events.item[keep], 1.0)
        return self

    def score(self, user, items, now, history):
        check_is_fitted(self, "counts_")
        return self.counts_[items]

    def related(self, anchor, items, now):
        return self.score(-1, items, now, None)


class RecentPopularScorer(Scorer):
    """Time-decayed popularity: positive events weighted ``2 ** (-age / half_life)``.

    Values are kept relative to a reference time (``ref_``) and rebased when it moves far,
    so scores never overflow; the ranking at ``now`` is the same for every reference.
    """

    name = "recent_popular"
    online = True

    def __init__(self, half_life_hours: float = 24.0):
        self.half_life_hours = half_life_hours

    def _weights(self, ts: np.ndarray) -> np.ndarray:
        return np.exp2((ts - self.ref_) / (self.half_life_hours * HOUR))

    def fit(self, data: FitData) -> "RecentPopularScorer":
        if not self.half_life_hours > 0:
            raise ValueError(f"half_life_hours must be > 0, got {self.half_life_hours}")
        super().fit(data)
        self.ref_ = float(data.cut)
        ev = data.events
        keep = ev.positive & (ev.item >= 0)
        self.values_ = np.bincount(ev.item[keep], weights=self._weights(ev.ts[keep]),
                                   minlength=data.n_items).astype(np.float64)
        return self

    def partial_fit(self, events: Events) -> "RecentPopularScorer":
        check_is_fitted(self, "values_")
        keep = events.positive & (events.item >= 0)
        if not keep.any():
            return self
        newest = float(events.ts[keep].max())
        if newest - self.ref_ > 10 * self.half_life_hours * HOUR:
            self.values_ *= np.exp2(-(newest - self.ref_) / (self.half_life_hours * HOUR))
            self.ref_ = newest
        np.add.at(self.values_, events.item[keep], self._weights(events.ts[keep]))
        return self

    def score(self, user, items, now, history):
        check_is_fitted(self, "values_")
        return self.values_[items]

    def related(self, anchor, items, now):
        return self.score(-1, items, now, None)


class CtrPopularScorer(Scorer):
    """Click-through smoothed towards the site's: ``(clicks + a p) / (max(impressions, clicks) + a)``.

    Frozen at the cut (a batch estimate); :class:`OnlineCtrScorer` is its live twin. Clicks
    imported from a history (no impression, no time) are left out: they would make every
    article read before the log look clicked whenever shown.
    """

    name = "ctr_popular"

    def __init__(self, prior_strength: float = 20.0):
        self.prior_strength = prior_strength

    def fit(self, data: FitData) -> "CtrPopularScorer":
        if not self.prior_strength > 0:
            raise ValueError(f"prior_strength must be > 0, got {self.prior_strength}")
        super().fit(data)
        ev = data.events
        ok = (ev.item >= 0) & ~ev.history  # a history click was never shown in a logged impression
        self.clicks_ = np.bincount(ev.item[ok & (ev.event == CLICK)], minlength=data.n_items).astype(np.float64)
        self.shown_ = np.bincount(ev.item[ok & (ev.event == IMPRESSION)], minlength=data.n_items).astype(np.float64)
        return self

    def _prior(self) -> float:
        shown = float(self.shown_.sum())
        return float(self.clicks_.sum() / shown) if shown > 0 else 0.05

    def score(self, user, items, now, history):
        check_is_fitted(self, "clicks_")
        a, p = self.prior_strength, self._prior()
        clicks, shown = self.clicks_[items], self.shown_[items]
        return (clicks + a * p) / (np.maximum(shown, clicks) + a)

    def related(self, anchor, items, now):
        return self.score(-1, items, now, None)


class OnlineCtrScorer(CtrPopularScorer):
    """Smoothed click-through updated online from every impression and click replayed so far."""

    name = "online_ctr"
    online = True

    def partial_fit(self, events: Events) -> "OnlineCtrScorer":
        check_is_fitted(self, "clicks_")
        ok = (events.item >= 0) & ~events.history
        np.add.at(self.clicks_, events.item[ok & (events.event == CLICK)], 1.0)
        np.add.at(self.shown_, events.item[ok & (events.event == IMPRESSION)], 1.0)
        return self


class ContentScorer(Scorer):
    """Content only: cosine between a candidate's text and the sum of the reader's articles."""

    name = "content"
    needs_events = False
    needs_text = True

    def fit(self, data: FitData) -> "ContentScorer":
        if data.text is None:
            raise ValueError("ContentScorer needs FitData.text (article text vectors).")
        super().fit(data)
        self.text_ = sp.csr_matrix(data.text, dtype=np.float32) if sp.issparse(data.text) else np.asarray(
            data.text, dtype=np.float32)
        return self

    def score(self, user, items, now, history):
        check_is_fitted(self, "text_")
        if history is None or len(history) == 0:
            return np.zeros(len(items))
        profile = self.text_[np.unique(history)].sum(axis=0)
        profile = np.asarray(profile, dtype=np.float64).ravel()
        return np.asarray(self.text_[items] @ profile, dtype=np.float64).ravel()

    def related(self, anchor, items, now):
        check_is_fitted(self, "text_")
        a = self.text_[[anchor]]
        sims = self.text_[items] @ a.T
        return np.asarray(sims.toarray() if sp.issparse(sims) else sims, dtype=np.float64).ravel()


class ALSScorer(Scorer):
    """Plain ``implicit`` ALS with its default settings on the pre-cut reader x article counts.

    Not folded in online and no fallback for unseen articles (they score 0): the classic
    collaborative filtering baseline.
    """

    name = "als"

    def __init__(self, random_state: int | None = 0):
        self.random_state = random_state

    def fit(self, data: FitData) -> "ALSScorer":
        super().fit(data)
        from implicit.als import AlternatingLeastSquares

        ev = data.events
        keep = ev.positive & (ev.item >= 0)
        matrix = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (ev.user[keep], ev.item[keep])),
                               shape=(data.n_users, data.n_items))
        matrix.sum_duplicates()
        self.user_factors_ = np.zeros((data.n_users, 1), dtype=np.float32)
        self.item_factors_ = np.zeros((data.n_items, 1), dtype=np.float32)
        if matrix.nnz == 0:
            return self
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(random_state=self.random_state)
            if hasattr(model, "to_cpu") and type(model).__module__.startswith("implicit.gpu"):
                model = model.to_cpu()  # pragma: no cover - no GPU in CI
            model.fit(matrix, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def score(self, user, items, now, history):
        check_is_fitted(self, "user_factors_")
        if user < 0 or user >= self.user_factors_.shape[0]:
            return np.zeros(len(items))
        return (self.item_factors_[items] @ self.user_factors_[user]).astype(np.float64)

    def related(self, anchor, items, now):
        check_is_fitted(self, "item_factors_")
        Y = self.item_factors_
        norms = np.maximum(np.linalg.norm(Y[items], axis=1) * np.linalg.norm(Y[anchor]), 1e-12)
        return (Y[items] @ Y[anchor] / norms).astype(np.float64)


class CoReadScorer(Scorer):
    """Co-reading only: how often candidates were read in the same session as the reader's articles."""

    name = "coread"

    def __init__(self, session_gap_minutes: float = 30.0, half_life_days: float | None = 7.0):
        self.session_gap_minutes = session_gap_minutes
        self.half_life_days = half_life_days

    def fit(self, data: FitData) -> "CoReadScorer":
        super().fit(data)
        ev = data.events
        keep = ev.positive & (ev.item >= 0)
        model = CoReading(session_gap_minutes=self.session_gap_minutes, half_life_days=self.half_life_days, k=1)
        model.fit(ev.user[keep], ev.item[keep], ev.ts[keep], data.n_items, now=data.cut)
        self.matrix_ = model.matrix_.tocsr()
        return self

    def score(self, user, items, now, history):
        check_is_fitted(self, "matrix_")
        if history is None or len(history) == 0:
            return np.zeros(len(items))
        rows = self.matrix_[np.unique(history)]
        return np.asarray(rows[:, items].sum(axis=0), dtype=np.float64).ravel()

    def related(self, anchor, items, now):
        check_is_fitted(self, "matrix_")
        return np.asarray(self.matrix_[[anchor]][:, items].toarray(), dtype=np.float64).ravel()


BASELINES: dict[str, type[Scorer]] = {
    cls.name: cls
    for cls in (RandomScorer, PopularScorer, RecentPopularScorer, CtrPopularScorer, OnlineCtrScorer,
                ContentScorer, ALSScorer, CoReadScorer)
}
"""Name -> class of every baseline, in report order."""


def make_baselines(names: list[str] | None = None, random_state: int | None = 0) -> list[Scorer]:
    """Fresh (unfitted) baselines by name (default: all), seeded where they draw randomness."""
    names = list(BASELINES) if names is None else names
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {sorted(BASELINES)}")
    out = []
    for name in names:
        cls = BASELINES[name]
        out.append(cls(random_state=random_state) if "random_state" in cls._get_param_names() else cls())
    return out
