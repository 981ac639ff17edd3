"""Experiments in process, on a trained sample with two model versions: every registered variant
through the same edge cases, pinned versions, the router following creates and stops in the log,
served lists recorded with experiment, variant and config, interleaved feeds."""

from __future__ import annotations

import shutil

import pytest

from recommender.domain import Article, Preferences, ValidationError
from recommender.experiments import registry
from recommender.experiments.assignment import assign
from recommender.experiments.router import ExperimentRouter
from recommender.experiments.variants import PinnedEngine
from recommender.models.fitting import train
from recommender.models.versions import promote
from recommender.store import SQLiteStore

LIMIT = 8


@pytest.fixture(scope="module")
def two_versions(trained):
    """The trained sample plus a second, staged version (another seed): what an experiment compares."""
    staged, _ = train(trained.store, trained.models_dir, as_of=trained.now, seed=1, promote=False)
    return trained, staged


@pytest.fixture
def sample(two_versions, tmp_path):
    trained, staged = two_versions
    sample = trained.clone(tmp_path)
    sample.staged = staged
    return sample


def three_variants(sample, **extra):
    return {"name": "exp", "variants": [
        {"label": "control", "model_version": sample.version},
        {"label": "retrained", "model_version": sample.staged},
        {"label": "trending", "model_version": sample.staged, "params": {"feed_trending": 3.0, "related_fresh": 1.0},
         "params_name": "trending-x3"}], **extra}


def router_of(sample, main=None):
    main = main or sample.engine()
    return ExperimentRouter(sample.store, sample.models_dir, main, clock=lambda: sample.now), main


def heavy_reader(sample) -> str:
    counts = {}
    for e in sample.data.events:
        if e["event"] in ("click", "read"):
            counts[e["user_id"]] = counts.get(e["user_id"], 0) + 1
    return max(counts, key=counts.get)


def test_every_registered_variant_serves_every_edge_case(sample):
    """Found from the experiment, not listed by hand: a new variant is checked the day it is added."""
    experiment = registry.create(sample.store, sample.models_dir, three_variants(sample), now=sample.now)
    lonely = Article("kuliner-1", "Resep rendang daging sapi empuk khas Padang", "Rendang dimasak lama dengan santan.",
                     "Kuliner", sample.now - 600, region="Sumbar")  # a section with no other article
    sample.store.upsert_articles([lonely])
    sample.store.set_preferences(Preferences("follows-empty-section", categories=("Kuliner",)))
    heavy = heavy_reader(sample)
    read = {e["article_id"] for e in sample.data.events if e["user_id"] == heavy and e["event"] in ("click", "read")}
    anchor = sample.data.articles[-5]["article_id"]
    configs = set()
    for variant in experiment.variants:
        engine = PinnedEngine(sample.store, sample.models_dir, variant, clock=lambda: sample.now)
        try:
            assert engine.ready and engine.model_version == variant.model_version
            configs.add(variant.config)
            cases = {
                "new reader": engine.feed("never-seen-before", limit=LIMIT),
                "no history, follows an empty section": engine.feed("follows-empty-section", limit=LIMIT),
                "heavy history": engine.feed(heavy, limit=LIMIT),
                "related": engine.related(anchor, limit=LIMIT),
                "related of an article alone in its section": engine.related("kuliner-1", limit=LIMIT),
            }
            for case, ranked in cases.items():
                ids = [item.article_id for item in ranked.items]
                assert len(ids) == LIMIT and len(set(ids)) == LIMIT, (variant.label, case, ids)
                assert ranked.model_version == variant.model_version, (variant.label, case)
            assert cases["new reader"].strategy == "cold-start"
            assert not read & {i.article_id for i in cases["heavy history"].items}  # never what they read
            assert anchor not in {i.article_id for i in cases["related"].items}
            assert "kuliner-1" not in {i.article_id for i in cases["related of an article alone in its section"].items}
        finally:
            engine.close()
    assert len(configs) == 3  # one model version with two parameter sets: two configurations


def test_a_variants_parameters_change_its_ranking_and_nothing_else(sample):
    experiment = registry.create(sample.store, sample.models_dir, three_variants(sample), now=sample.now)
    _, retrained, trending = experiment.variants
    plain = PinnedEngine(sample.store, sample.models_dir, retrained, clock=lambda: sample.now)
    tuned = PinnedEngine(sample.store, sample.models_dir, trending, clock=lambda: sample.now)
    try:
        assert tuned._state.model.ranking.feed_trending == 3.0 and plain._state.model.ranking.feed_trending != 3.0
        readers = list(sample.readers)[:20]
        differ = sum([i.article_id for i in plain.feed(u, limit=LIMIT).items]
                     != [i.article_id for i in tuned.feed(u, limit=LIMIT).items] for u in readers)
        assert differ >= 5
    finally:
        plain.close()
        tuned.close()


def test_a_pinned_engine_keeps_its_version_after_a_promotion(sample):
    experiment = registry.create(sample.store, sample.models_dir, three_variants(sample), now=sample.now)
    main = sample.engine()
    pinned = PinnedEngine(sample.store, sample.models_dir, experiment.variants[0], clock=lambda: sample.now)
    try:
        promote(sample.store, sample.models_dir, sample.staged)
        for engine in (main, pinned):
            engine.maybe_reload()
            engine.refresh()
        assert main.model_version == sample.staged
        assert pinned.model_version == sample.version == pinned.feed("u00001", limit=3).model_version
        # and it follows the log like any engine: a takedown reaches its lists
        top = pinned.feed("u00001", limit=3).items[0].article_id
        main.takedown(top)
        assert top not in [i.article_id for i in pinned.feed("u00001", limit=3).items]
    finally:
        main.close()
        pinned.close()


def test_lists_of_an_experiment_record_experiment_variant_and_config(sample):
    experiment = registry.create(sample.store, sample.models_dir, three_variants(sample, shares=[34, 33, 33]),
                                 now=sample.now)
    router, main = router_of(sample)
    try:
        readers = list(sample.readers)[:30]
        served = {}
        for user in readers:
            routed = router.feed(user, LIMIT, None)
            expected = experiment.variants[assign(experiment, user)]
            assert routed.experiment == "exp" and routed.variant == expected.label
            assert routed.ranked.model_version == expected.model_version
            assert router.feed(user, LIMIT, None).variant == expected.label  # sticky
            served[routed.ranked.list_id] = (user, expected)
        anonymous = router.related(sample.data.articles[-3]["article_id"], 5, None, "visitor-7")
        assert anonymous.variant == experiment.variants[assign(experiment, "visitor-7")].label
        assert router.related(sample.data.articles[-3]["article_id"], 5, None, None) is None  # no unit: no experiment
        main.flush_impressions()
        stored = {s.list_id: s for s in sample.store.experiment_lists("exp")}
        for list_id, (user, variant) in served.items():
            row = stored[list_id]
            assert (row.user_id, row.variant, row.config, row.size) == (user, variant.label, variant.config, LIMIT)
        assert stored[anonymous.ranked.list_id].user_id == "anonymous"
        assert len({s.variant for s in stored.values()}) == 3
    finally:
        router.close()
        main.close()


def test_the_router_follows_creates_and_stops_written_by_another_process(sample):
    router, main = router_of(sample)
    other = SQLiteStore(sample.root / "newsrec.sqlite3")  # an operator's CLI, another connection
    try:
        assert router.feed("u00002", LIMIT, None) is None  # no experiment yet
        registry.create(other, sample.models_dir, three_variants(sample, lists=["feed"]), now=sample.now)
        assert router.feed("u00002", LIMIT, None).experiment == "exp"
        assert router.related(sample.data.articles[-1]["article_id"], 5, "u00002", "u00002") is None  # feed only
        registry.stop(other, "exp", now=sample.now)
        assert router.feed("u00002", LIMIT, None) is None
        assert router._engines == {}  # the variants' engines are closed once no experiment needs them
    finally:
        other.close()
        router.close()
        main.close()


def test_a_variant_whose_bundle_is_missing_here_serves_nothing_under_its_name(sample):
    registry.create(sample.store, sample.models_dir, three_variants(sample), now=sample.now)
    shutil.move(sample.models_dir / sample.staged, sample.root / "elsewhere")  # not copied to this host yet
    router, main = router_of(sample)
    try:
        users = list(sample.readers)[:40]
        routed = [router.feed(u, LIMIT, None) for u in users]
        # the control's readers are in the experiment; the others get normal lists, not mislabelled ones
        assert {r.variant for r in routed if r is not None} == {"control"}
        assert any(r is None for r in routed)
        shutil.move(sample.root / "elsewhere", sample.models_dir / sample.staged)  # the copy lands: retried at once
        assert all(router.feed(u, LIMIT, None) is not None for u in users)
    finally:
        router.close()
        main.close()


def test_an_interleaved_feed_merges_both_variants_pages_without_repeats(sample):
    registry.create(sample.store, sample.models_dir, {
        "name": "il", "mode": "interleave", "lists": ["feed"],
        "variants": [{"label": "A", "model_version": sample.version}, {"label": "B", "model_version": sample.staged}]},
        now=sample.now)
    router, main = router_of(sample)
    router.refresh()
    a_engine, b_engine = router._engines.values()  # in the variants' order
    try:
        user = heavy_reader(sample)
        first = router.feed(user, LIMIT, None)
        a_ids = [i.article_id for i in a_engine.feed(user, limit=LIMIT).items]
        b_ids = [i.article_id for i in b_engine.feed(user, limit=LIMIT).items]
        ids = [i.article_id for i in first.ranked.items]
        assert first.variant == "A+B" and len(first.teams) == LIMIT == len(ids) == len(set(ids))
        assert {"A", "B"} == set(first.teams) and abs(first.teams.count("A") - first.teams.count("B")) <= 1
        for article_id, team in zip(ids, first.teams):
            assert article_id in (a_ids if team == "A" else b_ids)
        second = router.feed(user, LIMIT, first.ranked.next_cursor)
        assert not set(ids) & {i.article_id for i in second.ranked.items}
        main.flush_impressions()
        rows = sample.store.experiment_lists("il")
        assert [r.teams for r in rows] == ["".join("01"[t == "B"] for t in first.teams),
                                          "".join("01"[t == "B"] for t in second.teams)]
        assert [r.offset for r in rows] == [0, LIMIT]
    finally:
        router.close()
        main.close()


def test_the_registry_refuses_unknown_versions_and_overlapping_experiments(sample):
    with pytest.raises(ValidationError, match="not valid bundles"):
        registry.create(sample.store, sample.models_dir, {"name": "x", "variants": [
            {"label": "A", "model_version": sample.version}, {"label": "B", "model_version": "20990101T000000Z-abcdef"}]})
    registry.create(sample.store, sample.models_dir, three_variants(sample, lists=["feed"]), now=sample.now)
    with pytest.raises(registry.ExperimentConflict, match="exists already"):
        registry.create(sample.store, sample.models_dir, three_variants(sample, lists=["related"]), now=sample.now)
    with pytest.raises(registry.ExperimentConflict, match="already covers"):
        registry.create(sample.store, sample.models_dir, {**three_variants(sample), "name": "exp2"}, now=sample.now)
    registry.create(sample.store, sample.models_dir, {**three_variants(sample, lists=["related"]), "name": "exp3"},
                    now=sample.now)  # other lists: no overlap
    registry.stop(sample.store, "exp", now=sample.now + 1)
    with pytest.raises(registry.ExperimentConflict, match="stopped already"):
        registry.stop(sample.store, "exp", now=sample.now + 2)
    with pytest.raises(registry.ExperimentNotFound):
        registry.stop(sample.store, "nope")
    registry.create(sample.store, sample.models_dir, {**three_variants(sample, lists=["feed"]), "name": "exp4"},
                    now=sample.now + 3)  # after the stop, feeds are free again
    assert [e.name for e in registry.load_all(sample.store)] == ["exp", "exp3", "exp4"]


def test_an_experiment_ends_at_its_end_time_and_frees_its_engines(sample):
    clock = {"now": sample.now}
    main = sample.engine()
    router = ExperimentRouter(sample.store, sample.models_dir, main, clock=lambda: clock["now"])
    try:
        registry.create(sample.store, sample.models_dir, three_variants(sample, starts_at=sample.now + 60,
                                                                         ends_at=sample.now + 120), now=sample.now)
        assert router.feed("u00003", LIMIT, None) is None  # not started yet
        clock["now"] = sample.now + 61
        assert router.feed("u00003", LIMIT, None).experiment == "exp"
        clock["now"] = sample.now + 121
        assert router.feed("u00003", LIMIT, None) is None and router._engines == {}
    finally:
        router.close()
        main.close()


def test_an_ab_variants_feeds_are_in_the_feature_log_and_interleaved_ones_are_not(sample):
    """A ranker trains on the feature log: a variant's lists were missing from it (while an
    experiment covered every reader, all of the traffic). An interleaved list is neither engine's."""
    from recommender.serving.engine import EngineConfig
    from recommender.serving.features import feature_names

    registry.create(sample.store, sample.models_dir, three_variants(sample, lists=["feed"]), now=sample.now)
    main = sample.engine()
    router = ExperimentRouter(sample.store, sample.models_dir, main, config=EngineConfig(feature_log_rate=1.0),
                              clock=lambda: sample.now)
    try:
        served = {}
        for user in list(sample.readers)[:12]:
            routed = router.feed(user, LIMIT, None)
            served[routed.ranked.list_id] = [i.article_id for i in routed.ranked.items]
    finally:
        router.close()  # (its engines write what they queued)
        main.close()
    logged = {row.list_id: row for row in sample.store.feature_logs()}
    assert set(served) <= set(logged)
    for list_id, items in served.items():
        row = logged[list_id]
        assert list(row.article_ids) == items and list(row.names) == feature_names()
        assert row.features.shape == (len(items), len(feature_names()))
    assert {s.list_id for s in sample.store.experiment_lists("exp")} == set(served)  # each list written once

    registry.stop(sample.store, "exp", now=sample.now)
    registry.create(sample.store, sample.models_dir, {
        "name": "il", "mode": "interleave", "lists": ["feed"],
        "variants": [{"label": "A", "model_version": sample.version}, {"label": "B", "model_version": sample.staged}]},
        now=sample.now + 1)
    main = sample.engine()
    router = ExperimentRouter(sample.store, sample.models_dir, main, config=EngineConfig(feature_log_rate=1.0),
                              clock=lambda: sample.now + 2)
    try:
        interleaved = [router.feed(user, LIMIT, None).ranked.list_id for user in list(sample.readers)[:6]]
    finally:
        router.close()
        main.close()
    assert not set(interleaved) & {row.list_id for row in sample.store.feature_logs()}
