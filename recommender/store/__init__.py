"""Durable storage: the :class:`Store` contract (``base``) and its backends (``sqlite``, the
embedded default, and ``postgres``, a database shared by every host).

Imports only ``recommender.domain`` and ``recommender.config``; everything above (models,
serving, evaluation, the jobs) reaches the database through :class:`Store` and :func:`open_store`.
"""

from __future__ import annotations

from pathlib import Path

from recommender.config import split_db_location

from .base import (PROFILE_EVENTS, AuditEntry, Change, EditorialRule, ExperimentList, FeatureLogRow, InteractionLog,
                   ReaderReads, ReaderVersion, ReadSetRow, ServedList, Store, StoredArticle, StoreDiskError,
                   StoredExperiment, StoreError, StoreUnavailable, WriteWatch)
from .sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteStore

__all__ = ["PROFILE_EVENTS", "ReaderReads", "ReaderVersion", "ReadSetRow", "AuditEntry", "Change", "EditorialRule", "ExperimentList", "FeatureLogRow", "StoredExperiment", "InteractionLog", "ServedList", "StoreDiskError", "MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore", "Store", "StoreError",
           "StoreUnavailable", "StoredArticle", "WriteWatch", "open_store"]


def open_store(location: str | Path) -> Store:
    """Open the store ``NEWSREC_DB`` names.

    ``postgresql://user@host:port/dbname`` (or ``postgres://``) opens :class:`~.postgres.PostgresStore`;
    a file path or ``sqlite:///path`` opens :class:`SQLiteStore` (created if missing).
    """
    url, path = split_db_location(location)
    if url is not None:
        from .postgres import PostgresStore  # psycopg is imported only by those who use it

        return PostgresStore(url)
    return SQLiteStore(path)
