"""``newsrec migrate-store``: copy a whole store to another backend (SQLite -> PostgreSQL, or any
backend to any other).

Everything is copied as stored: article and reader keys, events with their sequence numbers and
idempotency keys, served lists, preferences, forget tombstones (with the salt that hashes them),
the change log with its positions, which model version is live and the API keys. Counters on the
target continue past the source's. So a bundle trained on the source (its manifest names a log
position and an event sequence number) catches up on the target exactly as it would have on the
source: no retrain or promotion is needed, only the same models folder.

Stop every writer of the source first (``newsrec serve``, imports): what is written during the copy
may be missed. The target must be empty unless ``--force``, which deletes what it holds first.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from recommender.config import Settings, split_db_location
from recommender.store import Store, StoreError, open_store
from recommender.store.base import PORTABLE_TABLES

from .cli import _print_json, command

log = logging.getLogger(__name__)


class TargetNotEmpty(StoreError):
    """The target store holds data and ``force`` was not given."""


def migrate_store(source: Store, target: Store, force: bool = False, batch: int = 50_000,
                  show_progress: bool = False) -> dict:
    """Copy every row of ``source`` into ``target``; returns rows copied per table and seconds.

    Raises :class:`TargetNotEmpty` when ``target`` holds data and ``force`` is False.
    """
    if not target.is_empty():
        if not force:
            raise TargetNotEmpty("the target store holds data already; give --force to delete it first "
                                 "(everything in it is lost)")
        log.warning("deleting everything the target store holds (--force)")
        target.clear()
    state = source.copy_state()
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for table in PORTABLE_TABLES:
        started = time.perf_counter()
        n = 0
        for rows in source.export_rows(table, batch=batch):
            n += target.import_rows(table, rows)
            if show_progress:
                print(f"\r{table}: {n:,} rows", end="", file=sys.stderr, flush=True)
        if show_progress:
            print(f"\r{table}: {n:,} rows", file=sys.stderr)
        counts[table] = n
        seconds[table] = round(time.perf_counter() - started, 3)
    target.finish_import(state)
    return {"rows": counts, "seconds": seconds}


def comparable_stats(store: Store) -> dict:
    """What both stores must agree on after a copy (``stats`` minus where the database is)."""
    stats = store.stats()
    return {k: v for k, v in stats.items() if k not in ("database", "schema_version")}


def _migrate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", required=True, dest="target",
                   help="the target store: postgresql://user@host:5432/dbname (or a SQLite path)")
    p.add_argument("--from", default=None, dest="source",
                   help="the source store (default NEWSREC_DB, i.e. $NEWSREC_HOME/newsrec.sqlite3)")
    p.add_argument("--force", action="store_true", help="delete what the target holds first (refused otherwise)")
    p.add_argument("--batch", type=int, default=50_000, help="rows per COPY / transaction (default 50000)")


@command("migrate-store", "copy the whole store (e.g. SQLite) to another backend (e.g. PostgreSQL): "
                          "migrate-store --to postgresql://... [--from PATH_OR_URL] [--force]")(_migrate_args)
def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    source_location = args.source or settings.db
    try:
        named = [split_db_location(x) for x in (args.target, source_location)]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.batch < 1:
        print("error: --batch must be at least 1", file=sys.stderr)
        return 2
    if len({(url, path.resolve() if path else None) for url, path in named}) == 1:
        print("error: --to and --from name the same store", file=sys.stderr)
        return 2
    source_path = named[1][1]
    if source_path is not None and not source_path.is_file():  # opening it would create an empty store to copy
        print(f"error: there is no store at {source_path} to copy from "
              f"({'--from' if args.source else 'NEWSREC_DB'} names it)", file=sys.stderr)
        return 2
    source = open_store(source_location)
    target = open_store(args.target)
    try:
        report = migrate_store(source, target, force=args.force, batch=args.batch, show_progress=sys.stderr.isatty())
    except TargetNotEmpty as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    source_stats, target_stats = comparable_stats(source), comparable_stats(target)
    report["source"] = source_stats
    report["target"] = target_stats
    report["same_counts"] = source_stats == target_stats
    _print_json(report)
    if not report["same_counts"]:
        print("error: the target's counts differ from the source's (was something written during the copy?)",
              file=sys.stderr)
        return 1
    print("copied; point NEWSREC_DB at the target on every host (the models folder stays as it is)",
          file=sys.stderr)
    return 0
