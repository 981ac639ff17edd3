"""Position-corrected click-through measured on the replay protocol (MIND sample, real click logs).

The live click-through feature of the feed (``ranking.ctr_lift``) divides an article's decayed
clicks either by its decayed impressions (uncorrected) or by the clicks expected at the positions
where it was shown (``RankingParams.ctr_position_corrected``; the position curve is fitted at
training from the logged impressions and clicks). The test day is replayed through the live engine
once per setting, plus the feature switched off for scale. MIND impressions carry no display order:
the position is the order of the impression list in ``behaviors.tsv``, what ``ingest mind`` stores.
Prints a table and writes ``DIR/position_ctr.json``.

Usage::

    python benchmarks/position_ctr.py --data ../shared/data --out DIR [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quality import MIND, SEED, ingest_mind  # noqa: E402
from recommender.evaluation.protocols import Evaluation, choose_cut  # noqa: E402
from recommender.models.fitting import fit_position_curve  # noqa: E402
from recommender.params import TrainParams  # noqa: E402
from recommender.store import SQLiteStore  # noqa: E402

METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")


def variants() -> dict[str, TrainParams]:
    base = TrainParams()

    def ranking(**over) -> TrainParams:
        return replace(base, ranking=replace(base.ranking, **over))

    # rows are reported only under names that start with "newsrec"
    return {
        "newsrec (position-corrected ctr, default)": base,
        "newsrec-ctr-uncorrected": ranking(ctr_position_corrected=False),
        "newsrec-ctr-off": ranking(feed_ctr=0.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="300 sampled impressions")
    args = parser.parse_args(argv)
    folder = args.data / MIND
    if not folder.exists():
        print(f"{folder} not found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="newsrec-posctr-") as tmp:
        store = SQLiteStore(Path(tmp) / "mind.sqlite3", synchronous="OFF")
        ingest_mind(store, folder)
        cut = choose_cut(store, 1.0)
        log_ = store.load_interactions(end=cut)
        curve = fit_position_curve(log_.event, log_.position)
        t0 = time.perf_counter()
        with Evaluation(store, cut, variants=variants(), baselines=[], seed=SEED, ablations=False) as ev:
            ev.prepare()
            entry = ev.run("replay", max_queries=300 if args.quick else None)
        store.close()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {name: {m: entry["models"].get(name, {}).get(m) for m in METRICS} for name in variants()}
    print(f"position curve (training log, positions 1-10): {np.round(curve[:10], 3).tolist()}")
    print(f"MIND sample, replay protocol: {entry['n_test']} impressions ({time.perf_counter() - t0:.0f} s)")
    print("| setting | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join("-" if values[m] is None else f"{values[m]:.4f}" for m in METRICS) + " |")
    (args.out / "position_ctr.json").write_text(json.dumps(
        {"n_test": entry["n_test"], "curve": curve.tolist(), "models": rows, "full": entry["models"]},
        indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
