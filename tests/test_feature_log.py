"""The feature log and exploration: what the engine stores with a sample of served feeds.

The learned stage's feature vectors of the items shown are stored with the list (a share of
feeds, ``feature_log_rate``), written off the request path with the served lists; with the
exploration stage on, every feed is logged with each item's selection probability, drawn from a
per-list seed so the served order can be reproduced.
"""

from __future__ import annotations

import numpy as np
import pytest

from recommender.evaluation.learning import with_learned
from recommender.models.learned import LearnedRanker
from recommender.serving.exploration import explore, list_seed, pool_of
from recommender.serving.features import FEATURE_NAMES


def ids(ranked) -> list[str]:
    return [i.article_id for i in ranked.items]


def age_ranker() -> LearnedRanker:
    """A ranker that prefers older articles (turns the fresh-first blend around)."""
    names = list(FEATURE_NAMES)
    X = np.zeros((2, len(names)))
    X[1, names.index("age")] = 1.0
    return LearnedRanker(kind="logistic").fit(np.vstack([X] * 10), np.tile([0.0, 1.0], 10), names)


@pytest.fixture
def own(trained, tmp_path):
    return trained.clone(tmp_path)


def test_every_feed_is_logged_with_the_vectors_its_ranker_scored_at_rate_1(own):
    engine = own.engine(feature_log_rate=1.0)
    ranker = age_ranker()
    engine.use_model(with_learned(engine._state.model, ranker))
    readers = sorted(own.readers)[:4]
    served = [engine.feed(r, limit=10) for r in readers]
    served.append(engine.feed(readers[0], limit=10, cursor=served[0].next_cursor))  # page 2
    assert engine.flush_impressions() == sum(len(s.items) for s in served)
    rows = {r.list_id: r for r in own.store.feature_logs()}
    assert set(rows) == {s.list_id for s in served}
    for s in served:
        row = rows[s.list_id]
        assert row.article_ids == tuple(ids(s)) and row.names == FEATURE_NAMES
        assert row.offset == s.extra["offset"] and row.propensities is None
        assert not np.isnan(row.features).any()
        # the stored vectors are what the ranker scored: its scores of them are the served scores
        np.testing.assert_allclose(ranker.decision_function(row.features), [i.score for i in s.items],
                                   rtol=1e-4, atol=1e-4)
    assert rows[served[-1].list_id].offset == 10
    engine.close()


def test_without_a_ranker_the_logged_vectors_are_the_ones_a_ranker_would_score(own):
    engine = own.engine(feature_log_rate=1.0)
    reader = sorted(own.readers)[5]
    blend = engine.feed(reader, limit=10)
    engine.flush_impressions()
    (row,) = own.store.feature_logs()
    names = list(FEATURE_NAMES)
    # the blend's score is a column: the list is in blend order (before diversity moved it)
    np.testing.assert_allclose(row.features[:, names.index("blend")], [i.score for i in blend.items],
                               rtol=1e-4, atol=1e-5)
    assert np.isfinite(row.features).all()  # every shown item was in the pool the features cover
    engine.close()


def test_without_a_ranker_the_vectors_are_computed_at_the_write_yet_as_of_the_list(own):
    """Without a ranker the logged vectors are computed off the request path, when the list is
    written: the same as computed at once, even after the live counters moved in between."""
    from recommender.domain import Interaction

    at_once, later = own.engine(feature_log_rate=1.0), own.engine(feature_log_rate=1.0)
    readers = sorted(own.readers)[6:9]
    first = [at_once.feed(r, limit=10) for r in readers]
    second = [later.feed(r, limit=10) for r in readers]
    assert [ids(s) for s in first] == [ids(s) for s in second]
    at_once.flush_impressions()
    # a crowd clicks every shown article, and the second engine counts it before its write
    own.store.add_events([Interaction(user_id=f"crowd{j}", article_id=a, event="click", ts=own.now - 5)
                          for j in range(30) for a in {a for s in first for a in ids(s)}])
    later.refresh()
    later.flush_impressions()
    rows = {r.list_id: r for r in own.store.feature_logs()}
    names = list(FEATURE_NAMES)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(rows[b.list_id].features, rows[a.list_id].features)
        assert np.isfinite(rows[a.list_id].features).all()
    # and the counters did move: a feed built now sees the crowd's clicks
    again = later.feed(readers[0], limit=10, log=True)
    later.flush_impressions()
    now_row = own.store.feature_logs()
    moved = {r.list_id: r for r in now_row}[again.list_id].features[:, names.index("clicks_all")]
    assert moved.max() > rows[first[0].list_id].features[:, names.index("clicks_all")].max()
    for e in (at_once, later):
        e.close()


def test_feature_logging_is_off_at_rate_0_and_for_lists_not_logged(own):
    engine = own.engine(feature_log_rate=0.0)
    reader = sorted(own.readers)[0]
    engine.feed(reader, limit=10)
    on = own.engine(feature_log_rate=1.0)
    on.feed(reader, limit=10, log=False)  # the console's look at a feed logs nothing
    for e in (engine, on):
        e.flush_impressions()
        e.close()
    assert own.store.feature_logs() == [] and own.store.stats()["served_lists"] >= 1


def test_a_rate_logs_about_that_share_of_feeds(own):
    # every feed built afresh: a reader's cached first page (feed_cache_seconds) is served again
    # under a new list id without being built, so there are no features to log for it
    engine = own.engine(feature_log_rate=0.25, feed_cache_seconds=0)
    readers = sorted(own.readers)
    lists = [engine.feed(readers[k % len(readers)], limit=5).list_id for k in range(400)]
    engine.flush_impressions()
    logged = {r.list_id for r in own.store.feature_logs()}
    assert logged <= set(lists)
    assert 0.17 < len(logged) / len(lists) < 0.33  # binomial(400, 0.25): sd 0.022
    engine.close()


def test_forget_removes_logged_vectors_and_a_list_queued_before_it_is_not_written(own):
    engine = own.engine(feature_log_rate=1.0)
    reader, other = sorted(own.readers)[:2]
    engine.feed(reader, limit=10)
    engine.feed(other, limit=10)
    engine.flush_impressions()
    engine.feed(reader, limit=10)  # queued, then the reader is forgotten before the flush
    engine.forget_user(reader)
    engine.flush_impressions()
    assert [r.user_id for r in own.store.feature_logs()] == [other]
    engine.close()


def test_exploration_logs_probabilities_that_sum_to_one_per_slot_and_replay_from_the_seed(own):
    engine = own.engine(explore_epsilon=0.3, explore_pool=30, feature_log_rate=0.0)
    readers = sorted(own.readers)[:40]
    served = [engine.feed(r, limit=8) for r in readers]
    engine.flush_impressions()
    rows = {r.list_id: r for r in own.store.feature_logs()}
    assert set(rows) == {s.list_id for s in served if s.items}  # every feed, whatever the rate
    assert all(r.names == () and r.features.shape == (len(r.article_ids), 0) for r in rows.values())  # rate 0
    explored = 0
    for s in served:
        p = rows[s.list_id].propensities
        assert p is not None and p.shape == (len(s.items),)
        assert ((p > 0) & (p <= 1)).all()
        # an explored list's item: 0.3 / |pool| (pool: the 30 best plus greedy items beyond them);
        # the greedy list's item at its own slot: 0.7 more
        low = p.min() if p.min() < 0.5 else p.min() - 0.7
        assert 0.3 / 38 - 1e-12 <= low <= 0.3 / 30 + 1e-12
        assert np.all(np.isclose(p, low) | np.isclose(p, 0.7 + low))
        explored += int((p < 0.5).any())
    assert 3 <= explored <= 25  # Binomial(40, 0.3), the chance of explored lists agreeing with greedy aside
    engine.close()


def test_a_sampled_explored_feed_carries_both_its_vectors_and_its_probabilities(own):
    engine = own.engine(explore_epsilon=1.0, explore_pool=25, feature_log_rate=1.0)
    served = engine.feed(sorted(own.readers)[3], limit=8)
    engine.flush_impressions()
    (row,) = own.store.feature_logs()
    assert row.article_ids == tuple(ids(served)) and row.names == FEATURE_NAMES
    assert not np.isnan(row.features).any()  # every item of the random draw came from the scored pool
    pool = 25 + 8  # epsilon 1: every list drawn; p = 1 / |pool| (greedy items beyond the 25 best join it)
    assert np.all((row.propensities >= 1 / pool - 1e-12) & (row.propensities <= 1 / 25 + 1e-12))
    engine.close()


def test_the_served_order_is_reproducible_from_the_lists_seed():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=60)
    greedy = np.argsort(-scores)[:10]
    for seed in (list_seed("l0123456789abcdef"), 7, 2**63 - 1):
        a = explore(greedy, scores, 0.5, 25, seed)
        b = explore(greedy, scores, 0.5, 25, seed)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    draws = {tuple(explore(greedy, scores, 0.5, 25, s)[0]) for s in range(50)}
    assert tuple(greedy) in draws and len(draws) > 10  # seeds differ, some lists explored
    with pytest.raises(ValueError, match="epsilon"):
        explore(greedy, scores, 1.5, 25, 0)


def test_logged_probabilities_are_the_frequencies_of_each_item_at_each_slot():
    """The logged P(item at slot) is what happens: over many seeds, each item lands at each slot
    that often, and for every slot the probabilities over the pool sum to 1."""
    rng = np.random.default_rng(4)
    scores = rng.normal(size=30)
    greedy = np.argsort(scores)[:5]  # a greedy list that is not the score order
    eps, pool = 0.4, 12
    candidates = pool_of(greedy, scores, pool)
    assert set(greedy) <= set(candidates) and candidates.size == 12 + 5 - np.isin(greedy, np.argsort(-scores)[:12]).sum()
    n = 20_000
    counts = np.zeros((candidates.size, greedy.size))
    logged = np.zeros((candidates.size, greedy.size))
    col = {int(c): j for j, c in enumerate(candidates)}
    for seed in range(n):
        shown, p, _ = explore(greedy, scores, eps, pool, seed)
        for k, (a, pa) in enumerate(zip(shown.tolist(), p.tolist())):
            counts[col[a], k] += 1
            logged[col[a], k] = pa
    freq = counts / n
    expected = eps / candidates.size + (1 - eps) * (candidates[:, None] == greedy[None, :])
    np.testing.assert_allclose(freq, expected, atol=4 * np.sqrt(0.6 * 0.4 / n))
    np.testing.assert_allclose(logged[counts > 0], expected[counts > 0])
    np.testing.assert_allclose(expected.sum(axis=0), 1.0)


def test_training_uses_the_vectors_served_not_a_recomputation_after_the_state_moved(own):
    """Serve with a ranker, let live state change (a crowd clicks the lists' first items), then
    build training rows: the logged lists' rows are what the ranker scored when serving; the
    same lists recomputed now score differently."""
    from recommender.domain import Interaction
    from recommender.evaluation.learning import learning_rows, log_rows
    from recommender.params import TrainParams
    from recommender.serving.engine import Engine, EngineConfig

    clock = [own.now]
    engine = Engine(own.store, own.models_dir, EngineConfig(feature_log_rate=1.0), clock=lambda: clock[0])
    ranker = age_ranker()
    engine.use_model(with_learned(engine._state.model, ranker))
    readers = sorted(own.readers)[:8]
    served = [engine.feed(r, limit=10) for r in readers]
    engine.flush_impressions()
    own.store.add_events([Interaction(user_id=r, article_id=s.items[1].article_id, event="click", ts=own.now + 5,
                                      list_id=s.list_id, position=1) for r, s in zip(readers, served)])
    own.store.add_events([Interaction(user_id=f"crowd{j}", article_id=s.items[0].article_id, event="click",
                                      ts=own.now + 10) for j in range(40) for s in served])
    clock[0] = own.now + 60
    engine.follow()

    data, covered = log_rows(own.store, own.now - 1, own.now + 3600)
    assert data.n_groups == len(served) and covered == {(r, round(own.now, 3)) for r in readers}
    by_list = sorted(zip(readers, served), key=lambda rs: rs[1].list_id)  # rows come by (time, list id)
    for g, (reader, s) in enumerate(by_list):
        rows = data.group == g
        assert data.y[rows].tolist() == [0.0, 1.0] + [0.0] * (len(s.items) - 2)  # the reader's own click only
        assert data.position[rows].tolist() == list(range(len(s.items)))
        np.testing.assert_allclose(ranker.decision_function(data.X[rows]), [i.score for i in s.items],
                                   rtol=1e-4, atol=1e-4)
        now_scores = engine.score(reader, ids(s))
        assert np.max(np.abs(now_scores - [i.score for i in s.items])) > 1e-3  # a recomputation would differ
    # the learned stage's rows: these lists as logged, the rest of the last day replayed
    all_rows, info = learning_rows(own.store, own.now + 3600, TrainParams(), days=1.0)
    assert info["logged_lists"] == len(served) and info["replayed_lists"] > 0
    assert info["lists"] == info["logged_lists"] + info["replayed_lists"] == all_rows.n_groups
    assert info["rows"] == info["logged_rows"] + info["replayed_rows"]
    np.testing.assert_array_equal(all_rows.X[: info["logged_rows"]], data.X)
    assert not np.isclose(all_rows.ts[info["logged_lists"]:], own.now, rtol=0, atol=1e-3).any()  # not replayed too
    engine.close()


def test_the_service_takes_its_feature_log_rate_and_exploration_from_the_environment(own, tmp_path, monkeypatch):
    from api import create_app

    base = {"TESTING": True, "NEWSREC_HOME": str(tmp_path / "home"), "NEWSREC_DB": str(own.store.path),
            "NEWSREC_MODELS": str(own.models_dir)}
    monkeypatch.setenv("NEWSREC_EXPLORE_EPSILON", "0.1")
    app = create_app({**base, "NEWSREC_FEATURE_LOG_RATE": "0.5"})
    config = app.extensions["newsrec"].config
    assert (config.feature_log_rate, config.explore_epsilon) == (0.5, 0.1)
    app.extensions["newsrec"].close()
    for bad in ("1.5", "-0.1", "often", "nan"):
        with pytest.raises(ValueError, match="NEWSREC_FEATURE_LOG_RATE must be a number from 0 to 1"):
            create_app({**base, "NEWSREC_FEATURE_LOG_RATE": bad})


def test_training_reads_logged_columns_by_name_and_replays_rows_of_a_feature_set_lacking_one(own):
    """A row logged by another feature set: columns in another order plus one that is gone now
    are read by name; a row missing one of today's columns is not used (its list is replayed)."""
    from recommender.domain import Interaction
    from recommender.evaluation.learning import log_rows
    from recommender.store import FeatureLogRow

    arts = tuple(sorted(own.articles)[:4])
    names = list(FEATURE_NAMES)
    later = tuple(reversed(names)) + ("retired_feature",)
    X = np.arange(4 * len(later), dtype=float).reshape(4, len(later))
    t = own.now
    own.store.add_feature_logs([
        FeatureLogRow("Lre", "r1", t, arts, later, X),
        FeatureLogRow("Lold", "r2", t + 1, arts, tuple(names[1:]), np.zeros((4, len(names) - 1)))])
    own.store.add_events([Interaction(user_id=u, article_id=arts[2], event="click", ts=t + 60)
                          for u in ("r1", "r2")])
    data, covered = log_rows(own.store, t - 1, t + 3600)
    assert covered == {("r1", round(t, 3))}  # r2's row lacks "blend": its list is left to the replay
    assert data.n_groups == 1 and data.y.tolist() == [0.0, 0.0, 1.0, 0.0]
    np.testing.assert_array_equal(data.X, X[:, [later.index(n) for n in names]])
