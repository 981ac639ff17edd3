"""Heavy readers' read sets as of training: the checkpoint the store answers their read set from.

A feed leaves out every article its reader clicked, read or shared in the serving window. For
the few readers with thousands of such events, reading that set back on their first feed in a
worker is the slowest part of any feed (at 10M events 1-2 ms of SQLite and 2-9 ms of the
PostgreSQL server: the slowest 1 % of feeds). Training reads every event anyway, so it computes,
for each reader with at least ``min_events`` reads, the distinct article keys they read up to the
store position it loaded, and ``train`` stores them (``Store.put_read_sets``). The store then
answers such a reader's read set (``Store.user_read_set``) from that one row plus their events
after the position. In the store, not in the bundle: a forget deletes the row with everything
else of the reader (a bundle file is never rewritten).
"""

from __future__ import annotations

import numpy as np

from recommender.domain import ANONYMOUS, EVENT_CODES
from recommender.store import PROFILE_EVENTS, ReadSetRow, Store, StoreError

READS = np.array([EVENT_CODES[e] for e in PROFILE_EVENTS], dtype=np.int8)  # what a feed leaves out once read
MIN_EVENTS = 256  # a heavy reader (serving.readsets.ReadSets keeps theirs too); a lighter one costs little
MAX_FUTURE = 10_000  # a reader with more reads stamped after the load's end is left out


def heavy_read_sets(store: Store, user_key: np.ndarray, article_key: np.ndarray, event: np.ndarray,
                    user_ids: dict[int, str], event_seq: int, end: float,
                    min_events: int = MIN_EVENTS) -> list[ReadSetRow]:
    """The checkpoint rows of the events training loaded (``store.load_interactions(start, end)``:
    ts in ``[start, end)``, at ``event_seq``), given as parallel arrays (store keys, event codes).

    Each reader with at least ``min_events`` reads gets a row, for which the store is asked two
    small reads: their smallest read sequence number (a reader forgotten since the load is left
    out; the store keeps the row only while that number stays the same) and their reads stamped at
    or after ``end`` (a client's clock ahead), kept apart with their times. Readers the store
    cannot answer for, or with more than ``MAX_FUTURE`` such reads, are left out: their read set is
    read in full when served, as without a checkpoint.
    """
    reads = np.isin(event, READS)
    anonymous = [k for k, v in user_ids.items() if v == ANONYMOUS]
    if anonymous:
        reads &= ~np.isin(user_key, anonymous)
    users, counts = np.unique(user_key[reads], return_counts=True)
    heavy = users[counts >= min_events]
    if heavy.size == 0:
        return []
    mask = reads & np.isin(user_key, heavy)
    u, a = user_key[mask], article_key[mask]
    order = np.lexsort((a, u))
    u, a = u[order], a[order]
    distinct = np.ones(u.size, dtype=bool)
    distinct[1:] = (u[1:] != u[:-1]) | (a[1:] != a[:-1])
    u, a = u[distinct], a[distinct]
    cuts = np.flatnonzero(np.diff(u)) + 1
    rows = []
    for part_u, keys in zip(np.split(u, cuts), np.split(a, cuts)):
        uid = user_ids.get(int(part_u[0]))
        if uid is None:
            continue
        try:
            bounds = store.user_read_bounds(uid)
            if bounds is None or bounds[0] > event_seq:  # forgotten since the load
                continue
            later_keys, later_ts, later_seq = store.user_read_rows(uid, since=end)
        except StoreError:
            continue
        known = later_seq <= event_seq
        if int(known.sum()) > MAX_FUTURE:
            continue
        rows.append(ReadSetRow(uid, int(bounds[0]), keys.astype(np.int64),
                               later_keys[known].astype(np.int64), later_ts[known].astype(np.float64)))
    return rows
