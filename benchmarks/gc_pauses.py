"""Pauses of Python's cycle collector in a serving worker whose feed cache fills.

A full collection stops every thread of the worker; it walks every object the collector tracks,
and it runs each time the objects that survived grew by a quarter. One engine on the scale store
(as ``portal.py`` builds it), then ``--feeds`` first pages for distinct readers (the feed cache
keeps each, up to its 20,000), every full collection during them timed (``gc.callbacks``).
Afterwards, in the same process, one full collection timed (median of 3) with the cache as it is
(pages as tuples of plain values, ``results.pack_items``) and with the same pages held as
``RankedItem`` objects as well (what the cache held before). Two processes: one as a plain
engine, one that froze what it had loaded first (``gc.freeze``, as each gunicorn worker does in
``post_worker_init``).

Usage::

    python benchmarks/gc_pauses.py [--events 1000000] [--feeds 20000] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import print_table, write_json  # noqa: E402


def full_collection_ms(repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def one_process(args) -> dict:
    """The measurements of one engine (run in a child process: ``--child freeze|plain``)."""
    from threadpoolctl import threadpool_limits

    from benchmarks.portal import scale_store
    from benchmarks.synthetic_scale import END
    from recommender.serving.engine import Engine, EngineConfig
    from recommender.serving.results import unpack_items
    from recommender.store import SQLiteStore

    threadpool_limits(1)
    db, models = scale_store(args)
    store = SQLiteStore(db)
    engine = Engine(store, models, EngineConfig(log_impressions=False), clock=lambda: END + 3600.0)
    engine.refresh()
    out = {"loaded_objects": len(gc.get_objects()), "loaded_full_collection_ms": round(full_collection_ms(), 2)}
    if args.child == "freeze":
        gc.freeze()
    pauses: list[float] = []
    started = [0.0]

    def timed(phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(timed)
    begin = time.perf_counter()
    for i in range(args.feeds):
        engine.feed(f"u{(i * 7919) % args.users:07d}", limit=20)
    seconds = time.perf_counter() - begin
    gc.callbacks.remove(timed)
    cache = engine._state.feed_cache
    out.update(feeds=args.feeds, feeds_per_second=round(args.feeds / seconds, 1), cached_pages=len(cache) - 1,
               full_collections_while_serving=len(pauses),
               pause_ms=[round(p, 1) for p in pauses],
               pause_max_ms=round(max(pauses), 1) if pauses else 0.0,
               tracked_objects=len(gc.get_objects()),
               full_collection_ms=round(full_collection_ms(), 2))
    # the same pages as item objects, beside the cache: what a full collection walked before
    as_objects = [unpack_items(entry[4][0]) for key, entry in cache.items() if key is not None]
    out["with_item_objects_tracked_objects"] = len(gc.get_objects())
    out["with_item_objects_full_collection_ms"] = round(full_collection_ms(), 2)
    del as_objects
    engine.close()
    store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks.portal import add_size_args, fill_sizes

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_args(ap, 1_000_000)
    ap.add_argument("--feeds", type=int, default=20_000, help="first pages for distinct readers")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", choices=("plain", "freeze"), default=None, help=argparse.SUPPRESS)
    args = fill_sizes(ap.parse_args(argv))
    if args.child:
        print(json.dumps(one_process(args)))
        return 0
    own = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--json")]
    if args.json is not None and str(args.json) in own:
        own.remove(str(args.json))
    results = {"events": args.events, "articles": args.articles, "readers": args.users, "feeds": args.feeds}
    for mode in ("plain", "freeze"):
        print(f"{mode} ...", flush=True)
        done = subprocess.run([sys.executable, __file__, *own, "--child", mode], check=True, capture_output=True,
                              text=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for mode, label in (("plain", "as loaded"), ("freeze", "loaded objects frozen")):
        r = results[mode]
        rows.append((label, r["full_collections_while_serving"], r["pause_max_ms"], r["tracked_objects"],
                     r["full_collection_ms"], r["with_item_objects_tracked_objects"],
                     r["with_item_objects_full_collection_ms"]))
    print_table(f"cycle collector, {args.feeds:,} feeds at {args.events:,} events "
                f"({results['plain']['cached_pages']:,} pages cached); full collection at the end, median of 3",
                rows, ("engine", "full collections while serving", "max pause (ms)", "tracked objects",
                       "full collection (ms)", "tracked with item objects", "full collection with item objects (ms)"))
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
