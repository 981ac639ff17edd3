"""Global time-based train/test splits for news events.

News popularity moves by the hour, so a random split lets a model learn from
clicks that happen after the ones it is tested on. All splits here cut the
event stream at one instant: events strictly before the cut are training data,
events at or after it are test data. An event stamped exactly at the cut goes
to the test side, so ``train.max() < cut <= test.min()`` always holds.

Timestamps are epoch seconds (float64, UTC). Day boundaries are those of the
portal's readers, WIB (UTC+7), unless another offset is given.
"""

import logging

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["WIB_UTC_OFFSET_HOURS", "time_split", "last_days_cut", "validation_cut", "check_no_leak"]

WIB_UTC_OFFSET_HOURS = 7
_DAY = 86_400.0


def _check_ts(ts, name="ts"):
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of epoch seconds, got shape {ts.shape}.")
    if not np.all(np.isfinite(ts)):
        raise ValueError(f"{name} contains NaN or inf; drop or repair events without a timestamp first.")
    return ts


def _check_cut(cut):
    cut = float(cut)
    if not np.isfinite(cut):
        raise ValueError(f"cut must be a finite epoch time in seconds, got {cut}.")
    return cut


def time_split(ts, cut):
    """Boolean masks for events before the cut (train) and at or after it (test).

    Parameters
    ----------
    ts : array-like of shape (n_events,)
        Event times, epoch seconds.
    cut : float
        Split instant, epoch seconds. Events with ``ts == cut`` go to test.

    Returns
    -------
    train_mask : ndarray of shape (n_events,), bool
        ``ts < cut``.
    test_mask : ndarray of shape (n_events,), bool
        ``ts >= cut``; exactly the complement of ``train_mask``.
    """
    ts = _check_ts(ts)
    cut = _check_cut(cut)
    train_mask = ts < cut
    test_mask = ~train_mask
    log.debug("time_split at %.0f: %d train, %d test events", cut, train_mask.sum(), test_mask.sum())
    return train_mask, test_mask


def _floor_to_local_day(t, utc_offset_hours):
    offset = utc_offset_hours * 3600.0
    return float(np.floor((t + offset) / _DAY) * _DAY - offset)


def last_days_cut(ts, days, align=True, utc_offset_hours=WIB_UTC_OFFSET_HOURS):
    """Cut that keeps roughly the last ``days`` days of events for testing.

    Parameters
    ----------
    ts : array-like of shape (n_events,)
        Event times, epoch seconds; must not be empty.
    days : float
        Length of the test period, > 0.
    align : bool
        If True, move the cut back to local midnight (00:00 WIB by default) of
        the day it falls in, so the test period starts on a whole day and may be
        up to one day longer than ``days``.
    utc_offset_hours : float
        Local time zone used for alignment; WIB is UTC+7.

    Returns
    -------
    float
        ``max(ts) - days * 86400``, floored to local midnight if ``align``.
    """
    ts = _check_ts(ts)
    if ts.size == 0:
        raise ValueError("ts is empty; a cut needs at least one event.")
    if not days > 0:
        raise ValueError(f"days must be > 0, got {days}.")
    cut = float(ts.max()) - days * _DAY
    if align:
        cut = _floor_to_local_day(cut, utc_offset_hours)
    return cut


def validation_cut(ts_train, fraction_or_days, align=True, utc_offset_hours=WIB_UTC_OFFSET_HOURS):
    """Cut that carves a validation period from the end of the training period.

    Use it with :func:`time_split` on the training events only, so validation
    sits between training and test in time, as the test set does after it.

    Parameters
    ----------
    ts_train : array-like of shape (n_events,)
        Training event times, epoch seconds; must not be empty.
    fraction_or_days : float
        A value in (0, 1) is the share of training events to hold out: the
        cut is the time of the earliest of the last ``ceil(n * fraction)``
        events (events tied with it also go to validation, so it may hold more).
        A value >= 1 is a number of days, as in :func:`last_days_cut`.
    align : bool
        Align a cut given in days to local midnight; ignored for fractions.
    utc_offset_hours : float
        Local time zone used for alignment; WIB is UTC+7.

    Returns
    -------
    float
        The validation cut; at least one training event lies strictly before it.
    """
    ts = _check_ts(ts_train, "ts_train")
    if ts.size == 0:
        raise ValueError("ts_train is empty; a validation cut needs training events.")
    value = float(fraction_or_days)
    if not value > 0:
        raise ValueError(
            f"fraction_or_days must be a fraction in (0, 1) or a number of days >= 1, got {value}."
        )
    if value < 1:
        # hold out ceil(n * fraction) events, at least one; 1e-9 absorbs float error
        n_held_out = max(1, int(np.ceil(ts.size * value - 1e-9)))
        cut = float(np.sort(ts)[max(0, ts.size - n_held_out)])
    else:
        cut = last_days_cut(ts, value, align=align, utc_offset_hours=utc_offset_hours)
    if not np.any(ts < cut):
        raise ValueError(
            f"validation period (fraction_or_days={value}) covers the whole training period; "
            "use a smaller fraction or fewer days."
        )
    return cut


def check_no_leak(train_ts, test_ts, cut):
    """Raise if any training event is at/after the cut or any test event before it.

    Parameters
    ----------
    train_ts : array-like of shape (n_train,)
        Training event times, epoch seconds.
    test_ts : array-like of shape (n_test,)
        Test event times, epoch seconds.
    cut : float
        The split instant used to build them.

    Raises
    ------
    ValueError
        Naming how many events are on the wrong side; rebuild the split with
        :func:`time_split`.
    """
    train_ts = _check_ts(train_ts, "train_ts")
    test_ts = _check_ts(test_ts, "test_ts")
    cut = _check_cut(cut)
    late_train = int(np.count_nonzero(train_ts >= cut))
    early_test = int(np.count_nonzero(test_ts < cut))
    if late_train or early_test:
        problems = []
        if late_train:
            problems.append(f"{late_train} training events at or after the cut (latest {train_ts.max():.0f})")
        if early_test:
            problems.append(f"{early_test} test events before the cut (earliest {test_ts.min():.0f})")
        raise ValueError(
            f"time leak around cut {cut:.0f}: " + "; ".join(problems)
            + ". Build train and test with time_split(ts, cut) so train < cut <= test."
        )
