"""What bring-your-own plugins cost a list, in-process: CPU time per feed and per related list
with no plugin, the documented example scorer, a candidate source and an embedder, in one run.

Generates a synthetic sample, fits one model with every plugin, then serves from one engine with
each subset of the plugins in turn (the same fitted arrays: only the plugins change), ``--rounds``
rounds alternating the settings so load on a shared machine hits each alike. Reports the median
over rounds of CPU milliseconds per list (``time.process_time``: steadier than wall time on a busy
box), wall p50/p99 of all calls, and the ratio to no plugin in the same run.

Usage::

    python benchmarks/byo.py [--articles 5000 --users 2000 --calls 300 --rounds 5 --json OUT]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE.parent / "docs" / "examples"))  # the documented example: regional:RegionScorer

import numpy as np  # noqa: E402

from benchmarks.common import percentiles_ms, print_table, sample_store, write_json  # noqa: E402
from recommender.models.fitting import build_model  # noqa: E402
from recommender.params import TrainParams  # noqa: E402
from recommender.serving.engine import Engine, EngineConfig  # noqa: E402

PLUGINS = [
    {"role": "scorer", "path": "regional:RegionScorer", "params": {"favour": "Jabar"}, "weight": 5.0,
     "name": "scorer"},
    {"role": "candidates", "path": "tests.byo_plugins:OldestInWindow", "params": {"k": 50}, "name": "source"},
    {"role": "embedder", "path": "tests.byo_plugins:RegionEmbedder", "weight": 1.0, "lists": ["feed", "related"],
     "name": "embedder"},
]
SETTINGS = {"none": (), "scorer": ("scorer",), "candidates": ("source",), "embedder": ("embedder",),
            "all": ("scorer", "source", "embedder")}


def with_plugins(model, names: tuple[str, ...]):
    variant = copy.copy(model)
    variant.plugins = tuple(p for p in model.plugins if p.name in names)
    return variant


def run_lists(engine: Engine, kind: str, keys: list[str], calls: int, offset: int) -> tuple[float, list[float]]:
    """(CPU seconds per list, wall seconds of each call) of ``calls`` lists."""
    walls = []
    cpu0 = time.process_time()
    for n in range(calls):
        key = keys[(offset + n) % len(keys)]
        t0 = time.perf_counter()
        if kind == "feed":
            engine.feed(key, limit=20, log=False)
        else:
            engine.related(key, limit=10)
        walls.append(time.perf_counter() - t0)
    return (time.process_time() - cpu0) / calls, walls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=5000)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--calls", type=int, default=300, help="lists per setting per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--full-scan-max", type=int, default=1000,
                    help="windows larger than this are served from candidates, as at a portal's scale (default "
                         "1000; the engine's own is 20,000, which would scan this sample's window whole)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    result: dict = {"articles": args.articles, "users": args.users, "calls": args.calls, "rounds": args.rounds,
                    "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="newsrec-byo-bench-") as tmp:
        root = Path(tmp)
        data, store, now = sample_store(root, args.articles, args.users, args.days)
        t0 = time.perf_counter()
        build_model(store, TrainParams(), as_of=now, seed=0)
        t1 = time.perf_counter()
        built = build_model(store, TrainParams.from_dict({"plugins": PLUGINS}), as_of=now, seed=0)
        t2 = time.perf_counter()
        result["train_seconds"] = {"without": round(t1 - t0, 2), "with_all_plugins": round(t2 - t1, 2),
                                   "plugins_stage": built.report["timings_seconds"].get("plugins")}
        model = built.serving_model("bench")
        result["window_articles"] = model.n_items - model.window_start
        engine = Engine(store, root / "models", EngineConfig(log_impressions=False, related_cache_seconds=0.0,
                                                            feed_cache_seconds=0.0, full_scan_max=args.full_scan_max),
                        clock=lambda: now)
        users = [str(u) for u in np.random.default_rng(0).permutation(sorted({e["user_id"] for e in data.events}))]
        anchors = [str(a) for a in model.item_ids.ids[model.window_start:][::7]]
        cpu: dict = {(s, k): [] for s in SETTINGS for k in ("feed", "related")}
        walls: dict = {(s, k): [] for s in SETTINGS for k in ("feed", "related")}
        variants = {s: with_plugins(model, names) for s, names in SETTINGS.items()}
        for r in range(args.rounds):
            for setting in SETTINGS:  # alternating: every round runs every setting once
                engine.use_model(variants[setting])
                engine.refresh()
                run_lists(engine, "feed", users, 20, 0)  # warm-up
                for kind, keys in (("feed", users), ("related", anchors)):
                    per, w = run_lists(engine, kind, keys, args.calls, r * args.calls)
                    cpu[(setting, kind)].append(per)
                    walls[(setting, kind)].extend(w)
        errors = {p.name: p.errors for p in model.plugins}
        engine.close()
        store.close()
    result["load_after"] = os.getloadavg()[0]
    result["plugin_errors"] = errors
    rows, table = [], {}
    for kind in ("feed", "related"):
        base_cpu = statistics.median(cpu[("none", kind)])
        for setting in SETTINGS:
            med = statistics.median(cpu[(setting, kind)])
            p = percentiles_ms(walls[(setting, kind)])
            table[f"{kind}/{setting}"] = {"cpu_ms": round(med * 1e3, 3), "ratio": round(med / base_cpu, 3),
                                          "wall_p50_ms": p["p50_ms"], "wall_p99_ms": p["p99_ms"]}
            rows.append([kind, setting, med * 1e3, med / base_cpu, p["p50_ms"], p["p99_ms"]])
    result["lists"] = table
    print_table(f"bring-your-own plugins, {result['window_articles']} window articles, {args.rounds} rounds x "
                f"{args.calls} lists (load {result['load_before']:.1f} -> {result['load_after']:.1f})", rows,
                ["list", "plugins", "CPU ms/list (median)", "x none", "wall p50 ms", "wall p99 ms"])
    print(f"training: {result['train_seconds']}; plugin failures: {errors}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
