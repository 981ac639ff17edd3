import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score, roc_auc_score

from recommender.evaluation import metrics as M

# One impression of four shown articles: clicked ones are positions 1 and 3.
LABELS = np.array([0, 1, 0, 1])
SCORES = np.array([0.9, 0.8, 0.3, 0.1])
# Rank order by score: pos0 (no click), pos1 (click), pos2 (no), pos3 (click).

RECOMMENDED = np.array([10, 20, 30, 40, 50])
RELEVANT = {20, 50, 99}  # 20 at rank 2, 50 at rank 5, 99 never recommended


@pytest.fixture
def rng():
    return np.random.default_rng(20240310)


# --------------------------------------------------------------------------- #
# slow, obviously correct references
# --------------------------------------------------------------------------- #
def slow_auc(labels, scores):
    pos = [s for s, l in zip(scores, labels) if l == 1]
    neg = [s for s, l in zip(scores, labels) if l == 0]
    if not pos or not neg:
        return math.nan
    wins = 0.0
    for p in pos:
        for n in neg:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(pos) * len(neg))


def slow_ranked_labels(labels, scores):
    # sort by score desc; ties in input order (Python's sort is stable)
    idx = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [labels[i] for i in idx]


def slow_mrr(labels, scores):
    ranked = slow_ranked_labels(labels, scores)
    clicks = sum(ranked)
    if clicks == 0:
        return math.nan
    return sum(l / (r + 1) for r, l in enumerate(ranked)) / clicks


def slow_ndcg(labels, scores, k):
    def dcg(ls):
        return sum((2**l - 1) / math.log2(r + 2) for r, l in enumerate(ls[:k]))

    ideal = dcg(sorted(labels, reverse=True))
    if ideal == 0:
        return math.nan
    return dcg(slow_ranked_labels(labels, scores)) / ideal


# hypothesis strategy: an impression with small integer scores so that ties happen often
impressions = st.integers(min_value=1, max_value=30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(-5, 5), min_size=n, max_size=n),
    )
)
# impressions with distinct scores (rank metrics are then fully determined)
distinct_impressions = st.integers(min_value=1, max_value=30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(-1000, 1000), min_size=n, max_size=n, unique=True),
    )
)


# --------------------------------------------------------------------------- #
# impression-level: hand-computed
# --------------------------------------------------------------------------- #
def test_auc_hand_computed():
    # positive scores {0.8, 0.1} vs negative {0.9, 0.3}: only 0.8 > 0.3 wins -> 1 / 4
    assert M.auc(LABELS, SCORES) == pytest.approx(0.25)


def test_auc_ties_count_half():
    # pos {1, 1} vs neg {1, 0}: (0.5 + 1) + (0.5 + 1) = 3 wins out of 4 pairs
    assert M.auc([1, 1, 0, 0], [1.0, 1.0, 1.0, 0.0]) == pytest.approx(0.75)


def test_mrr_hand_computed():
    # clicks at ranks 2 and 4: (1/2 + 1/4) / 2 = 0.375
    assert M.mrr(LABELS, SCORES) == pytest.approx(0.375)


def test_ndcg_hand_computed():
    # DCG@5 = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606
    # IDCG@5 = 1/log2(2) + 1/log2(3) = 1 + 0.630930 = 1.630930  -> 0.650921
    dcg5 = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert M.ndcg_at_k(LABELS, SCORES, 5) == pytest.approx(dcg5 / idcg)
    assert M.ndcg_at_k(LABELS, SCORES, 5) == pytest.approx(0.650921, abs=1e-6)
    # @2: DCG = 1/log2(3) = 0.63093, IDCG = 1.63093 -> 0.38685
    assert M.ndcg_at_k(LABELS, SCORES, 2) == pytest.approx((1 / math.log2(3)) / idcg)
    # @1: top item not clicked -> 0
    assert M.ndcg_at_k(LABELS, SCORES, 1) == 0.0


def test_ndcg_graded_gain_is_exponential():
    # grades [2, 1] ranked in reverse: DCG = (2^1-1)/log2(2) + (2^2-1)/log2(3) = 1 + 1.892789 = 2.892789
    # IDCG = 3/log2(2) + 1/log2(3) = 3 + 0.630930 = 3.630930 -> 0.796707 (linear gain would give 0.859719)
    assert M.ndcg_at_k([2, 1], [0.0, 1.0], 2) == pytest.approx(0.796707, abs=1e-6)


def test_impression_metrics_keys_and_values():
    out = M.impression_metrics(LABELS, SCORES)
    assert set(out) == {"auc", "mrr", "ndcg@5", "ndcg@10"}
    assert out["auc"] == pytest.approx(0.25)
    assert out["mrr"] == pytest.approx(0.375)
    # all 4 items fit in the top 5 and the top 10, so both cut-offs agree
    assert out["ndcg@5"] == pytest.approx(out["ndcg@10"])


@pytest.mark.parametrize(
    "labels, scores",
    [([], []), ([0, 0, 0], [0.1, 0.2, 0.3]), ([1, 1], [0.1, 0.2])],
)
def test_auc_nan_when_undefined(labels, scores):
    assert math.isnan(M.auc(labels, scores))


@pytest.mark.parametrize("fn", [M.mrr, lambda l, s: M.ndcg_at_k(l, s, 5)])
@pytest.mark.parametrize("labels, scores", [([], []), ([0, 0], [0.3, 0.2])])
def test_rank_metrics_nan_without_clicks(fn, labels, scores):
    assert math.isnan(fn(labels, scores))


def test_impression_metrics_empty_all_nan():
    assert all(math.isnan(v) for v in M.impression_metrics([], []).values())


@pytest.mark.parametrize(
    "labels, scores, match",
    [
        ([0, 1], [0.1], "same length"),
        ([0, 2], [0.1, 0.2], "0 .not clicked. or 1"),
        ([0, 1], [0.1, np.nan], "NaN"),
    ],
)
def test_impression_bad_input_raises(labels, scores, match):
    with pytest.raises(ValueError, match=match):
        M.mrr(labels, scores)


def test_ndcg_rejects_bad_k():
    with pytest.raises(ValueError, match="positive integer"):
        M.ndcg_at_k(LABELS, SCORES, 0)


# --------------------------------------------------------------------------- #
# impression-level: references and properties
# --------------------------------------------------------------------------- #
@settings(max_examples=150)
@given(impressions)
def test_auc_matches_pair_counting_and_sklearn(imp):
    labels, scores = imp
    got = M.auc(labels, scores)
    ref = slow_auc(labels, scores)
    if math.isnan(ref):
        assert math.isnan(got)
        return
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(ref)
    assert got == pytest.approx(roc_auc_score(labels, scores))


@settings(max_examples=150)
@given(impressions, st.integers(1, 12))
def test_mrr_ndcg_match_slow_reference(imp, k):
    labels, scores = imp
    for got, ref in [(M.mrr(labels, scores), slow_mrr(labels, scores)),
                     (M.ndcg_at_k(labels, scores, k), slow_ndcg(labels, scores, k))]:
        if math.isnan(ref):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(ref)
            assert 0.0 <= got <= 1.0


@given(distinct_impressions, st.integers(1, 12))
def test_ndcg_matches_sklearn_on_binary_labels(imp, k):
    # sklearn uses linear gain; for binary labels 2^rel - 1 == rel, so they coincide.
    labels, scores = imp
    if sum(labels) == 0 or len(labels) < 2:
        return
    ref = ndcg_score(np.array([labels]), np.array([scores], dtype=float), k=k)
    assert M.ndcg_at_k(labels, scores, k) == pytest.approx(ref)


@given(impressions)
def test_perfect_ranking(imp):
    labels, _ = imp
    p = sum(labels)
    if p == 0 or p == len(labels):
        return
    scores = np.array(labels, dtype=float)  # clicks on top; ties within each group
    assert M.auc(labels, scores) == 1.0
    assert M.ndcg_at_k(labels, scores, 5) == pytest.approx(1.0)
    assert M.ndcg_at_k(labels, scores, 10) == pytest.approx(1.0)
    # MIND's MRR of a perfect list with P clicks is the mean of 1/1..1/P (1 for one click)
    assert M.mrr(labels, scores) == pytest.approx(sum(1 / r for r in range(1, p + 1)) / p)


def test_perfect_ranking_single_click_mrr_is_one():
    assert M.mrr([0, 0, 1, 0], [0.2, 0.1, 0.9, 0.3]) == 1.0


@given(impressions)
def test_reversed_scores_give_one_minus_auc(imp):
    labels, scores = imp
    a = M.auc(labels, scores)
    if math.isnan(a):
        return
    assert M.auc(labels, -np.array(scores, dtype=float)) == pytest.approx(1.0 - a)


@given(distinct_impressions, st.randoms(use_true_random=False))
def test_permutation_invariance(imp, random):
    labels, scores = imp
    perm = list(range(len(labels)))
    random.shuffle(perm)
    a = M.impression_metrics(labels, scores)
    b = M.impression_metrics([labels[i] for i in perm], [scores[i] for i in perm])
    for key in a:
        assert (math.isnan(a[key]) and math.isnan(b[key])) or a[key] == pytest.approx(b[key])


def test_break_ties_keeps_strict_order_and_is_seeded():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.5])
    out = M.break_ties(scores, 3)
    assert sorted(out) == [0, 1, 2, 3, 4]
    assert out[1] == 4 and out[3] == 0  # distinct scores keep their places
    assert set(out[[0, 2, 4]]) == {1, 2, 3}  # the three tied ones share the middle
    np.testing.assert_array_equal(out, M.break_ties(scores, 3))


def test_break_ties_is_uniform(rng):
    # two tied items: each should come first about half of the time
    first_wins = sum(M.break_ties([1.0, 1.0], rng)[0] == 1 for _ in range(2000))
    assert 900 < first_wins < 1100


def test_impression_metrics_random_ties_expected_mrr(rng):
    # constant scores, one click among n: expected 1/rank under random order is H_n / n
    n = 8
    labels = np.zeros(n)
    labels[0] = 1
    scores = np.zeros(n)
    assert M.impression_metrics(labels, scores)["mrr"] == 1.0  # stable order flatters it
    mean_mrr = np.mean([M.impression_metrics(labels, scores, rng=rng)["mrr"] for _ in range(4000)])
    assert mean_mrr == pytest.approx(sum(1 / r for r in range(1, n + 1)) / n, abs=0.02)
    # AUC counts ties as 0.5 whether or not rng is given
    assert M.impression_metrics(labels, scores, rng=rng)["auc"] == 0.5


# --------------------------------------------------------------------------- #
# top-K list metrics
# --------------------------------------------------------------------------- #
def test_topk_hand_computed():
    # top-3 = [10, 20, 30]: one hit (20, rank 2) out of 3 relevant
    assert M.recall_at_k(RECOMMENDED, RELEVANT, 3) == pytest.approx(1 / 3)
    assert M.precision_at_k(RECOMMENDED, RELEVANT, 3) == pytest.approx(1 / 3)
    assert M.hit_at_k(RECOMMENDED, RELEVANT, 3) == 1.0
    assert M.hit_at_k(RECOMMENDED, RELEVANT, 1) == 0.0
    # ndcg@3: DCG = 1/log2(3) = 0.63093; ideal has min(3, 3) = 3 hits:
    # 1 + 1/log2(3) + 1/log2(4) = 2.13093 -> 0.29608
    ideal3 = 1 + 1 / math.log2(3) + 0.5
    assert M.ndcg_at_k_binary(RECOMMENDED, RELEVANT, 3) == pytest.approx((1 / math.log2(3)) / ideal3)
    # ndcg@5: DCG = 1/log2(3) + 1/log2(6) = 0.63093 + 0.38685 = 1.01778; same ideal -> 0.47762
    assert M.ndcg_at_k_binary(RECOMMENDED, RELEVANT, 5) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(6)) / ideal3
    )
    # recall@5 = 2/3, precision@5 = 2/5, first hit at rank 2
    assert M.recall_at_k(RECOMMENDED, RELEVANT, 5) == pytest.approx(2 / 3)
    assert M.precision_at_k(RECOMMENDED, RELEVANT, 5) == pytest.approx(0.4)
    assert M.reciprocal_rank(RECOMMENDED, RELEVANT) == 0.5
    assert M.reciprocal_rank(RECOMMENDED, RELEVANT, k=1) == 0.0


def test_ndcg_binary_ideal_is_capped_by_k():
    # one relevant item at rank 1: ideal with min(k, 1) = 1 hit -> 1.0 for any k
    assert M.ndcg_at_k_binary([7, 8, 9], [7], 3) == 1.0
    # two relevant, k=1, hit at rank 1: ideal = 1 hit -> 1.0
    assert M.ndcg_at_k_binary([7, 8, 9], [7, 9], 1) == 1.0


def test_precision_divides_by_k_for_short_lists():
    # 1 hit in a list of 2 with k=10 -> 1/10
    assert M.precision_at_k([1, 2], [1], 10) == pytest.approx(0.1)


def test_topk_metrics_agree_with_single_functions():
    out = M.topk_metrics(RECOMMENDED, RELEVANT, ks=(1, 3, 5, 20))
    for k in (1, 3, 5, 20):
        assert out[f"recall@{k}"] == pytest.approx(M.recall_at_k(RECOMMENDED, RELEVANT, k))
        assert out[f"ndcg@{k}"] == pytest.approx(M.ndcg_at_k_binary(RECOMMENDED, RELEVANT, k))
        assert out[f"hit@{k}"] == M.hit_at_k(RECOMMENDED, RELEVANT, k)


def test_topk_nan_without_relevant_items():
    for fn in (M.recall_at_k, M.hit_at_k, M.precision_at_k, M.ndcg_at_k_binary):
        assert math.isnan(fn(RECOMMENDED, set(), 5))
    assert math.isnan(M.reciprocal_rank(RECOMMENDED, []))
    assert all(math.isnan(v) for v in M.topk_metrics(RECOMMENDED, set()).values())


def test_topk_works_with_string_ids_and_empty_list():
    assert M.recall_at_k(np.array(["a", "b"]), {"b", "c"}, 2) == 0.5
    assert M.recall_at_k(np.array([], dtype=np.int64), {1}, 5) == 0.0


def test_topk_rejects_duplicates():
    with pytest.raises(ValueError, match="duplicate"):
        M.recall_at_k([1, 1, 2], {1}, 3)


@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=20, unique=True),
    st.lists(st.integers(0, 40), min_size=1, max_size=10, unique=True),
    st.integers(1, 20),
)
def test_ndcg_binary_matches_sklearn(rec, rel, k):
    k = min(k, len(rec))
    # universe: recommended items (scores by rank) + unrecommended relevant ones below them
    extra = [r for r in rel if r not in rec]
    items = rec + extra
    y_true = np.array([[float(i in rel) for i in items]])
    y_score = np.array([[-float(r) for r in range(len(items))]])
    if len(items) < 2:
        return
    ref = ndcg_score(y_true, y_score, k=k)
    assert M.ndcg_at_k_binary(rec, set(rel), k) == pytest.approx(ref)
    r = M.recall_at_k(rec, rel, k)
    assert 0.0 <= r <= 1.0
    assert M.hit_at_k(rec, rel, k) == float(r > 0)


# --------------------------------------------------------------------------- #
# beyond accuracy
# --------------------------------------------------------------------------- #
def test_catalog_coverage():
    # distinct {0, 1, 2, 5} = 4 of 10
    assert M.catalog_coverage([[0, 1, 2], [2, 5]], 10) == pytest.approx(0.4)
    assert M.catalog_coverage(np.array([[0, 1], [1, 0]]), 4) == pytest.approx(0.5)
    assert math.isnan(M.catalog_coverage([], 10))
    with pytest.raises(ValueError, match="n_catalog"):
        M.catalog_coverage([[0, 1, 2]], 2)


def test_novelty():
    p = np.array([0.5, 0.25, 0.125, 1.0])
    # list 1: -log2 [0.5, 0.25] = [1, 2] -> 1.5; list 2: -log2 [0.125] = 3 -> mean (1.5 + 3) / 2 = 2.25
    assert M.novelty([[0, 1], [2]], p) == pytest.approx(2.25)
    assert M.novelty([[3]], p) == 0.0
    assert math.isnan(M.novelty([], p))
    with pytest.raises(ValueError, match="smooth"):
        M.novelty([[0]], np.array([0.0]))


def test_intra_list_diversity():
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    assert M.intra_list_diversity([e1, e2]) == pytest.approx(1.0)  # orthogonal: cos 0
    assert M.intra_list_diversity([e1, e1, e1]) == pytest.approx(0.0)  # identical: cos 1
    assert M.intra_list_diversity([e1, [-1.0, 0.0]]) == pytest.approx(2.0)  # opposite: cos -1
    # pairs (e1,e1)=1, (e1,e2)=0, (e1,e2)=0 -> mean 1/3 -> 2/3
    assert M.intra_list_diversity([e1, e1, e2]) == pytest.approx(2 / 3)
    assert math.isnan(M.intra_list_diversity([e1]))
    assert math.isnan(M.intra_list_diversity(np.empty((0, 2))))


def test_intra_list_diversity_matches_pairwise(rng):
    v = rng.normal(size=(12, 5))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sims = [v[i] @ v[j] for i in range(12) for j in range(i + 1, 12)]
    assert M.intra_list_diversity(v) == pytest.approx(1 - np.mean(sims))


def test_category_entropy():
    assert M.category_entropy(["Nasional"] * 4) == 0.0
    # two equally likely categories: 1 bit
    assert M.category_entropy(["Ekonomi", "Olahraga", "Ekonomi", "Olahraga"]) == pytest.approx(1.0)
    # p = [1/2, 1/4, 1/4]: 0.5*1 + 2 * 0.25*2 = 1.5 bits
    assert M.category_entropy(["Hiburan", "Hiburan", "Otomotif", "Regional"]) == pytest.approx(1.5)
    assert math.isnan(M.category_entropy([]))


def test_freshness_hours():
    at = 100_000.0
    # ages 1 h, 2 h, 10 h -> median 2 h
    assert M.freshness_hours([at - 3600, at - 7200, at - 36000], at) == pytest.approx(2.0)
    assert math.isnan(M.freshness_hours([], at))


def test_top_popular_items_and_popular_share():
    counts = np.zeros(200)
    counts[[7, 3]] = [50, 90]
    # 1% of 200 = 2 items, most popular first
    np.testing.assert_array_equal(M.top_popular_items(counts), [3, 7])
    # recommended 6 items, 3 of them in {3, 7} -> 0.5
    assert M.popular_share([[3, 1, 7], [3, 5, 6]], {3, 7}) == pytest.approx(0.5)
    assert math.isnan(M.popular_share([], {3}))
    assert M.top_popular_items(np.ones(10)).size == 1  # at least one item


# --------------------------------------------------------------------------- #
# paired bootstrap
# --------------------------------------------------------------------------- #
def test_bootstrap_finds_real_difference(rng):
    b = rng.uniform(0.4, 0.7, size=500)
    a = b + 0.03 + rng.normal(0, 0.05, size=500)
    out = M.paired_bootstrap(a, b, n_resamples=2000, rng=rng)
    assert out["mean_diff"] == pytest.approx(np.mean(a - b))
    assert 0 < out["ci_low"] < out["mean_diff"] < out["ci_high"]
    assert out["p_value"] < 0.01
    assert out["n"] == 500


def test_bootstrap_null_difference(rng):
    a = rng.uniform(0.4, 0.7, size=500)
    b = rng.uniform(0.4, 0.7, size=500)
    out = M.paired_bootstrap(a, b, n_resamples=2000, rng=rng)
    assert out["ci_low"] < 0 < out["ci_high"]
    assert 0.025 < out["p_value"] < 0.975


def test_bootstrap_identical_systems_and_nan_pairs():
    a = np.array([0.5, np.nan, 0.7, 0.2])
    out = M.paired_bootstrap(a, a.copy(), rng=0)
    assert out["n"] == 3  # nan pair dropped
    assert out["mean_diff"] == 0.0 and out["ci_low"] == 0.0 and out["ci_high"] == 0.0
    assert out["p_value"] == 1.0  # every resampled difference is <= 0


def test_bootstrap_empty_and_seeded():
    out = M.paired_bootstrap([], [])
    assert out["n"] == 0 and math.isnan(out["mean_diff"]) and math.isnan(out["p_value"])
    a, b = np.arange(20.0), np.arange(20.0)[::-1]
    assert M.paired_bootstrap(a, b, rng=5) == M.paired_bootstrap(a, b, rng=5)
    with pytest.raises(ValueError, match="same length"):
        M.paired_bootstrap([1.0], [1.0, 2.0])


def test_bootstrap_chunking_matches_unchunked(monkeypatch):
    a, b = np.linspace(0, 1, 50), np.linspace(0.1, 0.8, 50)
    whole = M.paired_bootstrap(a, b, n_resamples=300, rng=1)
    monkeypatch.setattr(M, "_BOOTSTRAP_CHUNK_CELLS", 50 * 7)  # 7 resamples per chunk
    assert M.paired_bootstrap(a, b, n_resamples=300, rng=1) == whole
