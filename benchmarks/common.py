"""Shared helpers of the benchmarks: timing, percentiles, peak memory, tables and JSON.

Every benchmark reports medians of repeated runs and percentiles of many calls; this module
keeps those definitions in one place so the figures in ``benchmarks/README.md`` mean the
same thing everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def add_scale_args(ap: argparse.ArgumentParser) -> None:
    """Options naming the cached scale data set (``synthetic_scale.py``) and its trained bundle."""
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=None, help="size of the store (default: 10 per reader)")
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--window-days", type=float, default=None, help="serving window (default --days: all articles)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true", help="train a new bundle even if one is cached")


def parse_scale_args(ap: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, filling the defaults of :func:`add_scale_args` that depend on other options."""
    args = ap.parse_args(argv)
    args.events = args.events or args.users * 10
    args.window_days = args.window_days or args.days
    return args


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def children_peak_rss_mb() -> float:
    """Largest peak resident memory of any waited-for child process (MB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def rss_mb(pid: int) -> dict[str, float]:
    """Resident, proportional (PSS), private and anonymous memory of a live process (MB), from /proc.

    ``anonymous`` is the process's own heap: what another worker costs. Memory-mapped bundle
    pages are file-backed; they count as private only while a single process maps them.
    """
    out = {"rss": float("nan"), "pss": float("nan"), "private": float("nan"), "anonymous": float("nan")}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    fields = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1]) / 1024.0
    out["rss"] = fields.get("Rss", float("nan"))
    out["pss"] = fields.get("Pss", float("nan"))
    out["private"] = fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0)
    out["anonymous"] = fields.get("Anonymous", float("nan"))
    return out


def percentiles_ms(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50, p90, p99, max and mean of call durations given in seconds, in milliseconds."""
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    if a.size == 0:
        return {"n": 0, "p50_ms": float("nan"), "p90_ms": float("nan"), "p99_ms": float("nan"),
                "max_ms": float("nan"), "mean_ms": float("nan")}
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 4),
            "p90_ms": round(float(np.percentile(a, 90)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "max_ms": round(float(a.max()), 4), "mean_ms": round(float(a.mean()), 4)}


def time_calls(fn: Callable[[Any], Any], args: Iterable[Any], warmup: int = 50) -> np.ndarray:
    """Duration in seconds of ``fn(arg)`` for each arg; the first ``warmup`` calls are not kept."""
    out = []
    for i, arg in enumerate(args):
        start = time.perf_counter()
        fn(arg)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            out.append(elapsed)
    return np.asarray(out)


def median_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-key median of several runs' flat figures (keys missing in a run are skipped)."""
    keys = dict.fromkeys(k for r in runs for k in r)
    out = {}
    for k in keys:
        values = [r[k] for r in runs if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        if values:
            out[k] = round(float(statistics.median(values)), 4)
    return out


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    import scipy
    import sklearn

    versions = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                "scikit-learn": sklearn.__version__}
    try:
        import implicit

        versions["implicit"] = implicit.__version__
    except Exception:  # pragma: no cover - optional in some runs
        pass
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(sorted({f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                                 for i in threadpool_info()}))
    except Exception:  # pragma: no cover
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "os": platform.platform(),
            "versions": versions, "blas": blas, "git": _git_revision(),
            # other work on the box at the end of the run (1, 5, 15 min): figures are only as quiet as this
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _git_revision() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    """Write the figures (plus the machine) as pretty JSON; ``None`` writes nothing."""
    if not path:
        return
    payload = dict(payload)
    payload.setdefault("machine", machine())
    payload.setdefault("measured_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def print_table(title: str, rows: list[Sequence[Any]], header: Sequence[str]) -> None:
    """A plain aligned text table on stdout."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def verdict(value: float, target: float, higher_is_better: bool = False) -> str:
    if value != value:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "ok" if ok else "MISSED"


def sample_store(root: Path, n_articles: int, n_users: int, days: float, seed: int = 0,
                 synchronous: str = "OFF", end=None):
    """``(data, store, now)``: the generated Indonesian sample written under ``root`` and imported
    into a SQLite store there (articles, events, preferences); ``now`` is a minute after its
    newest event. ``synchronous="OFF"`` where the benchmark does not measure the store's writes."""
    from recommender.datasets.ingest import import_articles, import_events, import_preferences
    from recommender.datasets.synthetic import generate
    from recommender.domain import parse_time
    from recommender.store import SQLiteStore

    extra = {} if end is None else {"end": end}
    data = generate(n_articles=n_articles, n_users=n_users, days=days, seed=seed, **extra)
    paths = data.write_jsonl(root / "sample")
    store = SQLiteStore(root / "s.sqlite3", synchronous=synchronous)
    import_articles(store, paths["articles"], show_progress=False)
    import_events(store, paths["events"], show_progress=False)
    import_preferences(store, paths["preferences"], show_progress=False)
    return data, store, max(parse_time(e["ts"], "ts") for e in data.events) + 60.0
