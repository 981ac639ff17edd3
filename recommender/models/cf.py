"""Collaborative filtering on the confidence matrix, with fold-in for readers' new clicks.

Wraps ``implicit`` (ALS by default, BPR as an option) in a scikit-learn style estimator
whose fitted state is plain arrays, so a bundle can store it and the service can
compute a reader's vector from their latest events without retraining.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

METHODS = ("als", "bpr")


def fold_in(item_factors: np.ndarray, gram: np.ndarray, items: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """One reader's ALS vector given the items they touched.

    Solves ``(Y'Y + reg I + Y'(C - I)Y) x = Y'C p`` (Hu, Koren & Volinsky 2008) for the few
    items in ``items``; ``gram`` is ``Y'Y + reg I`` precomputed at training.

    Parameters
    ----------
    item_factors : ndarray, shape (n_items, k)
    gram : ndarray, shape (k, k)
    items : ndarray of int, shape (m,)
    confidence : ndarray of float, shape (m,)
        ``1 + alpha * r`` for each item.

    Returns
    -------
    ndarray of float32, shape (k,); zeros when ``items`` is empty.
    """
    k = item_factors.shape[1]
    if items.size == 0:
        return np.zeros(k, dtype=np.float32)
    Y = np.asarray(item_factors[items], dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    A = gram + (Y.T * (c - 1.0)) @ Y
    b = Y.T @ c
    return np.linalg.solve(A, b).astype(np.float32)


class CollaborativeFilter(BaseEstimator):
    """Matrix factorization of reader x article confidence.

    Parameters
    ----------
    method : {"als", "bpr"}
    factors : int
    regularization : float
    alpha : float
        Confidence is ``1 + alpha * weight`` (Hu et al.); implicit is given that directly.
    iterations : int
    learning_rate : float
        BPR only.
    random_state : int or None

    Attributes
    ----------
    user_factors_ : ndarray of float32, shape (n_users, factors)
    item_factors_ : ndarray of float32, shape (n_items, factors)
    gram_ : ndarray of float64, shape (factors, factors)
        ``Y'Y + regularization * I`` for :func:`fold_in`.
    """

    def __init__(self, method="als", factors=64, regularization=0.05, alpha=10.0, iterations=15,
                 learning_rate=0.01, random_state=None):
        self.method = method
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.random_state = random_state

    def fit(self, user_items: sp.csr_matrix, show_progress: bool = False) -> "CollaborativeFilter":
        """Fit on a (n_users, n_items) CSR matrix of non-negative weights."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {self.method!r}")
        user_items = sp.csr_matrix(user_items, dtype=np.float32)
        if user_items.nnz == 0:
            raise ValueError("user_items has no positive interaction: nothing to learn from.")
        if user_items.data.min() < 0:
            raise ValueError("user_items must be non-negative weights.")
        with threadpool_limits(1, "blas"):
            if self.method == "als":
                from implicit.cpu.als import AlternatingLeastSquares

                confidence = user_items.copy()
                confidence.data = 1.0 + self.alpha * confidence.data
                model = AlternatingLeastSquares(
                    factors=self.factors, regularization=self.regularization, alpha=1.0,
                    iterations=self.iterations, random_state=self.random_state,
                )
                model.fit(confidence, show_progress=show_progress)
                users, items = model.user_factors, model.item_factors
            else:
                from implicit.cpu.bpr import BayesianPersonalizedRanking

                model = BayesianPersonalizedRanking(
                    factors=self.factors, learning_rate=self.learning_rate, regularization=self.regularization,
                    iterations=self.iterations, random_state=self.random_state,
                )
                model.fit(user_items, show_progress=show_progress)
                users, items = model.user_factors, model.item_factors
        self.user_factors_ = np.ascontiguousarray(users, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(items, dtype=np.float32)
        Y = self.item_factors_.astype(np.float64)
        self.gram_ = Y.T @ Y + self.regularization * np.eye(Y.shape[1])
        return self

    def fold_in(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """A reader vector from (item index, weight) pairs, without refitting."""
        check_is_fitted(self, "item_factors_")
        return fold_in(self.item_factors_, self.gram_, np.asarray(items), 1.0 + self.alpha * np.asarray(weights))
