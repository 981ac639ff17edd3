"""Measurement only (``hit_cpu.py --probes``): what a cached feed would cost on PostgreSQL with a
cheaper check of the reader's version, or with none. Never used by newsrec itself.

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; ``hit_cpu.py`` puts this folder
there for the servers it starts with ``NEWSREC_BENCH_PROBE`` set to

* ``select1``: every ``PostgresStore.reader_version`` after a reader's first sends ``SELECT 1``
  instead (one round trip that reads nothing: the floor of any check with the database) and
  answers the version it read last;
* ``none``: no round trip at all: the version read last, as a cache kept valid by following the
  change log would answer (stale until the follower's next poll: not what newsrec serves).

The remembered version is read again after ``REREAD_SECONDS``, so a page that went stale meanwhile
is rebuilt once rather than missed for the rest of the run. The patch is applied when the module
is first imported (a finder on ``sys.meta_path``): nothing is imported early, so the gunicorn
master still starts without numpy.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time

MODE = os.environ.get("NEWSREC_BENCH_PROBE", "")
MODULE = "recommender.store.postgres"
REREAD_SECONDS = 5.0


def _patch(module) -> None:
    cls = module.PostgresStore
    real = cls.reader_version
    last: dict = {}

    def reader_version(self, user_id: str):
        got = last.get(user_id)
        if got is None or time.monotonic() - got[1] > REREAD_SECONDS:
            version = real(self, user_id)
            last[user_id] = (version, time.monotonic())
            return version
        if MODE == "select1":
            with self._reading() as conn:
                conn.execute("SELECT 1").fetchone()
        return got[0]

    cls.reader_version = reader_version


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


if MODE in ("select1", "none"):
    sys.meta_path.insert(0, _PatchOnImport())
