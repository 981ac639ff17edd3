"""How the costs grow: training and serving figures at 10k/100k articles and 100k/1M readers.

Runs ``benchmarks/training.py`` and ``benchmarks/serving.py`` (each in its own process, data
and bundles cached) for every size and prints one table, so the cost curve shows. Events are
10 per reader (1M and 10M).

Usage::

    python benchmarks/growth.py --json OUT [--http] [--training-repeat 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import print_table, write_json  # noqa: E402

SIZES = ((10_000, 100_000), (10_000, 1_000_000), (100_000, 100_000), (100_000, 1_000_000))


def run_size(articles: int, users: int, args: argparse.Namespace, folder: Path) -> dict:
    common = ["--articles", str(articles), "--users", str(users), "--events", str(users * 10)]
    train_json, serve_json = folder / f"train-{articles}-{users}.json", folder / f"serve-{articles}-{users}.json"
    subprocess.run([sys.executable, str(_HERE / "training.py"), *common, "--repeat", str(args.training_repeat),
                    "--json", str(train_json)], check=True)
    serve = [sys.executable, str(_HERE / "serving.py"), *common, "--calls", str(args.calls), "--json", str(serve_json)]
    if not args.http:
        serve.append("--no-http")
    subprocess.run(serve, check=True)
    t, s = json.loads(train_json.read_text()), json.loads(serve_json.read_text())
    row = {"articles": articles, "users": users, "events": users * 10,
           "train_seconds": t["total_seconds"], "train_peak_mb": t["peak_memory_mb"],
           "stages_seconds": t["stages_seconds"], "neighbour_recall": t.get("neighbour_recall"),
           "related_p99_ms": s["inprocess"]["related_p99_ms"], "feed_p99_ms": s["inprocess"]["feed_p99_ms"],
           "event_p99_ms": s["inprocess"]["event_p99_ms"], "embed_p99_ms": s["inprocess"]["embed_p99_ms"],
           "related_p50_ms": s["inprocess"]["related_p50_ms"], "feed_p50_ms": s["inprocess"]["feed_p50_ms"],
           "startup_seconds": s["inprocess"]["startup"]["process_seconds"]}
    if "http" in s and "ceiling_rps" in s["http"]:
        row.update(ceiling_rps=s["http"]["ceiling_rps"], related_rps=s["http"]["related_rps"],
                   feed_rps=s["http"]["feed_rps"])
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Training and serving figures across data sizes.")
    ap.add_argument("--http", action="store_true", help="also measure HTTP throughput at every size")
    ap.add_argument("--training-repeat", type=int, default=1)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--sizes", default=None, help="e.g. 10000x100000,100000x1000000 (default: all four)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    sizes = SIZES if not args.sizes else [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="newsrec-bench-growth-") as tmp:
        for articles, users in sizes:
            rows.append(run_size(articles, users, args, Path(tmp)))
    header = ["articles", "readers", "train s", "train MB", "related p99", "feed p99", "event p99", "embed p99",
              "start-up s"]
    table = [[f"{r['articles']:,}", f"{r['users']:,}", r["train_seconds"], r["train_peak_mb"], r["related_p99_ms"],
              r["feed_p99_ms"], r["event_p99_ms"], r["embed_p99_ms"], r["startup_seconds"]] for r in rows]
    print_table("Growth (in-process latencies in ms)", table, header)
    if args.http:
        print_table("Growth, HTTP req/s", [[f"{r['articles']:,}", f"{r['users']:,}", r.get("ceiling_rps"),
                                            r.get("related_rps"), r.get("feed_rps")] for r in rows],
                    ["articles", "readers", "bare Flask", "related", "feed"])
    write_json(args.json, {"benchmark": "growth", "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
