"""Top-k nearest neighbours by cosine, computed in blocks so memory stays bounded.

Precomputing each article's neighbours at training (and once on arrival) means the service
re-ranks a short list instead of scanning the catalog on every page view.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of each row, best first.

    Parameters
    ----------
    scores : ndarray, shape (n, m)
    k : int

    Returns
    -------
    (indices int32 (n, k'), values float32 (n, k')) with ``k' = min(k, m)``.
    """
    n, m = scores.shape
    k = min(k, m)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int32), np.empty((n, 0), dtype=np.float32)
    if k < m:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(m), (n, 1))
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return part[np.arange(n)[:, None], order].astype(np.int32), np.take_along_axis(values, order, axis=1).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of a 1-d array, best first (argpartition, no full sort)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
    return part[np.argsort(-scores[part], kind="stable")]


def cosine_neighbours(
    queries: np.ndarray,
    candidates: np.ndarray,
    k: int,
    query_ids: np.ndarray | None = None,
    block: int = 2048,
    min_score: float = -np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``k`` most similar candidates (vectors are L2-normalized).

    Parameters
    ----------
    queries : ndarray of float32, shape (n, d)
    candidates : ndarray of float32, shape (m, d)
    query_ids : ndarray of int, shape (n,), optional
        Candidate index of each query itself, excluded from its own list.
    min_score : float
        Neighbours below this similarity are dropped (index -1, score 0).

    Returns
    -------
    (indices int32 (n, k), scores float32 (n, k)), padded with -1 / 0.
    """
    n = queries.shape[0]
    k_eff = min(k, candidates.shape[0])
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_val = np.zeros((n, k), dtype=np.float32)
    if n == 0 or k_eff == 0:
        return out_idx, out_val
    for start in range(0, n, block):
        stop = min(start + block, n)
        sims = queries[start:stop] @ candidates.T
        if query_ids is not None:
            rows = np.arange(stop - start)
            own = query_ids[start:stop]
            valid = own >= 0
            sims[rows[valid], own[valid]] = -np.inf
        idx, val = top_k_rows(sims, k_eff)
        bad = ~np.isfinite(val) | (val < min_score)
        idx[bad] = -1
        val[bad] = 0.0
        out_idx[start:stop, :k_eff] = idx
        out_val[start:stop, :k_eff] = val
    return out_idx, out_val


def sparse_top_k(matrix: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each row's ``k`` largest entries of a sparse matrix as padded arrays (-1 / 0)."""
    matrix = sp.csr_matrix(matrix)
    n = matrix.shape[0]
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_val = np.zeros((n, k), dtype=np.float32)
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    for row in np.flatnonzero(np.diff(indptr)):
        lo, hi = indptr[row], indptr[row + 1]
        vals = data[lo:hi]
        order = top_k(vals, k)
        out_idx[row, : order.size] = indices[lo:hi][order]
        out_val[row, : order.size] = vals[order]
    return out_idx, out_val


def story_labels(neighbour_idx: np.ndarray, neighbour_sim: np.ndarray, threshold: float) -> np.ndarray:
    """Group articles into stories: connected components of pairs at least ``threshold`` similar.

    Returns
    -------
    ndarray of int32, shape (n,): a story label per article.
    """
    n = neighbour_idx.shape[0]
    rows = np.repeat(np.arange(n), neighbour_idx.shape[1])
    cols = neighbour_idx.ravel()
    keep = (cols >= 0) & (neighbour_sim.ravel() >= threshold)
    graph = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.int8), (rows[keep], cols[keep])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int32)
