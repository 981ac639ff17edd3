"""The Store contract suite (tests/store_contract.py) against every backend: the embedded SQLite
one and PostgreSQL (a database of its own per test; see ``pg_fixtures``)."""

from __future__ import annotations

import pytest

from recommender.store import SQLiteStore

from .store_contract import StoreContract


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        store = SQLiteStore(tmp_path / "contract.sqlite3")
        yield store
        store.close()


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, postgres_db):
        from recommender.store.postgres import PostgresStore

        store = PostgresStore(postgres_db, pool_size=12)
        yield store
        store.close()
