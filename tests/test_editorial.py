"""Editorial control and reader controls on the real engine over the generated sample: pins,
boosts, buries and blocks (with start and expiry on the engine clock), section filters, hides and
impression fatigue. Which articles come back, where, and for whom."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.domain import Interaction, ValidationError
from recommender.serving.engine import Engine, EngineConfig
from recommender.serving.rules import parse_pin, parse_rule
from recommender.serving.stages import EDITOR_REASON, ListFilter

HOUR = 3600.0


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def engine_at(sample, clock) -> Engine:
    return Engine(sample.store, sample.models_dir, EngineConfig(), clock=clock)


def ids(ranked) -> list[str]:
    return [i.article_id for i in ranked.items]


def reader_with_history(sample, n: int = 1, min_reads: int = 5) -> list[str]:
    out = []
    for user in sample.readers:
        if len([e for e in sample.store.user_events(user, limit=200) if e.event != "impression"]) >= min_reads:
            out.append(user)
            if len(out) == n:
                break
    return out


def window_ids(engine) -> list[str]:
    model = engine._state.model
    return model.item_ids.ids[model.window_start:].tolist()


def pin(article_id, position, scope, now, expires, rule_id="p1", starts=None):
    body = {"article_id": article_id, "position": position, "scope": scope, "expires_at": expires}
    if starts is not None:
        body["starts_at"] = starts
    return parse_pin(body, rule_id, now, "k-test")


def test_a_feed_pin_holds_its_position_from_start_until_expiry_and_respects_reads_and_takedowns(trained, tmp_path):
    sample = trained.clone(tmp_path)
    clock = Clock(sample.now)
    engine = engine_at(sample, clock)
    user, other = reader_with_history(sample, 2)
    before = ids(engine.feed(user, limit=10))
    # an article far down this reader's ranking (not on the first page)
    deep = ids(engine.feed(user, limit=100))
    pinned = deep[-1]
    assert pinned not in before
    engine.add_rule(pin(pinned, 3, {"list": "feed"}, clock.t, clock.t + HOUR, starts=clock.t + 60), who="k-test")
    assert pinned not in ids(engine.feed(user, limit=10))  # not started yet
    clock.t += 120
    page = engine.feed(user, limit=10)
    assert ids(page)[2] == pinned and page.items[2].reason == EDITOR_REASON
    assert len(page.items) == 10 and len(set(ids(page))) == 10
    assert ids(engine.feed(other, limit=10))[2] == pinned  # every reader's feed
    second = engine.feed(user, limit=10, cursor=page.next_cursor)
    assert pinned not in ids(second)  # position 3 is on the first page only
    clock.t = sample.now + HOUR + 1  # expired: gone without any reload
    assert pinned not in ids(engine.feed(user, limit=10))
    # a reader who read it does not get it pinned back; a takedown wins over a pin
    engine.add_rule(pin(pinned, 1, {"list": "feed"}, clock.t, clock.t + HOUR, rule_id="p2"), who="k-test")
    assert ids(engine.feed(other, limit=5))[0] == pinned
    engine.record_events([Interaction(user, pinned, "click", clock.t - 5)])
    assert pinned not in ids(engine.feed(user, limit=10))
    engine.takedown(pinned)
    assert pinned not in ids(engine.feed(other, limit=10))


def test_related_pins_are_scoped_by_anchor_and_category_and_keep_their_place_for_a_reader(trained, tmp_path):
    sample = trained.clone(tmp_path)
    clock = Clock(sample.now)
    engine = engine_at(sample, clock)
    window = window_ids(engine)
    anchor, elsewhere = window[10], window[40]
    shown = ids(engine.related(anchor, limit=8))
    pinned = next(a for a in reversed(window) if a not in shown and a != anchor)
    engine.add_rule(pin(pinned, 2, {"list": "related", "article_id": anchor}, clock.t, clock.t + HOUR), who="k")
    related = engine.related(anchor, limit=8)
    assert ids(related)[1] == pinned and len(related.items) == 8
    assert pinned not in ids(engine.related(elsewhere, limit=8)) or elsewhere == pinned
    # a reader who read the list's first article still sees the pin at position 2
    user = reader_with_history(sample, 1)[0]
    engine.record_events([Interaction(user, ids(related)[0], "read", clock.t - 5, dwell_seconds=30)])
    mine = ids(engine.related(anchor, limit=8, user_id=user))
    assert related.items[0].article_id not in mine and mine[1] == pinned
    # a category scope covers the related lists under every article of that category
    category = sample.articles[elsewhere]["category"]
    engine.add_rule(pin(pinned, 1, {"list": "related", "category": category.lower()}, clock.t, clock.t + HOUR,
                        rule_id="p2"), who="k")
    same = [a for a in window if sample.articles[a]["category"] == category and a != pinned][:3]
    assert all(ids(engine.related(a, limit=5))[0] == pinned for a in same)


def test_boosts_buries_and_section_blocks_change_scores_only_where_scoped(trained, tmp_path):
    sample = trained.clone(tmp_path)
    clock = Clock(sample.now)
    engine = engine_at(sample, clock)
    user = reader_with_history(sample, 1)[0]
    base = ids(engine.feed(user, limit=100))
    low, top = base[60], base[0]
    engine.add_rule(parse_rule({"kind": "boost", "target": {"article_id": low}, "factor": 20,
                                "scope": {"list": "feed"}, "expires_at": clock.t + HOUR}, "b1", clock.t, "k"), who="k")
    engine.add_rule(parse_rule({"kind": "bury", "target": {"article_id": top}, "factor": 0.05,
                                "scope": {"list": "feed"}}, "b2", clock.t, "k"), who="k")
    after = ids(engine.feed(user, limit=100))
    assert after.index(low) < 10 and (top not in after[:20])
    # a block of a category in one section leaves other feeds alone
    category = sample.articles[base[1]]["category"]
    engine.add_rule(parse_rule({"kind": "block", "target": {"category": category},
                                "scope": {"list": "feed", "region": "jawa-barat"}}, "k1", clock.t, "k"), who="k")
    assert any(sample.articles[a]["category"] == category for a in ids(engine.feed(user, limit=20)))
    engine.add_rule(parse_rule({"kind": "block", "target": {"category": category},
                                "scope": {"list": "feed"}}, "k2", clock.t, "k"), who="k")
    assert not any(sample.articles[a]["category"] == category for a in ids(engine.feed(user, limit=30)))
    section = engine.feed(user, limit=10, filters=ListFilter(categories=(category,)))  # a section all blocked
    assert section.items == () and "blocked by an editorial rule" in section.extra["empty_reason"]
    assert engine.remove_rule("k2", who="k") and not engine.remove_rule("k2", who="k")
    assert ids(engine.feed(user, limit=10, filters=ListFilter(categories=(category,))))
    clock.t += HOUR + 1  # the boost expired, the bury (no expiry) stays
    later = ids(engine.feed(user, limit=100))
    assert low not in later[:10] and top not in later[:20]


def test_section_feeds_and_related_lists_are_personal_diverse_and_say_why_they_are_empty(trained):
    engine = trained.engine()
    users = reader_with_history(trained, 2)
    section = ListFilter(categories=("ekonomi", "Olahraga"))  # names in any case
    lists = [engine.feed(u, limit=10, filters=section) for u in users]
    for ranked in lists:
        assert len(ranked.items) == 10 and {i.category for i in ranked.items} <= {"Ekonomi", "Olahraga"}
        stories = [trained.story[a] for a in ids(ranked)]
        assert max(stories.count(s) for s in stories) <= 2
    assert ids(lists[0]) != ids(lists[1])  # still personalized
    region = next(trained.articles[a]["region"] for a in window_ids(engine) if trained.articles[a].get("region"))
    by_region = engine.feed(users[0], limit=5, filters=ListFilter(regions=(region,)))
    assert by_region.items and all(i.region == region for i in by_region.items)
    anchor = window_ids(engine)[5]
    related = engine.related(anchor, limit=6, filters=ListFilter(categories=("Teknologi",)))
    assert related.items and all(i.category == "Teknologi" for i in related.items)
    empty = engine.feed(users[0], limit=10, filters=ListFilter(categories=("Astrologi",)))
    assert empty.items == () and "Astrologi" in empty.extra["empty_reason"]
    empty = engine.related(anchor, limit=5, filters=ListFilter(categories=("Astrologi",)))
    assert empty.items == () and "not a category" in empty.extra["empty_reason"]


def test_a_hide_removes_the_article_and_sinks_its_story_for_that_reader_only(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user, other = reader_with_history(sample, 1)[0], "a-reader-without-history"
    first = ids(engine.feed(user, limit=10))
    theirs = ids(engine.feed(other, limit=50))
    hidden = next(a for a in first if a in theirs)
    state = engine._state
    story_of = lambda a: int(state.snapshot().story(np.array([state.index_of(a)]))[0])  # noqa: E731 (the engine's)
    story = story_of(hidden)
    mates = {a for a in window_ids(engine) if story_of(a) == story and a != hidden}
    engine.record_events([Interaction(user, hidden, "hide", sample.now - 5)])
    after = ids(engine.feed(user, limit=20))
    assert hidden not in after and not mates & set(after)
    assert hidden in ids(engine.feed(other, limit=50))  # others are unaffected
    profile = engine._profile(engine._state, engine._state.snapshot(), user, sample.now)
    assert profile.hidden.size == 1 and profile.positives.size  # a hide is no interest
    # related lists under any article leave it out for this reader and put its story last
    anchor = sorted(mates)[0]
    mine = ids(engine.related(anchor, limit=10, user_id=user))
    assert hidden not in mine
    on_story = [k for k, a in enumerate(mine) if story_of(a) == story]
    assert on_story and min(on_story) >= len(mine) - len(on_story)  # story mates last
    shared = ids(engine.related(anchor, limit=10))
    assert hidden in shared or any(story_of(a) == story for a in shared[:3])  # not so for other readers


def test_repeated_hides_of_a_category_lower_it_in_the_feed(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user = reader_with_history(sample, 1)[0]
    feed = engine.feed(user, limit=20)
    counts = {}
    for i in feed.items:
        counts[i.category] = counts.get(i.category, 0) + 1
    category = max(counts, key=counts.get)
    victims = [a for a in ids(engine.feed(user, limit=100)) if sample.articles[a]["category"] == category][:3]
    engine.record_events([Interaction(user, a, "hide", sample.now - 10 + k) for k, a in enumerate(victims)])
    after = engine.feed(user, limit=20)
    assert sum(i.category == category for i in after.items) < counts[category]


def test_impression_fatigue_sinks_an_article_shown_again_and_again_without_a_click(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user = reader_with_history(sample, 1)[0]
    first = ids(engine.feed(user, limit=10))
    top = first[0]
    n = engine._state.model.ranking.fatigue_impressions
    engine.record_events([Interaction(user, top, "impression", sample.now - 100 + k) for k in range(2 * n)])
    after = ids(engine.feed(user, limit=10))
    assert top not in after[:1]
    profile = engine._profile(engine._state, engine._state.snapshot(), user, sample.now)
    index = engine._state.index_of(top)
    assert profile.shown_counts[list(profile.shown).index(index)] == 2 * n
    scores, columns = engine.score(user, [top], features=True)
    assert columns["fatigue"][0] == 1.0 and columns["w_fatigue"][0] < 0


@pytest.mark.parametrize("body, message", [
    ({"article_id": "a1", "position": 0, "scope": {"list": "feed"}, "expires_at": 2e9}, "position"),
    ({"article_id": "a1", "position": True, "scope": {"list": "feed"}, "expires_at": 2e9}, "position"),
    ({"article_id": "a1", "position": 1, "scope": {"list": "home"}, "expires_at": 2e9}, "scope.list"),
    ({"article_id": "a1", "position": 1, "scope": {"list": "feed", "article_id": "x"}, "expires_at": 2e9},
     "related"),
    ({"article_id": "a1", "position": 1, "scope": {"list": "feed"}}, "expires_at is required"),
    ({"article_id": "a1", "position": 1, "scope": {"list": "feed"}, "expires_at": 10}, "later than now"),
    ({"article_id": "a 1", "position": 1, "scope": {"list": "feed"}, "expires_at": 2e9}, "article_id"),
    ({"article_id": "a1", "position": 1, "scope": {"list": "feed"}, "expires_at": 2e9, "x": 1}, "unknown"),
])
def test_malformed_pins_are_refused_naming_the_field(body, message):
    with pytest.raises(ValidationError, match=message):
        parse_pin(body, "p", 1.9e9, "k")


@pytest.mark.parametrize("body, message", [
    ({"kind": "boost", "target": {"category": "X"}, "scope": {"list": "feed"}, "factor": 0.5}, "above 1"),
    ({"kind": "bury", "target": {"category": "X"}, "scope": {"list": "feed"}, "factor": 2}, "below 1"),
    ({"kind": "block", "target": {"category": "X"}, "scope": {"list": "feed"}, "factor": 2}, "no factor"),
    ({"kind": "pin", "target": {"category": "X"}, "scope": {"list": "feed"}}, "pins"),
    ({"kind": "block", "target": {"tag": "X"}, "scope": {"list": "feed"}}, "target"),
    ({"kind": "boost", "target": {"region": "X"}, "scope": {"list": "feed"}}, "factor is required"),
    # 1e400 in a JSON body parses as inf, and the console's form takes "nan": sent, so not "required"
    ({"kind": "boost", "target": {"region": "X"}, "scope": {"list": "feed"}, "factor": float("inf")},
     "factor must be a finite number"),
    ({"kind": "bury", "target": {"region": "X"}, "scope": {"list": "feed"}, "factor": float("nan")},
     "factor must be a finite number"),
])
def test_malformed_rules_are_refused_naming_the_field(body, message):
    with pytest.raises(ValidationError, match=message):
        parse_rule(body, "r", 1.9e9, "k")


def test_feed_scores_without_reader_controls_are_unchanged_by_them(trained):
    """A reader who never hid anything nor saw an article twice scores as before: the new columns are 0."""
    engine = trained.engine()
    user = "never-seen-reader"
    scores, columns = engine.score(user, window_ids(engine)[:50], features=True)
    for name in ("hide_story", "hide_category", "fatigue"):
        assert np.all(columns[name] == 0)


def test_section_lists_from_the_window_summary_come_from_its_per_section_pools(trained):
    """A large window is answered from candidates (the summary's best per category and region, plus
    the reader's own), never a scan: forced here with a tiny full-scan limit."""
    engine = trained.engine(full_scan_max=10)
    user = reader_with_history(trained, 1)[0]
    state = engine._state
    assert engine._window_summary(state, state.snapshot(), trained.now) is not None
    for category in ("Olahraga", "Teknologi"):
        ranked = engine.feed(user, limit=10, filters=ListFilter(categories=(category,)))
        assert len(ranked.items) == 10 and all(i.category == category for i in ranked.items)
    scanned = trained.engine()  # the same section scored over the whole window
    assert set(ids(engine.feed(user, limit=5, filters=ListFilter(categories=("Olahraga",))))) & set(
        ids(scanned.feed(user, limit=10, filters=ListFilter(categories=("Olahraga",)))))
    anchor = window_ids(engine)[7]
    related = engine.related(anchor, limit=8, filters=ListFilter(categories=("Ekonomi",)))
    assert len(related.items) == 8 and all(i.category == "Ekonomi" for i in related.items)


def test_a_story_scoped_related_pin_covers_every_article_of_that_story_only(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = engine_at(sample, Clock(sample.now))
    state = engine._state
    window = window_ids(engine)
    story = {a: int(state.snapshot().story(np.array([state.index_of(a)]))[0]) for a in window}
    seed = next(a for a in window if sum(s == story[a] for s in story.values()) >= 3)
    mates = [a for a in window if story[a] == story[seed]]
    outsider = next(a for a in window if story[a] != story[seed])
    pinned = next(a for a in reversed(window) if story[a] != story[seed] and a != outsider)
    engine.add_rule(pin(pinned, 1, {"list": "related", "story": seed}, sample.now, sample.now + HOUR), who="k")
    assert all(ids(engine.related(a, limit=5))[0] == pinned for a in mates)
    assert ids(engine.related(outsider, limit=5))[0] != pinned
