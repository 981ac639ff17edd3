"""``newsrec migrate-store``: a whole store copied to another backend serves the same lists.

A generated sample is ingested into SQLite and trained (``conftest.trained``), then given what a
running service adds (a takedown, an edit, served lists, preferences, a forget, an API key, a
promoted model). It is copied to PostgreSQL; the real engine on each store, from the same models
folder and at the same clock, must build the same feeds and related lists, and both stores must
count the same. The bundle was fitted on SQLite: that it catches up on PostgreSQL to the same
state shows that positions and sequence numbers were carried over.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommender.domain import Interaction, Preferences
from recommender.serving.engine import Engine, EngineConfig
from recommender.store import ReadSetRow, SQLiteStore
from recommender.store.base import EditorialRule
from training.cli import main as cli_main
from training.migrate import TargetNotEmpty, comparable_stats, migrate_store


def ids(ranked) -> list[str]:
    return [i.article_id for i in ranked.items]


@pytest.fixture
def busy(trained, tmp_path):
    """A private copy of the trained sample with a service's writes on top."""
    own = trained.clone(tmp_path)
    store = own.store
    readers = sorted(own.readers)[:12]
    engine = own.engine(feature_log_rate=1.0)  # every list's feature vectors logged too
    for reader in readers[:6]:  # served lists, as the service logs them
        engine.feed(reader, limit=10)
    engine.flush_impressions()
    engine.close()
    newest = sorted(own.articles, key=lambda a: own.articles[a]["published_at"])
    store.takedown_article(newest[-1])
    edited = store.get_articles([newest[-2]])[newest[-2]]
    store.upsert_articles([edited.__class__(**{**edited.__dict__, "title": edited.title + " (Diperbarui)"})])
    store.set_preferences(Preferences(readers[1], ("Olahraga",), ()))
    store.forget_user(readers[2])
    store.add_events([Interaction(user_id=readers[3], article_id=newest[-3], event="click", ts=own.now - 30)])
    store.add_api_key("k1", "site", "web", "2026-12-01T00:00:00Z", "a" * 64)
    # an editor's rule (and its audit entries) and an experiment's definition
    store.add_rule(EditorialRule(rule_id="r1", kind="block", scope={"list": "feed"},
                                 target={"article_id": newest[-6]}, created_at=own.now - 60, created_by="cli:test"),
                   who="cli:test")
    store.add_rule(EditorialRule(rule_id="r2", kind="boost", scope={"list": "related"},
                                 target={"category": own.articles[newest[-7]]["category"]}, factor=2.0,
                                 created_at=own.now - 60, created_by="cli:test"), who="cli:test")
    assert store.remove_rule("r2", who="cli:test")
    assert store.create_experiment("exp1", json.dumps({"name": "exp1"}), at=own.now - 30)
    # a heavy reader's read set as training stores it (models.readsets)
    heavy = next(r for r in readers[3:] if store.user_read_bounds(r) is not None)
    row = ReadSetRow(heavy, store.user_read_bounds(heavy)[0], store.user_read_keys(heavy, -1.0, own.now),
                     np.zeros(0, np.int64), np.zeros(0))
    assert store.put_read_sets([row], -1.0, own.now, store.log_position()[1]) == 1
    return own, readers, newest


def test_a_store_copied_to_postgresql_gives_the_same_lists_and_counts(busy, postgres_db):
    from recommender.store.postgres import PostgresStore

    own, readers, newest = busy
    source = own.store
    target = PostgresStore(postgres_db)
    report = migrate_store(source, target, batch=700)  # small batches: several per table
    assert report["rows"]["events"] > 700 and report["rows"]["served_lists"] == 5  # 6 served, 1 reader forgotten
    assert report["rows"]["feature_log"] == 5 and report["rows"]["read_sets"] == 1
    heavy = source.read_set_readers()[0]
    assert target.read_set_readers() == source.read_set_readers() == [heavy]
    copied_set, original_set = (s.user_read_set(heavy, own.now - 7 * 86_400, own.now) for s in (target, source))
    assert sorted(copied_set[0].tolist()) == sorted(original_set[0].tolist()) and copied_set[0].size
    copied, original = target.feature_logs(), source.feature_logs()
    assert [(r.list_id, r.user_id, r.ts, r.offset, r.article_ids, r.names) for r in copied] == [
        (r.list_id, r.user_id, r.ts, r.offset, r.article_ids, r.names) for r in original]
    for a, b in zip(copied, original):
        np.testing.assert_array_equal(a.features, b.features)
    assert comparable_stats(target) == comparable_stats(source)
    assert target.log_position() == source.log_position()
    assert target.live_model() == source.live_model() == own.version
    assert target.deleted_article_ids() == source.deleted_article_ids() == {newest[-1]}
    assert target.forgotten_at(readers[2]) == source.forgotten_at(readers[2]) is not None  # the salt came along
    assert target.api_keys() == source.api_keys()
    assert target.list_rules() == source.list_rules() and [r.rule_id for r in target.list_rules()] == ["r1"]
    assert target.audit_log() == source.audit_log() and len(target.audit_log()) == 3
    assert target.experiments() == source.experiments() and len(target.experiments()) == 1
    assert target.get_preferences(readers[1]) == source.get_preferences(readers[1])
    assert target.user_events(readers[0]) == source.user_events(readers[0])  # served lists' items too

    engines = [Engine(s, own.models_dir, EngineConfig(), clock=lambda: own.now) for s in (source, target)]
    try:
        assert engines[1].model_version == own.version
        for reader in readers:
            lists = [ids(e.feed(reader, limit=10)) for e in engines]
            assert lists[0] == lists[1] and lists[0], reader
        for anchor in newest[-12:-1]:
            lists = [ids(e.related(anchor, limit=8)) for e in engines]
            assert lists[0] == lists[1] and newest[-1] not in lists[1], anchor
        titles = [{i.article_id: i.title for i in e.related(newest[-5], limit=30).items} for e in engines]
        assert titles[0] == titles[1]

        # the copy goes on from where the source stopped: new positions, new keys, followed by the engine
        pos, seq = target.log_position()
        click = Interaction(user_id="after-migration", article_id=newest[-4], event="click", ts=own.now)
        assert target.add_events([click]) == (1, 0)
        new_pos, new_seq = target.log_position()
        assert new_pos > pos and new_seq > seq
        assert engines[1].follow() >= 1 and engines[1]._state.event_cursor == new_seq
        assert newest[-4] not in ids(engines[1].feed("after-migration", limit=30))
    finally:
        for e in engines:
            e.close()

    with pytest.raises(TargetNotEmpty):
        migrate_store(source, target)
    target.close()


def test_the_command_refuses_a_store_with_data_and_copies_back_to_sqlite(busy, postgres_db, tmp_path, monkeypatch,
                                                                       capsys):
    own, _, _ = busy
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEWSREC_DB", str(own.root / "newsrec.sqlite3"))
    assert cli_main(["migrate-store", "--to", postgres_db]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["same_counts"] and printed["target"]["events"] == own.store.stats()["events"] > 0
    assert cli_main(["migrate-store", "--to", postgres_db]) == 1
    assert "holds data already" in capsys.readouterr().err
    assert cli_main(["migrate-store", "--to", postgres_db, "--force"]) == 0  # deletes, then copies again
    assert json.loads(capsys.readouterr().out)["same_counts"]
    # any backend to any other: PostgreSQL back into a new SQLite file
    back = tmp_path / "back.sqlite3"
    assert cli_main(["migrate-store", "--from", postgres_db, "--to", str(back)]) == 0
    capsys.readouterr()
    copy = SQLiteStore(back)
    assert comparable_stats(copy) == comparable_stats(own.store)
    assert copy.log_position() == own.store.log_position()
    assert cli_main(["migrate-store", "--to", str(back), "--from", str(back)]) == 2


def test_the_command_refuses_a_source_that_is_not_there(tmp_path, monkeypatch, capsys):
    """A typo in --from (or NEWSREC_DB) must not copy a new, empty store and report success."""
    target = tmp_path / "target.sqlite3"
    missing = tmp_path / "typo" / "newsrec.sqlite3"
    assert cli_main(["migrate-store", "--from", str(missing), "--to", str(target)]) == 2
    assert f"there is no store at {missing}" in capsys.readouterr().err
    monkeypatch.setenv("NEWSREC_DB", str(missing))
    assert cli_main(["migrate-store", "--to", str(target)]) == 2
    assert "(NEWSREC_DB names it)" in capsys.readouterr().err
    assert not missing.parent.exists() and not target.exists()  # nothing made on either side
