"""Clustered neighbour search (large windows): close to the exact answer, never the article itself."""

from __future__ import annotations

import numpy as np

from recommender.models.neighbours import clustered_neighbours, cosine_neighbours, spherical_kmeans


def _clustered(rng, n=3000, d=16, groups=30, noise=0.3):
    centers = rng.normal(size=(groups, d))
    X = centers[rng.integers(0, groups, n)] + noise * rng.normal(size=(n, d))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def test_clustered_neighbours_find_nearly_all_exact_neighbours(rng):
    X = _clustered(rng)
    exact, exact_sim = cosine_neighbours(X, X, 10, query_ids=np.arange(len(X)))
    got, got_sim = clustered_neighbours(X, 10, n_probe=6, seed=0)
    recall = np.mean([np.intersect1d(exact[i], got[i]).size / 10 for i in range(len(X))])
    assert recall >= 0.97
    assert not np.any(got == np.arange(len(X))[:, None])
    # scores are the true cosines, best first
    np.testing.assert_allclose(got_sim, np.take_along_axis(X @ X.T, got, axis=1), rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(got_sim, axis=1) <= 1e-6)


def test_clustered_neighbours_pad_when_there_are_too_few_rows(rng):
    X = _clustered(rng, n=5, groups=2)
    idx, sim = clustered_neighbours(X, 8, n_clusters=2, n_probe=2)
    assert idx.shape == (5, 8) and np.all(idx[:, 4:] == -1) and np.all(sim[:, 4:] == 0)
    assert not np.any(idx == np.arange(5)[:, None])


def test_spherical_kmeans_gives_unit_centroids_and_nearest_labels(rng):
    X = _clustered(rng, n=600, groups=4, noise=0.1)
    C, labels = spherical_kmeans(X, 4, seed=0)
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, np.argmax(X @ C.T, axis=1))
    assert np.unique(labels).size == 4
