"""The PostgreSQL backend beyond the contract suite: ``NEWSREC_DB=postgresql://...`` through the
jobs and the service.

Each test gets a database of its own (``postgres_db``, see ``pg_fixtures``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from recommender.config import Settings, split_db_location
from recommender.store import SQLiteStore, open_store
from recommender.store.postgres import PostgresStore


# -- NEWSREC_DB=postgresql://... -------------------------------------------------------------
def test_newsrec_db_names_a_file_or_a_server(tmp_path):
    assert split_db_location("postgresql://u:secret@db:5432/news") == ("postgresql://u:secret@db:5432/news", None)
    assert split_db_location("postgres://db/news")[0] == "postgres://db/news"
    assert split_db_location("sqlite:///var/x.sqlite3") == (None, Path("var/x.sqlite3"))
    assert split_db_location("sqlite:////tmp/x.sqlite3") == (None, Path("/tmp/x.sqlite3"))
    assert split_db_location(tmp_path / "x.sqlite3") == (None, tmp_path / "x.sqlite3")
    with pytest.raises(ValueError, match="unknown database URL"):
        split_db_location("mysql://db/news")
    settings = Settings.from_env({"NEWSREC_HOME": str(tmp_path), "NEWSREC_DB": "postgresql://u:secret@db/news?sslmode=require"})
    assert settings.db_path is None and settings.db == "postgresql://u:secret@db/news?sslmode=require"
    assert settings.db_label == "postgresql://u@db/news"  # no password in messages and reports
    settings.ensure_dirs()  # no folder named after the URL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]
    default = Settings.from_env({"NEWSREC_HOME": str(tmp_path)})
    assert default.db_url is None and default.db == str(tmp_path / "newsrec.sqlite3")
    store = open_store(f"sqlite:///{tmp_path / 'y.sqlite3'}")
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "y.sqlite3"
    store.close()


def test_the_jobs_run_on_postgres(postgres_db, tmp_path, monkeypatch, capsys):
    from training.cli import main

    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEWSREC_DB", postgres_db)
    monkeypatch.delenv("NEWSREC_MODELS", raising=False)
    assert main(["sample", "--articles", "220", "--users", "60", "--days", "2", "--seed", "3", "--ingest",
                 "--end", "2026-11-01T00:00:00+07:00"]) == 0
    capsys.readouterr()
    assert main(["stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["database"] == postgres_db and stats["articles"] == 220 and stats["events"] > 0
    assert main(["train", "--json", "--as-of", "2026-11-01T00:00:00+07:00"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["version"] and not (tmp_path / "home" / "newsrec.sqlite3").exists()
    monkeypatch.setenv("NEWSREC_DB", "postgresql://postgres@127.0.0.1:1/nothing")
    assert main(["stats"]) == 1
    assert "cannot open PostgreSQL database" in capsys.readouterr().err


def test_the_service_runs_on_postgres(postgres_db, tmp_path, monkeypatch):
    from api import create_app
    from recommender.security import KEYS_FILE, KeyStore

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("NEWSREC_TOKEN_SECRET", "test-secret-0123456789abcdef")
    key, _ = KeyStore(home / KEYS_FILE).add("admin", name="test")
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "NEWSREC_DB": postgres_db})
    store = app.extensions["newsrec.store"]
    try:
        assert isinstance(store, PostgresStore) and app.config["NEWSREC_DB"] == postgres_db
        client = app.test_client()
        headers = {"X-API-Key": key}
        assert client.get("/readyz").status_code == 200
        now = time.time()
        published = [{"article_id": f"a{i}", "title": f"Berita {i}", "body": "Isi berita.", "category": "Nasional",
                      "published_at": now - 60 * i} for i in range(5)]
        assert client.post("/v1/articles", json={"articles": published}, headers=headers).status_code == 200
        posted = client.post("/v1/events", json={"events": [{"user_id": "r1", "article_id": "a1", "event": "click",
                                                            "ts": now}]}, headers=headers)
        assert posted.status_code == 200 and posted.get_json()["accepted"] == 1
        feed = client.get("/v1/users/r1/feed?limit=3", headers=headers)
        assert feed.status_code == 200 and "a1" not in [i["article_id"] for i in feed.get_json()["items"]]
        assert client.delete("/v1/users/r1", headers=headers).get_json()["removed"]["events"] == 1
        assert store.user_events("r1") == []
    finally:
        app.extensions["newsrec"].close()
        store.close()
