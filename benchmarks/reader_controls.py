"""Impression fatigue measured on the replay protocol (MIND sample, real click logs).

The test day is replayed through the live engine (each impression scored with the state just
before it, the reader's earlier impressions of the day included), once per setting of
``RankingParams.fatigue_impressions`` / ``feed_fatigue``: off, and on at a few thresholds. Fatigue
stays on by default only if it does not lower the replay metrics. Prints a table and writes
``DIR/reader_controls.json``.

Usage::

    python benchmarks/reader_controls.py --data ../shared/data --out DIR [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quality import MIND, metric_rows, replay_variants  # noqa: E402
from recommender.params import TrainParams  # noqa: E402

METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")


def variants() -> dict[str, TrainParams]:
    base = TrainParams()

    def ranking(**over) -> TrainParams:
        return replace(base, ranking=replace(base.ranking, **over))

    # rows are reported only under names that start with "newsrec"
    return {
        "newsrec (fatigue at 3, default)": base,
        "newsrec-fatigue-off": ranking(feed_fatigue=0.0),
        "newsrec-fatigue-2": ranking(fatigue_impressions=2),
        "newsrec-fatigue-5": ranking(fatigue_impressions=5),
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
    entry, seconds, _ = replay_variants(folder, variants(), args.quick, prefix="newsrec-fatigue-")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replay_entry.json").write_text(json.dumps(entry, indent=2, default=str))
    print(f"MIND sample, replay protocol: {entry['n_test']} impressions ({seconds:.0f} s)")
    rows = metric_rows(entry, variants(), METRICS)
    (args.out / "reader_controls.json").write_text(json.dumps({"n_test": entry["n_test"], "models": rows,
                                                               "full": entry["models"]}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
