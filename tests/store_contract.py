"""The Store contract as one test suite, run against every backend (``test_store_contract.py``).

A backend's test module subclasses :class:`StoreContract` and provides a ``store`` fixture.
What is checked is what the engine and jobs rely on: the change log (commit order, nothing
skipped, nothing twice, positions never reused), sticky takedowns, reader-scoped idempotency,
one count per reader and hour, a forget that keeps what comes after it, the live model version
(compare-and-set, with its ``model`` change, under concurrent promoters), and served lists stored
as one row each that come back as one impression per item wherever impressions are read.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from recommender.domain import Article, Interaction, Preferences
from recommender.store import EditorialRule, FeatureLogRow, ReaderReads, ServedList, StoreError

T0 = 1_780_000_000.0


def article(i: int, **over) -> Article:
    fields = dict(article_id=f"a{i}", title=f"Judul berita nomor {i}", body=f"Isi berita {i} tentang banjir",
                  category="Nasional", published_at=T0 + i, region="Jabar")
    fields.update(over)
    return Article(**fields)


def event(user: str, art: str, kind: str = "click", ts: float = T0 + 100, **over) -> Interaction:
    return Interaction(user_id=user, article_id=art, event=kind, ts=ts, **over)


def probed_reader(store, user: str = "u") -> tuple | None:
    """A reader with 50 posted impressions and a hide (the probe's other events); their probe
    (``reader_version``), for the tests of the index it reads them from."""
    store.upsert_articles([article(i) for i in range(3)])
    store.add_events([event(user, "a0", "impression", ts=T0 + k, event_id=f"i{k}") for k in range(50)]
                     + [event(user, "a1", "hide", ts=T0 + 60)])
    return store.reader_version(user)


def served(list_id: str, user: str, arts: tuple[str, ...], ts: float = T0 + 100, **over) -> ServedList:
    return ServedList(list_id=list_id, user_id=user, ts=ts, article_ids=arts, **over)


def features(list_id: str, user: str, arts: tuple[str, ...], ts: float = T0 + 100,
             names: tuple[str, ...] = ("blend", "ctr_6h_p10", "age"), **over) -> FeatureLogRow:
    """A feature row whose values say where they came from: item k, feature j holds k + j / 10."""
    X = np.arange(len(arts))[:, None] + np.arange(len(names))[None, :] / 10.0
    return FeatureLogRow(list_id=list_id, user_id=user, ts=ts, article_ids=arts, names=names, features=X, **over)


def followed(store, after: int = 0, limit: int = 7, upto: int | None = None
             ) -> tuple[list[int], list[int], list[float]]:
    """(article keys, codes, times) a follower reads after ``after``, in chunks of ``limit`` rows."""
    keys, codes, times, cursor = [], [], [], after
    while True:
        new, k, c, t = store.event_keys_after(cursor, upto=upto, limit=limit)
        assert new >= cursor
        if new == cursor:
            return keys, codes, times
        keys, codes, times, cursor = keys + k.tolist(), codes + c.tolist(), times + t.tolist(), new


def counted(store, after: int = 0) -> int:
    """How many events a follower counts after ``after``, read in small chunks."""
    return len(followed(store, after)[0])


def follow_while_writing(store, write, writers: int = 4, limit: int = 13) -> list[int]:
    """Article keys a follower reads (``event_keys_after`` in chunks of ``limit`` rows) while
    ``writers`` threads run ``write(w)``, until the writers are done and nothing is left."""
    seen, stop, errors = [], threading.Event(), []

    def follow():
        cursor = 0
        while True:
            done = stop.is_set()
            try:
                cursor, keys, _, _ = store.event_keys_after(cursor, limit=limit)
            except StoreError as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return
            seen.extend(keys.tolist())
            if done and keys.size == 0:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    follower.join(timeout=60)
    assert not errors and not follower.is_alive()
    return seen


class StoreContract:
    """Mix into a test class that provides a ``store`` fixture (an empty store)."""

    def test_every_write_appends_a_change_in_commit_order(self, store):
        start, _ = store.log_position()
        store.upsert_articles([article(1), article(2)])
        store.add_events([event("u1", "a1")])
        store.takedown_article("a1")
        store.restore_article("a1")
        store.set_preferences(Preferences("u1", ("Olahraga",), ()))
        store.forget_user("u1")
        changes = store.changes_after(start)
        assert [c.kind for c in changes] == ["article", "article", "events", "takedown", "restore", "preferences",
                                            "forget"]
        assert [c.ref for c in changes[:2]] == ["a1", "a2"] and changes[3].ref == changes[4].ref == "a1"
        positions = [c.pos for c in changes]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert store.log_position()[0] == positions[-1]
        assert changes[2].lo <= changes[2].hi
        # the log outlives a forget: it never names the reader
        assert changes[5].ref is None and changes[6].ref != "u1"
        assert [c.kind for c in store.changes_after(start, kinds=("takedown", "restore"))] == ["takedown", "restore"]
        assert store.changes_after(positions[-1]) == []

    def test_a_follower_counts_every_event_of_concurrent_writers_once(self, store):
        store.upsert_articles([article(i) for i in range(5)])

        def write(w: int):
            for b in range(20):
                store.add_events([event(f"w{w}-{b}-{k}", f"a{k % 5}", ts=T0 + k) for k in range(5)])

        seen = follow_while_writing(store, write, limit=13)
        assert len(seen) == 4 * 20 * 5 == counted(store)

    def test_sequence_numbers_are_never_reused_after_a_forget(self, store):
        store.upsert_articles([article(1)])
        store.add_events([event("keep", "a1", ts=T0 + 1)])
        store.add_events([event("gone", "a1", ts=T0 + 2, event_id="x"), event("gone", "a1", "read", ts=T0 + 3)])
        _, cursor = store.log_position()  # a follower that counted the forgotten reader's rows
        store.forget_user("gone")
        store.add_events([event("new", "a1", ts=T0 + 4)])
        _, keys, _, _ = store.event_keys_after(cursor)
        assert keys.tolist() == [store.get_stored_articles(["a1"])["a1"].key]

    def test_takedowns_survive_a_reimport_until_restored(self, store):
        store.upsert_articles([article(1)])
        assert store.takedown_article("a1")
        store.upsert_articles([article(1, title="Judul baru")])  # a routine CMS re-import
        stored = store.get_stored_articles(["a1"])["a1"]
        assert stored.deleted and stored.article.title == "Judul baru" and stored.article.body == ""
        assert "a1" not in store.get_articles(["a1"]) and "a1" in store.deleted_article_ids()
        assert store.restore_article("a1") and not store.get_stored_articles(["a1"])["a1"].deleted
        assert not store.restore_article("nope") and not store.takedown_article("nope")

    def test_idempotency_keys_are_scoped_to_the_reader(self, store):
        store.upsert_articles([article(1), article(2)])
        assert store.add_events([event("A", "a1", event_id="e1"), event("B", "a2", event_id="e1")]) == (2, 0)
        assert store.add_events([event("A", "a1", event_id="e1")]) == (0, 1)  # a retried delivery
        assert [e.article_id for e in store.user_events("B")] == ["a2"]

    def test_one_reader_counts_once_per_article_type_and_hour(self, store):
        store.upsert_articles([article(1), article(2)])
        hour = 3600 * (int(T0) // 3600 + 1)
        burst = [event("spam", "a1", ts=hour + k, event_id=f"s{k}") for k in range(300)]
        assert store.add_events(burst) == (300, 0)  # all stored (the reader's history is theirs)
        store.add_events([event("spam", "a1", ts=hour + 400, event_id="late")])  # same hour, later post
        store.add_events([event("spam", "a1", ts=hour + 3600, event_id="next-hour"),
                          event("spam", "a1", "read", ts=hour + 5, event_id="a-read"),
                          event("other", "a1", ts=hour + 5)])
        _, keys, codes, ts = store.event_keys_after(0)
        assert sorted(zip(codes.tolist(), ts.tolist())) == [(1, hour), (1, hour + 5), (1, hour + 3600), (2, hour + 5)]
        # served lists are the service's own exposures: every one counts
        store.add_events([event("spam", "a2", "impression", ts=hour + k, list_id=f"L{k}", position=0)
                          for k in range(3)], source="served")
        assert counted(store) == 4 + 3

    def test_forget_keeps_what_comes_after_and_served_lists_never_recreate_the_reader(self, store):
        store.upsert_articles([article(1), article(2)])
        store.add_events([event("r", "a1", ts=T0 + 1)])
        served_before = event("r", "a2", "impression", ts=T0 + 2, list_id="L1", position=0)
        assert store.forgotten_at("r") is None
        removed = store.forget_user("r")
        assert removed["events"] == 1 and store.forgotten_at("r") is not None
        assert store.forget_user("r")["events"] == 0  # idempotent
        # a list served before the forget, written afterwards (another worker's queue): dropped
        assert store.add_events([served_before], source="served") == (0, 1)
        assert store.user_events("r") == [] and store.stats()["readers"] == 0
        # the reader comes back and posts: kept, and lists served to them from then on are kept too
        later = event("r", "a1", ts=store.forgotten_at("r") + 1, event_id="after")
        assert store.add_events([later]) == (1, 0)
        assert store.add_events([event("r", "a2", "impression", ts=store.forgotten_at("r") + 2, list_id="L2",
                                       position=0)], source="served") == (1, 0)
        assert [e.event for e in store.user_events("r")] == ["click", "impression"]

    def test_a_training_load_says_where_to_resume(self, store):
        store.upsert_articles([article(1)])
        store.add_events([event("u", "a1", ts=T0 + k, event_id=str(k)) for k in range(5)])
        pos, seq = store.log_position()
        log_ = store.load_interactions()
        assert (log_.change_pos, log_.event_seq) == (pos, seq) and len(log_) == 5
        store.add_events([event("v", "a1", ts=T0 + 9)])
        assert store.log_position()[1] > seq and store.first_seq_since(T0 + 9) > seq
        keys = store.event_keys_after(seq)[1]
        assert keys.size == 1

    def test_a_readers_history_comes_back_as_store_keys(self, store):
        store.upsert_articles([article(1), article(2)])
        store.add_events([event("u", "a1", ts=T0 + 1), event("u", "a2", "read", ts=T0 + 2, dwell_seconds=30.0)])
        keys, codes, ts, dwell = store.user_event_keys("u", events=("click", "read"))
        ids = store.article_ids_for_keys(keys.tolist())
        assert [ids[k] for k in keys.tolist()] == ["a1", "a2"] and codes.tolist() == [1, 2]
        assert np.isnan(dwell[0]) and dwell[1] == pytest.approx(30.0)

    def test_a_read_set_starts_from_the_reads_split_at_until(self, store):
        """``user_read_set`` (SQLite: keys as text, the split in SQL) answers as ``user_read_rows``
        split at ``until``: keys up to it, keys and times after it, the largest seq of them all."""
        store.upsert_articles([article(i) for i in range(6)])
        store.add_events([event("u", "a0", ts=T0 - 100), event("u", "a1", "read", ts=T0 + 1.25, dwell_seconds=3.0),
                          event("u", "a1", "share", ts=T0 + 2), event("u", "a2", "hide", ts=T0 + 3),
                          event("u", "a3", "impression", ts=T0 + 4), event("u", "a4", ts=T0 + 5.000001),
                          event("u", "a5", "read", ts=T0 + 99.5), event("v", "a5", ts=T0 + 6)])
        keys = store.article_keys([f"a{i}" for i in range(6)])
        due, later, later_ts, hi = store.user_read_set("u", T0, T0 + 5.000001)
        assert sorted(due.tolist()) == sorted([keys["a1"], keys["a1"], keys["a4"]])
        assert later.tolist() == [keys["a5"]] and later_ts.tolist() == [T0 + 99.5]
        rows_keys, rows_ts, rows_seq = store.user_read_rows("u", T0)
        assert hi == int(rows_seq.max()) and sorted(rows_keys[rows_ts <= T0 + 5.000001].tolist()) == sorted(due.tolist())
        due, later, _, _ = store.user_read_set("u", T0, T0 + 5.0)  # a4 is a microsecond after
        assert sorted(due.tolist()) == [keys["a1"], keys["a1"]] and sorted(later.tolist()) == sorted([keys["a4"],
                                                                                                       keys["a5"]])
        nobody = store.user_read_set("nobody", T0, T0 + 10)
        assert nobody[0].size == 0 and nobody[1].size == 0 and nobody[2].size == 0 and nobody[3] == 0
        assert nobody[0].dtype == np.int64 and nobody[2].dtype == np.float64

    def test_a_readers_reads_together_answer_as_each_read_alone(self, store):
        """``reader_reads`` (PostgreSQL: one pipeline) gives what each read it stands for gives:
        clicks/reads/shares, preferences, hides in a time range, impressions with served lists' items."""
        store.upsert_articles([article(i) for i in range(8)])
        store.add_events([event("u", "a0", ts=T0 + 1), event("u", "a1", "read", ts=T0 + 2, dwell_seconds=9.0),
                          event("u", "a2", "share", ts=T0 + 3), event("u", "a3", "hide", ts=T0 + 4),
                          event("u", "a4", "hide", ts=T0 + 50), event("u", "a5", "impression", ts=T0 + 5),
                          event("v", "a6", ts=T0 + 6)])
        store.add_served_lists([served("L1", "u", ("a6", "a7"), ts=T0 + 7)])
        store.set_preferences(Preferences("u", categories=("Olahraga",), regions=("Jawa Barat",)))
        got = store.reader_reads("u", history=2, preferences=True, hides=(T0, T0 + 10), impressions=10)
        want = store.user_event_keys("u", limit=2, events=("click", "read", "share"))
        assert all(np.array_equal(g, w, equal_nan=True) for g, w in zip(got.history, want))
        assert got.history[1].tolist() == [2, 3]  # the newest two: the read and the share
        assert got.preferences == store.get_preferences("u") and got.preferences.categories == ("Olahraga",)
        keys = store.article_keys(["a3", "a4", "a5", "a6", "a7"])
        assert got.hides.tolist() == [keys["a3"]]  # a4's hide is after the range
        assert got.impressions[0].tolist() == [keys["a5"], keys["a6"], keys["a7"]]
        assert got.impressions[1].tolist() == [0, 0, 0]
        assert store.reader_reads("u", preferences=True) == (None, got.preferences, None, None, None)
        nobody = store.reader_reads("nobody", history=5, preferences=True, hides=(T0, T0 + 10), impressions=5)
        assert nobody.history[0].size == 0 and nobody.preferences is None and nobody.hides.size == 0
        assert nobody.impressions[0].size == 0

    def test_a_readers_reads_together_hold_the_read_set_of_a_heavy_reader_only(self, store):
        """``reader_reads(read_set=...)`` answers ``user_read_set`` for a reader with at least
        ``history`` clicks/reads/shares (the history does not hold them all), None for one with fewer."""
        store.upsert_articles([article(i) for i in range(8)])
        store.add_events([event("u", "a0", ts=T0 + 1), event("u", "a1", "read", ts=T0 + 2, dwell_seconds=9.0),
                          event("u", "a2", "share", ts=T0 + 3), event("u", "a3", "hide", ts=T0 + 4),
                          event("u", "a4", ts=T0 + 20), event("v", "a5", ts=T0 + 5)])
        heavy = store.reader_reads("u", history=4, read_set=(T0 + 2, T0 + 10))
        alone = store.user_read_set("u", T0 + 2, T0 + 10)
        assert heavy.history[0].size == 4 and heavy.read_set[3] == alone[3] > 0
        for got, want in zip(heavy.read_set[:3], alone[:3]):
            assert np.array_equal(np.sort(got), np.sort(want)) and got.dtype == want.dtype
        keys = store.article_keys(["a1", "a2", "a4"])
        assert sorted(heavy.read_set[0].tolist()) == sorted([keys["a1"], keys["a2"]])  # a0 is before since
        assert heavy.read_set[1].tolist() == [keys["a4"]] and heavy.read_set[2].tolist() == [T0 + 20]
        assert store.reader_reads("u", history=5, read_set=(T0 + 2, T0 + 10)).read_set is None  # 4 reads: light
        assert store.reader_reads("u", history=4).read_set is None  # not asked
        assert store.reader_reads("nobody", history=1, read_set=(T0, T0 + 10)).read_set is None

    def test_a_read_set_checkpoint_answers_with_the_reads_after_it_until_a_forget(self, store):
        """``put_read_sets`` (training's heavy readers): ``user_read_set`` and ``reader_reads`` then
        answer from the reader's row plus their reads after its ``hi`` (a key only the row holds
        comes back: the row is read, not the events before ``hi``); reads stamped after ``until``
        stay apart until the clock passes them; a window starting before the row's ``since`` reads
        every event; a forget deletes the row and leaves only the reads that come after it."""
        from recommender.store import ReadSetRow

        store.upsert_articles([article(i) for i in range(10)])
        store.add_events([event("u", f"a{i}", ("click", "read", "share")[i % 3], ts=T0 + i) for i in range(4)]
                         + [event("u", "a4", ts=T0 + 80)])  # stamped after the checkpoint's until
        key = store.article_keys([f"a{i}" for i in range(10)])
        first, hi = store.user_read_bounds("u")
        row = ReadSetRow("u", first, np.array([key["a0"], key["a1"], key["a2"], key["a3"], key["a9"]]),
                         np.array([key["a4"]]), np.array([T0 + 80.0]))  # a9: in the row alone
        assert store.put_read_sets([row], T0 - 10, T0 + 50, hi) == 1 and store.read_set_readers() == ["u"]
        store.add_events([event("u", "a5", ts=T0 + 20), event("u", "a6", ts=T0 + 90), event("v", "a7", ts=T0 + 5)])
        due, later, later_ts, top = store.user_read_set("u", T0 - 5, T0 + 60)
        assert sorted(due.tolist()) == sorted(key[f"a{i}"] for i in (0, 1, 2, 3, 5, 9))
        assert sorted(zip(later.tolist(), later_ts.tolist())) == sorted([(key["a4"], T0 + 80), (key["a6"], T0 + 90)])
        assert top == store.user_read_bounds("u")[1]
        due, later, _, _ = store.user_read_set("u", T0 - 5, T0 + 85)  # a4 is due now
        assert key["a4"] in due.tolist() and later.tolist() == [key["a6"]]
        together = store.reader_reads("u", history=2, read_set=(T0 - 5, T0 + 60)).read_set
        assert sorted(together[0].tolist()) == sorted(key[f"a{i}"] for i in (0, 1, 2, 3, 5, 9))
        assert together[3] == top
        alone = store.user_read_set("u", T0 - 20, T0 + 60)  # before the row's since: every event, not the row
        assert sorted(alone[0].tolist()) == sorted(key[f"a{i}"] for i in (0, 1, 2, 3, 5))

        store.forget_user("u")
        assert store.read_set_readers() == []
        store.add_events([event("u", "a8", ts=T0 + 30)])
        assert store.user_read_set("u", T0 - 5, T0 + 60)[0].tolist() == [key["a8"]]

    def test_a_read_set_row_is_kept_only_while_the_readers_oldest_read_is_the_one_it_was_made_with(self, store):
        """A row computed before a forget (its ``first_seq`` gone) is not stored, so the reader's
        new reads alone answer; rows replace the previous ones."""
        from recommender.store import ReadSetRow

        store.upsert_articles([article(i) for i in range(6)])
        store.add_events([event(u, f"a{i}", ts=T0 + i) for u in ("u", "w") for i in range(3)])
        key = store.article_keys([f"a{i}" for i in range(6)])
        rows = {u: ReadSetRow(u, store.user_read_bounds(u)[0], np.array([key["a0"], key["a1"], key["a2"], key["a5"]]),
                              np.zeros(0, np.int64), np.zeros(0)) for u in ("u", "w")}
        hi = store.log_position()[1]
        store.forget_user("w")
        store.add_events([event("w", "a4", ts=T0 + 4)])
        assert store.put_read_sets(list(rows.values()), T0 - 10, T0 + 50, hi) == 1
        assert store.read_set_readers() == ["u"]
        assert store.user_read_set("w", T0 - 5, T0 + 60)[0].tolist() == [key["a4"]]
        assert key["a5"] in store.user_read_set("u", T0 - 5, T0 + 60)[0].tolist()  # the row is used
        assert store.put_read_sets([], T0 - 10, T0 + 50, hi) == 0 and store.read_set_readers() == []
        assert key["a5"] not in store.user_read_set("u", T0 - 5, T0 + 60)[0].tolist()

    def test_a_store_tells_of_writes_exactly_when_it_says_so(self, store):
        """``tells_writes`` decides the engine's default lag (serving.freshness): a store that
        claims it must hand out a watch that tells of a write about a reader once it committed,
        and one that does not has none (its lists would otherwise wait for notices never sent)."""
        watch = store.watch_writes()
        try:
            assert (watch is not None) == store.tells_writes
            if watch is None:
                return
            store.upsert_articles([article(0)])
            store.add_events([event("told", "a0")])
            told, deadline = [], time.monotonic() + 10
            while ["told"] not in told and time.monotonic() < deadline:
                told += watch.notices(timeout=0.5)
            assert ["told"] in told
        finally:
            if watch is not None:
                watch.close()

    def test_a_readers_version_and_reads_answer_as_the_version_then_each_read(self, store):
        """``reader_version_and_reads`` (PostgreSQL: one statement) gives what ``reader_version`` and
        then ``reader_reads`` give, for a reader with every kind of event, a reader with clicks
        only, a heavy reader (the read set comes along) and a reader the store never saw. A read
        a backend skips because the version says it is empty (None) and one it makes (empty) are
        the same to a feed."""
        store.upsert_articles([article(i) for i in range(8)])
        store.add_events([event("u", "a0", ts=T0 + 1), event("u", "a1", "read", ts=T0 + 2, dwell_seconds=9.0),
                          event("u", "a2", "share", ts=T0 + 3), event("u", "a3", "hide", ts=T0 + 4),
                          event("u", "a4", "hide", ts=T0 + 50), event("u", "a5", "impression", ts=T0 + 5),
                          event("v", "a6", ts=T0 + 6), event("v", "a7", ts=T0 + 7)])
        store.add_served_lists([served("L1", "u", ("a6", "a7"), ts=T0 + 7)])
        store.set_preferences(Preferences("u", categories=("Olahraga",), regions=("Jawa Barat",)))
        window = (T0, T0 + 10)

        def empty(value):
            if value is None:
                return True
            if isinstance(value, np.ndarray):
                return value.size == 0
            return isinstance(value, tuple) and all(isinstance(v, np.ndarray) and v.size == 0 for v in value)

        def same(got, want):
            if empty(got) and empty(want):
                return True
            if isinstance(want, tuple) and isinstance(want[0], np.ndarray):
                return all(np.array_equal(np.asarray(g), np.asarray(w), equal_nan=True) for g, w in zip(got, want))
            if isinstance(want, np.ndarray):
                return np.array_equal(got, want)
            return got == want

        for user, history, read_set in (("u", 10, False), ("v", 10, False), ("v", 2, True), ("nobody", 5, True)):
            version, reads = store.reader_version_and_reads(user, history=history, impressions=10, window=window,
                                                            read_set=read_set)
            assert version == store.reader_version(user), user
            want = store.reader_reads(user, history=history, preferences=True, hides=window, impressions=10,
                                      read_set=window if read_set else None)
            for name in ReaderReads._fields:
                assert same(getattr(reads, name), getattr(want, name)), (user, name)
        version, reads = store.reader_version_and_reads("u", history=10, impressions=10, window=window, read_set=True)
        keys = store.article_keys(["a3", "a5", "a6", "a7"])
        assert reads.history[0].size == 3 and reads.preferences.categories == ("Olahraga",)
        assert reads.hides.tolist() == [keys["a3"]]  # a4's hide is after the window
        assert reads.impressions[0].tolist() == [keys["a5"], keys["a6"], keys["a7"]]
        assert reads.read_set is None  # 3 reads, fewer than the history's 10: light
        version, reads = store.reader_version_and_reads("v", history=2, impressions=10, window=window, read_set=True)
        assert sorted(reads.read_set[0].tolist()) == sorted(store.article_keys(["a6", "a7"]).values())
        # each read with its own limit and window (one statement on PostgreSQL: each part its own parameters)
        _, reads = store.reader_version_and_reads("u", history=2, impressions=1, window=(T0 + 4, T0 + 60),
                                                  read_set=False)
        assert reads.history[0].tolist() == list(store.article_keys(["a1", "a2"]).values())
        assert reads.impressions[0].tolist() == [keys["a7"]]  # the newest one
        assert sorted(reads.hides.tolist()) == sorted(store.article_keys(["a3", "a4"]).values())

    # -- the live model ---------------------------------------------------------------------------
    def test_the_live_model_is_a_compare_and_set_with_a_change(self, store):
        v1, v2, v3 = (f"20261127T15130{i}Z-00000{i}" for i in (1, 2, 3))
        start, _ = store.log_position()
        assert store.live_model() is None
        assert not store.promote_model(v1, expected=v2)  # nothing is live, not v2
        assert store.promote_model(v1, expected=None)  # adopting: only while nothing is live
        assert not store.promote_model(v2, expected=None) and store.live_model() == v1
        assert store.promote_model(v2, expected=v1) and store.live_model() == v2
        assert not store.promote_model(v3, expected=v1) and store.live_model() == v2  # a stale expectation
        assert store.promote_model(v2, expected=v2)  # already live: nothing to change
        assert store.promote_model(v1)  # unconditional (a rollback that checked nothing)
        changes = store.changes_after(start)
        assert [(c.kind, c.ref) for c in changes] == [("model", v1), ("model", v2), ("model", v1)]
        assert store.log_position()[0] == changes[-1].pos
        assert [c.ref for c in store.changes_after(start, kinds=("model",))] == [v1, v2, v1]

    def test_concurrent_promoters_never_override_each_other_unseen(self, store):
        """Promoters that each read the live version and promote with it as the expected one: every
        promotion that succeeds replaced exactly the version it expected (no lost update), and the
        log holds one change per success, in the order they took effect."""
        start, _ = store.log_position()
        won: dict[str, str | None] = {}
        lost, errors = [], []
        lock = threading.Lock()

        def promoter(p: int):
            for k in range(15):
                version = f"20261127T1513{p:02d}Z-{k:06x}"
                try:
                    seen = store.live_model()
                    ok = store.promote_model(version, expected=seen)
                except StoreError as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return
                with lock:
                    if ok:
                        won[version] = seen
                    else:
                        lost.append(version)

        threads = [threading.Thread(target=promoter, args=(p,)) for p in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(won) + len(lost) == 60 and won
        chain = [c.ref for c in store.changes_after(start, kinds=("model",))]
        assert sorted(chain) == sorted(won)  # one change per success, none for a refused one
        assert [won[v] for v in chain] == [None] + chain[:-1]  # each replaced the one before it
        assert store.live_model() == chain[-1]

    # -- served lists: one row each, one impression per item wherever impressions are read --------
    def test_served_list_items_are_impressions_interleaved_with_events_by_seq(self, store):
        store.upsert_articles([article(i) for i in range(8)])
        key = {a: k.key for a, k in store.get_stored_articles([f"a{i}" for i in range(8)]).items()}
        pos, start = store.log_position()
        store.add_events([event("u", "a0", ts=T0 + 1)])
        assert store.add_served_lists([served("L1", "u", ("a1", "a2", "a3"), ts=T0 + 2, offset=20,
                                              model_version="v1", strategy="hybrid")]) == 1
        store.add_events([event("v", "a4", "read", ts=T0 + 3, dwell_seconds=5.0)])
        assert store.add_served_lists([served("L2", "v", ("a5", "a6"), ts=T0 + 4),
                                       served("L3", "u", ("a7",), ts=T0 + 5)]) == 2
        # one ``events`` change per write, covering its sequence numbers
        changes = store.changes_after(pos, kinds=("events",))
        assert len(changes) == 4 and all(c.lo <= c.hi for c in changes)
        assert changes[3].hi - changes[3].lo == 1 and store.log_position()[1] == changes[3].hi
        assert [c.lo for c in changes] == sorted(c.lo for c in changes) and changes[0].lo > start
        want = ([key[a] for a in ("a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7")], [1, 0, 0, 0, 2, 0, 0, 0],
                [T0 + 1, T0 + 2, T0 + 2, T0 + 2, T0 + 3, T0 + 4, T0 + 4, T0 + 5])
        for limit in (1, 2, 3, 20_000):  # exactly once, in order, however it is chunked
            assert followed(store, start, limit=limit) == want
        # ``upto`` the first list's change: the list in full, nothing after it
        assert followed(store, start, upto=changes[1].hi, limit=1)[0] == want[0][:4]
        assert followed(store, changes[1].hi)[0] == want[0][4:]
        assert store.first_seq_since(T0 + 2) == changes[1].lo and store.first_seq_since(T0 + 5) == changes[3].hi

    def test_lists_of_any_size_among_events_follow_as_their_items_with_positions(self, store):
        # a follower expands each list into its items (PostgreSQL: on the client, from one bytes
        # value of every list's keys): sizes 1-40, any first position, events in between and
        # chunks of any size give every item once, in list order, at its position
        rng = np.random.default_rng(7)
        store.upsert_articles([article(i) for i in range(60)])
        key = {a: k.key for a, k in store.get_stored_articles([f"a{i}" for i in range(60)]).items()}
        _, start = store.log_position()
        want: list[tuple[int, int, int]] = []
        for n in range(25):
            if rng.random() < 0.4:
                art = f"a{rng.integers(60)}"
                store.add_events([event(f"r{n}", art, ts=T0 + n, position=3)])
                want.append((key[art], 1, 3))
            arts = tuple(f"a{i}" for i in rng.choice(60, size=int(rng.integers(1, 41)), replace=False))
            offset = int(rng.integers(0, 200))
            lists = [served(f"L{n}", f"r{n}", arts, ts=T0 + n, offset=offset)]
            if rng.random() < 0.3:  # two lists in one write
                lists.append(served(f"M{n}", "m", arts[:1], ts=T0 + n))
            store.add_served_lists(lists)
            want += [(key[a], 0, offset + k) for k, a in enumerate(arts)]
            want += [(key[arts[0]], 0, 0)] if len(lists) == 2 else []
        for limit in (1, 3, 20_000):
            cursor, got = start, []
            while True:
                new, keys, codes, _, positions = store.event_keys_after(cursor, limit=limit, positions=True)
                if new == cursor:
                    break
                cursor = new
                got += list(zip(keys.tolist(), codes.tolist(), positions.tolist()))
            assert got == want

    def test_a_training_load_expands_served_lists_in_time_order(self, store):
        store.upsert_articles([article(i) for i in range(6)])
        store.add_events([event("u", "a0", ts=T0 + 1), event("u", "a5", "read", ts=T0 + 3, dwell_seconds=9.0)])
        store.add_served_lists([served("L1", "u", ("a1", "a2", "a3"), ts=T0 + 2),
                                served("L2", "v", ("a4", "a0"), ts=T0 + 3),  # after the read of the same second
                                served("L3", "u", ("a1",), ts=T0 + 9)])
        store.add_events([event("v", "a2", ts=T0 + 3, event_id="same-second")])  # written later: after L2
        pos, seq = store.log_position()
        log_ = store.load_interactions()
        assert (log_.change_pos, log_.event_seq) == (pos, seq) and len(log_) == 9
        rows = [(log_.user_ids[u], log_.article_ids[a], e, t - T0, bool(h))
                for u, a, e, t, h in zip(log_.user_key.tolist(), log_.article_key.tolist(), log_.event.tolist(),
                                         log_.ts.tolist(), log_.history.tolist())]
        assert rows == [("u", "a0", 1, 1, False), ("u", "a1", 0, 2, False), ("u", "a2", 0, 2, False),
                        ("u", "a3", 0, 2, False), ("u", "a5", 2, 3, False), ("v", "a4", 0, 3, False),
                        ("v", "a0", 0, 3, False), ("v", "a2", 1, 3, False), ("u", "a1", 0, 9, False)]
        dwell = log_.dwell.tolist()
        assert dwell[4] == pytest.approx(9.0) and np.isnan([d for i, d in enumerate(dwell) if i != 4]).all()
        part = store.load_interactions(start=T0 + 2, end=T0 + 3)  # a list is in a window by its time
        assert [part.article_ids[a] for a in part.article_key.tolist()] == ["a1", "a2", "a3"]
        assert (part.event == 0).all()

    def test_exposures_and_clicks_come_back_with_their_positions(self, store):
        # what position-corrected click-through counts: each exposure and click at its list position
        store.upsert_articles([article(i) for i in range(6)])
        key = {a: k.key for a, k in store.get_stored_articles([f"a{i}" for i in range(6)]).items()}
        _, start = store.log_position()
        store.add_served_lists([served("L1", "u", ("a1", "a2", "a3"), ts=T0 + 1, offset=10)])
        store.add_events([event("u", "a3", ts=T0 + 2, list_id="L1", position=12),
                          event("v", "a4", ts=T0 + 3),  # a click from no list: no position
                          event("v", "a5", "impression", ts=T0 + 4, list_id="M", position=7)])
        store.add_served_lists([served("L2", "v", ("a0", "a1"), ts=T0 + 5)])
        want = ([key[a] for a in ("a1", "a2", "a3", "a3", "a4", "a5", "a0", "a1")],
                [0, 0, 0, 1, 1, 0, 0, 0], [10, 11, 12, 12, -1, 7, 0, 1])
        for limit in (1, 2, 20_000):  # chunked or not, every row keeps its position
            cursor, got = start, ([], [], [])
            while True:
                new, keys, codes, _, positions = store.event_keys_after(cursor, limit=limit, positions=True)
                if new == cursor:
                    break
                cursor = new
                for out, arr in zip(got, (keys, codes, positions)):
                    out.extend(arr.tolist())
            assert got == want
        assert len(store.event_keys_after(start)) == 4  # without asking: the four arrays as before
        log_ = store.load_interactions()
        assert [log_.article_ids[a] for a in log_.article_key.tolist()] == ["a1", "a2", "a3", "a3", "a4", "a5",
                                                                             "a0", "a1"]
        assert log_.position.tolist() == [10, 11, 12, 12, -1, 7, 0, 1]

    def test_a_readers_history_holds_their_lists_items_with_positions(self, store):
        store.upsert_articles([article(i) for i in range(5)])
        store.add_events([event("u", "a0", ts=T0 + 1)])
        store.add_served_lists([served("L1", "u", ("a1", "a2"), ts=T0 + 2, offset=10),
                                served("L2", "u", ("a3", "a4"), ts=T0 + 4)])
        store.add_events([event("u", "a2", "read", ts=T0 + 3, dwell_seconds=12.0)])
        history = store.user_events("u")
        assert [(e.article_id, e.event, e.list_id, e.position) for e in history] == [
            ("a0", "click", None, None), ("a1", "impression", "L1", 10), ("a2", "impression", "L1", 11),
            ("a2", "read", None, None), ("a3", "impression", "L2", 0), ("a4", "impression", "L2", 1)]
        assert history[3].dwell_seconds == pytest.approx(12.0) and history[1].dwell_seconds is None
        assert [e.article_id for e in store.user_events("u", limit=3)] == ["a2", "a3", "a4"]
        assert [e.article_id for e in store.user_events("u", since=T0 + 3)] == ["a2", "a3", "a4"]
        assert [e.event for e in store.user_events("u", events=("click", "read"))] == ["click", "read"]
        keys, codes, ts, dwell = store.user_event_keys("u", limit=4, events=("impression", "read"))
        ids = store.article_ids_for_keys(keys.tolist())
        assert [ids[k] for k in keys.tolist()] == ["a2", "a2", "a3", "a4"] and codes.tolist() == [0, 2, 0, 0]
        assert ts.tolist() == [T0 + 2, T0 + 3, T0 + 4, T0 + 4] and dwell[1] == pytest.approx(12.0)
        stats = store.stats()
        assert stats["events_by_type"]["impression"] == 4 and stats["events"] == 6
        assert stats["newest_event_ts"] == T0 + 4

    @pytest.mark.parametrize("per_list", [1, 3, 20])
    def test_a_readers_newest_impressions_come_from_as_many_of_their_lists_as_needed(self, store, per_list):
        """A reader with more lists than a history read takes at first (a feed refreshed all day):
        the newest ``limit`` impressions are those of their newest lists and impression events,
        whether the lists are small (the older ones are needed) or large (they are not)."""
        rng = np.random.default_rng(per_list)
        store.upsert_articles([article(i) for i in range(30)])
        key = {a: k.key for a, k in store.get_stored_articles([f"a{i}" for i in range(30)]).items()}
        items = []  # (ts, article): a list's items share its time and keep their order
        lists = []
        for n in range(90):
            arts = tuple(f"a{j}" for j in rng.choice(30, size=per_list, replace=False))
            lists.append(served(f"R{n}", "refresher", arts, ts=T0 + 10 * n))
            items += [(T0 + 10 * n, a) for a in arts]
        store.add_served_lists(lists[:45])
        posted = [event("refresher", f"a{j}", "impression", ts=T0 + 10 * int(n) + 5)
                  for n, j in zip(rng.choice(90, size=40, replace=False), rng.integers(0, 30, size=40))]
        store.add_events(posted)
        store.add_served_lists(lists[45:])
        items += [(e.ts, e.article_id) for e in posted]
        items.sort(key=lambda t: t[0])  # stable: a list's items stay in order (posted ones never tie with lists)
        for limit in (1, per_list * 40, len(items) - 7, len(items) + 10):
            keys, codes, ts, _ = store.user_event_keys("refresher", limit=limit, events=("impression",))
            want = items[max(len(items) - limit, 0):]
            assert keys.tolist() == [key[a] for _, a in want] and ts.tolist() == [t for t, _ in want]
            assert (codes == 0).all()

    def test_impressions_at_one_time_follow_write_order_and_a_limit_cuts_inside_a_list(self, store):
        """Lists and posted impressions of one second come in the order they were written (a
        list's items in list order), and the newest ``limit`` may begin inside a list, whichever
        read asks (PostgreSQL merges events and lists on the client)."""
        store.upsert_articles([article(i) for i in range(9)])
        key = {a: k.key for a, k in store.get_stored_articles([f"a{i}" for i in range(9)]).items()}
        store.add_events([event("t", "a0", "impression", ts=T0 + 5, dwell_seconds=3.0)])
        store.add_served_lists([served("P", "t", ("a1", "a2", "a3"), ts=T0 + 5)])
        store.add_events([event("t", "a4", "impression", ts=T0 + 5), event("t", "a5", "read", ts=T0 + 5)])
        store.add_served_lists([served("Q", "t", ("a6", "a7"), ts=T0 + 5), served("R", "t", ("a8",), ts=T0 + 4)])
        order = ["a8", "a0", "a1", "a2", "a3", "a4", "a6", "a7"]  # (time, written, place in its list)
        for limit in (1, 2, 3, 6, 8, 50):
            keys, codes, ts, dwell = store.user_event_keys("t", limit=limit, events=("impression",))
            assert keys.tolist() == [key[a] for a in order[-limit:]] and (codes == 0).all()
            assert ts.tolist() == [T0 + 4] * (limit == 50 or limit == 8) + [T0 + 5] * min(limit, 7)
            assert [None if np.isnan(d) else float(d) for d in dwell] == [3.0 if a == "a0" else None
                                                                           for a in order[-limit:]]
            reads = store.reader_reads("t", history=5, impressions=limit)
            assert reads.impressions[0].tolist() == keys.tolist() and reads.impressions[2].tolist() == ts.tolist()
        keys, codes, _, _ = store.user_event_keys("t", limit=4, events=None)  # every type: the read among them
        assert keys.tolist() == [key[a] for a in ("a4", "a5", "a6", "a7")] and codes.tolist() == [0, 2, 0, 0]

    def test_forget_deletes_a_readers_lists_and_drops_late_ones(self, store):
        store.upsert_articles([article(i) for i in range(4)])
        store.add_served_lists([served("L1", "r", ("a0", "a1"), ts=T0 + 1), served("K1", "keep", ("a2",), ts=T0 + 1)])
        store.add_events([event("r", "a3", ts=T0 + 2)])
        late = served("L2", "r", ("a2", "a3"), ts=T0 + 3)  # served before the forget, written after it
        removed = store.forget_user("r")
        assert removed["events"] == 3 and removed["user"] == 1  # the list's 2 impressions and the click
        keep_key = store.article_keys(["a2"])["a2"]
        assert followed(store)[0] == [keep_key]
        assert [log_.user_ids[u] for log_ in [store.load_interactions()] for u in log_.user_key.tolist()] == ["keep"]
        assert store.user_events("r") == [] and store.stats()["events_by_type"]["impression"] == 1
        # a list served before the forget and written afterwards: dropped, the reader not recreated
        assert store.add_served_lists([late]) == 0
        assert store.stats()["readers"] == 1 and store.user_events("r") == []
        # the reader comes back: lists served to them from then on are kept
        back = store.forgotten_at("r") + 1
        store.add_events([event("r", "a0", ts=back, event_id="back")])
        assert store.add_served_lists([served("L3", "r", ("a1",), ts=back + 1)]) == 1
        assert [(e.article_id, e.event) for e in store.user_events("r")] == [("a0", "click"), ("a1", "impression")]

    def test_a_follower_counts_every_list_item_of_concurrent_writers_once(self, store):
        store.upsert_articles([article(i) for i in range(5)])

        def write(w: int):
            for b in range(20):
                if w % 2:
                    store.add_served_lists([served(f"L{w}-{b}-{k}", f"w{w}", ("a0", "a1", "a2"), ts=T0 + k)
                                            for k in range(2)])
                else:
                    store.add_events([event(f"w{w}-{b}-{k}", f"a{k}", ts=T0 + k) for k in range(3)])

        seen = follow_while_writing(store, write, limit=5)
        assert len(seen) == 2 * 20 * 3 + 2 * 20 * 2 * 3 == counted(store)

    def test_a_served_list_may_name_articles_not_yet_in_the_catalog(self, store):
        store.upsert_articles([article(1)])
        _, seq = store.log_position()
        assert store.add_served_lists([served("L1", "u", ("a1", "later-article"), ts=T0 + 1),
                                       served("L2", "u", ("later-article",), ts=T0 + 2),
                                       served("empty", "u", (), ts=T0 + 3)]) == 2  # an empty list showed nothing
        keys = followed(store, seq)[0]
        ids = store.article_ids_for_keys(keys)
        assert [ids[k] for k in keys] == ["a1", "later-article", "later-article"]
        assert store.article_keys(["later-article"])["later-article"] == keys[1]

    # -- experiments -------------------------------------------------------------------------
    def test_an_experiment_is_created_once_and_stopped_once_each_with_a_change(self, store):
        before = store.log_position()[0]
        assert store.create_experiment("exp1", '{"name": "exp1"}', T0) is True
        assert store.create_experiment("exp1", '{"name": "other"}', T0 + 1) is False  # the name is taken
        assert [(e.name, e.definition, e.stopped_at) for e in store.experiments()] == [("exp1", '{"name": "exp1"}', None)]
        assert store.stop_experiment("nope", T0 + 2) is None
        assert store.stop_experiment("exp1", T0 + 3) is True
        assert store.stop_experiment("exp1", T0 + 4) is False  # stopped already: no second change
        assert store.create_experiment("exp1", '{"name": "exp1"}', T0 + 5) is False  # a stopped name stays taken
        changes = store.changes_after(before, kinds=("experiment",))
        assert [(c.kind, c.ref) for c in changes] == [("experiment", "exp1")] * 2
        assert store.experiments()[0].stopped_at == T0 + 3
        # every follower reading the whole log sees them too, after whatever came before
        assert [c.ref for c in store.changes_after(before) if c.kind == "experiment"] == ["exp1", "exp1"]

    def test_an_experiments_lists_and_the_clicks_that_name_them(self, store):
        store.upsert_articles([article(i) for i in range(6)])
        store.add_served_lists([
            served("L1", "u1", ("a0", "a1", "a2"), experiment="e", variant="A", config="m1@abc", model_version="m1"),
            served("L2", "u2", ("a3", "a4"), offset=20, experiment="e", variant="B", config="m2@def"),
            served("L3", "u1", ("a5", "a0"), experiment="e", variant="AB", teams="01"),
            served("L4", "u3", ("a0",)),  # outside the experiment
            served("L5", "anonymous", ("a1", "a2"), experiment="other", variant="A"),
        ])
        lists = store.experiment_lists("e")
        assert [(s.list_id, s.user_id, s.variant, s.offset, s.size, s.config, s.teams) for s in lists] == [
            ("L1", "u1", "A", 0, 3, "m1@abc", None), ("L2", "u2", "B", 20, 2, "m2@def", None),
            ("L3", "u1", "AB", 0, 2, None, "01")]
        store.add_events([
            event("u1", "a1", list_id="L1", position=1, event_id="c1"),
            event("u1", "a1", list_id="L1", position=1, event_id="c2", ts=T0 + 200),  # the same item again: once
            event("u2", "a4", list_id="L2", position=21, event_id="c3"),
            event("u2", "a4", "impression", list_id="L2", position=21, event_id="i1"),  # not a click
            event("u3", "a0", list_id="L4", position=0, event_id="c4"),  # a list of no experiment
            event("u1", "a0", list_id="L3", position=1, event_id="c5", ts=T0 - 50),  # before ``since`` below
        ])
        assert sorted(store.experiment_clicks("e")) == [("L1", 1), ("L2", 21), ("L3", 1)]
        assert sorted(store.experiment_clicks("e", since=T0)) == [("L1", 1), ("L2", 21)]
        assert store.experiment_clicks("other") == []
        assert store.experiment_lists("missing") == []
        # forgetting a reader removes their lists from every report
        store.forget_user("u1")
        assert [s.list_id for s in store.experiment_lists("e")] == ["L2"]

    # -- editorial rules and their audit log -------------------------------------------------
    def test_rules_are_stored_listed_removed_audited_and_logged(self, store):
        pos0 = store.log_position()[0]
        pin = EditorialRule("r1", "pin", {"list": "feed", "category": "Ekonomi"}, {"article_id": "a1"}, position=2,
                            starts_at=T0, expires_at=T0 + 3600, created_at=T0, created_by="k-editor")
        boost = EditorialRule("r2", "boost", {"list": "related"}, {"region": "Jabar"}, factor=1.5,
                              expires_at=T0 + 60, created_at=T0 + 1, created_by="k-admin")
        store.add_rule(pin, who="k-editor")
        store.add_rule(boost, who="k-admin")
        assert store.list_rules() == [pin, boost]  # round-trips whole, oldest first
        with pytest.raises(StoreError):
            store.add_rule(pin, who="k-editor")  # an id is never reused
        assert store.remove_rule("r1", who="k-admin") is True
        assert store.remove_rule("r1", who="k-admin") is False  # removed already: nothing changes
        assert store.remove_rule("nope", who="k-admin") is False
        assert store.list_rules() == [boost]
        changes = store.changes_after(pos0, kinds=("rules",))
        assert [(c.kind, c.ref) for c in changes] == [("rules", "r1"), ("rules", "r2"), ("rules", "r1")]
        audit = store.audit_log()
        assert [(a.action, a.rule_id, a.who) for a in audit] == [
            ("delete", "r1", "k-admin"), ("create", "r2", "k-admin"), ("create", "r1", "k-editor")]
        assert audit[-1].detail["target"] == {"article_id": "a1"} and audit[-1].detail["position"] == 2
        assert audit[0].at >= audit[1].at >= audit[2].at > 0
        assert [a.action for a in store.audit_log(rule_id="r1")] == ["delete", "create"]
        assert len(store.audit_log(limit=1)) == 1

    # -- API keys every replica shares --------------------------------------------------------------
    def test_api_keys_are_stored_with_a_keys_change_and_revoked(self, store):
        start, _ = store.log_position()
        store.add_api_key("k1", "site", "web", "2026-12-01T00:00:00Z", "a" * 64)
        store.add_api_key("k2", "admin", "ops", "2026-12-01T00:00:01Z", "b" * 64)
        with pytest.raises(StoreError):
            store.add_api_key("k1", "cms", "again", "2026-12-01T00:00:02Z", "c" * 64)
        with pytest.raises(StoreError):  # the same hash under another id
            store.add_api_key("k3", "cms", "copy", "2026-12-01T00:00:02Z", "b" * 64)
        assert store.api_keys() == [("k1", "site", "web", "2026-12-01T00:00:00Z", "a" * 64),
                                    ("k2", "admin", "ops", "2026-12-01T00:00:01Z", "b" * 64)]
        assert store.revoke_api_key("k1") and not store.revoke_api_key("k1")
        assert [k[0] for k in store.api_keys()] == ["k2"]
        assert [(c.kind, c.ref) for c in store.changes_after(start, kinds=("keys",))] == [
            ("keys", "k1"), ("keys", "k2"), ("keys", "k1")]
        assert store.log_position()[0] == store.changes_after(start)[-1].pos

    # -- change-log retention -----------------------------------------------------------------------
    def test_pruning_keeps_the_newest_of_each_kind_and_everything_a_bundle_needs(self, store):
        store.upsert_articles([article(i) for i in range(6)])  # 6 article changes
        store.add_events([event("u", "a1", ts=T0 + 1)])
        store.takedown_article("a2")
        store.promote_model("20261127T151301Z-000001")
        fitted, _ = store.log_position()  # a bundle fitted here needs every change after it
        store.upsert_articles([article(1, title="Judul baru")])
        store.add_events([event("v", "a3", ts=T0 + 2)])
        pos, seq = store.log_position()
        before = store.changes_after(0)
        needed = store.changes_after(fitted)
        assert store.count_prunable(fitted + 1, time.time() - 3600, T0) == (0, 0)  # all younger than an hour
        assert store.prune_changes(fitted + 1, older_than=time.time() - 3600) == 0
        cut = time.time() + 1
        assert store.count_prunable(fitted + 1, cut, T0) == (7, 0)  # what the prune below deletes, deleting nothing
        assert store.changes_after(0) == before
        assert store.prune_changes(fitted + 1, older_than=cut, batch=2) == 7  # small batches
        assert store.count_prunable(fitted + 1, cut, T0) == (0, 0)
        after = store.changes_after(0)
        assert after[-len(needed):] == needed
        kept_old = [c for c in after if c.pos <= fitted]
        # the newest change of each kind before the cut stays (model, takedown: nothing newer of theirs)
        assert [(c.kind, c.ref) for c in kept_old] == [("takedown", "a2"), ("model", "20261127T151301Z-000001")]
        assert len(before) - len(after) == 7
        assert store.log_position() == (pos, seq)
        assert [c.ref for c in store.changes_after(0, kinds=("model",))] == ["20261127T151301Z-000001"]
        assert counted(store) == 2  # events are not the log: a follower from 0 still counts them all
        store.upsert_articles([article(9)])
        assert store.changes_after(pos)[0].pos > pos  # positions go on, never reused

    def test_click_through_counts_served_positions_and_the_clicks_naming_them(self, store):
        store.upsert_articles([article(i) for i in range(1, 5)])
        store.add_served_lists([served("F1", "u1", ("a1", "a2", "a3"), ts=T0 + 10, strategy="hybrid"),
                                served("F2", "u2", ("a2", "a4"), ts=T0 + 20, offset=3, strategy="hybrid"),
                                served("R1", "anonymous", ("a3", "a1"), ts=T0 + 30, strategy="content",
                                       variant="B"),
                                served("OLD", "u1", ("a1",), ts=T0 - 500, strategy="hybrid")])
        store.add_events([event("u1", "a2", ts=T0 + 40, list_id="F1", position=1),
                          event("u2", "a4", ts=T0 + 41, list_id="F2", position=4),
                          event("anonymous", "a3", ts=T0 + 42, list_id="R1", position=0),
                          event("anonymous", "a3", ts=T0 + 43, list_id="R1", position=0, event_id="again"),
                          event("u1", "a1", ts=T0 + 44, list_id="OLD", position=0),  # its list is too old
                          event("u1", "a1", "read", ts=T0 + 45, list_id="F1", position=0),  # not a click
                          event("u3", "a1", ts=T0 + 46)])  # no list
        rows = store.list_click_through(since=T0)
        assert [(r["strategy"], r["variant"], r["position"], r["impressions"], r["clicks"]) for r in rows] == [
            ("content", "B", 0, 1, 2), ("content", "B", 1, 1, 0),
            ("hybrid", None, 0, 1, 0), ("hybrid", None, 1, 1, 1), ("hybrid", None, 2, 1, 0),
            ("hybrid", None, 3, 1, 0), ("hybrid", None, 4, 1, 1)]
        store.forget_user("u2")
        assert ("hybrid", 4) not in {(r["strategy"], r["position"]) for r in store.list_click_through(since=T0)}

    # -- the learned stage's feature log ---------------------------------------------------
    def test_feature_rows_come_back_by_name_with_their_items_and_propensities(self, store):
        store.upsert_articles([article(i) for i in range(4)])
        old = features("L1", "u", ("a1", "a2"), ts=T0 + 1, offset=20)
        new = features("L2", "v", ("a3", "a0", "a1"), ts=T0 + 5, names=("blend", "age", "new_feature", "x"),
                       propensities=np.array([1.0, 0.25, 0.05]))
        assert store.add_feature_logs([new, old]) == 2
        assert store.add_feature_logs([old]) == 0  # a list is logged once
        rows = store.feature_logs()
        assert [r.list_id for r in rows] == ["L1", "L2"]  # oldest first
        a, b = rows
        assert (a.user_id, a.ts, a.offset, a.article_ids, a.names) == ("u", T0 + 1, 20, ("a1", "a2"),
                                                                        ("blend", "ctr_6h_p10", "age"))
        np.testing.assert_allclose(a.features, [[0.0, 0.1, 0.2], [1.0, 1.1, 1.2]], rtol=1e-6)
        assert a.propensities is None
        assert b.names == ("blend", "age", "new_feature", "x") and b.features.shape == (3, 4)
        assert b.article_ids == ("a3", "a0", "a1")
        np.testing.assert_allclose(b.features[2], [2.0, 2.1, 2.2, 2.3], rtol=1e-6)
        np.testing.assert_allclose(b.propensities, [1.0, 0.25, 0.05])
        assert [r.list_id for r in store.feature_logs(start=T0 + 2)] == ["L2"]
        assert [r.list_id for r in store.feature_logs(end=T0 + 5)] == ["L1"]

    def test_a_feature_row_of_the_wrong_shape_is_refused_before_anything_is_written(self, store):
        bad = FeatureLogRow("L1", "u", T0, ("a1", "a2"), ("blend",), np.zeros((3, 1)))
        with pytest.raises(ValueError, match="shape"):
            store.add_feature_logs([features("L0", "u", ("a1",)), bad])
        assert store.feature_logs() == []

    def test_forget_deletes_a_readers_feature_rows_and_drops_late_ones(self, store):
        store.upsert_articles([article(i) for i in range(3)])
        store.add_feature_logs([features("L1", "r", ("a0", "a1"), ts=T0 + 1),
                                features("K1", "keep", ("a2",), ts=T0 + 1)])
        late = features("L2", "r", ("a1",), ts=T0 + 2)  # served before the forget, written after it
        store.forget_user("r")
        assert [r.list_id for r in store.feature_logs()] == ["K1"]
        assert store.add_feature_logs([late]) == 0
        assert store.stats()["readers"] == 1  # not recreated
        back = store.forgotten_at("r") + 1
        store.add_events([event("r", "a0", ts=back, event_id="back")])
        assert store.add_feature_logs([features("L3", "r", ("a2",), ts=back + 1)]) == 1

    def test_pruning_feature_rows_deletes_only_the_old_ones(self, store):
        store.upsert_articles([article(i) for i in range(2)])
        store.add_feature_logs([features(f"L{k}", "u", ("a0", "a1"), ts=T0 + k) for k in range(5)])
        assert store.count_prunable(0, 0.0, T0 + 3)[1] == 3 and len(store.feature_logs()) == 5  # counted, kept
        assert store.prune_feature_logs(older_than=T0 + 3) == 3
        assert [r.list_id for r in store.feature_logs()] == ["L3", "L4"]
        assert store.prune_feature_logs(older_than=T0 + 3) == 0
