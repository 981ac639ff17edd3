"""PostgreSQL for the tests: a server, and a fresh database per test that is dropped afterwards.

The server is ``NEWSREC_TEST_POSTGRES`` (a URL to a database an admin can connect to; default
``postgresql://postgres@127.0.0.1:5432/postgres``). When nothing answers there, a throwaway
cluster is started from the local PostgreSQL binaries (``initdb``, ``pg_ctl``) in a temporary
folder, and stopped at the end of the session. When that is impossible too, the PostgreSQL tests
are skipped with the reason, or fail if ``NEWSREC_REQUIRE_POSTGRES=1`` (what ``.ci/run`` sets: CI
must not pass by skipping them).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV_URL = "NEWSREC_TEST_POSTGRES"
ENV_REQUIRE = "NEWSREC_REQUIRE_POSTGRES"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> str | None:
    """None when an admin connection to ``url`` works, else why not."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cluster:
    """A throwaway PostgreSQL cluster in a temporary folder (initdb refuses to run as root: then
    it runs as the ``postgres`` system user, if there is one)."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="newsrec-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run initdb as") from None
            shutil.chown(self.folder, "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> str:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (RuntimeError, subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def _unavailable(reason: str):
    message = f"PostgreSQL tests not run: {reason}"
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(f"{message} ({ENV_REQUIRE}=1: CI needs them)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server():
    """An admin URL of a PostgreSQL server (see the module docstring for where it comes from)."""
    if importlib.util.find_spec("psycopg") is None:
        _unavailable("psycopg is not installed (python3 dev.py test installs it)")
    url = os.environ.get(ENV_URL) or DEFAULT_URL
    why = _answers(url)
    if why is None:
        yield url
        return
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        _unavailable(f"no server answers at {url} ({why}) and initdb/pg_ctl are not on PATH")
    cluster = None
    try:
        cluster = _Cluster()
        local = cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        if cluster is not None:
            cluster.stop()
        _unavailable(f"no server answers at {url} ({why}) and a throwaway cluster did not start: {exc}")
    try:
        yield local
    finally:
        cluster.stop()


def database_url(server: str, name: str) -> str:
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@pytest.fixture
def postgres_db(postgres_server):
    """A URL to a new, empty database of its own (dropped after the test)."""
    import psycopg

    name = f"newsrec_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(postgres_server, name)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PgProxy:
    """A TCP forwarder to the PostgreSQL server of ``database`` (a URL) that can go away and come
    back on the same port (the database becoming unreachable, as when a host loses its network);
    :attr:`url` reaches the same database through it."""

    def __init__(self, database: str):
        parts = urlsplit(database)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        user = parts.netloc.rsplit("@", 1)
        netloc = (user[0] + "@" if len(user) == 2 else "") + f"127.0.0.1:{self.port}"
        self.url = urlunsplit(parts._replace(netloc=netloc))
        self.sockets: list = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self) -> None:
        self.open = False
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: close alone may not
        except OSError:
            pass
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restart(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()
