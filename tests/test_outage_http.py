"""The PostgreSQL server going away under ``newsrec serve --workers 2``, over real HTTP.

The service reaches its database through a TCP forwarder (``PgProxy``) that the test closes and
opens again, as when a host loses its network. While the database is away every worker: refuses
writes with 503 ``store_unavailable`` and ``Retry-After`` (nothing it answered so is stored, so a
client's retry loses nothing), keeps serving feeds and related lists from what it holds, answers
a key it cannot check with 503 rather than calling it wrong (401), and says so in ``/readyz``.
Once the database is back, every worker takes writes again by itself; what it acknowledged is
stored exactly once and shows in the reader's feed.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from tests.pg_fixtures import PgProxy
from tests.serve_fixtures import LiveServer, Reply, cli, eventually, server_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="telling gunicorn workers apart reads /proc (Linux)"),
]

WORKERS = 2
# a worker's first call after the server went away waits for a connection (the store's 5 s
# timeout); the ones after it fail at once for a second, then one call waits again
OUTAGE_DEADLINE = 60.0


def on_every_worker(server: LiveServer, ask: Callable[[], Reply], check: Callable[[Reply], None], what: str) -> None:
    """Ask over new connections until ``check`` (which asserts) passed on a reply of each worker."""
    passed: set[int] = set()
    last: dict[int, str] = {}

    def every_worker():
        reply = ask()
        try:
            check(reply)
        except AssertionError as exc:
            last[reply.worker] = str(exc)[:300]
            raise
        if reply.worker is not None:
            passed.add(reply.worker)
        assert passed >= server.worker_pids(), f"passed on {sorted(passed)} of {sorted(server.worker_pids())}: {last}"
        return True

    eventually(every_worker, OUTAGE_DEADLINE, interval=0.05, what=what)


def test_a_database_outage_refuses_writes_serves_lists_and_recovers_on_every_worker(tmp_path, postgres_db):
    proxy = PgProxy(postgres_db)
    home = tmp_path / "home"
    home.mkdir()
    # requests with an unknown key are counted per client address (600 a minute): this test asks
    # in tight loops from one address
    env = dict(server_env(home), NEWSREC_DB=proxy.url, NEWSREC_MODELS=str(tmp_path / "models"),
               NEWSREC_RATELIMIT_ANONYMOUS="100000 per minute")
    cli(env, "sample", "--articles", "200", "--users", "100", "--days", "3", "--seed", "3", "--end", "now", "--ingest")
    cli(env, "train", "--json", "--promote")
    site = cli(env, "keys", "add", "--role", "site").strip()
    unknown = "nr_site_" + secrets.token_urlsafe(32)  # shaped like a key, never made
    reader = "outage-reader"
    answered: dict[str, int] = {}  # event id -> the status its POST got

    def feed() -> Reply:
        return server.get(f"/v1/users/{reader}/feed?limit=10", key=site)

    def post_click(article_id: str) -> Reply:
        event_id = uuid.uuid4().hex
        reply = server.post("/v1/events", {"events": [{
            "user_id": reader, "article_id": article_id, "event": "click", "event_id": event_id,
            "ts": datetime.now(timezone.utc).isoformat()}]}, key=site)
        answered[event_id] = reply.status
        return reply

    server = LiveServer(env, workers=WORKERS)
    try:
        server.wait_ready()
        shown = [i["article_id"] for i in feed().json()["items"]]
        on_every_worker(server, lambda: server.get(f"/v1/articles/{shown[0]}/related", key=site),
                        lambda r: None if r.status == 200 else pytest.fail(r.response.text), "the key known")

        proxy.stop()

        def refused(reply: Reply) -> None:
            assert reply.status == 503, f"{reply.status} {reply.response.text[:200]}"
            assert reply.json()["error"] == "store_unavailable" and reply.response.headers.get("Retry-After")

        on_every_worker(server, lambda: post_click(shown[1]), refused, "writes refused with Retry-After")
        on_every_worker(server, lambda: server.get("/readyz"), refused, "/readyz saying the store is away")
        on_every_worker(server, lambda: server.get(f"/v1/articles/{shown[0]}/related", key=unknown), refused,
                        "a key that cannot be checked answered 503, not 401")

        def lists_served(reply: Reply) -> None:
            assert reply.status == 200, f"{reply.status} {reply.response.text[:200]}"
            assert len(reply.json()["items"]) == 10

        on_every_worker(server, feed, lists_served, "feeds served while the store is away")
        on_every_worker(server, lambda: server.get(f"/v1/articles/{shown[0]}/related", key=site), lists_served,
                        "related lists served while the store is away")

        proxy.restart()
        clicked = shown[2]

        def taken(reply: Reply) -> None:
            assert reply.status == 200 and reply.json() == {"accepted": 1, "duplicates": 0}, reply.response.text

        on_every_worker(server, lambda: post_click(clicked), taken, "writes taken again once the store is back")
        # soon, not at once: a worker whose last look at the keys failed asks again for an unknown key
        # at most every SharedKeys.RETRY_UNKNOWN (0.2 s), and its answer until then stays 503 (the checks
        # assert, so each worker is asked again until the deadline; pytest.fail was not retried)
        def unknown_refused(reply: Reply) -> None:
            assert reply.status == 401, f"{reply.status} {reply.response.text[:200]}"

        def click_left_out(reply: Reply) -> None:
            assert reply.status == 200, f"{reply.status} {reply.response.text[:200]}"
            assert clicked not in [i["article_id"] for i in reply.json()["items"]], f"{clicked} clicked, still shown"

        on_every_worker(server, lambda: server.get(f"/v1/articles/{shown[0]}/related", key=unknown), unknown_refused,
                        "an unknown key is 401 again")
        on_every_worker(server, feed, click_left_out, "the click shown by every worker")
    finally:
        code = server.stop()
        proxy.stop()
    assert code == 0, server.log_tail()
    assert "Traceback" not in server.log_tail(500_000), server.log_tail()
    with psycopg.connect(postgres_db) as conn:
        (stored,) = conn.execute("SELECT COUNT(*) FROM events e JOIN users u ON u.key = e.user_key "
                                 "WHERE u.user_id = %s", (reader,)).fetchone()
    statuses = list(answered.values())
    assert 503 in statuses and set(statuses) <= {200, 503}, answered
    assert stored == statuses.count(200)  # what was answered 503 is not stored, what was answered 200 is, once
