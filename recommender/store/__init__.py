"""Durable storage: the :class:`Store` contract (``base``) and its backends (``sqlite``).

Imports only ``recommender.domain``; everything above (models, serving, evaluation, the jobs)
reaches the database through :class:`Store` and :func:`open_store`.
"""

from __future__ import annotations

from pathlib import Path

from .base import Change, InteractionLog, ServedList, Store, StoredArticle, StoreDiskError, StoreError, StoreUnavailable
from .sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteStore

__all__ = ["Change", "InteractionLog", "ServedList", "StoreDiskError", "MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore", "Store", "StoreError",
           "StoreUnavailable", "StoredArticle", "open_store"]


def open_store(db_path: str | Path) -> Store:
    """Open the store for a path (SQLite, the embedded default)."""
    return SQLiteStore(db_path)
