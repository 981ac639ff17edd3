"""Settings read from the environment once, at the edge (CLI or app factory)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

ENV_HOME = "NEWSREC_HOME"
ENV_DB = "NEWSREC_DB"
ENV_MODELS = "NEWSREC_MODELS"


class SettingsError(ValueError):
    """A setting from the environment that cannot be used (the CLI prints it and exits 2)."""


# NEWSREC_DB values that name a database server rather than a file
SERVER_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"  # sqlite:///relative/path, sqlite:////absolute/path

# threads a serving worker runs by backend (`newsrec serve`, api/gunicorn_conf.py): a SQLite read runs
# in the worker (more threads only take turns at its GIL); a PostgreSQL read waits for the server,
# and with 4 threads a replica's workers sat half idle under a feed load (~5 s of CPU each in 10 s)
SERVE_THREADS = {"sqlite": 4, "postgresql": 8}


def reuse_port(raw: str | None) -> bool | None:
    """``NEWSREC_REUSE_PORT`` as a flag (unset: on), None when it is neither 1/0, true/false,
    yes/no nor on/off: ``newsrec serve`` refuses that, and gunicorn's config reads it as on."""
    text = (raw if raw is not None else "1").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    return None


def serve_threads(location: str | os.PathLike) -> int:
    """Default threads a serving worker runs for the ``NEWSREC_DB`` value ``location``."""
    return SERVE_THREADS["postgresql" if os.fspath(location).startswith(SERVER_SCHEMES) else "sqlite"]


def split_db_location(location: str | os.PathLike) -> tuple[str | None, Path | None]:
    """``(server URL, None)`` or ``(None, SQLite file)`` for a ``NEWSREC_DB`` value.

    ``postgresql://...`` and ``postgres://...`` name a PostgreSQL server; ``sqlite:///path`` or a
    plain path a SQLite file; any other ``scheme://`` is refused.
    """
    text = os.fspath(location)
    if text.startswith(SERVER_SCHEMES):
        return text, None
    if text.startswith(SQLITE_SCHEME):
        return None, Path(text[len(SQLITE_SCHEME):]).expanduser()
    if "://" in text:
        raise ValueError(f"NEWSREC_DB {redact_db(text)!r}: unknown database URL; use a file path, sqlite:///path "
                         "or postgresql://user@host:port/dbname")
    return None, Path(text).expanduser()


def redact_db(location: str) -> str:
    """A database location fit for logs and reports: a URL without its password or query string."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0] if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{user}@{host}" if user else host, parts.path, "", ""))


@dataclass(frozen=True)
class Settings:
    """Where newsrec keeps its working files.

    Parameters
    ----------
    home : Path
        Working folder (``NEWSREC_HOME``, default ``./var``).
    db_path : Path or None
        SQLite database file (``NEWSREC_DB``, default ``home/newsrec.sqlite3``); None when
        ``NEWSREC_DB`` is a PostgreSQL URL (see ``db_url``).
    models_dir : Path
        Model bundles (``NEWSREC_MODELS``, default ``home/models``).
    db_url : str or None
        ``NEWSREC_DB`` when it names a PostgreSQL server (``postgresql://...``).
    """

    home: Path
    db_path: Path | None
    models_dir: Path
    extra: Mapping[str, str] = field(default_factory=dict)
    db_url: str | None = None

    @property
    def db(self) -> str:
        """What :func:`recommender.store.open_store` takes: the server URL or the file path."""
        return self.db_url if self.db_url is not None else str(self.db_path)

    @property
    def db_label(self) -> str:
        """The database for messages and reports (a URL without its password)."""
        return redact_db(self.db_url) if self.db_url is not None else str(self.db_path)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        home = Path(env.get(ENV_HOME) or "var").expanduser()
        db_url, db_path = split_db_location(env.get(ENV_DB) or home / "newsrec.sqlite3")
        models_dir = Path(env.get(ENV_MODELS) or home / "models").expanduser()
        extra = {k: v for k, v in env.items() if k.startswith("NEWSREC_")}
        return cls(home=home, db_path=db_path, models_dir=models_dir, extra=extra, db_url=db_url)

    def ensure_dirs(self) -> "Settings":
        """Create the working folders; returns self for chaining. A folder that cannot be made (a
        file there, no permission) is a :class:`SettingsError` naming its variable, not a traceback."""
        folders = [(ENV_HOME, self.home), (ENV_MODELS, self.models_dir)]
        if self.db_path is not None:
            folders.insert(1, (ENV_DB, self.db_path.parent))
        for name, folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SettingsError(f"{name}: cannot use {folder} as a folder ({exc.strerror or exc})") from exc
        return self
