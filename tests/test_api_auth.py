"""Who may call what: every endpoint against every kind of credential."""

from __future__ import annotations

import base64

import pytest

from recommender.domain import Preferences
from recommender.security import KEYS_FILE, KeyStore
from tests.api_fixtures import ARTICLES, app, client, creds, engine, event, home  # noqa: F401

NEW_ARTICLE = {"article_id": "n1", "title": "Baru", "category": "Ekonomi", "published_at": 1_793_500_000}

# (method, path, body, access): access is "admin", "editor" (takedowns), "cms" (article writes), "reader"
# (site keys and a token for u1) or "open"
ENDPOINTS = [
    ("GET", "/v1/articles/a1/related?user_id=u1", None, "reader"),
    ("GET", "/v1/users/u1/feed", None, "reader"),
    ("POST", "/v1/events", {"events": [event("u1", "a1"), event("u1", "a2", "read", dwell_seconds=30)]}, "reader"),
    ("POST", "/v1/articles", NEW_ARTICLE, "cms"),
    ("DELETE", "/v1/articles/a1", None, "editor"),
    ("GET", "/v1/users/u1/preferences", None, "reader"),
    ("PUT", "/v1/users/u1/preferences", {"categories": ["Olahraga"]}, "reader"),
    ("DELETE", "/v1/users/u1", None, "admin"),
    ("POST", "/v1/admin/reload", None, "admin"),
    ("GET", "/v1/admin/models", None, "admin"),
    ("GET", "/healthz", None, "open"),
    ("GET", "/readyz", None, "open"),
    ("GET", "/metrics", None, "open"),
    ("GET", "/openapi.json", None, "open"),
]

CREDENTIALS = ["none", "wrong_key", "garbage_key", "site", "cms", "editor", "admin", "token_self", "token_other", "token_expired",
               "token_tampered", "token_garbage", "basic_auth", "wrong_key_with_good_token"]


def headers_for(kind: str, creds) -> dict:
    good = creds.token("u1")
    if kind == "none":
        return {}
    if kind == "wrong_key":
        return {"X-API-Key": "nr_site_" + "A" * 43}
    if kind == "garbage_key":
        return {"X-API-Key": "letmein"}
    if kind in KEY_ACCESS:
        return {"X-API-Key": getattr(creds, kind)}
    if kind == "token_self":
        return {"Authorization": f"Bearer {good}"}
    if kind == "token_other":
        return {"Authorization": f"Bearer {creds.token('u2')}"}
    if kind == "token_expired":
        return {"Authorization": f"Bearer {creds.tokens.issue('u1', 60, now=1_700_000_000)}"}
    if kind == "token_tampered":
        v, _, issued, expiry, sig = good.split(".")
        other = base64.urlsafe_b64encode(b"u2").rstrip(b"=").decode()
        return {"Authorization": f"Bearer {v}.{other}.{issued}.{expiry}.{sig}"}
    if kind == "token_garbage":
        return {"Authorization": "Bearer not-a-token"}
    if kind == "basic_auth":
        return {"Authorization": "Basic dTE6cGFzcw=="}
    if kind == "wrong_key_with_good_token":
        return {"X-API-Key": "nr_admin_" + "B" * 43, "Authorization": f"Bearer {good}"}
    raise AssertionError(kind)


# what each key role may call (admin: everything)
KEY_ACCESS = {"site": {"reader"}, "cms": {"cms"}, "editor": {"cms", "editor"},
              "admin": {"reader", "cms", "editor", "admin"}}


def expected_status(access: str, kind: str) -> int:
    if access == "open":
        return 200
    if kind in ("none", "wrong_key", "garbage_key", "token_expired", "token_tampered", "token_garbage",
                "basic_auth", "wrong_key_with_good_token"):
        return 401
    if kind in KEY_ACCESS:
        return 200 if access in KEY_ACCESS[kind] else 403
    if kind == "token_self":
        return 200 if access == "reader" else 403
    return 403  # a token for another reader


@pytest.mark.parametrize("kind", CREDENTIALS)
@pytest.mark.parametrize("method,path,body,access", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_auth_matrix(client, creds, engine, method, path, body, access, kind):
    engine.prefs["u1"] = Preferences("u1", ("Ekonomi",), ())
    resp = client.open(path, method=method, json=body, headers=headers_for(kind, creds))
    want = expected_status(access, kind)
    assert resp.status_code == want, resp.get_data(as_text=True)
    if want in (401, 403):
        err = resp.get_json()
        assert err["error"] == ("unauthorized" if want == 401 else "forbidden") and err["message"]
        if want == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        # a refused request changed nothing
        assert engine.events == {} and len(engine.articles) == len(ARTICLES)
        assert engine.prefs == {"u1": Preferences("u1", ("Ekonomi",), ())} and engine.model_version is None
        assert not [c for c in engine.calls if c[0] in ("related", "feed")]


def test_reader_token_cannot_name_another_reader_or_post_their_events(client, creds, engine):
    token = {"Authorization": f"Bearer {creds.token('u1')}"}
    assert client.get("/v1/articles/a1/related?user_id=u2", headers=token).status_code == 403
    resp = client.post("/v1/events", json={"events": [event("u1"), event("u2", "a3")]}, headers=token)
    assert resp.status_code == 403 and "[1]" in resp.get_json()["message"]
    assert engine.events == {}
    assert client.put("/v1/users/u2/preferences", json={"categories": []}, headers=token).status_code == 403
    # without user_id, a token's related list is personalized for its own reader
    assert client.get("/v1/articles/a1/related", headers=token).status_code == 200
    assert engine.calls[-1] == ("related", "a1", 10, "u1")


def test_keys_added_or_revoked_while_running_take_effect(client, creds, home):
    keys = KeyStore(home / KEYS_FILE)
    late, record = keys.add("admin", "late")
    assert client.get("/v1/admin/models", headers={"X-API-Key": late}).status_code == 200
    keys.revoke(record.key_id)
    assert client.get("/v1/admin/models", headers={"X-API-Key": late}).status_code == 401
    assert client.get("/v1/admin/models", headers={"X-API-Key": creds.admin}).status_code == 200


def test_auth_is_checked_before_the_body_is_read(client, creds):
    resp = client.post("/v1/events", data="{not json", content_type="application/json")
    assert resp.status_code == 401
    resp = client.post("/v1/events", data="x" * (2 << 20), content_type="application/json",
                       headers={"X-API-Key": creds.site})
    assert resp.status_code == 413


def test_site_keys_may_not_write_articles_and_are_told_which_key_can(client, creds, engine):
    resp = client.post("/v1/articles", json=NEW_ARTICLE, headers={"X-API-Key": creds.site})
    assert resp.status_code == 403
    body = resp.get_json()
    assert body["error"] == "forbidden" and "cms" in body["message"] and "newsrec keys add --role cms" in body["message"]
    assert "n1" not in engine.articles
    assert client.post("/v1/articles", json=NEW_ARTICLE, headers={"X-API-Key": creds.cms}).status_code == 200
    # restoring a taken-down article is publishing it again
    assert client.delete("/v1/articles/n1", headers={"X-API-Key": creds.cms}).status_code == 403
    assert client.delete("/v1/articles/n1", headers={"X-API-Key": creds.editor}).status_code == 200
    assert client.post("/v1/articles", json=NEW_ARTICLE, headers={"X-API-Key": creds.editor}).status_code == 200
    assert "n1" in engine.articles


def test_cli_adds_cms_and_editor_keys(tmp_path, monkeypatch, capsys):
    from recommender.security import looks_like_key
    from training.cli import main as cli_main

    from api.auth import SharedKeys
    from recommender.store import SQLiteStore

    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path))
    monkeypatch.delenv("NEWSREC_DB", raising=False)
    for role in ("cms", "editor"):
        assert cli_main(["keys", "add", "--role", role, "--env-file", str(tmp_path / "env")]) == 0
        raw = capsys.readouterr().out.strip()
        assert raw.startswith(f"nr_{role}_") and looks_like_key(raw)
        assert SharedKeys(SQLiteStore(tmp_path / "newsrec.sqlite3")).authenticate(raw).role == role  # in the database
        assert f"NEWSREC_{role.upper()}_KEY={raw}" in (tmp_path / "env").read_text()
