"""The newsrec command as an operator uses it: sample, ingest, stats, train, models."""

from __future__ import annotations

import json

import pytest

from training.cli import main


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in ("NEWSREC_HOME", "NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for name in ("sample", "ingest", "stats", "train", "models", "evaluate", "serve", "keys", "token", "demo"):
        assert name in text


def test_sample_is_deterministic_and_ingest_stats_round_trip(home, capsys, tmp_path):
    fixed = ("--end", "2026-11-01T00:00:00+07:00")  # the default end is now: reproducible data names its end
    code, out, _ = run(capsys, "sample", "--articles", "60", "--users", "30", "--days", "2", "--seed", "5",
                       "--out", str(tmp_path / "a"), *fixed)
    assert code == 0
    run(capsys, "sample", "--articles", "60", "--users", "30", "--days", "2", "--seed", "5",
        "--out", str(tmp_path / "b"), *fixed)
    for name in ("articles.jsonl", "events.jsonl", "preferences.jsonl", "truth.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    summary = json.loads(out)
    for kind in ("articles", "events", "preferences"):
        code, out, _ = run(capsys, "ingest", kind, str(tmp_path / "a" / f"{kind}.jsonl"))
        assert code == 0 and json.loads(out)[0]["rejected"] == 0
    code, out, _ = run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert stats["articles"] == summary["articles"] and stats["events"] == summary["events"]
    assert set(stats["events_by_type"]) == {"impression", "click", "read", "share"} and stats["newest_event_time"]


def test_sample_ends_now_unless_told_otherwise(home, capsys, tmp_path):
    import time

    from recommender.domain import parse_time

    before = time.time()
    code = run(capsys, "sample", "--articles", "40", "--users", "20", "--days", "2", "--out", str(tmp_path / "now"))[0]
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "now" / "events.jsonl").read_text().splitlines()]
    newest = max(parse_time(r["ts"], "ts") for r in rows)
    assert before - 86_400 < newest <= time.time()
    assert run(capsys, "sample", "--articles", "40", "--users", "20", "--days", "2", "--out", str(tmp_path / "fixed"),
               "--end", "2026-11-01T00:00:00+07:00")[0] == 0
    rows = [json.loads(line) for line in (tmp_path / "fixed" / "events.jsonl").read_text().splitlines()]
    assert max(parse_time(r["ts"], "ts") for r in rows) < parse_time("2026-11-01T00:00:00+07:00", "end")


def test_ingest_reports_bad_rows_with_line_numbers(home, capsys, tmp_path):
    bad = tmp_path / "events.jsonl"
    bad.write_text('{"user_id": "u1", "article_id": "a1", "event": "click", "ts": "2026-11-01T10:00:00+07:00"}\n'
                   '{"user_id": "u1", "article_id": "a1", "event": "click"}\n')
    code, out, err = run(capsys, "ingest", "events", str(bad), "--report", str(tmp_path / "r.json"))
    assert code == 0 and "events.jsonl:2: rejected: ts is required" in err
    assert json.loads(out)[0]["accepted"] == 1
    assert json.loads((tmp_path / "r.json").read_text())[0]["errors"] == [{"line": 2, "reason": "ts is required (ISO-8601 time or epoch seconds)"}]
    assert run(capsys, "ingest", "events", str(tmp_path / "missing.jsonl"))[0] == 2


def test_train_then_models_list_verify_rollback(home, capsys):
    run(capsys, "sample", "--articles", "120", "--users", "60", "--days", "3", "--seed", "2", "--ingest")
    code, out, _ = run(capsys, "train", "--json")
    first = json.loads(out)["version"]
    assert code == 0 and json.loads(out)["events_used"] > 0
    code, out, _ = run(capsys, "train", "--json", "--seed", "1", "--factors", "16")
    second = json.loads(out)["version"]
    code, out, _ = run(capsys, "models", "list", "--json")
    listed = json.loads(out)
    assert [v["version"] for v in listed] == [first, second] and listed[1]["current"]
    assert run(capsys, "models", "verify")[0] == 0
    assert run(capsys, "models", "rollback", first)[0] == 0
    assert [v["version"] for v in json.loads(run(capsys, "models", "list", "--json")[1]) if v["current"]] == [first]
    target = home / "models" / second / "item_factors.npy"
    raw = bytearray(target.read_bytes())
    raw[-3] ^= 0x10
    target.write_bytes(bytes(raw))
    code, out, _ = run(capsys, "models", "verify", second)
    assert code == 1 and not json.loads(out)["ok"]
    code, _, err = run(capsys, "models", "rollback", second)
    assert code == 1 and "item_factors.npy" in err


def test_train_refuses_an_empty_store_and_bad_parameters(home, capsys, tmp_path):
    code, _, err = run(capsys, "train")
    assert code == 1 and "ingest articles first" in err
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"factors": 8, "nonsense": 1}))
    code, _, err = run(capsys, "train", "--config", str(cfg))
    assert code == 2 and "nonsense" in err
