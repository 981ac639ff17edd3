"""Collaborative filtering on the confidence matrix, with fold-in for readers' new clicks.

Wraps ``implicit`` (ALS by default, BPR as an option) in a scikit-learn style estimator
whose fitted state is plain arrays, so a bundle can store it and the service can
compute a reader's vector from their latest events without retraining.

Training = serving: :class:`FoldIn` holds what the service needs to solve a reader's vector
the way training solved it (the same row weighting, the same objective, the Gram matrix of
the factors it serves); ``tests/test_foldin.py`` checks every ``cf_method`` x ``cf_weighting``.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
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
    # as implicit: a negative confidence is a "not this" with weight |c| (preference 0)
    extra = np.abs(c) - 1.0
    if extra.min() >= 0.0:  # the usual case: Y'(C - I)Y as Z'Z, which BLAS computes as one half (syrk)
        Z = Y * np.sqrt(extra)[:, None]
        A = gram + Z.T @ Z
    else:
        A = gram + (Y.T * extra) @ Y
    b = Y.T @ np.maximum(c, 0.0)
    # A is symmetric and, with every confidence at least 1, positive definite: a Cholesky solve
    # (LAPACK posv, ~16 us at k = 64) instead of LU with pivoting (np.linalg.solve, ~41 us)
    _, x, info = lapack.dposv(A, b)
    if info != 0:  # not positive definite (a confidence below 1): the general solver
        x = np.linalg.solve(A, b)
    return np.asarray(x, dtype=np.float32)


def bpr_fold_in(item_factors: np.ndarray, negative_factors: np.ndarray, regularization: float,
                max_iter: int = 100) -> np.ndarray:
    """One reader's BPR vector given the factors of the items they liked.

    implicit's BPR appends an item-bias column to the item factors and a constant 1 to every
    user vector; its SGD step ``u += lr * ((1 - sigmoid(x_uij)) (y_i - y_j) - reg u)`` ascends
    ``mean log sigmoid(u . (y_i - y_j) + b_i - b_j) - reg/2 |u|^2`` over (liked i, random j).
    This maximises that objective for ``u`` with the items fixed (L-BFGS; the negatives are a
    fixed sample of the served items) and keeps the bias coordinate at 1.

    Parameters
    ----------
    item_factors : ndarray, shape (m, k + 1)
        Liked items, last column their bias.
    negative_factors : ndarray, shape (n_neg, k + 1)
        Items standing for "any other article".
    regularization : float

    Returns
    -------
    ndarray of float32, shape (k + 1,), last entry 1; zeros when ``item_factors`` is empty.
    """
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    dims = item_factors.shape[1]
    if item_factors.shape[0] == 0 or negative_factors.shape[0] == 0:
        return np.zeros(dims, dtype=np.float32)
    P = np.asarray(item_factors[:, :-1], dtype=np.float64)
    N = np.asarray(negative_factors[:, :-1], dtype=np.float64)
    bp = np.asarray(item_factors[:, -1], dtype=np.float64)
    bn = np.asarray(negative_factors[:, -1], dtype=np.float64)
    n_pairs = float(P.shape[0] * N.shape[0])

    def loss(u: np.ndarray) -> tuple[float, np.ndarray]:
        x = (P @ u + bp)[:, None] - (N @ u + bn)[None, :]
        z = expit(-x) / n_pairs
        value = float(log_expit(x).sum()) / n_pairs - 0.5 * regularization * float(u @ u)
        grad = P.T @ z.sum(axis=1) - N.T @ z.sum(axis=0) - regularization * u
        return -value, -grad

    result = minimize(loss, np.zeros(dims - 1), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return np.append(result.x, 1.0).astype(np.float32)


class FoldIn:
    """Solve a reader's CF vector at serving exactly as training solved the trained ones.

    Plain arrays and numbers (stored in a bundle by :meth:`to_bundle`, read back by
    :meth:`from_bundle`):

    The reader is solved against the item factors training solved the trained readers against
    (``learned``: the factorization's own, before the text bridge blends them for cold articles;
    an article that arrived after training has only its bridged factors, which stand in), so a
    trained reader folds in to their trained vector; the served (blended) factors then score.

    - ``method`` "als": the ALS normal equations (:func:`fold_in`) with ``gram`` = ``Y'Y + reg I``
      of those same factors, confidence ``1 + alpha * weight``;
    - ``method`` "bpr": :func:`bpr_fold_in` against a fixed sample of the items, the bias
      column kept at 1 (so a served score ``y . u`` includes the article's learned bias);
    - ``weighting``: None, or the :class:`~recommender.models.interactions.BM25Weighting` fitted at
      training, applied to the reader's row before either.

    Parameters
    ----------
    method : {"als", "bpr"}
    alpha, regularization : float
    gram : ndarray of float64, shape (k, k)
    learned : ndarray of float32, shape (n_items, k) or None
        The factorization's item factors (None: solve against the factors passed to :meth:`vector`).
    negative_factors : ndarray of float32, shape (n_neg, k) or None
        BPR only.
    weighting : BM25Weighting or None
    max_items : int
        BPR only: a reader's heaviest ``max_items`` articles count (the objective is pairwise: its
        cost grows with liked x negatives).
    """

    def __init__(self, method: str, alpha: float, regularization: float, gram: np.ndarray,
                 learned: np.ndarray | None = None, negative_factors: np.ndarray | None = None, weighting=None,
                 max_items: int = 200):
        self.method = method
        self.alpha = alpha
        self.regularization = regularization
        self.gram = gram
        self.learned = learned
        self.negative_factors = negative_factors
        self.weighting = weighting
        self.max_items = max_items

    def row_weights(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """A reader's row as training weighted it, shape (m,)."""
        w = np.asarray(weights, dtype=np.float64)
        return w if self.weighting is None else self.weighting.row(items, w)

    def vector(self, factors: np.ndarray, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The reader's vector, shape (k,), float32.

        Parameters
        ----------
        factors : ndarray, shape (m, k)
            Served factors of the reader's articles (the learned ones replace them where known).
        items : ndarray of int, shape (m,)
            Their indices (past the bundle: articles that arrived since training).
        weights : ndarray, shape (m,)
            Summed, decayed event weights per article (a row of the training matrix).
        """
        w = self.row_weights(items, weights)
        items = np.asarray(items, dtype=np.int64)
        if self.learned is not None:
            known = (items >= 0) & (items < self.learned.shape[0])
            if known.all():  # the usual case: one gather
                factors = np.take(self.learned, items, axis=0)
            elif known.any():
                factors = np.array(factors, dtype=np.float32)
                factors[known] = self.learned[items[known]]
        if self.method == "bpr":
            liked = np.flatnonzero(w > 0)  # implicit's BPR samples every stored (positive) entry alike
            if liked.size > self.max_items:
                liked = liked[np.argsort(-w[liked], kind="stable")[: self.max_items]]
            return bpr_fold_in(factors[liked], self.negative_factors, self.regularization)
        return fold_in(factors, self.gram, np.arange(factors.shape[0]), 1.0 + self.alpha * w)

    @classmethod
    def fit(cls, method: str, item_factors: np.ndarray, alpha: float, regularization: float, weighting=None,
            n_negatives: int = 256, random_state: int | None = 0) -> "FoldIn":
        """The fold-in against ``item_factors`` (n, k), the factors the factorization learned."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        learned = np.ascontiguousarray(item_factors, dtype=np.float32)
        Y = learned.astype(np.float64)
        gram = Y.T @ Y + regularization * np.eye(Y.shape[1])
        negatives = None
        if method == "bpr":
            rng = np.random.default_rng(random_state)
            pick = np.sort(rng.choice(Y.shape[0], size=min(n_negatives, Y.shape[0]), replace=False))
            negatives = np.ascontiguousarray(learned[pick])
        return cls(method, alpha, regularization, gram, learned, negatives, weighting)

    def to_bundle(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, document): ``cf_gram``, ``cf_learned`` (+ ``cf_negatives``, ``cf_idf``) and the numbers."""
        arrays = {"cf_gram": np.asarray(self.gram, dtype=np.float64)}
        if self.learned is not None:
            arrays["cf_learned"] = self.learned
        document = {"method": self.method, "alpha": float(self.alpha), "regularization": float(self.regularization),
                    "weighting": "none", "max_items": int(self.max_items)}
        if self.negative_factors is not None:
            arrays["cf_negatives"] = self.negative_factors
        if self.weighting is not None:
            w_arrays, w_doc = self.weighting.to_arrays()
            arrays.update(w_arrays)
            document.update(weighting="bm25", bm25=w_doc)
        return arrays, document

    @classmethod
    def from_bundle(cls, arrays, document: dict | None, alpha: float) -> "FoldIn":
        """From a bundle; a bundle from before this (no document) folds in as ALS without weighting."""
        from recommender.models.interactions import BM25Weighting

        gram = np.asarray(arrays["cf_gram"], dtype=np.float64)
        if not document:
            return cls("als", alpha, 0.0, gram)
        weighting = BM25Weighting.from_arrays(arrays, document["bm25"]) if document["weighting"] == "bm25" else None
        negatives = arrays.get("cf_negatives")
        return cls(document["method"], float(document["alpha"]), float(document["regularization"]), gram,
                   arrays.get("cf_learned"), None if negatives is None else np.asarray(negatives, dtype=np.float32),
                   weighting, int(document.get("max_items", 200)))


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
        items = np.asarray(items)
        if self.method == "bpr":
            solver = FoldIn.fit("bpr", self.item_factors_, self.alpha, self.regularization,
                                random_state=self.random_state)
            return solver.vector(self.item_factors_[items], items, weights)
        return fold_in(self.item_factors_, self.gram_, items, 1.0 + self.alpha * np.asarray(weights))
