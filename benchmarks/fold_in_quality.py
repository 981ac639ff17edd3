"""The MIND replay with the request-time CF fold-in of this version beside the one served before
(the reader solved against the bridge-blended factors with raw weights, emulated by swapping
``FoldIn.vector``), the same data and protocol as ``benchmarks/quality.py``'s replay, one
invocation. Default parameters (ALS, no weighting: what ships).

Usage::

    python benchmarks/fold_in_quality.py [--data ../shared/data] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import print_table, write_json  # noqa: E402
from benchmarks.quality import MIND, replay_variants  # noqa: E402
from recommender.models import cf  # noqa: E402
from recommender.params import TrainParams  # noqa: E402

METRICS = ("auc", "mrr", "ndcg@10")


def before_vector(self, factors, items, weights):
    """The fold-in served before: ALS normal equations over the served rows, raw weights."""
    return cf.fold_in(factors, self.gram, np.arange(factors.shape[0]),
                      1.0 + self.alpha * np.asarray(weights, dtype=np.float64))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--quick", action="store_true", help="300 sampled test impressions")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    folder = args.data / MIND
    if not folder.exists():
        print(f"no MIND sample at {folder}", file=sys.stderr)
        return 2
    now_vector = cf.FoldIn.vector
    results, seconds = {}, {}
    loads = [Path("/proc/loadavg").read_text().split()[0]]
    try:
        for label, vector in (("this version", now_vector), ("before", before_vector)):
            cf.FoldIn.vector = vector
            t0 = time.perf_counter()
            entry, _, _ = replay_variants(folder, {"newsrec": TrainParams()}, quick=args.quick)
            seconds[label] = round(time.perf_counter() - t0)
            results[label] = {m: entry["models"]["newsrec"][m] for m in METRICS}
            loads.append(Path("/proc/loadavg").read_text().split()[0])
    finally:
        cf.FoldIn.vector = now_vector
    rows = [[label, *(f"{v[m]:.4f}" for m in METRICS)] for label, v in results.items()]
    rows.append(["difference", *(f"{results['this version'][m] - results['before'][m]:+.4f}" for m in METRICS)])
    print_table(f"MIND replay, newsrec defaults (load {' -> '.join(loads)})", rows, ["fold-in", *METRICS])
    write_json(args.json, {"replay": results, "seconds": seconds, "load": loads, "quick": args.quick})
    return 0


if __name__ == "__main__":
    sys.exit(main())
