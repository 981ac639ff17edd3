"""Top-k nearest neighbours by cosine, computed in blocks so memory stays bounded.

Precomputing each article's neighbours at training (and once on arrival) means the service
re-ranks a short list instead of scanning the catalog on every page view.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits


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
        part = np.argpartition(scores, m - k, axis=1)[:, m - k:]
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


def spherical_kmeans(X: np.ndarray, n_clusters: int, iterations: int = 10, sample: int = 50_000,
                     seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (unit length) fitted on a sample, and the cluster of every row (highest dot product).

    Parameters
    ----------
    X : ndarray of float32, shape (n, d), rows L2-normalized (zero rows are allowed)
    n_clusters : int

    Returns
    -------
    (centroids float32 (c, d), labels int64 (n,)) with ``c = min(n_clusters, n)``.
    """
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    n_clusters = max(1, min(n_clusters, n))
    S = X[np.sort(rng.choice(n, size=min(n, max(sample, n_clusters)), replace=False))]
    C = S[rng.choice(S.shape[0], size=n_clusters, replace=False)].astype(np.float32)
    for _ in range(iterations):
        labels = np.argmax(S @ C.T, axis=1)
        member = sp.csr_matrix((np.ones(labels.size, dtype=np.float32), (labels, np.arange(labels.size))),
                               shape=(n_clusters, S.shape[0]))
        sums = np.asarray(member @ S, dtype=np.float32)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms < 1e-9
        if empty.any():  # an emptied cluster restarts at a random sample row
            sums[empty] = S[rng.choice(S.shape[0], size=int(empty.sum()), replace=False)]
            norms[empty] = np.maximum(np.linalg.norm(sums[empty], axis=1), 1e-9)
        C = (sums / norms[:, None]).astype(np.float32)
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, 16_384):
        labels[start:start + 16_384] = np.argmax(X[start:start + 16_384] @ C.T, axis=1)
    return C, labels


def clustered_neighbours(vectors: np.ndarray, k: int, n_clusters: int | None = None, n_probe: int = 24,
                         seed: int | None = 0, block: int = 1024, min_score: float = -np.inf,
                         n_jobs: int | None = None, return_clusters: bool = False):
    """Each row's ``k`` most similar other rows, searched in nearby clusters only (approximate).

    An exact self-join costs n^2 d; at 100k articles that is minutes on two cores, mostly in
    selecting the top k of every 100k-long row. Rows are grouped by spherical k-means into
    ~sqrt(n) clusters, and the rows of one cluster are compared, in one matrix product, with
    the rows of the ``n_probe`` clusters whose centroids are nearest to theirs. On vectors with
    structure (text, collaborative factors) nearly all true neighbours are found at a few percent
    of the cost; ``benchmarks/training.py`` measures the recall against the exact answer.

    Parameters
    ----------
    vectors : ndarray of float32, shape (n, d), rows L2-normalized
    k : int
    n_clusters : int, optional
        Default ``sqrt(n)``.
    n_probe : int
        Clusters searched per cluster (its own included).
    n_jobs : int, optional
        Threads (default: one per core), each with one BLAS thread: the top-k selection is
        single-threaded in numpy, so threads over clusters keep every core busy.

    Returns
    -------
    (indices int32 (n, k), scores float32 (n, k)), padded with -1 / 0, self excluded; with
    ``return_clusters`` also ``(centroids float32 (c, d), labels int64 (n,))``.
    """
    X = np.ascontiguousarray(vectors, dtype=np.float32)
    n = X.shape[0]
    n_clusters = n_clusters or max(1, int(np.sqrt(n)))
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_val = np.zeros((n, k), dtype=np.float32)
    if n <= 1 or k <= 0:
        C, labels = spherical_kmeans(X, 1, seed=seed) if n else (np.zeros((0, X.shape[1]), np.float32), np.zeros(0, np.int64))
        return (out_idx, out_val, (C, labels)) if return_clusters else (out_idx, out_val)
    C, labels = spherical_kmeans(X, n_clusters, seed=seed)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(C.shape[0] + 1))
    probe = top_k_rows(C @ C.T, min(n_probe, C.shape[0]))[0]

    def search(c: int) -> None:  # rows of cluster c; each call writes its own rows only
        members = order[bounds[c]:bounds[c + 1]]
        if members.size == 0:
            return
        cand = np.concatenate([order[bounds[p]:bounds[p + 1]] for p in probe[c]])
        Y = X[cand]
        k_eff = min(k, cand.size - 1)
        if k_eff <= 0:
            return
        # position of every member inside ``cand`` (the own cluster is probed first: sims with itself are highest)
        own = np.flatnonzero(probe[c] == c)
        offset = int(sum(bounds[p + 1] - bounds[p] for p in probe[c][: own[0]])) if own.size else -1
        for start in range(0, members.size, block):
            rows = members[start:start + block]
            sims = X[rows] @ Y.T
            if offset >= 0:
                local = np.arange(start, start + rows.size)
                sims[np.arange(rows.size), offset + local] = -np.inf
            idx, val = top_k_rows(sims, k_eff)
            bad = ~np.isfinite(val) | (val < min_score)
            idx = cand[idx].astype(np.int32)
            idx[bad] = -1
            val[bad] = 0.0
            out_idx[rows, :k_eff] = idx
            out_val[rows, :k_eff] = val

    n_jobs = n_jobs or os.cpu_count() or 1
    biggest_first = np.argsort(-np.diff(bounds), kind="stable")  # balances the threads' work
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(max_workers=n_jobs) as pool:
        list(pool.map(search, biggest_first.tolist()))
    return (out_idx, out_val, (C, labels)) if return_clusters else (out_idx, out_val)


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
