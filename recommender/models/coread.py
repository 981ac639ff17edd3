"""Co-reading: articles read in the same reader session, time-decayed and normalized."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .neighbours import sparse_top_k


class CoReading(BaseEstimator):
    """Article x article co-occurrence within sessions.

    Parameters
    ----------
    session_gap_minutes : float
        A pause longer than this starts a new session.
    max_session_items : int
        Longer sessions (bots, binge readers) are truncated to their first items.
    half_life_days : float or None
        Older sessions count less.
    k : int
        Neighbours kept per article.

    Attributes
    ----------
    neighbours_ : ndarray of int32, shape (n_items, k)   (-1 padded)
    scores_ : ndarray of float32, shape (n_items, k)
        Cosine-normalized co-reading ``c_ij / sqrt(n_i n_j)``.
    """

    def __init__(self, session_gap_minutes=30.0, max_session_items=30, half_life_days=7.0, k=30):
        self.session_gap_minutes = session_gap_minutes
        self.max_session_items = max_session_items
        self.half_life_days = half_life_days
        self.k = k

    def fit(self, user_index: np.ndarray, item_index: np.ndarray, ts: np.ndarray, n_items: int,
            now: float | None = None) -> "CoReading":
        """Fit on positive events (clicks, reads, shares) of shape (n,) each."""
        self.n_items_ = n_items
        if user_index.size == 0:
            self.matrix_ = sp.csr_matrix((n_items, n_items), dtype=np.float32)
            self.neighbours_ = np.full((n_items, self.k), -1, dtype=np.int32)
            self.scores_ = np.zeros((n_items, self.k), dtype=np.float32)
            return self
        order = np.lexsort((ts, user_index))
        users, items, times = user_index[order], item_index[order], ts[order]
        new_session = np.ones(users.size, dtype=bool)
        new_session[1:] = (users[1:] != users[:-1]) | (np.diff(times) > self.session_gap_minutes * 60.0)
        session = np.cumsum(new_session) - 1
        starts = np.flatnonzero(new_session)
        position = np.arange(users.size) - starts[session]
        keep = position < self.max_session_items
        session, items, times = session[keep], items[keep], times[keep]
        now = float(ts.max()) if now is None else now
        weight = np.ones(session.size, dtype=np.float32)
        if self.half_life_days:
            weight = np.exp2(-np.maximum(now - times, 0) / 86400.0 / self.half_life_days).astype(np.float32)
        S = sp.csr_matrix((weight, (session, items)), shape=(int(session.max()) + 1, n_items), dtype=np.float32)
        S.sum_duplicates()
        S.data = np.minimum(S.data, 1.0)  # reading one article twice in a session is one co-read
        C = (S.T @ S).tocsr()
        diag = C.diagonal()
        C.setdiag(0)
        C.eliminate_zeros()
        C = C.tocoo()
        norm = np.sqrt(np.maximum(diag[C.row] * diag[C.col], 1e-12))
        C = sp.csr_matrix((C.data / norm, (C.row, C.col)), shape=C.shape, dtype=np.float32)
        self.matrix_ = C
        self.neighbours_, self.scores_ = sparse_top_k(C, self.k)
        return self

    def similar(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "neighbours_")
        idx, val = self.neighbours_[item], self.scores_[item]
        ok = idx >= 0
        return idx[ok], val[ok]
