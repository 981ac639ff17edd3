"""Settings read from the environment once, at the edge (CLI or app factory)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

ENV_HOME = "NEWSREC_HOME"
ENV_DB = "NEWSREC_DB"
ENV_MODELS = "NEWSREC_MODELS"


@dataclass(frozen=True)
class Settings:
    """Where newsrec keeps its working files.

    Parameters
    ----------
    home : Path
        Working folder (``NEWSREC_HOME``, default ``./var``).
    db_path : Path
        SQLite database file (``NEWSREC_DB``, default ``home/newsrec.sqlite3``).
    models_dir : Path
        Model bundles (``NEWSREC_MODELS``, default ``home/models``).
    """

    home: Path
    db_path: Path
    models_dir: Path
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        home = Path(env.get(ENV_HOME) or "var").expanduser()
        db_path = Path(env.get(ENV_DB) or home / "newsrec.sqlite3").expanduser()
        models_dir = Path(env.get(ENV_MODELS) or home / "models").expanduser()
        extra = {k: v for k, v in env.items() if k.startswith("NEWSREC_")}
        return cls(home=home, db_path=db_path, models_dir=models_dir, extra=extra)

    def ensure_dirs(self) -> "Settings":
        """Create the working folders; returns self for chaining."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return self
