"""``newsrec store prune``: change-log retention.

The change log (``Store.changes_after``) grows with every write and nothing else removes rows. Two
kinds of reader need old rows:

* serving workers follow it from their cursor, at most a poll behind the newest change: the
  ``--keep-days`` floor (rows written in the last N days are kept) covers them, and a worker
  stopped for longer starts again from a bundle, not from its old cursor;
* a worker loading a bundle catches up from the bundle's ``change_pos`` (edits and takedowns since
  the model was fitted). Any bundle in the models folder may be promoted or rolled back to, so
  nothing after the *oldest* bundle's ``change_pos`` is pruned.

The store itself always keeps the newest change of each kind (see ``Store.prune_changes``).

The same command bounds the learned stage's feature log (``Store.prune_feature_logs``): rows of
lists served more than ``--feature-log-days`` ago (default 30) are deleted. Training from the log
(``newsrec train --learned-days N``) reads the last N days, so keep N or more.

``--dry-run`` prints the same report, counted and not deleted (``Store.count_prunable``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

from recommender.config import Settings
from recommender.models.bundle import MANIFEST, list_versions
from recommender.store import Store, open_store

from .cli import _print_json, command

log = logging.getLogger(__name__)

DAY = 86_400.0
FEATURE_LOG_DAYS = 30.0  # default retention of the feature log


def bundle_positions(models_dir: str | Path) -> dict[str, int]:
    """``change_pos`` of every bundle in ``models_dir`` that records one (older bundles do not:
    they catch up from the log position at load time and need no old change)."""
    positions = {}
    for row in list_versions(models_dir):
        try:
            manifest = json.loads((Path(models_dir) / row["version"] / MANIFEST).read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and isinstance(manifest.get("change_pos"), int):
            positions[row["version"]] = manifest["change_pos"]
    return positions


def prune_plan(store: Store, models_dir: str | Path, keep_days: float, now: float | None = None,
               feature_log_days: float = FEATURE_LOG_DAYS) -> dict:
    """What :func:`prune` deletes: changes before ``before_pos`` (the oldest bundle's position + 1,
    or past the newest change when there is no bundle) and older than ``older_than``, and feature
    rows served before ``feature_log_older_than``."""
    now = time.time() if now is None else now
    positions = bundle_positions(models_dir)
    newest = store.log_position()[0]
    before = min(positions.values()) + 1 if positions else newest + 1
    return {"before_pos": int(min(before, newest + 1)), "older_than": now - keep_days * DAY,
            "log_position": newest, "bundles": positions,
            "feature_log_older_than": now - feature_log_days * DAY}


def prune(store: Store, models_dir: str | Path, keep_days: float, now: float | None = None,
          feature_log_days: float = FEATURE_LOG_DAYS) -> dict:
    """Delete the changes no follower and no bundle's catch-up can need, and feature rows older
    than ``feature_log_days``; returns the plan and how many rows went of each."""
    if not keep_days > 0:
        raise ValueError(f"keep_days must be positive, got {keep_days!r}")
    if not feature_log_days > 0:
        raise ValueError(f"feature_log_days must be positive, got {feature_log_days!r}")
    plan = prune_plan(store, models_dir, keep_days, now, feature_log_days)
    plan["deleted"] = store.prune_changes(plan["before_pos"], plan["older_than"])
    plan["feature_log_deleted"] = store.prune_feature_logs(plan["feature_log_older_than"])
    plan["dry_run"] = False
    return plan


def dry_run(store: Store, models_dir: str | Path, keep_days: float, now: float | None = None,
            feature_log_days: float = FEATURE_LOG_DAYS) -> dict:
    """:func:`prune`'s report without deleting anything: the plan and how many rows of each it
    would delete now (``deleted``, ``feature_log_deleted``: the same keys, counted by the store
    with the conditions its prunes delete by)."""
    plan = prune_plan(store, models_dir, keep_days, now, feature_log_days)
    plan["deleted"], plan["feature_log_deleted"] = store.count_prunable(
        plan["before_pos"], plan["older_than"], plan["feature_log_older_than"])
    plan["dry_run"] = True
    return plan


def _store_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    pr = sub.add_parser("prune", help="delete change-log rows older than --keep-days that no bundle's catch-up needs")
    pr.add_argument("--keep-days", type=float, default=7.0,
                    help="keep every change written in the last N days (default 7; at least 0.01)")
    pr.add_argument("--feature-log-days", type=float, default=FEATURE_LOG_DAYS,
                    help=f"keep the learned stage's feature log of the last N days (default {FEATURE_LOG_DAYS:g}; "
                         "at least 1; 'newsrec train --learned-days' reads that many)")
    pr.add_argument("--dry-run", action="store_true",
                    help="print the plan and how many rows it would delete (deleted, feature_log_deleted), "
                         "delete nothing")


@command("store", "store maintenance: prune --keep-days N [--feature-log-days M] (change-log and feature-log retention)")(_store_args)
def run_store(args: argparse.Namespace, settings: Settings) -> int:
    # infinite days ("inf", "1e309") would print -Infinity, which is not JSON: refused as nan is
    if not (args.keep_days >= 0.01 and math.isfinite(args.keep_days)):
        print("error: --keep-days must be a finite number of at least 0.01 "
              "(workers follow the log from where they are)", file=sys.stderr)
        return 2
    if not (args.feature_log_days >= 1 and math.isfinite(args.feature_log_days)):
        print("error: --feature-log-days must be a finite number of at least 1", file=sys.stderr)
        return 2
    store = open_store(settings.ensure_dirs().db)
    if args.dry_run:
        _print_json(dry_run(store, settings.models_dir, args.keep_days, feature_log_days=args.feature_log_days))
        return 0
    _print_json(prune(store, settings.models_dir, args.keep_days, feature_log_days=args.feature_log_days))
    return 0
