"""The PostgreSQL backend beyond the contract suite: commit order under concurrent writers, a
bulk import killed with SIGKILL, errors, and ``NEWSREC_DB=postgresql://...`` through the jobs and
the service.

Each test gets a database of its own (``postgres_db``, see ``pg_fixtures``).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from recommender.config import Settings, split_db_location
from recommender.domain import Article, Interaction
from recommender.store import ServedList, SQLiteStore, StoreDiskError, StoreError, StoreUnavailable, open_store
from recommender.store.postgres import COMMIT_ORDER_LOCK, PostgresStore

from .pg_fixtures import PgProxy
from .store_contract import T0, article, event, followed, probed_reader, served

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition, what: str, deadline: float = 20.0, pause: float = 0.005):
    """Poll ``condition`` until it returns something true (returned), failing after ``deadline`` s."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(pause)


# -- commit order ----------------------------------------------------------------------------
class AfterDrawing(PostgresStore):
    """Calls :meth:`drawn_values` inside each write transaction that draws ``seq``/``pos`` values,
    after it drew them and before it commits (a few events' call of the server's function runs in
    a transaction opened here, the hook after the call)."""

    ordered = True

    def drawn_values(self, conn) -> None:
        raise NotImplementedError

    def _log(self, conn, *args, **kwargs):
        super()._log(conn, *args, **kwargs)
        self.drawn_values(conn)

    def _call_add_few_events(self, conn, params):
        with conn.transaction():
            row = super()._call_add_few_events(conn, params)
            self.drawn_values(conn)
        return row

    def _commit_order_key(self):
        return super()._commit_order_key() if self.ordered else None


class SlowCommits(AfterDrawing):
    """Each write sleeps a random 0-20 ms (``pg_sleep``) inside its transaction after drawing its
    ``seq``/``pos`` values, before it commits; ``ordered = False`` drops the commit-order lock."""

    def __init__(self, *args, seed: int = 0, **kwargs):
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def drawn_values(self, conn) -> None:
        with self._rng_lock:
            delay = self._rng.uniform(0.0, 0.02)
        conn.execute("SELECT pg_sleep(%s)", (delay,))


def test_followers_see_every_change_and_event_of_concurrent_writers_exactly_once(postgres_db):
    """8 writer threads (one connection each) commit after random delays; 3 followers read the
    change log and the event sequence with cursors, in small pages, while they write."""
    store = SlowCommits(postgres_db, pool_size=12, seed=7)
    n_writers, n_batches, per_batch = 8, 12, 3
    try:
        store.upsert_articles([article(i) for i in range(5)])
        start_pos, start_seq = store.log_position()
        stop, errors = threading.Event(), []
        seen = [{"pos": [], "ts": []} for _ in range(3)]

        def follow(mine: dict):
            pos, seq = start_pos, start_seq
            try:
                while True:
                    done = stop.is_set()  # read before the last pass: nothing commits after it
                    changes = store.changes_after(pos, limit=5)
                    mine["pos"].extend(c.pos for c in changes)
                    pos = changes[-1].pos if changes else pos
                    new, _, _, ts = store.event_keys_after(seq, limit=4)
                    mine["ts"].extend(ts.tolist())
                    moved = bool(changes) or new != seq
                    seq = new
                    if done and not moved:
                        return
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def write(w: int):
            try:
                for b in range(n_batches):
                    if b % 3 == 2:
                        store.upsert_articles([article(100 + w * n_batches + b)])
                    else:
                        store.add_events([event(f"w{w}-{b}-{k}", f"a{k % 5}", ts=T0 + w * 1000 + b * 10 + k)
                                          for k in range(per_batch)])
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        followers = [threading.Thread(target=follow, args=(mine,)) for mine in seen]
        writers = [threading.Thread(target=write, args=(w,)) for w in range(n_writers)]
        for t in followers + writers:
            t.start()
        for t in writers:
            t.join(timeout=120)
        stop.set()
        for t in followers:
            t.join(timeout=120)
        assert not errors, errors
        assert not any(t.is_alive() for t in followers + writers)

        committed = [c.pos for c in store.changes_after(start_pos)]
        expected_ts = sorted(T0 + w * 1000 + b * 10 + k for w in range(n_writers) for b in range(n_batches)
                             if b % 3 != 2 for k in range(per_batch))
        assert len(committed) == n_writers * n_batches
        for mine in seen:
            assert mine["pos"] == committed  # every change, once, in log order
            assert collections.Counter(mine["ts"]) == collections.Counter(expected_ts)  # every event once
    finally:
        store.close()


class Paused(AfterDrawing):
    """Stops the write of the thread named ``paused`` after it has drawn its values, until
    ``release`` is set."""

    def __init__(self, *args, **kwargs):
        self.drawn, self.release = threading.Event(), threading.Event()
        super().__init__(*args, **kwargs)

    def drawn_values(self, conn) -> None:
        if threading.current_thread().name == "paused":
            self.drawn.set()
            assert self.release.wait(30)


def _advisory_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                            ).fetchone()[0]


@pytest.mark.parametrize("ordered", [True, False], ids=["with-lock", "without-lock"])
def test_a_later_writer_waits_for_an_open_one_or_a_follower_skips_it(postgres_db, ordered):
    """With the commit-order lock a writer that comes second waits for the first to commit, and a
    follower sees both in order. Without it (the control) the second commits first and a follower
    that read it moves its cursor past the first, which it then never sees: why the lock exists."""
    store = Paused(postgres_db, pool_size=4)
    store.ordered = ordered
    store.upsert_articles([article(1)])
    cursor = store.log_position()[0]
    first = threading.Thread(target=store.add_events, args=([event("A", "a1")],), name="paused")
    second = threading.Thread(target=store.add_events, args=([event("B", "a1")],))
    try:
        first.start()
        wait_for(store.drawn.is_set, "the first write to draw its values")
        second.start()
        if ordered:
            wait_for(lambda: _advisory_waiters(postgres_db) == 1, "the second write to wait for the lock")
            assert store.changes_after(cursor) == []  # nothing committed: the follower waits too
        else:
            second.join(timeout=30)
            assert not second.is_alive()
            read = store.changes_after(cursor)
            assert len(read) == 1
            cursor = read[-1].pos
        store.release.set()
        first.join(timeout=30)
        second.join(timeout=30)
        after = store.changes_after(cursor)
        everything = store.changes_after(0, kinds=("events",))
        assert len(everything) == 2
        if ordered:
            assert [c.pos for c in after] == [c.pos for c in everything]
        else:
            assert after == []  # the first write's change is in the log, before the cursor: never seen
            assert everything[0].pos < cursor
    finally:
        store.release.set()
        store.close()


class CountedAttempts(PostgresStore):
    """Counts the calls a few events' writes make of the server's function (a retry is one more)."""

    def __init__(self, *args, **kwargs):
        self.attempts = 0
        super().__init__(*args, **kwargs)

    def _call_add_few_events(self, conn, params):
        self.attempts += 1
        return super()._call_add_few_events(conn, params)


def _lock_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                            "WHERE NOT l.granted AND a.datname = current_database()").fetchone()[0]


def test_a_read_set_row_written_while_a_forget_holds_the_reader_is_not_stored(postgres_db):
    """Training stores a heavy reader's read set (``put_read_sets``) while a forget of that reader is
    in its transaction (the reader's row held ``FOR UPDATE``, their events and row deleted, not yet
    committed): the write waits for the forget, finds no reader and stores nothing, so no read set
    outlives the forget; another reader's row in the same chunk is stored."""
    import threading

    from recommender.store import ReadSetRow

    store = PostgresStore(postgres_db)
    try:
        store.upsert_articles([article(i) for i in range(4)])
        store.add_events([event(u, f"a{i}", ts=T0 + i) for u in ("gone", "kept") for i in range(3)])
        keys = np.array(sorted(store.article_keys([f"a{i}" for i in range(3)]).values()))
        rows = [ReadSetRow(u, store.user_read_bounds(u)[0], keys, np.zeros(0, np.int64), np.zeros(0))
                for u in ("gone", "kept")]
        hi = store.log_position()[1]
        forget = psycopg.connect(postgres_db)  # a forget midway, as forget_user runs it
        key = forget.execute("SELECT key FROM users WHERE user_id = 'gone' FOR UPDATE").fetchone()[0]
        for table, column in (("events", "user_key"), ("read_sets", "user_key"), ("users", "key")):
            forget.execute(f"DELETE FROM {table} WHERE {column} = %s", (key,))
        stored = []
        writer = threading.Thread(target=lambda: stored.append(store.put_read_sets(rows, T0 - 10, T0 + 50, hi)))
        writer.start()
        wait_for(lambda: _lock_waiters(postgres_db) > 0, "the read-set write waiting for the reader's row")
        assert stored == []
        forget.commit()
        forget.close()
        writer.join(timeout=30)
        assert stored == [1] and store.read_set_readers() == ["kept"]
    finally:
        store.close()


def test_a_post_whose_reader_a_forget_deletes_while_it_waits_stores_nothing_then_writes_once(postgres_db):
    """A forget holds the reader's row (``FOR UPDATE``) when a single-event post arrives: the post,
    one call of the server's function (its own transaction), waits for the row, finds it deleted, stores nothing (no
    event, no change row) and commits; its second transaction creates the reader again and stores
    the event once, with one change row."""
    store = CountedAttempts(postgres_db, pool_size=4)
    try:
        store.add_events([event("r1", "a1", ts=T0 + 1)])
        last = store.changes_after(0, kinds=("events",))[-1].pos
        store.attempts = 0
        result = {}
        with psycopg.connect(postgres_db) as forget:  # one transaction, as forget_user's
            key = forget.execute("SELECT key FROM users WHERE user_id = 'r1' FOR UPDATE").fetchone()[0]
            post = threading.Thread(target=lambda: result.update(got=store.add_events([event("r1", "a2", ts=T0 + 2)])))
            post.start()
            wait_for(lambda: _lock_waiters(postgres_db) == 1, "the post to wait for the reader's row")
            forget.execute("DELETE FROM events WHERE user_key = %s", (key,))
            forget.execute("DELETE FROM users WHERE key = %s", (key,))
            forget.commit()
        post.join(timeout=30)
        assert not post.is_alive()
        assert result["got"] == (1, 0)
        assert store.attempts == 2
        assert [(e.article_id, e.ts) for e in store.user_events("r1")] == [("a2", T0 + 2)]
        changes = store.changes_after(last, kinds=("events",))
        assert len(changes) == 1 and changes[0].hi == changes[0].lo
    finally:
        store.close()


def test_single_event_posts_are_one_prepared_call_whose_statements_keep_one_plan(postgres_db):
    """A post is one statement: once psycopg has prepared the call of ``newsrec_add_few_events``
    (after 5 runs on a connection) PostgreSQL settles on its generic plan after its first custom
    ones (5: the server's rule), and the function's own
    statements run with ``plan_cache_mode = force_generic_plan`` (PL/pgSQL caches their plans per
    connection; left to choose, the server kept planning the insert anew for each post)."""
    store = PostgresStore(postgres_db, pool_size=1)
    try:
        store.upsert_articles([article(1)])
        for i in range(20):
            assert store.add_events([event(f"u{i}", "a1", ts=T0 + i)]) == (1, 0)
        with store._pool.connection() as conn:
            plans = conn.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                                 "WHERE statement LIKE '%newsrec_add_few_events(%'").fetchall()
            inserts = conn.execute("SELECT count(*) FROM pg_prepared_statements "
                                   "WHERE statement LIKE '%INSERT INTO events%'").fetchone()[0]
            config = conn.execute("SELECT proconfig FROM pg_proc WHERE proname = 'newsrec_add_few_events'").fetchone()[0]
        assert len(plans) == 1 and plans[0][0] >= 10 and plans[0][1] <= 5, plans
        assert inserts == 0  # nothing else was sent: the insert runs inside the function
        assert config == ["plan_cache_mode=force_generic_plan"]
    finally:
        store.close()


# -- a bulk import killed with SIGKILL -------------------------------------------------------
DRIVER = r"""
import sys
from recommender.datasets import ingest
from recommender.store import open_store

ingest.EVENT_BATCH_SIZE = int(sys.argv[3])
store = open_store(sys.argv[1])
write = store.add_events


def acknowledged(batch, *args, **kwargs):
    inserted, duplicates = write(batch, *args, **kwargs)
    print("ack", inserted, duplicates, batch[0].event_id, batch[-1].event_id, flush=True)
    return inserted, duplicates


store.add_events = acknowledged
report = ingest.import_events(store, sys.argv[2], show_progress=False)
print("done", report.accepted, report.duplicates, report.rejected, flush=True)
"""


def _import(url: str, path: Path, batch: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", DRIVER, url, str(path), str(batch)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def test_a_bulk_import_killed_mid_way_keeps_what_it_acknowledged_and_resumes_without_duplicates(postgres_db, tmp_path,
                                                                                                fresh_indexes):
    n, batch = 120_000, 10_000
    rows = [Interaction(user_id=f"u{i % 5000}", article_id=f"a{i % 300}", event=("click", "read")[i % 2],
                        ts=T0 + i, event_id=f"e{i}") for i in range(n)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in rows))
    PostgresStore(postgres_db).close()  # the schema, before the clock starts

    acked: list[tuple[int, int]] = []
    with _import(postgres_db, path, batch) as proc:
        try:
            for line in proc.stdout:
                if line.startswith("ack"):
                    _, inserted, duplicates, lo, hi = line.split()
                    acked.append((int(lo[1:]), int(hi[1:])))
                    if len(acked) == 3:  # mid-way: the 4th batch is being read, staged or committed
                        proc.send_signal(signal.SIGKILL)
                        break
        finally:
            proc.kill()
            err = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, err
    assert len(acked) == 3

    store = PostgresStore(postgres_db)
    try:
        with psycopg.connect(postgres_db) as conn:
            stored = conn.execute("SELECT count(*), count(DISTINCT eid) FROM events").fetchone()
            acked_ids = [rows[i].key64() for lo, hi in acked for i in range(lo, hi + 1)]
            present = conn.execute("SELECT count(*) FROM events WHERE eid = ANY(%s)", (acked_ids,)).fetchone()[0]
        assert present == len(acked_ids) == 3 * batch  # every acknowledged event, once
        assert stored[0] == stored[1] and stored[0] % batch == 0 and stored[0] < n  # whole batches only
        # the change log covers exactly what is stored: a follower from 0 reads every row once
        changes = store.changes_after(0, kinds=("events",))
        assert sum(c.hi - c.lo + 1 for c in changes) == stored[0]

        with _import(postgres_db, path, batch) as proc:
            out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        _, accepted, duplicates, rejected = out.strip().splitlines()[-1].split()
        assert (int(accepted), int(duplicates), int(rejected)) == (n - stored[0], stored[0], 0)
        assert store.stats()["events"] == n and len(store.load_interactions()) == n
        cursor, total = 0, 0
        while True:
            new, keys, _, _ = store.event_keys_after(cursor, limit=50_000)
            if new == cursor:
                break
            cursor, total = new, total + keys.size
        assert total == n
        assert _event_indexes(postgres_db) == fresh_indexes  # the dead first load's are built again
    finally:
        store.close()


# -- a first bulk load builds the events indexes after its rows ----------------------------------
def _event_indexes(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'").fetchall())


@pytest.fixture
def fresh_indexes(postgres_db) -> dict[str, str]:
    """The events indexes of a database just made by the migrations (what a load must leave)."""
    PostgresStore(postgres_db).close()
    fresh = _event_indexes(postgres_db)
    assert {"events_pkey", "events_eid_key", "events_user_cover", "events_ts", "events_user_reads",
            "events_user_other", "events_user_read_ts"} <= set(fresh)
    return fresh


def test_a_bulk_load_into_empty_events_builds_their_secondary_indexes_at_the_end(postgres_db, fresh_indexes):
    store = PostgresStore(postgres_db)
    try:
        events = _mixed_events(2_000, "d")
        with store.bulk_load():
            assert store.add_events(events[:1_000], source="import") == (1_000, 0)
            during = _event_indexes(postgres_db)
            assert set(during) == {"events_pkey", "events_eid_key"}  # the eid lookup keeps its index
            assert store.add_events(events[500:], source="import") == (1_000, 500)
            assert len(store.user_events("u3", limit=1_000)) == sum(e.user_id == "u3" for e in events)
        assert _event_indexes(postgres_db) == fresh_indexes
        with psycopg.connect(postgres_db) as conn:
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT seq FROM events WHERE user_key = 1 AND event IN (1, 2, 3) ORDER BY seq DESC LIMIT 5"))
        assert "events_user_reads" in plan  # analyzed: the planner knows the table is no longer empty
        with store.bulk_load():  # a second load into a table with events keeps the indexes
            assert store.add_events(_mixed_events(300, "e"), source="import")[0] == 200
            assert _event_indexes(postgres_db) == fresh_indexes
    finally:
        store.close()


def test_a_bulk_load_that_fails_still_builds_the_indexes(postgres_db, fresh_indexes):
    store = PostgresStore(postgres_db)
    try:
        with pytest.raises(RuntimeError, match="parser gave up"):
            with store.bulk_load():
                store.add_events(_mixed_events(100, "f"), source="import")
                assert "events_ts" not in _event_indexes(postgres_db)
                raise RuntimeError("parser gave up")
        assert _event_indexes(postgres_db) == fresh_indexes
        assert store.stats()["events"] == 100
    finally:
        store.close()


def test_a_bulk_load_that_cannot_reach_the_server_is_store_unavailable(postgres_db):
    store = PostgresStore(postgres_db, timeout=2)
    try:
        store.url = "postgresql://postgres@127.0.0.1:1/nothing"  # the server went away since the store opened
        with pytest.raises(StoreUnavailable, match="cannot start a bulk load"):
            with store.bulk_load():
                pass
    finally:
        store.close()


def test_indexes_a_dead_load_left_missing_are_built_by_the_next_open_unless_a_load_still_runs(
        postgres_db, fresh_indexes):
    from recommender.store.postgres import BULK_LOAD_LOCK

    store = PostgresStore(postgres_db)
    store.add_events(_mixed_events(50, "g"), source="import")
    store.close()
    with psycopg.connect(postgres_db, autocommit=True) as running:  # a load that is still running
        running.execute("SELECT pg_advisory_lock(%s)", (BULK_LOAD_LOCK,))
        running.execute("DROP INDEX events_user_cover, events_ts")
        PostgresStore(postgres_db).close()
        assert set(fresh_indexes) - set(_event_indexes(postgres_db)) == {"events_user_cover", "events_ts"}
        other = PostgresStore(postgres_db)
        with other.bulk_load():  # another load leaves them to the one that holds the lock
            other.add_events(_mixed_events(60, "g"), source="import")
        other.close()
        assert "events_ts" not in _event_indexes(postgres_db)
    PostgresStore(postgres_db).close()  # that load died (its connection closed): built on open
    assert _event_indexes(postgres_db) == fresh_indexes


# -- errors ----------------------------------------------------------------------------------
def test_a_server_that_does_not_answer_is_store_unavailable(postgres_server):
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot open PostgreSQL database"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/nothing", timeout=2)
    assert time.monotonic() - started < 10


def test_a_dropped_connection_is_store_unavailable_then_the_pool_reconnects(postgres_db):
    store = PostgresStore(postgres_db, pool_size=1)
    try:
        store.upsert_articles([article(1)])
        with psycopg.connect(postgres_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(StoreUnavailable):
            store.get_articles(["a1"])
        assert "a1" in wait_for(lambda: store.get_articles(["a1"]), "the pool to reconnect")
    finally:
        store.close()


def test_a_post_whose_lock_wait_times_out_stores_nothing_and_the_next_post_on_its_connection_is_stored(postgres_db):
    """A single-event post (one call of the server's function) that waits past ``lock_timeout`` for the
    commit-order lock is StoreUnavailable as a whole: no reader row, event or change is left; the
    pool's only connection comes back usable and the next post is stored."""
    store = PostgresStore(postgres_db, timeout=0.3, pool_size=1)
    try:
        with psycopg.connect(postgres_db) as holder:  # another writer, in its transaction, holding the lock
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_ORDER_LOCK,))
            with pytest.raises(StoreUnavailable):
                store.add_events([event("u1", "a1", ts=T0 + 1)])
            assert store.stats()["events"] == 0 and store.changes_after(0, kinds=("events",)) == []
            holder.rollback()
            assert holder.execute("SELECT count(*) FROM users WHERE user_id = 'u1'").fetchone()[0] == 0
        assert store.add_events([event("u1", "a2", ts=T0 + 2)]) == (1, 0)
        assert [e.article_id for e in store.user_events("u1")] == ["a2"]
        assert len(store.changes_after(0, kinds=("events",))) == 1
    finally:
        store.close()


def test_a_server_refusing_writes_is_a_disk_error_until_a_write_succeeds(postgres_db):
    store = PostgresStore(postgres_db, pool_size=1)
    try:
        with store._pool.connection() as conn:  # the pool's only connection: writes refused as on a standby
            conn.execute("SET default_transaction_read_only = on")
        with pytest.raises(StoreDiskError):
            store.add_events([event("u", "a1")])
        assert "read-only" in store.write_error
        with pytest.raises(StoreDiskError):
            store.check_writable()
        with store._pool.connection() as conn:
            conn.execute("SET default_transaction_read_only = off")
        store.check_writable()
        assert store.write_error is None
        assert store.add_events([event("u", "a1")]) == (1, 0)
    finally:
        store.close()


def test_a_database_of_a_newer_schema_is_refused(postgres_db):
    PostgresStore(postgres_db).close()
    with psycopg.connect(postgres_db) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer than this code"):
        PostgresStore(postgres_db)


def test_a_schema_1_database_gets_served_lists_and_keeps_its_sequence(postgres_db):
    """Schema 2 adds the served-lists table; a list's sequence number follows the stored events'."""
    store = PostgresStore(postgres_db)
    store.upsert_articles([article(i) for i in range(3)])
    store.add_events([event("u1", "a0", ts=T0 + 10), event("u1", "a1", "impression", ts=T0 + 20)])
    store.close()
    with psycopg.connect(postgres_db) as conn:  # back to what schema version 1 looked like
        conn.execute("DROP TABLE served_lists")
        conn.execute("DROP TABLE editorial_rules")
        conn.execute("DROP TABLE editorial_audit")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    migrated = PostgresStore(postgres_db)
    try:
        assert migrated.schema_version() >= 2  # and any later version
        _, seq = migrated.log_position()
        assert migrated.add_served_lists([ServedList("L1", "u1", T0 + 30, ("a2", "a0"), offset=5)]) == 1
        assert migrated.log_position()[1] == seq + 1
        assert migrated.stats()["events_by_type"]["impression"] == 3 and migrated.stats()["served_lists"] == 1
        assert [(e.article_id, e.position) for e in migrated.user_events("u1", events=("impression",))] == [
            ("a1", None), ("a2", 5), ("a0", 6)]
    finally:
        migrated.close()


# -- NEWSREC_DB=postgresql://... -------------------------------------------------------------
def test_newsrec_db_names_a_file_or_a_server(tmp_path):
    assert split_db_location("postgresql://u:secret@db:5432/news") == ("postgresql://u:secret@db:5432/news", None)
    assert split_db_location("postgres://db/news")[0] == "postgres://db/news"
    assert split_db_location("sqlite:///var/x.sqlite3") == (None, Path("var/x.sqlite3"))
    assert split_db_location("sqlite:////tmp/x.sqlite3") == (None, Path("/tmp/x.sqlite3"))
    assert split_db_location(tmp_path / "x.sqlite3") == (None, tmp_path / "x.sqlite3")
    with pytest.raises(ValueError, match="unknown database URL"):
        split_db_location("mysql://db/news")
    settings = Settings.from_env({"NEWSREC_HOME": str(tmp_path), "NEWSREC_DB": "postgresql://u:secret@db/news?sslmode=require"})
    assert settings.db_path is None and settings.db == "postgresql://u:secret@db/news?sslmode=require"
    assert settings.db_label == "postgresql://u@db/news"  # no password in messages and reports
    settings.ensure_dirs()  # no folder named after the URL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]
    default = Settings.from_env({"NEWSREC_HOME": str(tmp_path)})
    assert default.db_url is None and default.db == str(tmp_path / "newsrec.sqlite3")
    store = open_store(f"sqlite:///{tmp_path / 'y.sqlite3'}")
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "y.sqlite3"
    store.close()


def test_the_jobs_run_on_postgres(postgres_db, tmp_path, monkeypatch, capsys):
    from training.cli import main

    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEWSREC_DB", postgres_db)
    monkeypatch.delenv("NEWSREC_MODELS", raising=False)
    assert main(["sample", "--articles", "220", "--users", "60", "--days", "2", "--seed", "3", "--ingest",
                 "--end", "2026-11-01T00:00:00+07:00"]) == 0
    capsys.readouterr()
    assert main(["stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["database"] == postgres_db and stats["articles"] == 220 and stats["events"] > 0
    assert main(["train", "--json", "--as-of", "2026-11-01T00:00:00+07:00"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["version"] and not (tmp_path / "home" / "newsrec.sqlite3").exists()
    assert main(["models", "promote", trained["version"]]) == 0  # the live version is kept in PostgreSQL
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    assert [v["status"] for v in json.loads(capsys.readouterr().out)] == ["live"]
    assert not (tmp_path / "home" / "newsrec.sqlite3").exists()
    monkeypatch.setenv("NEWSREC_DB", "postgresql://postgres@127.0.0.1:1/nothing")
    assert main(["stats"]) == 1
    assert "cannot open PostgreSQL database" in capsys.readouterr().err


def test_the_service_runs_on_postgres(postgres_db, tmp_path, monkeypatch):
    from api import create_app
    from recommender.security import KEYS_FILE, KeyStore

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("NEWSREC_TOKEN_SECRET", "test-secret-0123456789abcdef")
    key, _ = KeyStore(home / KEYS_FILE).add("admin", name="test")
    app = create_app({"TESTING": True, "NEWSREC_HOME": str(home), "NEWSREC_DB": postgres_db})
    store = app.extensions["newsrec.store"]
    try:
        assert isinstance(store, PostgresStore) and app.config["NEWSREC_DB"] == postgres_db
        client = app.test_client()
        headers = {"X-API-Key": key}
        assert client.get("/readyz").status_code == 200
        now = time.time()
        published = [{"article_id": f"a{i}", "title": f"Berita {i}", "body": "Isi berita.", "category": "Nasional",
                      "published_at": now - 60 * i} for i in range(5)]
        assert client.post("/v1/articles", json={"articles": published}, headers=headers).status_code == 200
        posted = client.post("/v1/events", json={"events": [{"user_id": "r1", "article_id": "a1", "event": "click",
                                                            "ts": now}]}, headers=headers)
        assert posted.status_code == 200 and posted.get_json()["accepted"] == 1
        feed = client.get("/v1/users/r1/feed?limit=3", headers=headers)
        assert feed.status_code == 200 and "a1" not in [i["article_id"] for i in feed.get_json()["items"]]
        assert client.delete("/v1/users/r1", headers=headers).get_json()["removed"]["events"] == 1
        assert store.user_events("r1") == []
    finally:
        app.extensions["newsrec"].close()
        store.close()


# -- the live model --------------------------------------------------------------------------
def test_promoting_a_model_is_a_change_and_a_compare_and_set(postgres_db):
    store = PostgresStore(postgres_db, pool_size=10)
    try:
        start = store.log_position()[0]
        assert store.live_model() is None
        assert not store.promote_model("v2", expected="v1")
        assert store.promote_model("v1", expected=None) and store.live_model() == "v1"
        assert store.promote_model("v2")  # unconditional
        assert not store.promote_model("v3", expected="v1")  # someone else moved it on
        assert [(c.kind, c.ref) for c in store.changes_after(start)] == [("model", "v1"), ("model", "v2")]
        # eight trainers that all saw v2: exactly one of them wins
        results: list[bool] = []
        threads = [threading.Thread(target=lambda v=v: results.append(store.promote_model(v, expected="v2")))
                   for v in (f"t{i}" for i in range(8))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(results) == [False] * 7 + [True]
        winner = store.changes_after(start)[-1]
        assert winner.kind == "model" and winner.ref == store.live_model() and len(store.changes_after(start)) == 3
    finally:
        store.close()


# -- the bulk path: one binary COPY straight into events ------------------------------------------
def _mixed_events(n: int, prefix: str) -> list[Interaction]:
    """Every column filled and empty: dwell, list id, position and history on some events only."""
    kinds = ("impression", "click", "read", "share")
    return [Interaction(user_id=f"u{i % 37}", article_id=f"a{i % 11}", event=kinds[i % 4], ts=T0 + i * 7.5,
                        dwell_seconds=float(i % 90) + 0.25 if i % 4 == 2 else None,
                        event_id=f"{prefix}{i}" if i % 3 else None, list_id=f"L{i // 10}" if i % 5 == 0 else None,
                        position=i % 10 if i % 5 == 0 else None, history=i % 13 == 0 and i % 4 == 1)
            for i in range(n)]


def test_a_bulk_batch_stores_what_the_row_by_row_path_stores(postgres_db, tmp_path):
    bulk, rows = PostgresStore(postgres_db), SQLiteStore(tmp_path / "same.sqlite3")
    try:
        events = _mixed_events(3_000, "m")
        events += events[:50]  # repeated in the same batch: stored once
        with bulk.bulk_load():
            assert bulk.add_events(events, source="import") == (3_000, 50)
        assert rows.add_events(events, source="import") == (3_000, 50)
        for reader in ("u0", "u5", "u36"):
            assert bulk.user_events(reader, limit=1_000) == rows.user_events(reader, limit=1_000)
        a, b = bulk.load_interactions(), rows.load_interactions()
        assert len(a) == len(b) == 3_000
        for name in ("event", "ts", "history", "position"):
            assert np.array_equal(np.sort(getattr(a, name)), np.sort(getattr(b, name))), name
        assert np.array_equal(np.sort(a.dwell[~np.isnan(a.dwell)]), np.sort(b.dwell[~np.isnan(b.dwell)]))
        # one change covering contiguous sequence numbers, and a second import adds nothing
        changes = bulk.changes_after(0, kinds=("events",))
        assert [(c.hi - c.lo + 1) for c in changes] == [3_000]
        with bulk.bulk_load():
            assert bulk.add_events(events[::-1], source="import") == (0, 3_050)
        assert bulk.changes_after(0, kinds=("events",)) == changes
        assert bulk.stats()["events"] == 3_000
    finally:
        bulk.close()
        rows.close()


def test_a_bulk_batch_with_some_stored_events_adds_only_the_new_ones_in_order(postgres_db):
    store = PostgresStore(postgres_db)
    try:
        events = _mixed_events(500, "k")
        with store.bulk_load():
            assert store.add_events(events[100:300], source="import") == (200, 0)
            assert store.add_events(events, source="import") == (300, 200)
        with psycopg.connect(postgres_db) as conn:
            seqs = [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY ts").fetchall()]
            eids = {r[0] for r in conn.execute("SELECT eid FROM events").fetchall()}
        assert eids == {e.key64() for e in events}
        # the second batch's new events got one block of numbers, in the batch's order
        assert seqs[100:300] == list(range(1, 201))
        assert seqs[:100] + seqs[300:] == list(range(201, 501))
        seen = len(followed(store, limit=128)[0])
        assert seen == sum(not e.history for e in events) > 450  # history rows never count live
    finally:
        store.close()


def _fail_once_at_the_commit_order_lock(monkeypatch) -> None:
    """The next write fails where it would take the commit-order lock: after its keys, before its rows."""
    lock = PostgresStore._lock_commit_order
    fail = {"left": 1}

    def failing(self, conn):
        if fail["left"]:
            fail["left"] -= 1
            raise RuntimeError("the disk went away")
        return lock(self, conn)

    monkeypatch.setattr(PostgresStore, "_lock_commit_order", failing)


def test_a_bulk_load_remembers_only_the_article_keys_of_batches_that_committed(postgres_db, monkeypatch):
    """Article keys are looked up once per load; a batch that created keys and then failed must
    not leave them remembered (its rows are gone with its rollback)."""
    store = PostgresStore(postgres_db)
    try:
        with store.bulk_load():
            assert store.add_events([event("u1", "a1", "click", T0), event("u2", "a2", "read", T0 + 1)],
                                   source="import") == (2, 0)
            _fail_once_at_the_commit_order_lock(monkeypatch)  # after the batch's keys are created
            with pytest.raises(RuntimeError):
                store.add_events([event("u3", "a3", "click", T0 + 2)], source="import")
            # a3's key was rolled back: this batch creates it again; a1 comes from the memo
            assert store.add_events([event("u3", "a3", "click", T0 + 3), event("u3", "a1", "share", T0 + 4)],
                                    source="import") == (2, 0)
        assert [(e.article_id, e.event) for e in store.user_events("u3")] == [("a3", "click"), ("a1", "share")]
        with psycopg.connect(postgres_db) as conn:
            assert conn.execute("SELECT count(*) FROM events e LEFT JOIN article_keys k ON k.key = e.article_key "
                                "WHERE k.key IS NULL").fetchone()[0] == 0
    finally:
        store.close()


def test_served_lists_remember_the_article_keys_that_committed_and_ask_the_server_for_no_others(postgres_db,
                                                                                                monkeypatch):
    """A chunk of served lists names thousands of articles: their keys come from memory once any
    write committed them, and a key a failed transaction created is not remembered (its rollback
    took it away: remembered, the next list would point at no article)."""
    store = PostgresStore(postgres_db)
    try:
        store.add_events([event("u1", "a1", "click", T0)])
        _fail_once_at_the_commit_order_lock(monkeypatch)  # after the chunk's keys are looked up (a2's created)
        with pytest.raises(RuntimeError):
            store.add_served_lists([ServedList("L1", "u1", T0 + 10, ("a2", "a1"))])
        assert set(store._article_key_memo) == {"a1"}  # committed by the click; a2's key was rolled back
        assert store.add_served_lists([ServedList("L2", "u1", T0 + 20, ("a2", "a1"))]) == 1
        assert set(store._article_key_memo) == {"a1"}  # a2's key was created by L2's own transaction
        assert store.add_served_lists([ServedList("L3", "u1", T0 + 25, ("a2",))]) == 1
        assert set(store._article_key_memo) == {"a1", "a2"}
        asked = []
        execute = psycopg.Connection.execute

        def spy(self, query, *args, **kwargs):
            asked.append(str(query))
            return execute(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Connection, "execute", spy)
        assert store.add_served_lists([ServedList("L4", "u1", T0 + 30, ("a1", "a2"))]) == 1
        assert asked and not [q for q in asked if "article_keys" in q and "served_lists" not in q]
        monkeypatch.setattr(psycopg.Connection, "execute", execute)
        shown = [(e.article_id, e.list_id, e.position) for e in store.user_events("u1", events=("impression",))]
        assert shown == [("a2", "L2", 0), ("a1", "L2", 1), ("a2", "L3", 0), ("a1", "L4", 0), ("a2", "L4", 1)]
        with psycopg.connect(postgres_db) as conn:
            dangling = conn.execute("SELECT count(*) FROM served_lists l, unnest(l.article_keys) AS i(key) WHERE "
                                    "NOT EXISTS (SELECT 1 FROM article_keys k WHERE k.key = i.key)").fetchone()[0]
        assert dangling == 0
    finally:
        store.close()


def _orphan_events(url: str) -> int:
    """Events whose reader row is gone (what a forget must never leave)."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM events e LEFT JOIN users u ON u.key = e.user_key "
                            "WHERE u.key IS NULL").fetchone()[0]


@pytest.mark.parametrize("when", ["between batches", "after the batch looked its keys up",
                                  "while the batch holds the commit-order lock"])
def test_a_reader_forgotten_during_a_bulk_load_leaves_no_rows_under_the_old_key(postgres_db, monkeypatch, when):
    """A load remembers reader keys between batches without holding the rows. A forget that
    commits before a batch takes the commit-order lock must make it read them again (the trusted
    import then creates the reader anew); one that comes while the batch holds the lock waits for
    it and deletes its rows too. Never rows under the deleted key."""
    store = PostgresStore(postgres_db)
    forgets: list[dict] = []
    other = threading.Thread(target=lambda: forgets.append(store.forget_user("u1")))
    try:
        with store.bulk_load():
            assert store.add_events([event("u1", "a1", "click", T0), event("u2", "a1", "click", T0 + 1)],
                                    source="import") == (2, 0)
            if when == "between batches":
                other.start()
                other.join(timeout=30)
            else:
                lock = PostgresStore._lock_commit_order
                pending = {"forget": True}

                def with_a_forget(self, conn):
                    if not pending.pop("forget", False):
                        return lock(self, conn)
                    if when == "after the batch looked its keys up":  # it commits before the lock
                        other.start()
                        other.join(timeout=30)
                        return lock(self, conn)
                    lock(self, conn)
                    other.start()  # it waits for this batch's commit
                    wait_for(lambda: _advisory_waiters(postgres_db) == 1, "the forget to wait for the lock")

                monkeypatch.setattr(PostgresStore, "_lock_commit_order", with_a_forget)
            assert store.add_events([event("u1", "a2", "read", T0 + 60), event("u2", "a2", "read", T0 + 61)],
                                    source="import") == (2, 0)
        other.join(timeout=30)
        assert not other.is_alive()
        if when == "while the batch holds the commit-order lock":
            assert forgets[0]["events"] == 2 and store.user_events("u1") == []
        else:
            assert forgets[0]["events"] == 1
            assert [(e.article_id, e.event) for e in store.user_events("u1")] == [("a2", "read")]
        assert [(e.article_id, e.event) for e in store.user_events("u2")] == [("a1", "click"), ("a2", "read")]
        assert _orphan_events(postgres_db) == 0
    finally:
        store.close()


def test_a_bulk_batch_of_an_id_that_needs_escaping_still_round_trips(postgres_db):
    store = PostgresStore(postgres_db)
    try:
        odd = Interaction(user_id="u\\1\tx", article_id="a\n1", event="click", ts=T0, event_id="e1")
        with store.bulk_load():
            assert store.add_events([odd, event("u2", "a2", "click", T0 + 1)], source="import") == (2, 0)
        assert [e.article_id for e in store.user_events("u\\1\tx")] == ["a\n1"]
    finally:
        store.close()


def _reopened_at(url: str, version: int, *undo: str) -> PostgresStore:
    """The database set back to schema ``version`` (``undo``: what the later migrations made, as
    SQL), then opened again, which migrates it."""
    with psycopg.connect(url) as conn:
        for statement in undo:
            conn.execute(statement)
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(version),))
    return PostgresStore(url)


def test_a_schema_7_database_gets_the_probe_index_and_the_probe_uses_it(postgres_db):
    """Schema 8: a reader's hides and posted impressions by seq, so the feed's probe takes their
    smallest and largest in two index probes instead of scanning them all."""
    store = PostgresStore(postgres_db)
    first = probed_reader(store, "u")
    store.close()
    migrated = _reopened_at(postgres_db, 7, "DROP INDEX events_user_other")
    try:
        assert migrated.schema_version() >= 8 and "events_user_other" in _event_indexes(postgres_db)
        assert migrated.reader_version("u") == first
        with psycopg.connect(postgres_db) as conn:
            conn.execute("SET enable_seqscan = off")  # a table this small would be scanned anyway
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN " + PostgresStore._READER_VERSION_SQL.replace("%(user)s", "'u'")))
        assert "events_user_other" in plan
        migrated.add_events([event("u", "a2", "impression", ts=T0 + 5, event_id="late")])  # backdated
        assert migrated.reader_version("u")[3] != first[3]  # still a new largest seq
    finally:
        migrated.close()


def test_a_schema_8_database_gets_the_reads_by_time_and_a_profile_reads_them_in_one_range(postgres_db):
    """Schema 9 (SQLite's 13): a reader's clicks, reads and shares by time, so a profile's newest
    300 of them are one range of that index (not three ranges of the covering one); same rows."""
    from recommender.store.postgres import _history_sql

    store = PostgresStore(postgres_db)
    store.upsert_articles([article(i) for i in range(6)])
    store.add_events([event("u", f"a{i}", ("click", "read", "share")[i % 3], ts=T0 + (7 * i) % 5,
                            dwell_seconds=float(i)) for i in range(6)] + [event("u", "a0", "hide", ts=T0 + 9)])
    before = store.user_event_keys("u", limit=5, events=("click", "read", "share"))
    store.close()
    migrated = _reopened_at(postgres_db, 8, "DROP INDEX events_user_read_ts")
    try:
        assert migrated.schema_version() >= 9 and "events_user_read_ts" in _event_indexes(postgres_db)
        after = migrated.user_event_keys("u", limit=5, events=("click", "read", "share"))
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after))
        assert after[2].tolist() == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4]
        with psycopg.connect(postgres_db) as conn:
            conn.execute("SET enable_seqscan = off")  # a table this small would be scanned anyway
            sql = _history_sql(("click", "read", "share"), ids=False)
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN " + sql.replace("%(user)s", "'u'").replace("%(since)s", "-1").replace("%(limit)s", "300")))
        assert plan.count("events_user_read_ts") == 1 and "events_user_cover" not in plan, plan
    finally:
        migrated.close()


def _rows_read_from(plan: dict, table: str) -> int:
    """Rows the nodes of an ``EXPLAIN (ANALYZE, FORMAT JSON)`` plan read from ``table``, all loops."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if plan.get("Relation Name") == table else 0
    return own + sum(_rows_read_from(child, table) for child in plan.get("Plans", ()))


def test_a_readers_impressions_read_only_their_newest_lists_however_many_they_have(postgres_db):
    """A reader who refreshed their feed all day has hundreds of served lists among readers who have
    a few: the impressions read takes the newest lists from the reader index in order and stops
    (a heap row each), never all of theirs. The planner, expecting a reader's few, had read every one
    of them twice (bitmap scan, sort, limit): on the 10M-event store 0.5 ms at 100 lists, 2 ms at 3,000."""
    from recommender.store.postgres import NEWEST_LISTS, _history_sql

    store = PostgresStore(postgres_db)
    try:
        store.upsert_articles([article(i) for i in range(40)])
        arts = [f"a{i}" for i in range(40)]
        store.add_served_lists([served(f"o{n}", f"other{n % 2000}", tuple(arts[n % 20:n % 20 + 20]), ts=T0 + n)
                                for n in range(10_000)])
        store.add_served_lists([served(f"h{n}", "heavy", tuple(arts[n % 20:n % 20 + 20]), ts=T0 + 10 * n)
                                for n in range(300)])
        keys, _, ts, _ = store.user_event_keys("heavy", limit=500, events=("impression",))
        assert keys.size == 500 and ts[0] == T0 + 10 * 275 and ts[-1] == T0 + 10 * 299  # the newest 25 lists
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            conn.execute("ANALYZE served_lists")
            sql = _history_sql(("impression",), ids=False)
            plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql.replace("%(user)s", "'heavy'").replace(
                "%(since)s", "-1").replace("%(limit)s", "500")).fetchone()[0][0]["Plan"]
        assert 0 < _rows_read_from(plan, "served_lists") <= 2 * NEWEST_LISTS + 1, json.dumps(plan)
    finally:
        store.close()


def test_a_schema_9_database_gets_the_read_set_checkpoint(postgres_db):
    """Schema 10 (SQLite's 14): the table of heavy readers' read sets that training writes; a
    database without it migrates, stores a row and answers the reader's read set from it."""
    from recommender.store import ReadSetRow

    store = PostgresStore(postgres_db)
    store.upsert_articles([article(i) for i in range(4)])
    store.add_events([event("u", f"a{i}", ts=T0 + i) for i in range(3)])
    store.close()
    migrated = _reopened_at(postgres_db, 9, "DROP TABLE read_sets")
    try:
        assert migrated.schema_version() >= 10
        key = migrated.article_keys([f"a{i}" for i in range(4)])
        first, hi = migrated.user_read_bounds("u")
        row = ReadSetRow("u", first, np.array([key["a0"], key["a3"]]), np.zeros(0, np.int64), np.zeros(0))
        assert migrated.put_read_sets([row], T0 - 10, T0 + 50, hi) == 1
        assert sorted(migrated.user_read_set("u", T0 - 5, T0 + 60)[0].tolist()) == sorted([key["a0"], key["a3"]])
    finally:
        migrated.close()


def test_a_schema_10_database_gets_the_function_posts_are_written_with(postgres_db):
    """Schema 11: ``newsrec_add_few_events``. A database without it migrates; a post is then stored
    once with its change row, a repeat of the same reader, article, type and hour is stored but not
    counted, and a known event id is skipped."""
    store = PostgresStore(postgres_db)
    store.upsert_articles([article(1)])
    store.close()
    migrated = _reopened_at(postgres_db, 10, "DROP FUNCTION newsrec_add_few_events")
    try:
        assert migrated.schema_version() >= 11
        _, seq = migrated.log_position()
        assert migrated.add_events([event("u", "a1", ts=T0 + 1, event_id="e1")]) == (1, 0)
        assert migrated.add_events([event("u", "a1", ts=T0 + 2, event_id="e2"),
                                    event("u", "a1", ts=T0 + 2, event_id="e1")]) == (1, 1)
        keys, _, _ = followed(migrated, seq)
        assert [e.ts for e in migrated.user_events("u")] == [T0 + 1, T0 + 2]
        assert len(keys) == 1  # the repeat within the hour is stored, not counted live
        assert len(migrated.changes_after(0, kinds=("events",))) == 2
    finally:
        migrated.close()


def test_a_schema_6_database_gets_the_feature_log(postgres_db):
    """Schema 7 adds the feature log (SQLite's 11): a new table, the served lists untouched."""
    import numpy as np

    from recommender.store import FeatureLogRow

    store = PostgresStore(postgres_db)
    store.upsert_articles([article(i) for i in range(3)])
    store.add_served_lists([ServedList("L1", "u1", T0 + 30, ("a2", "a0"))])
    store.close()
    migrated = _reopened_at(postgres_db, 6, "DROP TABLE feature_log")
    try:
        assert migrated.schema_version() >= 7 and migrated.stats()["served_lists"] == 1
        row = FeatureLogRow("L1", "u1", T0 + 30, ("a2", "a0"), ("blend",), np.array([[0.5], [0.25]]))
        assert migrated.add_feature_logs([row]) == 1
        (back,) = migrated.feature_logs()
        assert back.article_ids == ("a2", "a0") and back.features.tolist() == [[0.5], [0.25]]
    finally:
        migrated.close()


def test_while_the_server_does_not_answer_calls_fail_at_once_then_recover(postgres_db, monkeypatch):
    """A server that went away costs one call its ``timeout`` (after the one that found its
    connection dead); the next ones within
    ``UNREACHABLE_PAUSE`` fail at once (StoreUnavailable, the pool not even asked) instead of each
    waiting the timeout again (a feed asks several times: 30 s per request were seen); once the
    server is back, calls succeed again by themselves."""
    proxy = PgProxy(postgres_db)
    store = PostgresStore(proxy.url, timeout=2.0, pool_size=1)
    try:
        store.upsert_articles([Article("a1", "Banjir di Jakarta", "", "Nasional", 1_780_000_000.0)])
        assert store.reader_version("u1") is not None
        proxy.stop()
        with pytest.raises(StoreUnavailable):
            store.reader_version("u1")  # finds its connection gone: the pool replaces it, nothing more
        with pytest.raises(StoreUnavailable, match="couldn't get a connection"):
            store.reader_version("u1")  # waits ``timeout`` for a new one: the server does not answer
        asked = []
        original = store._pool.connection
        monkeypatch.setattr(store._pool, "connection", lambda *a, **k: asked.append(1) or original(*a, **k))
        for call in (lambda: store.reader_version("u1"), lambda: store.user_read_keys("u1", 0.0),
                     lambda: store.add_events([Interaction("u1", "a1", "click", 1_780_000_100.0)])):
            with pytest.raises(StoreUnavailable, match="did not answer a moment ago"):
                call()
        assert asked == []  # failed without waiting for a connection
        proxy.restart()
        deadline = time.monotonic() + 30
        while True:
            try:
                store.add_events([Interaction("u1", "a1", "click", 1_780_000_100.0, event_id="back")])
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the store did not recover after the server came back"
                time.sleep(0.05)  # a back-off between attempts, not a wait for the pause to pass
        assert store.user_read_keys("u1", 0.0).size == 1
    finally:
        store.close()
        proxy.stop()


def test_writes_about_readers_notify_listeners_when_they_commit_and_only_then(postgres_db):
    """``watch_writes``: the notices a lagging worker drops its answers on (serving.freshness).
    Each names the readers written for, or None (every reader) for a takedown or an import; a
    served list (only whether there is one counts), a write that rolls back, send none."""
    import queue

    from recommender.domain import Preferences

    store = PostgresStore(postgres_db)
    watch = store.watch_writes()
    got: queue.Queue = queue.Queue()
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            for notice in watch.notices(timeout=0.2):
                got.put(notice)

    listener = threading.Thread(target=listen)
    listener.start()

    def next_notice():
        return got.get(timeout=10)

    try:
        store.upsert_articles([article(i) for i in range(3)])
        store.add_events([event("u1", "a0")])  # a few client events: the server's function
        assert next_notice() == ["u1"]
        store.add_events([event(f"v{k}", "a1", event_id=f"b{k}") for k in range(150)])  # a batch
        assert next_notice() == sorted(f"v{k}" for k in range(150))
        store.add_served_lists([ServedList("L1", "u2", T0 + 10, ("a2", "a1"))])
        store.set_preferences(Preferences("u3", categories=("Nasional",), regions=()))
        assert next_notice() == ["u3"]  # (none for the served list)

        def rolled_back(conn):
            store._lock_commit_order(conn)
            store._log(conn, "preferences", notice='["u4"]')
            raise ValueError("the write fails after its notice was sent")

        with pytest.raises(ValueError):
            store._write(rolled_back)
        store.forget_user("u1")
        assert next_notice() == ["u1"]  # (none for the write that rolled back)
        assert store.takedown_article("a2")
        assert next_notice() is None
        assert store.restore_article("a2")
        assert next_notice() is None
        assert got.empty()
    finally:
        stop.set()
        listener.join()
        watch.close()
        store.close()


def test_a_payload_naming_too_many_readers_names_every_reader():
    from recommender.store.postgres import EVERY_READER, reader_notice

    assert json.loads(reader_notice(["b", "a", "b"])) == ["a", "b"]
    assert reader_notice(f"reader-{k:06d}" for k in range(1000)) == EVERY_READER
