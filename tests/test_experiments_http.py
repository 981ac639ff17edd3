"""Experiments over real HTTP: ``newsrec serve --workers 2``, experiments created and stopped
through the admin API and the ``newsrec experiments`` command, feeds and related lists asked of
each worker, clicks posted with their list ids, and reports that count exactly those clicks."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from recommender.experiments.assignment import assign
from recommender.experiments.definition import Experiment
from tests.serve_fixtures import LiveServer, cli, eventually, server_env

LIMIT = 6
READERS = [f"u{i:05d}" for i in range(1, 25)]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A sample ending now and two model versions (one live, one staged), made in this process (the
    command's start-up costs seconds each on a busy machine), then ``newsrec serve --workers 2``."""
    from recommender.datasets.ingest import import_articles, import_events
    from recommender.datasets.synthetic import generate
    from recommender.models.fitting import train
    from recommender.security import KEYS_FILE, KeyStore
    from recommender.store import SQLiteStore

    home = tmp_path_factory.mktemp("experiments-http")
    env = server_env(home)
    data = generate(n_articles=200, n_users=100, days=3, seed=5, end=datetime.now(timezone.utc))
    paths = data.write_jsonl(home / "sample")
    store = SQLiteStore(home / "newsrec.sqlite3")
    import_articles(store, paths["articles"], show_progress=False)
    import_events(store, paths["events"], show_progress=False)
    live, _ = train(store, home / "models", seed=0, promote=True)
    staged, _ = train(store, home / "models", seed=1, promote=False)
    store.close()
    keys = KeyStore(home / KEYS_FILE)
    site, admin = keys.add("site")[0], keys.add("admin")[0]
    server = LiveServer(env, workers=2)
    try:
        server.wait_ready()
        yield {"server": server, "env": env, "home": home, "site": site, "admin": admin, "live": live,
               "staged": staged, "articles": [a["article_id"] for a in data.articles], "lists": []}
    finally:
        rc = server.stop()
    assert rc == 0, server.log_tail()


def newsrec_here(monkeypatch, capsys, s, *args) -> tuple[int, str]:
    """``newsrec ARGS`` in this process (the same code as the command, without its start-up)."""
    from training.cli import main

    for name in ("NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(s["home"]))
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().out


def feed_on(pin, s, user):
    """A feed page from the worker ``pin`` holds; every list of an experiment is kept in ``s["lists"]``."""
    reply = pin.get(f"/v1/users/{user}/feed?limit={LIMIT}", key=s["site"])
    assert reply.status == 200, reply.response.text
    page = reply.json()
    if "experiment" in page:
        s["lists"].append((user, page))
    return page


def post_clicks(s, clicks):
    reply = s["server"].post("/v1/events", {"events": clicks}, key=s["site"])
    assert reply.status == 200, reply.response.text
    return reply.json()


def report_of(s, name):
    reply = s["server"].get(f"/v1/admin/experiments/{name}/report", key=s["admin"])
    assert reply.status == 200, reply.response.text
    return reply.json()


def test_ab_assignment_is_sticky_across_workers_and_the_report_counts_the_clicks_posted(served, monkeypatch, capsys):
    s, server = served, served["server"]
    body = {"name": "ab1", "variants": [{"label": "A", "model_version": s["live"]},
                                        {"label": "B", "model_version": s["staged"]}], "lists": ["feed", "related"]}
    created = server.post("/v1/admin/experiments", body, key=s["admin"])
    assert created.status == 201, created.response.text
    experiment = Experiment.from_json(json.dumps({k: v for k, v in created.json().items()
                                                  if k not in ("status", "stopped_at")}))
    expected = {u: experiment.variants[assign(experiment, u)] for u in READERS}
    assert {v.label for v in expected.values()} == {"A", "B"}

    s["lists"].clear()
    with server.pinned() as pins:
        assert len(pins) == 2
        # the create reached both workers (the other one through the log, within its poll)
        eventually(lambda: all(feed_on(pin, s, READERS[0]).get("experiment") == "ab1" for pin in pins.values()),
                   10.0, what="the experiment on both workers")
        for user in READERS:
            for pin in pins.values():
                page = feed_on(pin, s, user)
                assert (page["experiment"], page["variant"]) == ("ab1", expected[user].label), (user, pin.worker)
                assert page["model_version"] == expected[user].model_version
        anchor, related_lists = s["articles"][-3], []
        for pin in pins.values():
            related = pin.get(f"/v1/articles/{anchor}/related?limit=4&anonymous_id=visitor-3", key=s["site"]).json()
            assert related["variant"] == experiment.variants[assign(experiment, "visitor-3")].label
            related_lists.append(related)
            plain = pin.get(f"/v1/articles/{anchor}/related?limit=4", key=s["site"]).json()
            assert "experiment" not in plain  # no reader, no visitor id: not assigned, not in the experiment

    # clicks: the first and third item of every other feed, one click posted twice
    lists = list(s["lists"])
    clicks, counted = [], {"A": 0, "B": 0}
    for n, (user, page) in enumerate(lists[::2]):
        for position in (0, 2):
            clicks.append({"user_id": user, "article_id": page["items"][position]["article_id"], "event": "click",
                           "ts": time.time(), "list_id": page["list_id"], "position": position,
                           "event_id": f"c{n}-{position}"})
            counted[page["variant"]] += 1
    clicks.append({**clicks[0], "event_id": "again"})  # the reader clicked the same item twice: one click
    post_clicks(s, clicks)
    shown = {label: sum(p["variant"] == label for _, p in lists) for label in ("A", "B")}
    impressions = {label: shown[label] * LIMIT for label in shown}
    for related in related_lists:
        shown[related["variant"]] += 1
        impressions[related["variant"]] += len(related["items"])

    def counts_match():
        report = report_of(s, "ab1")
        got = {label: (v["lists"], v["clicks"]) for label, v in report["variants"].items()}
        assert got == {label: (shown[label], counted[label]) for label in ("A", "B")}, got
        return report

    report = eventually(counts_match, 15.0, what="every served list and click in the report")
    for label, v in report["variants"].items():
        assert v["impressions"] == impressions[label]
        assert v["ctr"] == pytest.approx(counted[label] / impressions[label], abs=1e-6)
        lo, hi = v["ctr_ci"]
        assert lo <= v["ctr"] <= hi
        by_position = {p["position"]: p["clicks"] for p in v["by_position"]}
        assert by_position[0] == by_position[2] == counted[label] // 2 and by_position[1] == 0
    assert report["srm_p"] > 0.001 and len(report["difference_ci"]) == 2
    # the command reads the same numbers
    code, out = newsrec_here(monkeypatch, capsys, s, "experiments", "report", "ab1", "--json")
    printed = json.loads(out)
    assert code == 0
    assert {k: (v["lists"], v["clicks"], v["ctr"], v["ctr_ci"]) for k, v in printed["variants"].items()} == {
        k: (v["lists"], v["clicks"], v["ctr"], v["ctr_ci"]) for k, v in report["variants"].items()}
    assert printed["difference_ci"] == report["difference_ci"] and printed["srm_p"] == report["srm_p"]

    # stopped: every worker serves normal lists again
    stopped = server.post("/v1/admin/experiments/ab1/stop", {}, key=s["admin"])
    assert stopped.status == 200 and stopped.json()["status"] == "stopped"
    with server.pinned() as pins:
        eventually(lambda: all("experiment" not in feed_on(pin, s, READERS[1]) for pin in pins.values()), 10.0,
                   what="no experiment on either worker after the stop")


def test_an_interleaving_experiment_from_the_command_line_credits_clicks_to_teams(served, monkeypatch, capsys):
    s, server = served, served["server"]
    for e in server.get("/v1/admin/experiments", key=s["admin"]).json()["experiments"]:
        if e["status"] == "running":  # none after the A/B test; when run alone, whatever runs
            server.post(f"/v1/admin/experiments/{e['name']}/stop", {}, key=s["admin"])
    out = cli(s["env"], "experiments", "create", "il1", "--variant", f"A={s['live']}", "--variant",
              f"B={s['staged']}", "--mode", "interleave", "--lists", "feed")
    assert json.loads(out)["mode"] == "interleave"
    code, listed = newsrec_here(monkeypatch, capsys, s, "experiments", "list")
    assert code == 0 and "il1" in listed and "interleave" in listed
    code, listed = newsrec_here(monkeypatch, capsys, s, "experiments", "list", "--json")
    assert code == 0 and [(e["name"], e["mode"], e["stopped_at"] is None) for e in json.loads(listed)][-1] == (
        "il1", "interleave", True)
    s["lists"].clear()
    with server.pinned() as pins:
        eventually(lambda: all(feed_on(pin, s, READERS[0]).get("experiment") == "il1" for pin in pins.values()),
                   10.0, what="the interleaving experiment on both workers")
        for user in READERS[:12]:
            for pin in pins.values():
                page = feed_on(pin, s, user)
                assert page["variant"] == "A+B" and len(page["teams"]) == len(page["items"]) == LIMIT
                assert abs(page["teams"].count("A") - page["teams"].count("B")) <= 1
    pages = [(u, p) for u, p in s["lists"] if p["experiment"] == "il1"]
    wins = {"A": 0, "B": 0, "ties": 0}
    clicks = []
    for n, (user, page) in enumerate(pages):
        picked = [k for k in range(LIMIT) if (n + k) % 4 == 0]  # a varied, known pattern
        votes = {"A": 0, "B": 0}
        for k in picked:
            clicks.append({"user_id": user, "article_id": page["items"][k]["article_id"], "event": "click",
                           "ts": time.time(), "list_id": page["list_id"], "position": k, "event_id": f"i{n}-{k}"})
            votes[page["teams"][k]] += 1
        wins["A" if votes["A"] > votes["B"] else "B" if votes["B"] > votes["A"] else "ties"] += 1
    post_clicks(s, clicks)

    def wins_match():
        report = report_of(s, "il1")
        assert {k: report["wins"][k] for k in wins} == wins, report["wins"]
        return report

    report = eventually(wins_match, 15.0, what="every interleaved list and click in the report")
    assert report["variants"]["A"]["clicks"] + report["variants"]["B"]["clicks"] == len(clicks)
    assert report["variants"]["A"]["lists"] == len(pages)
    assert 0 <= report["srm_p"] <= 1
    code, printed = newsrec_here(monkeypatch, capsys, s, "experiments", "report", "il1")
    assert code == 0 and "interleaving wins" in printed and "ctr by position" in printed
    assert server.post("/v1/admin/experiments/il1/stop", {}, key=s["admin"]).status == 200


def test_bad_requests_get_clear_json_errors(served, monkeypatch, capsys):
    s, server = served, served["server"]
    admin = s["admin"]
    variants = [{"label": "A", "model_version": s["live"]}, {"label": "B", "model_version": s["staged"]}]

    def error(reply, status, code):
        assert reply.status == status, reply.response.text
        assert reply.json()["error"] == code, reply.json()
        return reply.json()["message"]

    assert "shares" in error(server.post("/v1/admin/experiments", {"name": "x", "variants": variants,
                                                                   "shares": [70, 20]}, key=admin), 400,
                             "validation_error")
    assert "not valid bundles" in error(server.post("/v1/admin/experiments", {"name": "x", "variants": [
        variants[0], {"label": "B", "model_version": "20990101T000000Z-abcdef"}]}, key=admin), 400, "validation_error")
    error(server.post("/v1/admin/experiments", ["not", "an", "object"], key=admin), 400, "validation_error")
    error(server.request("POST", "/v1/admin/experiments", data="{", key=admin,
                         headers={"Content-Type": "application/json"}), 400, "malformed_json")
    error(server.post("/v1/admin/experiments", {"name": "x", "variants": variants}, key=s["site"]), 403, "forbidden")
    assert server.post("/v1/admin/experiments", {"name": "dup", "variants": variants, "lists": ["related"]},
                       key=admin).status == 201
    error(server.post("/v1/admin/experiments", {"name": "dup", "variants": variants, "lists": ["feed"]}, key=admin),
          409, "experiment_conflict")
    error(server.post("/v1/admin/experiments", {"name": "other", "variants": variants, "lists": ["related"]},
                      key=admin), 409, "experiment_conflict")
    error(server.get("/v1/admin/experiments/nope/report", key=admin), 404, "not_found")
    error(server.post("/v1/admin/experiments/nope/stop", {}, key=admin), 404, "not_found")
    assert server.post("/v1/admin/experiments/dup/stop", {}, key=admin).status == 200
    error(server.post("/v1/admin/experiments/dup/stop", {}, key=admin), 409, "experiment_conflict")
    names = [e["name"] for e in server.get("/v1/admin/experiments", key=admin).json()["experiments"]]
    assert "dup" in names and "x" not in names
    # the command: exit 2 for bad input, 3 for a conflict, 1 for an unknown name
    assert newsrec_here(monkeypatch, capsys, s, "experiments", "create", "y", "--variant", "A")[0] == 2
    assert newsrec_here(monkeypatch, capsys, s, "experiments", "create", "dup", "--variant", f"A={s['live']}",
                        "--variant", f"B={s['staged']}")[0] == 3
    assert newsrec_here(monkeypatch, capsys, s, "experiments", "report", "nope")[0] == 1
