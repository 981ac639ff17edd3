"""Writes that fail at the disk: 503 + Retry-After, /readyz degraded with the reason while they
fail, ready again by itself once a write succeeds; nothing half-stored.

The failures are real SQLite errors, not mocks: a file-size limit (``RLIMIT_FSIZE``) at the
log's current size makes the next commit fail with "disk I/O error" (SQLite has already rolled
the transaction back when COMMIT fails that way), and ``PRAGMA max_page_count`` makes a statement
fail with "database or disk is full".
"""

from __future__ import annotations

import contextlib
import os
import resource

import pytest
import requests

from api import create_app
from recommender.serving.engine import Engine, EngineConfig
from recommender.security import KEYS_FILE, KeyStore
from recommender.store import SQLiteStore, StoreUnavailable

SECRET = "disk-secret-0123456789abcdef"
T0 = 1_793_466_000.0


@contextlib.contextmanager
def log_cannot_grow(store: SQLiteStore):
    """Writes past the write-ahead log's present size fail (EFBIG) until the block ends.

    Only this block's own thread writes meanwhile (the test client runs the request here), and
    Python ignores the SIGXFSZ that comes with EFBIG.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(f"{store.path}-wal"), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@contextlib.contextmanager
def database_full(store: SQLiteStore):
    conn = store._conn()  # this thread's connection: the one the test client's requests use
    conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
    try:
        yield
    finally:
        conn.execute("PRAGMA max_page_count=4294967294")


FAILURES = {"commit: disk I/O error": (log_cannot_grow, "disk I/O error"),
            "statement: database or disk is full": (database_full, "database or disk is full")}


@pytest.fixture
def served(trained, tmp_path):
    """The API over a private copy of the trained sample (a model serves, so only the disk can
    make it degraded)."""
    sample = trained.clone(tmp_path)
    engine = Engine(sample.store, sample.models_dir, EngineConfig(log_impressions=False), clock=lambda: sample.now)
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(tmp_path / "home"), "ENGINE": engine,
                      "STORE": sample.store, "NEWSREC_TOKEN_SECRET": SECRET})
    key, _ = KeyStore(tmp_path / "home" / KEYS_FILE).add("admin")
    yield app.test_client(), {"X-API-Key": key}, sample.store, engine
    engine.close()
    sample.store.close()


def batch(tag: str, n: int = 300) -> dict:
    return {"events": [{"user_id": f"r-{tag}", "article_id": f"a{i % 40}", "event": "click", "ts": T0 + i,
                        "event_id": f"{tag}-{i}"} for i in range(n)]}


def readiness(client) -> dict:
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.mark.parametrize("failure", list(FAILURES))
def test_writes_failing_at_the_disk_are_503_and_readiness_says_so_until_writes_succeed(served, failure):
    client, admin, store, engine = served
    failing, text = FAILURES[failure]
    assert client.post("/v1/events", json=batch("warm"), headers=admin).status_code == 200
    assert readiness(client)["status"] == "ready"
    with failing(store):
        resp = client.post("/v1/events", json=batch("lost"), headers=admin)
        assert resp.status_code == 503, resp.get_data(as_text=True)
        assert resp.get_json()["error"] == "store_unavailable" and text in resp.get_json()["message"]
        assert int(resp.headers["Retry-After"]) >= 1
        article = {"article_id": "disk-1", "title": "Judul", "body": "kata " * 10_000, "category": "Ekonomi",
                   "published_at": T0}  # a body that needs new pages
        assert client.post("/v1/articles", json=article, headers=admin).status_code == 503
        ready = readiness(client)
        assert ready["status"] == "degraded" and any(text in r for r in ready["reasons"]), ready
        engine.refresh()  # the background poll tries a write: still failing, still degraded
        assert readiness(client)["status"] == "degraded"
    assert readiness(client)["status"] == "degraded"  # nothing has written since
    engine.refresh()  # the poll's write succeeds: ready again without any client write
    ready = readiness(client)
    assert ready["status"] == "ready" and ready["reasons"] == [], ready
    assert store.user_events("r-lost") == []  # the refused batch left nothing behind
    assert client.post("/v1/events", json=batch("lost"), headers=admin).get_json() == {"accepted": 300,
                                                                                       "duplicates": 0}


def test_a_commit_that_fails_at_the_disk_raises_store_unavailable_and_is_remembered(tmp_path):
    store = SQLiteStore(tmp_path / "db.sqlite3")
    try:
        from recommender.domain import Interaction

        events = [Interaction(user_id="u", article_id=f"a{i}", event="click", ts=T0 + i) for i in range(300)]
        store.add_events(events[:100])
        assert store.write_error is None
        with log_cannot_grow(store), pytest.raises(StoreUnavailable, match="disk I/O error"):
            store.add_events(events[100:])
        assert "disk I/O error" in store.write_error
        store.check_writable()
        assert store.write_error is None
        assert store.add_events(events[100:]) == (200, 0)
    finally:
        store.close()


def _workers(server) -> list[int]:
    """The gunicorn workers' pids (the master's children)."""
    pid = server.proc.pid
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


@pytest.mark.slow
def test_every_gunicorn_worker_reports_a_failing_disk_and_recovers_by_itself(tmp_path):
    """Through ``newsrec serve --workers 2``: each worker's writes fail at the disk (its files may not
    grow past the log's size), so posts get 503 + Retry-After and every worker says degraded; once
    the disk is back, every worker's background poll finds it out and says ready, with no write from
    any client, and the refused batch stores whole."""
    from tests.test_reliability import Server, _all_workers, _wait

    with Server(tmp_path, workers=2, threads=2) as server:
        headers = server.headers()
        _wait(lambda: _all_workers(server, lambda r: r["status"] in ("ready", "degraded")), 30, "both workers up")
        for i in range(6):  # a log of some size, far larger than the server's own log files
            post = requests.post(server.base + "/v1/events", json=batch(f"grow{i}", 500), headers=headers, timeout=10)
            assert post.status_code == 200, post.text
        healthy = lambda r: not any("store writes failing" in x for x in r["reasons"])  # noqa: E731
        assert _all_workers(server, healthy)
        limit = os.path.getsize(f"{server.db}-wal")
        assert limit > 10 * max(os.path.getsize(server.stdout_path), os.path.getsize(server.stderr_path))
        workers = _workers(server)
        assert len(workers) == 2
        saved = {pid: resource.prlimit(pid, resource.RLIMIT_FSIZE) for pid in workers}
        refused = batch("refused", 300)
        try:
            for pid, (_, hard) in saved.items():
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))

            def both_degraded() -> bool:
                with requests.Session() as fresh:  # a new connection: either worker
                    resp = fresh.post(server.base + "/v1/events", json=refused,
                                      headers={**headers, "Connection": "close"}, timeout=10)
                assert resp.status_code == 503 and resp.headers["Retry-After"] == "5", resp.text
                assert "disk" in resp.json()["message"]
                return _all_workers(server, lambda r: r["status"] == "degraded" and not healthy(r))

            _wait(both_degraded, 30, "both workers to report the failing disk")
        finally:
            for pid, limits in saved.items():
                resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
        _wait(lambda: _all_workers(server, healthy), 20, "both workers to find the disk back by themselves")
        post = requests.post(server.base + "/v1/events", json=refused, headers=headers, timeout=10)
        assert post.json() == {"accepted": 300, "duplicates": 0}
    assert "Traceback" not in server.logs()
