"""``newsrec train``: fit every model on the store and write a bundle as a staged version
(``--promote``: and make it live, unless the live version changed while training)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recommender.config import Settings
from recommender.domain import ValidationError, format_time, parse_time
from recommender.experiments.registry import versions_in_use
from recommender.models.fitting import TrainingError, train
from recommender.models.versions import PromotionConflict
from recommender.params import TrainParams
from recommender.store import open_store

from .cli import command

TUNED_CONFIG = "config/train.json"


def load_params(settings: Settings, path: Path | None) -> tuple[TrainParams, str]:
    """Explicit --config, else the one ``newsrec tune`` wrote, else the defaults."""
    if path is not None:
        return TrainParams.load(path), str(path)
    tuned = settings.home / TUNED_CONFIG
    if tuned.exists():
        return TrainParams.load(tuned), str(tuned)
    return TrainParams(), "defaults"


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None,
                   help=f"training parameters (JSON); default NEWSREC_HOME/{TUNED_CONFIG} if present")
    p.add_argument("--as-of", default=None, help="train on data before this ISO time (default: now)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same data + seed = same model)")
    p.add_argument("--keep", type=int, default=5, help="model versions to keep (default 5; the live one is always kept)")
    p.add_argument("--promote", action="store_true",
                   help="make the new version live at once (every replica serves it within seconds), unless another "
                        "version was made live while training (exit 3, the new one stays staged); without it the "
                        "version is staged: 'newsrec models promote VERSION' makes it live")
    p.add_argument("--factors", type=int, default=None, help="override CF factors")
    p.add_argument("--iterations", type=int, default=None, help="override CF iterations")
    p.add_argument("--method", choices=["als", "bpr"], default=None, help="override the CF method")
    p.add_argument("--learned-days", type=float, default=None,
                   help="also fit the learned ranking stage on the lists of this many days before the training "
                        "time (their logged feature vectors where serving logged them, else replayed through the "
                        "engine), choose the ranker on the last day, and put it in the bundle only if it beats the "
                        "hand-set blend there")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def fit_learned_stage(store, params: TrainParams, as_of: float | None, days: float, seed: int, show: bool):
    """(ranker or None, report): the learned stage fitted on the replayed ``days`` before ``as_of``,
    None (blend kept) unless it beats the blend on the last day."""
    import time

    from recommender.evaluation.learning import choose_ranker, learning_rows
    from recommender.evaluation.splitting import validation_cut

    as_of = time.time() if as_of is None else as_of
    if days < 2:
        raise ValueError("--learned-days must be at least 2 (one day to fit, the last one to choose on)")
    data, info = learning_rows(store, as_of, params, days, seed=seed, show_progress=show)
    lg = store.load_interactions(end=as_of)
    ranker, report = choose_ranker(data, validation_cut(lg.ts[~lg.history], 1.0), seed=seed)
    best = max(report["candidates"], key=lambda c: c["objective"])
    blend = report["reference"]["blend"]
    report.update(info, chosen_validation=best["validation"],
                  used=best["objective"] > (blend["auc"] + blend["mrr"] + blend["ndcg@10"]) / 3.0)
    return (ranker if report["used"] else None), report


@command("train", "train text, collaborative, co-reading and popularity models and stage (or --promote) a version")(_args)
def run_train(args: argparse.Namespace, settings: Settings) -> int:
    try:
        params, source = load_params(settings, args.config)
    except (ValueError, OSError, TypeError) as exc:
        print(f"error: cannot read training parameters: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("factors", args.factors), ("iterations", args.iterations),
                                   ("cf_method", args.method)) if v is not None}
    params = params.with_overrides(**overrides)
    as_of = None
    if args.as_of:
        try:
            as_of = parse_time(args.as_of, "--as-of")
        except ValidationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.keep < 1:
        print("error: --keep must be at least 1", file=sys.stderr)
        return 2
    store = open_store(settings.ensure_dirs().db)
    show = sys.stdout.isatty() and not args.json
    if show:
        print(f"training from {settings.db_label} with parameters from {source}")
    learned = learned_report = None
    if args.learned_days is not None:
        try:
            learned, learned_report = fit_learned_stage(store, params, as_of, args.learned_days, args.seed, show)
        except ValueError as exc:
            print(f"error: cannot fit the learned ranking stage: {exc}", file=sys.stderr)
            return 1
    try:
        version, built = train(store, settings.models_dir, params, as_of=as_of, seed=args.seed, keep=args.keep,
                               show_progress=show, promote=args.promote, learned=learned,
                               learned_report=learned_report, protect=lambda: versions_in_use(store))
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PromotionConflict as exc:
        print(f"error: staged {exc.version}, not promoted: {exc}", file=sys.stderr)
        if args.json or not show:  # a script reading stdout still learns what was staged, why it is not live
            # and the training's report, as after any training
            print(json.dumps({"version": exc.version, "status": "staged", "live_version": exc.live,
                              "promoted": False, "not_promoted_reason": str(exc),
                              **_report(exc.built, learned_report, settings, source)}, indent=2))
        return 3
    if built is not None and not built.report.get("events_used"):
        print(f"warning: {_no_events(store, built.report, params, as_of)}", file=sys.stderr)
    live = store.live_model()
    summary = {"version": version, "status": "live" if version == live else "staged", "live_version": live,
               "promoted": args.promote, **_report(built, learned_report, settings, source)}
    if args.json or not show:
        print(json.dumps(summary, indent=2))
    else:
        print(f"promoted model {version}: it is live" if version == live else
              f"staged model {version} (live: {live or 'none'}); make it live with 'newsrec models promote {version}'")
        for key, value in summary.items():
            if key not in ("version", "timings_seconds"):
                print(f"  {key:32s} {value}")
        print("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in built.report["timings_seconds"].items()))
    return 0


def _no_events(store, report: dict, params: TrainParams, as_of: float | None) -> str:
    """Why a model was trained on no events, and what to do (an archive needs --as-of; a sampled
    MIND, its placeholders): the model then ranks by text and freshness alone."""
    loaded, unknown = report.get("events_loaded", 0), report.get("events_skipped_unknown_article", 0)
    if loaded and unknown == loaded:
        return (f"trained on no events: all {loaded} events in the training window are of articles the store "
                "does not hold (import those articles; 'newsrec ingest mind' adds placeholders for MIND's)")
    if loaded:
        return "trained on no events: every event in the training window was skipped (see the events_skipped_* counts)"
    newest = store.stats().get("newest_event_ts")
    if newest is None:
        return "trained on no events: the store has none yet; lists rank by text and freshness until events arrive"
    window = f"the {params.history_days:g} days before" if params.history_days else "the events up to"
    return (f"trained on no events: the store's newest event ({format_time(newest)}) is outside the training "
            f"window ({window} "
            f"{format_time(as_of) if as_of is not None else 'now'}); to train on an archive, pass --as-of a time "
            "just after its last event")


def _report(built, learned_report: dict | None, settings, source: str) -> dict:
    """What ``train --json`` prints of a training besides the version and its status."""
    report = dict(built.report) if built is not None else {}
    if learned_report is not None:
        report["learned_stage"] = {k: learned_report[k] for k in (
            "used", "chosen", "reference", "chosen_validation", "lists", "rows", "logged_lists", "logged_rows",
            "replayed_lists", "replayed_rows")}
    return {"models_dir": str(settings.models_dir), "parameters_from": source, **report}
