"""Training at portal scale: wall time of every stage and peak memory.

Generates (or reuses from ``benchmarks/cache/``) a synthetic store of the given size, then runs
the real training job (``training.pipeline.train``) in a fresh process per repetition, so peak
memory is that of training alone. Next to our ALS stage it times implicit's own
``AlternatingLeastSquares.fit`` on the very same confidence matrix, in the same process.

Usage::

    python benchmarks/training.py --articles 100000 --users 1000000 --events 10000000 --json OUT

Targets (issue 7): whole pipeline <= 180 s and <= 6 GB at 100k articles / 10M events; ALS no
slower than implicit's own on the same matrix.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# this file's name would shadow the ``training`` package: import from the repository root instead
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import ROOT, median_runs, peak_rss_mb, print_table, verdict, write_json  # noqa: E402

TARGET_SECONDS = 180.0
TARGET_MEMORY_MB = 6 * 1024.0
STAGES = ("load articles", "load events", "text features", "  of which TF-IDF fit", "  of which SVD",
          "  of which transform (older articles)", "collaborative filtering", "bridge", "co-reading", "popularity", "neighbour lists",
          "bundle write")


def scale_params(window_days: float):
    """Default training parameters with a serving window of ``window_days``."""
    from dataclasses import replace

    from recommender.params import TrainParams

    params = TrainParams()
    return params.with_overrides(ranking=replace(params.ranking, window_days=window_days))


def _child(args: argparse.Namespace) -> int:
    """One training run in this (fresh) process; writes its figures as JSON to ``args.out``."""
    import numpy as np

    import recommender.models.cf as cf_module
    import recommender.text.embedding as embedding_module
    from recommender.store import SQLiteStore
    from benchmarks.synthetic_scale import END
    from recommender.models.fitting import train

    captured: dict = {}
    timings: dict[str, float] = {}

    real_fit = cf_module.CollaborativeFilter.fit

    def capture_fit(self, user_items, *a, **kw):  # keep the matrix for the baseline fit
        captured["matrix"] = user_items
        start = time.perf_counter()
        out = real_fit(self, user_items, *a, **kw)
        timings["ALS fit (ours)"] = time.perf_counter() - start
        return out

    real_svd = embedding_module.randomized_svd

    def timed_svd(*a, **kw):
        start = time.perf_counter()
        out = real_svd(*a, **kw)
        timings["svd"] = timings.get("svd", 0.0) + time.perf_counter() - start
        return out

    real_embed_fit = embedding_module.ArticleEmbedder.fit
    real_fit_transform = embedding_module.ArticleEmbedder.fit_transform
    real_transform = embedding_module.ArticleEmbedder.transform

    def timed_fit(self, *a, **kw):
        start = time.perf_counter()
        out = real_embed_fit(self, *a, **kw)
        timings["embedder fit"] = time.perf_counter() - start
        return out

    def timed_fit_transform(self, *a, **kw):
        start = time.perf_counter()
        out = real_fit_transform(self, *a, **kw)
        timings["embedder fit"] = time.perf_counter() - start
        return out

    def timed_transform(self, *a, **kw):
        start = time.perf_counter()
        out = real_transform(self, *a, **kw)
        timings["transform"] = timings.get("transform", 0.0) + time.perf_counter() - start
        return out

    cf_module.CollaborativeFilter.fit = capture_fit
    embedding_module.randomized_svd = timed_svd
    embedding_module.ArticleEmbedder.fit = timed_fit
    embedding_module.ArticleEmbedder.fit_transform = timed_fit_transform
    embedding_module.ArticleEmbedder.transform = timed_transform

    store = SQLiteStore(args.db)
    params = scale_params(args.window_days)
    start = time.perf_counter()
    version, built = train(store, args.models, params, as_of=END + 1.0, seed=0, keep=1, show_progress=args.verbose,
                           promote=True)
    total = time.perf_counter() - start
    peak = peak_rss_mb()
    stages = dict(built.report["timings_seconds"])
    stages["  of which SVD"] = timings.get("svd", float("nan"))
    stages["  of which TF-IDF fit"] = timings.get("embedder fit", float("nan")) - timings.get("svd", 0.0)
    stages["  of which transform (older articles)"] = timings.get("transform", 0.0)
    result = {"total_seconds": total, "peak_memory_mb": peak, "stages": stages,
              "als_fit_ours_seconds": timings.get("ALS fit (ours)"), "report": built.report, "version": version}

    result["neighbour_recall"] = neighbour_recall(built.arrays, built.documents["params"]["window_start"])

    if not args.no_baseline and "matrix" in captured:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        matrix = captured.pop("matrix").astype(np.float32)
        confidence = matrix.copy()
        confidence.data = 1.0 + params.alpha * confidence.data
        model = AlternatingLeastSquares(factors=params.factors, regularization=params.regularization, alpha=1.0,
                                        iterations=params.iterations, random_state=0)
        with threadpool_limits(1, "blas"):  # as implicit itself recommends
            start = time.perf_counter()
            model.fit(confidence, show_progress=False)
            result["als_fit_implicit_seconds"] = time.perf_counter() - start
        result["als_matrix"] = {"users": int(matrix.shape[0]), "items": int(matrix.shape[1]), "nnz": int(matrix.nnz)}
    Path(args.out).write_text(json.dumps(result, default=float))
    return 0


def neighbour_recall(arrays: dict, window_start: int, queries: int = 2000, seed: int = 0) -> dict:
    """Share of the exact top-k neighbours (brute force, sampled queries) that the bundle's lists hold."""
    import numpy as np

    from recommender.models.neighbours import cosine_neighbours

    rng = np.random.default_rng(seed)
    out = {}
    for name, vectors in (("text", arrays["text_vectors"]), ("cf", arrays["item_factors"])):
        lists = arrays[f"{name}_nb_idx"]
        W = np.asarray(vectors[window_start:], dtype=np.float32)
        W = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
        if W.shape[0] < 2 or not np.any(lists >= 0):
            continue
        q = np.sort(rng.choice(W.shape[0], size=min(queries, W.shape[0]), replace=False))
        k = lists.shape[1]
        exact, _ = cosine_neighbours(W[q], W, k, query_ids=q)
        got = lists[q] - window_start
        hits = [np.intersect1d(exact[i][exact[i] >= 0], got[i][got[i] >= 0]).size / max(1, int((exact[i] >= 0).sum()))
                for i in range(q.size)]
        hits10 = [np.intersect1d(exact[i, :10], got[i, :10]).size / 10 for i in range(q.size)]
        out[name] = {f"recall@{k}": round(float(np.mean(hits)), 4), "recall@10": round(float(np.mean(hits10)), 4),
                     "queries": int(q.size)}
    return out


def ensure_data(args: argparse.Namespace) -> Path:
    """The cached store, generated in a separate process so this one stays small."""
    from benchmarks.synthetic_scale import cache_path

    path = cache_path(args.articles, args.users, args.events, args.seed, args.days)
    if not path.exists():
        print(f"generating {path.name} (cached for later runs) ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "synthetic_scale.py"), "--articles",
                        str(args.articles), "--users", str(args.users), "--events", str(args.events), "--days",
                        str(args.days), "--seed", str(args.seed)], check=True)
    return path


def run(args: argparse.Namespace) -> dict:
    db = ensure_data(args)
    runs = []
    with tempfile.TemporaryDirectory(prefix="newsrec-bench-train-") as tmp:
        for r in range(args.repeat):
            out = Path(tmp) / f"run{r}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--db", str(db), "--models",
                   str(Path(tmp) / "models"), "--out", str(out), "--window-days", str(args.window_days)]
            if args.no_baseline or r > 0:  # the baseline once is enough
                cmd.append("--no-baseline")
            if args.verbose:
                cmd.append("--verbose")
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            print(f"run {r + 1}/{args.repeat}: {time.perf_counter() - start:.1f}s", flush=True)
            runs.append(json.loads(out.read_text()))
    flat = []
    for res in runs:
        row = {f"stage:{k}": v for k, v in res["stages"].items()}
        row.update(total_seconds=res["total_seconds"], peak_memory_mb=res["peak_memory_mb"],
                   als_fit_ours_seconds=res["als_fit_ours_seconds"])
        flat.append(row)
    med = median_runs(flat)
    first = runs[0]
    out = {
        "benchmark": "training",
        "size": {"articles": args.articles, "users": args.users, "events": args.events, "days": args.days,
                 "window_days": args.window_days},
        "repeats": len(runs),
        "total_seconds": med["total_seconds"],
        "peak_memory_mb": med["peak_memory_mb"],
        "stages_seconds": {k[len("stage:"):]: v for k, v in med.items() if k.startswith("stage:")},
        "als_fit_ours_seconds": med.get("als_fit_ours_seconds"),
        "als_fit_implicit_seconds": first.get("als_fit_implicit_seconds"),
        "als_matrix": first.get("als_matrix"),
        "neighbour_recall": first.get("neighbour_recall"),
        "report": {k: v for k, v in first["report"].items() if k != "timings_seconds"},
        "runs": runs,
        "targets": {"total_seconds": TARGET_SECONDS, "peak_memory_mb": TARGET_MEMORY_MB},
    }
    if out["als_fit_implicit_seconds"]:
        out["als_ratio_ours_to_implicit"] = round(out["als_fit_ours_seconds"] / out["als_fit_implicit_seconds"], 3)
    return out


def show(res: dict) -> None:
    size = res["size"]
    rows = [[name, res["stages_seconds"].get(name, float("nan"))] for name in STAGES]
    rows.append(["total (median)", res["total_seconds"]])
    print_table(f"Training, {size['articles']:,} articles / {size['users']:,} readers / {size['events']:,} events "
                f"(median of {res['repeats']})", rows, ["stage", "seconds"])
    summary = [
        ["total seconds", res["total_seconds"], TARGET_SECONDS, verdict(res["total_seconds"], TARGET_SECONDS)],
        ["peak memory MB", res["peak_memory_mb"], TARGET_MEMORY_MB, verdict(res["peak_memory_mb"], TARGET_MEMORY_MB)],
    ]
    if res.get("als_fit_implicit_seconds"):
        summary.append(["ALS ours / implicit", res["als_ratio_ours_to_implicit"], 1.0,
                        verdict(res["als_ratio_ours_to_implicit"], 1.05)])
        summary.append(["  ALS fit ours s", res["als_fit_ours_seconds"], float("nan"), ""])
        summary.append(["  ALS fit implicit s", res["als_fit_implicit_seconds"], float("nan"), ""])
    print_table("Against the targets", summary, ["figure", "value", "target", ""])
    print("\nneighbour lists vs brute force: " + json.dumps(res.get("neighbour_recall")))
    print("report: " + json.dumps(res["report"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time every training stage at portal scale.")
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=float, default=28.0, help="span of the synthetic data (default 28)")
    ap.add_argument("--window-days", type=float, default=None,
                    help="serving window (default: --days, i.e. every article is in the window: the worst case)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="training runs, each in a fresh process (default 3)")
    ap.add_argument("--no-baseline", action="store_true", help="skip implicit's own ALS fit")
    ap.add_argument("--verbose", action="store_true", help="print each stage as it runs")
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--models", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.window_days is None:
        args.window_days = args.days
    if args.child:
        return _child(args)
    res = run(args)
    show(res)
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
