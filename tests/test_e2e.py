"""End to end, as an operator runs it: CLI sample -> ingest -> train, gunicorn on a free loopback
port, a real HTTP client, and a model republished while the server runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "training", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSREC_", "PROMETHEUS_"))}
    env.update(NEWSREC_HOME=str(home), PYTHONPATH=str(ROOT), NEWSREC_TOKEN_SECRET="e2e-secret-0123456789abcdefghij")
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    _cli(env, "sample", "--articles", "400", "--users", "200", "--days", "5", "--seed", "3", "--end", now, "--ingest")
    _cli(env, "train", "--json", "--promote")
    site = _cli(env, "keys", "add", "--role", "site").strip()
    admin = _cli(env, "keys", "add", "--role", "admin").strip()
    cms = _cli(env, "keys", "add", "--role", "cms").strip()
    port = _free_port()
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "training", "serve", "--port", str(port), "--workers", "2"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(base + "/readyz", timeout=2).json().get("model_version"):
                break
        except requests.RequestException:
            pass
        assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
        time.sleep(0.3)
    truth = [json.loads(line) for line in (home / "sample" / "truth.jsonl").read_text().splitlines()]
    articles = [json.loads(line) for line in (home / "sample" / "articles.jsonl").read_text().splitlines()]
    session = requests.Session()
    yield {"base": base, "site": site, "admin": admin, "cms": cms, "env": env, "home": home, "http": session,
           "story": {t["article_id"]: t["story_id"] for t in truth if t["kind"] == "article"},
           "readers": {t["user_id"]: t for t in truth if t["kind"] == "user"},
           "articles": {a["article_id"]: a for a in articles}}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
    log.close()


def get(s, path, key=None, token=None, **params):
    headers = {"X-API-Key": key} if key else {"Authorization": f"Bearer {token}"} if token else {}
    return s["http"].get(s["base"] + path, headers=headers, params=params, timeout=10)


def post(s, path, body, key):
    return s["http"].post(s["base"] + path, headers={"X-API-Key": key}, json=body, timeout=10)


def test_related_over_http_is_on_story_and_never_self(server):
    by_story: dict[int, list[str]] = {}
    for a, st in server["story"].items():
        by_story.setdefault(st, []).append(a)
    anchors = [m[-1] for m in by_story.values() if len(m) >= 4][:5]
    assert anchors
    for anchor in anchors:
        r = get(server, f"/v1/articles/{anchor}/related", server["site"], limit=5)
        assert r.status_code == 200, r.text
        body = r.json()
        ids = [i["article_id"] for i in body["items"]]
        assert anchor not in ids and len(ids) == 5
        assert body["model_version"] and body["strategy"] == "hybrid"
        assert any(server["story"][i] == server["story"][anchor] for i in ids[:3])
        assert all(i["reason"] and i["title"] and i["published_at"].endswith("+07:00") for i in body["items"])


def test_a_click_changes_the_next_feed_on_any_worker(server):
    reader = "e2e-reader"
    before = get(server, f"/v1/users/{reader}/feed", server["site"], limit=10).json()
    assert before["strategy"] == "cold-start"
    sport = [a for a, art in server["articles"].items() if art["category"] == "Olahraga"][-3:]
    now = datetime.now(timezone.utc).isoformat()
    events = [{"user_id": reader, "article_id": a, "event": "read", "ts": now, "dwell_seconds": 90} for a in sport]
    assert post(server, "/v1/events", {"events": events}, server["site"]).json() == {"accepted": 3, "duplicates": 0}
    # both workers answer in turn; each must already know (the feed reads the reader's events from the store)
    for _ in range(4):
        after = get(server, f"/v1/users/{reader}/feed", server["site"], limit=10).json()
        assert after["strategy"] == "hybrid"
        ids = {i["article_id"] for i in after["items"]}
        assert not ids & set(sport)  # already read
        assert sum(i["category"] == "Olahraga" for i in after["items"]) >= 4
        assert any(i["reason"].startswith("Karena Anda membaca") for i in after["items"])


def test_reader_token_reads_own_feed_only(server):
    token = _cli(server["env"], "token", "issue", "tok-reader", "--ttl", "600").strip()
    assert get(server, "/v1/users/tok-reader/feed", token=token).status_code == 200
    other = get(server, "/v1/users/someone-else/feed", token=token)
    assert other.status_code == 403 and other.json()["error"]
    assert get(server, "/v1/users/tok-reader/feed").status_code == 401


def test_published_article_reaches_every_worker_and_takedown_removes_it(server):
    by_story: dict[int, list[str]] = {}
    for a, st in server["story"].items():
        by_story.setdefault(st, []).append(a)
    members = next(m for m in by_story.values() if len(m) >= 4)
    src = [server["articles"][a] for a in members[-2:]]
    article = {"article_id": "e2e-breaking", "title": " ".join(src[0]["title"].split()[:4] + ["Perkembangan", "Terbaru"]),
               "body": src[1]["body"], "category": src[0]["category"], "region": src[0]["region"],
               "published_at": datetime.now(timezone.utc).isoformat(), "url": "https://www.inews.id/x/e2e"}
    assert post(server, "/v1/articles", article, server["site"]).status_code == 403  # site keys do not publish
    assert post(server, "/v1/articles", article, server["cms"]).status_code == 200
    def listed() -> list[bool]:  # four lists over the pool's connections (both workers)
        return ["e2e-breaking" in [i["article_id"] for i in get(
            server, f"/v1/articles/{members[-1]}/related", server["site"], limit=10).json()["items"]] for _ in range(4)]

    deadline = time.monotonic() + 10.0  # the other worker picks it up on its next poll: wait for that, no longer
    while not all(listed()) and time.monotonic() < deadline:
        pass
    assert all(listed())
    assert server["http"].delete(server["base"] + "/v1/articles/e2e-breaking",
                                 headers={"X-API-Key": server["site"]}).status_code == 403
    assert server["http"].delete(server["base"] + "/v1/articles/e2e-breaking",
                                 headers={"X-API-Key": server["admin"]}).status_code == 200
    # no waiting: every worker applies takedowns before it builds a list
    assert not any(listed())
    for _ in range(4):
        assert get(server, "/v1/articles/e2e-breaking/related", server["site"]).status_code == 404


def test_bad_requests_get_json_errors(server):
    r = post(server, "/v1/events", {"events": [{"user_id": "u", "event": "like"}]}, server["site"])
    assert r.status_code == 400 and r.json()["details"][0]["index"] == 0
    assert get(server, "/v1/users/u1/feed", server["site"], limit=100000).status_code == 400
    assert get(server, "/v1/articles/nope/related", server["site"]).json()["error"] == "not_found"


def test_new_model_version_is_picked_up_without_restart(server):
    old = get(server, "/readyz").json()["model_version"]
    out = json.loads(_cli(server["env"], "train", "--json", "--seed", "5", "--promote"))
    assert out["version"] != old
    deadline = time.time() + 15
    seen = set()
    while time.time() < deadline:
        seen = {get(server, "/v1/users/x/feed", server["site"], limit=2).json()["model_version"] for _ in range(4)}
        if seen == {out["version"]}:
            break
        time.sleep(0.1)
    assert seen == {out["version"]}
