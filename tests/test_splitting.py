from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recommender.evaluation.splitting import check_no_leak, last_days_cut, time_split, validation_cut

WIB = timezone(timedelta(hours=7))
DAY = 86_400.0


def wib(*args):
    return datetime(*args, tzinfo=WIB).timestamp()


# Events over three days; the last one at 2024-03-10 15:00 WIB (08:00 UTC).
EVENT_TS = np.array(
    [
        wib(2024, 3, 8, 9, 0),
        wib(2024, 3, 8, 23, 59),
        wib(2024, 3, 9, 0, 0),
        wib(2024, 3, 9, 12, 30),
        wib(2024, 3, 10, 7, 0),
        wib(2024, 3, 10, 15, 0),
    ]
)

# timestamps on a coarse grid so that ties with the cut are common
grid_ts = st.lists(st.integers(0, 40).map(lambda i: 1.7e9 + 900.0 * i), max_size=60)
grid_cut = st.integers(-2, 42).map(lambda i: 1.7e9 + 900.0 * i)


@given(grid_ts, grid_cut)
def test_time_split_partitions_and_orders(ts, cut):
    ts = np.array(ts, dtype=np.float64)
    train, test = time_split(ts, cut)
    assert train.dtype == bool and train.shape == ts.shape
    assert not np.any(train & test)  # disjoint
    assert np.all(train | test)  # covers every event
    assert np.all(ts[train] < cut)
    assert np.all(ts[test] >= cut)
    # ties with the cut go to test
    np.testing.assert_array_equal(test[ts == cut], True)
    if train.any() and test.any():
        assert ts[train].max() < ts[test].min()
    check_no_leak(ts[train], ts[test], cut)  # a split it made never leaks


def test_time_split_hand_example():
    cut = wib(2024, 3, 9, 0, 0)
    train, test = time_split(EVENT_TS, cut)
    # 23:59 on the 8th trains; the event exactly at midnight is tested
    np.testing.assert_array_equal(train, [True, True, False, False, False, False])
    np.testing.assert_array_equal(test, ~train)


def test_time_split_rejects_nan():
    with pytest.raises(ValueError, match="without a timestamp"):
        time_split(np.array([1.0, np.nan]), 0.5)
    with pytest.raises(ValueError, match="finite"):
        time_split(np.array([1.0]), np.nan)


def test_last_days_cut_aligned_to_wib_midnight():
    # max = 10 Mar 15:00 WIB; minus 1 day = 9 Mar 15:00 WIB; aligned -> 9 Mar 00:00 WIB
    assert last_days_cut(EVENT_TS, 1) == wib(2024, 3, 9, 0, 0)
    # which is 8 Mar 17:00 UTC, not UTC midnight
    assert last_days_cut(EVENT_TS, 1) == datetime(2024, 3, 8, 17, 0, tzinfo=timezone.utc).timestamp()
    assert last_days_cut(EVENT_TS, 1, align=False) == wib(2024, 3, 9, 15, 0)
    # 2 days: 8 Mar 15:00 WIB -> 8 Mar 00:00 WIB
    assert last_days_cut(EVENT_TS, 2) == wib(2024, 3, 8, 0, 0)
    # UTC alignment instead: 9 Mar 08:00 UTC -> 9 Mar 00:00 UTC
    assert last_days_cut(EVENT_TS, 1, utc_offset_hours=0) == datetime(
        2024, 3, 9, tzinfo=timezone.utc
    ).timestamp()


@given(st.floats(1.5e9, 2.0e9), st.floats(0.1, 30))
def test_last_days_cut_alignment_property(t_max, days):
    ts = np.array([t_max - 5 * DAY, t_max])
    raw = last_days_cut(ts, days, align=False)
    aligned = last_days_cut(ts, days)
    assert raw == pytest.approx(t_max - days * DAY)
    assert aligned <= raw < aligned + DAY
    local = datetime.fromtimestamp(aligned, WIB)
    assert (local.hour, local.minute, local.second) == (0, 0, 0)


def test_last_days_cut_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        last_days_cut(np.array([]), 1)
    with pytest.raises(ValueError, match="days must be > 0"):
        last_days_cut(EVENT_TS, 0)


def test_validation_cut_fraction():
    ts = np.arange(10, dtype=np.float64) * 3600
    # hold out 20% of 10 events: the last 2 -> cut at the 9th event (index 8)
    cut = validation_cut(ts, 0.2)
    assert cut == 8 * 3600
    train, val = time_split(ts, cut)
    assert train.sum() == 8 and val.sum() == 2
    # 28% of 25 is 7 events, although 25 * 0.28 is 7.000000000000001 in floats
    ts25 = np.arange(25, dtype=np.float64) * 3600
    assert validation_cut(ts25, 0.28) == 18 * 3600


def test_validation_cut_days_uses_wib_days():
    # training ends 10 Mar 15:00 WIB; 1 day back -> 9 Mar 00:00 WIB
    assert validation_cut(EVENT_TS, 1) == wib(2024, 3, 9, 0, 0)
    assert validation_cut(EVENT_TS, 1, align=False) == wib(2024, 3, 9, 15, 0)


@given(grid_ts.filter(lambda x: len(x) >= 1), st.floats(0.01, 0.99))
def test_validation_cut_fraction_property(ts, fraction):
    ts = np.array(ts)
    n_held_out = max(1, round(np.ceil(fraction * ts.size - 1e-9)))
    # the earliest held-out event is tied with the first event: no training data would remain
    if np.sort(ts)[ts.size - n_held_out] == ts.min():
        with pytest.raises(ValueError, match="covers the whole training period"):
            validation_cut(ts, fraction)
        return
    cut = validation_cut(ts, fraction)
    train, val = time_split(ts, cut)
    assert ts[train].max() < cut <= ts[val].min()
    # at least the requested share is held out (more when events tie at the cut)
    assert val.sum() >= n_held_out
    # and no more than needed: the cut is the time of the n_held_out-th last event
    assert cut == np.sort(ts)[ts.size - n_held_out]


def test_validation_cut_rejects_whole_period():
    same_time = np.full(5, 1.7e9)
    with pytest.raises(ValueError, match="covers the whole training period"):
        validation_cut(same_time, 0.5)
    with pytest.raises(ValueError, match="covers the whole training period"):
        validation_cut(EVENT_TS, 10)
    with pytest.raises(ValueError, match="fraction"):
        validation_cut(EVENT_TS, 0)


def test_check_no_leak_raises_with_counts():
    cut = wib(2024, 3, 9, 0, 0)
    train, test = time_split(EVENT_TS, cut)
    check_no_leak(EVENT_TS[train], EVENT_TS[test], cut)
    # a train event exactly at the cut is a leak (ties belong to test)
    with pytest.raises(ValueError, match="1 training events at or after the cut"):
        check_no_leak(np.append(EVENT_TS[train], cut), EVENT_TS[test], cut)
    with pytest.raises(ValueError, match="2 test events before the cut.*time_split"):
        check_no_leak(EVENT_TS[train], EVENT_TS, cut)


@given(grid_ts, grid_ts, grid_cut)
def test_check_no_leak_property(train_ts, test_ts, cut):
    train_ts, test_ts = np.array(train_ts), np.array(test_ts)
    leaks = np.any(train_ts >= cut) or np.any(test_ts < cut)
    if leaks:
        with pytest.raises(ValueError, match="time leak"):
            check_no_leak(train_ts, test_ts, cut)
    else:
        check_no_leak(train_ts, test_ts, cut)
