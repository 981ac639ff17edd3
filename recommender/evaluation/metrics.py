"""Offline evaluation metrics as small pure numpy functions.

Three families:

* Impression-level metrics with the MIND benchmark definitions (``auc``, ``mrr``,
  ``ndcg_at_k``, ``impression_metrics``): one impression is a list of shown
  articles with click labels in {0, 1} and the model's scores.
* Top-K list metrics (``recall_at_k``, ``ndcg_at_k_binary``, ``topk_metrics``, ...):
  one ranked list of recommended ids against a set of relevant ids.
* Beyond-accuracy metrics (coverage, novelty, diversity, freshness, popularity).

Every metric returns ``nan`` when it is undefined for its input (no impressions,
no clicks, only one class, no relevant items); average with ``np.nanmean`` and
report how many inputs were skipped. Inputs that are malformed (mismatched
shapes, NaN scores, duplicate recommendations) raise ``ValueError`` instead.

Ranking convention: items are ordered by score, highest first; equal scores keep
their input order (a stable sort). MIND's script resolves ties by whatever
``np.argsort`` returns, which is just as arbitrary; use :func:`break_ties` or pass
``rng`` to :func:`impression_metrics` to break ties at random instead, so that a
model emitting constant scores is not rewarded by the order of the candidates.
"""

import logging

import numpy as np
from scipy.stats import rankdata

log = logging.getLogger(__name__)

__all__ = [
    "auc",
    "mrr",
    "ndcg_at_k",
    "break_ties",
    "impression_metrics",
    "recall_at_k",
    "hit_at_k",
    "precision_at_k",
    "ndcg_at_k_binary",
    "reciprocal_rank",
    "topk_metrics",
    "catalog_coverage",
    "novelty",
    "intra_list_diversity",
    "category_entropy",
    "freshness_hours",
    "top_popular_items",
    "popular_share",
    "paired_bootstrap",
]


# --------------------------------------------------------------------------- #
# Impression-level metrics (MIND)
# --------------------------------------------------------------------------- #
def _check_impression(labels, scores, binary=True):
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(
            "labels and scores must be 1-D arrays of the same length (one entry per "
            f"shown article), got shapes {labels.shape} and {scores.shape}."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf; fix the model output before evaluating.")
    if binary:
        if not np.all((labels == 0) | (labels == 1)):
            raise ValueError("labels must be 0 (not clicked) or 1 (clicked).")
    elif not np.all(np.isfinite(labels)) or np.any(labels < 0):
        raise ValueError("labels must be finite non-negative relevance grades.")
    return labels, scores


def _rank_order(scores):
    """Indices that sort ``scores`` descending; ties keep input order."""
    return np.argsort(-scores, kind="stable")


def auc(labels, scores):
    """Area under the ROC curve of one impression; tied scores count 0.5.

    Same value as ``sklearn.metrics.roc_auc_score`` (Mann-Whitney U from
    average ranks), without its exception for a single class.

    Parameters
    ----------
    labels : array-like of shape (n_items,)
        1 for clicked, 0 for not clicked.
    scores : array-like of shape (n_items,)
        Model scores, higher means more likely to be clicked.

    Returns
    -------
    float
        AUC in [0, 1], or nan if the impression has no clicks or no non-clicks.
    """
    labels, scores = _check_impression(labels, scores)
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.nan
    ranks = rankdata(scores, method="average")
    u = ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def mrr(labels, scores):
    """MIND's MRR: mean of ``1 / rank`` over the clicked items of one impression.

    With several clicks even a perfect ranking scores below 1
    (``(1 + 1/2 + ... + 1/P) / P`` for ``P`` clicks), as in MIND.

    Parameters
    ----------
    labels : array-like of shape (n_items,)
        1 for clicked, 0 for not clicked.
    scores : array-like of shape (n_items,)
        Model scores.

    Returns
    -------
    float
        MRR in (0, 1], or nan if nothing was clicked.
    """
    labels, scores = _check_impression(labels, scores)
    n_pos = labels.sum()
    if n_pos == 0:
        return np.nan
    ranked = labels[_rank_order(scores)]
    return float(np.sum(ranked / np.arange(1, ranked.size + 1)) / n_pos)


def _dcg(gains_in_rank_order, k):
    g = gains_in_rank_order[:k]
    return float(np.sum((2.0**g - 1.0) / np.log2(np.arange(2, g.size + 2))))


def ndcg_at_k(labels, scores, k):
    """MIND's nDCG@k: gain ``2**rel - 1``, discount ``log2(rank + 1)``.

    Parameters
    ----------
    labels : array-like of shape (n_items,)
        Relevance grades; MIND uses clicks in {0, 1}.
    scores : array-like of shape (n_items,)
        Model scores.
    k : int
        Cut-off; lists shorter than ``k`` are used whole.

    Returns
    -------
    float
        nDCG in [0, 1], or nan if no item is relevant.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}.")
    labels, scores = _check_impression(labels, scores, binary=False)
    ideal = _dcg(np.sort(labels)[::-1], k)
    if ideal == 0:
        return np.nan
    return _dcg(labels[_rank_order(scores)], k) / ideal


def break_ties(scores, rng):
    """Replace scores by a strict ranking that breaks ties at random.

    Parameters
    ----------
    scores : array-like of shape (n_items,)
        Model scores.
    rng : numpy.random.Generator, int or None
        Source of randomness for the tie-break.

    Returns
    -------
    ndarray of shape (n_items,), float64
        ``0, 1, ..., n_items - 1`` arranged so that higher original scores get
        higher values and tied items are ordered uniformly at random. Only the
        order is kept, which is all the rank metrics here use.
    """
    scores = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(rng)
    order = np.lexsort((rng.random(scores.shape[0]), scores))
    out = np.empty(scores.shape[0], dtype=np.float64)
    out[order] = np.arange(scores.shape[0], dtype=np.float64)
    return out


def impression_metrics(labels, scores, rng=None):
    """The four MIND leaderboard metrics for one impression.

    Parameters
    ----------
    labels : array-like of shape (n_items,)
        1 for clicked, 0 for not clicked.
    scores : array-like of shape (n_items,)
        Model scores.
    rng : numpy.random.Generator, int or None
        If given, ties are broken at random (:func:`break_ties`) for MRR and
        nDCG. AUC always counts ties as 0.5, which is already the expectation
        over random tie-breaks.

    Returns
    -------
    dict
        Keys ``"auc"``, ``"mrr"``, ``"ndcg@5"``, ``"ndcg@10"``; nan where undefined.
    """
    labels, scores = _check_impression(labels, scores)
    ranked_scores = scores if rng is None else break_ties(scores, rng)
    return {
        "auc": auc(labels, scores),
        "mrr": mrr(labels, ranked_scores),
        "ndcg@5": ndcg_at_k(labels, ranked_scores, 5),
        "ndcg@10": ndcg_at_k(labels, ranked_scores, 10),
    }


# --------------------------------------------------------------------------- #
# Top-K list metrics
# --------------------------------------------------------------------------- #
def _hits(recommended, relevant):
    """Boolean hit vector over ``recommended`` and the number of relevant items."""
    recommended = np.asarray(recommended)
    if recommended.ndim != 1:
        raise ValueError(
            f"recommended must be a 1-D array of ids in rank order, got shape {recommended.shape}."
        )
    relevant = np.unique(np.asarray(list(relevant) if isinstance(relevant, set | frozenset) else relevant))
    if np.unique(recommended).size != recommended.size:
        raise ValueError("recommended contains duplicate ids; deduplicate the list before evaluating.")
    return np.isin(recommended, relevant), relevant.size


def _check_k(k):
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}.")


def recall_at_k(recommended, relevant, k):
    """Share of the relevant items found in the top ``k``.

    Parameters
    ----------
    recommended : array-like of shape (n_recommended,)
        Item ids in rank order, best first, without duplicates.
    relevant : set or array-like of shape (n_relevant,)
        Ids the user actually engaged with.
    k : int
        Cut-off.

    Returns
    -------
    float
        ``|top-k ∩ relevant| / |relevant|``, or nan if ``relevant`` is empty.
    """
    _check_k(k)
    hits, n_rel = _hits(recommended, relevant)
    if n_rel == 0:
        return np.nan
    return float(hits[:k].sum() / n_rel)


def hit_at_k(recommended, relevant, k):
    """1.0 if any relevant item is in the top ``k``, else 0.0; nan if none is relevant.

    Parameters are as in :func:`recall_at_k`.
    """
    _check_k(k)
    hits, n_rel = _hits(recommended, relevant)
    if n_rel == 0:
        return np.nan
    return float(hits[:k].any())


def precision_at_k(recommended, relevant, k):
    """Relevant items in the top ``k`` divided by ``k``; nan if none is relevant.

    The denominator is ``k`` even when fewer than ``k`` items were recommended,
    so a short list is not rewarded. Parameters are as in :func:`recall_at_k`.
    """
    _check_k(k)
    hits, n_rel = _hits(recommended, relevant)
    if n_rel == 0:
        return np.nan
    return float(hits[:k].sum() / k)


def _ndcg_from_hits(hits, n_rel, k):
    h = hits[:k]
    dcg = np.sum(h / np.log2(np.arange(2, h.size + 2)))
    ideal = np.sum(1.0 / np.log2(np.arange(2, min(k, n_rel) + 2)))
    return float(dcg / ideal)


def ndcg_at_k_binary(recommended, relevant, k):
    """nDCG@k with binary relevance; the ideal list has ``min(k, |relevant|)`` hits.

    Parameters are as in :func:`recall_at_k`. Returns nan if ``relevant`` is empty.
    """
    _check_k(k)
    hits, n_rel = _hits(recommended, relevant)
    if n_rel == 0:
        return np.nan
    return _ndcg_from_hits(hits, n_rel, k)


def reciprocal_rank(recommended, relevant, k=None):
    """``1 / rank`` of the first relevant item, 0.0 if none is found.

    Parameters
    ----------
    recommended, relevant
        As in :func:`recall_at_k`.
    k : int or None
        Only look at the top ``k``; None looks at the whole list.

    Returns
    -------
    float
        Reciprocal rank, or nan if ``relevant`` is empty.
    """
    if k is not None:
        _check_k(k)
    hits, n_rel = _hits(recommended, relevant)
    if n_rel == 0:
        return np.nan
    found = np.flatnonzero(hits[:k])
    return float(1.0 / (found[0] + 1)) if found.size else 0.0


def topk_metrics(recommended, relevant, ks=(5, 10, 20)):
    """Recall, nDCG (binary) and hit rate at several cut-offs in one pass.

    Parameters
    ----------
    recommended, relevant
        As in :func:`recall_at_k`.
    ks : iterable of int
        Cut-offs.

    Returns
    -------
    dict
        Keys ``"recall@K"``, ``"ndcg@K"``, ``"hit@K"`` for every ``K`` in ``ks``;
        all nan if ``relevant`` is empty.
    """
    ks = list(ks)
    for k in ks:
        _check_k(k)
    hits, n_rel = _hits(recommended, relevant)
    out = {}
    for k in ks:
        if n_rel == 0:
            out[f"recall@{k}"] = out[f"ndcg@{k}"] = out[f"hit@{k}"] = np.nan
            continue
        n_hit = hits[:k].sum()
        out[f"recall@{k}"] = float(n_hit / n_rel)
        out[f"ndcg@{k}"] = _ndcg_from_hits(hits, n_rel, k)
        out[f"hit@{k}"] = float(n_hit > 0)
    return out


# --------------------------------------------------------------------------- #
# Beyond accuracy
# --------------------------------------------------------------------------- #
def _as_lists(lists):
    """Sequence of 1-D arrays from a 2-D array or an iterable of lists."""
    if isinstance(lists, np.ndarray) and lists.ndim == 2:
        return list(lists)
    return [np.asarray(x).ravel() for x in lists]


def catalog_coverage(lists, n_catalog):
    """Share of the catalog that appears in at least one recommendation list.

    Parameters
    ----------
    lists : ndarray of shape (n_lists, k) or iterable of array-like
        Recommended item ids or indices, one list per user or request.
    n_catalog : int
        Number of items that could have been recommended.

    Returns
    -------
    float
        Distinct recommended items divided by ``n_catalog``; nan if there are no lists.
    """
    if n_catalog < 1:
        raise ValueError(f"n_catalog must be a positive integer, got {n_catalog}.")
    lists = _as_lists(lists)
    if not lists:
        return np.nan
    n_distinct = np.unique(np.concatenate(lists)).size
    if n_distinct > n_catalog:
        raise ValueError(
            f"{n_distinct} distinct items recommended but n_catalog={n_catalog}; "
            "pass the size of the full candidate catalog."
        )
    return float(n_distinct / n_catalog)


def novelty(lists, item_popularity_prob):
    """Mean self-information ``-log2 p(item)`` of recommended items.

    Averaged within each list, then over lists, so long lists do not dominate.

    Parameters
    ----------
    lists : ndarray of shape (n_lists, k) or iterable of array-like of int
        Recommended item indices.
    item_popularity_prob : array-like of shape (n_items,)
        Probability that an item is interacted with, e.g. the share of users who
        clicked it in the training period. Must be > 0 for recommended items.

    Returns
    -------
    float
        Novelty in bits; nan if there are no non-empty lists.
    """
    p = np.asarray(item_popularity_prob, dtype=np.float64)
    per_list = []
    for items in _as_lists(lists):
        if items.size == 0:
            continue
        probs = p[items.astype(np.intp)]
        if np.any(probs <= 0) or np.any(probs > 1):
            raise ValueError(
                "item_popularity_prob must be in (0, 1] for every recommended item; "
                "smooth the counts (e.g. add one) before dividing."
            )
        per_list.append(np.mean(-np.log2(probs)))
    if not per_list:
        return np.nan
    return float(np.mean(per_list))


def intra_list_diversity(list_vectors):
    """``1 - mean pairwise cosine similarity`` within one recommendation list.

    Parameters
    ----------
    list_vectors : array-like of shape (n_items, n_features)
        One embedding per recommended item; rows are L2-normalized here if
        they are not already.

    Returns
    -------
    float
        Diversity, 0 for identical items; nan for fewer than 2 items.
    """
    v = np.asarray(list_vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"list_vectors must be 2-D (n_items, n_features), got shape {v.shape}.")
    n = v.shape[0]
    if n < 2:
        return np.nan
    norms = np.linalg.norm(v, axis=1)
    if np.any(norms == 0):
        raise ValueError("list_vectors has all-zero rows; drop items without an embedding first.")
    v = v / norms[:, None]
    # sum_{i != j} <v_i, v_j> = |sum_i v_i|^2 - sum_i |v_i|^2, O(n d) instead of O(n^2 d).
    s = v.sum(axis=0)
    off_diag = s @ s - n
    return float(1.0 - off_diag / (n * (n - 1)))


def category_entropy(categories):
    """Shannon entropy (bits) of the categories in a list; 0 if all are equal.

    Parameters
    ----------
    categories : array-like of shape (n_items,)
        Category label of each recommended item.

    Returns
    -------
    float
        Entropy in bits, at most ``log2(n_distinct)``; nan for an empty list.
    """
    categories = np.asarray(categories)
    if categories.size == 0:
        return np.nan
    _, counts = np.unique(categories, return_counts=True)
    p = counts / counts.sum()
    return float(max(0.0, -np.sum(p * np.log2(p))))


def rank_biased_overlap(a, b, p=0.9):
    """Rank-biased overlap (Webber et al. 2010) of two ranked lists, extrapolated to full depth.

    How far re-ranking moved a list: 1 for the same order, 0 for no item in common; the top
    counts most (``p`` = the chance of looking one rank further). Compares the prefixes of
    both lists down to the shorter one's length.

    Parameters
    ----------
    a, b : array-like of shape (n_a,), (n_b,)
        Item ids, best first, each without repeats.
    p : float in (0, 1)

    Returns
    -------
    float
        RBO_ext in [0, 1]; nan if either list is empty.
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1); got {p}")
    a, b = list(a), list(b)
    k = min(len(a), len(b))
    if k == 0:
        return np.nan
    seen_a, seen_b, overlap, total = set(), set(), 0, 0.0
    for d in range(1, k + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += p ** d * overlap / d
    return float(min(1.0, overlap / k * p ** k + (1 - p) / p * total))


def rank_biased_entropy(categories, p=0.9):
    """Category entropy (bits) of a list with rank ``r`` (0-based) weighted ``p**r``.

    Like :func:`category_entropy`, but a mix at the top counts more than one further down,
    as readers see the top first. nan for an empty list.
    """
    categories = np.asarray(categories)
    if categories.size == 0:
        return np.nan
    _, inverse = np.unique(categories, return_inverse=True)
    w = np.bincount(inverse.ravel(), weights=p ** np.arange(categories.size))
    q = w / w.sum()
    q = q[q > 0]
    return float(max(0.0, -np.sum(q * np.log2(q))))


def freshness_hours(published_ts, at_ts):
    """Median age in hours of the recommended articles when they were served.

    Parameters
    ----------
    published_ts : array-like of shape (n_items,)
        Publication times, epoch seconds.
    at_ts : float or array-like of shape (n_items,)
        Time the recommendation was served, epoch seconds. A negative age means
        an article was recommended before it was published: a time leak.

    Returns
    -------
    float
        Median of ``(at_ts - published_ts) / 3600``; nan for an empty list.
    """
    published_ts = np.asarray(published_ts, dtype=np.float64)
    if published_ts.size == 0:
        return np.nan
    age = (np.asarray(at_ts, dtype=np.float64) - published_ts) / 3600.0
    return float(np.median(age))


def top_popular_items(item_counts, fraction=0.01):
    """Indices of the ``fraction`` most popular items (at least one), for :func:`popular_share`.

    Parameters
    ----------
    item_counts : array-like of shape (n_items,)
        Interaction count of each item in the training period.
    fraction : float
        Share of the catalog to call "popular", in (0, 1].

    Returns
    -------
    ndarray of shape (ceil(fraction * n_items),), intp
        Item indices, most popular first.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.size == 0:
        return np.empty(0, dtype=np.intp)
    n_top = max(1, int(np.ceil(fraction * counts.size)))
    top = np.argpartition(-counts, n_top - 1)[:n_top]
    return top[np.argsort(-counts[top], kind="stable")]


def popular_share(lists, top_items):
    """Share of all recommended items that belong to ``top_items``.

    Parameters
    ----------
    lists : ndarray of shape (n_lists, k) or iterable of array-like
        Recommended item ids or indices.
    top_items : set or array-like
        The most popular items, e.g. :func:`top_popular_items` (top 1%).

    Returns
    -------
    float
        Pooled over all lists; nan if nothing was recommended.
    """
    lists = _as_lists(lists)
    pooled = np.concatenate(lists) if lists else np.empty(0)
    if pooled.size == 0:
        return np.nan
    top = np.asarray(list(top_items) if isinstance(top_items, set | frozenset) else top_items)
    return float(np.isin(pooled, top).mean())


# --------------------------------------------------------------------------- #
# Significance
# --------------------------------------------------------------------------- #
_BOOTSTRAP_CHUNK_CELLS = 4_000_000  # resample indices held in memory at once


def paired_bootstrap(a, b, n_resamples=1000, rng=None):
    """Paired bootstrap of the mean difference between two systems.

    Both systems must be scored on the same impressions (or users) in the same
    order. Pairs where either value is nan (metric undefined) are dropped.

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Per-impression metric values of system A and system B.
    n_resamples : int
        Bootstrap resamples; the p-value has resolution ``1 / n_resamples``.
    rng : numpy.random.Generator, int or None
        Seed or generator for the resampling.

    Returns
    -------
    dict
        ``"mean_diff"`` (mean of ``a - b``), ``"ci_low"``, ``"ci_high"`` (95%
        percentile interval), ``"p_value"`` (one-sided: share of resamples whose
        mean difference is <= 0, small when A is better) and ``"n"`` (pairs
        used). Values are nan if no pair is usable.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            "a and b must be 1-D arrays of the same length, one value per shared "
            f"impression; got shapes {a.shape} and {b.shape}."
        )
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}.")
    d = a - b
    d = d[~np.isnan(d)]
    n = d.size
    if n == 0:
        return {"mean_diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": 0}
    if n < a.size:
        log.debug("paired_bootstrap: dropped %d pairs with nan", a.size - n)
    rng = np.random.default_rng(rng)
    boot = np.empty(n_resamples)
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // n)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        boot[start:stop] = d[idx].mean(axis=1)
    ci_low, ci_high = np.percentile(boot, [2.5, 97.5])
    return {
        "mean_diff": float(d.mean()),
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "p_value": float(np.mean(boot <= 0)),
        "n": int(n),
    }
