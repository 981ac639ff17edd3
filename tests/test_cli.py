"""The newsrec command as an operator uses it: sample, ingest, stats, train, models."""

from __future__ import annotations

import json
import shutil

import pytest

from training.cli import main


@pytest.fixture
def home(cli_home):
    return cli_home


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
    assert {k for k, n in stats["events_by_type"].items() if n} == {"impression", "click", "read", "share"}
    assert stats["newest_event_time"]


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
    # nothing imported (a wrong --format, most likely): exit 1, though the report is printed as ever
    code, out, err = run(capsys, "ingest", "events", str(bad), "--format", "csv")
    assert code == 1 and json.loads(out)[0]["accepted"] == 0 and "error: no row of" in err
    # a file where MIND's folder belongs
    code, _, err = run(capsys, "ingest", "mind", str(bad))
    assert code == 2 and "a MIND folder holds news.tsv and behaviors.tsv" in err and "Traceback" not in err


def statuses(capsys) -> dict[str, str]:
    code, out, _ = run(capsys, "models", "list", "--json")
    assert code == 0
    return {v["version"]: v["status"] for v in json.loads(out)}


def test_train_stages_and_models_promote_rollback_verify(home, capsys):
    """``train`` stages (nothing live changes), ``--promote`` and ``models promote`` make a version
    live, ``rollback`` goes back, and the database (not CURRENT) is what says which is live."""
    from recommender.models.bundle import read_current
    from recommender.store import SQLiteStore

    run(capsys, "sample", "--articles", "120", "--users", "60", "--days", "3", "--seed", "2", "--ingest")
    code, out, _ = run(capsys, "train", "--json")
    first = json.loads(out)
    assert code == 0 and first["events_used"] > 0 and first["status"] == "staged" and first["live_version"] is None
    first = first["version"]
    assert statuses(capsys) == {first: "staged"} and read_current(home / "models") is None
    code, out, _ = run(capsys, "train", "--json", "--seed", "1", "--factors", "16", "--promote")
    second = json.loads(out)
    assert code == 0 and second["status"] == "live" and second["live_version"] == second["version"]
    second = second["version"]
    assert statuses(capsys) == {first: "staged", second: "live"}
    code, out, _ = run(capsys, "train", "--json", "--seed", "2")  # the nightly retrain: staged, second stays live
    third = json.loads(out)["version"]
    assert statuses(capsys) == {first: "staged", second: "live", third: "staged"}
    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and f"* {second}  live" in out and f"  {third}  staged" in out

    assert run(capsys, "models", "promote", third)[0] == 0
    assert statuses(capsys) == {first: "staged", second: "retired", third: "live"}
    code, out, _ = run(capsys, "models", "promote", third)
    assert code == 0 and "already live" in out
    code, out, _ = run(capsys, "models", "rollback", third)
    assert code == 0 and "already live" in out
    assert run(capsys, "models", "rollback", second)[0] == 0
    assert statuses(capsys) == {first: "staged", second: "live", third: "retired"}
    code, _, err = run(capsys, "models", "rollback", third)  # newer than the live version: that is a promotion
    assert code == 1 and "models promote" in err
    store = SQLiteStore(home / "newsrec.sqlite3")
    assert store.live_model() == second and read_current(home / "models") == second  # CURRENT: a copy for people
    # compare-and-set from the command line: a stale expectation changes nothing (exit 3)
    code, _, err = run(capsys, "models", "promote", first, "--expect", third)
    assert code == 3 and f"the live version is {second}, not {third}" in err and store.live_model() == second
    assert run(capsys, "models", "promote", first, "--expect", second)[0] == 0 and store.live_model() == first
    assert run(capsys, "models", "verify")[0] == 0
    assert json.loads(run(capsys, "models", "verify")[1])["version"] == first  # the live one by default

    target = home / "models" / second / "item_factors.npy"
    raw = bytearray(target.read_bytes())
    raw[-3] ^= 0x10
    target.write_bytes(bytes(raw))
    code, out, _ = run(capsys, "models", "verify", second)
    assert code == 1 and not json.loads(out)["ok"]
    code, _, err = run(capsys, "models", "promote", second)
    assert code == 1 and "item_factors.npy" in err and store.live_model() == first  # refused, nothing changed
    code, _, err = run(capsys, "models", "promote", "20200101T000000Z-abcdef")
    assert code == 1 and "does not exist" in err and store.live_model() == first
    assert "pick a version from 'newsrec models list'" in err  # a command, not a Python function
    store.close()


def test_train_promote_does_not_override_a_rollback_made_while_it_trained(home, capsys, monkeypatch):
    """``train --promote`` promotes only over the version that was live when it started: an
    operator's rollback during the training wins, and the new version stays staged (exit 3)."""
    from recommender.models import fitting
    from recommender.store import SQLiteStore

    run(capsys, "sample", "--articles", "120", "--users", "60", "--days", "3", "--seed", "2", "--ingest")
    old = json.loads(run(capsys, "train", "--json", "--promote")[1])["version"]
    trained = json.loads(run(capsys, "train", "--json", "--promote", "--seed", "1")[1])
    live = trained["version"]
    real = fitting.build_model

    def rollback_meanwhile(*args, **kwargs):
        assert main(["models", "rollback", old]) == 0  # the operator, while the nightly job trains
        capsys.readouterr()  # the operator's output is not the job's
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "build_model", rollback_meanwhile)
    code, out, err = run(capsys, "train", "--json", "--promote", "--seed", "2")
    assert code == 3 and "not promoted" in err and f"the live version is {old}, not {live}" in err
    staged = json.loads(out)  # --json: a script still learns what was staged and why it is not live
    assert staged["status"] == "staged" and staged["promoted"] is False and staged["live_version"] == old
    assert f"the live version is {old}, not {live}" in staged["not_promoted_reason"]
    assert set(staged) == {*trained, "not_promoted_reason"}  # and the training's report, as after any training
    assert staged["articles"] == trained["articles"] and staged["timings_seconds"]["bundle write"] > 0
    store = SQLiteStore(home / "newsrec.sqlite3")
    listed = statuses(capsys)
    assert store.live_model() == old and listed.pop(old) == "live" and listed.pop(live) == "retired"
    assert listed == {staged["version"]: "staged"}  # the new version, kept for a promotion by hand
    store.close()


def test_an_upgraded_installation_adopts_current_once(home, capsys):
    """A models folder from before (CURRENT names the served version, the database names none):
    the first command that asks adopts it as the live version, and CURRENT is not read again."""
    from recommender.models.bundle import set_current
    from recommender.store import SQLiteStore

    run(capsys, "sample", "--articles", "120", "--users", "60", "--days", "3", "--seed", "2", "--ingest")
    old = json.loads(run(capsys, "train", "--json")[1])["version"]
    new = json.loads(run(capsys, "train", "--json", "--seed", "1")[1])["version"]
    set_current(home / "models", old)  # what the older release left behind
    store = SQLiteStore(home / "newsrec.sqlite3")
    assert store.live_model() is None
    assert statuses(capsys) == {old: "live", new: "staged"} and store.live_model() == old
    set_current(home / "models", new)  # an older tool writing CURRENT after the upgrade: not followed
    assert statuses(capsys) == {old: "live", new: "staged"}
    store.close()


def test_train_refuses_an_empty_store_and_bad_parameters(home, capsys, tmp_path):
    code, _, err = run(capsys, "train")
    assert code == 1 and "ingest articles first" in err
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"factors": 8, "nonsense": 1}))
    code, _, err = run(capsys, "train", "--config", str(cfg))
    assert code == 2 and "nonsense" in err
    # these reached numpy or implicit and ended in a traceback once there was data to train on
    for bad, message in (({"factors": 8.5}, "factors must be a whole number of at least 1, got 8.5"),
                         ({"factors": 0}, "factors must be a whole number of at least 1"),
                         ({"neighbours": "40"}, "neighbours must be a finite number, got '40'"),
                         ({"alpha": None}, "alpha must be a finite number, got None"),
                         ({"weights": {"click": "x"}}, "weights.click must be a finite number, got 'x'"),
                         ({"weights": {"click": -1}}, "weights.click must be 0 or more, got -1")):
        cfg.write_text(json.dumps(bad))
        code, _, err = run(capsys, "train", "--config", str(cfg))
        assert code == 2 and message in err and "Traceback" not in err, (bad, err)


def test_evaluate_and_tune_refuse_a_store_without_articles_with_a_message(home, capsys, tmp_path):
    """Events but no articles (a site that imported its logs first): an error naming the fix, no traceback."""
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"user_id": "u1", "article_id": "a1", "event": "click",
                                  "ts": "2026-12-01T00:00:00Z"}) + "\n")
    assert run(capsys, "ingest", "events", str(events))[0] == 0
    code, _, err = run(capsys, "evaluate", "--no-plots")
    assert code == 2 and "ingest articles first" in err and "Traceback" not in err
    code, _, err = run(capsys, "tune")
    assert code == 2 and err.startswith("error:") and "Traceback" not in err
    code, _, err = run(capsys, "models", "rollback")
    assert code == 1 and "no model version is live" in err


def test_an_unknown_option_is_reported_with_the_usage_of_the_command_it_was_given_to(capsys):
    for argv, usage in ((["train", "--bogus"], "usage: newsrec train "),
                        (["models", "promote", "V1", "--bogus"], "usage: newsrec models promote "),
                        (["--bogus"], "usage: newsrec [-h]")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith(usage) and "unrecognized arguments: --bogus" in err, argv


def test_pins_add_refuses_an_article_the_store_does_not_hold(home, capsys):
    assert main(["sample", "--articles", "30", "--users", "5", "--days", "2", "--ingest"]) == 0
    known = json.loads((home / "sample" / "articles.jsonl").read_text().splitlines()[0])["article_id"]
    capsys.readouterr()
    code, _, err = run(capsys, "pins", "add", known + "x", "--position", "2", "--expires", "2099-01-01T00:00:00+07:00")
    assert code == 1 and f"article {known}x is not in the store: publish it first" in err
    code, out, _ = run(capsys, "pins", "add", known, "--position", "2", "--expires", "2099-01-01T00:00:00+07:00")
    assert code == 0 and out.strip().startswith("p")
    code, out, _ = run(capsys, "pins", "list", "--json")
    assert [p["target"]["article_id"] for p in json.loads(out)] == [known]
    # the related lists of an unknown article: a rule that would never show, refused alike
    code, _, err = run(capsys, "pins", "add", known, "--position", "1", "--list", "related", "--anchor", known + "x",
                       "--expires", "2099-01-01T00:00:00+07:00")
    assert code == 1 and f"article {known}x is not in the store" in err and "scope the rule" in err
    code, _, err = run(capsys, "rules", "add", "block", "--category", "Hiburan", "--list", "related",
                       "--anchor", known + "x")
    assert code == 1 and f"article {known}x is not in the store" in err
    code, out, _ = run(capsys, "rules", "add", "block", "--article", known + "x")  # a block may come first
    assert code == 0 and out.strip().startswith("r")
    code, out, _ = run(capsys, "rules", "list", "--json")
    assert [r["target"] for r in json.loads(out)] == [{"article_id": known + "x"}]
    # listed as the API lists it: ISO-8601 times in WIB, and whether it applies now
    (pin,) = json.loads(run(capsys, "pins", "list", "--json")[1])
    assert (pin["expires_at"], pin["position"], pin["active"]) == ("2099-01-01T00:00:00+07:00", 2, True)


def test_train_says_so_when_it_trained_on_no_events(home, capsys):
    """An archive (here a sample that ended in 2019) is outside the window before now: the model
    would rank by text alone, and the summary's events_used 0 was all that said so."""
    assert main(["sample", "--articles", "40", "--users", "20", "--days", "2", "--end", "2019-11-15T00:00:00+07:00",
                 "--ingest"]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "train", "--json")
    assert code == 0 and json.loads(out)["events_used"] == 0
    assert "warning: trained on no events: the store's newest event (2019-11-14T" in err and "pass --as-of" in err
    code, out, err = run(capsys, "train", "--json", "--as-of", "2019-11-15T01:00:00+07:00")
    assert code == 0 and json.loads(out)["events_used"] > 0 and "warning" not in err


def test_stats_does_not_create_a_store_where_there_is_none(home, capsys):
    code, _, err = run(capsys, "stats")
    assert code == 2 and f"no store at {home / 'newsrec.sqlite3'}" in err and not (home / "newsrec.sqlite3").exists()


def test_evaluate_of_a_text_only_store_says_it_has_nothing_to_judge(home, capsys, tmp_path):
    """Articles and no events (a scraped corpus): the error pointed to --cut, which then wrote a
    report of 0 test queries and printed no reason; now neither hides that there is nothing to rank."""
    articles = tmp_path / "articles.jsonl"
    words = "banjir jakarta gempa bali harga beras naik timnas menang piala pemilu presiden".split()
    articles.write_text("".join(json.dumps({"article_id": f"a{i}", "title": " ".join(words[i:i + 3]),
                                            "body": " ".join(words[i:i + 5]), "category": "Nasional",
                                            "published_at": f"2026-12-01T{i:02d}:00:00+07:00"}) + "\n"
                                for i in range(12)))
    assert run(capsys, "ingest", "articles", str(articles))[0] == 0
    code, _, err = run(capsys, "evaluate", "--no-plots")
    assert code == 2 and "no events" in err and "--cut" not in err and "benchmarks/quality.py" in err
    code, out, _ = run(capsys, "evaluate", "--no-plots", "--protocol", "related", "--cut", "2026-12-01T06:00:00+07:00")
    assert code == 0 and "0 test queries" in out and "related needs co-reading" in out


def test_staged_trainings_keep_the_rollback_target_and_rollback_names_one_deleted(home, capsys):
    """Staged trainings pruned the version live before the live one (train keeps the newest N
    besides the live one): a rollback had nowhere to go and said that no older version was ever
    live. Pruning now spares it; one deleted by hand is named as gone."""
    run(capsys, "sample", "--articles", "80", "--users", "40", "--days", "2", "--seed", "3", "--ingest")
    first = json.loads(run(capsys, "train", "--json", "--promote")[1])["version"]
    second = json.loads(run(capsys, "train", "--json", "--promote", "--seed", "1")[1])["version"]
    for seed in ("2", "4"):
        assert run(capsys, "train", "--json", "--keep", "1", "--seed", seed)[0] == 0
    assert statuses(capsys)[first] != "gone" and statuses(capsys)[second] == "live"
    shutil.rmtree(home / "models" / first)  # by hand: then rollback says where it went
    assert first not in statuses(capsys)
    code, _, err = run(capsys, "models", "rollback")
    assert code == 1 and "was ever live" not in err
    assert f"{first} was live before but is no longer in the models folder" in err and "--keep" in err
