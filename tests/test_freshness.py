"""``RecentVersions`` (serving.freshness): a reader's answer is reused for the lag unless a write
for that reader, or a clear, came after it was asked for, whoever wrote (this engine or a notice)."""

from __future__ import annotations

from recommender.serving.freshness import RecentVersions


def versions(lag=1.0, size=100):
    clock = [0.0]
    recent = RecentVersions(lag, size, clock=lambda: clock[0])
    return recent, clock


def test_an_answer_is_reused_within_the_lag_only():
    recent, clock = versions()
    recent.put("r", ("v1",), recent.ask())
    clock[0] = 0.99
    assert recent.get("r") == ("v1",)
    clock[0] = 1.0
    assert recent.get("r") is None
    off, _ = versions(lag=0.0)
    off.put("r", ("v1",), off.ask())
    assert off.get("r") is None


def test_a_drop_refuses_answers_asked_before_it_for_that_reader_only():
    recent, _ = versions()
    asked = recent.ask()  # both answers are being read when a write for "r" is told
    recent.drop(["r"])
    recent.put("r", ("old",), asked)
    recent.put("s", ("v",), asked)
    assert recent.get("r") is None and recent.get("s") == ("v",)
    recent.put("r", ("new",), recent.ask())  # asked after the drop: kept
    assert recent.get("r") == ("new",)
    recent.drop(["r"])
    assert recent.get("r") is None and recent.get("s") == ("v",)


def test_a_clear_ends_every_answer_and_every_look_asked_before_it():
    recent, _ = versions()
    recent.put("r", ("v",), recent.ask())
    looked = recent.ask()  # a thread's look at takedowns
    assert recent.within(looked)
    in_flight = recent.ask()
    recent.clear()
    assert recent.get("r") is None and not recent.within(looked)
    recent.put("s", ("v",), in_flight)
    assert recent.get("s") is None
    again = recent.ask()
    recent.put("s", ("v",), again)
    assert recent.get("s") == ("v",) and recent.within(again)


def test_drops_beyond_the_memory_still_refuse_answers_asked_before_them():
    recent, _ = versions(size=2)
    asked = recent.ask()
    recent.drop(["a", "b", "c"])  # "a" is no longer remembered by name
    for reader in ("a", "b", "c", "d"):
        recent.put(reader, ("v",), asked)
        assert recent.get(reader) is None
    recent.put("a", ("v",), recent.ask())
    assert recent.get("a") == ("v",)


def test_kept_answers_are_bounded_oldest_first():
    recent, _ = versions(size=2)
    for reader in ("a", "b", "c"):
        recent.put(reader, (reader,), recent.ask())
    assert [recent.get(r) for r in ("a", "b", "c")] == [None, ("b",), ("c",)]
