"""Event POST latency over HTTP: ``newsrec serve --workers 2`` on SQLite and on PostgreSQL, one
sequential keep-alive client posting single events (issue 13: p99 <= 5 ms on both backends).

The servers are those of ``portal.py``'s HTTP part: the portal scale store (cached in
``benchmarks/cache``; a working copy per server) and a copy of it in a PostgreSQL database made
for the run. All servers run at once, idle beside the one measured (as replica B and the SQLite
server do in ``portal.py``); each run posts ``--posts`` events to every server in turn.

``--code DIR`` (repeatable) serves the same data from other checkouts too (e.g. a ``git worktree``
of the commit before a change): servers of every checkout are measured in alternation in each run,
so old and new code see the same load. Each checkout gets its own SQLite copy and PostgreSQL
database (a newer schema would be refused by older code).

Usage::

    python benchmarks/event_post.py [--events 100000] [--posts 500] [--repeat 3] [--code ../old] [--json OUT]

Prints p50/p99 per backend and checkout, and the CPU time per post of the server's gunicorn workers
and (PostgreSQL) of its database connections' server processes (steadier than wall time on a
shared machine): medians over the runs (p99 of each run, then the median).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import ROOT, print_table, write_json  # noqa: E402
from benchmarks.portal import DEFAULT_SERVER, Databases, add_key, event_posts, sample_ids, scale_store  # noqa: E402
from benchmarks.http_overhead import cpu_seconds  # noqa: E402
from benchmarks.serving import free_port, gunicorn_pids, stop, wait_ready  # noqa: E402

TARGET_P99_MS = 5.0


def backend_pids(url: str) -> list[int]:
    """PostgreSQL server processes of newsrec connections to ``url``'s database (its pools)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'newsrec' "
                                           "AND datname = current_database() AND pid <> pg_backend_pid()")]


def measured(port: int, key: str, master: int, url: str | None, users: list[str], articles: list[str],
             posts: int) -> dict:
    """``portal.event_posts`` plus the workers' CPU per post and, on PostgreSQL, the server's: CPU
    time is what load on a shared machine changes least."""
    workers = gunicorn_pids(master)
    backends = backend_pids(url) if url else []
    before = cpu_seconds(workers), cpu_seconds(backends)
    got = event_posts(port, key, users, articles, posts)
    backends = [p for p in backends if os.path.exists(f"/proc/{p}")]
    got["worker_cpu_ms"] = round((cpu_seconds(workers) - before[0]) * 1e3 / (posts + 50), 3)  # 50: warm-up
    if url:
        got["server_cpu_ms"] = round((cpu_seconds(backends) - before[1]) * 1e3 / (posts + 50), 3)
    return got


def serve_from(code: Path, home: Path, location: str, models: Path, port: int, log: Path) -> subprocess.Popen:
    """``newsrec serve --workers 2`` run from checkout ``code`` (as ``benchmarks.serving.serve``)."""
    env = dict(os.environ, NEWSREC_HOME=str(home), NEWSREC_DB=location, NEWSREC_MODELS=str(models),
               NEWSREC_LOG_LEVEL="warning", NEWSREC_RATELIMIT="off", PYTHONPATH=str(code))
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "training", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "2", "--blas-threads", "1"]
    return subprocess.Popen(cmd, env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="size of the portal store (as portal.py)")
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--posts", type=int, default=500, help="events posted to each server per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--code", type=Path, action="append", default=[],
                    help="another checkout to serve from, measured in alternation with this one")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--server", default=DEFAULT_SERVER, help="admin URL of the PostgreSQL server")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.articles, args.users = max(2000, args.events // 100), max(1000, args.events // 10)
    backends = args.backends.split(",")
    codes = {"this": ROOT, **{str(c): c.resolve() for c in args.code}}

    from benchmarks.portal import copy_to_postgres, working_copy

    load_before = os.getloadavg()
    dbs = Databases(args.server)
    procs: list[subprocess.Popen] = []
    runs: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="newsrec-event-post-") as tmp:
            folder = Path(tmp)
            cached, models = scale_store(args)
            users, articles = sample_ids(cached, 2000, np.random.default_rng(args.seed))
            servers = {}  # (code name, backend) -> (port, key, master pid, PostgreSQL URL or None)
            for name, code in codes.items():
                for backend in backends:
                    place = folder / f"{len(servers)}"
                    place.mkdir()
                    if backend == "sqlite":
                        location = str(working_copy(cached, place))
                    else:
                        location = dbs.create()
                        copy_to_postgres(cached, location)
                    port = free_port()
                    procs.append(serve_from(code, place, location, models, port, place / "server.log"))
                    servers[name, backend] = (port, add_key(location), procs[-1].pid,
                                              location if backend == "postgresql" else None)
            for proc, (port, *_) in zip(procs, servers.values()):
                wait_ready(f"http://127.0.0.1:{port}/healthz", proc, timeout=300)
            for r in range(args.repeat):
                run = {}
                for (name, backend), (port, key, master, url) in servers.items():
                    run[f"{name}|{backend}"] = measured(port, key, master, url, users, articles, args.posts)
                runs.append(run)
                print(f"run {r + 1}: " + ", ".join(f"{k} {v['p50_ms']:.2f}/{v['p99_ms']:.2f}" for k, v in run.items()),
                      flush=True)
    finally:
        for proc in procs:
            stop(proc)
        dbs.drop_all()
    results = {"events": args.events, "posts": args.posts, "repeat": args.repeat,
               "load_average_before": [round(x, 2) for x in load_before],
               "load_average_after": [round(x, 2) for x in os.getloadavg()], "runs": runs, "median": {}}
    rows = []
    for which in runs[0]:
        med = {p: round(statistics.median(run[which][p] for run in runs), 3)
               for p in ("p50_ms", "p99_ms", "worker_cpu_ms", "server_cpu_ms") if p in runs[0][which]}
        results["median"][which] = med
        rows.append((f"event POST, {which} workers' CPU per post (ms)", med["worker_cpu_ms"], float("nan"), ""))
        if "server_cpu_ms" in med:
            rows.append((f"event POST, {which} PostgreSQL CPU per post (ms)", med["server_cpu_ms"], float("nan"), ""))
        rows.append((f"event POST, {which} p50 (ms)", med["p50_ms"], float("nan"), ""))
        rows.append((f"event POST, {which} p99 (ms)", med["p99_ms"], TARGET_P99_MS,
                     "met" if med["p99_ms"] <= TARGET_P99_MS else "NOT met"))
    print_table(f"event POST over HTTP, one keep-alive client, {args.posts} posts per server and run; medians of "
                f"{args.repeat} runs; load average before {results['load_average_before']}, after "
                f"{results['load_average_after']}", rows, ("figure", "value", "target", "verdict"))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
