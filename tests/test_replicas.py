"""Two replicas on one PostgreSQL database, over real HTTP: what one replica is told, the other
one's every worker shows within 2 s.

Replica A and replica B are two ``newsrec serve --workers 2`` processes on two ports, as two
hosts would run them: separate ``NEWSREC_HOME`` folders (each with a copy of the same
``token_secret``; API keys are in the database, made with ``newsrec keys add`` on A), the same ``NEWSREC_DB=postgresql://...`` (a database this
test creates and drops, see ``pg_fixtures``) and the same ``NEWSREC_MODELS`` folder (the mount
every replica shares). A small generated sample is ingested into PostgreSQL and trained with
``newsrec train --promote``; a second version is trained and left staged.

Every write goes to A; every check asks each worker of B over a connection pinned to it
(``LiveServer.pinned``), polled with a 2 s deadline (``eventually``), never slept for. The
takedown is checked with no waiting at all. The seconds until the last worker of B showed each
change are printed (``-s``).

Measured on 2 shared cores (another test suite running beside it), seconds until the last
worker of B: event 0.08, edit 0.49, takedown 0 (asserted with no wait), preferences 0.11,
forget 0.06, promotion 0.41 (every worker of A and B); later (2026-12-03, six other jobs beside
it) a pin 0.54 and its removal 1.01, a block rule 1.02 and its removal 0.99 (the followers poll the
log once a second), an experiment 0.48 and its stop 0.12; the whole test ~2 min under that load,
most of it the sample, two trainings and four workers starting. A heavy reader (2026-12-05, alone
on the machine): 310 reads left out by every worker of B 0.05, a new read 0.03 (the test ~30 s).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from recommender.experiments.assignment import assign
from recommender.experiments.definition import Experiment
from recommender.security import KEYS_FILE, SECRET_FILE, ReaderTokens, load_token_secret
from tests.serve_fixtures import LiveServer, Pinned, Reply, cli, eventually, server_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="telling gunicorn workers apart reads /proc (Linux)"),
]

PROPAGATION = 2.0  # seconds from A's answer until every worker of B shows the change
WORKERS = 2


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def item_ids(reply: Reply) -> list[str]:
    assert reply.status == 200, f"{reply.response.url}: {reply.status} {reply.response.text[:300]}"
    return [i["article_id"] for i in reply.json()["items"]]


def on_every_worker(pins: dict[int, Pinned], check: Callable[[Pinned], None], started: float,
                    what: str, timeout: float = PROPAGATION) -> float:
    """Ask each pinned worker in turn until ``check(pin)`` (which asserts) passes on all of them;
    returns the seconds from ``started`` until the last one first passed. A worker that passed is
    not asked again (every change checked here is one a worker never undoes)."""
    passed: dict[int, float] = {}
    failing: dict[int, str] = {}

    def all_passed():
        for worker, pin in pins.items():
            if worker in passed:
                continue
            try:
                check(pin)
            except AssertionError as exc:
                failing[worker] = str(exc)[:300]
                continue
            passed[worker] = time.monotonic() - started
            failing.pop(worker, None)
        if len(passed) == len(pins):
            return True
        raise AssertionError(failing)

    eventually(all_passed, max(0.0, started + timeout - time.monotonic()), interval=0.01, what=what)
    return max(passed.values())


def post_heavy_reads(a: LiveServer, b: LiveServer, site: str, articles: dict, heavy: str
                     ) -> tuple[list[str], str, float]:
    """310 reads of ``heavy`` posted to A: 10 of articles a cold feed on B shows (``old_reads``), then
    300 newer of one ``filler`` article, more than the 300 a profile reads; a control reader with the
    300 newer ones alone shows that such a feed would list the older ones. Returns both and the
    monotonic time A accepted the reads."""
    old_reads = item_ids(b.get(f"/v1/users/{uid('cold')}/feed?limit=10", key=site))
    newest = sorted(articles, key=lambda x: articles[x]["published_at"])[-40:]
    filler = next(x for x in newest if x not in old_reads)
    when = time.time()
    reads = ([{"user_id": heavy, "article_id": x, "event": "read", "dwell_seconds": 60,
               "ts": iso(when - 7200 + k)} for k, x in enumerate(old_reads)]
             + [{"user_id": heavy, "article_id": filler, "event": "read", "dwell_seconds": 30,
                 "ts": iso(when - 3600 + k)} for k in range(300)])
    control = uid("control")  # the same 300 newest reads, none of the older ones
    reply = a.post("/v1/events", {"events": [dict(r, user_id=control) for r in reads[len(old_reads):]]}, key=site)
    assert reply.status == 200, reply.response.text
    reply = a.post("/v1/events", {"events": reads}, key=site)
    assert (reply.status, reply.json()) == (200, {"accepted": 310, "duplicates": 0})
    accepted = time.monotonic()
    would_show = set(old_reads) & set(item_ids(a.get(f"/v1/users/{control}/feed?limit=100", key=site)))
    assert len(would_show) >= 3, "precondition: the older reads are articles such a feed shows"
    return old_reads, filler, accepted


def heavy_checks(heavy: str, site: str, old_reads: list[str], filler: str, pages: dict[int, list[str]]):
    """Per-worker checks of a heavy reader's feed (``post_heavy_reads``): every read left out (each
    worker's page kept in ``pages``), and, for a read of ``later`` posted afterwards, that one too."""
    def feed(pin: Pinned) -> list[str]:
        return item_ids(pin.get(f"/v1/users/{heavy}/feed?limit=100", key=site))

    def reads_left_out(pin: Pinned) -> None:
        shown = feed(pin)
        assert len(shown) >= 50 and not {filler, *old_reads} & set(shown), f"read articles in {shown}"
        pages[pin.worker] = shown

    def new_read_left_out(later: str) -> Callable[[Pinned], None]:
        def check(pin: Pinned) -> None:
            shown = feed(pin)
            assert later not in shown and not set(old_reads) & set(shown), f"{later} read on A still in {shown}"
        return check

    return reads_left_out, new_read_left_out


@pytest.fixture
def replicas(request, tmp_path, postgres_db):
    """Replicas A and B serving one PostgreSQL database and one models folder; yields
    ``(a, b, keys, tokens, sample articles, staged version, live version)``. Indirect
    parametrization may give both replicas more environment (e.g. ``NEWSREC_LAG_SECONDS``)."""
    models = tmp_path / "models"
    homes = {name: tmp_path / name for name in ("a", "b")}
    envs = {}
    for name, home in homes.items():
        home.mkdir()
        envs[name] = dict(server_env(home), NEWSREC_DB=postgres_db, NEWSREC_MODELS=str(models),
                          **getattr(request, "param", {}))
    a_env = envs["a"]
    cli(a_env, "sample", "--articles", "300", "--users", "150", "--days", "4", "--seed", "5", "--end", "now", "--ingest")
    live = json.loads(cli(a_env, "train", "--json", "--promote"))["version"]
    staged = json.loads(cli(a_env, "train", "--json", "--seed", "1"))["version"]
    keys = {role: cli(a_env, "keys", "add", "--role", role).strip() for role in ("site", "cms", "editor", "admin")}
    tokens = ReaderTokens(load_token_secret(homes["a"], {}))  # writes a's token_secret
    # b: the same token secret, as a deployment copies it; no keys.json: API keys are in the database
    shutil.copy2(homes["a"] / SECRET_FILE, homes["b"] / SECRET_FILE)
    assert not (homes["a"] / KEYS_FILE).exists()
    articles = {}
    for line in (homes["a"] / "sample" / "articles.jsonl").read_text().splitlines():
        record = json.loads(line)
        articles[record["article_id"]] = record

    servers = [LiveServer(envs[name], workers=WORKERS) for name in ("a", "b")]
    try:
        for server in servers:
            server.wait_ready()
        for server in servers:
            assert server.get("/readyz").json()["model_version"] == live
        yield servers[0], servers[1], keys, tokens, articles, staged, live
    finally:
        codes = [server.stop() for server in servers]
    for server, code in zip(servers, codes):
        assert code == 0, server.log_tail()
        assert "Traceback" not in server.log_tail(200_000), server.log_tail()


def test_every_write_to_one_replica_reaches_every_worker_of_the_other(replicas):
    a, b, keys, tokens, articles, staged, first = replicas
    site, admin = keys["site"], keys["admin"]
    times: dict[str, float] = {}

    def related(anchor: str, via: Pinned | LiveServer, limit: int = 10) -> Reply:
        return via.get(f"/v1/articles/{anchor}/related?limit={limit}", key=site)

    def feed(user_id: str, via: Pinned | LiveServer, limit: int = 20, token: str | None = None) -> Reply:
        return via.get(f"/v1/users/{user_id}/feed?limit={limit}", **({"token": token} if token else {"key": site}))

    # who lists what on B: the newest articles' related lists
    newest = sorted(articles, key=lambda x: articles[x]["published_at"])[-40:]
    listed_by: dict[str, list[str]] = {}
    for anchor in newest:
        for article_id in item_ids(related(anchor, b))[:5]:
            listed_by.setdefault(article_id, []).append(anchor)
    by_reach = sorted(listed_by, key=lambda x: -len(listed_by[x]))
    edit_x, down_x = by_reach[0], by_reach[1]

    with b.pinned() as pins:
        # 1. an event: a click posted to A leaves the reader's feed on every worker of B
        reader = uid("reader")
        shown = [set(item_ids(feed(reader, pin))) for pin in pins.values()]
        clicked = sorted(set.intersection(*shown))[0]
        reply = a.post("/v1/events", {"events": [{"user_id": reader, "article_id": clicked, "event": "click",
                                                  "ts": now_iso()}]}, key=site)
        assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0})
        started = time.monotonic()

        def click_shows(pin: Pinned) -> None:
            assert clicked not in item_ids(feed(reader, pin)), f"clicked {clicked} still in {reader}'s feed"

        times["event"] = on_every_worker(pins, click_shows, started, "a click on A shown by every worker of B")

        # 1b. a heavy reader (more reads than the 300 a profile reads): their older reads, which only
        # the read set a worker keeps holds, stay out of B's feeds, and a new read posted to A leaves
        # them too (the read set's delta)
        heavy = uid("heavy")
        old_reads, filler, started = post_heavy_reads(a, b, site, articles, heavy)
        pages: dict[int, list[str]] = {}
        reads_left_out, new_read_left_out = heavy_checks(heavy, site, old_reads, filler, pages)
        times["heavy_reads"] = on_every_worker(pins, reads_left_out, started, "a heavy reader's reads on every worker")
        later = sorted(set.intersection(*(set(p) for p in pages.values())))[0]
        reply = a.post("/v1/events", {"events": [{"user_id": heavy, "article_id": later, "event": "read",
                                                  "dwell_seconds": 45, "ts": now_iso()}]}, key=site)
        assert reply.status == 200, reply.response.text
        started = time.monotonic()
        times["heavy_new_read"] = on_every_worker(pins, new_read_left_out(later), started,
                                                  "a heavy reader's new read on A left out by every worker of B")

        # 2. an article edit: its new title in B's related lists
        anchors = listed_by[edit_x]
        new_title = articles[edit_x]["title"] + " (Diperbarui)"
        reply = a.post("/v1/articles", dict(articles[edit_x], title=new_title), key=keys["cms"])
        assert (reply.status, reply.json()) == (200, {"accepted": 1})
        started = time.monotonic()

        def edited(pin: Pinned) -> None:
            titles = {i["article_id"]: i["title"] for anchor in anchors
                      for i in related(anchor, pin, limit=20).json()["items"]}
            assert titles.get(edit_x) == new_title, f"{edit_x} listed as {titles.get(edit_x)!r}"

        times["edit"] = on_every_worker(pins, edited, started, "an edit on A in every worker of B's related lists")

        # 3. a takedown: no list of B shows it once A answered the DELETE, with no waiting at all
        anchors = listed_by[down_x]
        for worker, pin in pins.items():
            for anchor in anchors:
                assert down_x in item_ids(related(anchor, pin)), f"precondition: worker {worker} lists {down_x}"
        reply = a.delete(f"/v1/articles/{down_x}", key=keys["editor"])
        assert (reply.status, reply.json()) == (200, {"article_id": down_x, "taken_down": True})
        for worker, pin in pins.items():
            for anchor in anchors:
                assert down_x not in item_ids(related(anchor, pin)), (
                    f"taken-down {down_x} listed by worker {worker} of B after A answered the DELETE")
        times["takedown"] = 0.0

        # 4. a preference change: B's feed shows the followed category
        follower = uid("follower")
        cold = [i["category"] for pin in pins.values() for i in feed(follower, pin).json()["items"]]
        categories = sorted({a_["category"] for a_ in articles.values()}, key=cold.count)
        followed = categories[0]  # the category least shown to a cold reader
        reply = a.request("PUT", f"/v1/users/{follower}/preferences", json={"categories": [followed], "regions": []},
                          key=site)
        assert reply.status == 200, reply.response.text
        started = time.monotonic()

        def follows(pin: Pinned) -> None:
            items = feed(follower, pin).json()["items"]
            reasons = [i["reason"] for i in items]
            assert f"Topik yang Anda ikuti: {followed}" in reasons, f"{followed} not followed: {reasons}"
            assert sum(i["category"] == followed for i in items) > cold.count(followed) / len(pins)

        times["preferences"] = on_every_worker(pins, follows, started, "a followed category on every worker of B")

        # 5. a forget: B refuses a token issued before it
        forgotten = uid("forgotten")
        old = tokens.issue(forgotten, 3600)
        for worker, pin in pins.items():
            assert feed(forgotten, pin, token=old).status == 200, f"precondition: worker {worker} takes the token"
        reply = a.delete(f"/v1/users/{forgotten}", key=admin)
        assert reply.status == 200, reply.response.text
        started = time.monotonic()

        def refused(pin: Pinned) -> None:
            reply = feed(forgotten, pin, token=old)
            assert reply.status == 401, f"token issued before the forget answered {reply.status}"
            assert reply.json()["error"]

        times["forget"] = on_every_worker(pins, refused, started, "a forget on A refusing old tokens on B")

    # 6. a promotion: both replicas, every worker, serve the new version. Fresh connections (the
    # command takes seconds to start: pinned ones would idle past gunicorn's keepalive); each
    # worker's latest answer counts (a worker never switches back by itself)
    cli(a.env, "models", "promote", staged)  # the clock starts once the command has returned
    started = time.monotonic()
    latest: dict[tuple[int, int | None], str] = {}
    turn = iter(range(10**9))

    def every_worker_serves():
        server = (a, b)[next(turn) % 2]
        reply = server.get("/readyz")
        assert reply.status == 200, reply.response.text
        latest[(server.port, reply.worker)] = reply.json()["model_version"]
        expected = {(s.port, w) for s in (a, b) for w in s.worker_pids()}
        return len(expected) == 2 * WORKERS and all(latest.get(k) == staged for k in expected)

    eventually(every_worker_serves, PROPAGATION, interval=0.01, what=f"{staged} served by every worker of A and B")
    times["promotion"] = time.monotonic() - started
    assert feed(uid("cold"), b).json()["model_version"] == staged

    # 7. API keys: one made on host A works on every worker of B; once revoked on A, it stops working there
    made = cli(a.env, "keys", "add", "--role", "site", "--name", "made-on-a").strip()
    started = time.monotonic()
    with b.pinned() as pins:
        def key_works(pin: Pinned) -> None:
            reply = pin.get("/v1/articles/" + newest[-1] + "/related", key=made)
            assert reply.status == 200, f"new key answered {reply.status}"

        times["key_added"] = on_every_worker(pins, key_works, started, "a key made on A honoured by every worker of B")
    cli(a.env, "keys", "revoke", "made-on-a")
    started = time.monotonic()
    with b.pinned() as pins:
        def key_refused(pin: Pinned) -> None:
            reply = pin.get("/v1/articles/" + newest[-1] + "/related", key=made)
            assert reply.status == 401, f"revoked key answered {reply.status}"

        times["key_revoked"] = on_every_worker(pins, key_refused, started,
                                               "a key revoked on A refused by every worker of B")

    # 8. the newsroom: a pin, a block rule and an experiment made on A steer every worker of B, and
    # leave it when removed on A
    editor = keys["editor"]
    cold_feed = item_ids(feed(uid("cold"), b, limit=60))
    pinned = cold_feed[-1]
    assert pinned not in cold_feed[:10]
    created = a.post("/v1/admin/pins", {"article_id": pinned, "position": 2, "scope": {"list": "feed"},
                                        "expires_at": time.time() + 600}, key=editor)
    assert created.status == 201, created.response.text
    pin_id = created.json()["pin_id"]
    started = time.monotonic()
    with b.pinned() as pins:
        def pin_shown(pin: Pinned) -> None:
            items = feed(uid("cold"), pin, limit=10).json()["items"]
            assert [i["article_id"] for i in items][1] == pinned, f"{pinned} not at position 2"
            assert items[1]["reason"] == "Pilihan redaksi"

        times["pin"] = on_every_worker(pins, pin_shown, started, "a pin made on A at position 2 on every worker of B")
        assert a.delete(f"/v1/admin/pins/{pin_id}", key=editor).status == 200
        started = time.monotonic()

        def pin_gone(pin: Pinned) -> None:
            ids = item_ids(feed(uid("cold"), pin, limit=10))
            assert pinned not in ids, f"removed pin {pinned} still in {ids}"

        times["pin_removed"] = on_every_worker(pins, pin_gone, started, "a pin removed on A gone from every worker of B")

        anchor = newest[-2]
        shown = item_ids(related(anchor, b, limit=6))
        blocked = articles[shown[0]]["category"]
        rule = a.post("/v1/admin/rules", {"kind": "block", "target": {"category": blocked.lower()},
                                          "scope": {"list": "related", "article_id": anchor}}, key=editor)
        assert rule.status == 201, rule.response.text
        started = time.monotonic()

        def block_applied(pin: Pinned) -> None:
            categories = [i["category"] for i in related(anchor, pin, limit=6).json()["items"]]
            assert blocked not in categories, f"blocked {blocked} still in {categories}"

        times["rule"] = on_every_worker(pins, block_applied, started, "a block rule made on A on every worker of B")
        assert a.delete(f"/v1/admin/rules/{rule.json()['rule_id']}", key=editor).status == 200
        started = time.monotonic()

        def block_lifted(pin: Pinned) -> None:
            assert item_ids(related(anchor, pin, limit=6)) == shown

        times["rule_removed"] = on_every_worker(pins, block_lifted, started, "a rule removed on A lifted on B")

        body = {"name": "replicas-ab", "variants": [{"label": "A", "model_version": staged},
                                                    {"label": "B", "model_version": first}], "lists": ["feed"]}
        created = a.post("/v1/admin/experiments", body, key=admin)
        assert created.status == 201, created.response.text
        experiment = Experiment.from_json(json.dumps({k: v for k, v in created.json().items()
                                                      if k not in ("status", "stopped_at")}))
        # four readers of each variant (drawn until there are: the assignment is the product's own hash)
        by_label: dict[str, list[str]] = {"A": [], "B": []}
        while min(len(v) for v in by_label.values()) < 4:
            user = uid("exp")
            by_label[experiment.variants[assign(experiment, user)].label].append(user)
        readers = by_label["A"][:4] + by_label["B"][:4]
        expected = {u: experiment.variants[assign(experiment, u)] for u in readers}
        started = time.monotonic()

        def assigned(pin: Pinned) -> None:
            for user in readers:
                page = feed(user, pin, limit=10).json()
                got = (page.get("experiment"), page.get("variant"), page.get("model_version"))
                want = ("replicas-ab", expected[user].label, expected[user].model_version)
                assert got == want, f"{user}: {got} != {want}"

        times["experiment"] = on_every_worker(pins, assigned, started, "an experiment made on A routing on B")
        assert a.post("/v1/admin/experiments/replicas-ab/stop", {}, key=admin).status == 200
        started = time.monotonic()

        def stopped(pin: Pinned) -> None:
            page = feed(readers[0], pin, limit=10).json()
            assert "experiment" not in page and page["model_version"] == staged, page.get("experiment")

        times["experiment_stopped"] = on_every_worker(pins, stopped, started, "an experiment stopped on A, off on B")

    print("propagation A -> every worker of B (s):", {k: round(v, 3) for k, v in times.items()})


def test_a_heavy_readers_read_set_stored_by_training_holds_through_a_read_and_a_forget_on_the_other_replica(
        replicas):
    """A reader with 310 reads when ``newsrec train`` runs (on A's host): training stores their read
    set (``train --json`` reports it), and every worker of B, meeting the reader for the first time,
    leaves all 310 out; a read posted to A afterwards (after the stored position) is left out by
    every worker of B too; a forget on A deletes the stored set with the rest, and every worker of B
    then serves the reader a cold-start feed in which the old reads may show again."""
    a, b, keys, tokens, articles, staged, live = replicas
    site = keys["site"]

    def feed(user_id: str, via: Pinned | LiveServer, limit: int = 100) -> Reply:
        return via.get(f"/v1/users/{user_id}/feed?limit={limit}", key=site)

    heavy = uid("heavy")
    old_reads, filler, _ = post_heavy_reads(a, b, site, articles, heavy)
    trained = json.loads(cli(a.env, "train", "--json"))  # staged: the stored read sets serve any version
    assert trained["read_sets_stored"] >= 1 and trained["read_sets_readers"] == trained["read_sets_stored"]

    with b.pinned() as pins:
        pages: dict[int, list[str]] = {}
        reads_left_out, new_read_left_out = heavy_checks(heavy, site, old_reads, filler, pages)
        on_every_worker(pins, reads_left_out, time.monotonic(), "the stored read set on every worker of B")
        later = sorted(set.intersection(*(set(p) for p in pages.values())))[0]
        reply = a.post("/v1/events", {"events": [{"user_id": heavy, "article_id": later, "event": "read",
                                                  "dwell_seconds": 45, "ts": now_iso()}]}, key=site)
        assert reply.status == 200, reply.response.text
        on_every_worker(pins, new_read_left_out(later), time.monotonic(),
                        "a read after the stored set, on every worker of B")

        reply = a.delete(f"/v1/users/{heavy}", key=keys["admin"])
        assert reply.status == 200 and reply.json()["removed"]["events"] >= 311, reply.response.text
        started = time.monotonic()

        def forgotten(pin: Pinned) -> None:
            reply = feed(heavy, pin)
            assert reply.json()["strategy"] == "cold-start", reply.json()["strategy"]
            assert set(old_reads) & set(item_ids(reply)), "the forgotten reads are still left out"

        on_every_worker(pins, forgotten, started, "a forget on A: no stored read set on any worker of B")


@pytest.mark.parametrize("replicas", [{"NEWSREC_LAG_SECONDS": "2"}], indirect=True)
def test_with_the_longest_lag_notices_carry_a_click_and_a_takedown_to_every_worker_of_the_other_replica(replicas):
    """``NEWSREC_LAG_SECONDS=2`` on both replicas: B's workers, each holding the reader's page and
    its answer about the reader, would serve it without asking the database for 2 s; the notices of
    a click and of a takedown posted to A end that in every worker of B before the 2 s since B's
    workers were last asked could have passed (so not by the lag's end). Measured, alone on the
    machine: the click and the takedown each 0.01-0.02 s from A's answer to the last worker of B."""
    a, b, keys, tokens, articles, staged, live = replicas
    site = keys["site"]
    lag = 2.0
    with b.pinned() as pins:
        def listening(pin: Pinned) -> None:
            status = pin.get("/readyz").json()
            assert status["write_notices"] == "listening" and status["lag_seconds"] == lag, status

        on_every_worker(pins, listening, time.monotonic(), "every worker of B listening", timeout=10)

        def round_trip(tag: str) -> tuple[float, float] | None:
            """A fresh reader's page held by every worker of B, then a click and a takedown on A:
            seconds from A's answer until every worker of B left each out; None when B was too
            slow to tell notices from the lag's end."""
            reader = uid(tag)
            first = sorted(articles, key=lambda x: articles[x]["published_at"])[-3:]  # in the serving window
            reply = a.post("/v1/events", {"events": [{"user_id": reader, "article_id": x, "event": "click",
                                                      "ts": now_iso()} for x in first]}, key=site)
            assert reply.status == 200, reply.response.text
            path = f"/v1/users/{reader}/feed?limit=10"
            pages = {}

            def personal(pin: Pinned) -> None:
                reply = pin.get(path, key=site)
                assert reply.json()["strategy"] == "hybrid", reply.json()["strategy"]
                pages[pin.worker] = item_ids(reply)

            # every answer about the reader that B's workers keep from here on is asked for after
            # ``since``: none ages out before ``since + lag``, the deadline given to each check
            since = time.monotonic()
            on_every_worker(pins, personal, since, "the reader's clicks on every worker of B")
            shown = [x for x in pages[next(iter(pages))] if all(x in page for page in pages.values())]
            clicked, victim = shown[0], shown[1]
            def left_out(article: str, since: float, answered: float, what: str) -> float | None:
                """Seconds from A's answer until every worker of B left ``article`` out, checked by
                ``since + lag``; None when A answered too late for that to tell."""
                if answered - since > lag / 2:
                    return None

                def gone(pin: Pinned) -> None:
                    assert article not in item_ids(pin.get(path, key=site))

                return on_every_worker(pins, gone, since, what, timeout=lag) - (answered - since)

            reply = a.post("/v1/events", {"events": [{"user_id": reader, "article_id": clicked, "event": "click",
                                                      "ts": now_iso()}]}, key=site)
            assert reply.status == 200, reply.response.text
            answered = time.monotonic()
            click = left_out(clicked, since, answered, "the click's notice on every worker of B")
            if click is None:
                return None
            since = answered  # B's workers asked again after the click's notice, not before A's answer
            reply = a.delete(f"/v1/articles/{victim}", key=keys["editor"])
            assert reply.status == 200, reply.response.text
            takedown = left_out(victim, since, time.monotonic(), "the takedown's notice on every worker of B")
            return None if takedown is None else (click, takedown)

        for attempt in range(3):
            timed = round_trip(f"noticed{attempt}")
            if timed is not None:
                print(f"click: {timed[0]:.3f} s, takedown: {timed[1]:.3f} s")
                return
        pytest.fail("B answered too slowly three times to tell notices from the lag's end")
