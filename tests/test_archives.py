"""An archive: a catalog whose newest article is weeks old. Training and serving widen the
freshness window to the newest articles instead of serving empty lists."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from recommender.datasets.ingest import import_articles, import_events
from recommender.datasets.synthetic import generate
from recommender.models.fitting import train
from recommender.params import RankingParams, TrainParams
from recommender.serving.engine import Engine
from recommender.store import SQLiteStore

DAY = 86_400.0


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """300 articles and their readers, the newest published 60 days before now, trained now."""
    root = tmp_path_factory.mktemp("archive")
    end = datetime.now(timezone.utc) - timedelta(days=60)
    data = generate(n_articles=300, n_users=120, days=5, seed=9, end=end)
    paths = data.write_jsonl(root / "sample")
    store = SQLiteStore(root / "newsrec.sqlite3")
    import_articles(store, paths["articles"], show_progress=False)
    import_events(store, paths["events"], show_progress=False)
    version, built = train(store, root / "models", as_of=time.time(), seed=0, promote=True)
    yield store, root / "models", data, built
    store.close()


def test_training_widens_an_empty_window_to_the_newest_articles(archive):
    store, models_dir, data, built = archive
    n = built.report["articles"]
    assert n == 300 and built.report["window_articles"] == RankingParams().min_window_articles
    start = built.documents["params"]["window_start"]
    newest = sorted(a["published_at"] for a in data.articles)[-RankingParams().min_window_articles:]
    assert built.arrays["published_at"][start:].tolist() == pytest.approx(
        [datetime.fromisoformat(t).timestamp() for t in newest])


def test_an_archive_serves_related_lists_and_feeds(archive):
    store, models_dir, data, _ = archive
    engine = Engine(store, models_dir)  # the wall clock: 60 days after the newest article
    anchor = data.articles[-1]["article_id"]
    related = engine.related(anchor, limit=5)
    assert len(related.items) == 5 and anchor not in [i.article_id for i in related.items]
    reader = next(e["user_id"] for e in data.events if e["event"] == "read")
    assert len(engine.feed(reader, limit=10).items) == 10
    assert len(engine.feed("a-new-reader", limit=10).items) == 10


def test_a_window_with_enough_articles_is_not_widened(archive):
    store, models_dir, data, _ = archive
    newest = max(datetime.fromisoformat(a["published_at"]).timestamp() for a in data.articles)
    params = TrainParams(ranking=RankingParams(min_window_articles=50, window_days=2.0))
    built = train(store, models_dir, params, as_of=newest + 60, seed=0)[1]
    in_two_days = sum(datetime.fromisoformat(a["published_at"]).timestamp() >= newest + 60 - 2 * DAY
                      for a in data.articles)
    assert in_two_days > 50 and built.report["window_articles"] == in_two_days


def test_newsrec_sample_train_serve_with_defaults_serves_lists(tmp_path, monkeypatch, capsys):
    from recommender.config import Settings
    from training.cli import main

    for name in ("NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    assert main(["sample", "--articles", "120", "--users", "60", "--days", "3", "--ingest"]) == 0
    capsys.readouterr()
    assert main(["train", "--json", "--promote"]) == 0
    assert json.loads(capsys.readouterr().out)["window_articles"] == 120
    settings = Settings.from_env()
    engine = Engine(SQLiteStore(settings.db_path), settings.models_dir)
    feed = engine.feed("someone", limit=10)
    assert len(feed.items) == 10
    assert len(engine.related(feed.items[0].article_id, limit=5).items) == 5


def test_fallback_articles_are_the_newest_when_the_last_days_hold_too_few(archive):
    from recommender.domain import Article
    from recommender.serving.engine import fallback_articles

    store, _, data, _ = archive
    now = time.time()
    published = sorted(datetime.fromisoformat(a["published_at"]).timestamp() for a in data.articles)
    chosen = fallback_articles(store, now, 3.0, 200)
    assert [s.article.published_at for s in chosen] == pytest.approx(published[-200:])
    assert len(fallback_articles(store, now, 3.0, 1000)) == 300
    assert fallback_articles(store, now, 3.0, 0) == []
    # enough recent articles: only those (scheduled ones included, the ranking hides them until due)
    store_with_news = SQLiteStore(store.path.parent / "news.sqlite3")
    news = [Article(f"n{i}", f"Berita {i}", "Isi.", "Nasional", now - 3600 * i) for i in range(5)]
    store_with_news.upsert_articles(news + [Article("later", "Terjadwal", "Isi.", "Nasional", now + 7200)])
    ids = [s.article.article_id for s in fallback_articles(store_with_news, now, 3.0, 5)]
    assert ids == ["n4", "n3", "n2", "n1", "n0", "later"]
    assert len(fallback_articles(store_with_news, now, 3.0, 6)) == 6
