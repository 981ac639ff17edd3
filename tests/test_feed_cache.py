"""The per-reader feed cache (``EngineConfig.feed_cache_seconds``) never serves a page that a
change must alter: two engines on one store are two workers (SQLite) or two replicas
(PostgreSQL); what one accepts, the other's next feed shows, cached or not."""

from __future__ import annotations

import pytest

from recommender.domain import Interaction, Preferences
from recommender.models.fitting import train
from recommender.serving.engine import Engine, EngineConfig
from recommender.store import SQLiteStore
from tests.serve_fixtures import eventually


def ids(ranked):
    return [item.article_id for item in ranked.items]


class Reads:
    """Counts a store method's calls: by default the reads a feed makes to build a reader's
    profile (none on a cache hit); ``reader_version``: what a cached feed asks the store."""

    def __init__(self, store, monkeypatch, name: str = "user_event_keys"):
        self.calls = 0
        original = getattr(store, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)


def active_reader(sample):
    """A reader with clicks, whose feed is personal."""
    counts = {}
    for e in sample.data.events:
        if e["event"] == "click":
            counts[e["user_id"]] = counts.get(e["user_id"], 0) + 1
    return max(counts, key=counts.get)


@pytest.fixture
def workers(trained, tmp_path, monkeypatch):
    """(sample, worker A, worker B, B's profile-read counter): two engines, two connections."""
    sample = trained.clone(tmp_path)
    a = sample.engine()
    b_store = SQLiteStore(sample.store.path)
    b = Engine(b_store, sample.models_dir, EngineConfig(), clock=lambda: sample.now)
    yield sample, a, b, Reads(b_store, monkeypatch)
    b_store.close()


def test_an_unchanged_reader_is_served_from_the_cache_with_a_new_list_id(workers):
    sample, _, b, reads = workers
    reader = active_reader(sample)
    first = b.feed(reader, limit=10)
    built = reads.calls
    again = b.feed(reader, limit=10)
    assert reads.calls == built  # nothing read to build a profile: the cached page
    assert ids(again) == ids(first) and again.next_cursor == first.next_cursor
    assert again.list_id != first.list_id  # each serving is its own list for click attribution
    assert (first.cache, again.cache) == ("miss", "hit")  # what newsrec_feed_cache_lookups counts
    assert b.feed(reader, limit=10, cursor=first.next_cursor).cache is None  # later pages are not cached
    other_size = b.feed(reader, limit=5)
    assert reads.calls > built and ids(other_size) == ids(first)[:5]  # another page size is built
    uncached = Engine(b.store, sample.models_dir, EngineConfig(feed_cache_seconds=0), clock=lambda: sample.now)
    off = uncached.feed(reader, limit=10)
    assert ids(off) == ids(first) and off.cache is None


def test_cached_pages_and_related_lists_are_plain_values_the_cycle_collector_stops_walking(workers):
    """20,000 cached pages of item objects made each full collection walk ~460,000 objects (~200
    ms with every thread of the worker waiting): entries are tuples of strings and numbers, which
    the collector untracks in its first passes; a hit gives the same items back."""
    import gc

    sample, _, b, _ = workers
    reader = active_reader(sample)
    first = b.feed(reader, limit=10)
    anchor = first.items[0].article_id
    related = b.related(anchor, limit=5)
    for _ in range(4):  # each pass untracks the tuples whose members were untracked before it: a level of nesting
        gc.collect()
    state = b._state
    (page,) = [v for k, v in state.feed_cache.items() if k is not None]
    (shared,) = state.related_cache.values()
    assert not gc.is_tracked(page) and not gc.is_tracked(shared[1])  # nothing inside either is walked
    again = b.feed(reader, limit=10)
    assert again.cache == "hit" and again.items == first.items and again.extra == first.extra
    assert b.related(anchor, limit=5).items == related.items


def test_a_click_on_worker_a_leaves_the_cached_feed_of_worker_b(workers):
    sample, a, b, reads = workers
    reader = active_reader(sample)
    before = ids(b.feed(reader, limit=10))
    clicked = before[0]
    a.record_events([Interaction(reader, clicked, "click", sample.now - 5)])
    built = reads.calls
    after = b.feed(reader, limit=10)  # no poll of B in between
    assert reads.calls > built and clicked not in ids(after) and after.cache == "miss"


def test_a_hide_and_a_posted_impression_burst_reach_the_cached_feed(workers):
    sample, a, b, _ = workers
    reader = active_reader(sample)
    before = ids(b.feed(reader, limit=10))
    a.record_events([Interaction(reader, before[1], "hide", sample.now - 5)])
    assert before[1] not in ids(b.feed(reader, limit=10))
    top = ids(b.feed(reader, limit=10))[0]
    n = b._state.model.ranking.fatigue_impressions
    a.record_events([Interaction(reader, top, "impression", sample.now - 100 + k) for k in range(2 * n)])
    assert ids(b.feed(reader, limit=10))[:1] != [top]


def test_lists_served_to_a_reader_count_as_their_impressions_with_the_cache_on_as_off(workers, monkeypatch):
    """A reader who never posted an impression or a hide: the pages served to them are their
    impressions (fatigue, the learned stage's skipped articles and own click-through) whether the
    page is built behind the cache's probe (serving) or without the cache (offline replays)."""
    sample, a, b, _ = workers
    model = b._state.model
    reader = "served-only"
    a.record_events([Interaction(reader, model.item_ids.ids[model.window_start], "click", sample.now - 50)])
    for _ in range(3):  # a cached page is logged as a new list too
        a.feed(reader, limit=10)
    a.flush_impressions()
    built = []
    original = b._profile_and_history
    monkeypatch.setattr(b, "_profile_and_history", lambda *args, **kw: built.append(original(*args, **kw)) or built[-1])
    assert b.feed(reader, limit=10).cache == "miss"  # built behind the probe
    behind_probe = built[0][0]
    uncached = Engine(sample.store, sample.models_dir, EngineConfig(feed_cache_seconds=0.0), clock=lambda: sample.now)
    alone = uncached._profile(uncached._state, uncached._state.snapshot(), reader, sample.now)
    assert behind_probe.impressions_seen == alone.impressions_seen == 30
    assert behind_probe.skipped.tolist() == alone.skipped.tolist() and behind_probe.skipped.size == 10
    assert behind_probe.shown.tolist() == alone.shown.tolist()


def test_a_takedown_on_worker_a_leaves_the_cached_feed_of_worker_b(workers):
    sample, a, b, _ = workers
    reader = active_reader(sample)
    victim = ids(b.feed(reader, limit=10))[2]
    assert a.takedown(victim)
    assert victim not in ids(b.feed(reader, limit=10))


def test_a_preference_change_and_a_forget_rebuild_the_cached_feed(workers):
    sample, a, b, reads = workers
    reader = active_reader(sample)
    b.feed(reader, limit=10)
    built = reads.calls
    a.set_preferences(Preferences(reader, categories=(sample.data.articles[0]["category"],), regions=()))
    personal = ids(b.feed(reader, limit=10))
    assert reads.calls > built
    cold = ids(b.feed("nobody-yet", limit=10))
    assert ids(b.feed(reader, limit=10)) == personal != cold  # cached, and not the cold page
    a.forget_user(reader)
    # rebuilt, not the cached page: no history, no preferences (nothing left to read): the cold page
    assert ids(b.feed(reader, limit=10)) == cold


def test_a_promoted_model_replaces_the_cached_feed(workers):
    sample, _, b, _ = workers
    reader = active_reader(sample)
    old = b.feed(reader, limit=10)
    new, _ = train(sample.store, sample.models_dir, as_of=sample.now, seed=1, promote=True)
    b.follow()  # B's poll sees the model change in the log and loads it
    assert b.model_version == new != old.model_version
    assert b.feed(reader, limit=10).model_version == new


def test_the_cache_forgets_a_page_once_the_engine_clock_moves_on(workers):
    sample, _, b, reads = workers
    reader = active_reader(sample)
    b.feed(reader, limit=10)
    built = reads.calls
    sample.now += b.config.feed_cache_seconds + 1
    b.feed(reader, limit=10)
    assert reads.calls > built


def test_a_click_on_replica_a_leaves_the_cached_feed_of_replica_b_on_postgresql(trained, tmp_path, postgres_db,
                                                                                 monkeypatch):
    from recommender.store.postgres import PostgresStore
    from training.migrate import migrate_store

    sample = trained.clone(tmp_path)
    target = PostgresStore(postgres_db)
    migrate_store(sample.store, target)
    second = PostgresStore(postgres_db)
    try:
        strict = EngineConfig(lag_seconds=0.0)  # every list asks the database (the default lags, ended by notices)
        a = Engine(target, sample.models_dir, strict, clock=lambda: sample.now)
        b = Engine(second, sample.models_dir, strict, clock=lambda: sample.now)
        reads = Reads(second, monkeypatch)
        reader = active_reader(sample)
        before = ids(b.feed(reader, limit=10))
        built = reads.calls
        assert ids(b.feed(reader, limit=10)) == before and reads.calls == built  # cached
        a.record_events([Interaction(reader, before[0], "click", sample.now - 5)])
        assert before[0] not in ids(b.feed(reader, limit=10))
        assert a.takedown(before[1])
        assert before[1] not in ids(b.feed(reader, limit=10))  # B applies it before looking at its cache
    finally:
        target.close()
        second.close()


def test_a_reader_new_to_a_postgresql_worker_costs_one_wait_for_the_server(trained, tmp_path, postgres_db,
                                                                          monkeypatch):
    """A reader with no page kept cannot hit the cache, so the feed sends the version probe and
    every read of the reader in one pipeline (``Store.reader_version_and_reads``): one connection
    taken from the pool, one wait. The page is the one the probe-then-reads path builds (an
    engine without the cache, which reads each thing by itself); a cached reader's next request
    still probes alone (lag 0; within the default lag it would not ask at all)."""
    import contextlib

    from recommender.store.postgres import PostgresStore
    from training.migrate import migrate_store

    sample = trained.clone(tmp_path)
    store = PostgresStore(postgres_db)
    migrate_store(sample.store, store)
    try:
        engine = Engine(store, sample.models_dir, EngineConfig(lag_seconds=0.0), clock=lambda: sample.now)
        uncached = Engine(store, sample.models_dir, EngineConfig(feed_cache_seconds=0, lag_seconds=0.0),
                          clock=lambda: sample.now)
        engine.refresh()  # every article key mapped, as a serving worker's first poll does
        reader = active_reader(sample)
        page = ids(uncached.feed(reader, limit=10, log=False))
        store.set_preferences(Preferences(reader, categories=("Olahraga",), regions=()))
        engine.record_events([Interaction(reader, page[0], "hide", sample.now - 5),
                              Interaction(reader, page[1], "impression", sample.now - 4)])
        waits = []
        original = store._reading

        @contextlib.contextmanager
        def counted():
            waits.append(1)
            with original() as conn:
                yield conn

        monkeypatch.setattr(store, "_reading", counted)
        first = ids(engine.feed(reader, limit=10, log=False))
        assert len(waits) == 1
        monkeypatch.setattr(store, "_reading", original)
        assert first == ids(uncached.feed(reader, limit=10, log=False)) and page[0] not in first
        monkeypatch.setattr(store, "_reading", counted)
        waits.clear()
        assert ids(engine.feed(reader, limit=10, log=False)) == first and len(waits) == 1  # the probe: a hit
    finally:
        store.close()


@pytest.fixture
def lagging(trained, tmp_path, monkeypatch):
    """Two workers with ``lag_seconds=1`` on one store, B's lag clock in the test's hands:
    (sample, A, B, B's clock [seconds], B's reader_version counter)."""
    sample = trained.clone(tmp_path)
    a = sample.engine(lag_seconds=1.0)
    b_store = SQLiteStore(sample.store.path)
    b = Engine(b_store, sample.models_dir, EngineConfig(lag_seconds=1.0), clock=lambda: sample.now)
    clock = [100.0]
    b._recent.clock = lambda: clock[0]
    yield sample, a, b, clock, Reads(b_store, monkeypatch, "reader_version")
    b_store.close()


def test_with_a_lag_a_cached_feed_asks_the_store_once_a_lag_and_other_workers_clicks_show_after_it(lagging):
    sample, a, b, clock, asked = lagging
    reader = active_reader(sample)
    before = ids(b.feed(reader, limit=10))  # a miss: the version comes with its reads
    asked.calls = 0
    for _ in range(3):
        assert b.feed(reader, limit=10).cache == "hit"
    assert asked.calls == 0  # no round trip for the hits within the lag
    a.record_events([Interaction(reader, before[0], "click", sample.now - 5)])
    clock[0] += 0.9
    stale = b.feed(reader, limit=10)
    assert stale.cache == "hit" and ids(stale) == before and asked.calls == 0  # behind by the lag, no more
    clock[0] += 0.1
    fresh = b.feed(reader, limit=10)
    assert asked.calls == 1 and fresh.cache == "miss" and before[0] not in ids(fresh)
    assert b.feed(reader, limit=10).cache == "hit" and asked.calls == 1


def test_with_a_lag_the_workers_own_click_preference_and_forget_show_at_once(lagging):
    sample, _, b, _, asked = lagging
    reader = active_reader(sample)
    before = ids(b.feed(reader, limit=10))
    assert b.feed(reader, limit=10).cache == "hit"
    asked.calls = 0
    b.record_events([Interaction(reader, before[0], "click", sample.now - 5)])  # the lag clock does not move
    after = b.feed(reader, limit=10)
    assert after.cache == "miss" and before[0] not in ids(after) and asked.calls == 1  # it asked again
    assert b.feed(reader, limit=10).cache == "hit" and asked.calls == 1
    b.set_preferences(Preferences(reader, categories=(sample.data.articles[0]["category"],), regions=()))
    assert b.feed(reader, limit=10).cache == "miss" and asked.calls == 2
    cold = ids(b.feed("nobody-yet", limit=10))
    b.forget_user(reader)
    assert ids(b.feed(reader, limit=10)) == cold


def test_with_a_lag_another_workers_takedown_leaves_every_list_within_it(lagging):
    sample, a, b, clock, _ = lagging
    reader = active_reader(sample)
    page = ids(b.feed(reader, limit=10))
    victim = page[2]
    anchor = next(p for p in page if p != victim and victim in ids(b.related(p, limit=10)))
    assert a.takedown(victim)
    clock[0] += 0.5
    assert victim in ids(b.feed(reader, limit=10))  # within the lag: B has not looked yet
    clock[0] += 0.5
    assert victim not in ids(b.feed(reader, limit=10))
    assert victim not in ids(b.related(anchor, limit=10))


def test_lag_is_bounded_and_read_from_the_environment_and_experiments_never_lag(trained):
    from api import engine_config_from_env
    from recommender.experiments.variants import PinnedEngine  # noqa: F401  (the class the router builds)

    assert engine_config_from_env({"NEWSREC_LAG_SECONDS": "1.5"}).lag_seconds == 1.5
    assert engine_config_from_env({}).lag_seconds is None  # the engine picks: 1 on PostgreSQL, 0 on SQLite
    assert engine_config_from_env({"NEWSREC_LAG_SECONDS": "0"}).lag_seconds == 0.0
    assert trained.engine().config.lag_seconds == 0.0
    for bad in ("3", "-1", "soon", "nan"):
        with pytest.raises(ValueError, match="NEWSREC_LAG_SECONDS must be a number from 0 to 2"):
            engine_config_from_env({"NEWSREC_LAG_SECONDS": bad})
    with pytest.raises(ValueError, match="lag_seconds"):
        trained.engine(lag_seconds=5.0)


def test_with_a_lag_a_replica_on_postgresql_catches_up_on_clicks_and_takedowns_within_it(trained, tmp_path,
                                                                                         postgres_db, monkeypatch):
    from recommender.store.postgres import PostgresStore
    from training.migrate import migrate_store

    sample = trained.clone(tmp_path)
    target = PostgresStore(postgres_db)
    migrate_store(sample.store, target)
    second = PostgresStore(postgres_db)
    try:
        a = Engine(target, sample.models_dir, EngineConfig(lag_seconds=1.0), clock=lambda: sample.now)
        b = Engine(second, sample.models_dir, EngineConfig(lag_seconds=1.0), clock=lambda: sample.now)
        clock = [100.0]
        b._recent.clock = lambda: clock[0]
        asked = Reads(second, monkeypatch, "reader_version")
        reader = active_reader(sample)
        before = ids(b.feed(reader, limit=10))
        a.record_events([Interaction(reader, before[0], "click", sample.now - 5)])
        assert a.takedown(before[1])
        clock[0] += 0.9
        stale = b.feed(reader, limit=10)
        assert stale.cache == "hit" and ids(stale) == before and asked.calls == 0  # no round trip
        clock[0] += 0.1
        fresh = ids(b.feed(reader, limit=10))
        assert asked.calls == 1 and before[0] not in fresh and before[1] not in fresh
    finally:
        target.close()
        second.close()


@pytest.fixture
def noticed(trained, tmp_path, postgres_db, monkeypatch):
    """Two replicas with the longest lag on one PostgreSQL database, B following the store's
    notices of writes and its lag clock stopped: only a notice can end B's reuse of an answer.
    (sample, A, B, B's reader_version counter)."""
    from recommender.store.postgres import PostgresStore
    from training.migrate import migrate_store

    sample = trained.clone(tmp_path)
    target = PostgresStore(postgres_db)
    migrate_store(sample.store, target)
    second = PostgresStore(postgres_db)
    a = Engine(target, sample.models_dir, EngineConfig(lag_seconds=2.0), clock=lambda: sample.now)
    b = Engine(second, sample.models_dir, EngineConfig(lag_seconds=2.0), clock=lambda: sample.now)
    b._recent.clock = lambda: 100.0
    b.start_notices()
    try:
        eventually(lambda: b.write_notices == "listening", 10, what="B listening")
        yield sample, a, b, Reads(second, monkeypatch, "reader_version")
    finally:
        b.close()
        target.close()
        second.close()


def test_on_postgresql_another_replicas_click_preferences_and_forget_end_the_lag_at_once(noticed):
    sample, a, b, asked = noticed
    reader, other = active_reader(sample), "nobody-yet"
    before = ids(b.feed(reader, limit=10))
    b.feed(other, limit=10)
    assert b.feed(reader, limit=10).cache == "hit" and b.feed(other, limit=10).cache == "hit" and asked.calls == 0
    a.record_events([Interaction(reader, before[0], "click", sample.now - 5)])
    # the lag's clock stands still: only the notice can make B ask again
    after = eventually(lambda: (lambda r: r.cache == "miss" and r)(b.feed(reader, limit=10)), 5, what="the click")
    assert before[0] not in ids(after) and asked.calls >= 1
    calls = asked.calls
    assert b.feed(other, limit=10).cache == "hit" and asked.calls == calls  # a notice names its readers only
    assert b.feed(reader, limit=10).cache == "hit" and asked.calls == calls
    category = sample.data.articles[0]["category"]
    a.set_preferences(Preferences(reader, categories=(category,), regions=()))
    eventually(lambda: b.feed(reader, limit=10).cache == "miss", 5, what="the preferences")
    cold = ids(b.feed(other, limit=10))
    a.forget_user(reader)
    eventually(lambda: ids(b.feed(reader, limit=10)) == cold, 5, what="the forget")


def test_on_postgresql_another_replicas_takedown_ends_the_lag_for_every_list_at_once(noticed):
    sample, a, b, _ = noticed
    reader = active_reader(sample)
    page = ids(b.feed(reader, limit=10))
    victim = page[2]
    anchor = next(p for p in page if p != victim and victim in ids(b.related(p, limit=10)))
    assert b.feed(reader, limit=10).cache == "hit"
    assert a.takedown(victim)
    eventually(lambda: victim not in ids(b.feed(reader, limit=10)), 5, what="the takedown in the feed")
    assert victim not in ids(b.related(anchor, limit=10))


def test_a_replica_that_loses_its_notices_listens_again(noticed):
    """The listening connection cut by the server (a restart, a firewall): the status says so,
    the engine listens again, and notices end the lag again."""
    import psycopg

    sample, a, b, _ = noticed
    reader = active_reader(sample)
    from api.metrics import EngineStatusCollector

    def lost() -> float:  # the gauge an operator alerts on
        return next(m for m in EngineStatusCollector(b.status).collect()
                    if m.name == "newsrec_write_notices_lost").samples[0].value

    assert lost() == 0.0
    with psycopg.connect(b.store.url, autocommit=True) as admin:
        cut = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND query LIKE 'LISTEN%%'").fetchall()
    assert cut == [(True,)]
    eventually(lambda: b.status()["write_notices"].startswith("lost") and lost() == 1.0, 5, what="the loss seen")
    eventually(lambda: b.status()["write_notices"] == "listening" and lost() == 0.0, 10, what="listening again")
    before = ids(b.feed(reader, limit=10))
    assert b.feed(reader, limit=10).cache == "hit"
    a.record_events([Interaction(reader, before[0], "click", sample.now - 5)])
    eventually(lambda: before[0] not in ids(b.feed(reader, limit=10)), 5, what="the click after listening again")
