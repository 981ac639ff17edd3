"""``newsrec serve``: the gunicorn command, its settings, ``--check``, and one real server run."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from api.logging import ACCESS_LOGGER
from recommender.config import Settings
from training.cli import main as cli_main
from api.commands.serve import GUNICORN_CONF, ROOT, server_command

from .serve_fixtures import _children

HAS_ENGINE = importlib.util.find_spec("recommender.serving.engine") is not None
needs_engine = pytest.mark.skipif(not HAS_ENGINE, reason="recommender.serving.engine is not written yet")


def serve_args(**over) -> argparse.Namespace:
    args = dict(host="127.0.0.1", port=8000, workers=2, threads=4, blas_threads=1, check=False)
    args.update(over)
    return argparse.Namespace(**args)


def test_server_command_pins_blas_threads_and_uses_gthread(tmp_path):
    settings = Settings.from_env({"NEWSREC_HOME": str(tmp_path / "h")})
    argv, env = server_command(serve_args(host="0.0.0.0", port=9001, workers=3, threads=2), settings)
    assert argv[1:3] == ["-m", "gunicorn"] and argv[-1] == "api.wsgi:app"
    flags = dict(zip(argv[3:-1:2], argv[4:-1:2]))
    assert flags == {"--config": str(GUNICORN_CONF), "--bind": "0.0.0.0:9001", "--workers": "3", "--threads": "2",
                     "--worker-class": "gthread", "--chdir": str(ROOT)}
    assert {env[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")} == {"1"}
    assert env["NEWSREC_HOME"] == str((tmp_path / "h").resolve())
    assert env["NEWSREC_DB"] == str((tmp_path / "h" / "newsrec.sqlite3").resolve())
    assert str(ROOT) in env["PYTHONPATH"].split(os.pathsep)


def test_threads_default_by_backend_and_an_explicit_number_wins(tmp_path, monkeypatch):
    """4 threads a worker on SQLite (its reads run in the worker), 8 on PostgreSQL (a request
    waiting for the server holds a thread, not the CPU); ``--threads`` and NEWSREC_THREADS win."""
    def threads(env, **over):
        argv, _ = server_command(serve_args(**{"threads": None, **over}), Settings.from_env(env))
        return dict(zip(argv[3:-1:2], argv[4:-1:2]))["--threads"]

    home = {"NEWSREC_HOME": str(tmp_path / "h")}
    monkeypatch.delenv("NEWSREC_THREADS", raising=False)
    assert threads(home) == "4"
    assert threads({**home, "NEWSREC_DB": "postgresql://newsrec@db:5432/newsrec"}) == "8"
    assert threads({**home, "NEWSREC_DB": "postgresql://newsrec@db:5432/newsrec"}, threads=3) == "3"
    monkeypatch.delenv("NEWSREC_THREADS", raising=False)
    monkeypatch.setenv("NEWSREC_DB", "postgres://newsrec@db/newsrec")
    assert runpy.run_path(str(GUNICORN_CONF))["threads"] == 8
    monkeypatch.setenv("NEWSREC_DB", str(tmp_path / "x.sqlite3"))
    assert runpy.run_path(str(GUNICORN_CONF))["threads"] == 4
    monkeypatch.setenv("NEWSREC_THREADS", "6")
    assert runpy.run_path(str(GUNICORN_CONF))["threads"] == 6
    assert threads(home) == "6" and threads(home, threads=2) == "2"  # gunicorn's command line wins over its
    monkeypatch.setenv("NEWSREC_THREADS", "many")  # config file: `newsrec serve` passes the variable on
    with pytest.raises(SystemExit, match="NEWSREC_THREADS"):
        threads(home)


def test_gunicorn_conf_settings(monkeypatch):
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")  # the conf only setdefaults these; monkeypatch restores them
    conf = runpy.run_path(str(GUNICORN_CONF))
    assert conf["worker_class"] == "gthread" and conf["preload_app"] is False and conf["reuse_port"] is True
    monkeypatch.setenv("NEWSREC_REUSE_PORT", "0")
    assert runpy.run_path(str(GUNICORN_CONF))["reuse_port"] is False
    assert conf["accesslog"] is None  # gunicorn's access log would be a second, non-JSON log
    assert conf["ACCESS_LOGGER"] == ACCESS_LOGGER
    logging_config = conf["logconfig_dict"]
    assert logging_config["loggers"][ACCESS_LOGGER]["handlers"] == ["access"]
    assert logging_config["formatters"]["json_line"]["format"] == "%(message)s"


def test_a_worker_freezes_what_it_loaded_out_of_the_cycle_collectors_sight(monkeypatch):
    import gc

    from gunicorn import util

    monkeypatch.setattr(util, "write_error", util.write_error)  # the hook replaces it: put back afterwards
    conf = runpy.run_path(str(GUNICORN_CONF))
    loaded = [{"model": object()} for _ in range(100)]  # what a worker holds once its app is loaded
    try:
        conf["post_worker_init"](None)
        assert gc.get_freeze_count() >= len(loaded) and all(not_walked(o) for o in loaded)
        assert util.write_error is conf["write_json_error"]
    finally:
        gc.unfreeze()


def not_walked(obj) -> bool:
    """True when a full collection does not visit ``obj`` (frozen, or not tracked at all)."""
    import gc

    return not any(o is obj for o in gc.get_objects())


@needs_engine
def test_check_reports_missing_keys_then_passes(tmp_path, monkeypatch, capsys):
    for name in ("NEWSREC_DB", "NEWSREC_MODELS", "NEWSREC_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path))
    assert cli_main(["serve", "--check"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and "newsrec keys add" in report["problems"][0]
    assert report["engine"]["degraded"] is True
    assert cli_main(["keys", "add", "--role", "admin"]) == 0
    capsys.readouterr()
    assert cli_main(["serve", "--check"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["key_roles"] == ["admin"]
    # keys live in the database: the check names it, not a keys.json that is not there
    assert report["keys_in"] == str(tmp_path / "newsrec.sqlite3") and "keys_file" not in report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (gunicorn's master and workers under ``newsrec serve``)."""
    found, todo = set(), [pid]
    while todo:
        kids = _children(todo.pop())
        found.update(kids)
        todo.extend(kids)
    return found


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _wait_healthy(base: str, proc: subprocess.Popen, deadline_s: float = 40.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited during start"
        try:
            if _get(base + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become healthy")


def _fd_targets(pid: int) -> list[str]:
    """What each open file descriptor of ``pid`` names; one closed between the listing and its
    readlink (a worker's request threads open and close sockets all the time) is left out."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except FileNotFoundError:
            continue
    return targets


def _listeners(port: int) -> set[int]:
    """Pids holding a listening TCP socket on ``port`` (from /proc/net/tcp and each process's fds)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if any(target in inodes for target in _fd_targets(int(proc.name))):
                    pids.add(int(proc.name))
            except OSError:  # the process is gone, or not ours to look into
                continue
    return pids


def test_serve_refuses_a_port_another_server_listens_on(tmp_path, monkeypatch, capsys):
    from api.commands.serve import port_in_use

    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert "in use" in port_in_use("127.0.0.1", port)
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            cli_main(["serve", "--port", str(port)])
    assert port_in_use("127.0.0.1", port) is None  # closed: free again


@pytest.mark.parametrize("name,value", [("NEWSREC_PROXY_FIX", "abc"), ("NEWSREC_PROXY_FIX", "-1"),
                                        ("NEWSREC_LAG_SECONDS", "abc"), ("NEWSREC_FEATURE_LOG_RATE", "-1"),
                                        ("NEWSREC_RATELIMIT", "abc"), ("NEWSREC_RATELIMIT_STORAGE", "abc"),
                                        ("NEWSREC_TOKEN_SECRET", "short"), ("NEWSREC_REUSE_PORT", "banana")])
def test_serve_refuses_a_bad_setting_before_gunicorn_starts(tmp_path, monkeypatch, capsys, name, value):
    """A bad value used to reach gunicorn: each worker failed to boot with a traceback (and
    NEWSREC_PROXY_FIX's said only "invalid literal for int()", -1 quietly meant 0); now serve stops
    first with one line naming the variable, and ``--check`` says the same."""
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "execvpe", lambda *a: pytest.fail("gunicorn started"))
    with pytest.raises(SystemExit, match=f"^newsrec serve: {name}"):
        cli_main(["serve", "--port", str(_free_port())])
    assert cli_main(["serve", "--check"]) == 2
    assert name in json.loads(capsys.readouterr().out)["problems"][0]


def test_check_refuses_the_threads_serve_would_refuse(tmp_path, monkeypatch, capsys):
    """``--check`` said ok to NEWSREC_THREADS=abc, which ``newsrec serve`` then refused."""
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEWSREC_THREADS", "abc")
    assert cli_main(["serve", "--check"]) == 2
    assert "NEWSREC_THREADS must be a whole number" in json.loads(capsys.readouterr().out)["problems"][0]


def test_a_metrics_folder_is_checked_as_serve_uses_it(tmp_path, monkeypatch, capsys):
    """PROMETHEUS_MULTIPROC_DIR naming a file was a traceback in gunicorn's master; one that does
    not exist yet failed ``--check`` (FileNotFoundError) although serve creates it."""
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(afile))
    monkeypatch.setattr(os, "execvpe", lambda *a: pytest.fail("gunicorn started"))
    with pytest.raises(SystemExit, match="^newsrec serve: PROMETHEUS_MULTIPROC_DIR=.* is a file"):
        cli_main(["serve", "--port", str(_free_port())])
    assert cli_main(["serve", "--check"]) == 2
    assert "is a file" in json.loads(capsys.readouterr().out)["problems"][0]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    assert cli_main(["serve", "--check"]) == 1  # only the missing API key
    assert json.loads(capsys.readouterr().out)["problems"] == ["no API keys: create one with 'newsrec keys add --role site'"]


@pytest.mark.parametrize("name", ["NEWSREC_MODELS", "NEWSREC_HOME"])
def test_a_folder_that_cannot_be_made_is_named_not_a_traceback(tmp_path, monkeypatch, capsys, name):
    """NEWSREC_MODELS (or NEWSREC_HOME) naming a file was an OSError traceback from serve, train,
    ingest: now one line naming the variable, exit 2."""
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NEWSREC_MODELS", raising=False)
    monkeypatch.setenv(name, str(afile))
    monkeypatch.setattr(os, "execvpe", lambda *a: pytest.fail("gunicorn started"))
    with pytest.raises(SystemExit, match=f"^newsrec serve: {name}: cannot use .*afile as a folder"):
        cli_main(["serve", "--port", str(_free_port())])
    assert cli_main(["train"]) == 2
    assert f"error: {name}: cannot use" in capsys.readouterr().err


@pytest.mark.slow
@needs_engine
def test_gunicorn_serves_sums_metrics_across_workers_and_survives_sighup(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSREC_", "PROMETHEUS_"))}
    env.update(NEWSREC_HOME=str(home), PYTHONPATH=str(ROOT), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    key = subprocess.run([sys.executable, "-m", "training.cli", "keys", "add", "--role", "site"], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out, "wb") as fout, open(err, "wb") as ferr:
        proc = subprocess.Popen([sys.executable, "-m", "training.cli", "serve", "--port", str(port), "--workers", "2",
                                 "--threads", "2"], env=env, stdout=fout, stderr=ferr, cwd=tmp_path)
    try:
        _wait_healthy(base, proc)
        if os.path.isdir("/dev/shm"):  # the heartbeat file (unlinked, still open) is in memory, not on disk
            heartbeats = {w: [t for t in _fd_targets(w) if os.path.basename(t).startswith("wgunicorn-")]
                          for w in _children(proc.pid)}
            assert len(heartbeats) == 2 and all(h and all(p.startswith("/dev/shm/") for p in h)
                                                for h in heartbeats.values()), heartbeats
        # each worker listens on its own SO_REUSEPORT socket: the kernel spreads connections over them
        _wait_for(lambda: _listeners(port) == set(_children(proc.pid)) and len(_children(proc.pid)) == 2, 30,
                  "each of the two workers to listen on its own socket")
        event = json.dumps({"user_id": "u1", "article_id": "a1", "event": "click", "ts": 1_793_466_000}).encode()
        status, body = _get(base + "/v1/events", {"X-API-Key": key, "Content-Type": "application/json"}, event)
        assert (status, json.loads(body)) == (200, {"accepted": 1, "duplicates": 0})
        assert _get(base + "/v1/events", {"X-API-Key": "nr_site_" + "Z" * 43}, event)[0] == 401
        for _ in range(20):
            assert _get(base + "/readyz")[0] == 200
        text = _get(base + "/metrics")[1].decode()
        ready = re.search(r'newsrec_http_requests_total\{endpoint="/readyz",method="GET",status="200"\} (\S+)', text)
        assert ready and float(ready.group(1)) == 20.0  # summed over both workers
        before = _descendants(proc.pid)
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: len(_descendants(proc.pid) - before) >= 2 and not before & _descendants(proc.pid), 40,
                  "gunicorn to replace both workers after SIGHUP")
        _wait_healthy(base, proc)
        assert _get(base + "/v1/users/u1/feed?limit=3", {"X-API-Key": key})[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - leave nothing running
            proc.kill()
            rc = proc.wait()
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert {"/v1/events", "/readyz", "/metrics", "/healthz"} <= {l["endpoint"] for l in lines}
    assert [l["status"] for l in lines if l["endpoint"] == "/v1/events"] == [200, 401]
    logs = out.read_text() + err.read_text()
    assert key not in logs and "Z" * 43 not in logs
    assert "Booting worker" in err.read_text() and "hup" in err.read_text().lower()
    assert f"each worker listens on 127.0.0.1:{port} (SO_REUSEPORT)" in err.read_text()



def test_gunicorn_builds_no_access_line_nobody_writes(monkeypatch):
    import copy
    import logging

    from gunicorn.config import Config

    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    conf = runpy.run_path(str(GUNICORN_CONF))
    names = ("", "gunicorn.error", "gunicorn.access", ACCESS_LOGGER)
    saved = {n: (lg.level, lg.handlers[:], lg.propagate, lg.disabled) for n in names for lg in [logging.getLogger(n)]}
    try:
        built = []
        monkeypatch.setattr(conf["logger_class"], "atoms", lambda self, *a: built.append(a) or {})
        cfg = Config()
        cfg.set("logconfig_dict", conf["logconfig_dict"])
        conf["logger_class"](cfg).access(None, None, {}, 0.1)
        assert built == []  # gunicorn.access is at WARNING: no atoms per request
        loud_config = copy.deepcopy(conf["logconfig_dict"])
        loud_config["loggers"]["gunicorn.access"]["level"] = "INFO"
        cfg.set("logconfig_dict", loud_config)
        conf["logger_class"](cfg).access(None, None, {}, 0.1)
        assert len(built) == 1  # enabled on purpose: gunicorn's own line is built again
    finally:
        for n, (level, handlers, propagate, disabled) in saved.items():
            lg = logging.getLogger(n)
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
