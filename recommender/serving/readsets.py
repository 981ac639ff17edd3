"""A per-reader cache of what a heavy reader has read, kept correct by the store's sequence numbers.

A feed leaves out every article the reader clicked, read or shared in the serving window
(``Engine._window_reads``). For a reader with tens of thousands of such events, reading them all
back on every feed costs ~20 ms. :class:`ReadSets` keeps, for readers with at least
``min_events`` of them, the distinct article keys read so far and the largest sequence number
among their events; each feed then asks the store two index probes (the smallest and largest
sequence number of the reader's reads, :meth:`Store.user_read_bounds`) and reads only the events
after the one it holds. So a click posted to any worker of any replica counts in the next feed,
as without the cache:

* a new event has a larger sequence number (drawn in commit order, see ``Store``): read as a delta;
* a forget deletes every event of the reader: the smallest number is then above the one held (or
  there is none), and the entry is read again in full;
* an event stamped in the future (a client clock ahead) is held apart until the clock passes it;
  a request with an earlier clock than the entry's (a replay restarting) or an earlier window
  start reads the store directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from recommender import arrays
from recommender.models.readsets import MIN_EVENTS
from recommender.store import Store


@dataclass(frozen=True)
class _Entry:
    since: float  # events with ts >= since are in it (a later window start: a harmless superset)
    until: float  # keys of events with ts <= until are in ``keys``
    hi: int  # largest sequence number read
    keys: np.ndarray  # distinct article keys read by ``until``, sorted int64
    future_keys: np.ndarray  # events with ts > until: keys and times, int64 / float64
    future_ts: np.ndarray


class ReadSets:
    """Distinct store article keys each heavy reader clicked, read or shared since a time.

    Parameters
    ----------
    store : Store
    min_events : int
        Readers with fewer events are read from the store each time (cheap; nothing kept).
    max_readers : int
        Entries kept; the oldest goes first.
    """

    def __init__(self, store: Store, min_events: int = MIN_EVENTS, max_readers: int = 4096):
        self.store = store
        self.min_events = int(min_events)
        self.max_readers = int(max_readers)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def holds(self, user_id: str) -> bool:
        """Whether the reader's read set is kept (its next :meth:`keys` reads at most a delta)."""
        return user_id in self._entries

    def keys(self, user_id: str, since: float, until: float, bounds: tuple[int, int] | None = None,
             first: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None) -> np.ndarray:
        """Sorted distinct article keys of the reader's click/read/share events with
        ``since <= ts <= until``, as ``Store.user_read_keys`` (a cached heavy reader's may also hold
        keys read before ``since``). ``bounds``: what ``Store.user_read_bounds`` answered for the
        reader just before (``Store.reader_version`` holds it), else it is asked. ``first``: what
        ``Store.user_read_set(user_id, since, until)`` answered just before (``Store.reader_reads``
        asks it with the reader's other reads), used when nothing is kept. Raises what the store
        raises."""
        entry = self._entries.get(user_id)
        if entry is not None and (since < entry.since or until < entry.until):
            return self.store.user_read_keys(user_id, since, until=until)
        if entry is not None:
            if bounds is None:
                bounds = self.store.user_read_bounds(user_id)
            if bounds is None:  # forgotten, nothing since
                self._drop(user_id)
                return np.zeros(0, dtype=np.int64)
            if bounds[0] <= entry.hi:  # the events it was read from are still there
                if bounds[1] > entry.hi:
                    keys, ts, seq = self.store.user_read_rows(user_id, entry.since, after_seq=entry.hi)
                    entry = self._merge(entry, keys, ts, int(max(seq.max(initial=0), bounds[1])), until)
                elif entry.future_ts.size and entry.future_ts.min() <= until:
                    entry = self._merge(entry, np.zeros(0, np.int64), np.zeros(0), entry.hi, until)
                else:
                    return entry.keys
                self._put(user_id, entry)
                return entry.keys
        due, later, later_ts, hi = first if first is not None else self.store.user_read_set(user_id, since, until)
        keys = arrays.unique(due)
        if due.size + later.size < self.min_events:
            return keys
        entry = _Entry(since, until, hi, keys, later.astype(np.int64), later_ts.astype(np.float64))
        self._put(user_id, entry)
        return entry.keys

    @staticmethod
    def _merge(entry: _Entry, keys: np.ndarray, ts: np.ndarray, hi: int, until: float) -> _Entry:
        all_keys = np.concatenate([entry.future_keys, keys])
        all_ts = np.concatenate([entry.future_ts, ts])
        due = all_ts <= until
        merged = arrays.union1d(entry.keys, all_keys[due]) if due.any() else entry.keys
        return _Entry(entry.since, until, hi, merged.astype(np.int64), all_keys[~due], all_ts[~due])

    def _put(self, user_id: str, entry: _Entry) -> None:
        with self._lock:
            self._entries.pop(user_id, None)
            if len(self._entries) >= self.max_readers:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[user_id] = entry

    def _drop(self, user_id: str) -> None:
        with self._lock:
            self._entries.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._entries)
