"""``/readyz`` tells the present state of the model: degraded, with a reason, while no model is
loaded or while the live version (the one the database names) fails to load here; ready again as
soon as a good version serves and is the live one, without a restart and without a successful
reload of the version that failed (a rollback to the serving version is enough)."""

from __future__ import annotations

import shutil

import pytest
import requests

from api import create_app
from recommender.models.versions import promote
from recommender.serving import engine as engine_module
from recommender.serving.engine import Engine, EngineConfig
from recommender.store import SQLiteStore
from tests.test_reliability import SECRET, Server, _all_workers, _publish_damaged, _wait


@pytest.fixture
def fresh(trained, tmp_path):
    """An app and engine over a copy of the trained sample's store (its version is live), with an
    empty model folder: the live version is missing there."""
    sample = trained.clone(tmp_path)
    models = tmp_path / "served-models"
    models.mkdir()
    engine = Engine(sample.store, models, EngineConfig(log_impressions=False), clock=lambda: sample.now)
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(tmp_path / "home"), "ENGINE": engine,
                      "STORE": sample.store, "NEWSREC_TOKEN_SECRET": SECRET})
    yield app.test_client(), engine, sample, models
    engine.close()


def readiness(client) -> dict:
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["degraded"] == (body["status"] == "degraded") and body["degraded"] == bool(body["reasons"])
    return body


def test_no_live_version_says_how_to_make_one(tmp_path):
    store = SQLiteStore(tmp_path / "empty.sqlite3")
    engine = Engine(store, tmp_path / "models", EngineConfig(log_impressions=False))
    try:
        status = engine.status()
        assert status["degraded"] and status["model_version"] is None and status["live_version"] is None
        assert any("no model" in r and "newsrec models promote" in r for r in status["reasons"]), status
    finally:
        engine.close()
        store.close()


def test_readiness_follows_what_is_live_and_what_serves(fresh, monkeypatch):
    client, engine, sample, models = fresh
    body = readiness(client)
    assert body["status"] == "degraded" and body["model_version"] is None and body["live_version"] == sample.version
    assert any(sample.version in r and "does not exist" in r and "newsrec models list" in r
               for r in body["reasons"]), body

    shutil.copytree(sample.models_dir / sample.version, models / sample.version)  # the bundle reaches this host
    assert engine.maybe_reload()  # its folder changed: tried again
    assert readiness(client)["status"] == "ready" and readiness(client)["reasons"] == []

    damaged = _publish_damaged(models, sample.built, sample.store)  # the live version cannot load
    assert not engine.maybe_reload()
    body = readiness(client)
    assert body["status"] == "degraded" and body["model_version"] == sample.version
    assert any(damaged in r and f"{sample.version} keeps serving" in r for r in body["reasons"]), body
    loads = []
    real = engine_module.load_bundle
    monkeypatch.setattr(engine_module, "load_bundle", lambda *a, **k: loads.append(a) or real(*a, **k))
    assert not engine.maybe_reload() and loads == []  # not hashed again every second while nothing changed
    monkeypatch.setattr(engine_module, "RETRY_FAILED_SECONDS", 0.0)  # ... but again after a while (a passing error)
    assert not engine.maybe_reload() and len(loads) == 1

    promote(sample.store, models, sample.version)  # rolled back to the version that serves: nothing is wrong now
    engine.maybe_reload()
    body = readiness(client)
    assert body["status"] == "ready" and body["reasons"] == [] and body["last_reload_error"] is None, body

    assert sample.store.promote_model(damaged)  # the bad version again: still bad, degraded again
    assert not engine.maybe_reload()
    assert any(damaged in r for r in readiness(client)["reasons"])


def test_a_failure_no_longer_live_is_not_reported(fresh):
    client, engine, sample, models = fresh
    damaged = _publish_damaged(models, sample.built, sample.store)
    assert engine.model_version is None
    engine.maybe_reload()
    body = readiness(client)
    assert body["status"] == "degraded" and any(damaged in r for r in body["reasons"])
    assert sample.store.promote_model(sample.version)  # the bad version withdrawn (its bundle is not here either)
    engine.maybe_reload()
    body = readiness(client)
    assert body["status"] == "degraded" and not any(damaged in r for r in body["reasons"]), body
    assert any(sample.version in r for r in body["reasons"]), body
    # without the background poll too: the answer is computed from what the database says now
    assert sample.store.promote_model(damaged)
    engine.maybe_reload()
    assert sample.store.promote_model(sample.version)
    assert not any(damaged in r for r in readiness(client)["reasons"])


@pytest.mark.slow
def test_every_worker_is_ready_again_after_a_rollback_to_the_serving_version(trained, tmp_path):
    sample = trained.clone(tmp_path)
    with Server(tmp_path, db=sample.root / "newsrec.sqlite3", models=sample.models_dir, workers=2,
                threads=2) as server:
        # a worker still booting when the damaged version is made live would start with no model at all;
        # /readyz cannot say which worker answered (gunicorn once sent every probe to one), so the
        # log says when both have loaded and started their background thread
        _wait(lambda: server.stderr_path.exists()
              and server.stderr_path.read_text().count("engine background thread started") >= 2, 60,
              "both workers started")
        _wait(lambda: _all_workers(server, lambda r: r["model_version"] == sample.version), 30, "both workers up")
        damaged = _publish_damaged(sample.models_dir, sample.built, sample.store)
        _wait(lambda: _all_workers(server, lambda r: r["status"] == "degraded" and any(damaged in x for x in r["reasons"])
                                   and r["model_version"] == sample.version), 60, "both workers to refuse it")
        promote(sample.store, sample.models_dir, sample.version)
        _wait(lambda: _all_workers(server, lambda r: r["status"] == "ready" and r["reasons"] == []
                                   and r["model_version"] == sample.version), 60, "both workers to be ready again")
        feed = requests.get(f"{server.base}/v1/users/anyone/feed?limit=3", headers=server.headers(), timeout=10)
        assert feed.status_code == 200 and feed.json()["model_version"] == sample.version
