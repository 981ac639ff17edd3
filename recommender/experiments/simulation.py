"""Experiments without real traffic: synthetic readers with hidden tastes click under a
position-biased click model, on lists ranked by two policies, assigned and counted by the same
code as live experiments (``assignment``, ``interleaving``, ``stats``).

The readers' hidden category tastes come from the synthetic sample generator
(:func:`recommender.datasets.synthetic.generate`, its ``truth`` rows). A policy ranks a session's
candidate pool by ``personalization * log(affinity) + log(quality)`` plus Gumbel noise, so a policy
with more personalization shows each reader more of what they like: it is *truly* better, by an
amount the simulation knows. Everything is vectorized over sessions; one A/B run of 2,000 readers
takes a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.domain import CATEGORIES

from . import stats
from .assignment import assign_many
from .definition import Experiment, Variant
from .interleaving import team_draft_batch

AFFINITY_FLOOR = 0.3  # as the sample generator: affinity = floor + (1 - floor) * n_categories * taste


@dataclass(frozen=True)
class Readers:
    """Hidden tastes of synthetic readers.

    Attributes
    ----------
    ids : list of str, length n
    affinity : ndarray, shape (n, n_categories)
        How much more likely than average a reader clicks an article of each category.
    clickiness : ndarray, shape (n,)
    """

    ids: list[str]
    affinity: np.ndarray
    clickiness: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> "Readers":
        return Readers([self.ids[i] for i in index], self.affinity[index], self.clickiness[index])


def synthetic_readers(n: int, seed: int = 0) -> Readers:
    """``n`` readers with the sample generator's hidden category tastes (no events generated)."""
    from recommender.datasets.synthetic import generate

    truth = generate(n_articles=len(CATEGORIES), n_users=n, days=1, seed=seed, sessions_per_day=0).truth
    users = [t for t in truth if t["kind"] == "user"]
    tastes = np.array([[u["categories"][c] for c in CATEGORIES] for u in users], dtype=np.float64)
    tastes /= tastes.sum(axis=1, keepdims=True)
    affinity = AFFINITY_FLOOR + (1 - AFFINITY_FLOOR) * len(CATEGORIES) * tastes
    clickiness = np.random.default_rng(seed).lognormal(0.0, 0.35, size=n)
    return Readers([u["user_id"] for u in users], affinity, clickiness)


@dataclass(frozen=True)
class ClickModel:
    """Position-biased clicks: P(click at position k) = examine(k) * attractiveness.

    ``examine(k) = (k + 1) ** -position_power`` (k from 0); attractiveness is
    ``base * clickiness * affinity * quality``, capped at 1.
    """

    base: float = 0.12
    position_power: float = 0.8
    list_size: int = 10
    pool_size: int = 30
    n_articles: int = 300
    sessions_mean: float = 3.0  # sessions per reader: 1 + Poisson(sessions_mean - 1)

    def examine(self) -> np.ndarray:
        return (np.arange(self.list_size) + 1.0) ** -self.position_power


@dataclass(frozen=True)
class Traffic:
    """Sessions of one simulated experiment: who, what pool, and the click model's truth."""

    reader: np.ndarray      # (S,) reader index per session
    pool: np.ndarray        # (S, P) article index per candidate
    attract: np.ndarray     # (S, P) attractiveness of each candidate to the session's reader
    log_affinity: np.ndarray  # (S, P)
    log_quality: np.ndarray   # (S, P)


def traffic(readers: Readers, model: ClickModel, rng: np.random.Generator) -> Traffic:
    n = len(readers)
    sessions = 1 + rng.poisson(max(model.sessions_mean - 1.0, 0.0), size=n)
    reader = np.repeat(np.arange(n), sessions)
    s = reader.size
    category = rng.integers(0, len(CATEGORIES), size=model.n_articles)
    quality = rng.lognormal(0.0, 0.5, size=model.n_articles)
    quality /= quality.mean()
    # each session's pool: a window of a shuffled catalog at a random start (distinct articles, no sort)
    order = rng.permutation(model.n_articles)
    pool = order[(rng.integers(0, model.n_articles, size=s)[:, None] + np.arange(model.pool_size)) % model.n_articles]
    affinity = readers.affinity[reader[:, None], category[pool]]
    attract = np.minimum(1.0, model.base * readers.clickiness[reader, None] * affinity * quality[pool])
    return Traffic(reader, pool, attract, np.log(affinity), np.log(quality[pool]))


def rank(t: Traffic, personalization: np.ndarray | float, rng: np.random.Generator, noise: float = 1.0) -> np.ndarray:
    """Each session's pool ranked by a policy, shape (S, P) column indices, best first."""
    personalization = np.asarray(personalization, dtype=np.float64)
    if personalization.ndim == 1:
        personalization = personalization[:, None]
    score = personalization * t.log_affinity + t.log_quality + noise * rng.gumbel(size=t.attract.shape)
    return np.argsort(-score, axis=1)


def clicks(t: Traffic, shown: np.ndarray, model: ClickModel, rng: np.random.Generator) -> np.ndarray:
    """Clicks (bool, shape (S, k)) on the columns ``shown`` (S, k) under the position-biased model."""
    p = np.take_along_axis(t.attract, shown, axis=1) * model.examine()[: shown.shape[1]]
    return rng.random(p.shape) < p


def _experiment(seed: int, mode: str = "ab", shares: tuple[int, int] = (50, 50)) -> Experiment:
    return Experiment(name=f"sim{seed}", variants=(Variant("A", "sim-a"), Variant("B", "sim-b")), shares=shares,
                      mode=mode, salt=f"simulation-{seed}")


@dataclass(frozen=True)
class ABResult:
    ctr: tuple[float, float]
    difference: float
    difference_ci: tuple[float, float]
    srm_p: float
    readers: tuple[int, int]
    lists: tuple[int, int]


def run_ab(readers: Readers, personalization: tuple[float, float], model: ClickModel, seed: int,
           shares: tuple[int, int] = (50, 50)) -> ABResult:
    """One A/B experiment: readers split by the live assignment code, each sees one policy."""
    rng = np.random.default_rng(seed)
    variant = assign_many(_experiment(seed, "ab", shares), readers.ids)
    t = traffic(readers, model, rng)
    ranked = rank(t, np.asarray(personalization)[variant[t.reader]], rng)[:, : model.list_size]
    clicked = clicks(t, ranked, model, rng)
    per_session = clicked.sum(axis=1)
    n = len(readers)
    c = np.bincount(t.reader, weights=per_session, minlength=n)
    imp = np.bincount(t.reader, minlength=n) * float(model.list_size)
    est, ctrs = [], []
    for v in (0, 1):
        mine = variant == v
        ctr, var = stats.ratio(c[mine], imp[mine])
        est.append((ctr, var))
        ctrs.append(ctr)
    diff, ci = stats.difference(est[0], est[1])
    counts = np.bincount(variant, minlength=2)
    lists = np.bincount(variant[t.reader], minlength=2)
    return ABResult((ctrs[0], ctrs[1]), diff, ci, stats.srm_p(counts, shares), (int(counts[0]), int(counts[1])),
                    (int(lists[0]), int(lists[1])))


@dataclass(frozen=True)
class InterleavingResult:
    wins: tuple[int, int, int]  # A, B, ties
    share: float                # share of decided lists that B won
    share_ci: tuple[float, float]
    lists: int


def run_interleaving(readers: Readers, personalization: tuple[float, float], model: ClickModel,
                     seed: int) -> InterleavingResult:
    """One interleaving experiment: every session sees both policies team-drafted into one list."""
    rng = np.random.default_rng(seed)
    t = traffic(readers, model, rng)
    a = rank(t, personalization[0], rng)
    b = rank(t, personalization[1], rng)
    shown, teams = team_draft_batch(a, b, model.list_size, rng)
    clicked = clicks(t, shown, model, rng)
    votes_b = (clicked & (teams == 1)).sum(axis=1)
    votes_a = (clicked & (teams == 0)).sum(axis=1)
    wins = (int((votes_a > votes_b).sum()), int((votes_b > votes_a).sum()), int((votes_a == votes_b).sum()))
    share, ci = stats.win_share(wins[0], wins[1])
    return InterleavingResult(wins, share, ci, int(t.reader.size))


def detected_ab(result: ABResult) -> bool:
    return stats.excludes_zero(result.difference_ci)


def detected_interleaving(result: InterleavingResult) -> bool:
    lo, hi = result.share_ci
    return stats.excludes_zero((lo - 0.5, hi - 0.5))
