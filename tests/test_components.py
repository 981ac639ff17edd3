"""Small parts with known answers: top-k, neighbour lists, stories, co-reading, popularity, bridge, vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recommender.models.bridge import TextToFactorBridge
from recommender.models.coread import CoReading
from recommender.models.neighbours import cosine_neighbours, sparse_top_k, story_labels, top_k, top_k_rows
from recommender.models.popularity import DecayedCounters
from recommender.vocab import Vocabulary

HOUR = 3600.0
IMP, CLICK, READ, SHARE = 0, 1, 2, 3


@given(arrays(np.float64, st.integers(1, 60), elements=st.floats(-1e6, 1e6)), st.integers(1, 70))
def test_top_k_matches_a_full_sort(scores, k):
    got = top_k(scores, k)
    assert got.size == min(k, scores.size)
    np.testing.assert_array_equal(scores[got], np.sort(scores)[::-1][: got.size])


@given(arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 30)), elements=st.floats(-10, 10, width=32)),
       st.integers(1, 40))
def test_top_k_rows_matches_a_full_sort(scores, k):
    idx, val = top_k_rows(scores, k)
    expected = -np.sort(-scores, axis=1)[:, : idx.shape[1]]
    np.testing.assert_array_equal(val, expected)
    np.testing.assert_array_equal(np.take_along_axis(scores, idx, axis=1), val)


def test_cosine_neighbours_exclude_self_and_pad(rng):
    X = rng.normal(size=(30, 5)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    idx, sim = cosine_neighbours(X, X, k=40, query_ids=np.arange(30), block=7)
    assert idx.shape == (30, 40) and np.all(idx[:, 29:] == -1) and np.all(sim[:, 29:] == 0)
    assert not np.any(idx[:, :29] == np.arange(30)[:, None])
    brute = X @ X.T
    np.fill_diagonal(brute, -np.inf)
    np.testing.assert_array_equal(idx[:, 0], brute.argmax(axis=1))


def test_story_labels_are_connected_components():
    # 0-1-2 chained above threshold, 3-4 together, 5 alone
    idx = np.array([[1, -1], [2, 0], [1, -1], [4, -1], [3, -1], [0, -1]])
    sim = np.array([[0.9, 0], [0.8, 0.9], [0.8, 0], [0.7, 0], [0.7, 0], [0.1, 0]], dtype=np.float32)
    labels = story_labels(idx, sim, threshold=0.5)
    assert labels[0] == labels[1] == labels[2] and labels[3] == labels[4]
    assert len({labels[0], labels[3], labels[5]}) == 3


def test_coreading_counts_sessions_not_reading_order():
    # reader 0 reads a, b in one session, then c two hours later (new session); reader 1 reads a, b
    users = np.array([0, 0, 0, 1, 1])
    items = np.array([0, 1, 2, 0, 1])
    ts = np.array([0.0, 60.0, 2 * HOUR + 60, 10.0, 20.0])
    model = CoReading(half_life_days=None, k=3).fit(users, items, ts, n_items=3)
    nbrs, scores = model.similar(0)
    assert list(nbrs) == [1] and scores[0] == pytest.approx(1.0)  # always read together
    assert model.similar(2)[0].size == 0  # read alone
    idx, val = sparse_top_k(model.matrix_, 2)
    assert idx[1, 0] == 0 and val[1, 0] == pytest.approx(1.0)


def test_decayed_counters_halve_per_half_life_and_smooth_ctr():
    c = DecayedCounters.from_events(np.array([0, 0, 0, 1]), np.array([IMP, IMP, CLICK, IMP], dtype=np.int8),
                                    np.full(4, 100.0), n_items=2, as_of=100.0, half_life_hours=1.0)
    assert (c.impressions[0], c.clicks[0]) == (2.0, 1.0)
    c.advance(100.0 + HOUR)
    assert c.impressions[0] == pytest.approx(1.0) and c.clicks[0] == pytest.approx(0.5)
    c.grow(4)
    c.add(np.array([3, -1]), np.array([CLICK, CLICK], dtype=np.int8), np.array([100.0 + HOUR, 0.0]))
    assert c.clicks[3] == pytest.approx(1.0) and c.clicks.shape == (4,)
    ctr = c.ctr(prior_ctr=0.1, prior_strength=10)
    assert ctr[2] == pytest.approx(0.1)  # never shown: the prior
    assert ctr[0] > ctr[1]  # clicked beats shown-only


def test_bridge_learns_a_linear_map_and_blends_by_evidence(rng):
    text = rng.normal(size=(200, 6)).astype(np.float32)
    true_map = rng.normal(size=(6, 3)).astype(np.float32)
    factors = text @ true_map
    evidence = np.full(200, 50)
    bridge = TextToFactorBridge(alpha=1e-3, min_interactions=5, blend_k=10).fit(text, factors, evidence)
    np.testing.assert_allclose(bridge.predict(text[:5]), factors[:5], atol=1e-2)
    learned, bridged = np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)
    blended = bridge.blend(learned, bridged, np.array([0, 10]))
    np.testing.assert_allclose(blended, [[0, 0, 0], [0.5, 0.5, 0.5]])
    too_few = TextToFactorBridge(min_interactions=100).fit(text, factors, evidence)
    assert too_few.n_fitted_ == 0 and not np.any(too_few.predict(text[:1]))


@settings(max_examples=50)
@given(st.lists(st.text(alphabet="abcXYZ019_-", min_size=1, max_size=6), unique=True, max_size=30),
       st.lists(st.text(alphabet="abcXYZ019_-", min_size=1, max_size=6), max_size=10))
def test_vocabulary_round_trips_and_extends(ids, extra):
    vocab = Vocabulary(ids)
    assert len(vocab) == len(ids)
    assert [vocab.id(vocab.index(i)) for i in ids] == ids
    bigger = vocab.extended(extra)
    assert [bigger.index(i) for i in ids] == list(range(len(ids)))  # old indices never move
    assert set(bigger.ids.tolist()) == set(ids) | set(extra)
    assert np.all(vocab.indices(["not-there-" * 3]) == -1)


def test_vocabulary_rejects_duplicates():
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["a", "a"])


class _Snap:
    """Just what diversify reads: text vectors and titles."""

    def __init__(self, text, titles):
        self._text, self._titles = text, titles

    def text(self, idx):
        return self._text[np.asarray(idx)]

    def meta(self, i):
        from types import SimpleNamespace

        return SimpleNamespace(title=self._titles[i])

    def title(self, i):
        return self._titles[i]


def test_diversify_caps_a_story_pair_by_pair_not_by_chained_labels():
    from recommender.serving.ranking import Candidates, diversify

    rng = np.random.default_rng(3)
    base = rng.normal(size=8)
    story = np.stack([base + 0.3 * rng.normal(size=8) for _ in range(5)] + [rng.normal(size=8) for _ in range(3)])
    text = (story / np.linalg.norm(story, axis=1, keepdims=True)).astype(np.float32)
    titles = [f"judul berbeda nomor {i} {'x' * i}" for i in range(8)]
    # every article carries one chained label (as connected components do on a real catalog)
    cand = Candidates(np.arange(8), {"story": np.zeros(8, dtype=np.int64), "category": np.zeros(8, dtype=np.int64)},
                      score=np.linspace(1.0, 0.3, 8))
    snap = _Snap(text, titles)
    by_label = diversify(snap, cand, 6, max_per_story=2, max_category_share=1.0, duplicate_similarity=0.99)
    pairwise = diversify(snap, cand, 6, max_per_story=2, max_category_share=1.0, duplicate_similarity=0.99,
                         story_similarity=0.7)
    assert (text[:5] @ text[:5].T)[np.triu_indices(5, 1)].min() > 0.7  # the first five are one story
    assert list(pairwise[:2]) == [0, 1] and set(pairwise[2:5]) == {5, 6, 7}  # then the other stories
    assert list(by_label[:2]) == [0, 1] and len(by_label) == 6  # labels cap everything, then fill


def _greedy_by_definition(snap, cand, n, max_per_story, share, duplicate, story_similarity=None, uncapped=None):
    """diversify's rules, one pass over every rank per pick: the best rank in play whose category
    has room and whose story is not full (or is uncapped); none: the best in play; a near-duplicate
    of a chosen article is dropped."""
    import math

    from recommender.serving.ranking import near_duplicate, top_k

    order = top_k(cand.score, max(300, 3 * n))
    text = snap.text(cand.index[order])
    story, category = cand.features["story"][order], cand.features["category"][order]
    free = np.zeros(order.size, bool) if uncapped is None else uncapped[order]
    pairwise = story_similarity is not None and bool(np.any(text, axis=1).all())
    open_, chosen = np.ones(order.size, bool), []

    def copies(r):
        if pairwise:
            return sum(float(text[c] @ text[r]) >= story_similarity for c in chosen)
        return sum(story[c] == story[r] for c in chosen)

    while len(chosen) < n and open_.any():
        allowed = math.ceil(share * (len(chosen) + 1))
        fits = [r for r in np.flatnonzero(open_) if sum(category[c] == category[r] for c in chosen) < allowed
                and (free[r] or copies(r) < max_per_story)]
        rank = fits[0] if fits else int(np.flatnonzero(open_)[0])
        open_[rank] = False
        if any(text[rank].any() and near_duplicate(snap, int(cand.index[order[c]]), int(cand.index[order[rank]]),
                                                   float(text[c] @ text[rank]), duplicate) for c in chosen):
            continue
        chosen.append(rank)
    return [int(order[c]) for c in chosen]


@pytest.mark.parametrize("seed", range(12))
def test_diversify_picks_what_its_rules_pick_one_rank_at_a_time(seed):
    """The greedy loop's shortcuts (per-category queues, the best rank with room) change nothing:
    random candidates with few stories and categories, by labels and pair by pair, with uncapped ones."""
    from recommender.serving.ranking import Candidates, diversify

    rng = np.random.default_rng(seed)
    m = int(rng.integers(5, 60))
    centres = rng.normal(size=(4, 6))
    labels = rng.integers(0, 4, m)
    text = centres[labels] + rng.normal(scale=0.6, size=(m, 6))
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    titles = [f"judul {'sama' if rng.random() < 0.3 else i} berita" for i in range(m)]
    cand = Candidates(np.arange(m), {"story": labels.astype(np.int64), "category": rng.integers(0, 3, m)},
                      score=rng.random(m))
    snap = _Snap(text, titles)
    uncapped = rng.random(m) < 0.2
    for n in (1, 5, 12):
        for pair in (None, 0.5):
            for free in (None, uncapped):
                args = (snap, cand, n, int(rng.integers(1, 3)), float(rng.choice([0.3, 0.5, 1.0])), 0.9)
                got = diversify(*args, story_similarity=pair, uncapped=free).tolist()
                assert got == _greedy_by_definition(*args, story_similarity=pair, uncapped=free), (n, pair)


def _mmr_case(story=None, text=None):
    """Six articles of category 0 (scores 1.0 .. 0.75) above three of category 1 (0.5 .. 0.4)."""
    from recommender.serving.ranking import Candidates

    score = np.array([1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.5, 0.45, 0.4])
    category = np.array([0] * 6 + [1] * 3)
    text = np.eye(9, dtype=np.float32) if text is None else text  # unrelated texts unless told
    story = np.arange(9) if story is None else story
    cand = Candidates(np.arange(9), {"story": story, "category": category}, score=score)
    return _Snap(text, [f"judul {i}" for i in range(9)]), cand


def test_mmr_with_lambda_one_is_the_score_order_and_lower_lambda_spreads_categories():
    from recommender.serving.ranking import mmr

    snap, cand = _mmr_case()
    assert list(mmr(snap, cand, 6, 1.0, 0.99)) == [0, 1, 2, 3, 4, 5]
    # lambda 0.5: the list is all category 0 after five picks (penalty 0.5 x 0.5), enough to lift
    # the best of category 1 (relevance 1/6) over the sixth of category 0 (relevance 7/12)
    assert list(mmr(snap, cand, 6, 0.5, 0.99)) == [0, 1, 2, 3, 4, 6]
    # lambda 0.3: category 1's best comes second, and two of its three articles are in the list
    low = mmr(snap, cand, 6, 0.3, 0.99)
    assert list(low[:2]) == [0, 6] and set(low) == {0, 1, 2, 3, 6, 7}
    # pages are stable: the first k are the same whatever n >= k
    assert list(mmr(snap, cand, 3, 0.3, 0.99)) == list(low[:3])


def test_mmr_penalises_story_mates_by_label_and_by_text_but_not_follow_ups():
    from recommender.serving.ranking import mmr

    story = np.arange(9)
    story[1] = 0  # 1 is another article of 0's story
    snap, cand = _mmr_case(story=story)
    # 1's story term costs it 0.3 x 0.5 = 0.15 against the others, 2.6 ranks' worth of relevance (0.7 x 1/12 each)
    assert list(mmr(snap, cand, 4, 0.7, 0.99)) == [0, 2, 3, 1]
    assert list(mmr(snap, cand, 3, 0.7, 0.99, story_labels=False, categories=False)) == [0, 1, 2]
    text = np.eye(9, dtype=np.float32)
    text[1] = (text[0] + text[1]) / np.sqrt(2)  # 1 is close to 0 in text (cosine 0.71), not a duplicate
    snap, cand = _mmr_case(text=text)
    assert list(mmr(snap, cand, 3, 0.7, 0.99, story_labels=False, categories=False)) == [0, 2, 3]
    follow_up = np.zeros(9, dtype=bool)
    follow_up[1] = True  # a follow-up of the anchor's story carries no story term
    assert list(mmr(snap, cand, 3, 0.7, 0.99, uncapped=follow_up, story_labels=False, categories=False)) == [0, 1, 2]


def test_mmr_rejects_a_lambda_outside_zero_to_one():
    from recommender.params import RankingParams
    from recommender.serving.ranking import mmr

    snap, cand = _mmr_case()
    with pytest.raises(ValueError, match="between 0 and 1"):
        mmr(snap, cand, 3, 1.5, 0.99)
    with pytest.raises(ValueError, match="between 0 and 1"):
        RankingParams(diversity="mmr", mmr_lambda=-0.1)
    with pytest.raises(ValueError, match="caps, mmr"):
        RankingParams(diversity="MMR")
