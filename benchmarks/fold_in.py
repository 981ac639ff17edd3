"""CPU cost of folding a reader in at request time, per ``cf_method`` x ``cf_weighting``
(``recommender.models.cf.FoldIn``, what every feed runs), beside the fold-in the service ran
before (ALS normal equations over the served factors, raw weights) measured in the same run.

Item factors are random (a fold-in's cost does not depend on their values): ``--items``
articles x ``--factors``, BPR with its extra bias column. Readers of 1, 10, 50 and 300 liked
articles (300 = ``EngineConfig.max_reader_events``). CPU time (``time.process_time``) per
fold-in over ``--calls`` calls, the variants interleaved per run, median of ``--repeat`` runs.
Also prints what the fold-in adds to a bundle.

Usage::

    python benchmarks/fold_in.py [--items 100000] [--factors 64] [--calls 200] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from benchmarks.common import print_table, write_json  # noqa: E402

SIZES = (1, 10, 50, 300)


def variants(n_items: int, k: int, rng: np.random.Generator) -> dict:
    from recommender.models.cf import FoldIn
    from recommender.models.interactions import BM25Weighting

    counts = sp.random(2000, n_items, density=min(1.0, 20.0 / n_items), format="csr", random_state=1,
                       dtype=np.float32)
    bm25 = BM25Weighting().fit(counts)
    out = {}
    for method, dims in (("als", k), ("bpr", k + 1)):
        learned = (rng.normal(size=(n_items, dims)) * 0.1).astype(np.float32)
        served = (learned + rng.normal(size=learned.shape) * 0.02).astype(np.float32)
        for weighting in ("none", "bm25"):
            fold = FoldIn.fit(method, learned, 10.0, 0.05, bm25 if weighting == "bm25" else None)
            out[f"{method}/{weighting}"] = (fold, served)
        if method == "als":  # before: the served rows, the Gram of the learned ones, raw weights
            before = FoldIn("als", 10.0, 0.05, out["als/none"][0].gram)
            out["before (als, served rows)"] = (before, served)
    return out


def measure(folds: dict, n_items: int, calls: int, rng: np.random.Generator) -> dict:
    """CPU microseconds per fold-in, per variant and reader size (one run, variants interleaved)."""
    readers = {m: [(np.sort(rng.choice(n_items, m, replace=False)), rng.uniform(0.5, 4.0, m)) for _ in range(calls)]
               for m in SIZES}
    result: dict = {name: {} for name in folds}
    for m in SIZES:
        for name, (fold, served) in folds.items():
            start = time.process_time()
            for items, weights in readers[m]:
                fold.vector(served[items], items, weights)
            result[name][m] = (time.process_time() - start) / calls * 1e6
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    folds = variants(args.items, args.factors, rng)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with threadpool_limits(1, "blas"):  # as a serving worker runs
        runs = [measure(folds, args.items, args.calls, rng) for _ in range(args.repeat)]
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    medians = {name: {m: statistics.median(r[name][m] for r in runs) for m in SIZES} for name in folds}
    base = medians["before (als, served rows)"]
    rows = [[name, *(f"{medians[name][m]:.0f} ({medians[name][m] / base[m]:.1f}x)" for m in SIZES)] for name in folds]
    print_table(f"CPU us per fold-in (x: vs before), {args.items} articles x {args.factors} factors, medians of "
                f"{args.repeat} runs, load {' '.join(load_before)} -> {' '.join(load_after)}",
                rows, ["variant", *(f"{m} liked" for m in SIZES)])
    extra = {name: sum(a.nbytes for a in fold.to_bundle()[0].values() if a is not None) / 2**20
             for name, (fold, _) in folds.items()}
    print_table("bundle arrays of the fold-in (MiB)", [[n, f"{v:.1f}"] for n, v in extra.items()], ["variant", "MiB"])
    write_json(args.json, {"items": args.items, "factors": args.factors, "calls": args.calls,
                           "repeat": args.repeat, "cpu_us_median": medians, "bundle_mib": extra,
                           "load_before": load_before, "load_after": load_after})
    return 0


if __name__ == "__main__":
    sys.exit(main())
