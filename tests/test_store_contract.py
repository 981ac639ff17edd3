"""The Store contract suite (tests/store_contract.py) against the embedded SQLite backend."""

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
