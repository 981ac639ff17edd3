"""Hostile input found in a trial, each answered as JSON with the right status, nothing stored.

In process, against the fake engine of ``tests/api_fixtures.py`` (the HTTP shell decides these);
what only a real gunicorn shows (chunked bodies, gunicorn's own errors) is in
``tests/test_hostile_http.py``.
"""

from __future__ import annotations

import json

import pytest

from recommender.domain import Article, Interaction, Preferences, ValidationError, check_id
from recommender.datasets.ingest import import_articles, import_events, import_preferences
from recommender.security import KEYS_FILE, KeyStore, SecurityError, looks_like_key
from tests.api_fixtures import ARTICLES, app, client, creds, engine, event, home  # noqa: F401

ARTICLE = {"article_id": "n1", "title": "Harga cabai naik", "body": "Isi berita.", "category": "Ekonomi",
           "published_at": "2026-11-02T07:00:00+07:00", "url": "https://portal.example/n1"}


def assert_json_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) <= {"error", "message", "details"} and body["error"] == code and body["message"], body
    return body


# -- ids: a trailing newline is not part of an id ------------------------------------------------
@pytest.mark.parametrize("value", ["a1\n", "a1\r\n", "\na1", "a1\n\n", "a 1", "a1\t"])
def test_ids_with_line_breaks_or_blanks_are_refused(value):
    with pytest.raises(ValidationError):
        check_id(value, "article_id")


def test_an_event_whose_id_ends_in_a_newline_is_400_and_stores_nothing(client, creds, engine):
    for field in ("user_id", "article_id", "event_id", "list_id"):
        resp = client.post("/v1/events", json=event(**{field: "a1\n"}), headers={"X-API-Key": creds.site})
        assert_json_error(resp, 400, "validation_error")
    assert engine.events == {}


def test_path_ids_and_query_numbers_with_a_newline_are_400(client, creds, engine):
    site = {"X-API-Key": creds.site}
    assert_json_error(client.get("/v1/users/u1%0A/feed", headers=site), 400, "validation_error")
    assert_json_error(client.get("/v1/articles/a1/related?user_id=u1%0A", headers=site), 400, "validation_error")
    assert_json_error(client.get("/v1/users/u1/feed?limit=5%0A", headers=site), 400, "invalid_parameter")
    assert not [c for c in engine.calls if c[0] in ("related", "feed")]


def test_key_shapes_and_key_names_with_a_newline_are_refused(tmp_path):
    keys = KeyStore(tmp_path / KEYS_FILE)
    raw, _ = keys.add("site")
    assert looks_like_key(raw) and not looks_like_key(raw + "\n")
    with pytest.raises(SecurityError):
        keys.add("site", "portal\n")


# -- types: booleans are JSON booleans, integers JSON integers -----------------------------------
@pytest.mark.parametrize("field,value", [
    ("history", "false"), ("history", "true"), ("history", 0), ("history", 1), ("history", "no"), ("history", []),
    ("position", "3"), ("position", True), ("position", False), ("position", 3.0), ("position", 2.5),
    ("dwell_seconds", "30"), ("dwell_seconds", True),
])
def test_api_refuses_coerced_types(client, creds, engine, field, value):
    resp = client.post("/v1/events", json=event(**{field: value}), headers={"X-API-Key": creds.site})
    body = assert_json_error(resp, 400, "validation_error")
    assert field in body["details"][0]["message"]
    assert engine.events == {}


def test_api_accepts_the_json_types(client, creds, engine):
    resp = client.post("/v1/events", json=event(history=False, position=3, dwell_seconds=30, list_id="l1"),
                       headers={"X-API-Key": creds.site})
    assert resp.get_json() == {"accepted": 1, "duplicates": 0}
    stored = next(iter(engine.events.values()))
    assert (stored.history, stored.position, stored.dwell_seconds) == (False, 3, 30.0)


@pytest.mark.parametrize("text,expected", [("false", False), ("0", False), ("true", True), ("1", True), (None, False)])
def test_text_formats_spell_booleans_as_text(text, expected):
    """CSV has no types: the importer reads booleans from their usual spellings, never from truthiness."""
    record = dict(event(), history=text, position="3")
    parsed = Interaction.from_dict(record)
    assert parsed.history is expected and parsed.position == 3


def test_text_formats_refuse_unknown_booleans_and_fractional_positions():
    with pytest.raises(ValidationError, match="history"):
        Interaction.from_dict(dict(event(), history="maybe"))
    with pytest.raises(ValidationError, match="position"):
        Interaction.from_dict(dict(event(), position="2.5"))


# -- ids are JSON strings of 1-128 characters; labels are JSON arrays -----------------------------
@pytest.mark.parametrize("field,value,fragment", [
    ("list_id", 5, "must be a string"), ("list_id", "", "is empty"), ("list_id", True, "must be a string"),
    ("event_id", "", "is empty"), ("event_id", 7, "must be a string"), ("event_id", ["e1"], "must be a string"),
    ("user_id", 5, "must be a string"), ("article_id", 5, "must be a string"), ("article_id", 5.0, "must be a string"),
    ("user_id", "", "1-128 characters"), ("article_id", {"id": "a1"}, "must be a string"),
])
def test_api_refuses_ids_that_are_not_strings_or_are_empty(client, creds, engine, field, value, fragment):
    resp = client.post("/v1/events", json=event(**{field: value}), headers={"X-API-Key": creds.site})
    body = assert_json_error(resp, 400, "validation_error")
    assert body["message"].startswith("1 of 1 events are invalid") and "nothing was stored" in body["message"]
    [detail] = body["details"]
    assert detail["index"] == 0 and detail["message"].startswith(field) and fragment in detail["message"], detail
    assert engine.events == {}


def test_a_batch_lists_each_event_with_a_bad_id_by_index_and_stores_none(client, creds, engine):
    batch = {"events": [event(event_id="e1"), event(list_id=5), event(event_id=""), event(event_id="e4")]}
    body = assert_json_error(client.post("/v1/events", json=batch, headers={"X-API-Key": creds.site}),
                             400, "validation_error")
    assert body["message"].startswith("2 of 4 events are invalid")
    assert [(d["index"], d["message"].split()[0]) for d in body["details"]] == [(1, "list_id"), (2, "event_id")]
    assert engine.events == {}


def test_api_accepts_string_ids_and_null_or_left_out_optional_ids(client, creds, engine):
    batch = {"events": [event(list_id="5", position=0, event_id="7"), event("u2", event_id=None, list_id=None),
                        event("u3")]}
    resp = client.post("/v1/events", json=batch, headers={"X-API-Key": creds.site})
    assert resp.get_json() == {"accepted": 3, "duplicates": 0}
    stored = {e.user_id: e for e in engine.events.values()}
    assert (stored["u1"].list_id, stored["u1"].event_id, stored["u1"].position) == ("5", "7", 0)
    assert stored["u2"].list_id is stored["u2"].event_id is stored["u3"].event_id is None


@pytest.mark.parametrize("payload,field", [
    ({"categories": "Olahraga"}, "categories"), ({"regions": "Jabar"}, "regions"),
    ({"categories": "Olahraga,Ekonomi"}, "categories"), ({"categories": ""}, "categories"),
    ({"regions": ""}, "regions"), ({"categories": 5}, "categories"), ({"regions": {"Jabar": True}}, "regions"),
    ({"categories": ["Olahraga", 5]}, "categories"), ({"regions": [["Jabar"]]}, "regions"),
    ({"categories": ["Olahraga"], "regions": "Jabar"}, "regions"), ({"user_id": 5}, "user_id"),
])
def test_api_refuses_preferences_that_are_not_lists_of_strings(client, creds, engine, payload, field):
    resp = client.put("/v1/users/u1/preferences", json=payload, headers={"X-API-Key": creds.site})
    body = assert_json_error(resp, 400, "validation_error")
    assert body["message"].startswith(field), body
    assert engine.prefs == {}


def test_preference_strings_name_the_fix(client, creds):
    resp = client.put("/v1/users/u1/preferences", json={"categories": "Olahraga"}, headers={"X-API-Key": creds.site})
    assert assert_json_error(resp, 400, "validation_error")["message"] == (
        "categories must be a list of strings (a JSON array, e.g. [\"Olahraga\"]); got 'Olahraga'")
    resp = client.put("/v1/users/u1/preferences", json={"categories": ["Olahraga", 5]}, headers={"X-API-Key": creds.site})
    assert assert_json_error(resp, 400, "validation_error")["message"] == (
        "categories: each entry must be a string, as in [\"Olahraga\"]; got 5")


@pytest.mark.parametrize("payload,categories,regions", [
    ({"categories": ["Olahraga"], "regions": ["Jabar"]}, ["Olahraga"], ["Jabar"]),
    ({"categories": ["Olahraga", None, " ", "Olahraga"], "regions": []}, ["Olahraga"], []),  # blanks, nulls, repeats
    ({"categories": None, "regions": None}, [], []),
    ({"categories": ["Ekonomi"]}, ["Ekonomi"], []),
    ({"user_id": "u1", "regions": ["Jabar"]}, [], ["Jabar"]),
    ({}, [], []),
])
def test_api_accepts_preferences_as_lists_or_null(client, creds, engine, payload, categories, regions):
    resp = client.put("/v1/users/u1/preferences", json=payload, headers={"X-API-Key": creds.site})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"user_id": "u1", "categories": categories, "regions": regions}
    assert engine.prefs["u1"].categories == tuple(categories)


@pytest.mark.parametrize("field,value", [("tags", "persib"), ("tags", ""), ("tags", 3), ("article_id", 17)])
def test_api_refuses_article_tags_and_ids_of_the_wrong_type(client, creds, engine, field, value):
    resp = client.post("/v1/articles", json=dict(ARTICLE, **{field: value}), headers={"X-API-Key": creds.admin})
    body = assert_json_error(resp, 400, "validation_error")
    assert body["details"][0]["index"] == 0 and body["details"][0]["message"].startswith(field), body
    assert not engine.articles.get("n1") and "17" not in engine.articles


def test_api_accepts_article_tags_as_a_list(client, creds, engine):
    resp = client.post("/v1/articles", json=dict(ARTICLE, tags=["persib", None, "liga"]),
                       headers={"X-API-Key": creds.admin})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert engine.articles["n1"].tags == ("persib", "liga")


def test_importers_keep_reading_untyped_ids_and_separated_labels(store, tmp_path):
    """Files are not the API: a CSV cell is text and an empty cell is no value, and JSON Lines
    exports may write numeric ids; the importers keep accepting those, bad rows by line number."""
    record = event(list_id=5, event_id="", position=2)
    parsed = Interaction.from_dict(record)
    assert (parsed.list_id, parsed.event_id, parsed.position) == ("5", None, 2)
    with pytest.raises(ValidationError, match="list_id"):
        Interaction.from_dict(dict(record, event_id=None), strict=True)
    with pytest.raises(ValidationError, match="event_id"):
        Interaction.from_dict(dict(record, list_id="5"), strict=True)
    assert Preferences.from_dict({"user_id": 9, "categories": "Olahraga|Ekonomi", "regions": ""}).to_dict() == {
        "user_id": "9", "categories": ["Olahraga", "Ekonomi"], "regions": []}
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in [
        event(list_id=5, event_id=""), event("u2", event_id=7), event("u3", list_id=["x"])]), encoding="utf-8")
    report = import_events(store, events)
    assert (report.accepted, report.rejected) == (2, 1) and report.errors[0][0] == 3
    assert "list_id" in report.errors[0][1]
    prefs = tmp_path / "prefs.csv"
    prefs.write_text("user_id,categories,regions\nu1,Olahraga|Ekonomi,\nu2,Olahraga,Jabar;Jateng\n", encoding="utf-8")
    assert import_preferences(store, prefs).accepted == 2
    assert store.get_preferences("u1").categories == ("Olahraga", "Ekonomi")
    assert store.get_preferences("u2").regions == ("Jabar", "Jateng")


# -- text: no control characters, only http(s) links ---------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("title", "Judul\x00"), ("title", "Judul\nbaris dua"), ("title", "Judul\ttab"), ("title", "\x1b[31mmerah"),
    ("title", "Judul\x85"), ("title", "Judul\x7f"), ("title", "\ud800"),
    ("body", "Isi\x00"), ("body", "Isi\x0b"), ("body", "Isi\x1b[2J"), ("body", "Isi\x9b"), ("body", "Isi\udfff"),
    ("category", "Olah\nraga"), ("region", "Ja\tbar"), ("tags", ["persib\n"]), ("language", "i\rd"),
    ("url", "javascript:alert(1)"), ("url", "JavaScript:alert(1)"), ("url", "ftp://portal.example/x"),
    ("url", "data:text/html,<b>x</b>"), ("url", "//portal.example/x"), ("url", "/relative/path"),
    ("url", "https://"), ("url", "https:///no-host"), ("url", "https://portal.example/a b"),
    ("url", "https://portal.example/\nx"), ("url", " https://portal.example/x"), ("url", 12),
])
def test_api_refuses_control_characters_and_non_web_links(client, creds, engine, field, value):
    raw = json.dumps(dict(ARTICLE, **{field: value}))  # ASCII escapes: a lone surrogate travels as \\ud800
    resp = client.post("/v1/articles", data=raw, content_type="application/json", headers={"X-API-Key": creds.admin})
    body = assert_json_error(resp, 400, "validation_error")
    assert field in body["details"][0]["message"], body
    assert "n1" not in engine.articles


def test_body_keeps_line_breaks_and_tabs(client, creds, engine):
    article = dict(ARTICLE, body="Paragraf satu.\n\n\tParagraf dua.\r\nParagraf tiga.\rAkhir.",
                   url="HTTP://Portal.example/n1?x=1#y")
    assert client.post("/v1/articles", json=article, headers={"X-API-Key": creds.admin}).status_code == 200
    stored = engine.articles["n1"]
    assert stored.body == "Paragraf satu.\n\n\tParagraf dua.\nParagraf tiga.\nAkhir."  # CR LF and CR as LF
    assert stored.url == "HTTP://Portal.example/n1?x=1#y"


def test_text_and_link_rules_are_the_same_for_the_importer(store, tmp_path):
    rows = [dict(ARTICLE, article_id="ok1"), dict(ARTICLE, article_id="bad1", title="Judul\x07"),
            dict(ARTICLE, article_id="bad2", url="javascript:alert(1)"), dict(ARTICLE, article_id="bad3", body="\x00")]
    path = tmp_path / "articles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = import_articles(store, path)
    assert (report.accepted, report.rejected) == (1, 3)
    reasons = dict(report.errors)
    assert "title" in reasons[2] and "url" in reasons[3] and "body" in reasons[4]
    assert set(store.get_articles(["ok1", "bad1", "bad2", "bad3"])) == {"ok1"}
    events = tmp_path / "events.csv"
    events.write_text("user_id,article_id,event,ts,history,position\n"
                      "u1,ok1,click,2026-11-01T10:00:00+07:00,false,3\n"
                      "u1,ok1,read,2026-11-01T10:01:00+07:00,perhaps,4\n", encoding="utf-8")
    report = import_events(store, events)
    assert (report.accepted, report.rejected) == (1, 1) and "history" in report.errors[0][1]
    assert Article.from_dict(rows[0], strict=True).url == ARTICLE["url"]


# -- credentials that are not ASCII ----------------------------------------------------------------
def test_non_ascii_bearer_tokens_and_api_keys_are_401(client, creds, engine):
    good = creds.token("u1")
    v, user, issued, expiry, sig = good.split(".")
    for header in (f"Bearer v1.\xff\xfe.{expiry}.{sig}", f"Bearer v2.\xff\xfe.{issued}.{expiry}.{sig}", f"Bearer {good}\xff",
                   f"Bearer {v}.{user}.{issued}.{expiry}.{sig[:-1]}\xe9",
                   f"Bearer \xa0{good}", f"Bearer {good}\xa0", "Bearer \xff"):
        resp = client.get("/v1/users/u1/feed", headers={"Authorization": header})
        assert_json_error(resp, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    for key in (creds.site + "\xff", creds.site + "\xa0", "\xa0" + creds.site, "nr_site_\xff\xfe" + "a" * 30, "\xff"):
        resp = client.get("/v1/users/u1/feed", headers={"X-API-Key": key})
        assert_json_error(resp, 401, "unauthorized")
    assert not [c for c in engine.calls if c[0] == "feed"]
    assert client.get("/v1/users/u1/feed", headers={"Authorization": f"Bearer {good}"}).status_code == 200
