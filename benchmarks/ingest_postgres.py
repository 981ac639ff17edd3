"""Bulk import into PostgreSQL: events per second through ``newsrec ingest events`` and the store alone.

* ``import``: ``recommender.datasets.ingest.import_events`` on a JSON Lines file of new events
  (what ``NEWSREC_DB=postgresql://... newsrec ingest events FILE`` runs: parse, validate, then
  ``add_events`` in batches of 50,000 inside ``store.bulk_load()``, i.e. binary COPY into a staging
  table and ``INSERT ... ON CONFLICT DO NOTHING``).
* ``store``: ``PostgresStore.add_events`` on ready-made batches of the importer's size (the database
  part alone: keys, COPY, insert, commit).
* ``reimport``: the same file imported again (every event a duplicate).

Each into a database of its own on the server (created, then dropped unless ``--keep``), with the
server's default durability (``synchronous_commit=on``: a committed batch is on disk).

Usage::

    python benchmarks/ingest_postgres.py --events 1000000 [--server postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

EVENT_TYPES = ("impression", "click", "read", "share")
T0 = 1_793_466_000.0  # 2026-11-01 00:00 WIB


def rows(n: int, n_articles: int, n_users: int, seed: int, prefix: str) -> list[dict]:
    """``n`` events spread over readers, articles and 30 days, as an export would hold them."""
    from recommender.domain import format_time

    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    arts = rng.integers(0, n_articles, n)
    kinds = rng.choice(4, size=n, p=[0.55, 0.25, 0.17, 0.03])
    ts = np.sort(rng.uniform(T0, T0 + 30 * 86400, n))
    return [{"event_id": f"{prefix}{i}", "user_id": f"u{int(users[i]):07d}", "article_id": f"a{int(arts[i]):06d}",
             "event": EVENT_TYPES[int(kinds[i])], "ts": format_time(float(ts[i])),
             "dwell_seconds": 35.0 if kinds[i] == 2 else None} for i in range(n)]


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
    args = ap.parse_args(argv)

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
    results: dict = {"events": args.events, "batch": EVENT_BATCH_SIZE, "server_version": server_version}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows(args.events, args.articles, args.users,
                                                                           args.seed, "imp-")))
            store = PostgresStore(url)
            start = time.perf_counter()
            report = import_events(store, path, show_progress=False)
            seconds = time.perf_counter() - start
            assert report.accepted == args.events, report.to_dict()
            results["import_events_per_second"] = round(args.events / seconds)
            results["import_seconds"] = round(seconds, 1)

            start = time.perf_counter()
            report = import_events(store, path, show_progress=False)
            seconds = time.perf_counter() - start
            assert report.duplicates == args.events, report.to_dict()
            results["reimport_events_per_second"] = round(args.events / seconds)

            events = [Interaction.from_dict(r) for r in rows(args.events, args.articles, args.users,
                                                             args.seed + 1, "store-")]
            start = time.perf_counter()
            with store.bulk_load():
                for lo in range(0, len(events), EVENT_BATCH_SIZE):
                    store.add_events(events[lo:lo + EVENT_BATCH_SIZE])
            seconds = time.perf_counter() - start
            results["store_events_per_second"] = round(len(events) / seconds)
            results["stored_events"] = store.stats()["events"]
            store.close()
    finally:
        if args.keep:
            print(f"kept {url}", file=sys.stderr)
        else:
            with psycopg.connect(args.server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for key, value in results.items():
        print(f"{key:28s} {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
