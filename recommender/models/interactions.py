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
    X = sp.coo_matrix(X, dtype=np.float32)
    n_users = X.shape[0]
    idf = np.log(n_users) - np.log1p(np.bincount(X.col, minlength=X.shape[1]))
    row_sums = np.ravel(X.sum(axis=1))
    average_length = row_sums.mean() if row_sums.size else 1.0
    length_norm = (1.0 - B) + B * row_sums / max(average_length, 1e-9)
    data = X.data * (K1 + 1.0) / (K1 * length_norm[X.row] + X.data) * idf[X.col]
    return sp.csr_matrix((data.astype(np.float32), (X.row, X.col)), shape=X.shape)
