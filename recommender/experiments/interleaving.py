"""Team-draft interleaving (Radlinski, Kurup & Joachims, CIKM 2008).

Two rankings are merged into one list the way captains pick teams: in each round a coin says
which variant picks first, and each then adds its best item not yet in the list. Every item is
credited to the variant that picked it, so a click is a vote for that variant; whichever gets
more clicks in a list wins it. Both variants are judged on the same reader in the same moment,
which is why it needs far less traffic than an A/B split (``benchmarks/experiments.py``).
"""

from __future__ import annotations

import hashlib
from typing import Hashable, Sequence

import numpy as np


def team_draft(a: Sequence[Hashable], b: Sequence[Hashable], k: int, rng: np.random.Generator
               ) -> tuple[list[Hashable], list[int]]:
    """Merge rankings ``a`` and ``b`` into at most ``k`` distinct items.

    Returns ``(items, teams)``: ``teams[i]`` is 0 when ``a`` contributed ``items[i]``, 1 for ``b``.
    When one ranking runs out, the other keeps picking.
    """
    items: list[Hashable] = []
    teams: list[int] = []
    taken: set[Hashable] = set()
    rankings = (list(a), list(b))
    pointer = [0, 0]
    count = [0, 0]

    def next_free(team: int) -> Hashable | None:
        ranking = rankings[team]
        while pointer[team] < len(ranking) and ranking[pointer[team]] in taken:
            pointer[team] += 1
        return ranking[pointer[team]] if pointer[team] < len(ranking) else None

    while len(items) < k:
        if count[0] != count[1]:
            team = 0 if count[0] < count[1] else 1
        else:
            team = int(rng.random() < 0.5)
        item = next_free(team)
        if item is None:
            team = 1 - team
            item = next_free(team)
            if item is None:
                break
        items.append(item)
        teams.append(team)
        taken.add(item)
        count[team] += 1
    return items, teams


def list_rng(list_id: str) -> np.random.Generator:
    """The coin of one list, seeded from its id: the merge can be replayed from the log."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(list_id.encode("utf-8")).digest()[:8], "big"))


def team_draft_batch(a: np.ndarray, b: np.ndarray, k: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`team_draft` for many lists at once (simulations).

    Parameters
    ----------
    a, b : ndarray of int, shape (n, p)
        Each row a permutation of the columns ``0..p-1`` (one candidate pool per list).
    k : int
        Length of the merged lists (at most ``p``).

    Returns
    -------
    items : ndarray of int64, shape (n, k)
        Column indices of the merged lists.
    teams : ndarray of int8, shape (n, k)
        0 where ``a`` picked the item, 1 where ``b`` did.
    """
    n, p = a.shape
    k = min(k, p)
    rows = np.arange(n)
    taken = np.zeros((n, p), dtype=bool)
    pointer = np.zeros((2, n), dtype=np.int64)
    count = np.zeros((2, n), dtype=np.int64)
    rankings = (np.asarray(a), np.asarray(b))
    items = np.empty((n, k), dtype=np.int64)
    teams = np.empty((n, k), dtype=np.int8)
    for i in range(k):
        coin = rng.random(n) < 0.5
        team = np.where(count[0] == count[1], coin, count[1] < count[0]).astype(np.int64)
        for t in (0, 1):
            mine = team == t
            while True:  # move each picker's pointer past items already in its list
                idx = np.flatnonzero(mine)
                used = taken[idx, rankings[t][idx, pointer[t, idx]]]
                if not used.any():
                    break
                pointer[t, idx[used]] += 1
        pick = np.where(team == 0, a[rows, pointer[0]], b[rows, pointer[1]])
        taken[rows, pick] = True
        items[:, i], teams[:, i] = pick, team
        count[team, rows] += 1
        pointer[team, rows] += 1
        np.minimum(pointer, p - 1, out=pointer)
    return items, teams


def credit(teams: Sequence[int], clicked_positions: Sequence[int], offset: int = 0) -> tuple[int, int]:
    """Clicks of one interleaved list credited to each team: ``(a_clicks, b_clicks)``.

    ``clicked_positions`` are list positions (``offset`` is the first item's); each counts once.
    """
    votes = [0, 0]
    for position in set(clicked_positions):
        k = position - offset
        if 0 <= k < len(teams):
            votes[teams[k]] += 1
    return votes[0], votes[1]
