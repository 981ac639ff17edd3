"""Event weighting: impressions are no positive, click < read < share, dwell and decay."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.models.cf import CollaborativeFilter, fold_in
from recommender.models.interactions import EventWeights, bm25_weight, confidence_matrix

IMP, CLICK, READ, SHARE = 0, 1, 2, 3


def test_weights_order_and_dwell_cap():
    w = EventWeights(half_life_days=None)
    events = np.array([IMP, CLICK, READ, READ, READ, SHARE], dtype=np.int8)
    dwell = np.array([np.nan, np.nan, 60.0, 6000.0, 5.0, np.nan], dtype=np.float32)
    got = w.event_weight(events, dwell)
    assert got[0] == 0 and got[1] < got[2] < got[5]
    assert got[3] == pytest.approx(w.read * w.dwell_cap)  # a very long read is capped
    assert got[4] == pytest.approx(w.read * 0.25)  # a bounce counts little


def test_confidence_matrix_sums_and_decays():
    users = np.array([0, 0, 1, 1])
    items = np.array([0, 0, 1, 2])
    events = np.array([CLICK, CLICK, IMP, SHARE], dtype=np.int8)
    ts = np.array([0.0, 86400.0 * 14, 86400.0 * 14, 86400.0 * 14])
    dwell = np.full(4, np.nan, dtype=np.float32)
    m = confidence_matrix(users, items, events, ts, dwell, (2, 3), EventWeights(half_life_days=14.0))
    assert m[0, 0] == pytest.approx(1.5)  # one click 14 days old (half) + one fresh
    assert m[1, 1] == 0 and m.nnz == 2  # impressions without a click are not positives
    assert m[1, 2] == pytest.approx(4.0)


def test_bm25_damps_popular_items():
    m = confidence_matrix(np.array([0, 1, 2, 0]), np.array([0, 0, 0, 1]), np.full(4, CLICK, dtype=np.int8),
                          np.zeros(4), np.full(4, np.nan, dtype=np.float32), (3, 2), EventWeights(half_life_days=None))
    w = bm25_weight(m)
    assert w[0, 1] > w[0, 0]  # the rarely read article says more about reader 0


def test_fold_in_matches_a_direct_solve(rng):
    Y = rng.normal(size=(20, 4)).astype(np.float32)
    reg = 0.1
    gram = Y.astype(np.float64).T @ Y + reg * np.eye(4)
    items, conf = np.array([1, 5, 7]), np.array([3.0, 1.5, 11.0])
    x = fold_in(Y, gram, items, conf)
    C = np.ones(20)
    C[items] = conf
    p = np.zeros(20)
    p[items] = 1
    direct = np.linalg.solve(Y.T @ (C[:, None] * Y) + reg * np.eye(4), Y.T @ (C * p))
    np.testing.assert_allclose(x, direct, rtol=1e-4, atol=1e-5)


def test_als_recovers_two_reader_groups():
    # checkerboard: readers 0-9 read articles 0-9, readers 10-19 read 10-19
    import scipy.sparse as sp

    rows = np.repeat(np.arange(20), 8)
    rng = np.random.default_rng(0)
    cols = np.concatenate([rng.choice(np.arange(10) if u < 10 else np.arange(10, 20), 8, replace=False)
                           for u in range(20)])
    X = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(20, 20))
    cf = CollaborativeFilter(factors=4, iterations=10, random_state=0).fit(X)
    u = cf.fold_in(np.array([0, 1, 2]), np.ones(3))
    scores = cf.item_factors_ @ u
    assert scores[:10].mean() > scores[10:].mean()
    with pytest.raises(ValueError, match="method"):
        CollaborativeFilter(method="svd").fit(X)
