"""``newsrec tune`` writes a candidate config and a report; the production config changes only
with ``--apply`` / ``--apply-from``, the old one kept; bad input gets a clear error and exit 2."""

from __future__ import annotations

import json

import pytest

from recommender.params import TrainParams
from training.cli import main

END = "2026-11-27T00:00:00+07:00"
# a 4-day sample: the last day is the test period, the 30 % of events before it the validation period
TUNE = ["tune", "--trials", "2", "--blend-samples", "20", "--validation-days", "0.3", "--max-queries", "40"]


def _home(tmp_path, monkeypatch, name="home"):
    home = tmp_path / name
    monkeypatch.setenv("NEWSREC_HOME", str(home))
    monkeypatch.delenv("NEWSREC_DB", raising=False)
    monkeypatch.delenv("NEWSREC_MODELS", raising=False)
    return home


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = _home(tmp_path, monkeypatch)
    assert main(["sample", "--articles", "150", "--users", "60", "--days", "4", "--seed", "5", "--ingest",
                 "--end", END]) == 0
    return home


def _trained_parameters(home, capsys) -> tuple[dict, str]:
    """(parameters in the bundle ``newsrec train`` writes, with ``iterations`` put back to what the
    config said (the command overrides it to train quickly), where train said it read them)."""
    capsys.readouterr()
    assert main(["train", "--json", "--as-of", END, "--iterations", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    manifest = json.loads((home / "models" / summary["version"] / "manifest.json").read_text())
    assert manifest["parameters"]["iterations"] == 3
    config = home / "config" / "train.json"
    configured = TrainParams.load(config) if config.exists() else TrainParams()
    manifest["parameters"]["iterations"] = configured.iterations
    return manifest["parameters"], summary["parameters_from"]


def test_tune_writes_a_candidate_and_changes_production_only_when_applied(home, tmp_path, capsys):
    production = home / "config" / "train.json"
    current = TrainParams(factors=24, ranking=TrainParams().ranking)
    current.save(production)
    before = production.read_bytes()
    out = tmp_path / "tuned"
    assert main([*TUNE, "--out", str(out)]) == 0
    assert production.read_bytes() == before and not (home / "config" / "history").exists()
    candidate = TrainParams.load(out / "candidate.json")
    report = json.loads((out / "report.json").read_text())
    assert report["applied"] is None and report["base_parameters_from"] == str(production)
    assert len(report["trials"]) == 2 and report["trials"][0]["params"]["factors"] == 24  # trial 0 = the current config
    assert candidate == TrainParams.from_dict(report["trials"][report["best_trial"]]["params"])
    comparison = report["comparison"]
    for metric in ("auc", "mrr", "ndcg@10"):
        assert comparison["baseline"][metric] == report["trials"][0]["validation_with_trial_weights"][metric]
        assert comparison["difference"][metric] == pytest.approx(
            comparison["candidate"][metric] - comparison["baseline"][metric], abs=1e-3)
    assert report["code_version"]["git_sha"] or report["code_version"]["package_version"]
    assert report["data_fingerprint"].startswith("sha256:")
    assert "production config is unchanged" in capsys.readouterr().out
    parameters, source = _trained_parameters(home, capsys)
    assert source == str(production) and parameters == current.to_dict()  # train still reads the old config

    # a reviewed candidate goes live with --apply-from: the old config is kept
    assert main(["tune", "--apply-from", str(out)]) == 0
    backups = list((home / "config" / "history").glob("train-*.json"))
    assert len(backups) == 1 and backups[0].read_bytes() == before
    assert TrainParams.load(production) == candidate
    parameters, source = _trained_parameters(home, capsys)
    assert source == str(production) and parameters == candidate.to_dict()


def test_tune_apply_searches_and_applies_in_one_run(home, tmp_path, capsys):
    production = home / "config" / "train.json"
    out = tmp_path / "tuned"
    capsys.readouterr()
    assert main([*TUNE, "--trials", "1", "--out", str(out), "--apply", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["applied"] == {"config": str(production), "backup": None}  # nothing to keep before
    assert TrainParams.load(production) == TrainParams.load(out / "candidate.json")
    assert _trained_parameters(home, capsys)[0] == TrainParams.load(out / "candidate.json").to_dict()


def test_unreadable_production_config_is_a_clear_error(home, tmp_path, capsys):
    production = home / "config" / "train.json"
    production.parent.mkdir(parents=True, exist_ok=True)
    production.write_text('{"factors": 32, "not_a_parameter": 1}')
    capsys.readouterr()
    assert main([*TUNE, "--out", str(tmp_path / "tuned"), "--apply"]) == 2
    err = capsys.readouterr().err
    assert str(production) in err and "not_a_parameter" in err
    production.write_text("{ not json")
    assert main([*TUNE, "--out", str(tmp_path / "tuned"), "--apply"]) == 2
    assert str(production) in capsys.readouterr().err
    assert production.read_text() == "{ not json" and not (tmp_path / "tuned").exists()


def test_bad_candidate_changes_nothing(home, tmp_path, capsys):
    production = home / "config" / "train.json"
    TrainParams(factors=24).save(production)
    before = production.read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text('{"factors": "many", "ranking": {"feed_ctr": 1.0, "nope": 2}}')
    for candidate in (bad, tmp_path / "missing.json"):
        capsys.readouterr()
        assert main(["tune", "--apply-from", str(candidate)]) == 2
        assert "nothing changed" in capsys.readouterr().err
    assert production.read_bytes() == before and not (home / "config" / "history").exists()


def test_no_events_or_no_store_is_a_clear_error(tmp_path, monkeypatch, capsys):
    home = _home(tmp_path, monkeypatch)
    capsys.readouterr()
    assert main(["tune"]) == 2
    assert "no store" in capsys.readouterr().err
    assert main(["sample", "--articles", "30", "--users", "5", "--days", "2", "--end", END]) == 0
    assert main(["ingest", "articles", str(home / "sample" / "articles.jsonl")]) == 0
    capsys.readouterr()
    assert main(["tune", "--apply"]) == 2
    assert "no events" in capsys.readouterr().err
    assert not (home / "config" / "train.json").exists()
    assert main(["tune", "--trials", "0"]) == 2


def test_a_validation_period_as_long_as_the_training_is_a_clear_error_naming_the_option(home, capsys):
    capsys.readouterr()
    assert main(["tune", "--trials", "1", "--validation-days", "30"]) == 2
    err = capsys.readouterr().err
    assert "--validation-days 30 covers the whole training period" in err and "fraction_or_days" not in err
    assert main(["tune", "--trials", "1", "--validation-days", "0"]) == 2
    assert "--validation-days must be" in capsys.readouterr().err
