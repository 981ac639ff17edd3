"""Training = serving for collaborative filtering: for readers the model was trained on, the
vector the service folds in from their stored events (``Engine._profile``, the code every feed
runs) scores articles like the trained reader vector, for every ``cf_method`` x
``cf_weighting``; and a fold-in that weighs or solves differently from training (the bugs this
guards against) falls outside the same tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from recommender.models.cf import METHODS, FoldIn
from recommender.models.fitting import train
from recommender.params import TrainParams

WEIGHTINGS = ("none", "bm25")
LIKED = (1, 2, 3)  # click, read, share
MIN_LIKED = 8  # readers with at least this many liked events (a fold-in from 1-2 clicks is mostly prior)
TOP_K = 20
# Folded-in vs trained reader vector, both scoring every article with the served factors, medians
# over readers: Spearman, share of the trained top 20 in the folded top 20, and the relative error
# of the scores |Y x - Y u| / |Y u|. Not exact: implicit's ALS solves readers by 3 conjugate-gradient
# steps against the item factors of the previous sweep (measured: rho 0.9999, error 0.015), and
# BPR's trained vectors are stochastic-gradient estimates (rho 0.997, error 0.043). The broken
# fold-ins below measured rho 0.93 / error 0.56 (served factors), error 0.083 (raw weights) and
# rho 0.08 (ALS solve of BPR factors).
MIN_MEDIAN_RHO = 0.99
MIN_MEDIAN_OVERLAP = 0.9
MAX_MEDIAN_ERROR = {"als": 0.03, "bpr": 0.08}


@pytest.fixture(scope="module")
def sample(trained, tmp_path_factory):
    return trained.clone(tmp_path_factory.mktemp("foldin"))


def _trained_engine(sample, method: str, weighting: str):
    params = TrainParams(cf_method=method, cf_weighting=weighting, factors=16, iterations=30)
    _, built = train(sample.store, sample.models_dir, params, as_of=sample.now, seed=0, promote=True)
    engine = sample.engine()
    assert engine._state.model.fold_in.method == method and built.fitted["cf"].method == method
    return engine, built


def _readers(sample, built, n: int = 40) -> list[tuple[str, int]]:
    """(user id, row of the trained factors) of trained readers with at least MIN_LIKED liked events."""
    lg = sample.store.load_interactions(end=sample.now)
    keys = built.fitted["cf_reader_keys"]
    counts = np.bincount(lg.user_key[np.isin(lg.event, LIKED)], minlength=int(keys.max()) + 1)
    rows = [r for r, key in enumerate(keys) if counts[key] >= MIN_LIKED][:n]
    assert len(rows) >= 20, "the sample should hold enough active readers"
    return [(lg.user_ids[int(keys[r])], r) for r in rows]


def _agreement(engine, built, readers, now) -> tuple[float, float, float]:
    """(median Spearman, top-k overlap, relative error) of folded-in vs trained reader scores over the
    served articles."""
    state = engine._state
    Y = np.asarray(state.model.item_factors, dtype=np.float64)
    trained_vectors = built.fitted["cf"].user_factors_
    rhos, overlaps, errors = [], [], []
    for user_id, row in readers:
        folded = engine._profile(state, state.snapshot(), user_id, now).cf_vector
        want, got = Y @ trained_vectors[row], Y @ folded
        rhos.append(spearmanr(want, got)[0])
        overlaps.append(np.intersect1d(np.argpartition(-want, TOP_K)[:TOP_K],
                                       np.argpartition(-got, TOP_K)[:TOP_K]).size / TOP_K)
        errors.append(np.linalg.norm(got - want) / np.linalg.norm(want))
    return float(np.median(rhos)), float(np.median(overlaps)), float(np.median(errors))


def _matches(agreement: tuple[float, float, float], method: str) -> bool:
    rho, overlap, error = agreement
    return rho >= MIN_MEDIAN_RHO and overlap >= MIN_MEDIAN_OVERLAP and error <= MAX_MEDIAN_ERROR[method]


def _wrong(right: FoldIn, method: str, weighting: str) -> dict[str, FoldIn]:
    """Fold-ins that each break one thing training does, as the service did before (BPR ignores the
    values of the entries, so its weighting only decides which articles count as liked)."""
    wrong = {}
    if method == "als":  # the reader solved against the served (bridge-blended) factors, as before
        wrong["served factors"] = FoldIn(right.method, right.alpha, right.regularization, right.gram, None,
                                         right.negative_factors, right.weighting)
    if method == "als" and weighting == "bm25":  # BM25-trained, folded in with raw weights
        wrong["raw weights"] = FoldIn(right.method, right.alpha, right.regularization, right.gram, right.learned,
                                      right.negative_factors, None)
    if method == "bpr":  # BPR factors (bias column and all) solved with ALS's normal equations
        wrong["ALS solve"] = FoldIn("als", right.alpha, right.regularization, right.gram, right.learned, None,
                                    right.weighting)
    return wrong


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("method", METHODS)
def test_served_fold_in_scores_like_the_trained_reader_vector(sample, method, weighting):
    engine, built = _trained_engine(sample, method, weighting)
    try:
        readers = _readers(sample, built)
        agreement = _agreement(engine, built, readers, sample.now)
        assert _matches(agreement, method), f"{method}/{weighting}: median rho, overlap, error = {agreement}"
        model = engine._state.model
        right = model.fold_in
        if method == "bpr":  # the bias coordinate is a constant 1, as implicit's user vectors have it
            vector = engine._profile(engine._state, engine._state.snapshot(), readers[0][0], sample.now).cf_vector
            assert vector.shape == (17,) and vector[-1] == 1.0
        for name, wrong in _wrong(right, method, weighting).items():
            model.fold_in = wrong
            try:
                broken = _agreement(engine, built, readers, sample.now)
            finally:
                model.fold_in = right
            assert not _matches(broken, method), f"{method}/{weighting}: a fold-in with {name} passes too: {broken}"
    finally:
        engine.close()


def test_bm25_row_weights_are_the_training_matrix_row(rng):
    """The service's BM25 row (stored idf and average length) equals the row of the weighted training matrix."""
    import scipy.sparse as sp

    from recommender.models.interactions import BM25Weighting, bm25_weight

    X = sp.random(30, 50, density=0.2, format="csr", random_state=3, dtype=np.float32)
    X.data = rng.uniform(0.5, 4.0, X.nnz).astype(np.float32)
    weighting = BM25Weighting().fit(X)
    weighted = weighting.transform(X)
    np.testing.assert_allclose(weighted.toarray(), bm25_weight(X).toarray())
    restored = BM25Weighting.from_arrays(*weighting.to_arrays())
    for user in (0, 7, 29):
        row = X[user]
        np.testing.assert_allclose(restored.row(row.indices, row.data), weighted[user].toarray()[0, row.indices],
                                   rtol=1e-5)
    # an article that arrived after training: the idf of an article nobody read
    assert restored.row(np.array([50]), np.array([1.0]))[0] > restored.row(np.array([int(np.argmax(
        np.bincount(X.indices, minlength=50)))]), np.array([1.0]))[0]


def test_als_fold_in_solves_as_implicit_does_negative_confidence_included(rng):
    """Against implicit's own reference solver for one user row (confidence < 0: "not this", weight |c|)."""
    import scipy.sparse as sp
    from implicit.cpu.als import user_factor

    from recommender.models.cf import fold_in

    Y = rng.normal(size=(40, 6))
    reg = 0.1
    items = np.array([2, 5, 11, 30])
    confidence = np.array([11.0, 3.5, -4.0, 0.5])  # a BM25 weight can be negative (an article every reader read)
    row = sp.csr_matrix((confidence, (np.zeros(4, dtype=int), items)), shape=(1, 40))
    want = user_factor(Y, Y.T @ Y, row, 0, reg, 6)
    got = fold_in(Y, Y.T @ Y + reg * np.eye(6), items, confidence)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
