"""Shared fixtures: a seeded rng and a store in a temporary folder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

# no per-example time limit: these machines are shared and slow down without warning (a 2 ms
# example took 365 ms once); property tests check results, speed lives in benchmarks/
settings.register_profile("newsrec", deadline=None)
settings.load_profile("newsrec")

from recommender.store import SQLiteStore


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def cli_home(tmp_path, monkeypatch):
    """The CLI as a new user runs it: NEWSREC_HOME a new folder, NEWSREC_DB and NEWSREC_MODELS unset."""
    for name in ("NEWSREC_HOME", "NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def store(tmp_path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "newsrec.sqlite3")
    yield s
    s.close()


class TrainedSample:
    """A generated sample, ingested into a store and trained once (module scope: training costs ~1 s)."""

    def __init__(self, root, n_articles=500, n_users=250, days=6, seed=11):
        from recommender.domain import parse_time
        from recommender.datasets.ingest import import_articles, import_events, import_preferences
        from recommender.datasets.synthetic import generate
        from recommender.models.fitting import train

        self.root = root
        self.data = generate(n_articles=n_articles, n_users=n_users, days=days, seed=seed)
        paths = self.data.write_jsonl(root / "sample")
        self.store = SQLiteStore(root / "newsrec.sqlite3")
        import_articles(self.store, paths["articles"], show_progress=False)
        import_events(self.store, paths["events"], show_progress=False)
        import_preferences(self.store, paths["preferences"], show_progress=False)
        self.models_dir = root / "models"
        self.now = max(parse_time(e["ts"], "ts") for e in self.data.events) + 60.0
        self.version, self.built = train(self.store, self.models_dir, as_of=self.now, seed=0, promote=True)
        self.story = {t["article_id"]: t["story_id"] for t in self.data.truth if t["kind"] == "article"}
        self.readers = {t["user_id"]: t for t in self.data.truth if t["kind"] == "user"}
        self.articles = {a["article_id"]: a for a in self.data.articles}

    def clone(self, root) -> "TrainedSample":
        """A private copy (store file and models) for tests that write."""
        import copy
        import shutil

        other = copy.copy(self)
        self.store.close()
        shutil.copy(self.root / "newsrec.sqlite3", root / "newsrec.sqlite3")
        shutil.copytree(self.models_dir, root / "models")
        other.root, other.models_dir = root, root / "models"
        other.store = SQLiteStore(root / "newsrec.sqlite3")
        return other

    def engine(self, **config):
        from recommender.serving.engine import Engine, EngineConfig

        return Engine(self.store, self.models_dir, EngineConfig(**config), clock=lambda: self.now)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedSample:
    return TrainedSample(tmp_path_factory.mktemp("trained"))


from .pg_fixtures import postgres_db, postgres_server  # noqa: E402,F401  (PostgreSQL fixtures for every test module)
from .browser_fixtures import browser, chromium  # noqa: E402,F401  (headless Chromium for tests/test_browser*.py)
