"""How much of a reader's best articles in the whole window the feed's candidates hold.

Past ``full_scan_max`` window articles (20,000), a feed scores candidates from the window summary
(its best by freshness, trending and click-through overall, per category and region, the best of
the text and CF clusters nearest the reader) and the neighbours of the reader's newest reads,
not the window (``ranking.feed_candidates``). This scores, for each reader, the whole window on
the same scale (``score_feed`` with the summary: trending and CF standardised as the candidates
are) and says, per configuration, which share of the window's best 20 and 100 by the blend are
among the candidates, how far the 20th best candidate's score is below the window's 20th, how
many candidates a feed scores and the feed's CPU time (median). The window's scores are the
baseline: a feed can do no better than them.

``--served N`` first serves each reader N feeds (their lists stored as impressions, as a reader
who opened the feed N times has them): impression fatigue then holds back what they were shown
and their best lie further from the reader-independent pools. The store must be a copy of the
scale store the bundle was trained on, e.g. ``cp benchmarks/cache/scalev3-...sqlite3
/tmp/w.sqlite3`` (the measured feeds are built with ``log=False``; ``--served`` writes lists)::

    python benchmarks/candidate_recall.py --store /tmp/w.sqlite3 [--readers 300] [--served 0] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import print_table, write_json  # noqa: E402

# (name, EngineConfig fields): the default first, then candidate pools larger and smaller
CONFIGS = (
    ("default", {}),
    ("clusters 32", {"feed_clusters": 32}),
    ("clusters 8", {"feed_clusters": 8}),
    ("per cluster 60", {"feed_pool_per_cluster": 60}),
    ("seeds 20", {"feed_seeds": 20}),
)


class _Capture:
    """A stage that keeps the build it is given (the candidates as scored, the profile, the summary)."""

    name = "capture"

    def __init__(self):
        self.build = None

    def __call__(self, b):
        self.build = b
        return b


def serve_first(store, models: Path, users: list[str], now: float, times: int) -> None:
    """Each reader's feed ``times`` times, logged (their served lists written to the store)."""
    from recommender.serving.engine import Engine, EngineConfig

    engine = Engine(store, models, EngineConfig(feed_cache_seconds=0), clock=lambda: now)
    try:
        for _ in range(times):
            for user in users:
                engine.feed(user, limit=20)
            engine.flush_impressions()
    finally:
        engine.close()


def measure(store, models: Path, users: list[str], now: float, fields: dict) -> dict:
    from recommender import arrays
    from recommender.serving.engine import Engine, EngineConfig
    from recommender.serving.ranking import score_feed

    engine = Engine(store, models, EngineConfig(feed_cache_seconds=0, **fields), clock=lambda: now)
    engine.refresh()
    capture = _Capture()
    stages = engine._feed_pipeline.stages
    at = next(k for k, s in enumerate(stages) if getattr(s, "name", "") == "diversity")
    engine._feed_pipeline = dataclasses.replace(engine._feed_pipeline, stages=(*stages[:at], capture, *stages[at:]))
    recall20, recall100, gap, sizes, cpu = [], [], [], [], []
    try:
        for user in users:
            start = time.thread_time()
            engine.feed(user, limit=20, log=False)
            cpu.append(time.thread_time() - start)
            b = capture.build
            summary = b.window()
            if summary is None or b.cand is None or b.cand.index.size < 20:
                continue  # a small window is scanned whole: nothing to compare
            # the whole window less what the reader read (score_feed without candidates), on the summary's scale
            full = score_feed(b.snap, b.profile, b.state.counters, now, summary=summary)
            best = full.index[np.argsort(-full.score, kind="stable")]
            held = arrays.isin(best[:100], b.cand.index)
            recall20.append(float(held[:20].mean()))
            recall100.append(float(held.mean()))
            top20_window = float(np.sort(full.score)[-20])
            top20_cand = float(np.sort(b.cand.score)[-20])
            gap.append((top20_window - top20_cand) / max(abs(top20_window), 1e-9))
            sizes.append(int(b.cand.index.size))
    finally:
        engine.close()
    return {"readers": len(recall20), "recall_top20": round(statistics.mean(recall20), 4),
            "recall_top20_p10": round(float(np.percentile(recall20, 10)), 4),
            "recall_top100": round(statistics.mean(recall100), 4),
            "score_gap_20th_mean": round(statistics.mean(gap), 4),
            "score_gap_20th_p90": round(float(np.percentile(gap, 90)), 4),
            "candidates_mean": round(statistics.mean(sizes)), "feed_cpu_ms_p50": round(1e3 * statistics.median(cpu), 3)}


def main(argv: list[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    from benchmarks.portal import add_size_args, fill_sizes, sample_ids, scale_store
    from benchmarks.synthetic_scale import END
    from recommender.store import open_store

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="a copy of the scale store: SQLite path or postgresql:// URL")
    add_size_args(ap, 10_000_000)
    ap.add_argument("--readers", type=int, default=300, help="distinct known readers, sampled by activity")
    ap.add_argument("--served", type=int, default=0, help="feeds served to each reader (and stored) first")
    ap.add_argument("--json", type=Path, default=None)
    args = fill_sizes(ap.parse_args(argv))
    threadpool_limits(1)  # as each serving worker
    cached, models = scale_store(args)
    users, _ = sample_ids(cached, 20 * args.readers, np.random.default_rng(args.seed))
    users = [u for u in dict.fromkeys(users) if not u.startswith("new-reader-")][:args.readers]
    store = open_store(args.store)
    results = {"events": args.events, "articles": args.articles, "readers": len(users), "served": args.served,
               "configs": {}}
    try:
        if args.served:
            serve_first(store, models, users, END + 3600.0, args.served)
        for name, fields in CONFIGS:
            results["configs"][name] = {"fields": fields, **measure(store, models, users, END + 3600.0, fields)}
            print(f"{name}: {results['configs'][name]}", flush=True)
    finally:
        store.close()
    print_table("feed candidates against the whole window, scored alike", [(name, r["candidates_mean"], r["recall_top20"], r["recall_top20_p10"], r["recall_top100"],
                  r["score_gap_20th_mean"], r["feed_cpu_ms_p50"]) for name, r in results["configs"].items()],
                ("configuration", "candidates (mean)", "window top 20 held", "p10", "window top 100 held",
                 "20th score gap", "feed CPU p50 ms"))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
