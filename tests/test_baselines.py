"""Baseline scorers rank hand-built cases the way their definitions say."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.evaluation.baselines import (
    BASELINES, ALSScorer, CoReadScorer, ContentScorer, CtrPopularScorer, Events, FitData, OnlineCtrScorer,
    PopularScorer, RandomScorer, RecentPopularScorer, Scorer, make_baselines,
)
from recommender.domain import EVENT_CODES

HOUR = 3600.0
CUT = 1_000_000.0
IMP, CLICK, READ = EVENT_CODES["impression"], EVENT_CODES["click"], EVENT_CODES["read"]


def events(rows, history=None) -> Events:
    """rows: (user, item, event code, ts)."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 4)
    n = a.shape[0]
    return Events(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.int8), a[:, 3],
                  np.full(n, np.nan, dtype=np.float32),
                  np.zeros(n, dtype=bool) if history is None else np.asarray(history, dtype=bool))


def fit(scorer, rows, n_users=10, n_items=5, text=None, history=None):
    return scorer.fit(FitData(n_users, n_items, events(rows, history), CUT, text))


def order(scores) -> list[int]:
    return np.argsort(-np.asarray(scores), kind="stable").tolist()


ITEMS = np.arange(5)


def test_popular_ranks_the_most_clicked_first_and_learns_online():
    rows = [(u, 2, CLICK, CUT - 100) for u in range(4)] + [(u, 4, CLICK, CUT - 50) for u in range(2)] + [
        (0, 1, READ, CUT - 10)]
    scorer = fit(PopularScorer(), rows)
    assert order(scorer.score(0, ITEMS, CUT, None))[:3] == [2, 4, 1]
    scorer.partial_fit(events([(u, 3, CLICK, CUT + 10) for u in range(5)]))
    assert order(scorer.score(0, ITEMS, CUT + 20, None))[0] == 3
    # impressions are not popularity
    scorer.partial_fit(events([(u, 0, IMP, CUT + 30) for u in range(9)]))
    assert scorer.score(0, ITEMS, CUT + 40, None)[0] == 0


def test_recent_popular_prefers_fewer_recent_clicks_to_more_old_ones():
    rows = [(u, 0, CLICK, CUT - 72 * HOUR) for u in range(3)] + [(u, 1, CLICK, CUT - HOUR) for u in range(2)]
    plain = fit(PopularScorer(), rows)
    recent = fit(RecentPopularScorer(half_life_hours=24.0), rows)
    assert order(plain.score(0, ITEMS, CUT, None))[0] == 0
    assert order(recent.score(0, ITEMS, CUT, None))[0] == 1
    # 3 * 2^-3 = 0.375 vs 2 * 2^(-1/24): exactly the decayed sums
    s = recent.score(0, np.array([0, 1]), CUT, None)
    assert s[1] / s[0] == pytest.approx(2 * 2 ** (-1 / 24) / (3 * 2 ** -3))


def test_recent_popular_rebases_without_changing_the_ranking():
    scorer = fit(RecentPopularScorer(half_life_hours=1.0), [(0, 0, CLICK, CUT - 1)])
    scorer.partial_fit(events([(1, 1, CLICK, CUT + 100 * HOUR), (2, 1, CLICK, CUT + 100 * HOUR)]))
    s = scorer.score(0, ITEMS, CUT + 100 * HOUR, None)
    assert np.all(np.isfinite(s)) and order(s)[0] == 1


def test_ctr_popular_smooths_towards_the_site_ctr_and_ignores_history_clicks():
    rows = ([(u, 0, IMP, CUT - 10) for u in range(100)] + [(u, 0, CLICK, CUT - 9) for u in range(5)]
            + [(u, 1, IMP, CUT - 10) for u in range(4)] + [(u, 1, CLICK, CUT - 9) for u in range(2)]
            + [(u, 2, CLICK, CUT - 5000) for u in range(9)])  # history clicks: never shown
    history = [False] * 111 + [True] * 9
    scorer = fit(CtrPopularScorer(prior_strength=2.0), rows, n_users=100, history=history)
    p = 7 / 104
    s = scorer.score(0, np.array([0, 1, 2]), CUT, None)
    assert s == pytest.approx([(5 + 2 * p) / 102, (2 + 2 * p) / 6, p])
    assert order(s)[0] == 1


def test_online_ctr_learns_from_the_replay_and_batch_ctr_does_not():
    rows = [(u, 0, IMP, CUT - 10) for u in range(10)] + [(0, 0, CLICK, CUT - 9)] + [
        (u, 1, IMP, CUT - 10) for u in range(10)]
    batch, online = fit(CtrPopularScorer(), rows), fit(OnlineCtrScorer(), rows)
    assert not batch.online and online.online
    live = events([(u, 1, IMP, CUT + 5) for u in range(20)] + [(u, 1, CLICK, CUT + 6) for u in range(10)])
    online.partial_fit(live)
    assert order(online.score(0, np.array([0, 1]), CUT + 10, None))[0] == 1
    assert order(batch.score(0, np.array([0, 1]), CUT + 10, None))[0] == 0


def test_content_ranks_by_similarity_to_what_the_reader_read():
    text = sp.csr_matrix(np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0, 1], [0, 0.6, 0.8]]))
    scorer = fit(ContentScorer(), [], text=text)
    assert order(scorer.score(0, ITEMS, CUT, np.array([0])))[:2] == [0, 1]
    assert order(scorer.score(0, ITEMS, CUT, np.array([3, 3])))[:2] == [3, 4]
    assert np.all(scorer.score(0, ITEMS, CUT, np.array([], dtype=np.int64)) == 0)
    assert order(scorer.related(2, np.array([0, 1, 3, 4]), CUT))[:2] == [1, 3]  # items 1 and 4 (0.6 each)


def test_content_needs_text():
    with pytest.raises(ValueError, match="text"):
        fit(ContentScorer(), [])


def test_als_separates_two_reader_groups():
    # readers 0-4 read articles 0-4, readers 5-9 read articles 5-9 (a checker board)
    rows = [(u, i, CLICK, CUT - 100) for u in range(10) for i in range(10) if (u < 5) == (i < 5)]
    scorer = fit(ALSScorer(random_state=0), rows, n_users=11, n_items=10)
    s = scorer.score(0, np.arange(10), CUT, None)
    assert s[:5].min() > s[5:].max()
    assert np.all(scorer.score(10, np.arange(10), CUT, None) == 0)  # a reader unseen before the cut
    r = scorer.related(6, np.array([0, 1, 7, 8]), CUT)
    assert r[2:].min() > r[:2].max()


def test_coread_scores_articles_read_in_the_same_sessions():
    rows = []
    for u in range(6):  # 0 and 1 are read together; 2 alone, a day later
        rows += [(u, 0, CLICK, CUT - 5000 + u), (u, 1, CLICK, CUT - 4990 + u), (u, 2, CLICK, CUT - 90000 + u)]
    scorer = fit(CoReadScorer(), rows)
    s = scorer.score(9, np.array([1, 2, 3]), CUT, np.array([0]))
    assert s[0] > 0 and s[1] == 0 and s[2] == 0
    assert scorer.related(1, np.array([0, 2]), CUT)[0] > 0


def test_random_is_seeded():
    a = fit(RandomScorer(random_state=3), []).score(0, ITEMS, CUT, None)
    b = fit(RandomScorer(random_state=3), []).score(0, ITEMS, CUT, None)
    c = fit(RandomScorer(random_state=4), []).score(0, ITEMS, CUT, None)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_registry_and_errors():
    assert list(BASELINES) == ["random", "popular", "recent_popular", "ctr_popular", "online_ctr", "content",
                               "als", "coread"]
    assert [b.name for b in make_baselines(["als", "random"])] == ["als", "random"]
    with pytest.raises(ValueError, match="choose from"):
        make_baselines(["nope"])
    with pytest.raises(ValueError, match="half_life_hours"):
        fit(RecentPopularScorer(half_life_hours=0), [])
    with pytest.raises(NotImplementedError, match="related"):
        Scorer().related(0, ITEMS, CUT)


def test_events_take_and_positive():
    ev = events([(0, 1, IMP, 1.0), (0, 1, CLICK, 2.0), (1, 2, READ, 3.0)])
    assert ev.positive.tolist() == [False, True, True]
    assert len(ev.take(slice(1, 3))) == 2 and ev.take(np.array([2])).item.tolist() == [2]
