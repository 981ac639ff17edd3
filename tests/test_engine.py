"""Serving behaviour on the generated sample: which articles come back, and why."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recommender.models.bundle import BundleError
from recommender.domain import Article, Interaction, Preferences
from recommender.serving import engine as engine_module
from recommender.serving.engine import (SERVED_LIST_CHUNK, SERVED_LIST_PAUSE, Engine, EngineConfig, _decode_cursor,
                                       _encode_cursor)
from recommender.store import ServedList
from recommender.serving.results import CURSOR_MAX_CHARS, NotFound


def favourite_readers(trained, category, n=8, min_reads=5):
    """Readers whose hidden favourite is ``category`` and who have read enough to show it."""
    out = []
    for user, truth in trained.readers.items():
        reads = [e for e in trained.store.user_events(user, limit=1000) if e.event != "impression"]
        if truth["favourite_category"] == category and len(reads) >= min_reads:
            out.append(user)
    return out[:n]


def share(items, category):
    return sum(i.category == category for i in items) / max(len(items), 1)


def test_feed_follows_hidden_preferences_far_more_than_popularity(trained):
    engine = trained.engine()
    readers = favourite_readers(trained, "Olahraga")
    assert len(readers) >= 3
    cold = engine.feed("brand-new-reader", limit=10)
    assert cold.strategy == "cold-start"
    feed_share = np.mean([share(engine.feed(u, limit=10).items, "Olahraga") for u in readers])
    popular_share = share(cold.items, "Olahraga")
    others = favourite_readers(trained, "Ekonomi") + favourite_readers(trained, "Hiburan")
    others_share = np.mean([share(engine.feed(u, limit=10).items, "Olahraga") for u in others])
    assert feed_share >= 0.55
    assert feed_share > popular_share + 0.15
    assert feed_share > others_share + 0.3  # it is the reader, not the site, that makes the list


def test_feed_never_shows_what_the_reader_already_read(trained):
    engine = trained.engine()
    for user in list(trained.readers)[:20]:
        read = {e.article_id for e in trained.store.user_events(user, limit=1000) if e.event != "impression"}
        feed = engine.feed(user, limit=20)
        assert not read & {i.article_id for i in feed.items}
        assert feed.strategy in ("hybrid", "cold-start")


def test_feed_is_diverse_and_pages_without_repeats(trained):
    engine = trained.engine()
    user = favourite_readers(trained, "Ekonomi", 1)[0]
    first = engine.feed(user, limit=10)
    second = engine.feed(user, limit=10, cursor=first.next_cursor)
    ids = [i.article_id for i in first.items + second.items]
    assert len(ids) == len(set(ids)) == 20
    stories = Counter(trained.story[i.article_id] for i in first.items)
    assert max(stories.values()) <= 2
    with pytest.raises(ValueError, match="cursor"):
        engine.feed(user, cursor="not-a-cursor")


def test_a_click_on_a_story_pulls_that_story_up_at_once(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user = favourite_readers(sample, "Ekonomi", 1)[0]
    before = engine.feed(user, limit=10)
    # a story the reader has not touched, outside their favourite category, with several articles
    by_story = Counter(sample.story.values())
    window = set(engine._state.model.item_ids.ids[engine._state.model.window_start:].tolist())
    touched = {sample.story[e.article_id] for e in sample.store.user_events(user, limit=1000) if e.article_id in sample.story}
    story = next(s for s, n in by_story.most_common() if n >= 4 and s not in touched
                 and sample.articles[next(a for a, t in sample.story.items() if t == s)]["category"] == "Olahraga"
                 and sum(a in window for a, t in sample.story.items() if t == s) >= 4)
    members = [a for a, s in sample.story.items() if s == story and a in window]
    before_count = sum(sample.story[i.article_id] == story for i in before.items)
    engine.record_events([Interaction(user, members[0], "click", sample.now - 30),
                          Interaction(user, members[0], "read", sample.now - 20, dwell_seconds=120)])
    after = engine.feed(user, limit=10)
    after_count = sum(sample.story[i.article_id] == story for i in after.items)
    assert members[0] not in {i.article_id for i in after.items}
    assert after_count >= 1 and after_count > before_count
    reasons = [i.reason for i in after.items if sample.story[i.article_id] == story]
    assert any(r.startswith("Karena Anda membaca:") for r in reasons)


def test_a_read_of_an_article_not_yet_published_counts_once_it_arrives(trained, tmp_path):
    """Events may name an article before the article itself reaches the store (feeds arrive out
    of order); the reader's history must pick it up as soon as it is published, not never."""
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user = favourite_readers(sample, "Ekonomi", 1)[0]
    engine.record_events([Interaction(user, "early-bird-1", "read", sample.now - 60, dwell_seconds=90)])
    state = engine._state
    profile = engine._profile(state, state.snapshot(), user, sample.now)
    assert engine.feed(user, limit=10).items  # the unknown article is skipped, not an error
    engine.refresh()  # the background poll maps every article key the store has: this one as unknown
    assert state.keys_learned and state.key_index.size > 0
    source = sample.articles[next(iter(sample.articles))]
    engine.publish_articles([Article(article_id="early-bird-1", title="Kabar pagi " + source["title"],
                                     body=source["body"], category=source["category"],
                                     published_at=sample.now - 120, region=source["region"])])
    index = state.index_of("early-bird-1")
    assert index >= 0 and index not in profile.read
    after = engine._profile(state, state.snapshot(), user, sample.now)
    assert index in after.read and index in after.session  # the newest read, in the current session
    assert "early-bird-1" not in [i.article_id for i in engine.feed(user, limit=50).items]


def test_related_is_on_topic_never_self_and_explains_itself(trained):
    engine = trained.engine()
    model = engine._state.model
    on_story = []
    for article_id in model.item_ids.ids[model.window_start:][:60].tolist():
        story = trained.story[article_id]
        mates = [a for a, s in trained.story.items() if s == story and a != article_id]
        if len(mates) < 3:
            continue
        related = engine.related(article_id, limit=8)
        ids = [i.article_id for i in related.items]
        assert article_id not in ids and len(ids) == 8
        on_story.append(np.mean([trained.story[i] == story for i in ids[:3]]))
        assert related.strategy == "hybrid" and related.model_version == trained.version
        assert all(i.reason for i in related.items)
    # the generator reuses headline templates across stories, so a few anchors find look-alikes first
    assert len(on_story) >= 10 and np.mean(on_story) >= 0.6
    with pytest.raises(NotFound):
        engine.related("does-not-exist")


def test_article_posted_a_second_ago_appears_in_related_lists_of_its_story(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    model = engine._state.model
    anchor = next(a for a in model.item_ids.ids[model.window_start:].tolist()
                  if sum(s == sample.story[a] for s in sample.story.values()) >= 3)
    # a new instalment of the story, written from its other instalments (not a copy of one of them)
    mate = next(a for a, s in sample.story.items() if s == sample.story[anchor] and a != anchor)
    source, other = sample.articles[anchor], sample.articles[mate]
    title_words = source["title"].split()[:3] + ["Kabar", "Terbaru", "Sore", "Ini"] + other["title"].split()[-3:]
    body = other["body"][len(other["body"]) // 2:] + " " + source["body"][: len(source["body"]) // 2]
    follow_up = Article(article_id="breaking-1", title=" ".join(title_words), body=body,
                        category=source["category"], published_at=sample.now - 1, region=source["region"])
    engine.publish_articles([follow_up])
    ids = [i.article_id for i in engine.related(anchor, limit=10).items]
    assert "breaking-1" in ids
    own = engine.related("breaking-1", limit=10)
    assert sum(sample.story.get(i.article_id) == sample.story[anchor] for i in own.items[:3]) >= 2
    # a second worker (another engine on the same store) sees it after one poll
    other = sample.engine()
    other.refresh()
    assert "breaking-1" in [i.article_id for i in other.related(anchor, limit=10).items]


def test_takedown_vanishes_everywhere(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user = favourite_readers(sample, "Olahraga", 1)[0]
    victim = engine.feed(user, limit=5).items[0].article_id
    anchor = next(a for a in sample.articles if a != victim
                  and victim in [i.article_id for i in engine.related(a, limit=50).items])
    assert engine.takedown(victim) is True
    assert victim not in [i.article_id for i in engine.feed(user, limit=50).items]
    assert victim not in [i.article_id for i in engine.related(anchor, limit=50).items]
    with pytest.raises(NotFound):
        engine.related(victim)
    other = sample.engine()  # a worker started later also never shows it
    assert victim not in [i.article_id for i in other.feed(user, limit=50).items]


def test_cold_reader_gets_followed_topics(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    engine.set_preferences(Preferences("newcomer", ("Otomotif",), ()))
    feed = engine.feed("newcomer", limit=10)
    assert feed.strategy == "cold-start"
    assert share(feed.items, "Otomotif") >= 0.4
    assert any(i.reason == "Topik yang Anda ikuti: Otomotif" for i in feed.items)


def test_no_model_still_serves_recent_popular(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = Engine(sample.store, tmp_path / "no-models", EngineConfig(fallback_window_days=30), clock=lambda: sample.now)
    status = engine.status()
    assert status["degraded"] and status["model_version"] is None
    feed = engine.feed("anyone", limit=10)
    assert feed.strategy == "fallback-popular" and len(feed.items) == 10
    newest = max(a["published_at"] for a in sample.data.articles)
    assert all(i.published_at <= sample.now + 60 for i in feed.items)
    related = engine.related(feed.items[0].article_id, limit=5)
    assert related.strategy == "fallback-popular" and len(related.items) == 5
    assert newest


def test_reload_swaps_and_a_damaged_bundle_keeps_the_old_model(trained, tmp_path):
    from recommender.models.fitting import train

    sample = trained.clone(tmp_path)
    engine = sample.engine()
    old = engine.model_version
    new, _ = train(sample.store, sample.models_dir, as_of=sample.now, seed=1, promote=True)
    assert engine.maybe_reload() and engine.model_version == new
    target = sample.models_dir / new / "text_vectors.npy"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(BundleError):
        engine.reload(new)
    assert engine.model_version == new  # the loaded copy keeps serving
    assert engine.status()["degraded"] and "last reload failed" in engine.status()["reasons"][0]
    engine.reload(old)
    assert engine.model_version == old and engine.related(engine.feed("x", 1).items[0].article_id, 3).items


def test_served_lists_are_logged_as_impressions(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    _, seq = sample.store.log_position()
    ranked = engine.feed("impression-reader", limit=5)
    page2 = engine.feed("impression-reader", limit=5, cursor=ranked.next_cursor)
    assert engine.flush_impressions() == 10
    logged = sample.store.user_events("impression-reader")
    assert [e.article_id for e in logged] == [i.article_id for i in ranked.items + page2.items]
    assert all(e.event == "impression" for e in logged)
    assert [(e.list_id, e.position) for e in logged] == (
        [(ranked.list_id, k) for k in range(5)] + [(page2.list_id, 5 + k) for k in range(5)])
    # one row per list, naming what made it; every worker counts its items as impressions
    rows = sample.store._conn().execute(
        "SELECT list_id, position, model_version, variant, strategy FROM served_lists ORDER BY seq").fetchall()
    assert rows == [(ranked.list_id, 0, ranked.model_version, None, ranked.strategy),
                    (page2.list_id, 5, page2.model_version, None, page2.strategy)]
    assert ranked.model_version == engine.model_version is not None
    _, keys, codes, _ = sample.store.event_keys_after(seq)
    assert keys.size == 10 and (codes == 0).all()


def test_a_backlog_of_served_lists_goes_in_chunks_with_the_write_lock_free_between_them(trained, tmp_path,
                                                                                      monkeypatch):
    """An event post waits behind one chunk at most: a backlog (what a burst of feeds leaves queued)
    is written SERVED_LIST_CHUNK lists a transaction, and between two of them the flush lets go of
    the store for a moment (SQLite's write lock is polled: taken again at once, it was kept to the
    end of the backlog)."""
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    shown = tuple(item.article_id for item in engine.feed("backlog-reader", limit=5, log=False).items)
    n = 2 * SERVED_LIST_CHUNK + 7
    for i in range(n):
        engine.log_served(ServedList(f"L{i}", f"backlog-reader-{i % 3}", 1_700_000_000.0 + i, shown))
    steps = []
    add, sleep = sample.store.add_served_lists, engine_module.time.sleep
    monkeypatch.setattr(sample.store, "add_served_lists", lambda lists: steps.append(len(lists)) or add(lists))
    monkeypatch.setattr(engine_module.time, "sleep", lambda seconds: steps.append(seconds) or sleep(seconds))
    assert engine.flush_impressions() == n * len(shown)
    assert steps == [SERVED_LIST_CHUNK, SERVED_LIST_PAUSE, SERVED_LIST_CHUNK, SERVED_LIST_PAUSE, 7]
    monkeypatch.undo()
    assert len(sample.store.user_events("backlog-reader-0", events=("impression",), limit=1000)) == 69 * len(shown)


def test_a_flush_returns_only_once_the_flush_in_flight_wrote(trained, tmp_path, monkeypatch):
    """The background thread took the queued lists and is writing them when another caller (a
    close, a test) flushes: that flush waits for the write, so what was queued before it is in
    the store when it returns (it used to return at once on the empty queue)."""
    import threading

    sample = trained.clone(tmp_path)
    engine = sample.engine()
    ranked = engine.feed("flushed-reader", limit=5)  # queues its served list
    order, entered, release = [], threading.Event(), threading.Event()
    add = sample.store.add_served_lists

    def slow(lists):
        entered.set()
        release.wait(10)
        written = add(lists)
        order.append("written")
        return written

    monkeypatch.setattr(sample.store, "add_served_lists", slow)
    in_flight = threading.Thread(target=engine.flush_impressions)
    in_flight.start()
    assert entered.wait(10)
    second = threading.Thread(target=lambda: order.append(("returned", engine.flush_impressions())))
    second.start()
    second.join(timeout=1.0)  # without the wait it returns at once, before the write
    release.set()
    in_flight.join(10)
    second.join(10)
    assert order == ["written", ("returned", 0)]
    assert [e.list_id for e in sample.store.user_events("flushed-reader")] == [ranked.list_id] * 5


def test_forgotten_reader_leaves_no_trace(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user = favourite_readers(sample, "Olahraga", 1)[0]
    engine.feed(user, limit=5)  # queues impressions
    removed = engine.forget_user(user)
    assert removed["events"] > 0
    engine.flush_impressions()
    assert sample.store.user_events(user, limit=10_000) == []
    assert engine.feed(user, limit=10).strategy == "cold-start"


def test_a_heavy_reader_never_sees_what_they_read_earlier_in_the_window(trained, tmp_path):
    """The profile scores with the last ``max_reader_events`` events; what is left out is every
    article read in the serving window, however many events ago."""
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    model = engine._state.model
    window = model.item_ids.ids[model.window_start:].tolist()
    assert len(window) >= 450
    read = window[:400]  # read oldest first: read[0] is 400 read events ago, beyond the profile's 300
    engine.record_events([Interaction("heavy-reader", a, "read", sample.now - 3600 + i, dwell_seconds=40)
                          for i, a in enumerate(read)])
    shown = [i.article_id for i in engine.feed("heavy-reader", limit=200).items]
    assert shown and read[0] not in shown
    assert not set(read) & set(shown)


def counted_calls(store, monkeypatch, names):
    """{store method name: calls so far}, counting each call of those methods from now on."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        def counted(*args, _name=name, _original=getattr(store, name), **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    return calls


def test_a_reader_with_a_short_history_has_their_reads_left_out_from_the_one_history_read(trained, tmp_path,
                                                                                          monkeypatch):
    """Fewer reads than ``max_reader_events``: the profile's read holds them all, so the feed leaves
    them out without asking the store for the read set; a read posted on another worker counts at once."""
    sample = trained.clone(tmp_path)
    engine, other = sample.engine(), sample.engine()
    model = engine._state.model
    window = model.item_ids.ids[model.window_start:].tolist()
    read = window[:30]
    engine.record_events([Interaction("short-reader", a, ("click", "read", "share")[i % 3], sample.now - 3600 + i,
                                      dwell_seconds=40) for i, a in enumerate(read)])
    calls = counted_calls(sample.store, monkeypatch, ("user_event_keys", "user_read_keys", "user_read_rows",
                                                      "user_read_set", "user_read_bounds"))
    shown = [i.article_id for i in engine.feed("short-reader", limit=200).items]
    assert len(shown) == 200 and not set(read) & set(shown)
    assert calls == {"user_event_keys": 1, "user_read_keys": 0, "user_read_rows": 0, "user_read_set": 0,
                     "user_read_bounds": 0}
    other.record_events([Interaction("short-reader", shown[0], "read", sample.now - 10, dwell_seconds=40)])
    again = [i.article_id for i in engine.feed("short-reader", limit=200).items]
    assert shown[0] not in again and not set(read) & set(again)


def test_a_heavy_readers_read_set_comes_with_their_other_reads_and_leaves_every_read_out(trained, tmp_path,
                                                                                        monkeypatch):
    """More reads than ``max_reader_events``: the history does not hold them all, and the read set
    the feed leaves out comes in the same ``Store.reader_reads`` as the history (one wait on
    PostgreSQL), not from a read of its own; a read posted on another worker counts at once."""
    sample = trained.clone(tmp_path)
    engine, other = sample.engine(max_reader_events=20), sample.engine()
    model = engine._state.model
    window = model.item_ids.ids[model.window_start:].tolist()
    read = window[:45]
    engine.record_events([Interaction("heavy-reader", a, ("click", "read", "share")[i % 3], sample.now - 3600 + i,
                                      dwell_seconds=40) for i, a in enumerate(read)])
    calls = counted_calls(sample.store, monkeypatch, ("reader_reads", "user_read_keys", "user_read_rows"))
    handed = []  # what the read-set cache got from reader_reads (SQLite's reader_reads asks user_read_set itself)
    original = engine._read_sets.keys
    monkeypatch.setattr(engine._read_sets, "keys", lambda *a, first=None, **k: handed.append(first) or original(
        *a, first=first, **k))
    shown = [i.article_id for i in engine.feed("heavy-reader", limit=200).items]
    assert len(shown) == 200 and not set(read) & set(shown)  # the 25 reads the history lacks are left out too
    assert calls == {"reader_reads": 1, "user_read_keys": 0, "user_read_rows": 0}
    assert len(handed) == 1 and handed[0][0].size == 45  # every read of the window, due, in that one read
    other.record_events([Interaction("heavy-reader", shown[0], "read", sample.now - 10, dwell_seconds=40)])
    again = [i.article_id for i in engine.feed("heavy-reader", limit=200).items]
    assert shown[0] not in again and not set(read) & set(again)


def test_training_keeps_a_heavy_readers_read_set_and_their_feeds_leave_every_read_out_through_clicks_and_forgets(
        trained, tmp_path):
    """A reader with hundreds of reads at training: ``train`` stores their read set
    (``models.readsets``, ``Store.put_read_sets``), their feed leaves every read out, a read
    posted after training on another worker counts at once, and a forget removes the row and
    leaves them a new reader."""
    from recommender.models.fitting import train

    sample = trained.clone(tmp_path)
    model = sample.engine()._state.model
    window = model.item_ids.ids[model.window_start:].tolist()
    read = window[:300]
    sample.store.add_events([Interaction("heavy-reader", a, ("click", "read", "share")[i % 3],
                                         sample.now - 7200 + i, dwell_seconds=40, event_id=f"hr{i}")
                             for i, a in enumerate(read + read[:20])])
    _, built = train(sample.store, sample.models_dir, as_of=sample.now, seed=0, promote=True)
    assert sample.store.read_set_readers() == ["heavy-reader"] and built.report["read_sets_stored"] == 1
    engine, other = sample.engine(), sample.engine()
    shown = [i.article_id for i in engine.feed("heavy-reader", limit=150).items]
    assert len(shown) == 150 and not set(read) & set(shown)
    other.record_events([Interaction("heavy-reader", shown[0], "read", sample.now - 10, dwell_seconds=40)])
    for e in (engine, sample.engine()):
        again = [i.article_id for i in e.feed("heavy-reader", limit=150).items]
        assert shown[0] not in again and not set(read) & set(again)

    other.forget_user("heavy-reader")
    assert sample.store.read_set_readers() == []
    after = sample.engine().feed("heavy-reader", limit=150)
    assert after.strategy == "cold-start" and set(read) & {i.article_id for i in after.items}


def test_a_feed_reads_the_reader_in_one_go_and_builds_the_profile_single_reads_build(trained, tmp_path, monkeypatch):
    """After the probe, a feed asks the store once (``Store.reader_reads``: one pipeline on PostgreSQL)
    for the history, preferences, hides and impressions, and builds the same profile as reading each."""
    from recommender.domain import Preferences

    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user = favourite_readers(sample, "Ekonomi", 1)[0]
    first = [i.article_id for i in engine.feed(user, limit=10).items]
    engine.record_events([Interaction(user, first[0], "hide", sample.now - 5),
                          Interaction(user, first[1], "impression", sample.now - 4),
                          Interaction(user, first[1], "impression", sample.now - 3)])
    sample.store.set_preferences(Preferences(user, categories=("Olahraga",), regions=()))
    calls = counted_calls(sample.store, monkeypatch, ("reader_reads",))
    built = []
    original = engine._profile_and_history
    monkeypatch.setattr(engine, "_profile_and_history", lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    after = [i.article_id for i in engine.feed(user, limit=10).items]
    assert calls == {"reader_reads": 1} and first[0] not in after
    state = engine._state
    alone = engine._profile(state, state.snapshot(), user, sample.now)  # each read by itself
    together = built[0][0]
    assert together.hidden.size == 1 and together.impressions_seen >= 2 and together.followed_categories.size == 1
    for name in ("read", "positives", "hidden", "hidden_stories", "shown", "shown_counts", "skipped",
                 "followed_categories", "followed_regions", "cf_vector", "content"):
        np.testing.assert_array_equal(getattr(together, name), getattr(alone, name), err_msg=name)
    assert (together.impressions_seen, together.impressions_clicked) == (alone.impressions_seen,
                                                                         alone.impressions_clicked)


def test_a_heavy_readers_cached_read_set_takes_its_bounds_from_the_probe(trained, tmp_path, monkeypatch):
    """A reader beyond ``max_reader_events`` reads: the read-set cache asks no bounds of its own (the
    feed cache's probe holds them), and a read posted on another worker is still left out at once."""
    sample = trained.clone(tmp_path)
    engine, other = sample.engine(), sample.engine()
    model = engine._state.model
    window = model.item_ids.ids[model.window_start:].tolist()
    read = window[:400]
    engine.record_events([Interaction("heavy-reader", a, "read", sample.now - 3600 + i, dwell_seconds=40)
                          for i, a in enumerate(read)])
    first = [i.article_id for i in engine.feed("heavy-reader", limit=50).items]
    assert first and not set(read) & set(first)
    calls = counted_calls(sample.store, monkeypatch, ("user_read_bounds", "user_read_rows", "user_read_keys"))
    other.record_events([Interaction("heavy-reader", first[0], "read", sample.now - 10, dwell_seconds=40)])
    shown = [i.article_id for i in engine.feed("heavy-reader", limit=50).items]
    assert first[0] not in shown and not set(read) & set(shown)
    assert calls == {"user_read_bounds": 0, "user_read_rows": 1, "user_read_keys": 0}  # the one new read, by seq


@pytest.mark.parametrize("clicked", [4, 9])
def test_the_next_page_never_repeats_earlier_pages_even_after_a_click_and_on_another_worker(trained, tmp_path,
                                                                                            clicked):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    first = engine.feed("pager", limit=10)
    seen = [i.article_id for i in first.items]
    assert len(seen) == 10 and first.next_cursor
    # the click turns a cold reader into a profiled one: the ranking changes under the cursor
    engine.record_events([Interaction("pager", seen[clicked], "click", sample.now - 30),
                          Interaction("pager", seen[clicked], "read", sample.now - 20, dwell_seconds=120)])
    second = engine.feed("pager", limit=10, cursor=first.next_cursor)
    assert second.strategy == "hybrid" and len(second.items) == 10
    assert not set(seen) & {i.article_id for i in second.items}
    # a cursor holds everything it needs: a worker that served neither page continues the chain
    other = sample.engine()
    elsewhere = other.feed("pager", limit=10, cursor=first.next_cursor)
    assert len(elsewhere.items) == 10 and not set(seen) & {i.article_id for i in elsewhere.items}
    third = other.feed("pager", limit=10, cursor=second.next_cursor)
    chain = seen + [i.article_id for i in second.items + third.items]
    assert len(chain) == len(set(chain)) == 30
    assert third.extra["offset"] == 20  # impressions keep their position in the chain


def test_a_tampered_or_borrowed_cursor_is_refused(trained):
    engine = trained.engine()
    cursor = engine.feed("pager-a", limit=5).next_cursor
    assert len(engine.feed("pager-a", limit=5, cursor=cursor).items) == 5
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    for bad in (flipped, cursor[:-1], cursor + "A", cursor + "=", "", "e30", "%%%", "x" * 5000):
        if bad:
            with pytest.raises(ValueError, match="cursor"):
                engine.feed("pager-a", limit=5, cursor=bad)
    with pytest.raises(ValueError, match="cursor"):
        engine.feed("pager-b", limit=5, cursor=cursor)  # another reader's chain


def test_a_cursor_names_the_pages_store_keys_without_asking_the_store_once_the_keys_are_mapped(trained, tmp_path,
                                                                                                 monkeypatch):
    """After the poll that maps every article key (each serving worker's background thread makes
    it), a page's cursor takes its articles' keys from that map; a fresh arrival's key is asked."""
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    engine.refresh()
    calls = counted_calls(sample.store, monkeypatch, ("article_keys",))
    page = engine.feed("pager-keys", limit=10)
    ids = [i.article_id for i in page.items]
    stored = sample.store.article_keys(ids)
    assert calls == {"article_keys": 1}  # (the line above)
    assert _decode_cursor(page.next_cursor, "pager-keys")[1].tolist() == sorted(stored[a] for a in ids)
    second = engine.feed("pager-keys", limit=10, cursor=page.next_cursor)
    assert not set(ids) & {i.article_id for i in second.items} and calls == {"article_keys": 1}
    # an article published after the poll: the map does not hold it yet, the store is asked
    model = engine._state.model
    fresh = Article("fresh-for-cursor", "Banjir rob di pesisir utara", "Air laut naik merendam rumah warga.",
                    model.categories[0], published_at=sample.now - 60)
    engine.publish_articles([fresh])
    state = engine._state
    assert state.keys_of_indices(state.indices(["fresh-for-cursor"])).tolist() == [-1]
    cursor = engine._next_cursor(state, "pager-keys", 1, np.zeros(0, dtype=np.int64), ["fresh-for-cursor"])
    assert _decode_cursor(cursor, "pager-keys")[1].tolist() == [sample.store.article_keys(["fresh-for-cursor"])[
        "fresh-for-cursor"]]
    assert calls == {"article_keys": 3}  # one for the cursor, one for the check


@given(st.text(min_size=1, max_size=40), st.lists(st.integers(0, (1 << 48) - 1), max_size=60, unique=True),
       st.integers(0, 200))
def test_a_cursor_gives_back_what_it_was_made_of(user, keys, extra):
    cursor = _encode_cursor(user, len(keys) + extra, np.array(keys, dtype=np.int64))
    served, got = _decode_cursor(cursor, user)
    assert served == len(keys) + extra and got.tolist() == sorted(keys)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_cursor_of_a_deep_chain_on_a_large_store_stays_compact(rng):
    # 500 served articles among the newest 200,000 keys of a store of 5 million
    keys = 5_000_000 - rng.choice(200_000, size=500, replace=False)
    cursor = _encode_cursor("u" * 64, 500, keys)
    assert len(cursor) <= CURSOR_MAX_CHARS
    assert _decode_cursor(cursor, "u" * 64)[1].tolist() == sorted(keys.tolist())


def test_a_chain_ends_after_max_feed_depth_articles(trained):
    engine = trained.engine(max_feed_depth=25)
    pages, cursor = [], None
    for _ in range(3):
        page = engine.feed("deep-reader", limit=10, cursor=cursor)
        pages.append([i.article_id for i in page.items])
        cursor = page.next_cursor
    assert [len(p) for p in pages] == [10, 10, 5] and cursor is None
    assert len({a for p in pages for a in p}) == 25


def test_related_for_a_reader_leaves_out_what_they_read_and_still_fills_the_list(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    model = engine._state.model
    anchor = model.item_ids.ids[model.window_start + 5]
    shared = [i.article_id for i in engine.related(anchor, limit=8).items]  # now in the related cache
    assert len(shared) == 8
    engine.record_events([Interaction("related-reader", shared[0], "read", sample.now - 90, dwell_seconds=60),
                          Interaction("related-reader", shared[3], "click", sample.now - 60)])
    mine = [i.article_id for i in engine.related(anchor, limit=8, user_id="related-reader").items]
    assert shared[0] not in mine and shared[3] not in mine
    assert len(mine) == len(set(mine)) == 8 and anchor not in mine
    assert [a for a in shared if a not in (shared[0], shared[3])] == mine[:6]  # the rest keep their order
    theirs = [i.article_id for i in engine.related(anchor, limit=8, user_id="another-reader").items]
    assert theirs == shared
    assert [i.article_id for i in engine.related(anchor, limit=8).items] == shared  # the cache is not the reader's
    fresh = sample.engine(related_cache_seconds=0)  # and without a cache
    assert [i.article_id for i in fresh.related(anchor, limit=8, user_id="related-reader").items] == mine


def story_follow_up(sample, engine):
    """A late window article of a story with 3 or more instalments, and a maker of new instalments
    of it (``follow_up(article_id, published_at)``), written from its others, not a copy of one."""
    model = engine._state.model
    anchor = next(a for a in reversed(model.item_ids.ids[model.window_start:].tolist())
                  if sum(s == sample.story[a] for s in sample.story.values()) >= 3)
    mate = next(a for a, s in sample.story.items() if s == sample.story[anchor] and a != anchor)
    source, other = sample.articles[anchor], sample.articles[mate]
    title = source["title"].split()[:3] + ["Kabar", "Terbaru", "Sore", "Ini"] + other["title"].split()[-3:]
    body = other["body"][len(other["body"]) // 2:] + " " + source["body"][: len(source["body"]) // 2]

    def follow_up(article_id: str, published_at: float) -> Article:
        return Article(article_id=article_id, title=" ".join(title), body=body, category=source["category"],
                       published_at=published_at, region=source["region"])

    return anchor, follow_up


@pytest.mark.parametrize("full_scan_max", [20_000, 100])  # the window scanned whole, or through its summary
def test_a_scheduled_article_stays_hidden_until_due_then_shows_without_a_restart(trained, tmp_path, full_scan_max):
    sample = trained.clone(tmp_path)
    clock = [sample.now]
    engine = Engine(sample.store, sample.models_dir, EngineConfig(full_scan_max=full_scan_max),
                    clock=lambda: clock[0])
    anchor, follow_up = story_follow_up(sample, engine)
    due = sample.now + 3600.0
    # an embargoed follow-up of the anchor's story, in the store an hour before it may be shown
    sample.store.upsert_articles([follow_up("embargoed-1", due)])
    engine.refresh()  # the follower adds it to the catalog at once
    assert engine._state.index_of("embargoed-1") >= 0
    # a reader who follows the story: read all of it so far, so the follow-up is what their feed lacks
    story = [a for a, s in sample.story.items() if s == sample.story[anchor]]
    engine.record_events([Interaction("scheduled-reader", a, "read", sample.now - 100 + k, dwell_seconds=90)
                          for k, a in enumerate(story)])

    def shown() -> tuple[bool, bool]:
        related = [i.article_id for i in engine.related(anchor, limit=10).items]
        feed = [i.article_id for i in engine.feed("scheduled-reader", limit=10).items]
        return "embargoed-1" in related, "embargoed-1" in feed

    assert shown() == (False, False)  # and the related list is cached, the window summarized
    clock[0] = due - 75.0
    assert shown() == (False, False)
    clock[0] = due - 55.0  # due: within the grace for clocks that run behind; 20 s after the last lists
    assert shown() == (True, True)


@pytest.mark.parametrize("full_scan_max", [20_000, 100])  # the window scanned whole, or through its summary
def test_an_archive_article_that_arrives_after_training_is_an_anchor_but_listed_nowhere(trained, tmp_path,
                                                                                       full_scan_max):
    """The window is by publication date, not by arrival: an article of a year ago published again
    (or backfilled) after training was a candidate of every list until the next training."""
    sample = trained.clone(tmp_path)
    engine = Engine(sample.store, sample.models_dir, EngineConfig(full_scan_max=full_scan_max),
                    clock=lambda: sample.now)
    anchor, follow_up = story_follow_up(sample, engine)
    # the same follow-up twice: dated now, and dated a year ago (a backfill of the archive)
    engine.publish_articles([follow_up("follow-up-new", sample.now - 60),
                             follow_up("follow-up-old", sample.now - 400 * 86_400.0)])
    story = [a for a, s in sample.story.items() if s == sample.story[anchor]]
    engine.record_events([Interaction("story-reader", a, "read", sample.now - 100 + k, dwell_seconds=90)
                          for k, a in enumerate(story)])
    related = [i.article_id for i in engine.related(anchor, limit=20).items]
    feed = [i.article_id for i in engine.feed("story-reader", limit=50).items]
    assert "follow-up-new" in related and "follow-up-new" in feed
    assert "follow-up-old" not in related and "follow-up-old" not in feed
    for reader in sorted(sample.readers)[:20]:  # nobody's feed, whatever they read
        assert "follow-up-old" not in [i.article_id for i in engine.feed(reader, limit=50).items]
    own = [i.article_id for i in engine.related("follow-up-old", limit=10).items]  # its own page has a list
    assert "follow-up-old" not in own and sum(sample.story.get(a) == sample.story[anchor] for a in own[:3]) >= 2
    why = engine.inspect_related(anchor, limit=10, others=("follow-up-old", "follow-up-new"))["verdicts"]
    assert [v.code for v in why] == ["outside_window", "listed"]
