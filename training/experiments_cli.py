"""``newsrec experiments``: create, list, stop and report A/B and interleaving experiments.

Exit codes: 0 done, 1 not found, 2 bad input, 3 conflict (the name is taken, a running experiment
already covers those lists, or it was stopped already).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from recommender.config import Settings
from recommender.domain import ValidationError, parse_time
from recommender.experiments import registry
from recommender.store import open_store

from .cli import command

NOT_FOUND, BAD_INPUT, CONFLICT = 1, 2, 3


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="start an experiment on live traffic (every worker picks it up at once)")
    create.add_argument("name")
    create.add_argument("--variant", action="append", required=True, metavar="LABEL=MODEL_VERSION",
                        help="a variant (give 2 or more; the first is the control)")
    create.add_argument("--params", action="append", default=[], metavar="LABEL=FILE.json",
                        help="ranking parameters of a variant (RankingParams fields, as 'newsrec tune' writes), "
                             "overriding its bundle's; the file name is the parameter set's name")
    create.add_argument("--share", default=None, help="percent of readers per variant, e.g. 50,50 (default equal)")
    create.add_argument("--lists", default="feed,related", help="list types covered: feed, related or both")
    create.add_argument("--mode", choices=["ab", "interleave"], default="ab",
                        help="ab: each reader sees one variant; interleave: one list team-drafted from two")
    create.add_argument("--starts-at", default=None, help="ISO time to start (default now)")
    create.add_argument("--ends-at", default=None, help="ISO time to end (default: until stopped)")
    listing = sub.add_parser("list", help="every experiment and its status: scheduled, running, ended or stopped")
    listing.add_argument("--json", action="store_true", help="print JSON")
    stop = sub.add_parser("stop", help="stop an experiment: its readers get the normal lists again")
    stop.add_argument("name")
    report = sub.add_parser("report", help="lists, clicks, CTR with 95 %% intervals, by position, difference, "
                                           "sample-ratio check, interleaving wins")
    report.add_argument("name")
    report.add_argument("--json", action="store_true", help="print JSON")


def _definition(args: argparse.Namespace) -> dict:
    variants, labels = [], []
    for spec in args.variant:
        label, sep, version = spec.partition("=")
        if not sep or not label or not version:
            raise ValidationError(f"--variant takes LABEL=MODEL_VERSION; got {spec!r}")
        variants.append({"label": label, "model_version": version})
        labels.append(label)
    for spec in args.params:
        label, sep, path = spec.partition("=")
        if not sep or label not in labels:
            raise ValidationError(f"--params takes LABEL=FILE.json for a LABEL given with --variant; got {spec!r}")
        try:
            params = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValidationError(f"--params {spec}: cannot read a JSON object: {exc}") from None
        if isinstance(params, dict) and isinstance(params.get("ranking"), dict):
            params = params["ranking"]  # a 'newsrec tune' output file
        variants[labels.index(label)].update(params=params, params_name=Path(path).stem[:100] or None)
    out: dict = {"name": args.name, "variants": variants, "mode": args.mode,
                 "lists": [x.strip() for x in args.lists.split(",") if x.strip()]}
    if args.share:
        try:
            out["shares"] = [int(x) for x in args.share.split(",")]
        except ValueError:
            raise ValidationError(f"--share takes whole percentages like 50,50; got {args.share!r}") from None
    for name in ("starts_at", "ends_at"):
        value = getattr(args, name)
        if value is not None:
            out[name] = parse_time(value, name.replace("_", "-"))
    return out


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_report(report: dict) -> None:
    print(f"experiment {report['experiment']} ({report['mode']}, {report['status']}), control {report['control']}")
    print(f"{'variant':12s} {'lists':>8s} {'impr.':>9s} {'clicks':>8s} {'ctr':>8s}  95 % interval")
    for label, v in report["variants"].items():
        ctr = "-" if v["ctr"] is None else f"{v['ctr']:.4f}"
        lo, hi = v["ctr_ci"]
        ci = "-" if lo is None else f"[{lo:.4f}, {hi:.4f}]"
        print(f"{label:12s} {v['lists']:8d} {v['impressions']:9d} {v['clicks']:8d} {ctr:>8s}  {ci}")
    for label, d in report["differences"].items():
        lo, hi = d["ci"]
        ci = "-" if lo is None else f"[{lo:+.4f}, {hi:+.4f}]"
        diff = "-" if d["difference"] is None else f"{d['difference']:+.4f}"
        verdict = "differs" if d["excludes_zero"] else "no difference shown"
        print(f"{label} - {report['control']}: {diff} {ci} ({verdict})")
    if "wins" in report:
        w = report["wins"]
        print(f"interleaving wins: {json.dumps(w)}")
    if report["srm_p"] is None:
        print("sample-ratio check: not enough traffic yet")
    else:
        print(f"sample-ratio mismatch p = {report['srm_p']}")
    print("ctr by position (position:clicks/shown):")
    for label, v in report["variants"].items():
        cells = " ".join(f"{p['position']}:{p['clicks']}/{p['shown']}" for p in v["by_position"][:10])
        print(f"  {label:10s} {cells}")


@command("experiments", "create, list, stop or report A/B and interleaving experiments")(_args)
def run_experiments(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.ensure_dirs().db)
    try:
        if args.action == "create":
            experiment = registry.create(store, settings.models_dir, _definition(args))
            print(json.dumps(experiment.described(time.time()), indent=2, ensure_ascii=False))
        elif args.action == "list":
            experiments, now = registry.load_all(store), time.time()
            if args.json:
                print(json.dumps([e.described(now) for e in experiments], indent=2, ensure_ascii=False))
                return 0
            if not experiments:
                print("no experiments: create one with 'newsrec experiments create NAME --variant A=V1 --variant B=V2'")
            for e in experiments:
                status = e.status(now)
                at = {"scheduled": e.starts_at, "running": e.ends_at, "ended": e.ends_at,
                      "stopped": e.stopped_at}[status]
                if at is not None:  # when it starts, ends, ended or was stopped
                    status += f"{' until' if status == 'running' else ''} {_when(at)}"
                arms = ", ".join(f"{v.label}={v.model_version} ({s} %)" for v, s in zip(e.variants, e.shares))
                print(f"{e.name:20s} {e.mode:10s} {','.join(e.lists):13s} {status:34s} {arms}")
        elif args.action == "stop":
            experiment = registry.stop(store, args.name)
            print(f"stopped {experiment.name} at {_when(experiment.stopped_at)}")
        else:
            report = registry.report(store, args.name)
            if args.json:
                print(json.dumps(report, indent=2, ensure_ascii=False))
            else:
                _print_report(report)
        return 0
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except registry.ExperimentNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return NOT_FOUND
    except registry.ExperimentConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return CONFLICT
    finally:
        store.close()
