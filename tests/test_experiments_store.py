"""The experiments schema step on both backends: a database from before it keeps its served
lists (experiment columns empty), gains the experiments table, and its reports and the log's
``experiment`` changes are answered from indexes."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from recommender.store import ServedList, SQLiteStore
from recommender.store.base import CHANGE_CODES
from recommender.store.postgres import MIGRATIONS as POSTGRES_MIGRATIONS, PostgresStore
from recommender.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS

from .store_contract import T0, article


def _step(migrations: dict[int, str]) -> int:
    """The schema step that creates the experiments table (later steps run after it again)."""
    return next(v for v, sql in migrations.items() if "TABLE IF NOT EXISTS experiments" in sql)


SQLITE_VERSION, POSTGRES_VERSION = _step(SQLITE_MIGRATIONS), _step(POSTGRES_MIGRATIONS)


def _before_experiments_sqlite(path) -> None:
    with sqlite3.connect(path) as conn:  # what the schema before experiments looked like
        conn.execute("DROP TABLE experiments")
        conn.execute("DROP INDEX served_lists_experiment")
        conn.execute("DROP INDEX changes_experiment")
        for column in ("experiment", "config", "teams"):
            conn.execute(f"ALTER TABLE served_lists DROP COLUMN {column}")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SQLITE_VERSION - 1),))


def _before_experiments_postgres(url) -> None:
    with psycopg.connect(url) as conn:  # what the schema before experiments looked like
        conn.execute("DROP TABLE experiments")
        conn.execute("DROP INDEX changes_experiment")
        conn.execute("ALTER TABLE served_lists DROP COLUMN experiment, DROP COLUMN config, DROP COLUMN teams")
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(POSTGRES_VERSION - 1),))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_database_from_before_experiments_keeps_its_lists_and_gains_them(backend, tmp_path, request):
    if backend == "sqlite":
        location, open_, downgrade, version = tmp_path / "old.sqlite3", SQLiteStore, _before_experiments_sqlite, SQLITE_VERSION
    else:
        location, open_, downgrade, version = request.getfixturevalue("postgres_db"), PostgresStore, \
            _before_experiments_postgres, POSTGRES_VERSION
    store = open_(location)
    store.upsert_articles([article(i) for i in range(3)])
    store.add_served_lists([ServedList("L1", "u1", T0 + 10, ("a0", "a1"), model_version="m1")])
    store.close()
    downgrade(location)
    migrated = open_(location)
    try:
        assert migrated.schema_version() >= version  # and the steps after it
        assert migrated.experiment_lists("e") == []
        assert migrated.create_experiment("e", "{}", T0) is True
        assert migrated.add_served_lists([ServedList("L2", "u1", T0 + 20, ("a2",), variant="B", experiment="e",
                                                     config="m2@abc")]) == 1
        assert [(s.list_id, s.variant, s.config) for s in migrated.experiment_lists("e")] == [("L2", "B", "m2@abc")]
        assert migrated.stats()["served_lists"] == 2  # the list from before is still there
        pos = migrated.changes_after(0, kinds=("experiment",))
        assert [(c.kind, c.ref) for c in pos] == [("experiment", "e")]
        if backend == "sqlite":
            plan = " ".join(str(r) for r in migrated._conn().execute(
                f"EXPLAIN QUERY PLAN SELECT pos FROM changes WHERE pos > 0 AND kind IN ({CHANGE_CODES['experiment']}) ORDER BY pos"))
            assert "changes_experiment" in plan  # the router's poll is an index seek, not a scan of the log
            plan = " ".join(str(r) for r in migrated._conn().execute(
                "EXPLAIN QUERY PLAN SELECT list_id FROM served_lists WHERE experiment = 'e' ORDER BY seq"))
            assert "served_lists_experiment" in plan
    finally:
        migrated.close()
