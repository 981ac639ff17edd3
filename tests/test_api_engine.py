"""The API over the real engine and store: end-to-end behaviour on the trained sample."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("recommender.serving.engine") is None:  # pragma: no cover - only while engine.py is missing
    pytest.skip("recommender.serving.engine is not written yet", allow_module_level=True)

from api import create_app  # noqa: E402
from recommender.domain import parse_time  # noqa: E402
from recommender.security import KEYS_FILE, KeyStore  # noqa: E402
from recommender.store import SQLiteStore  # noqa: E402
from training.cli import main as cli_main  # noqa: E402

SECRET = "engine-test-secret-0123456789"


@pytest.fixture
def served(trained, tmp_path):
    """An app over the trained sample's store and models, with one key of each role."""
    engine = trained.engine()
    home = tmp_path / "home"
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "NEWSREC_MODELS": str(trained.models_dir),
                      "ENGINE": engine, "STORE": trained.store, "NEWSREC_TOKEN_SECRET": SECRET})
    keys = KeyStore(home / KEYS_FILE)
    site, _ = keys.add("site")
    admin, _ = keys.add("admin")
    yield app.test_client(), {"X-API-Key": site}, {"X-API-Key": admin}
    engine.close()


def test_related_serves_the_trained_model_with_store_facts(trained, served):
    client, site, _ = served
    anchor = next(iter(trained.articles))
    body = client.get(f"/v1/articles/{anchor}/related?limit=7", headers=site).get_json()
    assert body["model_version"] == trained.version and body["strategy"] == "hybrid"
    ids = [i["article_id"] for i in body["items"]]
    assert len(ids) == 7 == len(set(ids)) and anchor not in ids
    stored = trained.store.get_articles(ids)
    for item in body["items"]:
        assert parse_time(item["published_at"], "t") == pytest.approx(stored[item["article_id"]].published_at, abs=1)
        assert item["title"] == stored[item["article_id"]].title and item["reason"]
    assert body["list_id"]


def test_feed_pages_and_refuses_a_forged_cursor(trained, served):
    client, site, _ = served
    user = next(iter(trained.readers))
    first = client.get(f"/v1/users/{user}/feed?limit=10", headers=site).get_json()
    second = client.get(f"/v1/users/{user}/feed?limit=10&cursor={first['next_cursor']}", headers=site).get_json()
    ids = [i["article_id"] for i in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 20
    bad = client.get(f"/v1/users/{user}/feed?cursor=bm90LWEtY3Vyc29y", headers=site)
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_cursor"
    cursor = second["next_cursor"]
    changed = cursor[:5] + ("B" if cursor[5] == "A" else "A") + cursor[6:]
    other = next(u for u in trained.readers if u != user)
    for path in (f"/v1/users/{user}/feed?cursor={changed}", f"/v1/users/{other}/feed?cursor={cursor}"):
        bad = client.get(path, headers=site)
        assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_cursor"
        message = bad.get_json()["message"]
        assert "pass the next_cursor of a previous page of this reader unchanged" in message
        assert message.count("unchanged") == 1, message  # the advice once, not twice in other words
    cold = client.get("/v1/users/never-seen-reader/feed?limit=5", headers=site).get_json()
    assert cold["strategy"] == "cold-start" and len(cold["items"]) == 5


def test_events_are_durable_before_200_and_retries_are_duplicates(trained, served):
    client, site, _ = served
    article = next(iter(trained.articles))
    batch = {"events": [{"user_id": "api-durable", "article_id": article, "event": "read", "ts": trained.now - 30,
                         "dwell_seconds": 55, "event_id": f"api-durable-{i}"} for i in range(3)]}
    assert client.post("/v1/events", json=batch, headers=site).get_json() == {"accepted": 3, "duplicates": 0}
    other = SQLiteStore(trained.store.path)  # another connection: sees only committed rows
    try:
        assert len(other.user_events("api-durable")) == 3
    finally:
        other.close()
    assert client.post("/v1/events", json=batch, headers=site).get_json() == {"accepted": 0, "duplicates": 3}


def test_published_article_is_served_and_a_takedown_removes_it(trained, served):
    client, site, admin = served
    source = trained.articles[next(iter(trained.articles))]
    fresh = {"article_id": "api-fresh-1", "title": source["title"] + " (pembaruan)", "body": source["body"],
             "category": source["category"], "published_at": trained.now - 60}
    assert client.post("/v1/articles", json=fresh, headers=admin).get_json() == {"accepted": 1}
    related = client.get("/v1/articles/api-fresh-1/related?limit=5", headers=site)
    assert related.status_code == 200 and len(related.get_json()["items"]) == 5
    assert client.delete("/v1/articles/api-fresh-1", headers=admin).get_json()["taken_down"] is True
    gone = client.get("/v1/articles/api-fresh-1/related", headers=site)
    assert gone.status_code == 404 and gone.get_json()["error"] == "not_found"
    assert client.delete("/v1/articles/never-existed", headers=admin).status_code == 404


def test_preferences_and_forget_reach_the_store(trained, served):
    client, site, admin = served
    put = client.put("/v1/users/api-forget/preferences", json={"categories": ["Olahraga"]}, headers=site)
    assert put.status_code == 200 and trained.store.get_preferences("api-forget").categories == ("Olahraga",)
    article = next(iter(trained.articles))
    client.post("/v1/events", json={"user_id": "api-forget", "article_id": article, "event": "click",
                                    "ts": trained.now - 10}, headers=site)
    removed = client.delete("/v1/users/api-forget", headers=admin).get_json()["removed"]
    assert removed == {"events": 1, "preferences": 1, "user": 1}
    assert trained.store.get_preferences("api-forget") is None and trained.store.user_events("api-forget") == []


def test_failed_reload_keeps_the_model_and_models_lists_it(trained, served):
    client, _, admin = served
    bad = client.post("/v1/admin/reload", json={"version": "20000101T000000Z-000000"}, headers=admin)
    assert bad.status_code == 409 and bad.get_json()["error"] == "reload_failed"
    assert f"model {trained.version} keeps serving" in bad.get_json()["message"]
    assert "GET /v1/admin/models" in bad.get_json()["message"]  # where to find a version that exists
    ready = client.get("/readyz").get_json()
    assert ready["model_version"] == trained.version and ready["last_reload_error"]
    again = client.post("/v1/admin/reload", headers=admin).get_json()
    assert again == {"model_version": trained.version, "previous_version": trained.version}
    models = client.get("/v1/admin/models", headers=admin).get_json()
    assert [m["version"] for m in models["models"] if m["current"]] == [trained.version]
    assert client.get("/readyz").get_json()["status"] == "ready"


def test_app_builds_its_own_engine_and_shares_the_token_secret_with_the_cli(tmp_path, monkeypatch, capsys):
    home = tmp_path / "fresh-home"
    for name in ("NEWSREC_DB", "NEWSREC_MODELS", "NEWSREC_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(home))
    app = create_app({"TESTING": True})
    engine = app.extensions["newsrec"]
    try:
        client = app.test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
        assert cli_main(["keys", "add", "--role", "site"]) == 0
        key = {"X-API-Key": capsys.readouterr().out.strip()}
        assert cli_main(["keys", "add", "--role", "cms"]) == 0
        cms = {"X-API-Key": capsys.readouterr().out.strip()}
        assert cli_main(["token", "issue", "reader-1", "--ttl", "300"]) == 0
        token = {"Authorization": "Bearer " + capsys.readouterr().out.strip()}
        article = {"article_id": "own-1", "title": "Timnas menang di Jakarta", "body": "Pertandingan seru.",
                   "category": "Olahraga", "published_at": "2026-11-20T10:00:00+07:00"}
        assert client.post("/v1/articles", json=article, headers=key).status_code == 403
        assert client.post("/v1/articles", json=article, headers=cms).status_code == 200
        assert client.get("/v1/articles/own-1/related", headers=key).status_code == 200
        feed = client.get("/v1/users/reader-1/feed", headers=token)
        assert feed.status_code == 200 and feed.get_json()["model_version"] is None
        assert client.get("/v1/users/reader-2/feed", headers=token).status_code == 403
        assert "newsrec_fallback_lists_total" in client.get("/metrics").get_data(as_text=True)
    finally:
        engine.close()


def test_the_feed_cache_metric_counts_what_the_reader_got(trained, served):
    """A repeated first page is a hit; a click makes the next one a miss; later pages are neither."""
    import re

    client, site, _ = served
    user = next(iter(trained.readers))

    def counts():
        text = client.get("/metrics").get_data(as_text=True)
        return {r: float(m.group(1)) if (m := re.search(rf'newsrec_feed_cache_lookups_total{{result="{r}"}} (\S+)', text))
                else 0.0 for r in ("hit", "miss")}

    before = counts()
    first = client.get(f"/v1/users/{user}/feed?limit=10", headers=site).get_json()
    again = client.get(f"/v1/users/{user}/feed?limit=10", headers=site).get_json()
    # the cached page's items are written from their encoded text: the same items, scores, times
    assert again["items"] == first["items"] and len(first["items"]) == 10
    assert again["list_id"] != first["list_id"] and again["user_id"] == user == first["user_id"]
    assert set(again) == set(first) and again["next_cursor"] == first["next_cursor"]
    client.get(f"/v1/users/{user}/feed?limit=10&cursor={first['next_cursor']}", headers=site)
    clicked = first["items"][0]["article_id"]
    event = {"user_id": user, "article_id": clicked, "event": "click", "list_id": first["list_id"],
             "ts": trained.now - 5}
    assert client.post("/v1/events", json=event, headers=site).get_json() == {"accepted": 1, "duplicates": 0}
    after = client.get(f"/v1/users/{user}/feed?limit=10", headers=site).get_json()
    assert clicked not in [i["article_id"] for i in after["items"]]
    got = counts()
    assert (got["hit"] - before["hit"], got["miss"] - before["miss"]) == (1, 2)


def test_a_cached_pages_items_are_encoded_once_however_often_it_is_served(trained, served, monkeypatch):
    """Encoding 20 items was ~15 % of a worker's time serving cached pages: the first page is
    encoded when built and reused by every hit (by the tuple the cache keeps), until it changes."""
    from api.routes import common

    client, site, _ = served
    user = sorted(trained.readers)[1]
    encoded = []
    monkeypatch.setattr(common, "item_json", lambda item, fmt: encoded.append(item.article_id) or {
        "article_id": item.article_id})
    pages = [client.get(f"/v1/users/{user}/feed?limit=10", headers=site).get_json() for _ in range(3)]
    assert pages[0]["items"] == pages[1]["items"] == pages[2]["items"] and len(pages[0]["items"]) == 10
    assert len(encoded) == 10  # once, when the page was built
    client.post("/v1/events", json={"user_id": user, "article_id": encoded[0], "event": "click",
                                    "ts": trained.now - 5}, headers=site)
    client.get(f"/v1/users/{user}/feed?limit=10", headers=site)  # built again: encoded again
    assert len(encoded) == 20


def test_reload_with_a_version_makes_it_live_for_every_worker(trained, served):
    from recommender.models.bundle import read_current
    from recommender.models.fitting import train
    from recommender.models.versions import promote

    client, site, admin = served
    newer, _ = train(trained.store, trained.models_dir, as_of=trained.now, seed=1)  # staged
    try:
        assert trained.store.live_model() == trained.version
        other_worker = trained.engine()  # like a second gunicorn worker
        assert other_worker.model_version == trained.version  # a staged version is not served
        again = client.post("/v1/admin/reload", headers=admin).get_json()
        assert again == {"model_version": trained.version, "previous_version": trained.version}
        resp = client.post("/v1/admin/reload", json={"version": newer}, headers=admin)
        assert resp.get_json() == {"model_version": newer, "previous_version": trained.version}
        assert trained.store.live_model() == newer and read_current(trained.models_dir) == newer
        assert other_worker.maybe_reload() is True and other_worker.model_version == newer
        # compare-and-set: an operator who expected another live version changes nothing
        stale = client.post("/v1/admin/reload", json={"version": trained.version, "expected": trained.version},
                            headers=admin)
        assert stale.status_code == 409 and stale.get_json()["error"] == "promotion_conflict"
        assert f"the live version is {newer}" in stale.get_json()["message"] and trained.store.live_model() == newer
        # ... not even on the worker that took the request: the refused version was loaded, never served
        assert client.get("/readyz").get_json()["model_version"] == newer
        user = sorted(trained.readers)[0]
        assert client.get(f"/v1/users/{user}/feed?limit=5", headers=site).get_json()["model_version"] == newer
        back = client.post("/v1/admin/reload", json={"version": trained.version, "expected": newer}, headers=admin)
        assert back.status_code == 200 and trained.store.live_model() == trained.version
        assert back.get_json() == {"model_version": trained.version, "previous_version": newer}
        other_worker.refresh()  # the model change in the log: the other worker switches back
        assert other_worker.model_version == trained.version
        other_worker.close()
    finally:
        promote(trained.store, trained.models_dir, trained.version)


def test_a_valid_key_is_never_refused_as_unknown_while_the_database_does_not_answer(trained, tmp_path, monkeypatch):
    """A worker that has read no keys yet (started during an outage) answers 503, retry, not 401
    for a key it cannot check; once the database answers the key works, and keeps working through
    the next outage (the keys last read stay valid). An unknown key is 401 whenever it can be told."""
    import time

    from api.auth import SharedKeys
    from recommender.store import StoreUnavailable

    sample = trained.clone(tmp_path)  # it writes a key
    engine = sample.engine()
    home = tmp_path / "home"
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "NEWSREC_MODELS": str(sample.models_dir),
                      "ENGINE": engine, "STORE": sample.store, "NEWSREC_TOKEN_SECRET": SECRET})
    client = app.test_client()
    raw, _ = SharedKeys(sample.store).add("site", "portal")  # in the database, as `newsrec keys add` does
    wrong = {"X-API-Key": "nr_site_" + "A" * 43}
    user = next(iter(sample.readers))
    originals = {name: getattr(sample.store, name) for name in ("log_position", "changes_after", "api_keys")}

    def down(*args, **kwargs):
        raise StoreUnavailable("connection refused")

    for name in originals:
        monkeypatch.setattr(sample.store, name, down)
    for headers in ({"X-API-Key": raw}, wrong):
        refused = client.get(f"/v1/users/{user}/feed", headers=headers)
        assert refused.status_code == 503 and refused.get_json()["error"] == "store_unavailable"
        assert refused.headers["Retry-After"] == "1" and "API keys" not in refused.get_json()["message"]
    for name, method in originals.items():
        monkeypatch.setattr(sample.store, name, method)
    deadline = time.monotonic() + 10
    while (answer := client.get(f"/v1/users/{user}/feed", headers={"X-API-Key": raw})).status_code != 200:
        assert answer.status_code == 503 and time.monotonic() < deadline  # until the next look at the store
    assert answer.get_json()["items"]
    assert client.get(f"/v1/users/{user}/feed", headers=wrong).status_code == 401
    for name in originals:
        monkeypatch.setattr(sample.store, name, down)
    assert client.get(f"/v1/users/{user}/feed", headers={"X-API-Key": raw}).status_code == 200
    engine.close()


def test_a_rule_naming_a_lone_surrogate_or_a_c1_control_is_a_400_not_a_500(trained, tmp_path):
    """Rules refuse the characters article labels refuse: a lone surrogate (a valid JSON escape
    with no UTF-8 form) was accepted, then failed to encode in the store: a 500."""
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    home = tmp_path / "home"
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "NEWSREC_MODELS": str(sample.models_dir),
                      "ENGINE": engine, "STORE": sample.store, "NEWSREC_TOKEN_SECRET": SECRET})
    editor = {"X-API-Key": KeyStore(home / KEYS_FILE).add("editor")[0], "Content-Type": "application/json"}
    client = app.test_client()
    try:
        for bad, shown in (("\\ud800", "U+D800"), ("\\u0085", "U+0085")):
            for target, scope in ((f"Olah{bad}raga", "Jawa"), ("Olahraga", f"Ja{bad}wa")):
                raw = ('{"kind": "block", "target": {"category": "%s"}, "scope": {"list": "feed", "region": "%s"}}'
                       % (target, scope))
                resp = client.post("/v1/admin/rules", data=raw, headers=editor)
                assert resp.status_code == 400, resp.get_data(as_text=True)
                assert resp.get_json()["error"] == "validation_error" and shown in resp.get_json()["message"]
        assert sample.store.list_rules() == []
        raw = '{"kind": "block", "target": {"category": "Olahraga"}, "scope": {"list": "feed", "region": "Jawa"}}'
        assert client.post("/v1/admin/rules", data=raw, headers=editor).status_code == 201
        assert [r.target for r in sample.store.list_rules()] == [{"category": "Olahraga"}]
    finally:
        engine.close()


def test_an_error_echoing_a_lone_surrogate_is_json_with_escapes_not_a_500(trained, served):
    """A lone surrogate (a valid JSON escape) has no UTF-8 form: a message that names what was sent
    (here the live version the operator expected) goes out with ``\\u`` escapes, still JSON."""
    client, _, admin = served
    resp = client.post("/v1/admin/reload", data='{"version": "%s", "expected": "v\\ud800"}' % trained.version,
                       headers={**admin, "Content-Type": "application/json"})
    assert resp.status_code == 409 and resp.get_json()["error"] == "promotion_conflict"
    assert "\\ud800" in resp.get_data(as_text=True) and "v\ud800" in resp.get_json()["message"]
    assert trained.store.live_model() == trained.version
