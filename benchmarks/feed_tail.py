"""What makes the slowest in-process feeds slow: every store call and pipeline stage of each feed timed.

``portal.py``'s in-process loop (readers by activity, 200 warm-up feeds, one BLAS thread, one poll,
the engine frozen out of the cycle collector's sight as a serving worker is), on a store you name:
for each feed its wall and thread CPU time, the time of each ``Store`` read it made and of each
stage of the feed pipeline. Prints p50/p90/p99, the median of each part over all feeds and the
slowest ``--slowest`` feeds part by part (their reader's id too), and writes them as JSON.

The store must be a copy of the scale store the bundle was trained on (feeds write their served
lists into it), e.g. ``cp benchmarks/cache/scalev3-...sqlite3 /tmp/w.sqlite3`` or a PostgreSQL
database made from such a copy with ``newsrec migrate-store``::

    python benchmarks/feed_tail.py --store /tmp/w.sqlite3 [--calls 2000] [--slowest 25] [--pause-ms 0] [--json OUT]
    python benchmarks/feed_tail.py --store postgresql://postgres@127.0.0.1:5432/copy [--server-times]

``--server-times`` (PostgreSQL): the feed's one statement also answers the server's clock when it
began executing (``statement_timestamp()``: the Execute message) and when its row was made, so its
wall splits into: sent -> executing (the client sending, the server waking, its Bind, which starts
the executor: ~0.1 ms for this statement), executing, and done -> received (the row sent, the
client waking, psycopg loading the row).

Sizes (``--events``, ``--articles``, ``--users``) name the cached scale store and bundle
(``portal.py``'s defaults: 10M events).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import write_json  # noqa: E402

STORE_READS = ("reader_version", "reader_version_and_reads", "reader_reads", "user_event_keys", "user_read_keys",
               "user_read_set", "user_read_rows", "user_read_bounds", "get_preferences", "article_keys")


@contextlib.contextmanager
def server_clock(parts: collections.Counter):
    """While in it, each PostgreSQL reader statement (``PostgresStore._side_by_side_row``) adds its
    ``server:`` parts (seconds) to ``parts``, from the server's clock it answers beside its row."""
    import recommender.store.postgres as pg

    sql, row = pg._side_by_side_sql, pg.PostgresStore.__dict__["_side_by_side_row"]

    def clocked_sql(parts_of):
        statement, names = sql(parts_of)
        return ("SELECT q.*, extract(epoch FROM statement_timestamp())::float8, "
                "extract(epoch FROM clock_timestamp())::float8 FROM (" + statement + ") q"), names

    def clocked_row(conn, asked):
        sent = time.time()  # the server's clock is this machine's
        got = row.__func__(conn, asked)
        received = time.time()
        began, done = got[-2:]
        parts["server:sent -> executing"] += began - sent
        parts["server:executing"] += done - began
        parts["server:done -> received"] += received - done
        return got[:-2]

    pg._side_by_side_sql = clocked_sql
    pg.PostgresStore._side_by_side_row = staticmethod(clocked_row)
    try:
        yield
    finally:
        pg._side_by_side_sql = sql
        pg.PostgresStore._side_by_side_row = row


def timed_feeds(store, models: Path, users: list[str], now: float, warmup: int, pause: float = 0.0,
                server_times: bool = False) -> list[dict]:
    """Each feed after ``warmup``: wall and CPU ms and ms per store read and per stage; with
    ``pause`` (seconds) the thread sleeps that long before each feed; with ``server_times`` (a
    PostgreSQL store) the reader statement's wall split by the server's clock (:func:`server_clock`)."""
    from benchmarks.portal import serving_engine

    engine = serving_engine(store, models, now)
    parts: collections.Counter = collections.Counter()

    def timing(name, call):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                parts[name] += time.perf_counter() - start
        return timed

    for name in STORE_READS:  # on the instance: the engine calls them through it
        if hasattr(store, name):
            setattr(store, name, timing(f"store:{name}", getattr(store, name)))
    originals = {type(stage): type(stage).__call__ for stage in engine._feed_pipeline.stages}
    for kind, call in originals.items():
        kind.__call__ = (lambda call, name: lambda self, b: timing(f"stage:{name}", call)(self, b))(
            call, getattr(kind, "name", kind.__name__))
    rows = []
    try:
        with server_clock(parts) if server_times else contextlib.nullcontext():
            for i, user in enumerate(users):
                if pause:
                    time.sleep(pause)
                parts.clear()
                start, cpu = time.perf_counter(), time.thread_time()
                engine.feed(user, limit=20)
                wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
                if i >= warmup:
                    rows.append({"user": user, "wall_ms": wall * 1e3, "cpu_ms": cpu * 1e3,
                                 "parts_ms": {k: v * 1e3 for k, v in parts.items() if v > 0}})
        engine.flush_impressions()
    finally:
        for kind, call in originals.items():
            kind.__call__ = call
        engine.close()
        gc.unfreeze()
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks.portal import add_size_args, fill_sizes, sample_ids, scale_store
    from benchmarks.synthetic_scale import END
    from recommender.store import open_store

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="a copy of the scale store: SQLite path or postgresql:// URL")
    add_size_args(ap, 10_000_000)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--slowest", type=int, default=25)
    ap.add_argument("--pause-ms", type=float, default=0.0,
                    help="sleep this long before each feed: the thread idles, as a serving worker's does between "
                         "requests and a PostgreSQL feed's does while its statement runs (what that costs the "
                         "feed's own CPU on this machine)")
    ap.add_argument("--server-times", action="store_true",
                    help="PostgreSQL: split the reader statement's wall by the server's clock (see above)")
    ap.add_argument("--json", type=Path, default=None)
    args = fill_sizes(ap.parse_args(argv))
    if args.server_times and not args.store.startswith("postgresql"):
        ap.error("--server-times needs a PostgreSQL store")
    cached, models = scale_store(args)
    users, _ = sample_ids(cached, args.calls + 200, np.random.default_rng(args.seed))
    store = open_store(args.store)
    try:
        rows = timed_feeds(store, models, users, END + 3600.0, 200, pause=args.pause_ms / 1e3,
                           server_times=args.server_times)
    finally:
        store.close()
    walls = np.array([r["wall_ms"] for r in rows])
    cpus = np.array([r["cpu_ms"] for r in rows])
    names = sorted({k for r in rows for k in r["parts_ms"]})
    medians = {k: round(statistics.median(r["parts_ms"].get(k, 0.0) for r in rows), 3) for k in names}
    spread = {k: {f"p{q}": round(float(np.percentile([r["parts_ms"][k] for r in rows if k in r["parts_ms"]], q)), 3)
                  for q in (50, 90, 99)}
              for k in names if k.startswith("server:") or k == "store:reader_version_and_reads"}
    summary = {"feeds": len(rows), "pause_ms": args.pause_ms,
               "wall_ms": {f"p{q}": round(float(np.percentile(walls, q)), 3) for q in (50, 90, 99)},
               "cpu_ms": {f"p{q}": round(float(np.percentile(cpus, q)), 3) for q in (50, 99)},
               "median_parts_ms": medians, "statement_ms": spread,
               "slowest": [{**r, "wall_ms": round(r["wall_ms"], 3), "cpu_ms": round(r["cpu_ms"], 3),
                            "parts_ms": {k: round(v, 3) for k, v in r["parts_ms"].items()}}
                           for r in sorted(rows, key=lambda r: -r["wall_ms"])[:args.slowest]]}
    print(f"feeds {summary['feeds']}: wall {summary['wall_ms']}, cpu {summary['cpu_ms']}")
    print("median of each part (ms):", medians)
    for k, v in spread.items():
        print(f"  {k}: {v} (feeds that made it)")
    for r in summary["slowest"]:
        print(f"{r['wall_ms']:6.2f} ms (cpu {r['cpu_ms']:.2f}) {r['user']}: "
              + ", ".join(f"{k} {v}" for k, v in r["parts_ms"].items() if v >= 0.1))
    if args.json:
        write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
