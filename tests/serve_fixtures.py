"""A real ``newsrec serve --workers 2`` for HTTP tests, and polling helpers.

:class:`LiveServer` starts gunicorn on a free loopback port over a prepared ``NEWSREC_HOME`` and
sends every request over a fresh TCP connection, returning which worker answered it. The app
does not name its worker in responses, so the worker is found from the outside (Linux only): the
server-side socket of the request's connection is looked up in ``/proc/net/tcp`` and matched
against the socket file descriptors of the master's children (``/proc/<pid>/fd``). Tests can
then say "on both workers" and check it, instead of hoping enough requests spread;
:meth:`LiveServer.pinned` holds one connection per worker to ask each of them right now.

Never sleep to wait for another worker: :func:`eventually` polls a condition until a deadline,
:func:`holds_for` checks that one stays true for a while.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

ROOT = Path(__file__).resolve().parents[1]
HTTP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path) -> dict[str, str]:
    """This process's environment without newsrec or prometheus settings, with ``NEWSREC_HOME=home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSREC_", "PROMETHEUS_"))}
    env.update(NEWSREC_HOME=str(home), PYTHONPATH=str(ROOT))
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``newsrec ARGS`` (as ``python -m training.cli``); its stdout, or fail with its stderr."""
    done = subprocess.run([sys.executable, "-m", "training.cli", *args], env=env, cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"newsrec {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def eventually(check: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy (returned) or ``timeout`` seconds pass.

    An ``AssertionError`` raised by ``check`` counts as "not yet"; on timeout the last one (or the
    last falsy value) is reported.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s; last: {last}")
        time.sleep(interval)


def holds_for(check: Callable[[], Any], seconds: float, interval: float = 0.05) -> int:
    """Call ``check`` (which asserts) repeatedly for ``seconds``; returns how many times it ran.

    Used where something must *stay* true (a takedown that a re-import must not undo, stored
    events a background pass must not delete): the first failing call fails the test.
    """
    deadline = time.monotonic() + seconds
    runs = 0
    while True:
        check()
        runs += 1
        if time.monotonic() >= deadline:
            return runs
        time.sleep(interval)


def _tcp_inode(server_port: int, client_port: int) -> int | None:
    """Inode of the server-side socket of loopback connection client_port -> server_port."""
    want_local, want_remote = f":{server_port:04X}", f":{client_port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(want_local) and fields[2].endswith(want_remote) and fields[9] != "0":
                return int(fields[9])
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan every process's parent
        kids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(stat.parent.name))
        return kids


def _holds_socket(pid: int, inode: int) -> bool:
    target = f"socket:[{inode}]"
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(fd_dir / name) == target:
                return True
        except OSError:
            continue
    return False


class _ResetOnClose(HTTPAdapter):
    """Connections closed with a reset (``SO_LINGER`` 0): a fresh connection per request would
    otherwise leave a TIME_WAIT entry each, and ``/proc/net/tcp`` (read per request to find the
    worker) grows by thousands of lines that the kernel formats on every read."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["socket_options"] = [*HTTPConnection.default_socket_options,
                                    (socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))]
        super().init_poolmanager(*args, **kwargs)


@dataclass
class Reply:
    """One HTTP exchange: the response and the worker pid that answered (None if not found)."""

    response: requests.Response
    worker: int | None

    @property
    def status(self) -> int:
        return self.response.status_code

    def json(self) -> Any:
        return self.response.json()


class Pinned:
    """A keep-alive connection that one worker serves (see :meth:`LiveServer.pinned`)."""

    def __init__(self, server: LiveServer, session: requests.Session, worker: int):
        self.server, self.session, self.worker = server, session, worker

    def request(self, method: str, path: str, *, key: str | None = None, token: str | None = None,
                **kwargs) -> Reply:
        reply = self.server._exchange(self.session, method, path, key, token, kwargs)
        assert reply.worker == self.worker, (
            f"the connection pinned to worker {self.worker} was answered by {reply.worker}: idle past keepalive?")
        return reply

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)


class LiveServer:
    """``newsrec serve --port P --workers N`` over ``env["NEWSREC_HOME"]``, until :meth:`stop`."""

    def __init__(self, env: dict[str, str], workers: int = 2, extra_args: tuple[str, ...] = ()):
        self.env = env
        self.home = Path(env["NEWSREC_HOME"])
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "training.cli", "serve", "--port", str(self.port), "--workers", str(workers),
             *extra_args],
            env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def worker_pids(self) -> set[int]:
        return set(_children(self.proc.pid))

    def worker_of(self, client_port: int) -> int | None:
        """The worker holding the server end of our connection from ``client_port``."""
        inode = _tcp_inode(self.port, client_port)
        if inode is None:
            return None
        return next((pid for pid in self.worker_pids() if _holds_socket(pid, inode)), None)

    def _exchange(self, session: requests.Session, method: str, path: str, key: str | None,
                  token: str | None, kwargs: dict) -> Reply:
        headers = dict(kwargs.pop("headers", None) or {})
        if key:
            headers["X-API-Key"] = key
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = session.request(method, self.base + path, headers=headers, stream=True, timeout=HTTP_TIMEOUT,
                                   **kwargs)
        worker = None
        try:
            conn = response.raw.connection
            if conn is not None and conn.sock is not None:
                # keep-alive: the server end stays open until the session closes
                worker = self.worker_of(conn.sock.getsockname()[1])
        finally:
            _ = response.content  # read the body, so the response is complete
        return Reply(response, worker)

    def request(self, method: str, path: str, *, key: str | None = None, token: str | None = None,
                **kwargs) -> Reply:
        """One request over a new connection (no shared Session), and the worker that answered."""
        with requests.Session() as session:
            session.mount("http://", _ResetOnClose())
            return self._exchange(session, method, path, key, token, kwargs)

    @contextmanager
    def pinned(self, timeout: float = 10.0) -> Iterator[dict[int, Pinned]]:
        """One open keep-alive connection to each worker, by worker pid, for requests that must
        reach a given worker right now (e.g. the one that did not take a write). Use at once:
        gunicorn closes a connection idle for its keepalive (5 s)."""
        pins: dict[int, Pinned] = {}
        try:
            def all_pinned():
                session = requests.Session()
                session.mount("http://", _ResetOnClose())
                reply = self._exchange(session, "GET", "/healthz", None, None, {})
                if reply.worker is not None and reply.worker not in pins:
                    pins[reply.worker] = Pinned(self, session, reply.worker)
                else:
                    session.close()
                return len(pins) >= self.workers

            eventually(all_pinned, timeout, interval=0.0, what=f"a connection to each of {self.workers} workers")
            yield pins
        finally:
            for pin in pins.values():
                pin.session.close()

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs) -> Reply:
        return self.request("POST", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until every worker answers ``/readyz`` with a loaded model (the master forks them lazily)."""
        ready: set[int] = set()

        def every_worker_ready():
            assert self.proc.poll() is None, f"server exited during start:\n{self.log_tail()}"
            try:
                reply = self.get("/readyz")
            except requests.RequestException as exc:
                raise AssertionError(f"not answering yet: {exc}") from None
            if reply.status == 200 and reply.json().get("model_version") and reply.worker is not None:
                ready.add(reply.worker)
            return len(ready & self.worker_pids()) >= self.workers

        eventually(every_worker_ready, timeout, interval=0.1, what=f"{self.workers} ready workers")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - leave nothing running
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
