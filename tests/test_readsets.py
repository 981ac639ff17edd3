"""The read-set cache (``serving.readsets``) answers as the store does, on both backends, through
clicks, forgets and events stamped in the future: the reads a feed leaves out are never stale."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.domain import Interaction
from recommender.serving.readsets import ReadSets
from recommender.store import SQLiteStore

from .store_contract import T0, article, event


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "reads.sqlite3")
    else:
        from recommender.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_db"))
    yield s
    s.close()


def truth(store, user, since, until) -> list[int]:
    return store.user_read_keys(user, since, until=until, events=("click", "read", "share")).tolist()


def test_the_cache_answers_as_the_store_through_clicks_forgets_and_future_events(store):
    store.upsert_articles([article(i) for i in range(40)])
    key = {a: s.key for a, s in store.get_stored_articles([f"a{i}" for i in range(40)]).items()}
    store.add_events([event("heavy", f"a{i % 20}", kind=("click", "read", "share")[i % 3], ts=T0 + i,
                            event_id=f"h{i}") for i in range(60)]
                     + [event("heavy", "a30", "impression", ts=T0 + 5), event("light", "a1", ts=T0 + 1)])
    reads = ReadSets(store, min_events=10)
    now = T0 + 1000
    assert reads.keys("heavy", T0, now).tolist() == truth(store, "heavy", T0, now) == sorted(key[f"a{i}"] for i in range(20))
    assert len(reads) == 1 and reads.keys("light", T0, now).tolist() == [key["a1"]] and len(reads) == 1

    # a click: in the next answer (a delta read by sequence number)
    store.add_events([event("heavy", "a25", ts=T0 + 900, event_id="new")])
    assert key["a25"] in reads.keys("heavy", T0, now).tolist()
    assert reads.keys("heavy", T0, now).tolist() == truth(store, "heavy", T0, now)
    # an event stamped after the clock: left out until the clock passes it, then in
    store.add_events([event("heavy", "a26", ts=now + 50, event_id="early")])
    assert key["a26"] not in reads.keys("heavy", T0, now).tolist()
    assert reads.keys("heavy", T0, now + 60).tolist() == truth(store, "heavy", T0, now + 60)
    assert key["a26"] in reads.keys("heavy", T0, now + 60).tolist()
    # an earlier clock or window start than the entry's: the store's answer
    assert reads.keys("heavy", T0 + 30, now).tolist() == truth(store, "heavy", T0 + 30, now)
    assert reads.keys("heavy", T0 - 5, now).tolist() == truth(store, "heavy", T0 - 5, now)

    # a forget: nothing; then new reads of the same reader: only those
    store.forget_user("heavy")
    assert reads.keys("heavy", T0, now + 60).tolist() == []
    reads.keys("heavy", T0, now + 60)
    store.add_events([event("heavy", f"a{30 + i % 5}", ts=T0 + 950 + i, event_id=f"b{i}") for i in range(12)])
    assert reads.keys("heavy", T0, now + 60).tolist() == truth(store, "heavy", T0, now + 60) == sorted(
        key[f"a{30 + i}"] for i in range(5))
    store.forget_user("heavy")  # forgotten while cached, then one event: not the old set plus one
    store.add_events([event("heavy", "a39", ts=T0 + 990, event_id="c")])
    assert reads.keys("heavy", T0, now + 60).tolist() == [key["a39"]]


def test_random_writes_never_make_the_cache_differ_from_the_store(store):
    rng = np.random.default_rng(3)
    store.upsert_articles([article(i) for i in range(50)])
    reads = ReadSets(store, min_events=5, max_readers=2)  # 3 readers, 2 entries: evictions too
    now = T0 + 500
    for step in range(40):
        user = f"u{rng.integers(3)}"
        action = rng.random()
        if action < 0.6:
            store.add_events([Interaction(user_id=user, article_id=f"a{rng.integers(50)}",
                                          event=("impression", "click", "read", "share")[rng.integers(4)],
                                          ts=float(T0 + rng.integers(0, 600)), event_id=f"{step}-{k}")
                              for k in range(int(rng.integers(1, 6)))])
        elif action < 0.65:
            store.forget_user(user)
        now += float(rng.integers(0, 30))
        for u in ("u0", "u1", "u2"):
            assert reads.keys(u, T0, now).tolist() == truth(store, u, T0, now), (step, u)


def test_bounds_handed_in_from_the_probe_answer_as_the_store_without_asking_it(store, monkeypatch):
    """The feed passes the bounds ``Store.reader_version`` read a moment before: the same answers
    through new reads and forgets, and no bounds query of the cache's own."""
    rng = np.random.default_rng(5)
    store.upsert_articles([article(i) for i in range(30)])
    reads = ReadSets(store, min_events=5)
    asked = []
    original = store.user_read_bounds
    monkeypatch.setattr(store, "user_read_bounds", lambda user: asked.append(user) or original(user))
    now = T0 + 500
    for step in range(25):
        if step % 9 == 8:
            store.forget_user("u")
        store.add_events([event("u", f"a{rng.integers(30)}", kind=("click", "read", "share")[rng.integers(3)],
                                ts=float(T0 + rng.integers(0, 400)), event_id=f"{step}-{k}") for k in range(3)])
        version = store.reader_version("u")
        bounds = (version[1], version[2]) if version[1] is not None else None
        assert bounds == original("u")
        assert reads.keys("u", T0, now, bounds=bounds).tolist() == truth(store, "u", T0, now), step
    assert asked == []  # every bound came from the probe
