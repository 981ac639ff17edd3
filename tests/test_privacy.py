"""Access and privacy over the real engine: who may call what, secrets never logged, erasure
leaves no trace, bundles are data only.

``tests/test_api_auth.py`` runs the auth matrix against an in-memory fake engine; here the
same question is asked of the real engine and store (a refused request must leave the real
store, model and impression queue untouched), with more ways to get credentials wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle  # only to build a hostile bundle file; product code never imports it
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

from api import create_app
from recommender.models.bundle import read_current, write_bundle
from recommender.serving.engine import Engine, EngineConfig
from recommender.security import KEYS_FILE, KeyStore, ReaderTokens
from recommender.store import SQLiteStore
from tests.conftest import TrainedSample
from tests.test_reliability import SECRET as SERVER_SECRET, Server

ROOT = Path(__file__).resolve().parents[1]
SECRET = "privacy-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> TrainedSample:
    return TrainedSample(tmp_path_factory.mktemp("privacy"), n_articles=160, n_users=80, days=3, seed=21)


@dataclass
class Served:
    client: object
    engine: Engine
    sample: TrainedSample
    site: str
    admin: str
    revoked: str
    tokens: ReaderTokens
    me: str
    other: str


@pytest.fixture
def served(sample, tmp_path):
    own = sample.clone(tmp_path)
    engine = own.engine()
    home = tmp_path / "home"
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "NEWSREC_MODELS": str(own.models_dir),
                      "ENGINE": engine, "STORE": own.store, "NEWSREC_TOKEN_SECRET": SECRET})
    keys = KeyStore(home / KEYS_FILE)
    site, _ = keys.add("site", "portal")
    admin, _ = keys.add("admin", "ops")
    revoked, record = keys.add("admin", "old-ops")
    keys.revoke(record.key_id)
    readers = sorted((u for u in own.readers if own.store.get_preferences(u)),
                     key=lambda u: (-len(own.store.user_events(u, limit=1000)), u))
    yield Served(app.test_client(), engine, own, site, admin, revoked, ReaderTokens(SECRET.encode()),
                 readers[0], readers[1])
    engine.close()


# -- the auth matrix ----------------------------------------------------------------------------
CREDENTIALS = ["none", "wrong_key", "site", "admin", "revoked_key", "token_self", "token_other", "token_expired",
               "token_tampered_expiry", "token_foreign_secret", "key_as_bearer", "token_as_api_key", "key_in_query"]
ENDPOINTS = ["related", "feed", "events", "publish", "takedown", "get_prefs", "put_prefs", "forget", "reload",
             "models", "healthz", "readyz", "metrics", "openapi"]
ACCESS = {"related": "reader", "feed": "reader", "events": "reader", "publish": "cms", "takedown": "editor",
          "get_prefs": "reader", "put_prefs": "reader", "forget": "admin", "reload": "admin", "models": "admin",
          "healthz": "open", "readyz": "open", "metrics": "open", "openapi": "open"}
AUTH_CASES = len(CREDENTIALS) * len(ENDPOINTS)


def request_for(endpoint: str, s: Served) -> tuple[str, str, dict | None]:
    ids = [str(a) for a in s.sample.built.arrays["item_ids"]]
    return {
        "related": ("GET", f"/v1/articles/{ids[-1]}/related?user_id={s.me}", None),
        "feed": ("GET", f"/v1/users/{s.me}/feed?limit=5", None),
        "events": ("POST", "/v1/events", {"events": [{"user_id": s.me, "article_id": ids[-2], "event": "click",
                                                      "ts": s.sample.now - 5, "event_id": "matrix-1"}]}),
        "publish": ("POST", "/v1/articles", {"article_id": "matrix-new", "title": "Harga cabai naik",
                                             "category": "Ekonomi", "published_at": s.sample.now - 60}),
        "takedown": ("DELETE", f"/v1/articles/{ids[-3]}", None),
        "get_prefs": ("GET", f"/v1/users/{s.me}/preferences", None),
        "put_prefs": ("PUT", f"/v1/users/{s.me}/preferences", {"categories": ["Olahraga"], "regions": []}),
        "forget": ("DELETE", f"/v1/users/{s.me}", None),
        "reload": ("POST", "/v1/admin/reload", None),
        "models": ("GET", "/v1/admin/models", None),
        "healthz": ("GET", "/healthz", None),
        "readyz": ("GET", "/readyz", None),
        "metrics": ("GET", "/metrics", None),
        "openapi": ("GET", "/openapi.json", None),
    }[endpoint]


def credentials(kind: str, s: Served, now: int) -> tuple[dict, str]:
    """Headers and an extra query string for one way of presenting credentials."""
    good = s.tokens.issue(s.me, 600, now=now)
    if kind == "none":
        return {}, ""
    if kind == "wrong_key":
        return {"X-API-Key": "nr_admin_" + "Q" * 43}, ""
    if kind in ("site", "admin"):
        return {"X-API-Key": getattr(s, kind)}, ""
    if kind == "revoked_key":
        return {"X-API-Key": s.revoked}, ""
    if kind == "token_self":
        return {"Authorization": f"Bearer {good}"}, ""
    if kind == "token_other":
        return {"Authorization": f"Bearer {s.tokens.issue(s.other, 600, now=now)}"}, ""
    if kind == "token_expired":
        return {"Authorization": f"Bearer {s.tokens.issue(s.me, 60, now=now - 61)}"}, ""
    if kind == "token_tampered_expiry":
        version, user, issued, expiry, sig = good.split(".")
        return {"Authorization": f"Bearer {version}.{user}.{issued}.{int(expiry) + 86_400}.{sig}"}, ""
    if kind == "token_foreign_secret":
        return {"Authorization": f"Bearer {ReaderTokens(b'another-portal-secret-xyz').issue(s.me, 600, now=now)}"}, ""
    if kind == "key_as_bearer":
        return {"Authorization": f"Bearer {s.admin}"}, ""
    if kind == "token_as_api_key":
        return {"X-API-Key": good}, ""
    if kind == "key_in_query":
        return {}, f"api_key={s.admin}"
    raise AssertionError(kind)


def expected(access: str, kind: str) -> int:
    if access == "open":
        return 200
    if kind in ("site", "admin"):
        return 403 if (kind == "site" and access != "reader") else 200
    if kind == "token_self":
        return 200 if access == "reader" else 403
    if kind == "token_other":
        return 403
    return 401


def state(s: Served) -> tuple:
    """Everything a refused request must leave alone."""
    stats = s.sample.store.stats()
    prefs = s.sample.store.get_preferences(s.me)
    return (stats["events"], stats["readers"], stats["articles"], stats["articles_taken_down"], prefs,
            read_current(s.sample.models_dir), s.sample.store.live_model(), s.engine.model_version,
            s.engine._impressions.qsize())


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_auth_matrix_on_the_real_engine(served, endpoint, caplog):
    s = served
    method, path, body = request_for(endpoint, s)
    access = ACCESS[endpoint]
    # refused kinds first, then the ones that may change state (so every refusal sees the same state)
    order = sorted(CREDENTIALS, key=lambda k: expected(access, k) == 200)
    now = int(time.time())
    presented = {kind: credentials(kind, s, now) for kind in CREDENTIALS}
    secrets = {s.site, s.admin, s.revoked, s.admin[9:]} | {
        v.rsplit(".", 1)[-1] for headers, _ in presented.values() for v in headers.values() if "Bearer" in v}
    wrong = []
    with caplog.at_level(logging.DEBUG):
        for kind in order:
            headers, query = presented[kind]
            url = path + (("&" if "?" in path else "?") + query if query else "")
            before = state(s)
            resp = s.client.open(url, method=method, json=body, headers=headers)
            want = expected(access, kind)
            if resp.status_code != want:
                wrong.append((kind, resp.status_code, want, resp.get_data(as_text=True)[:200]))
                continue
            if want in (401, 403):
                err = resp.get_json()
                assert err["error"] == ("unauthorized" if want == 401 else "forbidden") and err["message"]
                assert (want == 401) == resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
                assert state(s) == before, f"{kind} was refused but changed something"
    assert not wrong, wrong
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert not [x for x in secrets if x in logged]


# -- secrets never reach the server's logs ------------------------------------------------------
def _raw_http(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b"".join(chunks)


@pytest.mark.slow
def test_keys_and_tokens_never_reach_the_server_logs(tmp_path):
    """Keys and tokens sent right, wrong, in odd places and inside malformed requests: the access
    log, gunicorn's error log and the app's log never contain one."""
    server = Server(tmp_path, workers=2, threads=2)
    token = ReaderTokens(SERVER_SECRET.encode()).issue("log-reader", 600)
    with server:
        base, site, admin = server.base, server.site_key, server.admin_key
        calls = [
            ("GET", "/v1/users/log-reader/feed", {"X-API-Key": site}),
            ("POST", "/v1/admin/reload", {"X-API-Key": admin}),
            ("GET", "/v1/users/log-reader/feed", {"X-API-Key": admin[:-1] + "x"}),
            ("GET", "/v1/users/log-reader/feed", {"Authorization": f"Bearer {token}"}),
            ("GET", "/v1/users/log-reader/feed", {"Authorization": f"Bearer {token[:-2]}zz"}),
            ("GET", "/v1/users/log-reader/feed", {"Authorization": f"Bearer {admin}"}),
            ("GET", f"/v1/users/log-reader/feed?api_key={admin}&token={token}", {}),
            ("GET", f"/v1/users/{admin}/feed", {"X-API-Key": site}),  # a key pasted as an id
            ("GET", f"/v1/articles/{site}/related", {"X-API-Key": site}),
            ("DELETE", "/v1/users/log-reader", {"X-API-Key": admin, "X-Request-ID": "forget-1"}),
        ]
        statuses = [requests.request(m, base + p, headers=h, timeout=10).status_code for m, p, h in calls]
        assert statuses == [200, 409, 401, 200, 401, 401, 401, 200, 404, 200]
        # malformed requests that carry a key: gunicorn refuses them before the app sees them
        oversized = _raw_http(server.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-API-Key: {admin}"
                                           f"{'A' * 9000}\r\n\r\n".encode())
        bad_line = _raw_http(server.port, f"GET /healthz?{admin} HTTP/9.9 {admin}\r\nHost: x\r\n\r\n".encode())
        bad_header = _raw_http(server.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Api-{admin}\r\n"
                                             f"Authorization Bearer {token}\r\n\r\n".encode())
        assert all(r.startswith(b"HTTP/1.1 4") or r == b"" for r in (oversized, bad_line, bad_header))
        time.sleep(0.3)
    logs = server.logs()
    assert '"path": "/v1/users/<user_id>"' in logs and '"request_id": "forget-1"' in logs
    leaked = [name for name, secret in (("site key", site), ("admin key", admin), ("token", token),
                                        ("token signature", token.rsplit(".", 1)[1]), ("key body", admin[9:]))
              if secret in logs]
    assert not leaked, leaked
    assert "nr_<masked>" in logs


# -- erasure ------------------------------------------------------------------------------------
def _store_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


def test_forgotten_reader_leaves_no_trace_in_store_model_or_later_logs(served, caplog):
    """Two workers (engines with background threads) share one store. One has served the reader a
    feed whose impressions are still queued when the other forgets the reader: after two polls no
    row, no byte of the database files, no bundle file and no log line written since names them."""
    s = served
    me = s.me
    engine_a = s.engine  # the app's worker
    # (read by its background thread, started below); every feed's feature vectors are logged too
    engine_a.config = EngineConfig(poll_interval=0.05, feature_log_rate=1.0)
    store_b = SQLiteStore(s.sample.store.path)
    engine_b = Engine(store_b, s.sample.models_dir, EngineConfig(poll_interval=0.05, feature_log_rate=1.0),
                      clock=lambda: s.sample.now)
    assert len(s.sample.store.user_events(me, limit=10_000)) > 10 and s.sample.store.get_preferences(me)
    assert me.encode() in _store_bytes(s.sample.store.path)
    try:
        engine_a.feed(me, limit=10)
        engine_a.flush_impressions()  # a feed of the reader's with its feature vectors, stored
        assert {r.user_id for r in s.sample.store.feature_logs()} == {me}
        engine_b.feed(me, limit=10)  # worker B: impressions and features queued, not yet written
        s.client.get(f"/v1/articles/{s.sample.built.arrays['item_ids'][-1]}/related?user_id={me}",
                     headers={"X-API-Key": s.site})  # worker A queues some too
        engine_a.start_background()
        with caplog.at_level(logging.DEBUG):
            resp = s.client.delete(f"/v1/users/{me}", headers={"X-API-Key": s.admin})
            engine_b.start_background()  # B flushes the queued lists after the deletion
            assert resp.status_code == 200 and resp.get_json()["removed"]["events"] > 10
            engine_b.flush_impressions()  # whatever B's thread has not written yet: written now, after the forget
            other = s.other
            for engine in (engine_a, engine_b):
                engine.feed(other, limit=5)
            s.client.get(f"/v1/users/{other}/feed", headers={"X-API-Key": s.site})
            s.client.post("/v1/admin/reload", headers={"X-API-Key": s.admin})
            for engine in (engine_a, engine_b):
                engine.flush_impressions()
            assert s.sample.store.user_events(me, limit=10_000) == []
            assert s.sample.store.get_preferences(me) is None
            assert {r.user_id for r in s.sample.store.feature_logs()} == {other}  # theirs went, B's were dropped
            conn = s.sample.store._conn()
            assert conn.execute("SELECT COUNT(*) FROM users WHERE user_id = ?", (me,)).fetchone()[0] == 0
            assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
            assert me.encode() not in _store_bytes(s.sample.store.path)
            # the served model: no bundle file names any reader; their feed is a stranger's feed
            for path in s.sample.models_dir.rglob("*"):
                if path.is_file():
                    assert me.encode() not in path.read_bytes(), path
            engine_a.close()
            engine_b.close()  # (no background ticks, so live counters stay put while comparing)
            stranger = "never-seen-reader-42"
            for engine in (engine_a, engine_b):
                mine, theirs = engine.feed(me, limit=10), engine.feed(stranger, limit=10)
                assert mine.strategy == theirs.strategy == "cold-start"
                assert [i.article_id for i in mine.items] == [i.article_id for i in theirs.items]
    finally:
        engine_b.close()
        store_b.close()
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert me not in logged
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "newsrec.access"]
    assert [(a["method"], a["path"], a["status"]) for a in access if a["method"] == "DELETE"] == [
        ("DELETE", "/v1/users/<user_id>", 200)]


# -- bundles are data ---------------------------------------------------------------------------
class _Touch:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _hostile_bundle(models: Path, built, kind: str, marker: Path) -> str:
    staging = models.parent / f"staging-{kind}"
    version = write_bundle(staging, built.arrays, built.documents, manifest_extra=built.manifest)
    folder = staging / version
    manifest = json.loads((folder / "manifest.json").read_text())
    if kind == "pickle":
        payload = np.empty(3, dtype=object)
        payload[:] = [_Touch(marker), "x", 1]
        target = folder / "item_factors.npy"
        with open(target, "wb") as fh:
            np.save(fh, payload, allow_pickle=True)
        data = target.read_bytes()
        manifest["files"]["item_factors.npy"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    elif kind == "outside":
        outside = models.parent / "outside.npy"
        outside.write_bytes((folder / "item_factors.npy").read_bytes())
        data = outside.read_bytes()
        manifest["files"]["../../outside.npy"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    elif kind == "absolute":
        manifest["files"]["/etc/passwd"] = {"sha256": "0" * 64, "bytes": 1}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (staging / version).rename(models / version)
    return version


@pytest.mark.parametrize("kind", ["pickle", "outside", "absolute"])
def test_hostile_bundle_is_refused_by_the_running_service_and_runs_no_code(served, tmp_path, kind):
    """A published bundle holding a pickle (with a correct checksum) or a manifest naming a file
    outside its folder: the engine refuses it, the old model keeps serving, nothing is executed."""
    s = served
    marker = tmp_path / "code-ran"
    version = _hostile_bundle(s.sample.models_dir, s.sample.built, kind, marker)
    assert pickle.loads(pickle.dumps(_Touch(tmp_path / "probe"))) is None and (tmp_path / "probe").exists()
    resp = s.client.post("/v1/admin/reload", json={"version": version}, headers={"X-API-Key": s.admin})
    assert resp.status_code == 409 and resp.get_json()["error"] == "reload_failed"
    assert s.sample.store.live_model() == s.sample.version  # a refused bundle is never made live
    assert read_current(s.sample.models_dir) == s.sample.version
    assert s.sample.store.promote_model(version)  # as if a broken tool made it live with no checks
    assert s.engine.maybe_reload() is False
    assert not marker.exists()
    ready = s.client.get("/readyz").get_json()
    assert ready["model_version"] == s.sample.version and ready["status"] == "degraded"
    feed = s.client.get(f"/v1/users/{s.me}/feed", headers={"X-API-Key": s.site}).get_json()
    assert feed["model_version"] == s.sample.version and feed["items"]


def test_product_code_never_unpickles_or_evaluates():
    """A static guard: no pickle/joblib/marshal/shelve, no eval/exec, np.load only without pickles."""
    banned = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|joblib|dill|marshal|shelve|cloudpickle)\b"
                        r"|allow_pickle\s*=\s*True|\beval\(|\bexec\(|__import__\(", re.M)
    loads = re.compile(r"np\.load\((?![^)]*allow_pickle=False)")
    offenders = []
    for folder in ("recommender", "api", "training"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0).strip()}" for m in banned.finditer(text)]
            offenders += [f"{path.relative_to(ROOT)}: np.load without allow_pickle=False"
                          for _ in loads.finditer(text)]
    assert not offenders, offenders
