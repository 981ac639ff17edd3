"""How far a worker's lists may run behind other workers' and hosts' writes (``EngineConfig.lag_seconds``).

By default (lag 0) every list asks the store first: a cached feed page checks its reader's
version, a list checks for new takedowns. On SQLite that is a read in the worker; on PostgreSQL a
round trip, which on two cores doubles what a cached feed costs the workers (benchmarks/README,
"eighteenth round"). With a lag, the store's answer for a reader is reused for that many seconds:
a cached page then mostly needs no round trip, and another worker's or host's click, preference,
forget or takedown shows within the lag instead of at once. What this engine writes itself still
shows at once: it forgets its answer for the readers it writes for.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class RecentVersions:
    """Readers' versions (:meth:`Store.reader_version`) as last answered, reused for ``lag`` seconds.

    Parameters
    ----------
    lag : float
        Seconds an answer is reused (0: never, nothing is kept).
    size : int
        Readers kept at most (the oldest answer goes first).
    clock : callable, optional
        Monotonic seconds; injectable for tests.
    """

    def __init__(self, lag: float, size: int, clock: Callable[[], float] = time.monotonic):
        self.lag = float(lag)
        self.size = max(1, int(size))
        self.clock = clock
        self._kept: dict[str, tuple[tuple, float]] = {}
        self._drops = 0  # bumped by every drop: an answer asked for before one is not kept
        self._lock = threading.Lock()

    def within(self, at: float) -> bool:
        """Whether an answer asked for at ``at`` (this clock) may still be used."""
        return self.lag > 0 and self.clock() - at < self.lag

    def get(self, user_id: str) -> tuple | None:
        """The reader's version if answered less than ``lag`` seconds ago, else None."""
        got = self._kept.get(user_id) if self.lag > 0 else None
        return got[0] if got is not None and self.within(got[1]) else None

    def ask(self) -> tuple[int, float]:
        """Taken just before the store is asked: what :meth:`put` needs to keep its answer."""
        return self._drops, self.clock()

    def put(self, user_id: str, version: tuple | None, asked: tuple[int, float]) -> None:
        """Keep the store's answer, aged from when it was asked, unless this engine wrote for any
        reader meanwhile (its write may have committed after the answer was read)."""
        if self.lag <= 0 or version is None:
            return
        with self._lock:
            if asked[0] != self._drops:
                return
            if user_id not in self._kept and len(self._kept) >= self.size:
                self._kept.pop(next(iter(self._kept)), None)
            self._kept[user_id] = (version, asked[1])

    def drop(self, user_ids) -> None:
        """This engine wrote for these readers: their next list asks the store."""
        if self.lag <= 0:
            return
        with self._lock:
            self._drops += 1
            for user_id in user_ids:
                self._kept.pop(user_id, None)
