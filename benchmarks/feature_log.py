"""What feature logging and exploration cost a feed, and what writing the log costs, in one run.

Generates a synthetic sample (``--articles``, ``--users``), trains a model, then serves feeds of
20 items from three engines on the same store, alternating in rounds so load changes hit every
setting alike: ``off`` (``feature_log_rate`` 0), ``log_all`` (rate 1: every feed keeps its
learned-stage features and queues a feature row) and ``explore`` (exploration at epsilon 0.1:
every feed is logged with its selection probabilities). Per setting: median and p99 CPU time
per feed (``time.process_time``, robust to other jobs on a shared machine) and wall time, and
the ratio of medians to ``off``. Then the queued lists are written (``flush_impressions``) and
the CPU time per written list and the bytes of a feature row are reported.

Usage::

    python benchmarks/feature_log.py [--articles 3000 --users 1500 --calls 300 --rounds 5 --json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import sample_store, write_json  # noqa: E402
from recommender.models.fitting import build_model  # noqa: E402
from recommender.serving.engine import Engine, EngineConfig  # noqa: E402

SETTINGS = {
    "off": {"feature_log_rate": 0.0},
    "log_all": {"feature_log_rate": 1.0},
    "explore": {"feature_log_rate": 0.0, "explore_epsilon": 0.1},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300, help="feeds per setting per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="newsrec-featlog-bench-") as tmp:
        root = Path(tmp)
        data, store, now = sample_store(root, args.articles, args.users, args.days, synchronous="FULL")
        model = build_model(store, as_of=now, seed=0).serving_model("bench")
        engines = {}
        for name, config in SETTINGS.items():
            engines[name] = Engine(store, root / "models", EngineConfig(feed_cache_seconds=0.0, **config),
                                   clock=lambda: now)  # every feed built, none a cached page
            engines[name].use_model(model)
            engines[name].refresh()
        users = sorted({e["user_id"] for e in data.events})
        order = list(np.random.default_rng(0).permutation(users))
        cpu = {name: [] for name in SETTINGS}
        wall = {name: [] for name in SETTINGS}
        writes = {name: [0.0, 0] for name in SETTINGS}  # CPU seconds, lists written
        load = [os.getloadavg()[0]]
        for r in range(args.rounds):
            for name, engine in engines.items():
                for n in range(args.calls):
                    user = order[(r * args.calls + n) % len(order)]
                    c0, t0 = time.process_time(), time.perf_counter()
                    engine.feed(user, limit=20)
                    cpu[name].append((time.process_time() - c0) * 1000.0)
                    wall[name].append((time.perf_counter() - t0) * 1000.0)
                c0 = time.process_time()
                engine.flush_impressions()
                writes[name][0] += time.process_time() - c0
                writes[name][1] += args.calls
            load.append(os.getloadavg()[0])
        rows = store.feature_logs()

        def size(r) -> int:  # the stored columns' bytes (vectors float32, keys int64, names JSON, probabilities)
            return (r.features.size * 4 + 8 * len(r.article_ids) + len(json.dumps(list(r.names)))
                    + (0 if r.propensities is None else 8 * r.propensities.size))

        with_vectors = [size(r) for r in rows if r.names]
        probabilities_only = [size(r) for r in rows if not r.names]
        for engine in engines.values():
            engine.close()
        store.close()
    base = float(np.median(cpu["off"]))
    result = {"articles": args.articles, "users": args.users, "calls_per_round": args.calls, "rounds": args.rounds,
              "load_average": [round(x, 2) for x in load], "feature_rows": len(rows),
              "row_bytes_with_vectors": int(np.median(with_vectors)) if with_vectors else 0,
              "row_bytes_probabilities_only": int(np.median(probabilities_only)) if probabilities_only else 0,
              "settings": {}}
    for name in SETTINGS:
        c, w = np.asarray(cpu[name]), np.asarray(wall[name])
        result["settings"][name] = {
            "cpu_p50_ms": round(float(np.median(c)), 3), "cpu_p99_ms": round(float(np.percentile(c, 99)), 3),
            "wall_p50_ms": round(float(np.median(w)), 3), "wall_p99_ms": round(float(np.percentile(w, 99)), 3),
            "cpu_ratio_vs_off": round(float(np.median(c)) / base, 3),
            "write_cpu_ms_per_list": round(1000.0 * writes[name][0] / max(writes[name][1], 1), 3)}
    print(f"in-process feed (20 items), {args.articles} articles, {args.rounds} rounds x {args.calls} feeds per "
          f"setting, load average {result['load_average'][0]} -> {result['load_average'][-1]}")
    print(f"{'setting':10s} {'CPU p50':>9s} {'CPU p99':>9s} {'wall p50':>9s} {'wall p99':>9s} {'CPU/off':>8s} "
          f"{'write/list':>11s}")
    for name, s in result["settings"].items():
        print(f"{name:10s} {s['cpu_p50_ms']:8.2f}ms {s['cpu_p99_ms']:8.2f}ms {s['wall_p50_ms']:8.2f}ms "
              f"{s['wall_p99_ms']:8.2f}ms {s['cpu_ratio_vs_off']:8.2f} {s['write_cpu_ms_per_list']:9.3f}ms")
    print(f"feature rows stored: {len(rows)}; median bytes of a row with vectors "
          f"{result['row_bytes_with_vectors']}, of an explored list's row without them "
          f"{result['row_bytes_probabilities_only']}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
