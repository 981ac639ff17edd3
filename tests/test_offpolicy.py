"""Off-policy evaluation (``evaluation.offpolicy``) on generated logs where the truth is known.

Readers click an item at slot k with probability examination(k) x relevance(item). Lists are
served by a poor greedy ranker with the real exploration stage (``serving.exploration.explore``)
on top; a candidate that ranks by true relevance is then judged from that log alone. Its true
click-through is computed from the click model; the IPS estimates must land near it, while the
click-through counted in the log (what the logging ranker earned) does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from recommender.evaluation.offpolicy import LoggedSlots, ips_estimate
from recommender.serving.exploration import explore

SLOTS, POOL = 5, 10
EXAMINATION = 1.0 / (1.0 + np.arange(SLOTS)) ** 0.8


def generated_log(n_lists: int, epsilon: float, seed: int):
    rng = np.random.default_rng(seed)
    shown, clicks, props, best, truth = [], [], [], [], []
    for g in range(n_lists):
        relevance = rng.beta(1.0, 3.0, size=POOL)
        logging_score = -relevance + rng.normal(0, 0.15, size=POOL)  # a poor ranker: roughly backwards
        greedy = np.argsort(-logging_score)[:SLOTS]
        items, p, _ = explore(greedy, logging_score, epsilon, POOL, seed * 1_000_003 + g)
        c = (rng.random(SLOTS) < EXAMINATION * relevance[items]).astype(float)
        candidate = np.argsort(-relevance)[:SLOTS]
        shown.append(items.tolist())
        clicks.append(c.tolist())
        props.append(p.tolist())
        best.append(candidate.tolist())
        truth.append(float(np.mean(EXAMINATION * relevance[candidate])))
    return LoggedSlots.from_lists(shown, clicks, props), best, float(np.mean(truth))


def test_ips_lands_near_the_candidates_true_click_through_and_the_logged_rate_does_not():
    logged, candidate, truth = generated_log(20_000, epsilon=0.5, seed=1)
    est = ips_estimate(logged, candidate)
    assert est["slots"] == 100_000 and est["matches"] > 4_000
    # standard error of the IPS mean here is ~0.006; the SNIPS one is smaller
    assert est["ips"] == pytest.approx(truth, abs=0.02)
    assert est["snips"] == pytest.approx(truth, abs=0.015)
    assert abs(est["naive"] - truth) > 0.05  # what the logging ranker earned is no estimate of the candidate
    assert est["naive"] < truth
    assert abs(est["matched"] - truth) > 0.03  # agreeing slots without their weights: biased too
    # the served lists themselves, judged from their own log: every slot matches
    served = [list(logged.item[logged.list_index == g]) for g in range(logged.list_index.max() + 1)]
    assert ips_estimate(logged, served)["matches"] == est["slots"]


def test_without_exploration_the_candidate_cannot_be_judged():
    logged, candidate, truth = generated_log(2_000, epsilon=0.0, seed=2)
    assert np.allclose(logged.propensity, 1.0)
    est = ips_estimate(logged, candidate)
    assert est["matches"] < 0.1 * est["slots"]  # the poor ranker and the candidate rarely agree
    assert est["ips"] < truth / 5  # no support: what the candidate would show was never logged


def test_clipping_caps_the_weights_and_bad_input_is_refused():
    logged, candidate, truth = generated_log(2_000, epsilon=0.5, seed=3)
    clipped = ips_estimate(logged, candidate, clip=5.0)
    assert clipped["ips"] < ips_estimate(logged, candidate)["ips"]  # weights 1 / 0.05 = 20 capped at 5
    with pytest.raises(ValueError, match="propensities must be in"):
        LoggedSlots.from_lists([["a", "b"]], [[0, 1]], [[0.5, 0.0]])
    with pytest.raises(ValueError, match="one value per shown item"):
        LoggedSlots.from_lists([["a", "b"]], [[0]], [[0.5, 0.5]])
    empty = ips_estimate(LoggedSlots.from_lists([], [], []), [])
    assert empty["slots"] == 0 and np.isnan(empty["ips"])
    strings = LoggedSlots.from_lists([["a", "b"]], [[1.0, 0.0]], [[0.5, 0.25]])
    assert ips_estimate(strings, [["a", "c"]])["ips"] == pytest.approx((1.0 / 0.5) / 2)


def test_the_explored_log_is_read_back_from_the_store_with_its_clicks(trained, tmp_path):
    """Feeds served with exploration on, clicks posted for some items: the store's log gives
    every explored slot with its probability and click, and the served lists judge themselves
    at the logged click-through."""
    from recommender.domain import Interaction
    from recommender.evaluation.offpolicy import logged_slots

    own = trained.clone(tmp_path)
    engine = own.engine(explore_epsilon=0.5, explore_pool=20, feature_log_rate=0.0)
    readers = sorted(own.readers)[:10]
    served = [engine.feed(r, limit=6) for r in readers]
    engine.flush_impressions()
    own.store.add_events([Interaction(user_id=r, article_id=s.items[k % 6].article_id, event="click",
                                      ts=own.now + 30, list_id=s.list_id, position=k % 6)
                          for k, (r, s) in enumerate(zip(readers, served))])
    logged, rows = logged_slots(own.store)
    assert len(rows) == len(served) and logged.slot.size == 6 * len(served)
    by_list = {r.list_id: g for g, r in enumerate(rows)}
    for k, s in enumerate(served):
        g = by_list[s.list_id]
        mine = logged.list_index == g
        assert logged.item[mine].tolist() == [i.article_id for i in s.items]
        assert logged.click[mine].tolist() == [1.0 if j == k % 6 else 0.0 for j in range(6)]
        assert ((logged.propensity[mine] > 0) & (logged.propensity[mine] <= 1)).all()
    est = ips_estimate(logged, [list(r.article_ids) for r in rows], clip=None)
    assert est["naive"] == pytest.approx(1 / 6) and est["matches"] == logged.slot.size
    engine.close()
