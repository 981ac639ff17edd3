"""Experiments without a server: definitions, sticky assignment, team-draft interleaving, the
report's statistics (checked against slow, obviously correct versions), reports counted from
served lists and clicks, and the simulation (a better variant wins; A/A flags rarely)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from recommender.domain import ValidationError
from recommender.experiments import simulation, stats
from recommender.experiments.assignment import BUCKETS, assign, assign_many, bucket
from recommender.experiments.definition import Experiment, Variant, experiment_from_dict
from recommender.experiments.interleaving import credit, list_rng, team_draft, team_draft_batch
from recommender.experiments.report import build_report
from recommender.store import ExperimentList


def experiment(shares=(50, 50), mode="ab", salt="s1", labels=("A", "B")) -> Experiment:
    return Experiment(name="e", variants=tuple(Variant(x, f"v-{x}") for x in labels), shares=shares, mode=mode,
                      salt=salt)


# -- definitions --------------------------------------------------------------------------------
def test_a_definition_round_trips_and_hashes_its_configuration():
    e = experiment_from_dict({"name": "exp-1", "variants": [
        {"label": "A", "model_version": "v1"},
        {"label": "B", "model_version": "v1", "params": {"feed_trending": 0.9}, "params_name": "trending-up"}],
        "shares": [90, 10], "lists": ["feed"]}, now=5.0)
    assert e.shares == (90, 10) and e.lists == ("feed",) and e.mode == "ab" and e.salt and e.created_at == 5.0
    a, b = e.variants
    assert a.config.startswith("v1@") and b.config.startswith("trending-up@")
    assert a.config_hash != b.config_hash  # same model, other parameters: another configuration
    assert b.ranking(a.ranking(__import__("recommender.params").params.RankingParams())).feed_trending == 0.9
    again = Experiment.from_json(e.to_json(), stopped_at=9.0)
    assert again.variants == e.variants and again.salt == e.salt and again.stopped_at == 9.0
    assert [v.config for v in again.variants] == [a.config, b.config]


def two(params: dict | None = None, **extra) -> dict:
    """A definition of variants A (v1) and B (v2, with ``params``), with ``extra`` keys."""
    b = {"label": "B", "model_version": "v2", **({"params": params} if params is not None else {})}
    return {"name": "e", "variants": [{"label": "A", "model_version": "v1"}, b], **extra}


@pytest.mark.parametrize("body, message", [
    ({"name": "e", "variants": [{"label": "A", "model_version": "v1"}]}, "2 to 8"),
    ({"name": "e", "variants": [{"label": "A", "model_version": "v1"}, {"label": "A", "model_version": "v2"}]},
     "distinct"),
    (two(shares=[50, 40]), "summing to 100"),
    (two(mode="split"), "mode"),
    ({"name": "e", "variants": [{"label": "A", "model_version": "v1"}, {"label": "B", "model_version": "v2"},
                                {"label": "C", "model_version": "v3"}], "mode": "interleave"}, "exactly two"),
    (two(lists=["home"]), "lists"),
    (two(params={"no_such": 1}), "RankingParams"),
    (two(params={"diversity": 1}), "not a number"),
    # a string was told "diversity must be a finite number"; 2.5 was served as a story cap of 2
    (two(params={"diversity": "mmr"}), "diversity is not a number; set it in the training config"),
    (two(params={"feed_max_per_story": 2.5}), "feed_max_per_story must be a whole number, got 2.5"),
    (two(params={"mmr_lambda": 1.5}), "between 0 and 1"),
    (two(params={"trending_half_life_hours": 0}), "trending_half_life_hours must be above 0"),
    (two(params={"feed_fresh_half_life_hours": -6}), "feed_fresh_half_life_hours must be above 0"),
    (two(params={"feed_trending": 1e308}), "feed_trending must be a finite number of at most 1e\\+06"),
    (two(params={"feed_max_per_story": 0}), "feed_max_per_story must be above 0"),
    (two(params={"feed_max_category_share": 1.5}), "feed_max_category_share must be above 0 and at most 1"),
    (two(starts_at=10, ends_at=5), "after"),
    (two(salt="s\ud800"), "salt must be printable"),  # (every assignment hashes it as UTF-8)
    (two(salt="s\x00"), "salt must be printable"),
    ({"name": "bad name", "variants": []}, "name"),
    ({"name": "e", "variants": [{"label": "A b", "model_version": "v1"}, {"label": "B", "model_version": "v2"}]},
     "label"),
    (two(typo=1), "unknown"),
])
def test_a_bad_definition_says_what_to_fix(body, message):
    with pytest.raises(ValidationError, match=message):
        experiment_from_dict(body)


def test_a_zero_half_life_is_refused_when_made_but_a_stored_one_still_loads():
    """It made every score NaN (served as null), as a weight of 1e308 did; a definition stored before the check keeps loading,
    so listing, reports and the workers' router do not fail on it."""
    from recommender.params import TrainParams
    with pytest.raises(ValueError, match="trending_half_life_hours must be above 0"):
        TrainParams.from_dict({"ranking": {"trending_half_life_hours": 0}})
    with pytest.raises(ValueError, match="feed_cf must be a finite number"):
        TrainParams.from_dict({"ranking": {"feed_cf": -1e308}})
    body = {"name": "old", "variants": [{"label": "A", "model_version": "v1"},
                                        {"label": "B", "model_version": "v1", "params": {"trending_half_life_hours": 0}}]}
    stored = Experiment(name="old", variants=(Variant("A", "v1"), Variant("B", "v1", {"trending_half_life_hours": 0.0})),
                        shares=(50, 50), salt="s")
    assert Experiment.from_json(stored.to_json()).variants[1].params == {"trending_half_life_hours": 0.0}
    with pytest.raises(ValidationError, match="trending_half_life_hours"):
        experiment_from_dict(body)


# -- assignment ---------------------------------------------------------------------------------
def test_assignment_is_sticky_and_follows_the_shares():
    e = experiment(shares=(20, 30, 50), labels=("A", "B", "C"))
    ids = [f"reader-{i}" for i in range(20_000)]
    first = assign_many(e, ids)
    assert np.array_equal(first, assign_many(e, ids))  # the same on every call, worker and host
    assert [assign(e, u) for u in ids[:200]] == first[:200].tolist()
    share = np.bincount(first, minlength=3) / len(ids)
    assert np.allclose(share, [0.2, 0.3, 0.5], atol=0.015)


def test_two_salts_assign_independently():
    ids = [f"r{i}" for i in range(10_000)]
    a = assign_many(experiment(salt="one"), ids)
    b = assign_many(experiment(salt="two"), ids)
    assert 0.47 < np.mean(a == b) < 0.53  # independent halves agree half of the time


def test_a_bucket_is_a_hash_of_salt_and_id_only():
    ids = [f"u{i}" for i in range(1000)]
    assert [bucket("s", u) for u in ids] == [bucket("s", u) for u in ids]
    assert all(0 <= bucket("s", u) < BUCKETS for u in ids)
    assert sum(bucket("s", u) == bucket("t", u) for u in ids) < 5  # another salt, other buckets


# -- team-draft interleaving ----------------------------------------------------------------------
@given(st.permutations(list(range(12))), st.permutations(list(range(12))), st.integers(1, 12), st.integers(0, 2**32))
def test_team_draft_keeps_each_teams_order_and_balance(a, b, k, seed):
    items, teams = team_draft(a, b, k, np.random.default_rng(seed))
    assert len(items) == k and len(set(items)) == k
    picked = {0: [i for i, t in zip(items, teams) if t == 0], 1: [i for i, t in zip(items, teams) if t == 1]}
    for team, ranking in ((0, a), (1, b)):
        # each team's picks are its best items not picked before it, in its own order
        assert picked[team] == sorted(picked[team], key=ranking.index)
    for n in range(1, k + 1):  # after every pick the teams differ by at most one item
        assert abs(teams[:n].count(0) - teams[:n].count(1)) <= 1


def test_team_draft_of_one_ranking_is_that_ranking_and_credits_clicks_to_the_picker():
    items, teams = team_draft(list("abcdef"), list("abcdef"), 6, list_rng("l1"))
    assert items == list("abcdef")
    assert team_draft(list("abcdef"), list("abcdef"), 6, list_rng("l1")) == (items, teams)  # replayable
    votes = credit(teams, [0, 0, 2], offset=0)  # a repeated click counts once
    assert votes == (int(teams[0] == 0) + int(teams[2] == 0), int(teams[0] == 1) + int(teams[2] == 1))
    short, short_teams = team_draft(["x"], ["y", "z", "x"], 5, np.random.default_rng(0))
    assert sorted(short) == ["x", "y", "z"] and len(short_teams) == 3  # one runs out: the other keeps picking


def test_the_batch_team_draft_agrees_with_the_one_list_version(rng):
    a = np.argsort(rng.random((300, 15)), axis=1)
    b = np.argsort(rng.random((300, 15)), axis=1)
    items, teams = team_draft_batch(a, b, 10, np.random.default_rng(3))
    for row in range(300):
        assert len(set(items[row].tolist())) == 10
        # replaying the same first-pick coins through the one-list version gives the same list
        class Coins:
            def __init__(self, row_teams):
                self.row_teams = list(row_teams)
                self.i = 0
            def random(self):
                return 0.0 if self.row_teams[self._next()] == 1 else 0.9
            def _next(self):
                while self.i % 2:  # coins are drawn at even picks only (equal counts)
                    self.i += 1
                i = self.i
                self.i += 2
                return i
        expected, expected_teams = team_draft(a[row].tolist(), b[row].tolist(), 10, Coins(teams[row]))
        assert items[row].tolist() == expected and teams[row].tolist() == expected_teams


# -- statistics ---------------------------------------------------------------------------------
def test_wilson_matches_the_textbook_values():
    lo, hi = stats.wilson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    assert stats.wilson(0, 20)[0] == 0.0 and 0.16 < stats.wilson(0, 20)[1] < 0.17
    assert all(math.isnan(x) for x in stats.wilson(0, 0))


def test_the_delta_method_variance_matches_a_bootstrap_over_readers(rng):
    impressions = rng.integers(5, 60, size=400).astype(float)
    clicks = rng.binomial(impressions.astype(int), rng.beta(2, 20, size=400)).astype(float)
    ctr, var = stats.ratio(clicks, impressions)
    assert ctr == clicks.sum() / impressions.sum()
    draws = rng.integers(0, 400, size=(4000, 400))  # the slow, obviously correct version
    boot = clicks[draws].sum(axis=1) / impressions[draws].sum(axis=1)
    assert math.isclose(var, boot.var(), rel_tol=0.12)
    # with one impression count per reader it is the variance of the mean of per-reader rates
    same = np.full(400, 10.0)
    assert math.isclose(stats.ratio(clicks[:400] % 11, same)[1], np.var((clicks % 11) / 10, ddof=1) / 400)
    assert all(math.isnan(x) for x in stats.ratio(np.zeros(0), np.zeros(0)))


def test_a_variant_without_a_click_has_an_interval_and_does_not_differ_on_five_clicks():
    """The delta method's variance is 0 with no click: its interval was [0, 0], and 0 of 500
    against 5 of 500 (Fisher's exact p = 0.06) was reported as a difference."""
    shown = np.full(50, 10.0)
    none, some = np.zeros(50), np.r_[np.ones(5), np.zeros(45)]
    ctr, (lo, hi), _ = stats.ctr_interval(none, shown)
    assert ctr == 0.0 and lo == 0.0 and 0.004 < hi < stats.wilson(0, 500)[1]  # about as wide as Wilson's
    diff, interval = stats.difference(stats.ratio(none, shown), stats.ratio(some, shown))
    assert diff == 0.01 and not stats.excludes_zero(interval)
    assert stats.excludes_zero(stats.difference(stats.ratio(none, shown), stats.ratio(some * 3, shown))[1])  # 15 do


def test_srm_is_the_chi_square_test_of_the_shares():
    assert math.isclose(stats.srm_p([480, 520], [50, 50]), scipy_stats.chisquare([480, 520]).pvalue)
    assert math.isclose(stats.srm_p([100, 300], [20, 80]), scipy_stats.chisquare([100, 300], [80, 320]).pvalue)
    assert stats.srm_p([400, 600], [50, 50]) < 1e-9


def test_the_win_share_is_that_of_the_second_variant():
    share, (lo, hi) = stats.win_share(30, 70)
    assert share == 0.7 and (lo, hi) == stats.wilson(70, 100) and lo > 0.5
    assert math.isnan(stats.win_share(0, 0)[0])


# -- reports ------------------------------------------------------------------------------------
def served(list_id, user, variant, size, offset=0, teams=None):
    return ExperimentList(list_id, user, 0.0, variant, offset, size, None, teams)


def test_a_report_counts_the_clicks_on_the_lists_of_each_variant():
    e = experiment()
    lists = [served("L1", "u1", "A", 3), served("L2", "u1", "A", 3, offset=3), served("L3", "u2", "B", 3),
             served("L4", "anonymous", "B", 2), served("L5", "u9", "C", 3)]  # C: not a variant, ignored
    clicks = [("L1", 0), ("L1", 0), ("L1", 2), ("L2", 4), ("L3", 1), ("L4", 0), ("L4", 7), ("LX", 0)]
    report = build_report(e, lists, clicks)
    a, b = report["variants"]["A"], report["variants"]["B"]
    assert (a["lists"], a["impressions"], a["clicks"], a["readers"]) == (2, 6, 3, 1)
    assert (b["lists"], b["impressions"], b["clicks"], b["readers"]) == (2, 5, 2, 2)  # anonymous list: its own unit
    assert a["ctr"] == 0.5 and b["ctr"] == 0.4
    assert report["difference"] == pytest.approx(-0.1)
    assert [(p["position"], p["shown"], p["clicks"]) for p in a["by_position"]] == [
        (0, 1, 1), (1, 1, 0), (2, 1, 1), (3, 1, 0), (4, 1, 1), (5, 1, 0)]
    assert report["units"] == {"A": 1, "B": 2}
    assert report["srm_p"] == pytest.approx(scipy_stats.chisquare([1, 2]).pvalue, abs=1e-6)


def test_an_interleaving_report_credits_each_click_to_the_team_that_picked_the_item():
    e = experiment(mode="interleave")
    lists = [served("L1", "u1", "A+B", 4, teams="0110"), served("L2", "u2", "A+B", 4, teams="1001"),
             served("L3", "u3", "A+B", 4, teams="0101")]
    clicks = [("L1", 1), ("L1", 2), ("L2", 1), ("L3", 0), ("L3", 1)]
    report = build_report(e, lists, clicks)
    # L1: B, B; L2: A; L3: A, B
    assert report["variants"]["B"]["clicks"] == 3 and report["variants"]["A"]["clicks"] == 2
    assert report["wins"]["A"] == 1 and report["wins"]["B"] == 1 and report["wins"]["ties"] == 1
    assert report["wins"]["share"] == 0.5
    assert report["variants"]["A"]["impressions"] == report["variants"]["B"]["impressions"] == 6


# -- simulation ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def readers():
    return simulation.synthetic_readers(1200, seed=3)


MODEL = simulation.ClickModel()


def test_a_clearly_better_variant_wins_in_ab_and_in_interleaving(readers):
    ab = simulation.run_ab(readers, (0.0, 1.0), MODEL, seed=1)
    assert ab.difference_ci[0] > 0 and ab.ctr[1] > ab.ctr[0]  # B personalizes: its interval excludes 0
    assert ab.srm_p > 0.001
    il = simulation.run_interleaving(readers.take(np.arange(300)), (0.0, 1.0), MODEL, seed=1)
    assert il.share_ci[0] > 0.5
    worse = simulation.run_ab(readers, (1.0, 0.0), MODEL, seed=2)
    assert worse.difference_ci[1] < 0  # the other way round it loses


def test_an_aa_experiment_over_40_seeds_flags_a_difference_rarely(readers):
    ab = [simulation.detected_ab(simulation.run_ab(readers, (0.5, 0.5), MODEL, seed)) for seed in range(40)]
    il = [simulation.detected_interleaving(simulation.run_interleaving(readers, (0.5, 0.5), MODEL, seed))
          for seed in range(40)]
    assert sum(ab) <= 4 and sum(il) <= 4, (sum(ab), sum(il))


def test_the_simulation_and_the_report_agree(readers):
    """The report (what operators read) and the simulation's vectorized numbers are the same statistics."""
    rng = np.random.default_rng(5)
    e = simulation._experiment(5)
    variant = assign_many(e, readers.ids)
    t = simulation.traffic(readers, MODEL, rng)
    shown = simulation.rank(t, np.array([0.0, 1.0])[variant[t.reader]], rng)[:, : MODEL.list_size]
    clicked = simulation.clicks(t, shown, MODEL, rng)
    lists = [served(f"L{s}", readers.ids[u], "AB"[variant[u]], MODEL.list_size) for s, u in enumerate(t.reader)]
    clicks = [(f"L{s}", int(k)) for s, k in zip(*np.nonzero(clicked))]
    report = build_report(e, lists, clicks)
    c = np.bincount(t.reader, weights=clicked.sum(axis=1), minlength=len(readers))
    n = np.bincount(t.reader, minlength=len(readers)) * 10.0
    a = stats.ratio(c[variant == 0], n[variant == 0])
    b = stats.ratio(c[variant == 1], n[variant == 1])
    diff, ci = stats.difference(a, b)
    assert report["variants"]["A"]["ctr"] == pytest.approx(a[0], abs=1e-6)
    assert report["difference_ci"] == pytest.approx(list(ci), abs=1e-6)
    assert report["variants"]["B"]["by_position"][0]["ctr"] > report["variants"]["B"]["by_position"][9]["ctr"]
