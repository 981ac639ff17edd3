"""How far a worker's lists may run behind other workers' and hosts' writes (``EngineConfig.lag_seconds``).

With lag 0 every list asks the store first: a cached feed page checks its reader's version, a
list checks for new takedowns. On SQLite that is a read in the worker; on PostgreSQL a round
trip, which on two cores doubles what a cached feed costs the workers (benchmarks/README,
"eighteenth round"). With a lag, the store's answer for a reader is reused for up to that many
seconds: a cached page then mostly needs no round trip.

What ends a reuse early: this engine's own writes for the reader (they show at once), and, where
the store tells of committed writes (:meth:`Store.watch_writes`: PostgreSQL's notifications),
any worker's or host's write for the reader, or any takedown, as soon as the notice arrives
(milliseconds). The lag is then only the bound for a notice that is lost or late.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable


class RecentVersions:
    """Readers' versions (:meth:`Store.reader_version`) as last answered, reused for ``lag`` seconds
    unless dropped first.

    An answer is kept with the moment it was asked for (:meth:`ask`: a drop counter and the
    clock). A drop of its reader, or a :meth:`clear`, after that moment means the answer may
    miss a write that committed while it was being read: it is not kept, and not used.

    Parameters
    ----------
    lag : float
        Seconds an answer is reused (0: never, nothing is kept).
    size : int
        Readers kept at most (the oldest answer goes first), and readers' drops remembered.
    clock : callable, optional
        Monotonic seconds; injectable for tests.
    """

    def __init__(self, lag: float, size: int, clock: Callable[[], float] = time.monotonic):
        self.lag = float(lag)
        self.size = max(1, int(size))
        self.clock = clock
        self._kept: dict[str, tuple[tuple, tuple[int, float]]] = {}
        self._seq = 0  # bumped by every drop and clear
        self._dropped: dict[str, int] = {}  # reader -> the drop's number, the newest ``size``
        self._forgotten = 0  # the newest drop number no longer in ``_dropped``
        self._cleared = 0  # the number of the last clear
        self._lock = threading.Lock()

    def ask(self) -> tuple[int, float]:
        """Taken just before the store is asked: when the answer was asked for."""
        return self._seq, self.clock()

    def within(self, asked: tuple[int, float]) -> bool:
        """Whether an answer asked for at ``asked`` (:meth:`ask`) may still be used by every
        reader: less than the lag ago, and no :meth:`clear` since."""
        return self.lag > 0 and asked[0] >= self._cleared and self.clock() - asked[1] < self.lag

    def get(self, user_id: str) -> tuple | None:
        """The reader's version if it may still be used, else None."""
        got = self._kept.get(user_id) if self.lag > 0 else None
        return got[0] if got is not None and self.within(got[1]) else None

    def put(self, user_id: str, version: tuple | None, asked: tuple[int, float]) -> None:
        """Keep the store's answer, aged from when it was asked, unless the reader was dropped
        (or everything cleared) since: that write may have committed after the answer was read."""
        if self.lag <= 0 or version is None:
            return
        with self._lock:
            if max(self._cleared, self._forgotten, self._dropped.get(user_id, 0)) > asked[0]:
                return
            if user_id not in self._kept and len(self._kept) >= self.size:
                self._kept.pop(next(iter(self._kept)), None)
            self._kept[user_id] = (version, asked)

    def drop(self, user_ids: Iterable[str]) -> None:
        """These readers were written for: their next list asks the store."""
        if self.lag <= 0:
            return
        with self._lock:
            for user_id in user_ids:
                self._seq += 1
                self._kept.pop(user_id, None)
                self._dropped.pop(user_id, None)  # (to the end: the oldest drops go first)
                self._dropped[user_id] = self._seq
            while len(self._dropped) > self.size:
                oldest = next(iter(self._dropped))
                self._forgotten = max(self._forgotten, self._dropped.pop(oldest))

    def clear(self) -> None:
        """Every reader may have changed (a takedown, a notice naming no one, notices missed):
        every list asks the store again."""
        if self.lag <= 0:
            return
        with self._lock:
            self._seq += 1
            self._cleared = self._seq
            self._kept.clear()
