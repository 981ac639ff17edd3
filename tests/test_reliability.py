"""Nothing acknowledged is lost or counted twice; reloads under load; degraded modes.

Writers race in threads (in process) and over HTTP through several gunicorn workers; a server
is SIGKILLed mid-ingestion; models are republished (three good, one damaged) while a load loop
runs; the model folder and the database fail in the ways they fail in production.

:class:`Server` (``newsrec serve`` on a free loopback port, in its own process group) is also
used by ``benchmarks/load.py``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import zlib
from pathlib import Path

import pytest
import requests

from api import create_app
from recommender.models.bundle import read_current, write_bundle
from recommender.models.versions import promote
from recommender.config import Settings
from recommender.domain import Article, Interaction
from recommender.serving.engine import Engine, EngineConfig
from recommender.serving.results import NotFound
from recommender.security import KEYS_FILE, KeyStore
from recommender.store import SQLiteStore
from api.commands.serve import server_command

SECRET = "reliability-secret-0123456789"
USER_AGENT = {"User-Agent": "newsrec-tests"}


# -- a real server -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``newsrec serve`` (gunicorn, gthread workers) on 127.0.0.1 in a process group of its own.

    Parameters
    ----------
    root : Path
        Folder for NEWSREC_HOME (keys, token secret) and the server's stdout/stderr files.
    db, models : Path, optional
        Store file and bundle folder (default: inside the home).
    workers, threads : int
        gunicorn worker processes and threads per worker.
    env : dict, optional
        Extra environment for the server.
    """

    def __init__(self, root: Path, db: Path | None = None, models: Path | None = None, workers: int = 2,
                 threads: int = 4, env: dict | None = None):
        self.home = Path(root) / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.db = Path(db) if db else self.home / "newsrec.sqlite3"
        self.models = Path(models) if models else self.home / "models"
        self.workers, self.threads = workers, threads
        self.extra_env = dict(env or {})
        keys = KeyStore(self.home / KEYS_FILE)
        self.site_key, _ = keys.add("site", "tests-site")
        self.admin_key, _ = keys.add("admin", "tests-admin")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout_path, self.stderr_path = Path(root) / "server.out", Path(root) / "server.err"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "Server":
        settings = Settings(home=self.home, db_path=self.db, models_dir=self.models)
        args = argparse.Namespace(host="127.0.0.1", port=self.port, workers=self.workers, threads=self.threads,
                                  blas_threads=1, check=False)
        argv, env = server_command(args, settings)
        for name in [k for k in env if k.startswith("PROMETHEUS_")]:
            del env[name]
        env.update(NEWSREC_TOKEN_SECRET=SECRET, **self.extra_env)
        settings.ensure_dirs()
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=self.home, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited during start:\n{self.logs()[-3000:]}")
            try:
                if requests.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server did not become ready:\n{self.logs()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the master and every worker at once (the whole process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._reap()

    def stop(self) -> int | None:
        """SIGTERM (graceful: in-flight requests finish), SIGKILL if that takes over 30 s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - leave nothing running
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._reap()
        return self.proc.returncode

    def _reap(self) -> None:
        """Wait until no process of the group is left (workers can outlive a killed master briefly)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.killpg(self.proc.pid, signal.SIGKILL)  # pragma: no cover - orphans that ignored the first signal

    def logs(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.stdout_path, self.stderr_path) if p.exists()]
        return "\n".join(parts)

    def headers(self, role: str = "site") -> dict:
        return {"X-API-Key": self.admin_key if role == "admin" else self.site_key, **USER_AGENT}

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- event batches and what the store holds ---------------------------------------------------
T_EVENT = 1_793_466_000.0  # 2026-11-01 00:00 WIB


def make_batch(tag: str, n: int, articles: list[str] | None = None, t0: float = T_EVENT) -> list[dict]:
    """``n`` distinct events of one batch, each with its own event_id (the idempotency key)."""
    articles = articles or [f"a{i}" for i in range(40)]
    return [{"user_id": f"r-{tag.split('-')[0]}", "article_id": articles[(zlib.crc32(tag.encode()) + i) % len(articles)],
             "event": ("click", "read", "share")[i % 3], "ts": t0 + i, "event_id": f"{tag}-{i}",
             **({"dwell_seconds": 30 + i} if i % 3 == 1 else {})} for i in range(n)]


def eid(record: dict) -> int:
    """The store's primary key of an event record (what ``Interaction.key64`` gives)."""
    return Interaction.from_dict(record).key64()


def stored_eids(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT eid FROM events WHERE history = 0")]
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def post_until_stored(post, batch: list[dict], attempts: int = 200) -> tuple[dict, int]:
    """POST until 200, honouring 503 + Retry-After; returns the 200 body and how many 503s it took."""
    refused = 0
    for _ in range(attempts):
        status, body, headers = post(batch)
        if status == 200:
            return body, refused
        assert status == 503, (status, body)
        assert headers.get("Retry-After") and body["error"] == "store_unavailable", (headers, body)
        refused += 1
        time.sleep(0.01)
    raise AssertionError(f"batch refused {attempts} times")


# -- concurrent writers ---------------------------------------------------------------------------
def test_writer_threads_lose_nothing_and_count_nothing_twice(tmp_path):
    """8 threads post overlapping batches and blind resends while another connection keeps taking
    the write lock (the store waits 50 ms): refused batches (503) are retried, every event is
    stored exactly once and the accepted counts add up to the store."""
    store = SQLiteStore(tmp_path / "db.sqlite3", timeout=0.05)
    engine = Engine(store, tmp_path / "models", EngineConfig(log_impressions=False))
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(tmp_path / "home"), "ENGINE": engine, "STORE": store,
                      "NEWSREC_TOKEN_SECRET": SECRET})
    site, _ = KeyStore(tmp_path / "home" / KEYS_FILE).add("site")
    n_threads, n_batches = 8, 20
    # every thread sends its own events plus the same "shared" events as every other thread
    plans = {t: [make_batch(f"t{t}-b{b}", 15) + make_batch(f"shared-b{b}", 5) for b in range(n_batches)]
             for t in range(n_threads)}
    results: dict[int, list] = {t: [] for t in range(n_threads)}
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        client = app.test_client()
        rng = random.Random(t)

        def post(batch):
            resp = client.post("/v1/events", json={"events": batch}, headers={"X-API-Key": site})
            return resp.status_code, resp.get_json(), resp.headers

        try:
            for batch in plans[t]:
                body, refused = post_until_stored(post, batch)
                results[t].append((len(batch), body, refused, False))
                if rng.random() < 0.3:  # the site lost the answer and sends the batch again
                    body, refused = post_until_stored(post, batch)
                    results[t].append((len(batch), body, refused, True))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    def locker(done: threading.Event) -> None:  # a bulk import or backup holding the lock now and then
        conn = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None, timeout=5)
        for _ in range(2000):
            if done.is_set():
                break
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(0.08)
            conn.execute("ROLLBACK")
            time.sleep(0.04)
        conn.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    done = threading.Event()
    lock_holder = threading.Thread(target=locker, args=(done,))
    lock_holder.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    done.set()
    lock_holder.join(timeout=30)
    engine.close()
    assert not errors, errors[0]
    sent = {eid(e) for batches in plans.values() for batch in batches for e in batch}
    rows = stored_eids(tmp_path / "db.sqlite3")
    replies = [r for rs in results.values() for r in rs]
    assert len(rows) == len(set(rows)) == len(sent) == n_threads * n_batches * 15 + n_batches * 5
    assert set(rows) == sent
    assert all(body["accepted"] + body["duplicates"] == n for n, body, _, _ in replies)
    assert all(body["accepted"] == 0 for _, body, _, resent in replies if resent)
    assert sum(body["accepted"] for _, body, _, _ in replies) == len(rows)  # nothing counted twice
    assert sum(refused for _, _, refused, _ in replies) > 0  # the 503 path was taken, and stored nothing


def _http_post(session: requests.Session, server: Server):
    def post(batch):
        resp = session.post(server.base + "/v1/events", json={"events": batch}, headers=server.headers(), timeout=30)
        return resp.status_code, resp.json(), resp.headers

    return post


@pytest.mark.slow
def test_gunicorn_workers_over_http_lose_nothing_and_count_nothing_twice(tmp_path):
    """3 gunicorn workers, 6 client threads in pairs posting the same batches at the same time
    (plus blind resends): each event is stored once and the 200 answers add up to the store."""
    n_threads, n_batches, size = 6, 12, 40
    # threads 2k and 2k+1 send identical batches: the same events race through different workers
    plans = {t: [make_batch(f"p{t // 2}-b{b}", size) for b in range(n_batches)] for t in range(n_threads)}
    replies: list[tuple[int, dict, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    with Server(tmp_path, workers=3, threads=4) as server:
        start = threading.Barrier(n_threads)

        def writer(t: int) -> None:
            rng = random.Random(t)
            try:
                with requests.Session() as session:
                    post = _http_post(session, server)
                    start.wait(timeout=30)
                    for batch in plans[t]:
                        body, _ = post_until_stored(post, batch)
                        resent = rng.random() < 0.25
                        with lock:
                            replies.append((len(batch), body, False))
                        if resent:
                            body, _ = post_until_stored(post, batch)
                            with lock:
                                replies.append((len(batch), body, True))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        logs_during_run = server.logs()
    assert not errors, errors[0]
    sent = {eid(e) for batches in plans.values() for batch in batches for e in batch}
    rows = stored_eids(server.db)
    assert len(rows) == len(set(rows)) == len(sent) == (n_threads // 2) * n_batches * size
    assert set(rows) == sent
    assert all(body["accepted"] + body["duplicates"] == n for n, body, _ in replies)
    assert all(body["accepted"] == 0 for _, body, resent in replies if resent)
    assert sum(body["accepted"] for _, body, _ in replies) == len(rows)
    assert "Traceback" not in logs_during_run
    workers = set(re.findall(r"Booting worker with pid: (\d+)", logs_during_run))
    assert len(workers) == 3


@pytest.mark.slow
def test_sigkill_mid_ingestion_loses_nothing_acknowledged(tmp_path):
    """Clients post while the whole server (master and workers) is SIGKILLed: every batch that got
    a 200 is stored, no batch is half stored, the store opens cleanly and a resend completes it."""
    size, n_threads = 25, 4
    acked: list[list[dict]] = []
    attempted: list[list[dict]] = []
    lock = threading.Lock()
    stop = threading.Event()
    server = Server(tmp_path, workers=2, threads=4).start()
    try:
        def writer(t: int) -> None:
            with requests.Session() as session:
                for b in range(10_000):  # bounded; the kill ends it long before
                    if stop.is_set():
                        return
                    batch = make_batch(f"k{t}-b{b}", size)
                    with lock:
                        attempted.append(batch)
                    try:
                        resp = session.post(server.base + "/v1/events", json={"events": batch},
                                            headers=server.headers(), timeout=10)
                    except requests.RequestException:
                        return  # the server is gone
                    if resp.status_code == 200:
                        with lock:
                            acked.append(batch)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        deadline = time.monotonic() + 20
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # mid-ingestion: the writers are still posting
        stop.set()
        for th in threads:
            th.join(timeout=30)
    finally:
        stop.set()
        server.kill()
    assert len(acked) >= 60
    assert integrity(server.db) == "ok"
    rows = set(stored_eids(server.db))
    for batch in attempted:
        ids = {eid(e) for e in batch}
        assert len(ids & rows) in (0, size), "a batch was half stored"
    assert {eid(e) for batch in acked for e in batch} <= rows  # nothing acknowledged was lost
    assert rows <= {eid(e) for batch in attempted for e in batch}
    store = SQLiteStore(server.db)  # opens (and migrates) cleanly after the crash
    try:
        inserted = sum(store.add_events([Interaction.from_dict(e) for e in batch])[0] for batch in attempted)
        assert inserted == len(attempted) * size - len(rows)  # the resend stores exactly what was missing
        assert store.stats()["events"] == len(attempted) * size
    finally:
        store.close()


# -- hot reload under load -----------------------------------------------------------------------
def _publish_damaged(models: Path, built, store) -> str:
    """Write a bundle elsewhere, flip a byte of one array, then move it in and make it live in the
    store without any check (as a broken tool would; ``newsrec models promote`` verifies first)."""
    staging = models.parent / "staging"
    version = write_bundle(staging, built.arrays, built.documents, manifest_extra=built.manifest)
    target = staging / version / "text_vectors.npy"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    target.write_bytes(bytes(raw))
    os.rename(staging / version, models / version)
    assert store.promote_model(version)
    return version


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _all_workers(server: Server, predicate, probes: int = 12) -> bool:
    """``predicate(readyz body)`` on ``probes`` fresh connections (each may reach another worker)."""
    for _ in range(probes):
        resp = requests.get(server.base + "/readyz", headers={"Connection": "close"}, timeout=5)
        if resp.status_code != 200 or not predicate(resp.json()):
            return False
    return True


@pytest.mark.slow
def test_hot_reload_under_load_never_fails_a_request(trained, tmp_path):
    """Three good versions and one damaged one are made live while 4 threads request lists: no
    request fails, every answer names a good version, the damaged one shows in /readyz and /metrics."""
    sample = trained.clone(tmp_path)
    articles = [str(a) for a in sample.built.arrays["item_ids"][-200:]]
    readers = list(sample.readers)
    good = [sample.version]
    stop = threading.Event()
    answers: list[tuple[int, str | None, str]] = []
    failures: list[str] = []
    latest: dict[int, str | None] = {}  # the version in each load thread's last answer
    lock = threading.Lock()
    with Server(tmp_path, db=sample.root / "newsrec.sqlite3", models=sample.models_dir, workers=2,
                threads=4) as server:
        def load(t: int) -> None:
            rng = random.Random(t)
            with requests.Session() as session:
                for _ in range(100_000):  # bounded; stopped by the test
                    if stop.is_set():
                        return
                    if rng.random() < 0.5:
                        url = f"{server.base}/v1/articles/{rng.choice(articles)}/related?limit=10"
                    else:
                        url = f"{server.base}/v1/users/{rng.choice(readers)}/feed?limit=20"
                    try:
                        resp = session.get(url, headers=server.headers(), timeout=10)
                        version = resp.json().get("model_version") if resp.status_code == 200 else None
                        with lock:
                            answers.append((resp.status_code, version, url))
                            latest[t] = version
                    except (requests.RequestException, ValueError) as exc:
                        with lock:
                            failures.append(f"{url}: {exc!r}")

        threads = [threading.Thread(target=load, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        try:
            _wait(lambda: len(latest) == len(threads), 20, "every load thread answered once")
            for step in range(3):
                if step == 2:
                    damaged = _publish_damaged(sample.models_dir, sample.built, sample.store)
                    _wait(lambda: _all_workers(server, lambda r: r["status"] == "degraded"
                                               and damaged in r["last_reload_error"]
                                               and r["model_version"] == good[-1]), 20, "the damaged bundle refused")
                    scraped = {}

                    def reported() -> bool:  # the worker that answers the scrape may refresh its gauge a poll later
                        scraped["text"] = requests.get(server.base + "/metrics", timeout=5).text
                        return bool(re.search(r"^newsrec_last_reload_failed 1\.0$", scraped["text"], re.M))

                    _wait(reported, 20, "the refused bundle in /metrics")
                    metrics = scraped["text"]
                    assert f'newsrec_model_info{{version="{good[-1]}"}} 1.0' in metrics
                    assert damaged not in metrics
                version = write_bundle(sample.models_dir, sample.built.arrays, sample.built.documents,
                                       manifest_extra=sample.built.manifest, keep=10, publish=False)
                promote(sample.store, sample.models_dir, version)
                good.append(version)
                # each load thread keeps its connection (so its worker): all of them must see it too
                _wait(lambda: set(latest.values()) == {version} and _all_workers(
                    server, lambda r: r["model_version"] == version and r["status"] == "ready"),
                    20, f"every worker to serve {version}")
            served = len(answers)
            _wait(lambda: len(answers) >= served + 2 * len(threads), 20, "more answers after the last promotion")
        finally:
            stop.set()
            for th in threads:
                th.join(timeout=30)
        logs = server.logs()
    assert read_current(sample.models_dir) == good[-1]
    assert not failures, failures[:3]
    assert len(answers) >= 200
    bad = [a for a in answers if a[0] != 200 or a[1] not in good]
    assert not bad, bad[:3]
    served = {version for _, version, _ in answers}
    assert set(good[1:]) <= served and damaged not in served
    assert "Traceback" not in logs and f"refused model {damaged}" in logs


def test_polls_after_a_bulk_publish_do_not_reread_the_articles(trained, tmp_path):
    """Found by benchmarks/load.py: every article written in the last 5 s of the newest one (all of
    a bulk import) was read and parsed again on every poll, in every worker, stalling requests
    for tens of milliseconds a second. A poll now fetches full rows only for articles it lacks."""
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    source = list(sample.articles.values())[:300]
    bulk = [Article(f"bulk-{i}", a["title"] + " (update)", a["body"], a["category"], sample.now - 30, a.get("region"))
            for i, a in enumerate(source)]
    fresh = engine.status()["fresh_articles"]
    sample.store.upsert_articles(bulk)
    parsed: list[int] = []  # full article rows read (bodies and all), by either store method

    def counting(method):
        def wrapper(*args, **kwargs):
            out = method(*args, **kwargs)
            parsed.append(len(out))
            return out
        return wrapper

    sample.store.get_articles = counting(sample.store.get_articles)
    sample.store.get_stored_articles = counting(sample.store.get_stored_articles)
    engine.refresh()
    assert sum(parsed) == 300 and engine.status()["fresh_articles"] == fresh + 300
    for _ in range(3):
        engine.refresh()
    assert sum(parsed) == 300  # nothing read twice
    assert engine.related("bulk-7", limit=5).items
    sample.store.takedown_article("bulk-7")
    engine.refresh()
    with pytest.raises(NotFound):
        engine.related("bulk-7", limit=5)
    engine.close()


# -- degraded modes -----------------------------------------------------------------------------
def _prepare_models(kind: str, models: Path, source: Path, version: str) -> None:
    if kind == "empty":
        models.mkdir()
    elif kind == "current_names_a_missing_version":
        models.mkdir()
        (models / "CURRENT").write_text("20200101T000000Z-abcdef\n")
    elif kind == "current_is_garbage":
        models.mkdir()
        (models / "CURRENT").write_bytes(b"../../etc/passwd\xff\x00")
    elif kind == "manifest_is_not_json":
        shutil.copytree(source, models)
        (models / version / "manifest.json").write_text("{truncated")
    elif kind == "array_truncated":
        shutil.copytree(source, models)
        target = models / version / "item_factors.npy"
        target.write_bytes(target.read_bytes()[:100])
    elif kind == "path_is_a_file":
        models.write_text("not a folder")
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty", "current_names_a_missing_version", "current_is_garbage",
                                  "manifest_is_not_json", "array_truncated", "path_is_a_file"])
def test_unusable_model_folder_serves_recent_popular_and_says_degraded(trained, tmp_path, kind):
    models = tmp_path / "models"
    _prepare_models(kind, models, trained.models_dir, trained.version)
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(tmp_path / "home"), "NEWSREC_DB": str(trained.store.path),
                      "NEWSREC_MODELS": str(models), "NEWSREC_TOKEN_SECRET": SECRET,
                      "ENGINE_CONFIG": EngineConfig(fallback_window_days=36_500, log_impressions=False)})
    engine = app.extensions["newsrec"]
    try:
        client = app.test_client()
        site, _ = KeyStore(tmp_path / "home" / KEYS_FILE).add("site")
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.get_json()
        assert body["status"] == "degraded" and body["model_version"] is None and body["reasons"]
        feed = client.get("/v1/users/someone/feed?limit=10", headers={"X-API-Key": site})
        assert feed.status_code == 200
        feed = feed.get_json()
        assert feed["strategy"] == "fallback-popular" and feed["model_version"] is None and len(feed["items"]) == 10
        ids = [i["article_id"] for i in feed["items"]]
        assert len(set(ids)) == 10 and set(ids) <= set(trained.articles)
        related = client.get(f"/v1/articles/{ids[0]}/related?limit=5", headers={"X-API-Key": site}).get_json()
        assert related["strategy"] == "fallback-popular" and len(related["items"]) == 5
        assert ids[0] not in {i["article_id"] for i in related["items"]}
        metrics = client.get("/metrics").get_data(as_text=True)
        assert re.search(r"^newsrec_degraded 1\.0$", metrics, re.M)
        assert re.search(r'^newsrec_fallback_lists_total\{strategy="fallback-popular"\} 2\.0$', metrics, re.M)
    finally:
        engine.close()


@pytest.fixture
def locked_app(trained, tmp_path):
    """An app over a private copy of the trained sample whose store waits at most 0.1 s for a lock."""
    sample = trained.clone(tmp_path)
    sample.store.close()
    store = SQLiteStore(sample.root / "newsrec.sqlite3", timeout=0.1)
    engine = Engine(store, sample.models_dir, EngineConfig(), clock=lambda: sample.now)
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(tmp_path / "home"), "ENGINE": engine, "STORE": store,
                      "NEWSREC_TOKEN_SECRET": SECRET})
    site, _ = KeyStore(tmp_path / "home" / KEYS_FILE).add("site")
    cms, _ = KeyStore(tmp_path / "home" / KEYS_FILE).add("cms")
    yield app.test_client(), {"X-API-Key": site}, sample, store, engine, {"X-API-Key": cms}
    engine.close()
    store.close()


def _lists_still_served(client, site, sample) -> None:
    reader = next(iter(sample.readers))
    article = str(sample.built.arrays["item_ids"][-1])
    for url in (f"/v1/articles/{article}/related?limit=5", f"/v1/users/{reader}/feed?limit=5"):
        resp = client.get(url, headers=site)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["model_version"] == sample.version and len(resp.get_json()["items"]) == 5


def _refused_with_retry_after(resp) -> None:
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.headers["Retry-After"] == "1"
    assert resp.get_json()["error"] == "store_unavailable" and resp.get_json()["message"]


def test_locked_database_serves_lists_and_refuses_writes_with_retry_after(locked_app):
    """Another process holds the write lock: lists keep coming from the loaded model; every write
    answers 503 + Retry-After and stores nothing, so the same batch stores fully once retried."""
    client, site, sample, store, _, cms = locked_app
    article = list(sample.articles)[-1]
    batch = {"events": [{"user_id": "locked-reader", "article_id": article, "event": "click",
                         "ts": sample.now - i, "event_id": f"locked-{i}"} for i in range(7)]}
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        _refused_with_retry_after(client.post("/v1/events", json=batch, headers=site))
        _refused_with_retry_after(client.put("/v1/users/locked-reader/preferences", json={"categories": ["Ekonomi"]},
                                             headers=site))
        new = {"article_id": "locked-new", "title": "Rupiah menguat", "category": "Ekonomi",
               "published_at": sample.now - 5}
        _refused_with_retry_after(client.post("/v1/articles", json=new, headers=cms))
        _lists_still_served(client, site, sample)
        assert client.get("/readyz").status_code == 200  # readers are never blocked in WAL mode
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    retry = client.post("/v1/events", json=batch, headers=site)
    assert retry.get_json() == {"accepted": 7, "duplicates": 0}  # the refused attempt stored nothing
    assert len(store.user_events("locked-reader")) == 7


def test_unreadable_database_serves_lists_from_the_model_and_answers_503(locked_app):
    """Every statement on the database fails (as on an I/O error): lists still come from the loaded
    model, event POSTs and /readyz answer 503 + Retry-After, and impressions wait for the store."""
    client, site, sample, store, engine, _ = locked_app
    conn = store._conn()  # the connection this thread's requests use (the test client runs here)
    conn.set_progress_handler(lambda: 1, 1)  # abort every statement: OperationalError "interrupted"
    try:
        _lists_still_served(client, site, sample)
        event = {"user_id": "io-reader", "article_id": str(sample.built.arrays["item_ids"][-1]), "event": "click",
                 "ts": sample.now - 1}
        _refused_with_retry_after(client.post("/v1/events", json=event, headers=site))
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
        assert ready.get_json()["error"] == "store_unavailable"
        engine.refresh()
        assert any("store unavailable" in r for r in engine.status()["reasons"])
        feed = client.get("/v1/users/io-reader/feed?limit=4", headers=site).get_json()
        assert engine.flush_impressions() == 0  # the store refuses: the impressions are kept, not dropped
    finally:
        conn.set_progress_handler(None, 1)
    assert engine.flush_impressions() >= 4
    assert [e.article_id for e in store.user_events("io-reader")][-4:] == [i["article_id"] for i in feed["items"]]
    assert engine.status()["impressions_dropped"] == 0
    engine.refresh()
    assert not engine.status()["degraded"]
