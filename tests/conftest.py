"""Shared fixtures: a seeded rng and a store in a temporary folder."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.store import SQLiteStore


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def store(tmp_path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "newsrec.sqlite3")
    yield s
    s.close()
