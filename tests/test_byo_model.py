"""Bring your own model (issue 16): a data scientist's scorer, candidate source and embedder,
fitted at training, stored as plain arrays + JSON, run by evaluation and by the served engine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from api import create_app
from recommender.models import versions
from recommender.models.bundle import load_bundle
from recommender.models.fitting import TrainingError, train
from recommender.models.served import ModelError, ServingModel
from recommender.params import TrainParams
from tests.serve_fixtures import cli, server_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
DOC = ROOT / "docs" / "byo_model.md"


def with_plugins(*plugins: dict) -> TrainParams:
    return TrainParams.from_dict({"plugins": list(plugins)})


def feed_ids(engine, user: str, limit: int = 10) -> list[str]:
    return [i.article_id for i in engine.feed(user, limit=limit, log=False).items]


@pytest.fixture
def sample(trained, tmp_path):
    """A private copy of the trained sample (its base version live), to train plugin versions on."""
    copy = trained.clone(tmp_path)
    yield copy
    copy.store.close()


# -- the documented example ---------------------------------------------------------------------
def test_the_documented_example_is_the_module_the_tests_run():
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- example: docs/examples/regional.py -->\n```python\n(.*?)```", text, re.S)
    assert block, "docs/byo_model.md lost its example block"
    assert block.group(1) == (EXAMPLES / "regional.py").read_text(encoding="utf-8")
    assert 25 <= block.group(1).count("\n") <= 40  # the ~30-line example the README promises
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/byo_model.md" in readme


def test_the_documented_example_trains_evaluates_promotes_and_serves(tmp_path, monkeypatch):
    """The doc's steps with the CLI, then the API after promotion: Jabar's articles come first."""
    home = tmp_path / "home"
    env = server_env(home)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLES)])
    cli(env, "sample", "--articles", "300", "--users", "150", "--days", "4", "--seed", "3", "--end", "now", "--ingest")
    config = tmp_path / "byo.json"
    config.write_text(json.dumps({"plugins": [{"role": "scorer", "path": "regional:RegionScorer",
                                               "params": {"favour": "Jabar"}, "weight": 5.0}]}))
    base = json.loads(cli(env, "train", "--json", "--promote"))["version"]
    staged = json.loads(cli(env, "train", "--json", "--config", str(config)))
    assert staged["status"] == "staged" and staged["plugins"]["p0"]["path"] == "regional:RegionScorer"
    bundle = load_bundle(home / "models", staged["version"])
    assert set(bundle.documents["plugins"][0]["arrays"]) == {"regions", "lift"}  # state as plain arrays
    assert "plugin_p0_lift" in bundle.arrays and bundle.arrays["plugin_p0_regions"].dtype.kind == "U"

    # evaluate with it: the replay through the engine, with and without the plugin's score, same run
    report = json.loads(cli(env, "evaluate", "--config", str(config), "--protocol", "replay", "--no-plots",
                            "--max-queries", "80", "--out", str(tmp_path / "report"), "--json"))
    rows = next(iter(report["datasets"].values()))["models"]
    assert "newsrec" in rows and "newsrec-no-plugin_p0" in rows
    assert rows["newsrec"]["auc"] != rows["newsrec-no-plugin_p0"]["auc"]

    admin = cli(env, "keys", "add", "--role", "admin").strip().split()[-1]
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the serving process can import the plugin too
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(home)})
    client, headers = app.test_client(), {"X-API-Key": admin}
    readers = [f"u{i:05d}" for i in range(1, 21)]

    def top_regions() -> tuple[str, list[list]]:
        bodies = [client.get(f"/v1/users/{u}/feed?limit=5", headers=headers).get_json() for u in readers]
        return bodies[0]["model_version"], [[i["region"] for i in b["items"]] for b in bodies]

    version, before = top_regions()
    assert version == base
    cli(env, "models", "promote", staged["version"])
    assert client.post("/v1/admin/reload", headers=headers).status_code == 200
    version, after = top_regions()
    assert version == staged["version"]
    share = lambda lists: np.mean([r == "Jabar" for regions in lists for r in regions])  # noqa: E731
    # weight 5 x bonus 1: Jabar's articles first (the story and category caps still hold: nearly all)
    assert all(regions[0] == "Jabar" for regions in after) and share(after) >= 0.9, after
    assert share(before) < 0.5, before
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'newsrec_plugin_failures_total{plugin="p0",role="scorer"} 0.0' in metrics


# -- scorers, candidate sources, embedders in the engine -----------------------------------------
def test_a_candidate_source_brings_articles_no_other_stage_would(sample):
    """The scorer alone lifts the oldest articles only where another stage made them candidates
    (a reader's own neighbourhood); with the same plugin as a candidate source they are candidates
    for every reader, and fill every feed's top."""
    small = dict(full_scan_max=10, feed_pool=20, feed_pool_per_label=5, feed_pool_per_cluster=2)
    spec = {"path": "tests.byo_plugins:OldestInWindow", "params": {"k": 30}, "weight": 10.0}
    train(sample.store, sample.models_dir, with_plugins({**spec, "role": "scorer", "name": "old"}),
          as_of=sample.now, promote=True)
    scorer_only = sample.engine(**small)
    bundle = load_bundle(sample.models_dir, scorer_only.model_version)
    cut = float(bundle.documents["plugins"][0]["state"]["cut"])
    published = dict(zip(bundle.arrays["item_ids"].tolist(), bundle.arrays["published_at"].tolist()))
    readers = sorted(sample.readers)[:15]
    old_before = [sum(published.get(a, np.inf) <= cut for a in feed_ids(scorer_only, u, 5)) for u in readers]
    scorer_only.close()

    train(sample.store, sample.models_dir, with_plugins({**spec, "role": "scorer", "name": "old"},
                                                        {**spec, "role": "candidates", "name": "src", "k": 30}),
          as_of=sample.now, promote=True)
    both = sample.engine(**small)
    old_after = [sum(published.get(a, np.inf) <= cut for a in feed_ids(both, u, 5)) for u in readers]
    assert both.status()["plugin_errors"]["src"]["errors"] == 0
    both.close()
    assert sum(old_after) == 5 * len(readers), old_after
    assert sum(old_before) < sum(old_after) / 2, old_before
    assert sum(n == 5 for n in old_before) < len(readers) / 3, old_before


def test_an_embedder_drives_related_lists_and_embeds_articles_published_since(sample):
    from recommender.domain import Article

    base = sample.engine()
    by_region: dict[str, list[str]] = {}
    for a in sample.articles.values():
        if a.get("region"):
            by_region.setdefault(a["region"], []).append(a["article_id"])
    region = max(by_region, key=lambda r: len(by_region[r]))
    anchors = by_region[region][-5:]  # the newest: in the serving window
    region_of = {a["article_id"]: a.get("region") for a in sample.articles.values()}
    before = [[region_of.get(i.article_id) for i in base.related(a, limit=5).items] for a in anchors]
    base.close()

    params = with_plugins({"role": "embedder", "path": "tests.byo_plugins:RegionEmbedder", "weight": 3.0})
    version, built = train(sample.store, sample.models_dir, params, as_of=sample.now, promote=True)
    assert built.arrays["plugin_p0_vectors"].shape[0] == built.arrays["item_ids"].shape[0]
    assert built.arrays["plugin_p0_nb_idx"].shape[1] == TrainParams().neighbours
    engine = sample.engine()
    after = [[region_of.get(i.article_id) for i in engine.related(a, limit=5).items] for a in anchors]
    assert all(r == region for regions in after for r in regions), after
    assert np.mean([r == region for regions in before for r in regions]) < 0.8, before

    # an article published after training: embedded by the plugin when a list first needs it
    fresh = Article(article_id="fresh-byo-1", title="Kabar baru dari redaksi daerah", body="Isi berita singkat.",
                    category="Regional", region=region, published_at=sample.now - 60.0,
                    url="https://portal.example/fresh-byo-1")
    assert engine.publish_articles([fresh]) == 1
    listed = [i.article_id for i in engine.related(anchors[0], limit=10).items]
    assert "fresh-byo-1" in listed
    plugin = engine._state.model.plugins[0]
    assert len(plugin.fresh_vectors) == 1 and plugin.errors == 0
    engine.close()


@pytest.mark.parametrize("mode", ["raise", "shape", "nan"])
def test_a_scorer_failing_at_serving_time_is_skipped_logged_and_counted(sample, mode, caplog):
    base = sample.engine()
    readers = sorted(sample.readers)[:4]
    expected = {u: feed_ids(base, u) for u in readers}
    base.close()
    train(sample.store, sample.models_dir, with_plugins({"role": "scorer", "path": "tests.byo_plugins:Faulty",
                                                         "params": {"mode": mode}}), as_of=sample.now, promote=True)
    engine = sample.engine()
    with caplog.at_level("WARNING", logger="recommender.models.plugins"):
        served = {u: feed_ids(engine, u) for u in readers}
    assert served == expected  # the same lists as without the plugin (same data, same seed)
    errors = engine.status()["plugin_errors"]["p0"]
    assert errors["errors"] == len(readers) and errors["role"] == "scorer"
    assert any("plugin p0" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
    engine.close()


def test_an_evaluation_says_when_a_plugin_failed_on_its_queries(sample):
    """A plugin that raised on every replayed list was left out of each, and the report's newsrec
    row, as if with the plugin, said nothing of it (only warnings on stderr); it now has a note."""
    from recommender.evaluation.protocols import Evaluation, choose_cut

    params = with_plugins({"role": "scorer", "path": "tests.byo_plugins:Faulty", "params": {"mode": "raise"}})
    with Evaluation(sample.store, choose_cut(sample.store, 1.0), variants={"newsrec": params}, baselines=[],
                    ablations=False) as ev:
        entry = ev.run("replay", max_queries=20)
    assert entry["n_test"] == 20
    assert any("plugin p0 (scorer) failed 20 times" in note and "the data scientist's bug" in note
               for note in entry.get("notes", [])), entry.get("notes")


def test_a_scorer_that_works_changes_nothing_it_should_not(sample):
    """A plugin scoring 0 everywhere: the same lists as without it (the stages add, never reorder)."""
    base = sample.engine()
    readers = sorted(sample.readers)[:4]
    expected = {u: feed_ids(base, u) for u in readers}
    base.close()
    train(sample.store, sample.models_dir, with_plugins({"role": "scorer", "path": "tests.byo_plugins:Faulty",
                                                         "params": {"mode": "ok"}}), as_of=sample.now, promote=True)
    engine = sample.engine()
    assert {u: feed_ids(engine, u) for u in readers} == expected
    assert engine.status()["plugin_errors"]["p0"]["errors"] == 0
    engine.close()


# -- refusing what cannot work -------------------------------------------------------------------
@pytest.mark.parametrize("plugin, message", [
    ({"role": "scorer", "path": "no_such_package.mod:Scorer"}, "cannot be imported: ModuleNotFoundError"),
    ({"role": "scorer", "path": "tests.byo_plugins:Missing"}, "has no 'Missing'"),
    ({"role": "scorer", "path": "tests.byo_plugins:Faulty", "params": {"colour": 1}}, "cannot be built"),
    ({"role": "embedder", "path": "tests.byo_plugins:Faulty"}, "lacks embed()"),
    ({"role": "scorer", "path": "tests.byo_plugins:NoSelf"}, "must return self"),
    ({"role": "scorer", "path": "tests.byo_plugins:Pickly"}, "neither a numpy array nor JSON"),
])
def test_training_refuses_a_plugin_that_cannot_work_and_says_why(sample, plugin, message):
    before = sorted(p.name for p in sample.models_dir.iterdir())
    with pytest.raises(TrainingError, match=re.escape(message)):
        train(sample.store, sample.models_dir, with_plugins(plugin), as_of=sample.now)
    assert sorted(p.name for p in sample.models_dir.iterdir()) == before  # nothing staged


@pytest.mark.parametrize("config, message", [
    ({"plugins": [{"role": "ranker", "path": "a.b:C"}]}, "role must be one of"),
    ({"plugins": [{"role": "scorer", "path": "a.b.C"}]}, "path must name a class"),
    ({"plugins": [{"role": "scorer", "path": "a:C", "weight": "heavy"}]}, "weight must be a finite number"),
    ({"plugins": [{"role": "candidates", "path": "a:C", "lists": ["related"]}]}, "feeds only"),
    ({"plugins": [{"role": "scorer", "path": "a:C"}, {"role": "scorer", "path": "a:D", "name": "p0"}]}, "used twice"),
    ({"plugins": [{"role": "scorer", "path": "a:C", "colour": 1}]}, "unknown key"),
])
def test_a_malformed_plugin_config_is_refused_with_its_fix(config, message):
    with pytest.raises(ValueError, match=message):
        TrainParams.from_dict(config)


def test_train_cli_exits_1_naming_the_plugin_it_cannot_import(tmp_path, trained):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"plugins": [{"role": "scorer", "path": "no_such_package.mod:Scorer"}]}))
    home = tmp_path / "home"
    home.mkdir()
    env = server_env(home)
    env["NEWSREC_DB"] = str(trained.root / "newsrec.sqlite3")
    done = subprocess.run([sys.executable, "-m", "training.cli", "train", "--config", str(config)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "plugin p0 (scorer, 'no_such_package.mod:Scorer') cannot be imported" in done.stderr


def trained_then_gone(sample, tmp_path, monkeypatch, module: str) -> str:
    """A staged version trained with a scorer from ``module``, whose package is then uninstalled."""
    package = tmp_path / "pkgs"
    package.mkdir()
    (package / f"{module}.py").write_text((ROOT / "tests" / "byo_plugins.py").read_text())
    monkeypatch.syspath_prepend(str(package))
    version, _ = train(sample.store, sample.models_dir, with_plugins(
        {"role": "scorer", "path": f"{module}:Faulty", "params": {"mode": "ok"}}), as_of=sample.now)
    (package / f"{module}.py").unlink()
    monkeypatch.delitem(sys.modules, module)
    return version


def test_a_bundle_whose_plugin_is_gone_is_refused_at_promotion_and_load(sample, tmp_path, monkeypatch):
    """Trained where the plugin's package is installed, promoted where it is not: refused, clearly."""
    live = sample.store.live_model()
    version = trained_then_gone(sample, tmp_path, monkeypatch, "byo_gone")
    with pytest.raises(versions.PromotionError, match="plugin p0 .*'byo_gone:Faulty'.* cannot be imported"):
        versions.promote(sample.store, sample.models_dir, version)
    assert sample.store.live_model() == live  # nothing changed
    env = server_env(tmp_path / "home")
    env.update(NEWSREC_DB=str(sample.root / "newsrec.sqlite3"), NEWSREC_MODELS=str(sample.models_dir))
    done = subprocess.run([sys.executable, "-m", "training.cli", "models", "verify", version], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "cannot be imported" in done.stdout, done.stdout + done.stderr
    with pytest.raises(ModelError, match="cannot be imported"):
        ServingModel.from_bundle(load_bundle(sample.models_dir, version))
    # made live from a host where it imports: a worker here keeps serving what it has, and says why
    engine = sample.engine()
    assert engine.model_version == live
    assert sample.store.promote_model(version, expected=live)
    assert engine.maybe_reload() is False
    status = engine.status()
    assert engine.model_version == live and status["degraded"]
    assert any("byo_gone:Faulty" in r and "cannot be imported" in r for r in status["reasons"]), status["reasons"]
    assert engine.feed(sorted(sample.readers)[0], limit=5, log=False).items  # still serving
    engine.close()


def test_an_experiment_refuses_a_variant_whose_plugin_cannot_be_imported_here(sample, tmp_path, monkeypatch):
    """Promotion refused such a version but an experiment took it: every worker that could not load
    the variant logged an error and served its readers outside the experiment, which said nothing."""
    from recommender.domain import ValidationError
    from recommender.experiments import registry

    live = sample.store.live_model()
    version = trained_then_gone(sample, tmp_path, monkeypatch, "byo_gone2")
    data = {"name": "byo-gone", "variants": [{"label": "control", "model_version": live},
                                             {"label": "plugin", "model_version": version}], "lists": ["feed"]}
    with pytest.raises(ValidationError, match="variant plugin .*byo_gone2:Faulty.* cannot be imported"):
        registry.create(sample.store, sample.models_dir, data)
    assert registry.load_all(sample.store) == []


def test_a_scorer_on_related_lists_reorders_them(sample, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    region_of = {a["article_id"]: a.get("region") for a in sample.articles.values()}
    anchors = sorted(sample.articles)[-40:]  # the newest: in the serving window
    base = sample.engine()
    before = [[region_of[i.article_id] for i in base.related(a, limit=5).items] for a in anchors]
    base.close()
    train(sample.store, sample.models_dir, with_plugins(
        {"role": "scorer", "path": "regional:RegionScorer", "params": {"favour": "Jabar"}, "weight": 5.0,
         "lists": ["related"]}), as_of=sample.now, promote=True)
    engine = sample.engine()
    after = [[region_of[i.article_id] for i in engine.related(a, limit=5).items] for a in anchors]
    feed_regions = [region_of[a] for a in feed_ids(engine, sorted(sample.readers)[0])]
    engine.close()
    jabar = lambda lists: sum(r == "Jabar" for regions in lists for r in regions)  # noqa: E731
    assert jabar(after) > 2 * max(jabar(before), 1), (before, after)
    # a list it does not cover is untouched: feeds stay as mixed as without it
    assert feed_regions.count("Jabar") < len(feed_regions)


# -- the protocol's checks, without training -----------------------------------------------------
def test_plugin_state_must_be_plain_arrays_and_json():
    from recommender.models.plugins import PluginError, split_state
    from recommender.params import PluginSpec

    spec = PluginSpec.from_dict({"role": "scorer", "path": "a:B", "name": "mine"})
    arrays, doc = split_state(spec, {"lift": np.ones(3), "names": np.array(["x", "y"]), "alpha": 0.5, "tags": ["a"]})
    assert set(arrays) == {"plugin_mine_lift", "plugin_mine_names"} and doc == {"alpha": 0.5, "tags": ["a"]}
    for state, message in [({"bad": np.array([object()])}, "Python objects"), ({"Bad-Key": 1}, "lowercase"),
                           ({"vectors": np.ones(2)}, "reserved"), ({"x": float("nan")}, "neither a numpy array"),
                           ([1, 2], "must return a dict")]:
        with pytest.raises(PluginError, match=message):
            split_state(spec, state)


def test_a_state_that_does_not_restore_refuses_the_bundle():
    from recommender.models.plugins import PluginError, load_plugins

    entry = {"spec": {"role": "scorer", "path": "tests.byo_plugins:Faulty"}, "state": {"mode": "ok"}, "arrays": []}
    with pytest.raises(PluginError, match=r"set_state\(\) failed .*KeyError"):
        load_plugins([entry], {})  # "seen" is missing
    (plugin,) = load_plugins([{**entry, "state": {"mode": "ok", "seen": 3}}], {})
    assert plugin.model.seen_ == 3 and plugin.name == "p0"
