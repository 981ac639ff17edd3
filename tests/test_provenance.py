"""Every bundle and report names the code version and a fingerprint of the data it saw."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from recommender.domain import Interaction
from recommender.models.fitting import build_model, train
from recommender.models.provenance import code_version, describe
from recommender.params import TrainParams

PARAMS = TrainParams(iterations=3, factors=8, n_components=16)


@pytest.fixture(scope="module")
def sample(trained, tmp_path_factory):
    return trained.clone(tmp_path_factory.mktemp("provenance"))


def _fingerprint(sample, as_of=None, params=PARAMS) -> str:
    return build_model(sample.store, params, as_of=sample.now if as_of is None else as_of, seed=0).manifest[
        "data_fingerprint"]


def test_same_data_same_fingerprint_and_one_more_event_changes_it(sample):
    first = _fingerprint(sample)
    # a promotion writes to the change log between the two trainings: not data
    version, built = train(sample.store, sample.models_dir, PARAMS, as_of=sample.now, seed=1, promote=True)
    assert built.manifest["data_fingerprint"] == first == _fingerprint(sample)
    # trained an hour apart, with no event or article entering or leaving the window: the same data
    settled = max(a.article.published_at for a in sample.store.iter_articles()) + 600.0
    assert settled > sample.now
    later = _fingerprint(sample, as_of=settled)
    assert _fingerprint(sample, as_of=settled + 3600) == later
    assert _fingerprint(sample, params=dataclasses.replace(PARAMS, alpha=3.0)) != first
    reader, article = sample.data.events[0]["user_id"], sample.data.articles[0]["article_id"]
    inserted, _ = sample.store.add_events([Interaction(reader, article, "click", sample.now - 60.0,
                                                       event_id="one-more")])
    assert inserted == 1
    after_event = _fingerprint(sample)
    assert after_event != first
    # an article edited in place (same count, same events) changes it too
    stored = next(iter(sample.store.iter_articles()))
    sample.store.upsert_articles([dataclasses.replace(stored.article, title=stored.article.title + " (ralat)")])
    assert _fingerprint(sample) not in (first, after_event)


def test_bundle_manifest_names_the_code_and_what_was_read(sample):
    built = build_model(sample.store, PARAMS, as_of=sample.now, seed=0)
    manifest = built.manifest
    assert manifest["code"] == built.report["code_version"] == code_version()
    assert manifest["data_read"]["events"] == built.report["events_loaded"]
    assert manifest["data_read"]["event_seq"] == sample.store.log_position()[1]
    assert built.report["data_fingerprint"] == manifest["data_fingerprint"]
    assert json.loads(json.dumps(manifest["data_read"])) == manifest["data_read"]  # plain JSON in the bundle


def _git(root, *args) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_code_version_in_a_git_checkout_and_outside_one(tmp_path):
    repo = tmp_path / "checkout"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one")
    clean = code_version(repo)
    assert clean["git_sha"] == _git(repo, "rev-parse", "HEAD") and clean["dirty"] is False
    (repo / "untracked.txt").write_text("var/ and reports do not count\n")
    assert code_version(repo)["dirty"] is False
    (repo / "a.py").write_text("x = 2\n")
    assert code_version(repo)["dirty"] is True
    assert describe(code_version(repo)) == f"git {clean['git_sha'][:12]} (dirty)"
    outside = tmp_path / "not-a-checkout"
    outside.mkdir()
    version = code_version(outside)
    assert version["git_sha"] is None and version["dirty"] is None
    assert version["package_version"] and describe(version) == f"newsrec {version['package_version']}"


@pytest.fixture
def home(tmp_path, monkeypatch):
    from training.cli import main

    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NEWSREC_DB", raising=False)
    monkeypatch.delenv("NEWSREC_MODELS", raising=False)
    assert main(["sample", "--articles", "120", "--users", "40", "--days", "3", "--seed", "5", "--ingest",
                 "--end", "2026-11-27T00:00:00+07:00"]) == 0
    return tmp_path / "home"


def test_cli_train_and_evaluate_name_code_and_data(home, tmp_path, capsys):
    from training.cli import main

    capsys.readouterr()
    assert main(["train", "--json", "--as-of", "2026-11-27T00:00:00+07:00", "--iterations", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["code_version"] == code_version() and summary["data_fingerprint"].startswith("sha256:")
    out = tmp_path / "report"
    assert main(["evaluate", "--protocol", "topk", "--out", str(out), "--no-plots", "--no-ablations",
                 "--baselines", "random", "--max-queries", "5"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["code_version"] == code_version() and report["data_fingerprint"].startswith("sha256:")
    assert describe(code_version()) in (out / "report.md").read_text()


def test_an_evaluation_without_out_goes_where_the_console_shows_it(home, tmp_path, monkeypatch, capsys):
    """NEWSREC_HOME/reports/<time>/, not ./reports of whatever folder the command ran in."""
    from training.cli import main

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", "--protocol", "topk", "--no-plots", "--no-ablations", "--baselines", "random",
                 "--max-queries", "5"]) == 0
    runs = list((home / "reports").iterdir())
    assert len(runs) == 1 and (runs[0] / "report.json").is_file() and not (elsewhere / "reports").exists()
