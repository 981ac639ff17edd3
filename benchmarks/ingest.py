"""Ingestion with durability on: events per second through the bulk importer and ``POST /v1/events``.

* Bulk: ``recommender.ingest.import_events`` (what ``newsrec ingest events FILE`` runs) on a
  JSON Lines file of new events, and ``Store.add_events`` on ready-made batches (the database
  part alone), into a copy of the scale store (10M events already there, so index inserts cost
  what they cost in production). ``synchronous=FULL``: every committed batch is on disk.
* HTTP: ``newsrec serve`` (gunicorn, 2 gthread workers) on loopback, ``wrk`` posting batches of
  new events at 16 connections; a 200 means the batch is committed. Events/s counts the rows
  that reached the database during the run, not the requests.

Usage::

    python benchmarks/ingest.py --articles 100000 --users 1000000 --json OUT
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import CACHE, add_scale_args, parse_scale_args, print_table, verdict, write_json  # noqa: E402

TARGETS = {"bulk_events_per_second": 20_000, "http_events_per_second": 2_000}
CONNECTIONS = 16
EVENT_TYPES = ("impression", "click", "read", "share")


def new_events(n: int, n_articles: int, n_users: int, rng: np.random.Generator, prefix: str,
               ts: float) -> list[dict]:
    """``n`` events of known readers on known articles, as the site would post them."""
    from benchmarks.synthetic_scale import user_id
    from recommender.domain import format_time

    users = rng.integers(0, n_users, n)
    arts = rng.integers(0, n_articles, n)
    kinds = rng.choice(4, size=n, p=[0.15, 0.40, 0.40, 0.05])
    stamp = format_time(ts)
    out = []
    for i in range(n):
        kind = EVENT_TYPES[int(kinds[i])]
        out.append({"event_id": f"{prefix}{i}", "user_id": user_id(int(users[i])), "article_id": f"a{int(arts[i]):07d}",
                    "event": kind, "ts": stamp, "dwell_seconds": 42.0 if kind == "read" else None})
    return out


def max_seq(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


def bulk(args: argparse.Namespace, db: Path, work: Path) -> dict:
    from benchmarks.synthetic_scale import END
    from recommender.domain import Interaction
    from recommender.datasets.ingest import EVENT_BATCH_SIZE, import_events
    from recommender.store import SQLiteStore

    rng = np.random.default_rng(args.seed)
    res: dict = {"events": args.bulk_events, "batch": EVENT_BATCH_SIZE}
    runs_import, runs_store = [], []
    for r in range(args.repeat):
        path = work / f"bulk{r}.jsonl"
        rows = new_events(args.bulk_events, args.articles, args.users, rng, f"bulk{r}-{os.getpid()}-", END + 600)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        store = SQLiteStore(db)
        before = max_seq(db)
        start = time.perf_counter()
        report = import_events(store, path, show_progress=False)
        elapsed = time.perf_counter() - start
        assert report.accepted == args.bulk_events, report.to_dict()
        assert max_seq(db) - before == args.bulk_events
        runs_import.append(args.bulk_events / elapsed)
        # the database part alone: validated Interaction batches of the importer's size and settings
        rows = new_events(args.bulk_events, args.articles, args.users, rng, f"store{r}-{os.getpid()}-", END + 700)
        events = [Interaction.from_dict(row) for row in rows]
        start = time.perf_counter()
        with store.bulk_load():
            for lo in range(0, len(events), EVENT_BATCH_SIZE):
                store.add_events(events[lo:lo + EVENT_BATCH_SIZE])
        runs_store.append(len(events) / (time.perf_counter() - start))
        store.close()
    res["import_events_per_second"] = round(statistics.median(runs_import))
    res["store_events_per_second"] = round(statistics.median(runs_store))
    res["runs"] = {"import": [round(x) for x in runs_import], "store": [round(x) for x in runs_store]}
    return res


WRK_POST = """
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local key = os.getenv("WRK_KEY")
local counter = 0
local threads = 2
setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
init = function(args) i = tid end
request = function()
  i = i + threads
  return wrk.format("POST", "/v1/events", {["X-API-Key"] = key, ["Content-Type"] = "application/json"},
                    bodies[(i % #bodies) + 1])
end
"""


def http(args: argparse.Namespace, db: Path, models: Path, work: Path) -> dict:
    from benchmarks.serving import free_port, parse_wrk, serve, stop, wait_ready
    from benchmarks.synthetic_scale import END
    from recommender.security import KEYS_FILE, KeyStore

    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (Debian: apt-get install wrk)"}
    home = work / "home"
    home.mkdir(exist_ok=True)
    key, _ = KeyStore(home / KEYS_FILE).add("site", name="benchmark")
    rng = np.random.default_rng(args.seed + 7)
    script = work / "post.lua"
    script.write_text(WRK_POST)
    port = free_port()
    server = serve(home, db, models, port, log=work / "server.log")
    res: dict = {"connections": CONNECTIONS, "seconds": args.http_seconds}
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        for batch in args.http_batch:
            runs = []
            for r in range(args.repeat):
                # new bodies every run, enough that wrk never repeats one (a repeat is a cheap duplicate)
                n_bodies = int(min(400_000 // batch, 4_000 * args.http_seconds))
                events = new_events(n_bodies * batch, args.articles, args.users, rng,
                                    f"http{batch}-{r}-{os.getpid()}-", END + 900)
                bodies = work / f"bodies-{batch}-{r}.txt"
                bodies.write_text("".join(json.dumps({"events": events[i:i + batch]}) + "\n"
                                          for i in range(0, len(events), batch)))
                env = dict(os.environ, WRK_BODIES=str(bodies), WRK_KEY=key)
                before = max_seq(db)
                start = time.perf_counter()
                out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{args.http_seconds:g}s", "--latency",
                                      "-s", str(script), f"http://127.0.0.1:{port}"], env=env, capture_output=True,
                                     text=True, check=True).stdout
                elapsed = time.perf_counter() - start
                stats = parse_wrk(out)
                stats["events_per_second"] = round((max_seq(db) - before) / elapsed)
                stats["bodies_exhausted"] = stats["rps"] * args.http_seconds > n_bodies
                runs.append(stats)
                bodies.unlink()
            res[f"batch_{batch}"] = {
                "events_per_second": statistics.median(r["events_per_second"] for r in runs),
                "requests_per_second": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "non_2xx": sum(r["non_2xx"] for r in runs), "runs": runs}
    finally:
        stop(server)
    return res


def show(res: dict) -> None:
    b, h = res["bulk"], res.get("http", {})
    rows = [["bulk importer (JSON Lines)", b["import_events_per_second"], "", ""],
            [f"Store.add_events, {b.get('batch', 5000):,} a batch", b["store_events_per_second"], "", ""]]
    for k in [k for k in h if k.startswith("batch_")]:
        rows.append([f"POST /v1/events, {k[6:]} a request", h[k]["events_per_second"], h[k]["p50_ms"], h[k]["p99_ms"]])
    print_table(f"Ingestion into a store of {res['size']['events']:,} events (synchronous=FULL)", rows,
                ["path", "events/s", "p50 ms", "p99 ms"])
    targets = [["bulk events/s", b["import_events_per_second"], TARGETS["bulk_events_per_second"],
                verdict(b["import_events_per_second"], TARGETS["bulk_events_per_second"], True)]]
    best = max((h[k]["events_per_second"] for k in h if k.startswith("batch_")), default=float("nan"))
    targets.append(["HTTP events/s (best batch)", best, TARGETS["http_events_per_second"],
                    verdict(best, TARGETS["http_events_per_second"], True)])
    print_table("Against the targets", targets, ["figure", "value", "target", ""])


def main(argv: list[str] | None = None) -> int:
    from benchmarks.serving import ensure_model

    ap = argparse.ArgumentParser(description="Events per second, bulk and over HTTP, with durability on.")
    add_scale_args(ap)
    ap.add_argument("--bulk-events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--http-seconds", type=float, default=10.0)
    ap.add_argument("--http-batch", type=lambda s: [int(x) for x in s.split(",")], default=[1, 20],
                    help="events per POST, comma separated (default 1,20)")
    ap.add_argument("--json", default=None)
    args = parse_scale_args(ap, argv)
    db, models = ensure_model(args)
    res: dict = {"benchmark": "ingest", "size": {"articles": args.articles, "users": args.users, "events": args.events}}
    with tempfile.TemporaryDirectory(prefix="newsrec-bench-ingest-", dir=CACHE) as tmp:
        work = Path(tmp)
        copy = work / "newsrec.sqlite3"
        shutil.copyfile(db, copy)
        res["bulk"] = bulk(args, copy, work)
        if not args.no_http:
            res["http"] = http(args, copy, models, work)
    res["targets"] = TARGETS
    show(res)
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
