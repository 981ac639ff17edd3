"""``newsrec models``: list, verify, promote and roll back model versions.

Which version is live is kept in the database (``recommender.models.versions``): a promotion or
rollback here reaches every worker of every replica within seconds. Exit codes: 0 done, 1
refused (missing or damaged bundle, a rollback to a newer version), 3 the live version changed
meanwhile (compare-and-set: nothing was changed; look again and retry).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from recommender.config import Settings
from recommender.models.bundle import BundleError, verify_bundle
from recommender.models.versions import (UNSET, PromotionConflict, describe, gone_versions, live_version,
                                         plugin_import_problem, plugin_problems, previous_version, promote, rollback)
from recommender.store import open_store

from .cli import command

CONFLICT = 3


def _expect(value: str) -> str | None:
    return None if value == "none" else value


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="versions in the models folder, oldest first: live, staged or retired; "
                                          "size in MB (1,000,000 bytes); ok, DAMAGED or NOT LOADABLE HERE "
                                          "(a plugin that cannot be imported on this host)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    verify = sub.add_parser("verify", help="check sizes and checksums; exit 1 if damaged")
    verify.add_argument("version", nargs="?", default=None, help="default: the live version")
    for name, what in (("promote", "make VERSION live on every replica (it is verified first)"),
                       ("rollback", "make an older VERSION live again (it is verified first); without VERSION, "
                                    "the older version that was live most recently")):
        action = sub.add_parser(name, help=what)
        if name == "rollback":
            action.add_argument("version", nargs="?", default=None)
        else:
            action.add_argument("version")
        action.add_argument("--expect", type=_expect, default=UNSET, metavar="VERSION",
                            help="only if VERSION (or 'none') is live now; default: the live version as read "
                                 "just before, so only a promotion at the same moment conflicts (exit 3)")


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@command("models", "list, verify, promote or roll back model versions")(_args)
def run_models(args: argparse.Namespace, settings: Settings) -> int:
    models = settings.models_dir
    store = open_store(settings.ensure_dirs().db)
    try:
        if args.action == "list":
            versions = describe(store, models)
            for v in versions:  # what 'models verify' would say of its plugins (without hashing files)
                v["plugin_problem"] = plugin_import_problem(models, v["version"]) if v["valid"] else None
            if args.json:
                print(json.dumps(versions, indent=2))
                return 0
            if not versions:
                print(f"no models in {models}: run newsrec train")
            for v in versions:
                mark = "*" if v["live"] else " "
                state = (f"DAMAGED: {v.get('problem')}" if not v["valid"] else
                         f"NOT LOADABLE HERE: {v['plugin_problem']}" if v["plugin_problem"] else "ok")
                print(f"{mark} {v['version']}  {v['status']:7s}  created {v['created_at'] or '-'}  "
                      f"last live {_when(v['promoted_at'])}  {v['total_bytes'] / 1e6:8.1f} MB  {state}")
            return 0
        if args.action == "verify":
            version = args.version or live_version(store, models)
            if version is None:
                print(f"error: no model version is live (models in {models})", file=sys.stderr)
                return 1
            problems = verify_bundle(models, version)
            problems = problems or plugin_problems(models, version)  # its plugins import and restore here
            print(json.dumps({"version": version, "ok": not problems, "problems": problems}, indent=2))
            return 1 if problems else 0
        if args.version is None:  # a rollback: to the older version live most recently
            if args.expect is UNSET:  # the live version it was chosen against, or nothing changes (exit 3)
                args.expect = live_version(store, models)
            if args.expect is None:
                print("error: no model version is live: nothing to roll back (newsrec models promote VERSION)",
                      file=sys.stderr)
                return 1
            args.version = previous_version(store, models, args.expect)
            if args.version is None:
                gone = gone_versions(store, models, args.expect)
                if gone:  # not "never live": a later training's pruning removed them
                    print(f"error: {', '.join(gone)} {'was' if len(gone) == 1 else 'were'} live before but "
                          f"{'is' if len(gone) == 1 else 'are'} no longer in the models folder (newsrec train keeps "
                          "the newest versions, --keep N, default 5, the live one and the one a rollback goes back "
                          "to; another was deleted by hand); name the VERSION to roll back to (newsrec models list)", file=sys.stderr)
                    return 1
                print("error: no version older than the live one was ever live; name the VERSION to roll back to "
                      "(newsrec models list)", file=sys.stderr)
                return 1
        step = promote if args.action == "promote" else rollback
        previous = step(store, models, args.version, expected=args.expect)
        if previous == args.version:
            print(f"{args.version} is already live")
        else:
            print(f"{args.version} is live (was {previous or 'none'}); every replica serves it within seconds")
        return 0
    except PromotionConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return CONFLICT
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
