"""Exploration: a known share of feeds drawn at random from the best candidates, so that a
candidate ranker can later be judged off-policy from the served log.

Epsilon-greedy at the list level, seeded per list: with probability ``epsilon`` the list is a
uniformly random ordered draw of its size from the ``pool`` best candidates by score, otherwise
the greedy (scored, diversified) list. Whole lists rather than single slots, because then the
probability that an item is shown at a slot has a closed form every slot shares:

    P(item a at slot k) = (1 - epsilon) * [greedy[k] == a] + epsilon / |pool|

for every ``a`` in the pool and every slot (a uniform random ordered draw puts each pool item at
each slot with probability 1 / |pool|). That marginal probability is what an item-position IPS
estimator needs (:mod:`recommender.evaluation.offpolicy`), and every candidate ordering of the
pool has support at every slot. Per-slot draws would make it depend on what earlier slots drew.
"""

from __future__ import annotations

import numpy as np

from recommender import arrays
from recommender.models.neighbours import top_k


def list_seed(list_id: str) -> int:
    """The per-list seed: the list id's hex digits (``l`` + 16 hex), else a hash of the id."""
    body = list_id[1:] if list_id[:1] == "l" else list_id
    try:
        return int(body[:16], 16)
    except ValueError:
        import hashlib

        return int.from_bytes(hashlib.blake2b(list_id.encode("utf-8"), digest_size=8).digest(), "little")


def explore(greedy: np.ndarray, scores: np.ndarray, epsilon: float, pool: int, seed: int
            ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Draw the list to show and each shown item's selection probability at its slot.

    Parameters
    ----------
    greedy : ndarray of int64, shape (n,)
        The greedy list: rows into ``scores``, in list order.
    scores : ndarray of float, shape (m,)
        Every candidate's score; the pool is the ``pool`` best of them plus the greedy list.
    epsilon : float in [0, 1]
    seed : int
        The list's seed (:func:`list_seed`): the same seed gives the same list.

    Returns
    -------
    shown : ndarray of int64, shape (n,)
        Rows into ``scores`` in list order.
    propensity : ndarray of float64, shape (n,)
        P(that item at that slot), as in the module docstring.
    explored : bool
        Whether this list was the random draw.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    greedy = np.asarray(greedy, dtype=np.int64)
    n = greedy.size
    candidates = pool_of(greedy, scores, pool)
    rng = np.random.default_rng(seed)
    explored = bool(n and rng.random() < epsilon)
    shown = rng.permutation(candidates)[:n] if explored else greedy
    propensity = (1.0 - epsilon) * (shown == greedy) + epsilon / max(candidates.size, 1)
    return shown, propensity, explored


def pool_of(greedy: np.ndarray, scores: np.ndarray, pool: int) -> np.ndarray:
    """The rows an explored list draws from: the ``pool`` best by score and the greedy list, sorted."""
    best = top_k(np.asarray(scores, dtype=np.float64), min(max(pool, 0), len(scores))) if len(scores) else greedy
    return arrays.union1d(np.asarray(best, dtype=np.int64), np.asarray(greedy, dtype=np.int64))
