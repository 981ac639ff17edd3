"""Flask ``app``/``client`` fixtures and a small in-memory engine for API shell tests.

Import the fixtures into a test module with
``from tests.api_fixtures import app, client, creds, engine, home  # noqa: F401``.
The fake engine follows the ``recommender.engine.Engine`` contract closely enough to test the
HTTP shell (status codes, shapes, auth); ranking behaviour is tested against the real engine in
``tests/test_api_engine.py``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import pytest

from api import create_app
from recommender.models.bundle import BundleError
from recommender.domain import Article, Interaction, Preferences
from recommender.serving.results import InvalidCursor, NotFound, RankedItem, RankedList
from recommender.security import KEYS_FILE, KeyStore, ReaderTokens
from recommender.store import StoreUnavailable

T0 = 1_793_466_000.0  # 2026-11-01 00:00 WIB
SECRET = "test-secret-0123456789abcdef"
CATEGORIES = ("Olahraga", "Ekonomi", "Teknologi")

ARTICLES = tuple(
    Article(article_id=f"a{i}", title=f"Berita nomor {i}", body="Isi.", category=CATEGORIES[i % 3],
            published_at=T0 + 60.0 * i, region="Jabar" if i % 2 else None, url=f"https://portal.example/{i}")
    for i in range(1, 9)
)


class FakeEngine:
    """Newest-first lists over in-memory articles; switches simulate store and bundle failures."""

    def __init__(self, articles=ARTICLES):
        self.articles = {a.article_id: a for a in articles}
        self.events: dict[str, Interaction] = {}
        self.prefs: dict[str, Preferences] = {}
        self.forgotten: dict[str, float] = {}
        self.model_version: str | None = None
        self.store_down = False
        self.explode = False
        self.started = False
        self.closed = False
        self.last_reload_error: str | None = None
        self.calls: list[tuple] = []

    def _ranked(self, exclude: set[str], limit: int, offset: int = 0) -> tuple[RankedItem, ...]:
        pool = sorted((a for a in self.articles.values() if a.article_id not in exclude),
                      key=lambda a: -a.published_at)
        return tuple(RankedItem(a.article_id, a.title, a.url, a.category, a.region, a.published_at,
                                1.0 / (1 + offset + i), "baru terbit") for i, a in enumerate(pool[offset:offset + limit]))

    def _list_id(self, *parts) -> str:
        return "L" + hashlib.sha256(repr(parts).encode()).hexdigest()[:12]

    def related(self, article_id, limit=10, user_id=None):
        self.calls.append(("related", article_id, limit, user_id))
        if self.explode:
            raise RuntimeError("secret internal detail /srv/models/x.npy")
        if article_id not in self.articles:
            raise NotFound(f"no article {article_id!r}")
        read = {e.article_id for e in self.events.values() if e.user_id == user_id}
        items = self._ranked({article_id} | read, limit)
        strategy = "item-knn" if self.model_version else "recent"
        return RankedList(items, strategy, self.model_version, self._list_id(article_id, user_id))

    def log_ranked(self, ranked, user_id=None):
        self.calls.append(("log_ranked", ranked.list_id, user_id))

    def feed(self, user_id, limit=20, cursor=None):
        self.calls.append(("feed", user_id, limit, cursor))
        offset = 0
        if cursor is not None:
            if not cursor.startswith("p") or not cursor[1:].isdigit():
                raise InvalidCursor("cursor is not one this server issued")
            offset = int(cursor[1:])
        items = self._ranked(set(), limit, offset)
        more = offset + limit < len(self.articles)
        return RankedList(items, "recent", self.model_version, self._list_id(user_id, offset),
                          next_cursor=f"p{offset + limit}" if more else None)

    def record_events(self, events):
        if self.store_down:
            raise StoreUnavailable("database is busy: locked")
        inserted = 0
        for e in events:
            if e.identity() not in self.events:
                self.events[e.identity()] = e
                inserted += 1
        return inserted, len(events) - inserted

    def publish_articles(self, articles):
        if self.store_down:
            raise StoreUnavailable("database is busy: locked")
        for a in articles:
            self.articles[a.article_id] = a
        return len(articles)

    def takedown(self, article_id):
        return self.articles.pop(article_id, None) is not None

    def forgotten_at(self, user_id):
        if self.store_down:
            raise StoreUnavailable("database is busy: locked")
        return self.forgotten.get(user_id)

    def restore(self, article_id):
        return article_id in self.articles

    def forget_user(self, user_id):
        self.forgotten[user_id] = time.time()
        gone = [k for k, e in self.events.items() if e.user_id == user_id]
        for k in gone:
            del self.events[k]
        prefs = int(self.prefs.pop(user_id, None) is not None)
        return {"events": len(gone), "preferences": prefs, "user": int(bool(gone) or bool(prefs))}

    def get_preferences(self, user_id):
        return self.prefs.get(user_id)

    def set_preferences(self, prefs):
        self.prefs[prefs.user_id] = prefs

    def reload(self, version=None, before_swap=None):
        if version == "broken":
            self.last_reload_error = "refusing to load bundle broken: manifest.json is missing"
            raise BundleError(self.last_reload_error)
        if before_swap is not None:  # as the real engine: what it raises leaves the serving version serving
            before_swap(version or "20261101T000000Z")
        self.model_version = version or "20261101T000000Z"
        self.last_reload_error = None
        return self.model_version

    def maybe_reload(self):
        return False

    def status(self):
        if self.store_down:
            raise StoreUnavailable("database is busy: locked")
        return {"model_version": self.model_version, "degraded": self.model_version is None,
                "reasons": [] if self.model_version else ["no model bundle; serving recent articles"],
                "last_reload_error": self.last_reload_error, "articles_in_window": len(self.articles)}

    def start_background(self):
        self.started = True

    def close(self):
        self.closed = True


@dataclass(frozen=True)
class Creds:
    """Working credentials for one app: a key of every role and reader tokens."""

    site: str
    admin: str
    tokens: ReaderTokens
    cms: str = ""
    editor: str = ""

    def token(self, user_id: str, ttl: int = 600) -> str:
        return self.tokens.issue(user_id, ttl)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def app(home, engine):
    return create_app({"TESTING": True, "NEWSREC_HOME": str(home), "ENGINE": engine,
                       "NEWSREC_TOKEN_SECRET": SECRET})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def creds(app, home):
    keys = KeyStore(home / KEYS_FILE)
    site, _ = keys.add("site", "portal")
    admin, _ = keys.add("admin", "ops")
    cms, _ = keys.add("cms", "newsroom")
    editor, _ = keys.add("editor", "desk")
    return Creds(site=site, admin=admin, tokens=ReaderTokens(SECRET.encode()), cms=cms, editor=editor)


def event(user: str = "u1", article: str = "a1", kind: str = "click", **over) -> dict:
    record = {"user_id": user, "article_id": article, "event": kind, "ts": "2026-11-01T08:00:00+07:00"}
    record.update(over)
    return record
