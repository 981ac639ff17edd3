"""In-process feed latency with the learned ranking stage off and on, in the same run.

Generates a synthetic sample (``--articles``, ``--users``), trains a model, fits a ranker
(gradient-boosted trees, the chosen kind on MIND; ``--kind logistic`` for the fallback) on the
feature rows the engine computes for logged impressions, then serves ``--calls`` feeds per
setting from one engine: the blend alone, then the same model with the learned stage. Prints
p50/p99 per setting and writes JSON with ``--json``.

Usage::

    python benchmarks/learned_stage.py [--articles 5000 --users 2000 --calls 2000 --json OUT]
"""

from __future__ import annotations

import argparse
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

from recommender.evaluation.learning import with_learned  # noqa: E402
from recommender.models.fitting import build_model  # noqa: E402
from recommender.models.learned import LearnedRanker  # noqa: E402
from recommender.serving.engine import Engine, EngineConfig  # noqa: E402
from recommender.serving.features import FEATURE_NAMES, PREFIX  # noqa: E402
from recommender.store import SQLiteStore  # noqa: E402


def rows_from_impressions(engine: Engine, store: SQLiteStore, users: list[str], rng: np.random.Generator,
                          n_lists: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows of lists of 30 window articles per reader; a row is "clicked" if the reader
    read the article (a stand-in label: this measures speed, not quality)."""
    model = engine._state.model
    window = model.item_ids.ids[model.window_start:]
    Xs, ys = [], []
    for user in rng.choice(users, size=n_lists):
        read = {e.article_id for e in store.user_events(str(user), limit=500) if e.event != "impression"}
        ids = list(rng.choice(window, size=30, replace=False))
        ids[:3] = list(read)[:3] or ids[:3]
        _, cols = engine.score(str(user), [str(a) for a in ids], features=True)
        Xs.append(np.column_stack([cols[PREFIX + n] for n in FEATURE_NAMES]))
        ys.append(np.array([a in read for a in ids], dtype=float))
    X, y = np.vstack(Xs), np.concatenate(ys)
    keep = ~np.isnan(X).any(axis=1)
    return X[keep], y[keep]


def timed_feeds(engine: Engine, users: list[str], calls: int, warmup: int = 100) -> dict:
    """Wall-clock and CPU time per feed (CPU time of this process: on a loaded, shared machine the
    wall clock mostly measures the other jobs)."""
    times, cpu = [], []
    for n in range(calls + warmup):
        user = users[n % len(users)]
        t0, c0 = time.perf_counter(), time.process_time()
        engine.feed(user, limit=20)
        if n >= warmup:
            times.append((time.perf_counter() - t0) * 1000.0)
            cpu.append((time.process_time() - c0) * 1000.0)
    t, c = np.asarray(times), np.asarray(cpu)
    return {"p50_ms": round(float(np.percentile(t, 50)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3),
            "cpu_p50_ms": round(float(np.percentile(c, 50)), 3), "cpu_p99_ms": round(float(np.percentile(c, 99)), 3),
            "n": int(t.size)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--kind", choices=["hgb", "logistic"], default="hgb")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="newsrec-learned-bench-") as tmp:
        root = Path(tmp)
        data, store, now = sample_store(root, args.articles, args.users, args.days)
        model = build_model(store, as_of=now, seed=0).serving_model("bench")
        engine = Engine(store, root / "models", EngineConfig(log_impressions=False, feed_cache_seconds=0.0),
                        clock=lambda: now)  # every feed built, none a cached page
        engine.use_model(model)
        engine.refresh()
        users = sorted({e["user_id"] for e in data.events})
        X, y = rows_from_impressions(engine, store, users, rng, 300)
        ranker = LearnedRanker(kind=args.kind, max_iter=100, max_leaf_nodes=15, min_samples_leaf=100)
        ranker.fit(X, y, list(FEATURE_NAMES))
        order = list(rng.permutation(users))
        result = {"articles": args.articles, "users": args.users, "kind": args.kind,
                  "window_articles": model.n_items - model.window_start}
        result["blend"] = timed_feeds(engine, order, args.calls)
        engine.use_model(with_learned(model, ranker))
        engine.refresh()
        result["learned"] = timed_feeds(engine, order, args.calls)
        engine.use_model(model)
        engine.refresh()
        result["blend_again"] = timed_feeds(engine, order, args.calls)
        engine.close()
        store.close()
    print(f"in-process feed (20 items), {result['window_articles']} window articles, {args.kind} ranker:")
    for name in ("blend", "learned", "blend_again"):
        r = result[name]
        print(f"  {name:12s} p50 {r['p50_ms']:7.2f} ms   p99 {r['p99_ms']:7.2f} ms   "
              f"CPU p50 {r['cpu_p50_ms']:7.2f} ms   CPU p99 {r['cpu_p99_ms']:7.2f} ms   ({r['n']} calls)")
    print(f"  load average {os.getloadavg()[0]:.1f} at the end")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
