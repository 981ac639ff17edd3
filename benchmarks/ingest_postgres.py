"""Bulk import into PostgreSQL: events per second through ``newsrec ingest events`` and the store alone.

* ``import``: ``recommender.datasets.ingest.import_events`` on a JSON Lines file of new events
  (what ``NEWSREC_DB=postgresql://... newsrec ingest events FILE`` runs: parse and validate a batch
  of 50,000 and build its columns in a reader thread while the previous one is written by
  ``add_events(source="import")`` inside ``store.bulk_load()``: the reader and article keys the
  load has not seen yet looked up set-wise, the new events by one binary COPY straight into
  ``events``, the event keys already stored looked up once a batch has found one).
* ``store``: ``PostgresStore.add_events`` on ready-made batches of the importer's size (the database
  part alone: keys, COPY, commit).
* ``reimport``: the same file imported again (every event a duplicate).

Besides events per second (wall clock, which a loaded machine drags down), the CPU seconds per
event of this process and of the server's backends for the database (from ``/proc``, so only when
the server runs on this machine) are reported: those hardly move with the load.

Each into a database of its own on the server (created, then dropped unless ``--keep``), with the
server's default durability (``synchronous_commit=on``: a committed batch is on disk).

Usage::

    python benchmarks/ingest_postgres.py --events 1000000 [--server postgresql://postgres@127.0.0.1:5432/postgres]
    python benchmarks/ingest_postgres.py --events 10000000 --articles 100000 --users 1000000 --parts import,reimport
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

EVENT_TYPES = ("impression", "click", "read", "share")
T0 = 1_793_466_000.0  # 2026-11-01 00:00 WIB


def rows(n: int, n_articles: int, n_users: int, seed: int, prefix: str) -> Iterator[dict]:
    """``n`` events spread over readers, articles and 30 days, as an export would hold them (one
    at a time: 10M of them as dicts would take ~5 GB)."""
    from recommender.domain import format_time

    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    arts = rng.integers(0, n_articles, n)
    kinds = rng.choice(4, size=n, p=[0.55, 0.25, 0.17, 0.03])
    ts = np.sort(rng.uniform(T0, T0 + 30 * 86400, n))
    return ({"event_id": f"{prefix}{i}", "user_id": f"u{int(users[i]):07d}", "article_id": f"a{int(arts[i]):06d}",
             "event": EVENT_TYPES[int(kinds[i])], "ts": format_time(float(ts[i])),
             "dwell_seconds": 35.0 if kinds[i] == 2 else None} for i in range(n))


def server_cpu_seconds(server: str, dbname: str) -> float | None:
    """CPU seconds used so far by the server's backends connected to ``dbname`` (None when they are
    not processes of this machine)."""
    import os

    import psycopg

    with psycopg.connect(server, autocommit=True) as admin:
        pids = [r[0] for r in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                            (dbname,)).fetchall()]
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def timed(run, server: str, dbname: str) -> dict:
    """Wall seconds, this process's CPU seconds and the server backends' CPU seconds of ``run()``
    (the store's pool connections stay open between calls, so their counters cover it)."""
    server_before = server_cpu_seconds(server, dbname)
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_after = server_cpu_seconds(server, dbname)
    spent = None if server_before is None or server_after is None else server_after - server_before
    return {"wall": wall, "client_cpu": cpu, "server_cpu": spent}


def per_event(results: dict, what: str, n: int, t: dict) -> None:
    results[f"{what}_events_per_second"] = round(n / t["wall"])
    results[f"{what}_client_cpu_us_per_event"] = round(t["client_cpu"] / n * 1e6, 2)
    results[f"{what}_server_cpu_us_per_event"] = (None if t["server_cpu"] is None
                                                  else round(t["server_cpu"] / n * 1e6, 2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--articles", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="admin URL of the server (a database is created there for the run)")
    ap.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--parts", default="import,reimport,store",
                    help="which of import, reimport, store to run (reimport needs import; the store part "
                         "holds all its events in memory: ~0.6 KB each)")
    args = ap.parse_args(argv)
    steps = set(args.parts.split(","))
    if not steps <= {"import", "reimport", "store"} or ("reimport" in steps and "import" not in steps):
        ap.error("--parts: some of import, reimport, store (reimport only with import)")

    import psycopg

    from recommender.datasets.ingest import EVENT_BATCH_SIZE, import_events
    from recommender.domain import Interaction
    from recommender.store.postgres import PostgresStore

    name = f"newsrec_bench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(args.server)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        server_version = admin.info.server_version
    results: dict = {"events": args.events, "batch": EVENT_BATCH_SIZE, "server_version": server_version,
                     "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.jsonl"
            with open(path, "w", encoding="utf-8") as fh:  # (10M lines as one string would take ~3 GB)
                fh.writelines(json.dumps(r) + "\n" for r in rows(args.events, args.articles, args.users,
                                                                 args.seed, "imp-"))
            store = PostgresStore(url)
            n = args.events
            reports = []
            if "import" in steps:
                t = timed(lambda: reports.append(import_events(store, path, show_progress=False)), args.server, name)
                assert reports[-1].accepted == n, reports[-1].to_dict()
                per_event(results, "import", n, t)
            if "reimport" in steps:
                t = timed(lambda: reports.append(import_events(store, path, show_progress=False)), args.server, name)
                assert reports[-1].duplicates == n, reports[-1].to_dict()
                per_event(results, "reimport", n, t)
            if "store" in steps:
                events = [Interaction.from_dict(r) for r in rows(n, args.articles, args.users, args.seed + 1, "store-")]

                def store_part() -> None:
                    with store.bulk_load():
                        for lo in range(0, len(events), EVENT_BATCH_SIZE):
                            store.add_events(events[lo:lo + EVENT_BATCH_SIZE], source="import")

                per_event(results, "store", n, timed(store_part, args.server, name))
            results["stored_events"] = store.stats()["events"]
            store.close()
    finally:
        if args.keep:
            print(f"kept {url}", file=sys.stderr)
        else:
            with psycopg.connect(args.server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    for key, value in results.items():
        print(f"{key:34s} {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
