"""``newsrec tune``: search training and blending parameters on a validation period, write the
result as a *candidate* config with a report beside it, and change the production config only
when asked (``--apply``, or ``--apply-from`` a candidate reviewed earlier), keeping the old one.

The production config is ``NEWSREC_HOME/config/train.json`` (what ``newsrec train`` and
``newsrec evaluate`` use when present); each replaced version is kept under
``NEWSREC_HOME/config/history/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recommender.config import Settings
from recommender.params import TrainParams
from recommender.security import atomic_write_private

from .cli import command

CANDIDATE = "candidate.json"
REPORT = "report.json"
HISTORY = "config/history"
METRICS = ("auc", "mrr", "ndcg@10")


def _args(p: argparse.ArgumentParser) -> None:
    from .evaluate import _split_args

    _split_args(p)
    p.add_argument("--trials", type=int, default=4,
                   help="training configurations to try (trial 0 is the current config; default 4)")
    p.add_argument("--validation-days", type=float, default=1.0,
                   help="validation period: the last N days before the test period (default 1); "
                        "a value below 1 holds out that share of the training events instead")
    p.add_argument("--blend-samples", type=int, default=300,
                   help="blend-weight settings tried per trial on the recorded features (default 300)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for {CANDIDATE} and {REPORT} (default NEWSREC_HOME/tune/<timestamp>/)")
    apply = p.add_mutually_exclusive_group()
    apply.add_argument("--apply", action="store_true",
                       help="also make the candidate the production config (the old one is kept in "
                            f"NEWSREC_HOME/{HISTORY}/); without it the production config is not touched")
    apply.add_argument("--apply-from", type=Path, default=None, metavar="CANDIDATE",
                       help="no search: make this candidate config (a tune folder or its candidate.json) the "
                            "production config, keeping the old one")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def production_config(settings: Settings) -> Path:
    from .train import TUNED_CONFIG

    return settings.home / TUNED_CONFIG


def apply_candidate(settings: Settings, params: TrainParams, now: datetime | None = None) -> dict[str, Any]:
    """Make ``params`` the production config; the one it replaces is kept under ``config/history/``.

    The new file is written beside the old and renamed over it (a reader sees one or the other,
    never half of one), owner-only like the home's other files. Returns ``{"config", "backup"}``
    (backup None when there was none).
    """
    target = production_config(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if target.exists():
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
        history = settings.home / HISTORY
        history.mkdir(parents=True, exist_ok=True)
        backup = history / f"train-{stamp}.json"
        n = 1
        while backup.exists():
            backup, n = history / f"train-{stamp}-{n}.json", n + 1
        backup.write_bytes(target.read_bytes())
    atomic_write_private(target, json.dumps(params.to_dict(), indent=2).encode("utf-8"))
    return {"config": str(target), "backup": None if backup is None else str(backup)}


def _load_candidate(path: Path) -> TrainParams:
    path = path / CANDIDATE if path.is_dir() else path
    return TrainParams.load(path)


def compare(report: dict[str, Any]) -> dict[str, Any]:
    """Validation metrics of the baseline (trial 0: the current config, its own blend weights) and
    the candidate (the best trial, blend weights searched), and their differences."""
    trials = {t["trial"]: t for t in report["trials"]}
    baseline = trials[0]["validation_with_trial_weights"]
    candidate = trials[report["best_trial"]]["validation"]
    return {"baseline": baseline, "candidate": candidate,
            "difference": {m: round(candidate[m] - baseline[m], 4) for m in METRICS}}


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


@command("tune", "search training and blending parameters on a validation period; writes a candidate config and "
                 "a report (--apply: and makes it the production config)")(_args)
def run_tune(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.evaluation.tuning import tune
    from recommender.models.provenance import code_version, fingerprint
    from recommender.store import open_store

    from .cli import no_store
    from .evaluate import _cut
    from .train import load_params

    if args.apply_from is not None:
        try:
            params = _load_candidate(args.apply_from)
        except (ValueError, OSError, TypeError) as exc:
            return _error(f"cannot read the candidate config {args.apply_from}: {exc}; nothing changed")
        applied = apply_candidate(settings, params)
        print(json.dumps({"applied": applied, "from": str(args.apply_from)}, indent=2) if args.json else
              f"{applied['config']} is now the candidate from {args.apply_from}"
              + (f" (the old one is kept as {applied['backup']})" if applied["backup"] else ""))
        return 0
    if no_store(settings):
        return 2
    if args.trials < 1:
        return _error("--trials must be at least 1")
    if args.blend_samples < 0:
        return _error("--blend-samples must be at least 0")
    if not args.validation_days > 0:
        return _error("--validation-days must be a number of days (1 or more) or a fraction below 1 (that share "
                      "of the training events)")
    store = open_store(settings.db)
    show = sys.stderr.isatty() and not args.json
    try:
        base, source = load_params(settings, args.config)
    except (ValueError, OSError, TypeError) as exc:
        where = args.config if args.config is not None else production_config(settings)
        return _error(f"cannot read training parameters from {where}: {exc} (fix or remove the file, or pass "
                      "--config FILE)")
    try:
        cut = _cut(args, store)
        params, report = tune(store, cut, base, trials=args.trials, validation_days=args.validation_days,
                              blend_samples=args.blend_samples, seed=args.seed, max_queries=args.max_queries,
                              show_progress=show)
    except (ValueError, OSError, TypeError) as exc:
        if "covers the whole training period" in str(exc):  # the validation cut's words, in the option's
            return _error(f"--validation-days {args.validation_days:g} covers the whole training period (the "
                          "events before the test period); ask for fewer days, or a fraction below 1 (that share "
                          "of the training events)")
        return _error(str(exc))
    out = args.out or settings.home / "tune" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    params.save(out / CANDIDATE)
    report.update(base_parameters_from=source, code_version=code_version(), comparison=compare(report),
                  data_fingerprint=fingerprint({"event_seq": store.log_position()[1], "cut": cut,
                                                "validation_start": report["validation_start"],
                                                "base": base.to_dict()}),
                  candidate=str(out / CANDIDATE),
                  notes=["the candidate's blend weights were searched on the same validation impressions they "
                         "are measured on: its figures are optimistic; `newsrec evaluate --config "
                         f"{out / CANDIDATE}` measures it on the test period"])
    report["applied"] = apply_candidate(settings, params) if args.apply else None
    (out / REPORT).write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"validation {report['validation_start']} .. {report['cut']} (test period untouched)")
    for trial in report["trials"]:
        v = trial["validation"]
        mark = "*" if trial["trial"] == report["best_trial"] else " "
        print(f" {mark} trial {trial['trial']}: objective {trial['objective']:.4f}  auc {v['auc']:.4f}  "
              f"mrr {v['mrr']:.4f}  ndcg@10 {v['ndcg@10']:.4f}  ({trial['seconds']:.0f}s)")
    c = report["comparison"]
    print("baseline (" + source + "): " + "  ".join(f"{m} {c['baseline'][m]:.4f}" for m in METRICS))
    print("candidate:  " + "  ".join(f"{m} {c['candidate'][m]:.4f} ({c['difference'][m]:+.4f})" for m in METRICS))
    print(f"wrote {out / CANDIDATE} and {out / REPORT}")
    if report["applied"]:
        backup = report["applied"]["backup"]
        print(f"applied: {report['applied']['config']}" + (f" (the old one is kept as {backup})" if backup else ""))
    else:
        print(f"the production config is unchanged; to use the candidate: newsrec tune --apply-from {out}")
    return 0
