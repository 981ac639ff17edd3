"""From the event log to a user x article confidence matrix (implicit feedback)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.params import EventWeights  # noqa: F401  (re-exported: it lived here before)

DAY = 86_400.0


def confidence_matrix(
    user_index: np.ndarray,
    item_index: np.ndarray,
    event: np.ndarray,
    ts: np.ndarray,
    dwell: np.ndarray,
    shape: tuple[int, int],
    weights: EventWeights = EventWeights(),
    now: float | None = None,
) -> sp.csr_matrix:
    """Sum weighted, decayed events per (user, article).

    Parameters
    ----------
    user_index, item_index : ndarray of int, shape (n,)
        Row and column of every event; rows with a negative index are skipped.
    event, ts, dwell : ndarray, shape (n,)
        Event codes, epoch seconds, dwell seconds (NaN if none).
    shape : (n_users, n_items)

    Returns
    -------
    csr_matrix of float32, shape ``shape``, with explicit zeros removed.
    """
    now = float(ts.max()) if now is None and ts.size else (now or 0.0)
    keep = (user_index >= 0) & (item_index >= 0)
    value = weights.event_weight(event[keep], dwell[keep]) * weights.decay(ts[keep], now)
    matrix = sp.csr_matrix(
        (value, (user_index[keep], item_index[keep])), shape=shape, dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def bm25_weight(X: sp.csr_matrix, K1: float = 100.0, B: float = 0.8) -> sp.csr_matrix:
    """BM25 weighting of a user x item matrix, as implicit's nearest_neighbours.bm25_weight."""
    return BM25Weighting(K1=K1, B=B).fit(X).transform(X)


class BM25Weighting:
    """BM25 weights of reader x article rows, fitted once at training and kept for serving.

    A reader folded in at serving must get the weights training gave them (else the folded
    vector answers a different question than the trained one): the per-article idf and the
    average row length are learned here and stored in the bundle; :meth:`row` then weights
    one reader's row exactly as :meth:`transform` weighted it in the matrix.

    Parameters
    ----------
    K1, B : float
        BM25 saturation and length normalisation (implicit's defaults).

    Attributes
    ----------
    idf_ : ndarray of float32, shape (n_items,)
        ``log(n_users) - log1p(readers of the article)``.
    idf_unseen_ : float
        The idf of an article no reader touched (an article that arrived after training).
    average_length_ : float
        Mean row sum of the fitted matrix.
    """

    def __init__(self, K1: float = 100.0, B: float = 0.8):
        self.K1 = K1
        self.B = B

    def fit(self, X: sp.spmatrix) -> "BM25Weighting":
        X = sp.coo_matrix(X, dtype=np.float32)
        n_users = max(X.shape[0], 1)
        self.idf_ = (np.log(n_users) - np.log1p(np.bincount(X.col, minlength=X.shape[1]))).astype(np.float32)
        self.idf_unseen_ = float(np.log(n_users))
        row_sums = np.ravel(X.sum(axis=1))
        self.average_length_ = float(row_sums.mean()) if row_sums.size else 1.0
        return self

    def _weigh(self, values: np.ndarray, idf: np.ndarray, row_sum: np.ndarray) -> np.ndarray:
        length_norm = (1.0 - self.B) + self.B * row_sum / max(self.average_length_, 1e-9)
        return values * (self.K1 + 1.0) / (self.K1 * length_norm + values) * idf

    def transform(self, X: sp.spmatrix) -> sp.csr_matrix:
        """The BM25-weighted matrix, shape unchanged (one vectorized expression over ``X.data``)."""
        X = sp.coo_matrix(X, dtype=np.float32)
        row_sums = np.ravel(X.sum(axis=1))
        data = self._weigh(X.data.astype(np.float64), self.idf_[X.col].astype(np.float64), row_sums[X.row])
        return sp.csr_matrix((data.astype(np.float32), (X.row, X.col)), shape=X.shape)

    def row(self, items: np.ndarray, values: np.ndarray) -> np.ndarray:
        """One reader's weights, shape (m,), from their articles (indices; at or past ``len(idf_)``: an
        article unseen at training) and raw summed weights, as :meth:`transform` weights a row."""
        items = np.asarray(items, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        known = (items >= 0) & (items < self.idf_.shape[0])
        idf = np.where(known, self.idf_[np.where(known, items, 0)], self.idf_unseen_).astype(np.float64)
        return self._weigh(values, idf, np.float64(values.sum()))

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """(arrays, document) for a bundle: plain numbers, nothing pickled."""
        return ({"cf_idf": self.idf_}, {"K1": float(self.K1), "B": float(self.B),
                                        "average_length": self.average_length_, "idf_unseen": self.idf_unseen_})

    @classmethod
    def from_arrays(cls, arrays, document: dict) -> "BM25Weighting":
        weighting = cls(K1=float(document["K1"]), B=float(document["B"]))
        weighting.idf_ = np.asarray(arrays["cf_idf"], dtype=np.float32)
        weighting.idf_unseen_ = float(document["idf_unseen"])
        weighting.average_length_ = float(document["average_length"])
        return weighting
