"""Feeds under the diversity stage's two modes: the fixed caps (default) and MMR at a few lambdas.

A generated sample (``recommender.datasets.synthetic``; categories on every article, which the
MIND impressions mostly lack) is trained up to its last day; each reader active that day gets a
feed of 10 from the engine as of the cut, once per mode, in the same run. Reported per mode:
hit@10 (share of the reader's clicked/read/shared articles of the last day that the feed
holds), rank-biased category entropy (``evaluation.metrics.rank_biased_entropy``), and the
rank-biased overlap with the pure score order (MMR at lambda 1, i.e. how far each mode moves
the list), and the CPU time per feed (median of alternating rounds, ratio to the caps).
Generated readers follow their generated interests, so hit@10 judges only whether a mode pushes
away what they read, not real editors' or readers' taste: the real-data comparison is the
``id-news-editor-links`` part of ``benchmarks/quality.py``.

Usage::

    python benchmarks/diversity_modes.py [--articles 1500 --users 600 --days 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.datasets.ingest import import_articles, import_events, import_preferences  # noqa: E402
from recommender.datasets.synthetic import generate  # noqa: E402
from recommender.domain import parse_time  # noqa: E402
from recommender.evaluation.metrics import rank_biased_entropy, rank_biased_overlap  # noqa: E402
from recommender.models.fitting import train  # noqa: E402
from recommender.serving.engine import Engine, EngineConfig  # noqa: E402
from recommender.store import SQLiteStore  # noqa: E402

MODES = {"caps (default)": {}, "mmr 0.9": {"diversity": "mmr", "mmr_lambda": 0.9},
         "mmr 0.7": {"diversity": "mmr", "mmr_lambda": 0.7}, "mmr 0.5": {"diversity": "mmr", "mmr_lambda": 0.5}}
SCORE_ORDER = {"diversity": "mmr", "mmr_lambda": 1.0}  # no diversity at all: the reference for RBO
POSITIVE = {"click", "read", "share"}
LIMIT = 10


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=1500)
    ap.add_argument("--users", type=int, default=600)
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds for the CPU time (median)")
    ap.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    data = generate(n_articles=args.articles, n_users=args.users, days=args.days, seed=args.seed)
    ts = np.array([parse_time(e["ts"], "ts") for e in data.events])
    cut = float(ts.max()) - 86400.0
    with tempfile.TemporaryDirectory(prefix="newsrec-diversity-") as tmp:
        root = Path(tmp)
        paths = data.write_jsonl(root / "sample")
        before = root / "before.jsonl"  # the store holds only what happened before the cut
        with before.open("w", encoding="utf-8") as f:
            for e, t in zip(data.events, ts):
                if t < cut:
                    f.write(json.dumps(e) + "\n")
        truth: dict[str, set[str]] = {}
        for e, t in zip(data.events, ts):
            if t >= cut and e["event"] in POSITIVE:
                truth.setdefault(e["user_id"], set()).add(e["article_id"])
        store = SQLiteStore(root / "newsrec.sqlite3", synchronous="OFF")
        import_articles(store, paths["articles"], show_progress=False)
        import_events(store, before, show_progress=False)
        import_preferences(store, paths["preferences"], show_progress=False)
        train(store, root / "models", as_of=cut, seed=0, promote=True)
        engine = Engine(store, root / "models", EngineConfig(log_impressions=False, feed_cache_seconds=0.0),
                        clock=lambda: cut)
        try:
            base = engine._state.model
            readers = sorted(truth)

            def feeds(changes: dict) -> list[list]:
                model = copy.copy(base)
                model.ranking = replace(base.ranking, **changes)
                engine.use_model(model)
                return [engine.feed(u, limit=LIMIT).items for u in readers]

            modes = {**MODES, "score order (mmr 1.0, no diversity)": SCORE_ORDER}
            cpu: dict[str, list[float]] = {name: [] for name in modes}
            lists: dict[str, list[list]] = {}
            for _ in range(args.rounds):  # alternating rounds: the machine's load hits every mode alike
                for name, changes in modes.items():
                    t0 = time.process_time()
                    lists[name] = feeds(changes)
                    cpu[name].append((time.process_time() - t0) / len(readers) * 1000.0)
            reference = lists["score order (mmr 1.0, no diversity)"]
            rows = {}
            for name, got in lists.items():
                rows[name] = {
                    "hit@10": float(np.mean([len(truth[u] & {i.article_id for i in items}) / len(truth[u])
                                             for u, items in zip(readers, got)])),
                    "rank_biased_entropy": float(np.nanmean([rank_biased_entropy([i.category for i in items])
                                                             for items in got])),
                    "rbo_vs_score_order": float(np.mean([rank_biased_overlap([i.article_id for i in a],
                                                                             [i.article_id for i in b])
                                                         for a, b in zip(got, reference)])),
                    "cpu_ms_per_feed": statistics.median(cpu[name]),
                }
        finally:
            engine.close()
            store.close()
    caps = rows["caps (default)"]["cpu_ms_per_feed"]
    for r in rows.values():
        r["cpu_vs_caps"] = r["cpu_ms_per_feed"] / caps
    load = os.getloadavg()[0]
    print(f"{len(readers)} readers with last-day reads, cut {cut:.0f}, feeds of {LIMIT}, load {load:.1f}\n")
    print("| mode | hit@10 | rank-biased category entropy | RBO vs score order | CPU ms/feed (median) | vs caps |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['hit@10']:.3f} | {r['rank_biased_entropy']:.3f} | {r['rbo_vs_score_order']:.3f} "
              f"| {r['cpu_ms_per_feed']:.2f} | {r['cpu_vs_caps']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"},
                                         "readers": len(readers), "load": load, "modes": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
