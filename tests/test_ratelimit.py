"""Rate limits per API key, per reader token and per client address (Flask-Limiter).

In process for the rules; through ``newsrec serve --workers 2`` with the limits shared in Redis
for what crosses workers (with memory storage each worker would count alone).
"""

from __future__ import annotations

import socket
import uuid

import pytest
import requests

from api import create_app
from recommender.security import KEYS_FILE, KeyStore
from tests.api_fixtures import SECRET, Creds, FakeEngine, event
from tests.test_reliability import Server

OPEN = ("/healthz", "/readyz", "/metrics", "/openapi.json")


@pytest.fixture
def limited(tmp_path):
    """An app with small limits: 3 a minute per key, 2 per reader token, 2 per client address."""
    def build(**config):
        home = tmp_path / "home"
        app = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "ENGINE": FakeEngine(),
                          "NEWSREC_TOKEN_SECRET": SECRET, "NEWSREC_RATELIMIT": "3 per minute",
                          "NEWSREC_RATELIMIT_READER": "2 per minute", "NEWSREC_RATELIMIT_ANONYMOUS": "2 per minute",
                          **config})
        keys = KeyStore(home / KEYS_FILE)
        from recommender.security import ReaderTokens

        creds = Creds(site=keys.add("site")[0], admin=keys.add("admin")[0], tokens=ReaderTokens(SECRET.encode()),
                      cms=keys.add("cms")[0])
        return app.test_client(), creds
    return build


def assert_limited(resp) -> int:
    assert resp.status_code == 429, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error", "message"} and body["error"] == "rate_limited" and body["message"], body
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 60
    return retry


def test_each_key_has_its_own_budget_across_endpoints(limited):
    client, creds = limited()
    site = {"X-API-Key": creds.site}
    assert client.get("/v1/users/u1/feed", headers=site).status_code == 200
    assert client.get("/v1/articles/a1/related", headers=site).status_code == 200
    assert client.post("/v1/events", json=event(), headers=site).status_code == 200
    assert_limited(client.get("/v1/users/u1/feed", headers=site))
    assert_limited(client.post("/v1/events", json=event(event_id="again"), headers=site))
    assert client.get("/v1/users/u1/feed", headers={"X-API-Key": creds.admin}).status_code == 200  # another key
    for path in OPEN:  # probes, metrics and the description are never limited
        for _ in range(5):
            assert client.get(path).status_code == 200, path


def test_each_reader_token_has_its_own_budget_and_a_forged_one_spends_none_of_it(limited):
    client, creds = limited()
    good = creds.token("u1")
    forged = {"Authorization": f"Bearer {good[:-2]}xx"}  # claims u1, signature wrong: counted by address
    for _ in range(3):
        assert client.get("/v1/users/u1/feed", headers=forged).status_code in (401, 429)
    me = {"Authorization": f"Bearer {good}"}
    assert client.get("/v1/users/u1/feed", headers=me).status_code == 200
    assert client.get("/v1/users/u1/preferences", headers=me).status_code in (200, 404)
    assert_limited(client.get("/v1/users/u1/feed", headers=me))
    other = {"Authorization": f"Bearer {creds.token('u2')}"}
    assert client.get("/v1/users/u2/feed", headers=other).status_code == 200


def test_requests_without_valid_credentials_are_counted_by_address(limited):
    client, creds = limited()
    for _ in range(2):
        assert client.get("/v1/users/u1/feed").status_code == 401
    assert_limited(client.get("/v1/users/u1/feed", headers={"X-API-Key": "nr_site_" + "A" * 43}))
    other = client.get("/v1/users/u1/feed", environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 401  # another address
    assert client.get("/v1/users/u1/feed", headers={"X-API-Key": creds.site}).status_code == 200


def test_limits_can_be_turned_off_and_bad_ones_fail_at_start(limited):
    client, creds = limited(NEWSREC_RATELIMIT="off")
    for _ in range(10):
        assert client.get("/v1/users/u1/feed", headers={"X-API-Key": creds.site}).status_code == 200
    with pytest.raises(ValueError, match="NEWSREC_RATELIMIT_READER"):
        limited(NEWSREC_RATELIMIT_READER="lots")


def test_a_limit_of_zero_fails_at_start_instead_of_refusing_every_request(limited):
    """NEWSREC_RATELIMIT="0 per minute" started, then answered every /v1 request 429."""
    for name in ("NEWSREC_RATELIMIT", "NEWSREC_RATELIMIT_READER", "NEWSREC_RATELIMIT_ANONYMOUS"):
        with pytest.raises(ValueError, match=f"{name}='0 per minute' is not a rate limit.*at least 1"):
            limited(**{name: "0 per minute"})
    with pytest.raises(ValueError, match="NEWSREC_RATELIMIT="):
        limited(NEWSREC_RATELIMIT="100/second; 0/hour")
    client, creds = limited(NEWSREC_RATELIMIT="1 per minute")
    assert client.get("/v1/users/u1/feed", headers={"X-API-Key": creds.site}).status_code == 200


def test_the_defaults_leave_room_for_a_load_test():
    from api.ratelimit import settings

    chosen = settings({}, {})
    assert chosen["storage"] == "memory://"
    from limits import parse

    per_second = parse(chosen["key"]).amount / parse(chosen["key"]).get_expiry()
    assert per_second >= 1000  # benchmarks/load.py's top rate with one site key


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379 (the machine and CI start one)")
def test_a_limit_shared_in_redis_holds_across_gunicorn_workers(tmp_path):
    env = {"NEWSREC_RATELIMIT": "6 per minute", "NEWSREC_RATELIMIT_STORAGE": "redis://127.0.0.1:6379/0"}
    with Server(tmp_path, workers=2, threads=2, env=env) as server:
        url = f"{server.base}/v1/users/rl-{uuid.uuid4().hex[:8]}/feed?limit=2"
        # fresh connections land on either worker; Server.start spent one on /readyz (not limited)
        answers = [requests.get(url, headers={**server.headers(), "Connection": "close"}, timeout=10)
                   for _ in range(7)]
        assert [r.status_code for r in answers[:6]] == [200] * 6
        over = answers[6]
        assert over.status_code == 429 and over.json()["error"] == "rate_limited", over.text
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert requests.get(url, headers=server.headers("admin"), timeout=10).status_code == 200  # another key
        assert requests.get(server.base + "/readyz", timeout=10).status_code == 200
    assert "Traceback" not in server.logs()


def test_memory_counts_are_swept_once_a_second_not_by_a_thread_per_burst(limited):
    """limits' MemoryStorage starts a sweeping thread 10 ms after a hit finds none running (~0.6 ms a
    request); the storage newsrec uses for memory:// sweeps once a second, through the private
    method it overrides: this fails if limits renames it."""
    from limits.storage import MemoryStorage

    from api.ratelimit import EXTENSION, SecondlyExpiryMemoryStorage

    assert callable(getattr(MemoryStorage, "_MemoryStorage__schedule_expiry", None))
    assert callable(getattr(MemoryStorage, "_MemoryStorage__expire_events", None))
    client, creds = limited()
    storage = client.application.extensions[EXTENSION].storage
    assert isinstance(storage, SecondlyExpiryMemoryStorage)
    for _ in range(3):
        client.get("/v1/users/u1/feed", headers={"X-API-Key": creds.site})
    assert storage.timer.interval == SecondlyExpiryMemoryStorage.SWEEP_SECONDS and storage.timer.daemon
