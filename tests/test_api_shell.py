"""The HTTP shell against a fake engine: shapes, limits, error paths, request ids, logs, metrics, OpenAPI."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime

import pytest

from api import create_app
from api.web import HTML_BLUEPRINTS
from recommender.domain import parse_time
from tests.api_fixtures import ARTICLES, SECRET, FakeEngine, app, client, creds, engine, event, home  # noqa: F401

V1_ROUTES = [  # (method, path, json body or None) that succeed with an admin key on a fresh fake engine
    ("GET", "/v1/articles/a1/related", None),
    ("GET", "/v1/users/u1/feed", None),
    ("POST", "/v1/events", {"events": [event()]}),
    ("POST", "/v1/articles", {"article_id": "n1", "title": "Baru", "category": "Ekonomi",
                              "published_at": "2026-11-02T07:00:00+07:00"}),
    ("DELETE", "/v1/articles/a1", None),
    ("GET", "/v1/users/u1/preferences", None),
    ("PUT", "/v1/users/u1/preferences", {"categories": ["Olahraga"], "regions": ["Jabar"]}),
    ("DELETE", "/v1/users/u1", None),
    ("POST", "/v1/admin/reload", None),
    ("GET", "/v1/admin/models", None),
]


def call(client, method, path, key=None, body=None, **kw):
    headers = kw.pop("headers", {})
    if key:
        headers["X-API-Key"] = key
    return client.open(path, method=method, headers=headers, json=body, **kw)


def assert_error(resp, status, code):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) <= {"error", "message", "details"} and body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


# -- documentation matches code -------------------------------------------------------------------
def test_openapi_documents_every_route_and_nothing_else(app, client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.0")
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in HTML_BLUEPRINTS:  # pages for people (console, reader pages)
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented


@pytest.mark.parametrize("field", ["user_id", "article_id", "event_id", "list_id"])
def test_the_documented_id_schema_refuses_and_admits_what_the_api_does(client, creds, field):
    """A client validating its events against /openapi.json sends no id the API refuses, and is
    not told an id the API takes is wrong: the schema's pattern and lengths are check_id's."""
    schema = client.get("/openapi.json").get_json()["components"]["schemas"]["Event"]["properties"][field]

    def documented(value) -> bool:
        return (isinstance(value, str) and schema["minLength"] <= len(value) <= schema["maxLength"]
                and re.search(schema["pattern"], value) is not None)

    for value in ["a", "A9", "9", "x" * 128, "x" * 129, "", "-a", ".a", "a b", "a/b", "ü", "user@site:1_2-3.x",
                  "ab#", 7]:
        resp = call(client, "POST", "/v1/events", creds.site, {"events": [event(**{field: value})]})
        assert resp.status_code == (200 if documented(value) else 400), (field, value, resp.get_data(as_text=True))


@pytest.mark.parametrize("schema_name", ["Event", "Article"])
def test_a_field_the_api_takes_as_null_is_documented_nullable_and_no_other(client, creds, schema_name):
    """null for an optional field means "not given" in the API; the schema says which fields, so
    a client validating against /openapi.json is not told a body the API takes is wrong."""
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    article = {"article_id": "n1", "title": "Baru", "category": "Ekonomi", "published_at": "2026-11-02T07:00:00+07:00"}
    path, key, body = {"Event": ("/v1/events", creds.site, event()),
                       "Article": ("/v1/articles", creds.cms, article)}[schema_name]
    for field, spec in schemas[schema_name]["properties"].items():
        resp = call(client, "POST", path, key, {**body, field: None})
        assert resp.status_code == (200 if spec.get("nullable") else 400), (field, resp.get_data(as_text=True))


def test_openapi_roles_and_query_parameters_match_the_guards(app, client):
    doc = client.get("/openapi.json").get_json()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in HTML_BLUEPRINTS:
            continue
        path = re.sub(r"<([^>]+)>", r"{\1}", rule.rule)
        view = app.view_functions[rule.endpoint]
        access = getattr(view, "newsrec_access", None)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = doc["paths"][path][method.lower()]
            if not rule.rule.startswith("/v1/"):
                assert access is None and op["x-roles"] == [] and op["security"] == []
                continue
            assert access is not None, f"{rule.rule} is not wrapped in api_view"
            roles = list(access["roles"]) + (["reader"] if access["reader"] else [])
            assert op["x-roles"] == roles, rule.rule
            query = sorted(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
            assert query == sorted(access["params"]), rule.rule
            path_params = sorted(p["name"] for p in op.get("parameters", []) if p["in"] == "path")
            assert path_params == sorted(rule.arguments), rule.rule


# -- lists ------------------------------------------------------------------------------------------
def test_related_response_shape_and_times(client, creds):
    resp = call(client, "GET", "/v1/articles/a1/related?limit=3", creds.site)
    assert resp.status_code == 200
    body = resp.get_json()
    assert list(body) == ["article_id", "items", "strategy", "model_version", "list_id"]
    assert body["article_id"] == "a1" and body["strategy"] == "recent" and body["model_version"] is None
    assert len(body["items"]) == 3
    by_id = {a.article_id: a for a in ARTICLES}
    for item in body["items"]:
        assert list(item) == ["article_id", "title", "url", "category", "region", "published_at", "score", "reason"]
        art = by_id[item["article_id"]]
        assert item["published_at"].endswith("+07:00")
        assert parse_time(item["published_at"], "t") == art.published_at
        assert (item["title"], item["category"], item["region"], item["url"]) == \
            (art.title, art.category, art.region, art.url)
    assert resp.headers["Cache-Control"] == "no-store"


def test_feed_pages_with_the_engine_cursor(client, creds, engine):
    first = call(client, "GET", "/v1/users/u9/feed?limit=5", creds.site).get_json()
    assert list(first) == ["user_id", "items", "strategy", "model_version", "list_id", "next_cursor"]
    assert first["next_cursor"] == "p5" and len(first["items"]) == 5
    second = call(client, "GET", f"/v1/users/u9/feed?limit=5&cursor={first['next_cursor']}", creds.site).get_json()
    assert second["next_cursor"] is None and len(second["items"]) == 3
    assert not {i["article_id"] for i in first["items"]} & {i["article_id"] for i in second["items"]}
    assert engine.calls[-1] == ("feed", "u9", 5, "p5")


def test_bad_cursor_is_400_but_a_valueerror_without_cursor_is_500(client, creds, engine, monkeypatch):
    assert_error(call(client, "GET", "/v1/users/u1/feed?cursor=garbage", creds.site), 400, "invalid_cursor")
    assert_error(call(client, "GET", "/v1/users/u1/feed?cursor=" + "p" * 600, creds.site), 400, "invalid_cursor")

    def broken(*a, **k):
        raise ValueError("internal numpy shape mismatch")

    monkeypatch.setattr(engine, "feed", broken)
    body = assert_error(call(client, "GET", "/v1/users/u1/feed", creds.site), 500, "internal_error")
    assert "numpy" not in body["message"]
    # ... with a cursor too: only the engine's InvalidCursor is the client's mistake
    body = assert_error(call(client, "GET", "/v1/users/u1/feed?cursor=p20", creds.site), 500, "internal_error")
    assert "numpy" not in body["message"]


@pytest.mark.parametrize("path,value,ok", [
    ("/v1/articles/a1/related", "1", True), ("/v1/articles/a1/related", "50", True),
    ("/v1/articles/a1/related", "0", False), ("/v1/articles/a1/related", "51", False),
    ("/v1/users/u1/feed", "100", True), ("/v1/users/u1/feed", "101", False),
    ("/v1/users/u1/feed", "-1", False), ("/v1/users/u1/feed", "abc", False),
    ("/v1/users/u1/feed", "", False), ("/v1/users/u1/feed", "5.0", False),
    ("/v1/users/u1/feed", "99999999999999999999", False),
])
def test_limit_bounds(client, creds, engine, path, value, ok):
    resp = call(client, "GET", f"{path}?limit={value}", creds.site)
    if ok:
        assert resp.status_code == 200
        assert engine.calls[-1][2] == int(value)
        assert len(resp.get_json()["items"]) == min(int(value), len(ARTICLES) - (1 if "related" in path else 0))
    else:
        assert "limit" in assert_error(resp, 400, "invalid_parameter")["message"]
        assert engine.calls == []


@pytest.mark.parametrize("query", ["limit=5&limit=6", "limit=5&limit=5", "category=Olahraga&category=Ekonomi"])
def test_a_query_parameter_given_twice_is_400_and_neither_is_taken(client, creds, engine, query):
    resp = call(client, "GET", f"/v1/users/u1/feed?{query}", creds.site)
    assert "given more than once: " + query.split("=")[0] in assert_error(resp, 400, "invalid_parameter")["message"]
    assert engine.calls == []
    widget = client.get("/widget/articles/a1/related?limit=3&limit=4")
    assert widget.status_code == 400 and "given more than once: limit" in widget.get_json()["message"]


def test_default_limits(client, creds, engine):
    call(client, "GET", "/v1/articles/a1/related", creds.site)
    call(client, "GET", "/v1/users/u1/feed", creds.site)
    assert [c[2] for c in engine.calls] == [10, 20]


@pytest.mark.parametrize("method,path,body", V1_ROUTES)
def test_unknown_query_parameters_are_400_on_every_v1_route(client, creds, engine, method, path, body):
    sep = "&" if "?" in path else "?"
    resp = call(client, method, f"{path}{sep}limt=5", creds.admin, body)
    assert "limt" in assert_error(resp, 400, "unknown_parameter")["message"]
    assert engine.events == {} and len(engine.articles) == len(ARTICLES)  # nothing happened


@pytest.mark.parametrize("path", ["/v1/users/bad%20id/feed", "/v1/articles/-x/related",
                                  "/v1/users/" + "u" * 129 + "/preferences"])
def test_malformed_path_ids_are_400(client, creds, path):
    assert "must be 1-128" in assert_error(call(client, "GET", path, creds.site), 400, "validation_error")["message"]


def test_unknown_article_is_a_json_404(client, creds):
    body = assert_error(call(client, "GET", "/v1/articles/zzz/related", creds.site), 404, "not_found")
    assert "zzz" in body["message"]


# -- events -------------------------------------------------------------------------------------
def test_events_single_or_batch_and_retries_count_as_duplicates(client, creds, engine):
    one = call(client, "POST", "/v1/events", creds.site, event("u1", "a1", event_id="e-1"))
    assert one.status_code == 200 and one.get_json() == {"accepted": 1, "duplicates": 0}
    batch = {"events": [event("u1", "a1", event_id="e-1"), event("u2", "a3", "read", dwell_seconds=40)]}
    assert call(client, "POST", "/v1/events", creds.site, batch).get_json() == {"accepted": 1, "duplicates": 1}
    assert call(client, "POST", "/v1/events", creds.site, batch).get_json() == {"accepted": 0, "duplicates": 2}
    assert len(engine.events) == 2


def test_an_invalid_event_rejects_the_whole_batch_with_per_index_details(client, creds, engine):
    events = [event(), event(kind="bogus"), event(), event(ts="yesterday"), event(colour="red")]
    body = assert_error(call(client, "POST", "/v1/events", creds.site, {"events": events}), 400, "validation_error")
    assert [d["index"] for d in body["details"]] == [1, 3, 4]
    assert "event must be one of" in body["details"][0]["message"]
    assert "ts" in body["details"][1]["message"]
    assert "colour" in body["details"][2]["message"]
    assert "3 of 5" in body["message"] and "nothing was stored" in body["message"]
    assert engine.events == {}


@pytest.mark.parametrize("payload,fragment", [
    ({"events": []}, "empty"),
    ({"events": [event(event_id=f"e{i}") for i in range(1001)]}, "at most 1000"),
    ({"events": event()}, "must be a list"),
    ({"events": [event()], "extra": 1}, "unknown field"),
    ([event()], "send one event object"),
    ("just a string", "send one event object"),
])
def test_event_batch_shape_errors(client, creds, engine, payload, fragment):
    body = assert_error(call(client, "POST", "/v1/events", creds.site, payload), 400, "validation_error")
    assert fragment in body["message"]
    assert engine.events == {}


def test_exactly_1000_events_are_accepted(client, creds):
    payload = {"events": [event(event_id=f"e{i}") for i in range(1000)]}
    assert call(client, "POST", "/v1/events", creds.site, payload).get_json() == {"accepted": 1000, "duplicates": 0}


def test_store_unavailable_is_503_with_retry_after(client, creds, engine):
    engine.store_down = True
    for resp in (call(client, "POST", "/v1/events", creds.site, event()),
                 call(client, "POST", "/v1/articles", creds.cms, {"articles": [dict(V1_ROUTES[3][2])]})):
        assert_error(resp, 503, "store_unavailable")
        assert resp.headers["Retry-After"] == "1"


# -- bodies -------------------------------------------------------------------------------------
def test_body_over_max_content_length_is_413(client, creds, engine):
    big = json.dumps({"events": [event(event_id="x" * 100)] * 6000})
    assert len(big) > 1 << 20
    resp = client.post("/v1/events", data=big, content_type="application/json", headers={"X-API-Key": creds.site})
    assert "1048576" in assert_error(resp, 413, "payload_too_large")["message"]
    assert engine.events == {}


def test_max_content_length_is_configurable(home, engine):
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "ENGINE": engine, "NEWSREC_TOKEN_SECRET": SECRET,
                      "MAX_CONTENT_LENGTH": 200})
    from recommender.security import KeyStore

    key, _ = KeyStore(home / "keys.json").add("site")
    resp = app.test_client().post("/v1/events", json={"events": [event()] * 3}, headers={"X-API-Key": key})
    assert_error(resp, 413, "payload_too_large")


@pytest.mark.parametrize("data,fragment", [
    ("{", "not valid JSON"),
    ('{"events": [NaN]}', "NaN"),
    ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    (b'{"user_id": "\xff"}', "not valid JSON"),
    ("", "not valid JSON"),
])
def test_malformed_json_is_400(client, creds, data, fragment):
    resp = client.post("/v1/events", data=data, content_type="application/json", headers={"X-API-Key": creds.site})
    assert fragment in assert_error(resp, 400, "malformed_json")["message"]


@pytest.mark.parametrize("method,path", [("POST", "/v1/events"), ("POST", "/v1/articles"),
                                         ("PUT", "/v1/users/u1/preferences")])
def test_non_json_body_is_415(client, creds, method, path):
    resp = client.open(path, method=method, data="user_id=u1", content_type="application/x-www-form-urlencoded",
                       headers={"X-API-Key": creds.admin})
    assert_error(resp, 415, "unsupported_media_type")


def test_articles_batch_is_all_or_nothing(client, creds, engine):
    good = dict(V1_ROUTES[3][2])
    bad = dict(good, article_id="n2", category=None)
    body = assert_error(call(client, "POST", "/v1/articles", creds.cms, {"articles": [good, bad]}), 400,
                        "validation_error")
    assert body["details"] == [{"index": 1, "message": "category is required"}]
    assert "n1" not in engine.articles
    assert call(client, "POST", "/v1/articles", creds.cms, {"articles": [good]}).get_json() == {"accepted": 1}
    assert engine.articles["n1"].title == "Baru"
    too_many = {"articles": [dict(good, article_id=f"m{i}") for i in range(501)]}
    assert "at most 500" in assert_error(call(client, "POST", "/v1/articles", creds.cms, too_many), 400,
                                         "validation_error")["message"]


def test_takedown_and_forget(client, creds, engine):
    assert call(client, "DELETE", "/v1/articles/a2", creds.admin).get_json() == {"article_id": "a2", "taken_down": True}
    assert_error(call(client, "DELETE", "/v1/articles/a2", creds.admin), 404, "not_found")
    call(client, "POST", "/v1/events", creds.site, {"events": [event("u5", "a1"), event("u5", "a3")]})
    resp = call(client, "DELETE", "/v1/users/u5", creds.admin)
    assert resp.get_json() == {"user_id": "u5", "removed": {"events": 2, "preferences": 0, "user": 1}}
    assert engine.events == {}


# -- preferences --------------------------------------------------------------------------------
def test_preferences_round_trip(client, creds):
    assert_error(call(client, "GET", "/v1/users/u1/preferences", creds.site), 404, "not_found")
    put = call(client, "PUT", "/v1/users/u1/preferences", creds.site, {"categories": ["Olahraga", "Ekonomi"],
                                                                       "regions": ["Jabar"]})
    assert put.get_json() == {"user_id": "u1", "categories": ["Olahraga", "Ekonomi"], "regions": ["Jabar"]}
    assert call(client, "GET", "/v1/users/u1/preferences", creds.site).get_json() == put.get_json()


@pytest.mark.parametrize("payload,fragment", [
    ({"categories": ["Olahraga"], "colour": "red"}, "unknown field"),
    ({"user_id": "u2", "categories": []}, "does not match"),
    (["Olahraga"], "send {"),
    ({"categories": ["x" * 100]}, "at most 64"),
])
def test_bad_preferences_are_400(client, creds, payload, fragment):
    resp = call(client, "PUT", "/v1/users/u1/preferences", creds.site, payload)
    assert fragment in assert_error(resp, 400, "validation_error")["message"]


# -- admin --------------------------------------------------------------------------------------
def test_reload_failure_is_409_and_the_old_model_keeps_serving(client, creds, engine):
    ok = call(client, "POST", "/v1/admin/reload", creds.admin)
    assert ok.get_json() == {"model_version": "20261101T000000Z", "previous_version": None}
    bad = assert_error(call(client, "POST", "/v1/admin/reload", creds.admin, {"version": "broken"}), 409,
                       "reload_failed")
    assert "manifest.json is missing" in bad["message"] and "20261101T000000Z keeps serving" in bad["message"]
    related = call(client, "GET", "/v1/articles/a1/related", creds.site).get_json()
    assert related["model_version"] == "20261101T000000Z"


@pytest.mark.parametrize("payload", [{"version": 3}, {"version": ""}, {"versoin": "x"}, ["x"], {"expected": "x"},
                                     {"version": "x", "expected": 3}, {"version": "x", "expected": ""}])
def test_reload_body_is_checked(client, creds, payload):
    assert_error(call(client, "POST", "/v1/admin/reload", creds.admin, payload), 400, "validation_error")


def test_models_lists_bundles_on_disk(client, creds, home):
    body = call(client, "GET", "/v1/admin/models", creds.admin).get_json()
    assert body == {"models": [], "serving": None}


# -- generic errors -----------------------------------------------------------------------------
def test_unknown_route_and_wrong_method_are_json(client, creds):
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    resp = call(client, "PUT", "/v1/events", creds.site, {})
    assert "allowed: POST" in assert_error(resp, 405, "method_not_allowed")["message"]
    assert "POST" in resp.headers["Allow"]


def test_unexpected_error_is_500_without_internals_but_logged(client, creds, engine, caplog):
    engine.explode = True
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        resp = call(client, "GET", "/v1/articles/a1/related", creds.site, headers={"X-Request-ID": "req-42"})
    body = assert_error(resp, 500, "internal_error")
    assert "/srv/models" not in resp.get_data(as_text=True) and "Traceback" not in resp.get_data(as_text=True)
    assert "req-42" in body["message"]
    logged = [r for r in caplog.records if r.name == "api.errors"]
    assert logged and logged[0].exc_info and "secret internal detail" in str(logged[0].exc_info[1])


# -- request ids, access log, metrics --------------------------------------------------------------
def test_request_id_is_echoed_or_generated(client, creds):
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    fresh = [client.get("/healthz").headers["X-Request-ID"] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in fresh) and fresh[0] != fresh[1]
    unsafe = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe)
    err = call(client, "GET", "/v1/articles/a1/related?limit=0", creds.site, headers={"X-Request-ID": "r-9"})
    assert err.status_code == 400 and err.headers["X-Request-ID"] == "r-9"


def test_access_log_is_json_without_keys_or_tokens(client, creds, caplog):
    token = creds.token("u1")
    with caplog.at_level(logging.DEBUG):
        call(client, "GET", "/v1/users/u1/feed?limit=2", creds.site, headers={"X-Request-ID": "log-1"})
        call(client, "GET", "/v1/users/u1/feed", "nr_site_" + "x" * 43)
        client.get("/v1/users/u1/feed", headers={"Authorization": f"Bearer {token}"})
        client.get("/v1/users/u1/feed", headers={"Authorization": f"Bearer {token}x"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "newsrec.access"]
    assert [(l["status"], l["auth"]) for l in lines] == [(200, "site"), (401, "none"), (200, "reader"), (401, "none")]
    first = lines[0]
    assert first["request_id"] == "log-1" and first["method"] == "GET"
    assert first["path"] == "/v1/users/u1/feed" and first["endpoint"] == "/v1/users/<user_id>/feed"
    assert first["duration_ms"] >= 0 and datetime.fromisoformat(first["ts"])
    everything = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in (creds.site, creds.admin, token, token.split(".")[3], "x" * 43):
        assert secret not in everything


def test_metrics_count_requests_fallbacks_and_reload_failures(client, creds, home, engine):
    call(client, "GET", "/v1/articles/a1/related", creds.site)
    call(client, "GET", "/v1/articles/a1/related", creds.site)
    call(client, "GET", "/v1/articles/nope/related", creds.site)
    call(client, "POST", "/v1/admin/reload", creds.admin, {"version": "broken"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'newsrec_http_requests_total{endpoint="/v1/articles/<article_id>/related",method="GET",status="200"} 2.0' in text
    assert 'newsrec_http_requests_total{endpoint="/v1/articles/<article_id>/related",method="GET",status="404"} 1.0' in text
    assert 'newsrec_http_request_duration_seconds_count{endpoint="/v1/articles/<article_id>/related",method="GET",status="200"} 2.0' in text
    assert 'newsrec_fallback_lists_total{strategy="recent"} 2.0' in text
    assert "newsrec_model_reload_failures_total 1.0" in text
    assert 'newsrec_model_info{version="none"} 0.0' in text and "newsrec_degraded 1.0" in text
    assert "newsrec_last_reload_failed 1.0" in text
    # a second app has its own registry: nothing carried over, no duplicate-registration error
    other = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "ENGINE": FakeEngine(),
                        "NEWSREC_TOKEN_SECRET": SECRET})
    fresh = other.test_client().get("/metrics").get_data(as_text=True)
    assert "/v1/articles/<article_id>/related" not in fresh and "newsrec_model_reload_failures_total 0.0" in fresh


# -- probes and app lifecycle -------------------------------------------------------------------
def test_health_and_readiness(client, creds, engine):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    degraded = client.get("/readyz")
    assert degraded.status_code == 200 and degraded.get_json()["status"] == "degraded"
    assert degraded.get_json()["reasons"] == ["no model bundle; serving recent articles"]
    call(client, "POST", "/v1/admin/reload", creds.admin)
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["model_version"] == "20261101T000000Z"
    engine.store_down = True
    down = client.get("/readyz")
    assert down.status_code == 503 and down.get_json()["error"] == "store_unavailable"
    assert client.get("/healthz").status_code == 200


def test_background_thread_starts_only_outside_testing(home):
    for config, expected in (({"TESTING": True}, False), ({}, True), ({"TESTING": True, "START_BACKGROUND": True}, True)):
        fake = FakeEngine()
        create_app({"NEWSREC_HOME": str(home), "ENGINE": fake, "NEWSREC_TOKEN_SECRET": SECRET, **config})
        assert fake.started is expected, config


def test_home_from_config_beats_environment_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSREC_DB", str(tmp_path / "elsewhere.db"))
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(tmp_path / "h"), "ENGINE": FakeEngine(),
                      "NEWSREC_TOKEN_SECRET": SECRET})
    assert app.config["NEWSREC_DB"] == str(tmp_path / "h" / "newsrec.sqlite3")
    assert app.config["NEWSREC_MODELS"] == str(tmp_path / "h" / "models")
    assert "ENGINE" not in app.config


# -- the cheaper request path keeps the same output ------------------------------------------------
def test_json_responses_match_flask_default_provider(app):
    from flask.json.provider import DefaultJSONProvider

    reference = DefaultJSONProvider(app)
    reference.sort_keys, reference.ensure_ascii = False, False
    doc = {"z": 1, "a": [1.5, None, True], "title": "Kabar Jakarta — ñ 日本", "nested": {"b": 2, "a": "x"}}
    with app.app_context():
        ours = app.json.response(doc)
        theirs = reference.response(doc)
    assert ours.get_data() == theirs.get_data() and ours.get_data().endswith(b"\n")
    assert "日本".encode() in ours.get_data() and b'{"z":1,"a":' in ours.get_data()
    assert ours.mimetype == theirs.mimetype == "application/json"


def test_list_times_and_scores_render_as_before(app):
    from recommender.domain import format_time
    from recommender.serving.results import RankedItem

    from api.routes.common import item_json, memo_format_time

    memo = memo_format_time()
    item = RankedItem("a1", "t", None, "Nasional", None, 1_700_000_000.5, float("nan"), "r")
    assert item_json(item, memo) == item_json(item) and item_json(item)["score"] is None
    assert memo(1_700_000_000.5) == format_time(1_700_000_000.5) == "2023-11-15T05:13:20+07:00"
    assert item_json(RankedItem("a1", "t", None, "Nasional", None, 1.0, 0.12345678, "r"))["score"] == 0.123457


def test_absent_repeated_and_present_query_parameters(client, creds, engine):
    assert call(client, "GET", "/v1/articles/a1/related", creds.site).status_code == 200
    two = call(client, "GET", "/v1/articles/a1/related?limit=2&limit=40", creds.site)
    assert_error(two, 400, "invalid_parameter")  # which one would count is a guess: neither
    assert call(client, "GET", "/v1/articles/a1/related?limit=", creds.site).status_code == 400


def test_metric_children_are_reused_and_still_count(app):
    metrics = app.extensions["newsrec.metrics"]
    for _ in range(3):
        metrics.observe_request("/x", "GET", 200, 0.001)
        metrics.observe_list("related", "fallback_recent", "v1")
        metrics.observe_list("related", "als", "v1")
    metrics.observe_list("related", "als", None)  # no model: a fallback whatever the strategy
    text = metrics.render()[0].decode()
    assert 'newsrec_http_requests_total{endpoint="/x",method="GET",status="200"} 3.0' in text
    assert 'newsrec_lists_served_total{endpoint="related",strategy="als"} 4.0' in text
    assert 'newsrec_fallback_lists_total{strategy="fallback_recent"} 3.0' in text
    assert 'newsrec_fallback_lists_total{strategy="als"} 1.0' in text


def test_raw_json_is_written_as_is_and_cannot_be_forged(app):
    from api.jsonio import RawJSON

    provider = app.json
    with app.app_context():
        forged = provider._mark + "0\x00"  # even the placeholder's own text stays a string
        body = provider.encode({"a": forged, "items": RawJSON('[{"x":1}]'), "b": "\x00", "c": [RawJSON("2")]})
        assert json.loads(body) == {"a": forged, "items": [{"x": 1}], "b": "\x00", "c": [2]}
        provider.compact = False  # the indented (debug) output parses the text and writes it again
        try:
            indented = provider.response({"items": RawJSON('[{"x":1}]')}).get_data(as_text=True)
        finally:
            provider.compact = None
        assert json.loads(indented) == {"items": [{"x": 1}]} and "\n  " in indented
