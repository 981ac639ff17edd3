"""An experiment's status follows its start and end times (scheduled, running, ended, stopped) the
same way in the command, its JSON, the admin API and the console; an end that has passed and
shares with interleaving are refused at creation."""

from __future__ import annotations

import json
import re
import time

import pytest

from api import create_app
from recommender.domain import ValidationError
from recommender.experiments import registry
from recommender.experiments.definition import Experiment, Variant, experiment_from_dict
from recommender.security import KEYS_FILE, KeyStore

DAY = 86_400.0


@pytest.fixture
def sample(trained, tmp_path):
    return trained.clone(tmp_path)


def body(sample, name, lists, **extra) -> dict:
    return {"name": name, "variants": [{"label": "A", "model_version": sample.version},
                                       {"label": "B", "model_version": sample.version}], "lists": lists, **extra}


def one_of_each(sample, now: float) -> dict[str, str]:
    """Four experiments that are, at ``now``, each in one status (the expected status by name)."""
    registry.create(sample.store, sample.models_dir, body(sample, "was-stopped", ["related"]), now=now - 10 * DAY)
    registry.stop(sample.store, "was-stopped", now=now - 9 * DAY)
    registry.create(sample.store, sample.models_dir, body(sample, "live", ["related"], ends_at=now + 3 * DAY), now=now)
    registry.create(sample.store, sample.models_dir, body(sample, "past", ["feed"], starts_at=now - 3 * DAY,
                                                          ends_at=now - 2 * DAY), now=now - 4 * DAY)
    registry.create(sample.store, sample.models_dir, body(sample, "tomorrow", ["feed"], starts_at=now + DAY,
                                                          ends_at=now + 2 * DAY), now=now)
    return {"was-stopped": "stopped", "live": "running", "past": "ended", "tomorrow": "scheduled"}


def newsrec(sample, monkeypatch, capsys, *args) -> tuple[int, str, str]:
    from training.cli import main

    for name in ("NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(sample.root))  # its newsrec.sqlite3 and models/
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the rule -----------------------------------------------------------------------------------
def test_the_status_follows_start_end_and_stop():
    e = Experiment(name="e", variants=(Variant("A", "v1"), Variant("B", "v2")), shares=(50, 50),
                   starts_at=100.0, ends_at=200.0)
    assert [e.status(t) for t in (99.0, 100.0, 199.0, 200.0)] == ["scheduled", "running", "running", "ended"]
    assert e.active(150.0) and not e.active(99.0) and not e.active(200.0)  # what assignment says, the same
    stopped = Experiment(**{**e.__dict__, "stopped_at": 150.0})
    assert stopped.status(160.0) == "stopped" and stopped.status(250.0) == "stopped"
    assert Experiment(**{**e.__dict__, "stopped_at": 50.0}).status(60.0) == "stopped"  # stopped before it started
    assert Experiment(**{**e.__dict__, "stopped_at": 300.0}).status(400.0) == "ended"  # it had ended by then


def test_an_end_that_has_passed_is_refused_and_nothing_is_stored(sample):
    now = sample.now
    for ends_at in (now - DAY, now):
        with pytest.raises(ValidationError, match="ends_at .* is not in the future"):
            registry.create(sample.store, sample.models_dir, body(sample, "x16", ["feed"], ends_at=ends_at), now=now)
    assert registry.load_all(sample.store) == []
    made = registry.create(sample.store, sample.models_dir, body(sample, "x16", ["feed"], ends_at=now + 1), now=now)
    assert made.status(now) == "running"


def test_an_experiment_past_its_end_cannot_be_stopped_and_keeps_its_end(sample):
    now = sample.now
    registry.create(sample.store, sample.models_dir, body(sample, "short", ["feed"], ends_at=now + 60), now=now)
    with pytest.raises(registry.ExperimentConflict, match="ended at .* already"):
        registry.stop(sample.store, "short", now=now + 120)
    ended = registry.get(sample.store, "short")
    assert ended.stopped_at is None and ended.status(now + 120) == "ended"
    assert registry.stop(sample.store, "short", now=now + 30).status(now + 30) == "stopped"  # before its end: stops


def test_interleaving_takes_no_shares_but_an_equal_split():
    two = [{"label": "A", "model_version": "v1"}, {"label": "B", "model_version": "v2"}]
    with pytest.raises(ValidationError, match="interleave mode .*50/50 by construction.*leave out shares"):
        experiment_from_dict({"name": "il", "variants": two, "mode": "interleave", "shares": [10, 90]})
    assert experiment_from_dict({"name": "il", "variants": two, "mode": "interleave", "shares": [50, 50]}).shares \
        == (50, 50)
    assert experiment_from_dict({"name": "ab", "variants": two, "shares": [10, 90]}).shares == (10, 90)
    # one stored before this rule still loads (its shares were never used)
    stored = json.dumps({"name": "il", "variants": two, "mode": "interleave", "shares": [10, 90], "salt": "s"})
    assert Experiment.from_json(stored).mode == "interleave"


def test_a_scheduled_experiment_conflicts_only_where_its_time_overlaps(sample):
    """The overlap rule as it was (a guard: it held before the statuses too)."""
    now = sample.now
    registry.create(sample.store, sample.models_dir, body(sample, "later", ["feed"], starts_at=now + DAY,
                                                          ends_at=now + 2 * DAY), now=now)
    with pytest.raises(registry.ExperimentConflict, match="'later' already covers feed"):
        registry.create(sample.store, sample.models_dir, body(sample, "open-ended", ["feed"]), now=now)
    registry.create(sample.store, sample.models_dir, body(sample, "before", ["feed"], ends_at=now + DAY / 2), now=now)
    assert {e.name for e in registry.load_all(sample.store)} == {"later", "before"}


def test_the_report_says_the_status_now(sample):
    expected = one_of_each(sample, time.time())
    assert {name: registry.report(sample.store, name)["status"] for name in expected} == expected


# -- the command --------------------------------------------------------------------------------
def test_the_command_refuses_a_past_end_and_interleaved_shares(sample, monkeypatch, capsys):
    variants = ("--variant", f"A={sample.version}", "--variant", f"B={sample.version}")
    code, out, err = newsrec(sample, monkeypatch, capsys, "experiments", "create", "x16", *variants,
                             "--ends-at", "2020-01-01T00:00:00")
    assert code == 2 and "is not in the future" in err and out == ""
    code, out, err = newsrec(sample, monkeypatch, capsys, "experiments", "create", "il-share", *variants,
                             "--mode", "interleave", "--share", "10,90")
    assert code == 2 and "50/50 by construction" in err and out == ""
    assert registry.load_all(sample.store) == []
    code, out, _ = newsrec(sample, monkeypatch, capsys, "experiments", "create", "il", *variants,
                           "--mode", "interleave", "--share", "50,50", "--starts-at", "2099-01-01T00:00:00")
    assert code == 0 and json.loads(out)["status"] == "scheduled"


def test_the_command_lists_and_reports_each_status(sample, monkeypatch, capsys):
    expected = one_of_each(sample, time.time())  # the command's clock
    code, out, _ = newsrec(sample, monkeypatch, capsys, "experiments", "list", "--json")
    assert code == 0 and {e["name"]: e["status"] for e in json.loads(out)} == expected
    code, out, _ = newsrec(sample, monkeypatch, capsys, "experiments", "list")
    shown = {line.split()[0]: line.split()[3] for line in out.splitlines()}
    assert code == 0 and shown == expected
    assert "running until " in out
    for name, status in expected.items():
        code, out, _ = newsrec(sample, monkeypatch, capsys, "experiments", "report", name, "--json")
        assert code == 0 and json.loads(out)["status"] == status
        code, out, _ = newsrec(sample, monkeypatch, capsys, "experiments", "report", name)
        assert code == 0 and out.startswith(f"experiment {name} (ab, {status})")


def test_the_command_says_plainly_when_there_is_nothing_yet(sample, monkeypatch, capsys):
    code, out, _ = newsrec(sample, monkeypatch, capsys, "experiments", "list")
    assert code == 0 and out.startswith("no experiments") and out.endswith("'\n")
    registry.create(sample.store, sample.models_dir, body(sample, "empty", ["feed"]), now=time.time())
    code, out, _ = newsrec(sample, monkeypatch, capsys, "experiments", "report", "empty")
    assert code == 0 and "sample-ratio check: not enough traffic yet\n" in out and "None" not in out


# -- the API and the console ---------------------------------------------------------------------
@pytest.fixture
def app(sample):
    """An app on the sample's engine, whose clock (``sample.now``) the router assigns by."""
    keys = KeyStore(sample.root / "home" / KEYS_FILE)
    sample.raw = {role: keys.add(role)[0] for role in ("admin",)}
    engine = sample.engine()
    yield create_app({"NEWSREC_HOME": str(sample.root / "home"), "TESTING": True, "ENGINE": engine,
                      "STORE": sample.store, "NEWSREC_TOKEN_SECRET": "test-secret-0123456789abcdef"})
    engine.close()


def test_the_api_lists_each_status_and_refuses_a_past_end_or_interleaved_shares(sample, app):
    expected = one_of_each(sample, sample.now)
    client, admin = app.test_client(), {"X-API-Key": sample.raw["admin"]}
    listed = client.get("/v1/admin/experiments", headers=admin).get_json()["experiments"]
    assert {e["name"]: e["status"] for e in listed} == expected
    assert client.get("/v1/admin/experiments/tomorrow", headers=admin).get_json()["status"] == "scheduled"
    assert client.get("/v1/admin/experiments/past/report", headers=admin).get_json()["status"] == "ended"
    variants = body(sample, "x", ["feed"])["variants"]
    for extra, says in (({"ends_at": sample.now - 60}, "is not in the future"),
                        ({"mode": "interleave", "shares": [10, 90]}, "50/50 by construction")):
        reply = client.post("/v1/admin/experiments", json={"name": "x", "variants": variants, **extra}, headers=admin)
        assert reply.status_code == 400 and reply.get_json()["error"] == "validation_error", reply.get_json()
        assert says in reply.get_json()["message"]
    assert "x" not in [e.name for e in registry.load_all(sample.store)]


def test_the_console_list_shows_status_start_and_end(sample, app):
    one_of_each(sample, sample.now)
    client = app.test_client()
    page = client.get("/console/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.post("/console/signin", data={"csrf_token": csrf, "key": sample.raw["admin"],
                                                "next": "/console/"}).status_code == 303
    listing = client.get("/console/experiments").text
    rows = dict(re.findall(r'<tr><td><a href="/console/experiments/([\w-]+)">.*?<td class="status-(\w+)">', listing,
                           flags=re.S))
    assert rows == {"was-stopped": "stopped", "live": "running", "past": "ended", "tomorrow": "scheduled"}
    assert "<th>starts</th><th>ends</th>" in listing and "when stopped" in listing
    stops = set(re.findall(r'href="/console/experiments/([\w-]+)/stop"', listing))
    assert stops == {"live", "tomorrow"}  # nothing left to stop in one that ended or was stopped


def test_start_and_end_are_taken_as_iso_8601_too_and_answered_as_epoch_seconds(sample, app):
    """As every other body of the API (events, articles, pins): an ISO-8601 time, read in WIB without
    an offset; a time that is neither is a 400 naming the field."""
    from recommender.domain import format_time

    client, admin = app.test_client(), {"X-API-Key": sample.raw["admin"]}
    start, end = round(sample.now) + 3600, round(sample.now) + 2 * DAY
    made = client.post("/v1/admin/experiments", json=body(sample, "iso", ["feed"], starts_at=format_time(start),
                                                         ends_at=format_time(end)), headers=admin)
    assert made.status_code == 201, made.get_json()
    assert (made.get_json()["starts_at"], made.get_json()["ends_at"], made.get_json()["status"]) == (
        start, end, "scheduled")
    assert registry.get(sample.store, "iso").ends_at == end
    bad = client.post("/v1/admin/experiments", json=body(sample, "bad", ["feed"], ends_at="next tuesday"),
                      headers=admin)
    assert bad.status_code == 400 and "ends_at is not an ISO-8601 time" in bad.get_json()["message"]
