"""How much less traffic team-draft interleaving needs than an A/B split to detect the same
difference, on the experiments simulation (synthetic readers with hidden tastes, position-biased
clicks; ``recommender/experiments/simulation.py``), with the same assignment, interleaving and
statistics code the service's reports use.

For each method and number of readers, ``--reps`` experiments are simulated with independent
seeds; *power* is the share that detect the better variant (A/B: the 95 % interval of the CTR
difference excludes 0 on the right side; interleaving: the 95 % interval of B's win share
excludes 0.5 on the right side). The traffic needed is the smallest number of readers (and the
lists they were served) reaching ``--power``, interpolated on a log scale between grid points.
A/A runs (both variants the same policy) give each method's false-positive rate.

Usage::

    python benchmarks/experiments.py [--reps 60] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import machine, print_table, write_json  # noqa: E402
from recommender.experiments import simulation  # noqa: E402

GRID = (50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600)
# (control, treatment) personalization of the two policies: how much each ranks by the reader's taste
EFFECTS = {"small": (0.4, 0.6), "medium": (0.3, 0.7)}


def power_curve(readers, pair, method, reps, target, seed0) -> list[dict]:
    rows = []
    for n in GRID:
        if n > len(readers):
            break
        hits, lists, start = 0, 0, time.perf_counter()
        for rep in range(reps):
            seed = seed0 + 1000 * rep + n
            sub = readers.take(np.random.default_rng(seed).choice(len(readers), size=n, replace=False))
            if method == "ab":
                result = simulation.run_ab(sub, pair, MODEL, seed)
                hits += simulation.detected_ab(result) and result.difference > 0
                lists += sum(result.lists)
            else:
                result = simulation.run_interleaving(sub, pair, MODEL, seed)
                hits += simulation.detected_interleaving(result) and result.share > 0.5
                lists += result.lists
        rows.append({"readers": n, "lists": lists / reps, "power": hits / reps,
                     "seconds_per_run": (time.perf_counter() - start) / reps})
        if hits / reps >= max(target, 0.95):
            break
    return rows


def needed(rows: list[dict], target: float, key: str) -> float | None:
    """Smallest ``key`` (readers or lists) at which power reaches ``target`` (log-linear interpolation)."""
    for lo, hi in zip(rows, rows[1:]):
        if lo["power"] < target <= hi["power"]:
            f = (target - lo["power"]) / (hi["power"] - lo["power"])
            return math.exp(math.log(lo[key]) + f * (math.log(hi[key]) - math.log(lo[key])))
    if rows and rows[0]["power"] >= target:
        return rows[0][key]
    return None


def false_positives(readers, method, reps, n, seed0) -> float:
    flagged = 0
    for rep in range(reps):
        seed = seed0 + rep
        sub = readers.take(np.random.default_rng(seed).choice(len(readers), size=n, replace=False))
        if method == "ab":
            flagged += simulation.detected_ab(simulation.run_ab(sub, (0.5, 0.5), MODEL, seed))
        else:
            flagged += simulation.detected_interleaving(simulation.run_interleaving(sub, (0.5, 0.5), MODEL, seed))
    return flagged / reps


MODEL = simulation.ClickModel()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=60, help="simulated experiments per point (default 60)")
    ap.add_argument("--power", type=float, default=0.8, help="power to reach (default 0.8)")
    ap.add_argument("--readers", type=int, default=GRID[-1], help="population of synthetic readers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    readers = simulation.synthetic_readers(args.readers, seed=args.seed)
    out = {"machine": machine(), "model": MODEL.__dict__, "reps": args.reps, "power": args.power, "effects": {}}
    table = []
    for name, pair in EFFECTS.items():
        # the true CTR difference of the pair, from one large A/B run
        truth = simulation.run_ab(readers, pair, MODEL, seed=args.seed + 7)
        effect = {"personalization": pair, "ctr": truth.ctr, "ctr_difference": truth.difference}
        for method in ("ab", "interleave"):
            rows = power_curve(readers, pair, method, args.reps, args.power, args.seed)
            effect[method] = {"curve": rows, "readers_needed": needed(rows, args.power, "readers"),
                              "lists_needed": needed(rows, args.power, "lists")}
        ab, il = effect["ab"], effect["interleave"]
        ratio = (ab["lists_needed"] / il["lists_needed"]) if ab["lists_needed"] and il["lists_needed"] else None
        effect["ab_over_interleave_lists"] = ratio
        out["effects"][name] = effect
        table.append([name, f"{truth.ctr[0]:.4f} -> {truth.ctr[1]:.4f}", ab["readers_needed"], ab["lists_needed"],
                      il["readers_needed"], il["lists_needed"], ratio])
    print_table(f"traffic to detect the better variant with {args.power:.0%} power ({args.reps} runs per point)",
                table, ["effect", "CTR A -> B", "A/B readers", "A/B lists", "interleave readers",
                        "interleave lists", "A/B / interleave"])
    n_aa = 1600
    out["aa_false_positive_rate"] = {m: false_positives(readers, m, max(args.reps, 100), n_aa, args.seed + 99)
                                     for m in ("ab", "interleave")}
    out["aa_readers"] = n_aa
    print_table(f"A/A: share of experiments flagging a difference ({n_aa} readers, 95 % intervals)",
                [[m, v] for m, v in out["aa_false_positive_rate"].items()], ["method", "false positives"])
    out["seconds"] = time.perf_counter() - started
    summary = {name: {"ctr": e["ctr"], "ab_lists_needed": e["ab"]["lists_needed"],
                      "interleave_lists_needed": e["interleave"]["lists_needed"],
                      "ab_over_interleave_lists": e["ab_over_interleave_lists"]} for name, e in out["effects"].items()}
    print(json.dumps({"effects": summary, "aa_false_positive_rate": out["aa_false_positive_rate"]}, default=float))
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
