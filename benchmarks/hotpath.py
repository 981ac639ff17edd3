"""Where a feed and an event post spend their time: store round trips and CPU per call, per backend.

On the portal benchmark's store (``portal.py``'s scale store and bundle, copied to a PostgreSQL
database made for the run and dropped afterwards), one :class:`recommender.serving.engine.Engine`
per backend serves ``--calls`` feeds and posts ``--calls`` single events, ``--repeat`` times,
alternating the backends. For each kind of call it reports

* SQL statements per call (SQLite: ``set_trace_callback``; PostgreSQL: every ``execute`` of a
  psycopg connection), the round trips the request waits for;
* the same feeds once more right away ("feed again": what a cached first page costs);
* CPU time per call of this process (``time.process_time``: steadier than wall time on a shared
  machine; the PostgreSQL server's own CPU is not in it) and wall p50 / p99;
* the p99 of the request thread's own CPU per call (``time.thread_time``: the slow 1 % without the
  waits for a core) and what the slowest 1 % of feeds by that CPU did: the share of them whose
  features went to the feature log, whose reader has ``max_reader_events`` or more
  clicks/reads/shares, during which a garbage collection ran, and their statements per call.

The background thread runs as in a server (polling the change log, writing served lists), so the
feed figures include what a worker pays for it. Medians of the runs.

Usage::

    python benchmarks/hotpath.py [--events 100000] [--calls 1000] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import percentiles_ms, print_table, write_json  # noqa: E402


class StatementCounter:
    """Counts SQL statements sent by the calling thread (not the background thread's)."""

    def __init__(self):
        self.count = 0
        self.thread = threading.get_ident()

    def hit(self, *_args) -> None:
        if threading.get_ident() == self.thread:
            self.count += 1


@contextlib.contextmanager
def counting(store, counter: StatementCounter):
    """Route every statement ``store`` sends from this thread through ``counter``."""
    from recommender.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        conn = store._conn()
        conn.set_trace_callback(counter.hit)
        try:
            yield
        finally:
            conn.set_trace_callback(None)
        return
    import psycopg

    original = psycopg.Connection.execute

    def execute(self, *args, **kwargs):
        counter.hit()
        return original(self, *args, **kwargs)

    psycopg.Connection.execute = execute
    try:
        yield
    finally:
        psycopg.Connection.execute = original


class CallNotes:
    """What each feed did, noted by wrapping the engine's steps on the instance (benchmark only)."""

    def __init__(self, engine):
        import gc

        self.logged = self.heavy = self.collected = False
        limit = engine.config.max_reader_events
        log_features, profile = engine._log_features, engine._profile_and_history

        def noted_log(*args, **kwargs):
            self.logged = True
            return log_features(*args, **kwargs)

        def noted_profile(*args, **kwargs):
            out = profile(*args, **kwargs)
            self.heavy = out[0].positives.size >= limit
            return out

        engine._log_features, engine._profile_and_history = noted_log, noted_profile
        gc.callbacks.append(self._collected)

    def _collected(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self.collected = True

    def reset(self) -> None:
        self.logged = self.heavy = self.collected = False

    def close(self) -> None:
        import gc

        gc.callbacks.remove(self._collected)


def slowest(rows: list[tuple[float, int, bool, bool, bool]]) -> dict:
    """The slowest 1 % of feeds by request-thread CPU: ``(cpu s, statements, logged, heavy, collected)`` rows."""
    top = sorted(rows, reverse=True)[:max(1, len(rows) // 100)]
    return {"slowest_cpu_ms": round(1e3 * top[-1][0], 3), "slowest_statements": statistics.mean(r[1] for r in top),
            "slowest_feature_logged": statistics.mean(r[2] for r in top),
            "slowest_heavy_reader": statistics.mean(r[3] for r in top),
            "slowest_gc": statistics.mean(r[4] for r in top)}


def measure(store_factory, models: Path, users: list[str], articles: list[str], now: float, calls: int,
            warmup: int) -> dict:
    """Statements, CPU ms and wall p50/p99 per feed and per event post of one fresh engine."""
    from threadpoolctl import threadpool_limits

    from recommender.domain import Interaction
    from recommender.serving.engine import Engine, EngineConfig

    threadpool_limits(1)
    store = store_factory()
    engine = Engine(store, models, EngineConfig(), clock=lambda: now)
    engine.start_background()
    notes = CallNotes(engine)
    tag = uuid.uuid4().hex[:6]

    def feed(i: int) -> None:
        engine.feed(users[i % len(users)], limit=20)

    def post(i: int) -> None:
        engine.record_events([Interaction(user_id=users[i % len(users)], article_id=articles[i % len(articles)],
                                          event="click", ts=now, event_id=f"hot-{tag}-{i}")])

    out = {}
    try:
        # "feed again": the same readers once more right away (a reader's cached page, where kept)
        for kind, fn in (("feed", feed), ("feed again", feed), ("event", post)):
            for i in range(warmup if kind != "feed again" else 0):
                fn(i)
            counter = StatementCounter()
            wall, rows = [], []
            with counting(store, counter):
                cpu0 = time.process_time()
                for i in range(warmup, warmup + calls):
                    notes.reset()
                    sent, own = counter.count, time.thread_time()
                    start = time.perf_counter()
                    fn(i)
                    wall.append(time.perf_counter() - start)
                    rows.append((time.thread_time() - own, counter.count - sent, notes.logged, notes.heavy,
                                 notes.collected))
                cpu = time.process_time() - cpu0
            p = percentiles_ms(wall)
            out[kind] = {"statements": counter.count / calls, "cpu_ms": 1e3 * cpu / calls,
                         "p50_ms": p["p50_ms"], "p99_ms": p["p99_ms"],
                         "thread_cpu_p99_ms": percentiles_ms([r[0] for r in rows])["p99_ms"]}
            if kind == "feed":
                out[kind].update(slowest(rows))
    finally:
        notes.close()
        engine.close()
        store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.articles = max(2000, args.events // 100)
    args.users = max(1000, args.events // 10)

    from benchmarks.portal import Databases, copy_to_postgres, sample_ids, scale_store, working_copy
    from benchmarks.synthetic_scale import END
    from recommender.store import SQLiteStore
    from recommender.store.postgres import PostgresStore

    backends = args.backends.split(",")
    results: dict = {"events": args.events, "calls": args.calls, "repeat": args.repeat,
                     "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    dbs = Databases(args.server)
    try:
        with tempfile.TemporaryDirectory(prefix="newsrec-hotpath-") as tmp:
            cached, models = scale_store(args)
            db = working_copy(cached, Path(tmp))
            url = None
            if "postgresql" in backends:
                url = dbs.create()
                copy_to_postgres(db, url)
            users, articles = sample_ids(db, args.calls + args.warmup, np.random.default_rng(args.seed))
            factories = {"sqlite": lambda: SQLiteStore(db), "postgresql": lambda: PostgresStore(url)}
            runs: dict[str, list[dict]] = {b: [] for b in backends}
            for r in range(args.repeat):  # alternating backends: the machine's load hits both alike
                for backend in backends:
                    runs[backend].append(measure(factories[backend], models, users, articles, END + 3600.0,
                                                 args.calls, args.warmup))
                    print(f"  run {r + 1} {backend}: {runs[backend][-1]}", flush=True)
    finally:
        dbs.drop_all()
    rows = []
    for backend in backends:
        for kind in ("feed", "feed again", "event"):
            med = {k: round(statistics.median(run[kind][k] for run in runs[backend]), 3)
                   for k in runs[backend][0][kind]}
            results[f"{backend}_{kind.replace(' ', '_')}"] = med
            rows.append([backend, kind, med["statements"], med["cpu_ms"], med["thread_cpu_p99_ms"], med["p50_ms"],
                         med["p99_ms"]])
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print_table("feed and single-event post, per call (medians of runs)", rows,
                ["backend", "call", "statements/call", "CPU ms/call", "thread CPU p99 ms", "p50 ms", "p99 ms"])
    for backend in backends:
        feed = results[f"{backend}_feed"]
        print(f"{backend}: slowest 1 % of feeds (request-thread CPU >= {feed['slowest_cpu_ms']} ms): "
              f"{feed['slowest_feature_logged']:.0%} feature-logged, {feed['slowest_heavy_reader']:.0%} heavy readers, "
              f"{feed['slowest_gc']:.0%} with a GC collection, {feed['slowest_statements']:.1f} statements")
    print(f"load average before {results['load_average_before']}, after {results['load_average_after']}")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
