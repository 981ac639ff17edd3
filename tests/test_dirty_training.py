"""Training on dirty data: it finishes and reports what it skipped, or refuses with a message that
says what to fix, and it never publishes a bundle the service could not serve."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommender.models.bundle import list_versions, load_bundle, read_current
from recommender.domain import Article, Interaction, parse_time
from recommender.serving.engine import Engine
from recommender.datasets.ingest import import_articles, import_events
from recommender.models.served import ServingModel
from recommender.store import SQLiteStore
from recommender.datasets.synthetic import generate
from recommender.models import fitting as pipeline
from training.cli import main as cli_main
from recommender.models.fitting import TrainingError, build_model, repeated_events, train

DAY = 86_400.0


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A small generated sample written once; each test ingests its own copy."""
    root = tmp_path_factory.mktemp("dirty")
    data = generate(n_articles=80, n_users=40, days=3, seed=5)
    paths = data.write_jsonl(root / "sample")
    now = max(parse_time(e["ts"], "ts") for e in data.events) + 60.0
    return data, paths, now


def ingest(sample, path) -> SQLiteStore:
    _, paths, _ = sample
    store = SQLiteStore(path)
    import_articles(store, paths["articles"], show_progress=False)
    import_events(store, paths["events"], show_progress=False)
    return store


def finite(built) -> list[str]:
    return [k for k, a in built.arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]


def test_duplicates_unknown_articles_and_future_times_are_skipped_and_reported(sample, tmp_path, monkeypatch,
                                                                               capsys):
    """Dirt added to a clean store changes nothing in the model (every array is bitwise the clean
    one) and each kind of dirt is counted in the report and the ``newsrec train`` summary."""
    data, paths, now = sample
    clean = ingest(sample, tmp_path / "clean.sqlite3")
    reference = build_model(clean, as_of=now, seed=0)
    home = tmp_path / "home"
    dirty = ingest(sample, home / "newsrec.sqlite3")
    n_clean = len(dirty.load_interactions(end=now))
    import_events(dirty, paths["events"], show_progress=False)  # the whole file again: stored once
    assert dirty.stats()["events"] == clean.stats()["events"]
    known = [a["article_id"] for a in data.articles if parse_time(a["published_at"], "p") <= now]
    resent = [Interaction.from_dict({**e, "event_id": f"resent-{i}"})
              for i, e in enumerate(data.events[:150]) if parse_time(e["ts"], "t") < now]
    dirty.add_events(resent)  # the site resent 150 events under new ids
    dirty.add_events([Interaction("ghost-reader", f"never-published-{i}", "click", now - 60 - i) for i in range(70)])
    dirty.add_events([Interaction(f"skewed-{i % 4}", known[i], "read", now + 400 * DAY + i, dwell_seconds=30)
                      for i in range(30)])
    dirty.upsert_articles([Article(f"scheduled-{i}", "Jadwal sidang kabinet pekan depan", "Isi embargo.",
                                   "Nasional", now + 2 * DAY + i) for i in range(4)])

    for name in ("NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(home))
    capsys.readouterr()
    assert cli_main(["train", "--json", "--as-of", str(now), "--seed", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events_skipped_duplicate"] == len(resent)
    assert summary["events_skipped_unknown_article"] == 70
    assert summary["events_skipped_future"] == 30
    assert summary["articles_skipped_future"] == reference.report["articles_skipped_future"] + 4
    assert summary["events_used"] == reference.report["events_used"] == n_clean
    assert summary["readers"] == reference.report["readers"]
    bundle = load_bundle(home / "models", summary["version"])
    assert set(bundle.arrays) == set(reference.arrays)
    changed = [k for k, a in reference.arrays.items() if not np.array_equal(np.asarray(bundle.arrays[k]), a)]
    assert not changed, changed


def test_repeated_events_keeps_the_first_of_each_identical_group():
    user = np.array([1, 1, 2, 1, 1, 1, 3])
    article = np.array([7, 7, 7, 7, 8, 7, 7])
    event = np.array([1, 1, 1, 2, 1, 1, 1], dtype=np.int8)
    ts = np.array([10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.5])
    assert repeated_events(user, article, event, ts).tolist() == [False, True, False, False, False, True, False]
    assert not repeated_events(user[:0], article[:0], event[:0], ts[:0]).any()


def test_articles_without_bodies_train_on_titles(sample, tmp_path):
    data, _, now = sample
    store = ingest(sample, tmp_path / "db.sqlite3")
    store.upsert_articles([Article(a["article_id"], a["title"], "", a["category"], parse_time(a["published_at"], "p"),
                                   region=a.get("region")) for a in data.articles])
    version, built = train(store, tmp_path / "models", as_of=now, seed=0, promote=True)
    assert built.report["articles_empty_body"] == built.report["articles"] > 0
    assert not finite(built)
    assert np.linalg.norm(built.arrays["text_vectors"], axis=1).min() > 0  # every title gave a vector
    engine = Engine(store, tmp_path / "models", clock=lambda: now)
    assert engine.model_version == version
    anchor = str(built.arrays["item_ids"][-1])
    assert len(engine.related(anchor, limit=5).items) == 5


def test_one_article_catalog_trains_and_serves(tmp_path):
    store = SQLiteStore(tmp_path / "db.sqlite3")
    t0 = 1_793_466_000.0
    store.upsert_articles([Article("satu-satunya", "Timnas menang atas Vietnam di Jakarta",
                                   "Pertandingan berlangsung seru di stadion utama.", "Olahraga", t0)])
    store.add_events([Interaction(f"r{i}", "satu-satunya", ("click", "read")[i % 2], t0 + 60 + i,
                                  dwell_seconds=40 if i % 2 else None) for i in range(30)])
    version, built = train(store, tmp_path / "models", as_of=t0 + 3600, seed=0, promote=True)
    assert built.report["articles"] == 1 and built.report["events_used"] == 30 and not finite(built)
    engine = Engine(store, tmp_path / "models", clock=lambda: t0 + 3600)
    assert engine.model_version == version
    assert engine.related("satu-satunya", limit=5).items == ()  # nothing else to relate to, and no error
    feed = engine.feed("r1", limit=5)
    assert [i.article_id for i in feed.items] in ([], ["satu-satunya"])
    assert [i.article_id for i in engine.feed("newcomer", limit=5).items] == ["satu-satunya"]


def test_a_reader_with_100k_events_trains(sample, tmp_path):
    """A crawler-like reader: training finishes, reports the heaviest reader, stays finite, and
    the bundle loads and serves that reader."""
    data, _, now = sample
    store = ingest(sample, tmp_path / "db.sqlite3")
    known = [a["article_id"] for a in data.articles if parse_time(a["published_at"], "p") <= now - DAY]
    rng = np.random.default_rng(7)
    picks = rng.integers(0, len(known), 100_000)
    kinds = ("impression", "click", "read")
    store.add_events([Interaction("crawler-1", known[int(j)], kinds[i % 3], now - 1 - i * 0.25,
                                  event_id=f"crawl-{i}", dwell_seconds=5.0 if i % 3 == 2 else None)
                      for i, j in enumerate(picks)])
    version, built = train(store, tmp_path / "models", as_of=now, seed=0, promote=True)
    assert built.report["events_max_per_reader"] == 100_000
    assert built.report["events_used"] >= 100_000 and not finite(built)
    model = ServingModel.from_bundle(load_bundle(tmp_path / "models", version))
    assert model.version == version
    engine = Engine(store, tmp_path / "models", clock=lambda: now)
    assert len(engine.feed("crawler-1", limit=10).items) == 10


def _catalog_stopwords_only(store, t0):
    store.upsert_articles([Article(f"s{i}", "dan yang di ke", "", "Nasional", t0 + i) for i in range(6)])


def _catalog_all_in_the_future(store, t0):
    store.upsert_articles([Article(f"f{i}", f"Berita embargo nomor {i}", "isi", "Nasional", t0 + 30 * DAY + i)
                           for i in range(6)])


def _catalog_empty(store, t0):
    store.add_events([Interaction("r1", "no-such-article", "click", t0)])


@pytest.mark.parametrize("prepare,message", [
    (_catalog_empty, "ingest articles first"),
    (_catalog_all_in_the_future, "no articles published before the training time"),
    (_catalog_stopwords_only, "only stop words"),
])
def test_unusable_catalogs_are_refused_and_publish_nothing(sample, tmp_path, prepare, message):
    """A catalog training cannot use: a clear TrainingError; the CURRENT model stays and no new
    version (or half-written folder) appears."""
    _, _, now = sample
    good_store = ingest(sample, tmp_path / "good.sqlite3")
    models = tmp_path / "models"
    good, _ = train(good_store, models, as_of=now, seed=0, promote=True)
    store = SQLiteStore(tmp_path / "bad.sqlite3")
    prepare(store, now - DAY)
    before = sorted(p.name for p in models.iterdir())
    with pytest.raises(TrainingError, match=message):
        train(store, models, as_of=now, seed=0)
    assert read_current(models) == good and sorted(p.name for p in models.iterdir()) == before


def test_a_model_with_nan_is_never_published(sample, tmp_path, monkeypatch, capsys):
    """Whatever produced it, a bundle with NaN factors is refused before it is written."""
    _, _, now = sample
    home = tmp_path / "home"
    store = ingest(sample, home / "newsrec.sqlite3")
    good, _ = train(store, home / "models", as_of=now, seed=0, promote=True)
    real = pipeline.build_model

    def poisoned(*args, **kwargs):
        built = real(*args, **kwargs)
        built.arrays["item_factors"] = built.arrays["item_factors"].copy()
        built.arrays["item_factors"][3, 0] = np.nan
        return built

    monkeypatch.setattr(pipeline, "build_model", poisoned)
    with pytest.raises(TrainingError, match="NaN or infinite values in item_factors"):
        train(store, home / "models", as_of=now, seed=0)
    for name in ("NEWSREC_DB", "NEWSREC_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSREC_HOME", str(home))
    capsys.readouterr()
    assert cli_main(["train", "--as-of", str(now)]) == 1
    assert "refusing to publish" in capsys.readouterr().err
    assert read_current(home / "models") == good
    assert [v["version"] for v in list_versions(home / "models")] == [good]
