"""What position-bias handling changes in training, on generated rows where the truth is known.

A served log ties position to whatever ranked the list: readers click the top more because it
is the top. Here the logging ranker orders each list by the ``blend`` column, which has no
relevance of its own; clicks = examination(position) x relevance(``ctr_all_p10``). Training on
the clicks as they are learns ``blend`` as if it were relevance; weighting clicks by inverse
propensity of their logged position (``ipw``, ``position_propensity``) or training with the
position as a feature mostly removes it, and the ranker's true value (expected clicks in its
top 5 under the known click model, on fresh lists) rises.
"""

from __future__ import annotations

import numpy as np

from recommender.evaluation.learning import RankingData, fit_ranker, position_propensity
from recommender.serving.features import FEATURE_NAMES, align

NAMES = list(FEATURE_NAMES)
SIZE, TOP = 20, 5
EXAMINATION = 1.0 / (1.0 + np.arange(SIZE))


def relevance(X: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(X[:, NAMES.index("ctr_all_p10")] - 2.0)))


def served_log(rng: np.random.Generator, n_lists: int) -> RankingData:
    Xs, ys = [], []
    for _ in range(n_lists):
        X = rng.normal(size=(SIZE, len(NAMES)))
        X = X[np.argsort(-X[:, NAMES.index("blend")])]  # the logging ranker's order
        Xs.append(X)
        ys.append((rng.random(SIZE) < EXAMINATION * relevance(X)).astype(float))
    return RankingData(np.vstack(Xs), np.concatenate(ys), np.repeat(np.arange(n_lists), SIZE),
                       np.tile(np.arange(SIZE), n_lists), np.arange(n_lists, dtype=float))


def true_value(ranker, rng: np.random.Generator, n_lists: int = 1000) -> float:
    """Expected clicks in the ranker's top 5 of fresh lists, under the known click model."""
    total = 0.0
    for _ in range(n_lists):
        X = rng.normal(size=(SIZE, len(NAMES)))
        top = np.argsort(-ranker.decision_function(align(X, ranker)))[:TOP]
        total += float(np.sum(relevance(X)[top] * EXAMINATION[:TOP]))
    return total / n_lists


def test_inverse_propensity_weights_unlearn_what_position_alone_explained():
    rng = np.random.default_rng(0)
    log = served_log(rng, 2000)
    propensity = position_propensity(log)
    assert propensity[0] == 1.0 and propensity[5] < 0.4  # clicks fall with position
    fitted = {bias: fit_ranker(log, {"kind": "logistic", "C": 1.0}, bias) for bias in ("none", "ipw", "feature")}
    coef = {bias: dict(zip(r.feature_names_, r.coef_.ravel())) for bias, r in fitted.items()}
    # without a correction, the logging ranker's column looks about as relevant as relevance itself
    assert coef["none"]["blend"] > 0.5 * coef["none"]["ctr_all_p10"]
    assert coef["ipw"]["blend"] < 0.5 * coef["none"]["blend"]
    assert coef["feature"]["blend"] < 0.5 * coef["none"]["blend"]
    value = {bias: true_value(r, np.random.default_rng(1)) for bias, r in fitted.items()}
    assert value["ipw"] > value["none"] + 0.05 and value["feature"] > value["none"] + 0.05
