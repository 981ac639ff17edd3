"""Store round trips, idempotent upserts and what a reader's deletion leaves behind."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest

from recommender.domain import Article, Interaction, Preferences, ValidationError
from recommender.store import SCHEMA_VERSION, ServedList, SQLiteStore, StoreError
from recommender.store.sqlite import _READER_VERSION_SQL, _history_sql
from tests.store_contract import T0 as CONTRACT_T0
from tests.store_contract import probed_reader

T0 = 1_793_466_000.0  # 2026-11-01 00:00 WIB


def article(i: int, **over) -> Article:
    record = {"article_id": f"a{i}", "title": f"Judul berita {i}", "body": "Isi berita.", "category": "Olahraga",
              "published_at": T0 + i, "tags": ["timnas", "liga 1"], "region": "Jabar", "url": f"https://x/{i}"}
    record.update(over)
    return Article.from_dict(record)


def event(user: str, art: str, kind: str = "click", ts: float = T0 + 100, **over) -> Interaction:
    return Interaction.from_dict({"user_id": user, "article_id": art, "event": kind, "ts": ts, **over})


def test_article_round_trip_and_upsert_updates_in_place(store):
    store.upsert_articles([article(1), article(2)])
    store.upsert_articles([article(1, title="Judul yang diperbaiki", category="Nasional")])
    got = store.get_articles(["a1", "a2", "missing"])
    assert set(got) == {"a1", "a2"}
    assert got["a1"].title == "Judul yang diperbaiki" and got["a1"].category == "Nasional"
    assert got["a2"] == article(2)
    assert store.stats()["articles"] == 2


def test_events_are_stored_once_per_identity(store):
    first = [event("u1", "a1", event_id="e1"), event("u1", "a1", event_id="e2"), event("u2", "a1")]
    assert store.add_events(first) == (3, 0)
    # the same delivery again: explicit ids and content-derived ids both deduplicate
    assert store.add_events(first) == (0, 3)
    assert store.stats()["events"] == 3


def test_events_for_unknown_articles_are_kept(store):
    store.add_events([event("u1", "not-yet-published", "read", dwell_seconds=42)])
    log = store.load_interactions()
    assert [log.article_ids[k] for k in log.article_key] == ["not-yet-published"]
    assert log.dwell[0] == pytest.approx(42)
    assert store.stats()["articles_referenced_without_text"] == 1


def test_load_interactions_is_time_ordered_and_windowed(store):
    events = [event(f"u{i % 3}", f"a{i % 5}", "click", ts=T0 + 1000 - i) for i in range(50)]
    store.add_events(events)
    log = store.load_interactions()
    assert len(log) == 50 and np.all(np.diff(log.ts) >= 0)
    window = store.load_interactions(start=T0 + 961, end=T0 + 990)
    assert window.ts.min() >= T0 + 961 and window.ts.max() < T0 + 990 and len(window) == 29
    assert {log.user_ids[k] for k in log.user_key} == {"u0", "u1", "u2"}


def test_training_load_reads_unmapped_and_leaves_the_connection_as_it_was(store, monkeypatch):
    """A training load reads every page once; mapped, they would all count in the job's RSS."""
    store.add_events([event("u0", "a0", "click", ts=T0 + 1)])
    conn = store._conn()
    before = conn.execute("PRAGMA mmap_size").fetchone()[0]
    assert before > 0  # serving reads through the map
    seen = []
    real = store._load_interactions
    monkeypatch.setattr(store, "_load_interactions",
                        lambda *a: seen.append(conn.execute("PRAGMA mmap_size").fetchone()[0]) or real(*a))
    assert len(store.load_interactions()) == 1
    assert seen == [0] and conn.execute("PRAGMA mmap_size").fetchone()[0] == before


def test_preferences_round_trip(store):
    store.set_preferences(Preferences("u1", ("Olahraga",), ("Jabar", "Bali")))
    store.set_preferences(Preferences("u1", ("Ekonomi",), ()))
    assert store.get_preferences("u1") == Preferences("u1", ("Ekonomi",), ())
    assert store.get_preferences("nobody") is None


def test_forget_user_removes_every_trace(store, tmp_path):
    store.add_events([event("forget-me", "a1", event_id="x1"), event("keep", "a1", event_id="x2")])
    store.set_preferences(Preferences("forget-me", ("Olahraga",), ()))
    removed = store.forget_user("forget-me")
    assert removed == {"events": 1, "preferences": 1, "user": 1}
    assert store.user_events("forget-me") == [] and store.get_preferences("forget-me") is None
    assert [e.user_id for e in store.user_events("keep")] == ["keep"]
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("newsrec.sqlite3"))
    assert b"forget-me" not in raw


def test_takedown_hides_article(store):
    store.upsert_articles([article(1), article(2)])
    assert store.takedown_article("a1") is True
    assert store.takedown_article("nope") is False
    assert set(store.get_articles(["a1", "a2"])) == {"a2"}
    assert [s.article.article_id for s in store.iter_articles()] == ["a2"]
    assert store.deleted_article_ids() == {"a1"}


def test_concurrent_writers_lose_nothing(tmp_path):
    store = SQLiteStore(tmp_path / "db.sqlite3")
    errors: list[Exception] = []

    def writer(w: int) -> None:
        try:
            for b in range(20):
                store.add_events([event(f"u{w}", f"a{i}", event_id=f"w{w}-{b}-{i}") for i in range(10)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.stats()["events"] == 4 * 20 * 10


def test_schema_version_recorded_and_newer_refused(tmp_path):
    path = tmp_path / "db.sqlite3"
    assert SQLiteStore(path).schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer than this code"):
        SQLiteStore(path)


def test_version_1_database_migrates_to_a_covering_history_index(tmp_path):
    """Old databases keep their events and get the index a feed's history read is served from."""
    path = tmp_path / "old.sqlite3"
    store = SQLiteStore(path)
    store.upsert_articles([article(i) for i in range(3)])
    store.add_events([event("u1", "a0", ts=T0 + 10), event("u1", "a2", "read", ts=T0 + 20, dwell_seconds=40.0),
                      event("u1", "a1", "impression", ts=T0 + 30)])
    store.close()
    with sqlite3.connect(path) as conn:  # back to what schema version 1 looked like
        conn.execute("DROP INDEX events_user_cover")
        conn.execute("CREATE INDEX events_user_ts ON events(user_key, ts)")
        conn.execute("ALTER TABLE events DROP COLUMN counted")
        conn.execute("DROP TABLE changes")
        conn.execute("DROP TABLE forgotten")
        conn.execute("DROP TABLE live_model")
        conn.execute("DROP TABLE served_lists")
        conn.execute("DROP TABLE editorial_rules")
        conn.execute("DROP TABLE editorial_audit")
        conn.execute("DROP TABLE feature_log")
        conn.execute("DROP TABLE read_sets")
        conn.execute("DELETE FROM meta WHERE key IN ('event_seq', 'forget_salt')")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    migrated = SQLiteStore(path)
    assert migrated.schema_version() == SCHEMA_VERSION == 14
    assert migrated.live_model() is None  # no version live yet: the engine adopts CURRENT
    assert migrated.log_position() == (0, 3)  # the sequence counter starts after the stored events
    ids, codes, ts, dwell = migrated.user_event_arrays("u1", events=("click", "read", "share"))
    assert ids == ["a0", "a2"] and ts.tolist() == [T0 + 10, T0 + 20] and dwell[1] == 40.0
    conn = migrated._conn()
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "events_user_cover" in names and "events_user_ts" not in names
    plan = [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + _history_sql(("click", "read", "share", "hide"),
                                                                            False),
                                        {"user": "u1", "since": -1.0, "limit": 300})]
    seeks = [p for p in plan if "COVERING INDEX events_user_cover (user_key=? AND event=? AND ts>?)" in p]
    reads = [p for p in plan if "COVERING INDEX events_user_read_ts (user_key=? AND ts>?)" in p]
    assert len(seeks) == 1 and len(reads) == 1, plan  # the hides, then clicks, reads and shares together
    assert not any(p.startswith("SCAN e") or p.startswith("SCAN events") for p in plan)
    # one type (a feed's impressions): one seek, already in order, no sort
    plan = [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + _history_sql(("impression",), False, seq=True),
                                        {"user": "u1", "since": -1.0, "limit": 500})]
    assert sum("COVERING INDEX events_user_cover (user_key=? AND event=? AND ts>?)" in p for p in plan) == 1
    assert not any("TEMP B-TREE" in p or p.startswith("SCAN") for p in plan), plan


def _reopened_at(path, version: int, *undo: str) -> SQLiteStore:
    """The store's file set back to schema ``version`` (``undo``: what the later migrations made,
    as SQL), then opened again, which migrates it."""
    with sqlite3.connect(path) as conn:
        for statement in undo:
            conn.execute(statement)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    return SQLiteStore(path)


def test_a_schema_11_database_gets_the_probe_index_and_the_probe_uses_it(tmp_path):
    """Schema 12: a reader's hides and posted impressions by seq, so the probe every feed makes
    takes their smallest and largest with index probes instead of scanning them all (SQLite
    answers MIN and MAX from an index only one per subquery)."""
    path = tmp_path / "v11.sqlite3"
    store = SQLiteStore(path)
    first = probed_reader(store, "u")
    store.close()
    migrated = _reopened_at(path, 11, "DROP INDEX events_user_other")
    assert migrated.schema_version() == SCHEMA_VERSION
    assert migrated.reader_version("u") == first
    plan = [r[-1] for r in migrated._conn().execute("EXPLAIN QUERY PLAN " + _READER_VERSION_SQL, {"user": "u"})]
    assert sum("INDEX events_user_other (user_key=?)" in p for p in plan) == 2, plan
    assert not any("events_user_cover" in p for p in plan), plan
    migrated.add_events([event("u", "a2", "impression", ts=CONTRACT_T0 + 5, event_id="late")])  # backdated
    assert migrated.reader_version("u")[3] != first[3]  # still a new largest seq


def test_a_schema_13_database_gets_the_read_set_checkpoint(tmp_path):
    """Schema 14: the table of heavy readers' read sets that training writes; a database without
    it migrates, stores a row and answers the reader's read set from it."""
    from recommender.store import ReadSetRow

    path = tmp_path / "v13.sqlite3"
    store = SQLiteStore(path)
    store.upsert_articles([article(i) for i in range(4)])
    store.add_events([event("u", f"a{i}", ts=T0 + i) for i in range(3)])
    store.close()
    migrated = _reopened_at(path, 13, "DROP TABLE read_sets")
    assert migrated.schema_version() == SCHEMA_VERSION
    key = migrated.article_keys([f"a{i}" for i in range(4)])
    first, hi = migrated.user_read_bounds("u")
    row = ReadSetRow("u", first, np.array([key["a0"], key["a3"]]), np.zeros(0, np.int64), np.zeros(0))
    assert migrated.put_read_sets([row], T0 - 10, T0 + 50, hi) == 1
    assert sorted(migrated.user_read_set("u", T0 - 5, T0 + 60)[0].tolist()) == sorted([key["a0"], key["a3"]])


def test_a_schema_12_database_gets_the_reads_by_time_and_a_profile_reads_them_in_one_range(tmp_path):
    """Schema 13: a reader's clicks, reads and shares by time, so a profile's newest 300 of them
    are one index range already in order (no sort of three ranges); the same rows as before."""
    path = tmp_path / "v12.sqlite3"
    store = SQLiteStore(path)
    store.upsert_articles([article(i) for i in range(6)])
    store.add_events([event("u", f"a{i}", ("click", "read", "share")[i % 3], ts=T0 + (7 * i) % 5,
                            dwell_seconds=float(i)) for i in range(6)]
                     + [event("u", "a0", "hide", ts=T0 + 9), event("v", "a1", ts=T0 + 1)])
    before = store.user_event_keys("u", limit=5, events=("click", "read", "share"))
    store.close()
    migrated = _reopened_at(path, 12, "DROP INDEX events_user_read_ts")
    assert migrated.schema_version() == SCHEMA_VERSION
    after = migrated.user_event_keys("u", limit=5, events=("click", "read", "share"))
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after))
    keys = migrated.article_keys(["a5", "a3", "a1", "a4", "a2"])
    assert after[0].tolist() == [keys[a] for a in ("a5", "a3", "a1", "a4", "a2")]  # of a0 and a5 (both at T0),
    assert after[2].tolist() == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4]  # the later posted; oldest first
    plan = [r[-1] for r in migrated._conn().execute(
        "EXPLAIN QUERY PLAN " + _history_sql(("click", "read", "share"), False), {"user": "u", "since": -1.0,
                                                                                  "limit": 300})]
    assert sum("COVERING INDEX events_user_read_ts (user_key=? AND ts>?)" in p for p in plan) == 1, plan
    assert not any("TEMP B-TREE" in p or "events_user_cover" in p for p in plan), plan


@pytest.mark.parametrize("older", [3, 5])
def test_an_older_database_gets_served_lists_and_keeps_its_sequence(tmp_path, older):
    """Schema 6 adds the served-lists table (on a database at 3, or at 5: staged models took 5
    first, so a database at 5 never ran a 4); the events' counter goes on where it was."""
    path = tmp_path / f"v{older}.sqlite3"
    store = SQLiteStore(path)
    store.upsert_articles([article(i) for i in range(3)])
    store.add_events([event("u1", "a0", ts=T0 + 10), event("u1", "a1", "impression", ts=T0 + 20)])
    store.close()
    with sqlite3.connect(path) as conn:  # back to what that schema version looked like
        conn.execute("DROP TABLE served_lists")
        conn.execute("DROP TABLE editorial_rules")
        conn.execute("DROP TABLE editorial_audit")
        if older < 5:
            conn.execute("DROP TABLE live_model")
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(older),))
    migrated = SQLiteStore(path)
    assert migrated.schema_version() == SCHEMA_VERSION
    _, seq = migrated.log_position()
    assert seq == 2 and migrated.add_served_lists([ServedList("L1", "u1", T0 + 30, ("a2", "a0"))]) == 1
    assert migrated.log_position()[1] == 3 and migrated.stats()["events_by_type"]["impression"] == 3
    conn = migrated._conn()
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'served_lists'")}
    assert {"served_lists", "served_lists_user", "served_lists_ts"} <= names
    blob = conn.execute("SELECT article_keys FROM served_lists").fetchone()[0]
    keys = migrated.article_keys(["a2", "a0"])
    assert np.frombuffer(blob, dtype="<i8").tolist() == [keys["a2"], keys["a0"]]  # int64 little-endian
    # a reader's lists are found through their index, not by scanning every list
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN DELETE FROM served_lists WHERE user_key = 1"))
    assert "served_lists_user" in plan


def test_history_is_newest_first_across_types_and_skips_newer_impressions(store):
    store.upsert_articles([article(i) for i in range(6)])
    store.add_events([event("u", "a0", "click", ts=T0 + 1), event("u", "a1", "read", ts=T0 + 3, dwell_seconds=30.0),
                      event("u", "a2", "share", ts=T0 + 2), event("u", "a3", "click", ts=T0 + 3)]
                     + [event("u", f"a{i % 6}", "impression", ts=T0 + 100 + i, list_id=f"L{i}", position=0)
                        for i in range(500)])
    ids, codes, ts, dwell = store.user_event_arrays("u", limit=3, events=("click", "read", "share"))
    assert ids == ["a2", "a1", "a3"] and ts.tolist() == [T0 + 2, T0 + 3, T0 + 3]  # same second: stored order
    keys, codes2, ts2, _ = store.user_event_keys("u", limit=3, events=["share", "read", "click"])
    assert [store.article_ids_for_keys(keys.tolist())[k] for k in keys.tolist()] == ids
    assert codes.tolist() == codes2.tolist() == [3, 2, 1]
    everything = store.user_events("u", limit=2)
    assert [e.event for e in everything] == ["impression", "impression"] and everything[-1].ts == T0 + 599


@pytest.mark.parametrize(
    "record, message",
    [
        ({"user_id": "", "article_id": "a", "event": "click", "ts": T0}, "user_id"),
        ({"user_id": "u", "article_id": "../etc", "event": "click", "ts": T0}, "article_id"),
        ({"user_id": "u", "article_id": "a", "event": "like", "ts": T0}, "event must be one of"),
        ({"user_id": "u", "article_id": "a", "event": "read", "ts": "kemarin"}, "ISO-8601"),
        ({"user_id": "u", "article_id": "a", "event": "read", "ts": T0, "dwell_seconds": -3}, "dwell_seconds"),
        ({"user_id": "u'; DROP TABLE events;--", "article_id": "a", "event": "click", "ts": T0}, "user_id"),
    ],
)
def test_bad_events_are_rejected_with_reason(record, message):
    with pytest.raises(ValidationError, match=message):
        Interaction.from_dict(record)


def test_naive_time_is_read_as_wib():
    a = Article.from_dict({"article_id": "a", "title": "t", "category": "Nasional",
                           "published_at": "2026-11-01T00:00:00"})
    assert a.published_at == T0


def test_read_keys_cover_every_read_in_a_time_range_from_the_covering_index(store):
    # 400 reads of 400 articles, clicks and a share of some, impressions of others
    store.add_events([event("heavy", f"a{i}", "read", ts=T0 + i, dwell_seconds=30) for i in range(400)])
    store.add_events([event("heavy", "a3", "click", ts=T0 + 3), event("heavy", "a5", "share", ts=T0 + 500),
                      event("heavy", "seen-only", "impression", ts=T0 + 10), event("other", "a401", "read")])
    keys = store.article_keys([f"a{i}" for i in range(402)] + ["seen-only", "never-mentioned"])
    assert "never-mentioned" not in keys and "a400" not in keys and len(keys) == 402
    got = store.user_read_keys("heavy", since=T0)
    assert got.dtype == np.int64 and np.all(np.diff(got) > 0)
    assert got.tolist() == sorted(keys[f"a{i}"] for i in range(400))  # distinct, no impression, no other reader
    assert store.user_read_keys("heavy", since=T0 + 100, until=T0 + 199).tolist() == sorted(
        keys[f"a{i}"] for i in range(100, 200))
    assert store.user_read_keys("heavy", since=T0 + 450).tolist() == [keys["a5"]]
    assert store.user_read_keys("nobody", since=T0).size == 0
    plan = " ".join(str(r) for r in store._conn().execute(
        "EXPLAIN QUERY PLAN SELECT article_key FROM events WHERE user_key = 1 AND event = 2 AND ts >= 0 AND ts <= 1"))
    assert "COVERING INDEX events_user_cover" in plan


def test_newest_articles_skip_taken_down_and_scheduled_ones(store):
    store.upsert_articles([article(i) for i in range(10)])
    store.takedown_article("a8")
    newest = store.newest_articles(3, published_until=T0 + 8.5)
    assert [s.article.article_id for s in newest] == ["a5", "a6", "a7"]  # oldest first
    assert [s.article.article_id for s in store.newest_articles(2)] == ["a7", "a9"]
    assert store.newest_articles(0) == []


def test_model_changes_are_found_through_their_own_index(store):
    """Every worker asks once a second for ``model`` changes since its last one: an index seek,
    not a scan of every event batch since the last promotion."""
    plan = [r[-1] for r in store._conn().execute(
        "EXPLAIN QUERY PLAN SELECT pos, kind, ref, lo, hi, at FROM changes WHERE pos > ? AND kind IN (6) "
        "ORDER BY pos LIMIT ?", (0, 10))]
    assert any("USING INDEX changes_model" in p for p in plan), plan
    store.upsert_articles([article(1)])
    assert store.promote_model("20261127T151300Z-1a2b3c", expected=None)
    store.add_events([event("u1", "a1")])
    assert [(c.kind, c.ref) for c in store.changes_after(0, kinds=("model",))] == [
        ("model", "20261127T151300Z-1a2b3c")]


def test_a_schema_10_database_gets_the_feature_log_and_keeps_its_rows(tmp_path):
    """Schema 11 adds the feature log (a new table and its two indexes; nothing else changes)."""
    from recommender.store import FeatureLogRow

    path = tmp_path / "v10.sqlite3"
    store = SQLiteStore(path)
    store.upsert_articles([article(i) for i in range(3)])
    store.add_served_lists([ServedList("L1", "u1", T0 + 30, ("a2", "a0"))])
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE feature_log")
        conn.execute("UPDATE meta SET value='10' WHERE key='schema_version'")
    migrated = SQLiteStore(path)
    assert migrated.schema_version() == SCHEMA_VERSION and migrated.stats()["served_lists"] == 1
    row = FeatureLogRow("L1", "u1", T0 + 30, ("a2", "a0"), ("blend",), np.array([[0.5], [0.25]]))
    assert migrated.add_feature_logs([row]) == 1
    conn = migrated._conn()
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN DELETE FROM feature_log WHERE user_key = 1"))
    assert "feature_log_user" in plan
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN DELETE FROM feature_log WHERE ts < 5"))
    assert "feature_log_ts" in plan
