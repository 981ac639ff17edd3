"""Set operations on the integer arrays a list is built from (catalog indices, store keys, codes).

numpy 2.3 and later answer ``np.unique`` of integers (without ``return_*``) with a hash table
followed by a sort, and ``np.isin`` through ``np.unique``: at the tens to thousands of values of
one feed, that is 3-4x the time of one sort (300 values: 18 us instead of 4; numpy PR 30496),
~0.3 ms of every feed. These give numpy's answers, by sorting, for integer arrays, and hand
anything else to numpy itself.

A heavy reader's read set is tens of thousands of keys that arrive sorted and distinct (the
store's read-set row) and meet a few more: for those (``SORTED_CHECK`` values or more) a check
that they are in order, and a merge of the few, instead of a sort (40,000 keys: 0.22 -> 0.03 ms).
"""

from __future__ import annotations

import numpy as np

__all__ = ["isin", "union1d", "unique", "unique_inverse"]


SORTED_CHECK = 2048  # below, a sort costs about what the check does


def _ints(*arrays: np.ndarray) -> bool:
    return all(a.dtype.kind in "iu" for a in arrays) and np.result_type(*arrays).kind in "iu"


def _sorted_distinct(a: np.ndarray) -> bool:
    """Whether a 1-d array of at least ``SORTED_CHECK`` values is strictly increasing."""
    return a.ndim == 1 and a.size >= SORTED_CHECK and bool(np.all(a[1:] > a[:-1]))


def unique(values) -> np.ndarray:
    """Sorted distinct values, as ``np.unique(values)`` (flattened)."""
    a = np.asarray(values)
    if not _ints(a):
        return np.unique(a)
    if _sorted_distinct(a):
        return a.copy()
    s = np.sort(a, axis=None)
    if s.size < 2:
        return s
    first = np.empty(s.size, dtype=bool)
    first[0] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    return s[first]


def unique_inverse(values) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and each value's position among them, as ``np.unique(values,
    return_inverse=True)`` of a 1-d array. Small non-negative-range codes (categories, regions)
    go through a table instead of a sort."""
    a = np.asarray(values)
    if not _ints(a) or a.ndim != 1 or a.size == 0:
        return np.unique(a, return_inverse=True)
    lo, hi = int(a.min()), int(a.max())
    if hi - lo > 4 * a.size + 64:
        return np.unique(a, return_inverse=True)
    shifted = a.astype(np.intp, copy=False) - lo if lo else a
    present = np.bincount(shifted, minlength=hi - lo + 1) > 0
    rank = np.cumsum(present) - 1
    return (np.flatnonzero(present) + lo).astype(a.dtype), rank[shifted].astype(np.intp)


def union1d(a, b) -> np.ndarray:
    """Sorted distinct values of both, as ``np.union1d(a, b)``."""
    a, b = np.asarray(a), np.asarray(b)
    if not _ints(a, b):
        return np.union1d(a, b)
    if b.size > a.size:
        a, b = b, a
    if b.size * 8 <= a.size and _sorted_distinct(a):  # a few values merged into many in order
        dtype = np.result_type(a, b)
        a = a.astype(dtype, copy=False)
        extra = unique(b).astype(dtype, copy=False)
        at = np.searchsorted(a, extra)
        new = a[np.minimum(at, a.size - 1)] != extra
        return np.insert(a, at[new], extra[new])
    return unique(np.concatenate((a.ravel(), b.ravel())))


def isin(element, test) -> np.ndarray:
    """Whether each of ``element`` is in ``test`` (bool, shape of ``element``), as ``np.isin``."""
    a, b = np.asarray(element), np.asarray(test)
    if not _ints(a, b):
        return np.isin(a, b)
    if a.size == 0 or b.size == 0:
        return np.zeros(a.shape, dtype=bool)
    s = np.sort(b, axis=None)
    at = np.minimum(np.searchsorted(s, a), s.size - 1)
    return s[at] == a
