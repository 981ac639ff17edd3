"""Per-request overhead of the HTTP layer: bare Flask ``/hello`` vs related and feed through gunicorn.

A targeted part of ``benchmarks/serving.py`` (same servers, same wrk rotation, 16 connections)
that runs in ~2 minutes, so a change to ``api/`` can be measured before/after in one session,
and optionally a py-spy profile of one worker serving ``related``, summarized as text.

Usage::

    python benchmarks/http_overhead.py --repeat 3 --seconds 8 [--threads 4] [--profile OUT.txt]

Works on a copy of the scale store (``--work``; kept between runs with ``--keep``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
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

from benchmarks.common import CACHE, ROOT  # noqa: E402
from benchmarks.serving import (  # noqa: E402
    CONNECTIONS, free_port, gunicorn_pids, sample_requests, serve_hello, stop, wait_ready, wrk,
)

_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")  # "func (path/to/file.py:12)" -> "func (to/file.py)"
SCALE = "scalev3-a100000-u1000000-e10000000-d28-s0"


def serve(home: Path, db: Path, models: Path, port: int, threads: int, log: Path) -> subprocess.Popen:
    """``newsrec serve`` as in ``benchmarks.serving.serve``, with the threads per worker chosen."""
    # NEWSREC_RATELIMIT=off: wrk sends thousands of requests a second with one key, past the per-key limit
    env = dict(os.environ, NEWSREC_HOME=str(home), NEWSREC_DB=str(db), NEWSREC_MODELS=str(models),
               NEWSREC_LOG_LEVEL="warning", NEWSREC_RATELIMIT="off")
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "training", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "2", "--threads", str(threads), "--blas-threads", "1"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (all their threads) so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def measured(server: subprocess.Popen, url: str, paths: list[str], key: str, seconds: float, work: Path) -> dict:
    """One wrk run plus the server workers' CPU time per request: robust to other load on the
    machine, unlike req/s, as long as the work per request does not change with contention."""
    pids = gunicorn_pids(server.pid)
    before = cpu_seconds(pids)
    res = wrk(url, paths, key, seconds, CONNECTIONS, work)
    res["cpu_us_per_req"] = round((cpu_seconds(pids) - before) / (res["rps"] * seconds) * 1e6, 1)
    return res


def summarize_profile(raw: Path, top: int = 30) -> str:
    """Top frames by own and by total samples from py-spy's collapsed stacks (``-f raw``)."""
    own, total, samples = collections.Counter(), collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_FRAME.sub(lambda m: f"{m[1]} ({'/'.join(m[2].split('/')[-2:])})", f) for f in stack.split(";")]
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    out = [f"samples: {samples}", "", f"top {top} by own samples (% of all):"]
    out += [f"{100 * c / samples:6.1f} %  {f}" for f, c in own.most_common(top)]
    out += ["", f"top {top} by total samples (frame on the stack, % of all):"]
    out += [f"{100 * c / samples:6.1f} %  {f}" for f, c in total.most_common(top)]
    return "\n".join(out) + "\n"


def median(runs: list[dict]) -> dict:
    keys = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in keys} | {
        "non_2xx": sum(r["non_2xx"] for r in runs), "rps_runs": [r["rps"] for r in runs]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=str(CACHE / f"{SCALE}.sqlite3"))
    ap.add_argument("--models", default=str(CACHE / f"models-{SCALE}-w28"))
    ap.add_argument("--work", default=None, help="folder for the store copy (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the store copy in --work")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4, help="threads per newsrec worker (hello keeps 4)")
    ap.add_argument("--no-feed", action="store_true")
    ap.add_argument("--no-hello", action="store_true")
    ap.add_argument("--profile", default=None, help="py-spy one worker during a related run; summary to this file")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="newsrec-http-"))
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "newsrec.sqlite3"
    if not copy.exists():
        shutil.copyfile(args.db, copy)
        os.sync()
    ids = work / "ids.json"
    if not ids.exists():
        from recommender.models.bundle import load_bundle
        from recommender.models.served import ServingModel
        from recommender.store import SQLiteStore

        model = ServingModel.from_bundle(load_bundle(Path(args.models)))
        articles, users = sample_requests(SQLiteStore(copy), model, 5000, np.random.default_rng(1))
        ids.write_text(json.dumps({"articles": articles, "users": users}))
    sample = json.loads(ids.read_text())
    related = [f"/v1/articles/{a}/related?limit=10" for a in sample["articles"]]
    feed = [f"/v1/users/{u}/feed?limit=20" for u in sample["users"]]
    log = work / "server.log"
    res: dict = {"threads": args.threads, "seconds": args.seconds, "repeat": args.repeat, "connections": CONNECTIONS}

    if not args.no_hello:
        port = free_port()
        hello = serve_hello(port, log)
        try:
            wait_ready(f"http://127.0.0.1:{port}/hello", hello)
            wrk(f"http://127.0.0.1:{port}", ["/hello"], "", 2, CONNECTIONS, work)
            res["hello"] = median([measured(hello, f"http://127.0.0.1:{port}", ["/hello"], "", args.seconds, work)
                                   for _ in range(args.repeat)])
        finally:
            stop(hello)

    from recommender.security import KEYS_FILE, KeyStore

    home = work / "home"
    home.mkdir(exist_ok=True)
    key, _ = KeyStore(home / KEYS_FILE).add("site", name="http-overhead")
    port = free_port()
    server = serve(home, copy, Path(args.models), port, args.threads, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", server)
        wrk(base, related[:1000], key, 3, CONNECTIONS, work)
        if not args.no_feed:
            wrk(base, feed[:500], key, 3, CONNECTIONS, work)
        runs: dict[str, list] = {"related": [], "feed": []}
        for _ in range(args.repeat):
            runs["related"].append(measured(server, base, related, key, args.seconds, work))
            if not args.no_feed:
                runs["feed"].append(measured(server, base, feed, key, args.seconds, work))
        for name, r in runs.items():
            if r:
                res[name] = median(r)
        if args.profile:
            raw = work / "related.raw"
            worker = gunicorn_pids(server.pid)[0]
            spy = subprocess.Popen([str(ROOT / ".venv" / "bin" / "py-spy"), "record", "-p", str(worker), "-d",
                                    str(int(args.seconds)), "-r", "200", "--gil", "-f", "raw", "-o", str(raw)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            wrk(base, related, key, args.seconds + 1, CONNECTIONS, work)
            spy.wait()
            Path(args.profile).parent.mkdir(parents=True, exist_ok=True)
            Path(args.profile).write_text(
                "py-spy record -r 200 --gil (samples of the thread holding the GIL) of one gunicorn worker "
                f"(2 workers x {args.threads} threads) serving GET /v1/articles/<id>/related?limit=10\n"
                f"under wrk -c{CONNECTIONS} on 2 cores. Time in syscalls that release the GIL (socket writes, "
                "epoll) is not in these samples.\n\n" + summarize_profile(raw))
    finally:
        stop(server)
        (home / KEYS_FILE).unlink(missing_ok=True)
    for name in ("related", "feed"):
        if name in res and "hello" in res:
            res[f"{name}_share"] = round(res[name]["rps"] / res["hello"]["rps"], 3)
            res[f"{name}_cpu_share"] = round(res["hello"]["cpu_us_per_req"] / res[name]["cpu_us_per_req"], 3)
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
