"""recommender.arrays gives numpy's own answers (it only takes a faster road to them)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import arrays

DTYPES = [np.int64, np.int32, np.int8, np.uint8, np.intp]


@pytest.mark.parametrize("seed", range(5))
def test_unique_union_and_isin_equal_numpys_on_random_integer_arrays(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n, m = rng.integers(0, 40, 2)
        a = rng.integers(0, 60, n).astype(DTYPES[rng.integers(len(DTYPES))])
        b = rng.integers(0, 60, m).astype(DTYPES[rng.integers(len(DTYPES))])
        if rng.random() < 0.2 and n:
            a = a.reshape(-1, 1)  # isin keeps the shape, unique and union flatten
        for ours, theirs in ((arrays.unique(a), np.unique(a)), (arrays.union1d(a, b), np.union1d(a, b)),
                             (arrays.isin(a, b), np.isin(a, b))):
            assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
            assert np.array_equal(ours, theirs)
        # codes (small, maybe from -1), or values far apart; in the dtype of a where they fit
        spread = a.ravel().astype(np.int64) * int(rng.choice([1, 1, 1000])) - int(rng.integers(0, 3))
        if a.dtype.kind == "i" and np.can_cast(np.min_scalar_type(spread.min(initial=0)), a.dtype) and np.can_cast(
                np.min_scalar_type(spread.max(initial=0)), a.dtype):
            spread = spread.astype(a.dtype)
        for got, want in zip(arrays.unique_inverse(spread), np.unique(spread, return_inverse=True)):
            assert got.shape == want.shape and got.dtype == want.dtype, (got, want)
            assert np.array_equal(got, want)


def test_edges_and_other_types_are_numpys():
    assert arrays.unique(np.zeros(0, np.int64)).tolist() == [] and arrays.unique([3, 1, 3]).tolist() == [1, 3]
    assert arrays.isin(np.array([1, 2]), np.zeros(0, np.int64)).tolist() == [False, False]
    assert arrays.isin(np.array([1, 2]), []).tolist() == [False, False]  # [] is float64: numpy answers
    assert arrays.isin(np.array([5, 7, 9]), np.array([9, 5])).tolist() == [True, False, True]  # test unsorted
    assert arrays.isin([1.5, 2.0], [2.0]).tolist() == [False, True]
    both = np.array([np.iinfo(np.int64).max, -1]), np.array([2**63], dtype=np.uint64)  # no common integer type
    assert arrays.isin(*both).tolist() == np.isin(*both).tolist()
    assert arrays.unique(np.array([np.nan, 1.0, np.nan])).size == np.unique(np.array([np.nan, 1.0, np.nan])).size
    codes = np.array([127, -1, 5, 127], dtype=np.int8)  # the table spans the whole int8 range
    for got, want in zip(arrays.unique_inverse(codes), np.unique(codes, return_inverse=True)):
        assert np.array_equal(got, want) and got.dtype == want.dtype


@pytest.mark.parametrize("seed", range(3))
def test_a_long_sorted_array_and_a_few_values_take_the_merge_and_still_equal_numpys(seed):
    """At ``SORTED_CHECK`` values or more, sorted distinct arrays (a heavy reader's read set) are
    not sorted again and a few values are merged into them: the same answers as numpy, in either
    order, with duplicates, values outside the range and mixed dtypes; unsorted long ones sort."""
    rng = np.random.default_rng(seed)
    for trial in range(60):
        dtype = DTYPES[trial % 3]  # int64, int32, int8 cannot hold the long ones
        a = np.unique(rng.integers(-5, 30_000, int(rng.integers(arrays.SORTED_CHECK, 9_000)))).astype(dtype)
        b = rng.integers(-20, 30_020, int(rng.integers(0, 300))).astype(DTYPES[rng.integers(len(DTYPES))])
        if a.size < arrays.SORTED_CHECK:
            continue
        for ours, theirs in ((arrays.union1d(a, b), np.union1d(a, b)), (arrays.union1d(b, a), np.union1d(b, a)),
                             (arrays.unique(a), np.unique(a)), (arrays.unique(a[::-1]), np.unique(a[::-1]))):
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    long = np.arange(arrays.SORTED_CHECK * 2, dtype=np.int64)
    assert arrays.unique(long) is not long  # a copy, as numpy's
