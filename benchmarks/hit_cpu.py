"""Where a cached feed's CPU goes over HTTP: per request, the serving workers', the other replica's
and the PostgreSQL server's CPU, next to the bare-Flask ceiling measured in the same run.

`portal.py` gives requests per second; this gives what each request costs every process on the
machine, which on two shared cores decides the requests per second (issue 13's "HTTP feed >= 25 %
of the ceiling": a cached feed may cost about 2 cores / (ceiling / 4) of CPU in all).

For each backend: ``newsrec serve --workers 2`` on the scale store (on PostgreSQL ``--replicas``
servers on one database, the load on the first, the others following its served lists as a
portal's hosts do), 200 readers of ``portal.py``'s sample warmed up, then ``--rounds`` of: the
bare-Flask ceiling, ``wrk`` on the cached feeds for ``--seconds``, every process's CPU from
``/proc`` before and after (workers of each replica, every PostgreSQL backend), the CPU they still
use in the 3 s after the load (work it left behind), and the event POST p99 right after
(``--posts``, one keep-alive client).

Usage::

    python benchmarks/hit_cpu.py [--events 10000000] [--backends sqlite,postgresql] [--replicas 2]
        [--rounds 2] [--seconds 10] [--posts 300] [--db postgresql://...] [--json OUT]

``--db``: a PostgreSQL database that already holds the scale store (else one is created on
``--server``, copied into with ``migrate-store`` and dropped afterwards: ~4 min at 10M events).

``--probes real,select1,none,lag1``: PostgreSQL's servers with every cached page checking its
reader in the database (real: ``NEWSREC_LAG_SECONDS=0``), with that check replaced by ``SELECT 1``
(the floor of any round trip) or by none (``benchmarks/probe_floor``: measurement only), or run
with ``NEWSREC_LAG_SECONDS=1`` (lag1, newsrec's default on PostgreSQL since 2026-12-06: a worker
reuses its answer about a reader for up to a second, ended by the notices of writes), the variants
taking turns round by round, each on servers of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

from benchmarks.common import print_table, write_json  # noqa: E402
from benchmarks.portal import (DEFAULT_SERVER, Databases, add_key, add_size_args, copy_to_postgres,  # noqa: E402
                               event_posts, feed_cache_counts, fill_sizes, sample_ids, scale_store, working_copy)

AFTER_SECONDS = 3.0  # CPU still used this long after the load: what it left for later
PROBES = ("real", "select1", "none", "lag1")  # benchmarks/probe_floor/sitecustomize.py; lag1: NEWSREC_LAG_SECONDS=1


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (those gone meanwhile count 0)."""
    from benchmarks.http_overhead import cpu_seconds as one

    total = 0.0
    for pid in pids:
        try:
            total += one([pid])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (backends, writer, WAL writer, ...)."""
    out = subprocess.run(["pgrep", "-f", "postgres:"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def probe_env(probe: str) -> dict:
    """Environment of a server whose cached feeds check their reader as ``probe`` says."""
    if probe == "real":  # every cached feed asks the database (NEWSREC_LAG_SECONDS=0)
        return {"NEWSREC_LAG_SECONDS": "0"}
    if probe == "lag1":  # newsrec's default on PostgreSQL: answers reused up to 1 s, ended by notices
        return {"NEWSREC_LAG_SECONDS": "1"}
    path = str(_HERE / "probe_floor")
    if os.environ.get("PYTHONPATH"):
        path += os.pathsep + os.environ["PYTHONPATH"]
    return {"NEWSREC_BENCH_PROBE": probe, "PYTHONPATH": path, "NEWSREC_LAG_SECONDS": "0"}


def measure(backend: str, location: str, models: Path, users: list[str], articles: list[str], args,
            folder: Path, probe: str = "real") -> list[dict]:
    from benchmarks.serving import free_port, gunicorn_pids, serve, serve_hello, stop, wait_ready, wait_workers, wrk

    readers = list(dict.fromkeys(users))[:200]
    paths = [f"/v1/users/{u}/feed?limit=20" for u in readers]
    key = add_key(location)
    replicas = args.replicas if backend == "postgresql" else 1
    procs, ports, rounds = [], [], []
    try:
        hello = free_port()
        procs.append(serve_hello(hello, log=folder / "hello.log"))
        wait_ready(f"http://127.0.0.1:{hello}/hello", procs[-1])
        wait_workers(procs[-1], 2)
        for i in range(replicas):
            home, prom = folder / f"{backend}-{probe}-home-{i}", folder / f"{backend}-{probe}-prometheus-{i}"
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(prom, ignore_errors=True)
            home.mkdir()
            prom.mkdir()
            ports.append(free_port())
            procs.append(serve(home, location, models, ports[-1], log=folder / f"{backend}-{i}.log",
                               env={"PROMETHEUS_MULTIPROC_DIR": str(prom), **probe_env(probe)}))
        for proc, port in zip(procs[1:], ports):
            wait_ready(f"http://127.0.0.1:{port}/healthz", proc, timeout=300)
            wait_workers(proc, 2, mapped=models)
        groups = {f"replica_{chr(ord('a') + i)}": gunicorn_pids(p.pid) for i, p in enumerate(procs[1:])}
        url = f"http://127.0.0.1:{ports[0]}"
        wrk(f"http://127.0.0.1:{hello}", ["/hello"], "", 3, args.connections, folder)
        wrk(url, paths, key, 3, args.connections, folder)
        for _ in range(args.rounds):
            ceiling = wrk(f"http://127.0.0.1:{hello}/hello", ["/hello"], "", args.seconds, args.connections,
                          folder)["rps"]
            wrk(url, paths, key, 2, args.connections, folder)  # cached pages live 30 s: warm them again
            if backend == "postgresql":
                groups["postgresql_server"] = postgres_pids()
            before, lookups = {k: cpu_seconds(v) for k, v in groups.items()}, feed_cache_counts(ports[0])
            started = time.monotonic()
            got = wrk(url, paths, key, args.seconds, args.connections, folder)
            elapsed = time.monotonic() - started
            after, looked = {k: cpu_seconds(v) for k, v in groups.items()}, feed_cache_counts(ports[0])
            time.sleep(AFTER_SECONDS)  # a fixed window after the load, not a wait for a condition
            later = {k: cpu_seconds(v) for k, v in groups.items()}
            n = got["rps"] * args.seconds
            asked = sum(looked.values()) - sum(lookups.values())
            run = {"ceiling_rps": ceiling, "rps": got["rps"], "share": round(got["rps"] / ceiling, 3),
                   "hit_share": round((looked["hit"] - lookups["hit"]) / asked, 3) if asked else 0.0,
                   "cpu_ms_per_request": {k: round((after[k] - before[k]) / n * 1e3, 3) for k in groups},
                   "cores_used": {k: round((after[k] - before[k]) / elapsed, 2) for k in groups},
                   "cpu_ms_per_request_after": {k: round((later[k] - after[k]) / n * 1e3, 3) for k in groups}}
            if args.posts:
                run["event_post_p99_ms"] = round(event_posts(ports[0], key, users, articles, args.posts)["p99_ms"], 2)
            print(f"  {backend}{'' if probe == 'real' else f' ({probe})'}: {json.dumps(run)}", flush=True)
            rounds.append(run)
    finally:
        for proc in procs:
            stop(proc)
    return rounds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_args(ap, 100_000, "events in the scale store (the issue's size: 10000000)")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--replicas", type=int, default=2, help="PostgreSQL servers on the database (the load on the first)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--posts", type=int, default=300, help="event posts timed right after each load (0: none)")
    ap.add_argument("--db", default=None, help="a PostgreSQL database holding the scale store already")
    ap.add_argument("--server", default=DEFAULT_SERVER, help="admin URL of the PostgreSQL server")
    ap.add_argument("--probes", default="real",
                    help="PostgreSQL's check of a cached page's reader: real (the probe every time: "
                         "NEWSREC_LAG_SECONDS=0), select1 (one round trip reading nothing), none (no round trip; "
                         "measurement only), lag1 (NEWSREC_LAG_SECONDS=1, the default on PostgreSQL, ended by "
                         "notices), comma-separated")
    ap.add_argument("--json", type=Path, default=None)
    args = fill_sizes(ap.parse_args(argv))
    probes = [p.strip() for p in args.probes.split(",") if p.strip()]
    if not probes or set(probes) - set(PROBES):
        ap.error(f"--probes: one or more of {', '.join(PROBES)}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - {"sqlite", "postgresql"}:
        ap.error("--backends: sqlite and/or postgresql")
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    results: dict = {"events": args.events, "articles": args.articles, "readers": args.users,
                     "seconds": args.seconds, "connections": args.connections, "backends": {}}
    dbs = Databases(args.server)
    try:
        with tempfile.TemporaryDirectory(prefix="newsrec-hitcpu-") as tmp:
            folder = Path(tmp)
            cached, models = scale_store(args)
            db = working_copy(cached, folder)
            users, articles = sample_ids(db, 2200, np.random.default_rng(args.seed))
            results["postgresql_settings"] = dbs.settings()
            for backend in backends:
                if backend == "sqlite":
                    location = str(db)
                else:
                    location = args.db
                    if location is None:
                        location = dbs.create()
                        print("copying the scale store into PostgreSQL ...", flush=True)
                        copy_to_postgres(db, location)
                if backend == "sqlite" or probes == ["real"]:
                    results["backends"][backend] = measure(backend, location, models, users, articles, args, folder)
                    continue
                one = argparse.Namespace(**{**vars(args), "rounds": 1})
                for _ in range(args.rounds):  # the variants take turns: the machine's speed drifts
                    for probe in probes:
                        name = backend if probe == "real" else f"{backend} ({probe})"
                        results["backends"].setdefault(name, []).extend(
                            measure(backend, location, models, users, articles, one, folder, probe))
    finally:
        dbs.drop_all()
    rows = []
    for backend, runs in results["backends"].items():
        for group in runs[0]["cpu_ms_per_request"]:
            rows.append((backend, group, statistics.median(r["cpu_ms_per_request"][group] for r in runs),
                         statistics.median(r["cpu_ms_per_request_after"][group] for r in runs)))
        rows.append((backend, "share of the ceiling", statistics.median(r["share"] for r in runs), ""))
        if args.posts:
            rows.append((backend, "event POST p99 after the load (ms)",
                         statistics.median(r["event_post_p99_ms"] for r in runs), ""))
    print_table(f"cached feeds over HTTP, {args.events} events, medians of {args.rounds} rounds", rows,
                ("backend", "what", "CPU ms a request (or figure)", f"CPU ms a request in the {AFTER_SECONDS:g} s after"))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
