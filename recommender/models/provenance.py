"""Where a model or a report came from: the code that made it and the data it saw.

Every bundle manifest, training summary and evaluation or tuning report names the code
version (the git commit, and whether the checkout had uncommitted changes, when run from a
git checkout; the installed package version otherwise) and a fingerprint of the data, so
two figures can be told apart or matched later. The fingerprint is built from positions and
counts the job already has (the store's newest event sequence number, the events and
articles it loaded, their time range, the parameters): cheap at 10M events, no row hashed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

PACKAGE = "newsrec"
_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages) holding recommender/


def code_version(root: Path | None = None) -> dict[str, Any]:
    """``{"git_sha", "dirty", "package_version"}``; ``git_sha`` and ``dirty`` are None outside a
    git checkout (or without git). ``dirty``: tracked files differ from the commit (untracked files,
    e.g. ``var/``, do not count)."""
    root = _ROOT if root is None else Path(root)
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = None
    sha = dirty = None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip() or None
        if sha is not None:
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout
            dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        sha = dirty = None
    return {"git_sha": sha, "dirty": dirty, "package_version": version}


def describe(version: Mapping[str, Any]) -> str:
    """One line for people: ``git 1a2b3c4d5e6f (dirty)`` or ``newsrec 0.1.0``."""
    if version.get("git_sha"):
        return f"git {version['git_sha'][:12]}" + (" (dirty)" if version.get("dirty") else "")
    return f"{PACKAGE} {version.get('package_version') or 'unknown'}"


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-able ``parts`` (keys sorted): ``sha256:`` + 16 hex digits."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=_plain)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def article_digest(keys: np.ndarray, updated_at: np.ndarray) -> str:
    """A hash of the articles a job read (store key and last update of each, shape (n,)): an edit,
    a new article or a takedown restored changes it. Two arrays' bytes, not a row loop."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(keys, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(updated_at, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")
