"""Staged model versions: training writes a version, the database says which one is live, every
engine follows it (a ``model`` change in the log) and a replica that cannot load the live version
keeps serving what it has, says so, and recovers by itself once the bundle is there.

In process: engines over one store (two "replicas": each with its own store object), polled with
``refresh()``/``maybe_reload()`` or their background thread (waited for with a deadline, never a
sleep). Over HTTP: ``newsrec serve --workers 2`` and ``newsrec models promote``/``rollback``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from recommender.domain import Article
from recommender.models.bundle import read_current
from recommender.models.fitting import train
from recommender.models.versions import PromotionConflict, promote, rollback
from recommender.serving.engine import Engine, EngineConfig
from recommender.store import SQLiteStore
from tests.serve_fixtures import LiveServer, cli, eventually, server_env


def serves(engine: Engine) -> str | None:
    """The version in the lists this engine answers (and its status), checked to agree."""
    version = engine.model_version
    assert engine.feed("some-reader", limit=3).model_version == version
    assert engine.status()["model_version"] == version
    return version


def test_a_staged_version_is_not_served_until_promoted(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    staged, _ = train(sample.store, sample.models_dir, as_of=sample.now, seed=1)  # a nightly retrain
    assert sample.store.live_model() == sample.version and (sample.models_dir / staged).is_dir()
    assert read_current(sample.models_dir) == sample.version  # CURRENT, the copy for people, did not move either
    assert not engine.maybe_reload()
    engine.refresh()
    assert serves(engine) == sample.version and not engine.status()["degraded"]
    starting = sample.engine()  # a worker starting now serves the live version, not the newest one
    assert serves(starting) == sample.version
    promote(sample.store, sample.models_dir, staged)
    for e in (engine, starting):
        e.refresh()
        assert serves(e) == staged
    starting.close()
    engine.close()


def test_two_replicas_switch_on_a_promotion_and_a_rollback_without_restart(trained, tmp_path):
    """Two engines on one database, each with its own store object (as on two hosts): a promotion
    made through either reaches both on their next poll, and both keep following the log after."""
    sample = trained.clone(tmp_path)
    staged, _ = train(sample.store, sample.models_dir, as_of=sample.now, seed=1)
    other_host = SQLiteStore(sample.root / "newsrec.sqlite3")
    first = sample.engine()
    second = Engine(other_host, sample.models_dir, EngineConfig(), clock=lambda: sample.now)
    try:
        assert serves(first) == serves(second) == sample.version
        promote(sample.store, sample.models_dir, staged)
        for engine in (first, second):
            engine.refresh()
            assert serves(engine) == staged and engine.status()["live_version"] == staged
        rollback(other_host, sample.models_dir, sample.version)  # an operator on the other host
        for engine in (first, second):
            engine.refresh()
            assert serves(engine) == sample.version
        # the swapped-in state follows the log like the one before it
        sample.store.upsert_articles([Article("after-rollback", "Banjir rob melanda pesisir utara Jakarta",
                                              "Air laut naik ke permukiman warga.", "Nasional", sample.now - 60)])
        for engine in (first, second):
            engine.refresh()
            assert engine.related("after-rollback", limit=3).items
    finally:
        first.close()
        second.close()
        other_host.close()


def test_two_trainers_promoting_at_once_one_wins_and_the_other_is_told(trained, tmp_path):
    """Two ``train --promote`` jobs on two hosts finish together, both started from the same live
    version: exactly one becomes live; the other stays staged with a PromotionConflict naming it."""
    sample = trained.clone(tmp_path)
    versions = [train(sample.store, sample.models_dir, as_of=sample.now, seed=s)[0] for s in (1, 2)]
    hosts = [SQLiteStore(sample.root / "newsrec.sqlite3") for _ in versions]
    start, _ = sample.store.log_position()
    both_read = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def trainer(i: int) -> None:
        expected = hosts[i].live_model()  # the version live when this job started
        both_read.wait(timeout=30)
        try:
            promote(hosts[i], sample.models_dir, versions[i], expected=expected, verify=False)
            outcome[versions[i]] = "live"
        except PromotionConflict as exc:
            outcome[versions[i]] = exc

    threads = [threading.Thread(target=trainer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [v for v, o in outcome.items() if o == "live"]
    assert len(outcome) == 2 and len(winners) == 1, outcome
    loser = next(v for v in versions if v not in winners)
    assert outcome[loser].live == winners[0] and outcome[loser].expected == sample.version
    assert sample.store.live_model() == winners[0]
    assert [c.ref for c in sample.store.changes_after(start, kinds=("model",))] == winners
    for host in hosts:
        host.close()


def test_a_live_version_missing_here_keeps_the_old_one_until_its_bundle_arrives(trained, tmp_path):
    """The trainer's host promoted a version this replica's models mount does not hold yet: the
    old version keeps serving, ``status`` says why, and once the bundle lands (even file by file)
    the background thread loads it without anyone asking."""
    sample = trained.clone(tmp_path)
    trainer_models = tmp_path / "trainer-models"
    staged, _ = train(sample.store, trainer_models, as_of=sample.now, seed=1)
    engine = Engine(sample.store, sample.models_dir, EngineConfig(poll_interval=0.05), clock=lambda: sample.now)
    engine.start_background()
    try:
        promote(sample.store, trainer_models, staged)

        def refused(fragment: str):
            status = engine.status()
            return status["degraded"] and any(staged in r and fragment in r for r in status["reasons"]) and status

        status = eventually(lambda: refused("does not exist"), 10, what="the missing version reported")
        assert status["model_version"] == sample.version and status["live_version"] == staged
        assert any(f"{sample.version} keeps serving" in r for r in status["reasons"]), status
        assert serves(engine) == sample.version
        copying = sample.models_dir / staged  # a copy into place, file by file: half a bundle first
        copying.mkdir()
        shutil.copy2(trainer_models / staged / "manifest.json", copying / "manifest.json")
        eventually(lambda: refused("missing"), 10, what="the half-copied bundle refused")
        assert serves(engine) == sample.version
        for name in os.listdir(trainer_models / staged):
            shutil.copy2(trainer_models / staged / name, copying / name)
        eventually(lambda: engine.model_version == staged and not engine.status()["degraded"], 10,
                   what="the copied bundle served")
        assert serves(engine) == staged and engine.status()["reasons"] == []
    finally:
        engine.close()


def test_an_engine_adopts_current_once_on_a_database_from_before(trained, tmp_path):
    """An upgrade: CURRENT names the version served so far and the database names none. The first
    engine writes it into the database as the live version; later ones read it from there."""
    sample = trained.clone(tmp_path)
    with sqlite3.connect(sample.root / "newsrec.sqlite3") as conn:
        conn.execute("DELETE FROM live_model")  # as a database migrated from before staged models
    start, _ = sample.store.log_position()
    assert sample.store.live_model() is None and read_current(sample.models_dir) == sample.version
    engines = [sample.engine() for _ in range(3)]
    try:
        assert [serves(e) for e in engines] == [sample.version] * 3
        assert sample.store.live_model() == sample.version
        assert [c.ref for c in sample.store.changes_after(start, kinds=("model",))] == [sample.version]
    finally:
        for engine in engines:
            engine.close()


# -- over HTTP ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="telling gunicorn workers apart reads /proc (Linux)")
def test_a_promotion_switches_both_workers_within_two_seconds(tmp_path):
    env = server_env(tmp_path / "home")
    cli(env, "sample", "--articles", "200", "--users", "100", "--days", "3", "--seed", "4", "--end", "now", "--ingest")
    live = json.loads(cli(env, "train", "--json", "--promote"))["version"]
    staged = json.loads(cli(env, "train", "--json", "--seed", "1"))["version"]
    site = cli(env, "keys", "add", "--role", "site").strip()
    admin = cli(env, "keys", "add", "--role", "admin").strip()
    server = LiveServer(env, workers=2)
    try:
        server.wait_ready()

        def every_worker_serves(version: str, timeout: float) -> float:
            """Seconds until the last answer of each worker names ``version`` (a worker never
            switches back by itself); fails after ``timeout``."""
            started = time.monotonic()
            latest: dict[int, str] = {}

            def check():
                reply = server.get("/readyz")
                assert reply.status == 200, reply.response.text
                if reply.worker is not None:
                    latest[reply.worker] = reply.json()["model_version"]
                workers = server.worker_pids()
                return len(workers) == 2 and all(latest.get(w) == version for w in workers)

            eventually(check, timeout, interval=0.01, what=f"both workers serving {version} (last: {latest})")
            return time.monotonic() - started

        every_worker_serves(live, 10)
        feed = server.get("/v1/users/someone/feed?limit=3", key=site)
        assert feed.status == 200 and feed.json()["model_version"] == live  # staged: not served
        assert server.get("/readyz").json()["live_version"] == live

        cli(env, "models", "promote", staged)  # the clock starts once the command has returned
        assert every_worker_serves(staged, 2.0) < 2.0
        feed = server.get("/v1/users/someone/feed?limit=3", key=site)
        assert feed.status == 200 and feed.json()["model_version"] == staged

        cli(env, "models", "rollback", live)
        assert every_worker_serves(live, 2.0) < 2.0
        # a promotion refused by its compare-and-set changes nothing, not even on the worker that took
        # it (it loaded the version, and served it until its next poll)
        refused = server.post("/v1/admin/reload", {"version": staged, "expected": staged}, key=admin)
        assert refused.status == 409 and refused.json()["error"] == "promotion_conflict"
        answers: dict[int, list[str]] = {}
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not (len(answers) == 2 and all(len(a) >= 5 for a in answers.values())):
            reply = server.get("/readyz")
            if reply.worker is not None:
                answers.setdefault(reply.worker, []).append(reply.json()["model_version"])
        assert len(answers) == 2 and all(set(a) == {live} for a in answers.values()), answers
        assert "Traceback" not in server.log_tail(100_000)
    finally:
        assert server.stop() == 0, server.log_tail()


def test_training_never_prunes_a_version_a_running_experiment_serves(trained, tmp_path, monkeypatch, capsys):
    """``newsrec train --keep 1`` spares the variants of an experiment still running (a worker
    starting later must load them, or it serves their lists outside the experiment); once the
    experiment stops they go like any other old version."""
    from recommender.models.bundle import list_versions
    from training.cli import main

    sample = trained.clone(tmp_path)
    for name in ("NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path))

    def newsrec(*args) -> dict:
        capsys.readouterr()
        assert main(list(args)) == 0
        out = capsys.readouterr().out
        return json.loads(out) if "--json" in args else {}

    def kept() -> set[str]:
        return {v["version"] for v in list_versions(sample.models_dir)}

    live = sample.version
    staged = newsrec("train", "--json", "--as-of", str(sample.now))["version"]
    newsrec("experiments", "create", "ab", "--variant", f"control={live}", "--variant", f"new={staged}",
            "--lists", "feed")
    third = newsrec("train", "--json", "--keep", "1", "--as-of", str(sample.now))["version"]
    assert kept() == {live, staged, third}  # live, in the experiment, newest
    newsrec("experiments", "stop", "ab")
    fourth = newsrec("train", "--json", "--keep", "1", "--as-of", str(sample.now))["version"]
    assert kept() == {live, fourth}


def test_rollback_without_a_version_goes_back_to_the_older_version_live_most_recently(trained, tmp_path,
                                                                                       monkeypatch, capsys):
    """``newsrec models rollback`` alone: the version an operator means after a bad promotion (the
    one live before it), never a newer one, and a clear refusal when no older version was live."""
    from training.cli import main

    sample = trained.clone(tmp_path)
    for name in ("NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path))

    def newsrec(*args) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    first = sample.version
    second = json.loads(newsrec("train", "--json", "--as-of", str(sample.now))[1])["version"]
    third = json.loads(newsrec("train", "--json", "--as-of", str(sample.now))[1])["version"]
    staged = json.loads(newsrec("train", "--json", "--as-of", str(sample.now))[1])["version"]  # never live
    assert newsrec("models", "promote", second)[0] == 0
    assert newsrec("models", "promote", third)[0] == 0

    code, out, _ = newsrec("models", "rollback")  # third was a bad promotion: back to second
    assert code == 0 and sample.store.live_model() == second, out
    assert f"{second} is live (was {third})" in out
    code, out, _ = newsrec("models", "rollback")  # third, newer and live since, is passed over
    assert code == 0 and sample.store.live_model() == first, out
    code, _, err = newsrec("models", "rollback")  # nothing older than the first was ever live
    assert code == 1 and "no version older than the live one was ever live" in err
    assert sample.store.live_model() == first
    assert newsrec("models", "promote", staged)[0] == 0
    code, out, _ = newsrec("models", "rollback")  # the staged one went live after the others: back to first
    assert code == 0 and sample.store.live_model() == first, out
    code, _, err = newsrec("models", "rollback", "--expect", second)  # chosen against a version not live
    assert code == 3 and sample.store.live_model() == first, err
