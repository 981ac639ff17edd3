"""``newsrec evaluate``: offline figures on a time split of the store.

``evaluate`` trains newsrec on the events before the cut (with the parameters ``newsrec
train`` would use), runs the baselines beside it and writes ``report.json``, ``report.md``
and plots. ``newsrec tune`` (``training/tune.py``) shares its split arguments.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from recommender.config import Settings
from recommender.domain import ValidationError, format_time, parse_time

from .cli import command, no_store


def _split_args(p: argparse.ArgumentParser) -> None:
    when = p.add_mutually_exclusive_group()
    when.add_argument("--test-days", type=float, default=1.0,
                      help="test on the last N days of events, from local midnight (default 1)")
    when.add_argument("--cut", default=None, help="test on events at or after this ISO time instead")
    p.add_argument("--config", type=Path, default=None,
                   help="training parameters (JSON); default: what `newsrec train` uses (tuned config or defaults)")
    p.add_argument("--seed", type=int, default=0, help="random seed (training, baselines, tie-breaks)")
    p.add_argument("--max-queries", type=int, default=None,
                   help="score a seeded sample of at most N test queries (faster, noisier)")


def _cut(args: argparse.Namespace, store) -> float:
    from recommender.evaluation.protocols import choose_cut

    cut = parse_time(args.cut, "--cut") if args.cut else None
    if args.test_days is not None and not args.test_days > 0:
        raise ValidationError("--test-days must be > 0")
    return choose_cut(store, args.test_days, cut)


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    from recommender.evaluation.baselines import BASELINES
    from recommender.evaluation.protocols import PROTOCOLS

    p.add_argument("--protocol", action="append", choices=PROTOCOLS, default=None,
                   help="impressions (batch), replay (online, as served), topk or related; repeat for several "
                        "(default: impressions and replay when the store has impressions, else topk)")
    _split_args(p)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default NEWSREC_HOME/reports/<timestamp>/, where the console shows the newest)")
    p.add_argument("--baselines", default=None,
                   help=f"comma-separated subset of {','.join(BASELINES)} (default: all that apply)")
    p.add_argument("--no-ablations", action="store_true", help="leave out the newsrec-no-<part> rows")
    p.add_argument("--no-plots", action="store_true", help="write report.json and report.md only")
    p.add_argument("--name", default="store", help="dataset name in report.json (default 'store')")
    p.add_argument("--json", action="store_true", help="print report.json to stdout")


@command("evaluate", "evaluate newsrec against baselines on a time split of the store; writes a report with plots")(
    _evaluate_args)
def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.evaluation.protocols import Evaluation
    from recommender.models.fitting import TrainingError
    from recommender.store import open_store

    from .report import new_report, write_report
    from .train import load_params

    if no_store(settings):
        return 2
    store = open_store(settings.db)
    try:
        params, source = load_params(settings, args.config)
        cut = _cut(args, store)
    except (ValueError, OSError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    baselines = None
    if args.baselines:
        baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    out = args.out or settings.home / "reports" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    show = sys.stderr.isatty() and not args.json
    report = new_report("newsrec " + " ".join(sys.argv[1:]), store=settings.db_label, parameters_from=source,
                        cut=format_time(cut))
    try:
        with Evaluation(store, cut, variants={"newsrec": params}, baselines=baselines, seed=args.seed,
                        show_progress=show, ablations=not args.no_ablations) as ev:
            if show:
                print(f"training newsrec on events before {format_time(cut)} (parameters: {source}) ...",
                      file=sys.stderr)
            ev.prepare()
            report["data_fingerprint"] = evaluation_fingerprint(store, ev, cut)
            protocols = args.protocol or (["impressions", "replay"] if ev.queries("impressions") else ["topk"])
            for protocol in protocols:
                name = args.name if len(protocols) == 1 else f"{args.name}-{protocol}"
                entry = ev.run(protocol, max_queries=args.max_queries)
                if entry["n_test"] == 0:
                    entry.setdefault("notes", []).append(
                        f"no {protocol} query in the test period: nothing to rank (impressions need logged "
                        "impressions with clicks; related needs co-reading)")
                report["datasets"][name] = entry
    except (ValueError, TrainingError) as exc:  # e.g. nothing to train on before the cut
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = write_report(report, out, plots=not args.no_plots)
    if args.json:
        print((out / "report.json").read_text(encoding="utf-8"))
    else:
        _print_summary(report)
        print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def evaluation_fingerprint(store, ev, cut: float) -> str:
    """The data an evaluation saw: what each configuration trained on before the cut (their bundle
    fingerprints) and the store's newest event, which bounds the test period."""
    from recommender.models.provenance import fingerprint

    trained = {name: model.manifest.get("data_fingerprint") for name, model in ev.models_.items()}
    return fingerprint({"trained": trained, "cut": cut, "event_seq": store.log_position()[1]})


def _print_summary(report: dict) -> None:
    for name, entry in report["datasets"].items():
        print(f"{name}: protocol {entry['protocol']}, {entry['n_test']} test queries")
        for note in entry.get("notes", ()):  # e.g. why there is nothing to rank
            print(f"  note: {note}")
        headline = [m for m in ("auc", "mrr", "ndcg@10", "recall@10") if any(
            m in v for v in entry["models"].values())]
        for model, values in entry["models"].items():
            cells = "  ".join(f"{m} {values[m]:.4f}" if values.get(m) is not None else f"{m} –" for m in headline)
            print(f"  {model:24s} {cells}")
