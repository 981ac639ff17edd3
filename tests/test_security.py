"""API keys and reader tokens: storage never holds a key, tokens follow the documented format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time

import pytest

from api.auth import SharedKeys
from recommender.security import (
    KeyStore,
    ReaderTokens,
    SecurityError,
    TokenError,
    load_token_secret,
    looks_like_key,
)
from recommender.store import SQLiteStore
from training.cli import main as cli_main

SECRET = b"unit-test-secret-0123456789"
NOW = 1_793_466_000


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_like_a_site_backend(secret: bytes, user_id: str, expiry: int, issued: float | None = None,
                             version: str = "v2") -> str:
    """The recipe from the module docstring, written independently of ReaderTokens."""
    if version == "v1":
        body = f"v1.{b64u(user_id.encode('utf-8'))}.{expiry}"
    else:
        body = f"v2.{b64u(user_id.encode('utf-8'))}.{int(issued * 1000)}.{expiry}"
    return body + "." + b64u(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- keys ---------------------------------------------------------------------------------------
def test_added_key_is_stored_only_as_its_hash(tmp_path):
    keys = KeyStore(tmp_path / "keys.json")
    raw, record = keys.add("site", "portal-web")
    text = (tmp_path / "keys.json").read_text()
    assert raw.startswith("nr_site_") and looks_like_key(raw)
    assert raw not in text and raw.split("_", 2)[2] not in text
    stored = json.loads(text)["keys"]
    assert stored == [{"key_id": record.key_id, "role": "site", "name": "portal-web", "created": record.created,
                       "sha256": hashlib.sha256(raw.encode()).hexdigest()}]
    assert mode(tmp_path / "keys.json") == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".keys.json.")]  # no temp file left


def test_keys_authenticate_by_role_and_reject_near_misses(tmp_path):
    keys = KeyStore(tmp_path / "keys.json")
    site, _ = keys.add("site")
    admin, _ = keys.add("admin")
    assert keys.authenticate(site).role == "site"
    assert keys.authenticate(admin).role == "admin"
    assert keys.authenticate(site[:-1] + ("A" if site[-1] != "A" else "B")) is None
    assert keys.authenticate(site.replace("nr_site_", "nr_admin_")) is None
    assert len({k.key_id for k in keys.keys()}) == 2


def test_key_file_changes_are_seen_without_a_new_keystore(tmp_path):
    served = KeyStore(tmp_path / "keys.json")  # what the running API holds
    assert served.keys() == ()
    cli_side = KeyStore(tmp_path / "keys.json")
    raw, record = cli_side.add("admin")
    assert served.authenticate(raw).key_id == record.key_id
    assert cli_side.revoke(record.key_id) == record
    assert served.authenticate(raw) is None


def test_revoke_by_name_needs_a_unique_name(tmp_path):
    keys = KeyStore(tmp_path / "keys.json")
    a, _ = keys.add("site", "edge")
    b, rec_b = keys.add("site", "edge")
    with pytest.raises(SecurityError, match="revoke by key_id"):
        keys.revoke("edge")
    assert keys.revoke("nope") is None
    keys.revoke(rec_b.key_id)
    assert keys.authenticate(b) is None and keys.authenticate(a) is not None
    assert keys.revoke("edge").name == "edge"
    assert keys.keys() == ()


def test_corrupt_key_file_keeps_the_last_good_keys(tmp_path):
    keys = KeyStore(tmp_path / "keys.json")
    raw, _ = keys.add("site")
    assert keys.authenticate(raw) is not None
    (tmp_path / "keys.json").write_text("{half written")
    assert keys.authenticate(raw) is not None  # a half-edited file must not lock every client out
    with pytest.raises(SecurityError, match="unreadable"):
        KeyStore(tmp_path / "keys.json").keys()  # but a fresh start refuses it loudly


def test_bad_role_or_name_is_refused(tmp_path):
    keys = KeyStore(tmp_path / "keys.json")
    with pytest.raises(SecurityError, match="role"):
        keys.add("root")
    with pytest.raises(SecurityError, match="name"):
        keys.add("site", "bad\nname")


# -- tokens -------------------------------------------------------------------------------------
def test_token_matches_the_documented_format():
    tokens = ReaderTokens(SECRET)
    token = tokens.issue("pembaca-42", ttl=3600, now=NOW)
    assert token == mint_like_a_site_backend(SECRET, "pembaca-42", NOW + 3600, issued=NOW)
    assert tokens.verify(token, now=NOW + 3599) == "pembaca-42"
    assert tokens.claims(token, now=NOW) == ("pembaca-42", NOW)
    # version 1 tokens (no issue time) minted by older site backends keep working
    old = mint_like_a_site_backend(SECRET, "pembaca-42", NOW + 3600, version="v1")
    assert tokens.claims(old, now=NOW) == ("pembaca-42", None)


def test_a_forget_refuses_tokens_issued_before_it():
    forgotten = NOW + 100.0
    assert ReaderTokens.issued_before_forget(NOW, forgotten)
    assert not ReaderTokens.issued_before_forget(forgotten + 0.001, forgotten)  # issued after: fine
    assert not ReaderTokens.issued_before_forget(NOW, None)
    # a version 1 token cannot say when it was issued: refused until every such token has expired
    assert ReaderTokens.issued_before_forget(None, forgotten, now=forgotten + 365 * 86_400)
    assert not ReaderTokens.issued_before_forget(None, forgotten, now=forgotten + 367 * 86_400)


def test_expired_tampered_and_foreign_tokens_are_refused():
    tokens = ReaderTokens(SECRET)
    token = tokens.issue("u1", ttl=60, now=NOW)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token, now=NOW + 60)
    version, user, issued, expiry, sig = token.split(".")
    forged_user = ".".join([version, b64u(b"u2"), issued, expiry, sig])
    longer = ".".join([version, user, issued, str(int(expiry) + 10_000), sig])
    later = ".".join([version, user, str(int(issued) + 10_000), expiry, sig])
    flipped = ".".join([version, user, issued, expiry, ("A" if sig[0] != "A" else "B") + sig[1:]])
    other_secret = ReaderTokens(b"another-secret-of-enough-bytes").issue("u1", ttl=60, now=NOW)
    for bad in (forged_user, longer, later, flipped, other_secret):
        with pytest.raises(TokenError, match="signature"):
            tokens.verify(bad, now=NOW)
    for malformed in ("", "v1.x.y", "v1." + token[3:], "v3." + token[3:], token + ".extra", "v1...",
                      "v1.dTE.abc.%%%", "v2.dTE.1.abc.%%%", "v2.\u00ff.1.2.abc"):
        with pytest.raises(TokenError):
            tokens.verify(malformed, now=NOW)


def test_signed_but_invalid_user_or_expiry_is_refused():
    tokens = ReaderTokens(SECRET)
    bad_user = mint_like_a_site_backend(SECRET, "not an id!", NOW + 60, issued=NOW)
    with pytest.raises(TokenError, match="user"):
        tokens.verify(bad_user, now=NOW)
    body = f"v1.{b64u(b'u1')}.-5"
    negative = body + "." + b64u(hmac.new(SECRET, body.encode(), hashlib.sha256).digest())
    with pytest.raises(TokenError, match="times"):
        tokens.verify(negative, now=NOW)


@pytest.mark.parametrize("ttl", [0, -1, 366 * 24 * 3600 + 1, 1.5, True])
def test_issue_refuses_bad_ttl(ttl):
    with pytest.raises(ValueError, match="ttl"):
        ReaderTokens(SECRET).issue("u1", ttl=ttl, now=NOW)


def test_token_secret_is_created_once_private_and_env_wins(tmp_path):
    first = load_token_secret(tmp_path)
    assert len(first) >= 32 and mode(tmp_path / "token_secret") == 0o600
    assert load_token_secret(tmp_path) == first
    assert load_token_secret(tmp_path, {"NEWSREC_TOKEN_SECRET": "x" * 20}) == b"x" * 20
    with pytest.raises(SecurityError, match="at least 16"):
        load_token_secret(tmp_path, {"NEWSREC_TOKEN_SECRET": "short"})
    assert [p.name for p in tmp_path.iterdir()] == ["token_secret"]  # no temp files left


# -- CLI ----------------------------------------------------------------------------------------
@pytest.fixture
def cli_home(tmp_path, monkeypatch):
    for name in ("NEWSREC_DB", "NEWSREC_MODELS", "NEWSREC_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path))
    return tmp_path


def test_cli_keys_add_prints_the_key_once_and_updates_an_env_file(cli_home, capsys):
    env_file = cli_home / "demo.env"
    env_file.write_text("OTHER=1\nNEWSREC_SITE_KEY=old\n")
    assert cli_main(["keys", "add", "--role", "site", "--name", "demo",
                     "--env-file", str(env_file), "--env-name", "NEWSREC_SITE_KEY"]) == 0
    out, err = capsys.readouterr()
    raw = out.strip()
    assert looks_like_key(raw) and raw not in err
    assert env_file.read_text() == f"OTHER=1\nNEWSREC_SITE_KEY={raw}\n"
    assert mode(env_file) == 0o600
    # stored in the database every replica shares (its hash only), not in this host's keys.json
    stored = SQLiteStore(cli_home / "newsrec.sqlite3").api_keys()
    assert [(role, name) for _, role, name, _, _ in stored] == [("site", "demo")] and raw not in str(stored)
    assert not (cli_home / "keys.json").exists()

    assert cli_main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["role"], k["name"]) for k in listed] == [("site", "demo")]
    assert "sha256" not in listed[0]

    assert cli_main(["keys", "revoke", listed[0]["key_id"]]) == 0
    assert cli_main(["keys", "revoke", listed[0]["key_id"]]) == 1
    assert SQLiteStore(cli_home / "newsrec.sqlite3").api_keys() == []


def test_cli_keys_import_moves_an_older_keys_json_into_the_database(cli_home, capsys):
    raw, key = KeyStore(cli_home / "keys.json").add("cms", name="old-cms")
    assert cli_main(["keys", "import"]) == 0
    assert not (cli_home / "keys.json").exists() and (cli_home / "keys.json.imported").exists()
    store = SQLiteStore(cli_home / "newsrec.sqlite3")
    assert store.api_keys() == [(key.key_id, "cms", "old-cms", key.created, key.sha256)]
    assert SharedKeys(store).authenticate(raw).name == "old-cms"
    assert cli_main(["keys", "import"]) == 0  # nothing left to import: a no-op
    assert len(store.api_keys()) == 1


def test_cli_token_issue_verifies_with_the_home_secret(cli_home, capsys):
    assert cli_main(["token", "issue", "u-7", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    tokens = ReaderTokens(load_token_secret(cli_home))
    assert tokens.verify(token) == "u-7"
    assert int(token.split(".")[3]) - time.time() == pytest.approx(120, abs=5)
    assert cli_main(["token", "issue", "bad id", "--ttl", "120"]) == 2
    assert "user_id" in capsys.readouterr().err
