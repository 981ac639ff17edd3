"""``newsrec models``: list, verify and roll back published bundles."""

from __future__ import annotations

import argparse
import json
import sys

from recommender.config import Settings
from recommender.models.bundle import BundleError, list_versions, read_current, set_current, verify_bundle

from .cli import command


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="published versions, newest last, with the current one marked")
    listing.add_argument("--json", action="store_true", help="print JSON")
    verify = sub.add_parser("verify", help="check sizes and checksums; exit 1 if damaged")
    verify.add_argument("version", nargs="?", default=None, help="default: the current version")
    rollback = sub.add_parser("rollback", help="make VERSION current (it is verified first)")
    rollback.add_argument("version")


@command("models", "list, verify or roll back published model versions")(_args)
def run_models(args: argparse.Namespace, settings: Settings) -> int:
    models = settings.models_dir
    try:
        if args.action == "list":
            versions = list_versions(models) if models.exists() else []
            if getattr(args, "json", False):
                print(json.dumps(versions, indent=2))
            elif not versions:
                print(f"no models in {models}: run newsrec train")
            for v in versions if not getattr(args, "json", False) else []:
                mark = "*" if v["current"] else " "
                state = "ok" if v["valid"] else f"DAMAGED: {v.get('problem')}"
                print(f"{mark} {v['version']}  {v['created_at']}  {v['total_bytes'] / 1e6:8.1f} MB  {state}")
            return 0
        if args.action == "verify":
            version = args.version or read_current(models)
            if version is None:
                print(f"error: no current model in {models}", file=sys.stderr)
                return 1
            problems = verify_bundle(models, version)
            print(json.dumps({"version": version, "ok": not problems, "problems": problems}, indent=2))
            return 1 if problems else 0
        set_current(models, args.version)
        print(f"current model is now {args.version}; running services pick it up within seconds")
        return 0
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
