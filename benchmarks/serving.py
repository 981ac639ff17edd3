"""Serving at portal scale: in-process latency and HTTP throughput through gunicorn.

In-process (one :class:`recommender.engine.Engine` on the scale store and its trained bundle):
p50/p99 of ``related`` and ``feed`` over >= 2,000 calls each (a warm-up excluded), of posting
one event (durable, ``synchronous=FULL``) and one article (stored, embedded, bridged, placed in
a story, neighbours found), of embedding one new article, and of start-up.

Over HTTP (``newsrec serve``: gunicorn, 2 gthread workers, one BLAS thread each, loopback):
requests per second and p99 of related and feed with ``wrk`` at 16 connections, next to a bare
Flask JSON endpoint served the same way in the same run (the machine's ceiling), and the memory
of each worker (a second worker adds only its private memory: bundle arrays are memory-mapped).

Usage::

    python benchmarks/serving.py --articles 100000 --users 1000000 --json OUT

The store comes from ``benchmarks/synthetic_scale.py`` and the bundle from a training run, both
cached under ``benchmarks/cache/``; the benchmark works on a copy of the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    CACHE, ROOT, add_scale_args, parse_scale_args, percentiles_ms, print_table, rss_mb, time_calls, verdict,
    write_json,
)

TARGETS = {
    "related_p99_ms": 1.0, "feed_p99_ms": 3.0, "event_p99_ms": 2.0, "embed_p99_ms": 2.0, "startup_seconds": 5.0,
    "incremental_1000_seconds": 10.0, "http_related_share": 0.5, "http_feed_share": 0.25, "http_p99_ms": 20.0,
}
CONNECTIONS = 16


def hello_app():
    """The bare Flask ceiling: one JSON endpoint, nothing else (``gunicorn 'benchmarks.serving:hello_app()'``)."""
    from flask import Flask

    app = Flask("hello")

    @app.get("/hello")
    def hello():
        return {"status": "ok"}

    return app


# -- data --------------------------------------------------------------------------------------

def ensure_model(args: argparse.Namespace) -> tuple[Path, Path]:
    """(store, models dir) of this size; generated and trained (once, cached) if missing."""
    from benchmarks.synthetic_scale import cache_path

    db = cache_path(args.articles, args.users, args.events, args.seed, args.days)
    if not db.exists():
        print(f"generating {db.name} ...", flush=True)
        subprocess.run([sys.executable, str(_HERE / "synthetic_scale.py"), "--articles", str(args.articles),
                        "--users", str(args.users), "--events", str(args.events), "--days", str(args.days),
                        "--seed", str(args.seed)], check=True)
    models = CACHE / f"models-{db.stem}-w{args.window_days:g}"
    if args.retrain and models.exists():
        shutil.rmtree(models)
    if not (models / "CURRENT").exists():
        print(f"training a bundle into {models.name} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, str(_HERE / "training.py"), "--child", "--db", str(db), "--models",
                            str(models), "--out", str(Path(tmp) / "train.json"), "--no-baseline", "--window-days",
                            str(args.window_days)], check=True)
    serve_folder(db, models)
    return db, models


def serve_folder(db: Path, models: Path) -> None:
    """Make the version ``CURRENT`` names in ``models`` the live one of ``db`` (and of copies made
    from it later): one cached store serves the model folders of several window sizes, and the
    database says which version is live."""
    from recommender.models.bundle import read_current
    from recommender.models.versions import promote
    from recommender.store import SQLiteStore

    store = SQLiteStore(db)
    try:
        promote(store, models, read_current(models), verify=False)
    finally:
        store.close()


def working_copy(db: Path, folder: Path) -> Path:
    """A private copy of the cached store (the benchmark writes events and articles)."""
    out = folder / "newsrec.sqlite3"
    shutil.copyfile(db, out)
    os.sync()  # else the kernel writes the copy back during the run and every fsync waits for it
    return out


def sample_requests(store, model, n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Article ids for related (by page views: popular articles more often) and user ids for feeds
    (by activity, as home page views come from active readers; 10 % readers the model never saw)."""
    window = np.arange(model.window_start, model.n_items)
    weight = model.evidence[window].astype(np.float64) + 1.0
    arts = rng.choice(window, size=n, p=weight / weight.sum())
    article_ids = [model.item_ids.id(int(i)) for i in arts]
    conn = store._conn()
    max_seq = int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0])
    seqs = rng.integers(1, max_seq + 1, size=int(n * 0.9)).tolist()
    users: list[str] = []
    for lo in range(0, len(seqs), 500):
        part = seqs[lo:lo + 500]
        marks = ",".join("?" * len(part))
        users += [r[0] for r in conn.execute(
            f"SELECT u.user_id FROM events e JOIN users u ON u.key = e.user_key WHERE e.seq IN ({marks})", part)]
    users += [f"new-reader-{i}" for i in range(n - len(users))]
    rng.shuffle(users)
    return article_ids, users


def new_articles(store, model, n: int, rng: np.random.Generator, now: float):
    """``n`` articles the model has not seen: follow-ups of random window articles (same story words)."""
    from recommender.domain import Article

    picks = rng.choice(np.arange(model.window_start, model.n_items), size=n, replace=False)
    found = store.get_articles([model.item_ids.id(int(i)) for i in picks])
    out = []
    for j, (aid, art) in enumerate(found.items()):
        sentences = art.body.split(". ")
        rng.shuffle(sentences)
        words = art.title.split()
        rng.shuffle(words)
        out.append(Article(article_id=f"bench-new-{j}-{aid}", title=" ".join(words), body=". ".join(sentences),
                           category=art.category, published_at=now - 60.0, region=art.region,
                           url=f"https://portal.example/new/{j}"))
    return out


# -- in-process ----------------------------------------------------------------------------------

def startup_seconds(db: Path, models: Path, home: Path, repeat: int) -> dict:
    """Wall time of a fresh process building the app (imports, bundle load, catch-up), median of runs."""
    code = ("import time, sys; t0 = time.perf_counter(); from api import create_app; t1 = time.perf_counter(); "
            "app = create_app({'START_BACKGROUND': False}); t2 = time.perf_counter(); "
            "print(t1 - t0, t2 - t1, app.extensions['newsrec'].model_version)")
    env = dict(os.environ, NEWSREC_HOME=str(home), NEWSREC_DB=str(db), NEWSREC_MODELS=str(models),
               OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
        wall = time.perf_counter() - start
        runs.append((wall, float(out[0]), float(out[1])))
        assert out[2] != "None", "the app started without a model"
    return {"process_seconds": round(statistics.median(r[0] for r in runs), 3),
            "import_seconds": round(statistics.median(r[1] for r in runs), 3),
            "create_app_seconds": round(statistics.median(r[2] for r in runs), 3)}


def inprocess(args: argparse.Namespace, db: Path, models: Path, work: Path) -> dict:
    from benchmarks.synthetic_scale import END
    from recommender.domain import Interaction
    from recommender.serving.engine import Engine, EngineConfig
    from recommender.store import SQLiteStore

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread, as `newsrec serve` gives each worker
    rng = np.random.default_rng(args.seed)
    now = END + 3600.0
    startup_clean = startup_seconds(db, models, work / "home", args.startup_repeat)  # nothing new since training
    store = SQLiteStore(db)
    start = time.perf_counter()
    engine = Engine(store, models, EngineConfig(), clock=lambda: now)
    engine_seconds = time.perf_counter() - start
    if args.background:  # as in a server: polls, counters, impressions, summaries once a second
        engine.start_background()
    model = engine._state.model
    n, warm = args.calls, args.warmup
    article_ids, user_ids = sample_requests(store, model, n + warm, rng)
    res: dict = {"engine_init_seconds": round(engine_seconds, 3), "window_articles": model.n_items - model.window_start,
                 "calls": n, "background_thread": bool(args.background)}

    def post(i: int, tag: str = "a") -> None:
        engine.record_events([Interaction(user_id=user_ids[i % len(user_ids)],
                                          article_id=article_ids[i % len(article_ids)], event="click", ts=now,
                                          event_id=f"bench-{tag}-{os.getpid()}-{i}")])

    # events first, on their own: then the impressions of the feeds below are not yet being written
    res["event"] = percentiles_ms(time_calls(post, range(n + warm), warmup=warm))
    related = time_calls(lambda a: engine.related(a, limit=10), article_ids, warmup=warm)
    feed = time_calls(lambda u: engine.feed(u, limit=20), user_ids, warmup=warm)
    res["related"] = percentiles_ms(related)
    res["feed"] = percentiles_ms(feed)
    res["feed_known_readers"] = percentiles_ms(feed[[not u.startswith("new-reader") for u in user_ids[warm:]]])
    # the same feeds with served lists not logged: what writing their impressions (one served-list row
    # each, on the background thread) costs the request thread on a shared 2-core machine
    engine.config = dataclasses.replace(engine.config, log_impressions=False)
    engine.flush_impressions()
    res["feed_without_impression_logging"] = percentiles_ms(
        time_calls(lambda u: engine.feed(u, limit=20), user_ids, warmup=warm))
    engine.config = dataclasses.replace(engine.config, log_impressions=True)
    # the same right after the feeds: the background thread is writing their impressions (a row a feed)
    res["feed_phases_ms"] = feed_phases(engine, user_ids[: 600 + warm], warmup=warm)
    res["event_while_logging_impressions"] = percentiles_ms(
        time_calls(lambda i: post(i, "b"), range(min(n, 1000) + warm), warmup=warm))
    res["impressions_queued"] = engine._impressions.qsize()

    fresh = new_articles(store, model, args.new_articles + 50, rng, now)
    emb = time_calls(lambda a: model.embed(a.title, a.body), fresh, warmup=50)
    res["embed"] = percentiles_ms(emb)
    publish = time_calls(lambda a: engine.publish_articles([a]), fresh, warmup=50)
    res["article"] = percentiles_ms(publish)
    res["incremental_1000_seconds"] = round(float(publish.mean()) * 1000, 2)
    # lists with the new articles in the catalog (fresh ones join every window scan)
    related2 = time_calls(lambda a: engine.related(a, limit=10), article_ids[: 1000 + warm], warmup=warm)
    feed2 = time_calls(lambda u: engine.feed(u, limit=20), user_ids[: 1000 + warm], warmup=warm)
    res["related_after_new"] = percentiles_ms(related2)
    res["feed_after_new"] = percentiles_ms(feed2)
    engine.close()
    res["startup"] = startup_clean
    # a restart later in the day: the articles published since training are embedded on start
    res["startup_after_new_articles"] = startup_seconds(db, models, work / "home", args.startup_repeat)
    res["startup_after_new_articles"]["new_articles"] = len(fresh)
    return res


def feed_phases(engine, user_ids: list[str], warmup: int = 100) -> dict:
    """Where a feed's time goes: mean ms per feed of each step (wrappers around the engine's parts)."""
    import functools

    import recommender.serving.engine as engine_module

    spent: dict[str, list[float]] = {}

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent.setdefault(name, []).append(time.perf_counter() - start)
        return wrapper

    patches = {"build_profile": "reader profile (fold-in, content vectors)", "feed_candidates": "candidates",
               "score_feed": "scoring candidates", "diversify": "diversify"}
    saved = {name: getattr(engine_module, name) for name in patches}
    store_read = engine.store.user_event_keys
    try:
        for name, label in patches.items():
            setattr(engine_module, name, timed(label, saved[name]))
        engine.store.user_event_keys = timed("reader's events (SQLite)", store_read)
        for u in user_ids[:warmup]:
            engine.feed(u, limit=20)
        spent.clear()
        total = time_calls(lambda u: engine.feed(u, limit=20), user_ids[warmup:], warmup=0)
    finally:
        for name in patches:
            setattr(engine_module, name, saved[name])
        engine.store.user_event_keys = store_read
    n = max(len(total), 1)
    out = {label: round(sum(v) / n * 1e3, 3) for label, v in spent.items()}
    out["everything else (reasons, items, preferences, list)"] = round(
        float(total.mean()) * 1e3 - sum(out.values()), 3)
    out["feed total (mean)"] = round(float(total.mean()) * 1e3, 3)
    return out


# -- HTTP ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def wait_workers(proc: subprocess.Popen, workers: int, mapped: Path | None = None, timeout: float = 300.0) -> None:
    """Wait until the gunicorn master ``proc`` has ``workers`` workers and each has ``mapped`` (a
    folder, e.g. the models folder whose bundle every worker memory-maps once its app is built)
    in its memory map: the state in which a load generator's connections can reach every worker.

    ``wait_ready`` alone returns as soon as one worker answers; a load generator that opens its
    keep-alive connections then gives them all to that worker while the other is still loading
    its bundle (at 10M events that took seconds), and measures one core instead of two.
    """
    start = time.perf_counter()
    needle = str(mapped.resolve()) if mapped is not None else None
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        pids = gunicorn_pids(proc.pid)
        if len(pids) >= workers:
            if needle is None:
                return
            ready = 0
            for pid in pids:
                try:
                    ready += needle in Path(f"/proc/{pid}/maps").read_text()
                except OSError:
                    pass
            if ready >= workers:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{workers} workers not ready after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


WRK_LUA = """
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local key = os.getenv("WRK_KEY") or ""
local threads = 0
-- each thread starts at its own share of the list (thread k of n at k/n of it), so two threads
-- do not ask for the same paths one after the other
setup = function(thread) thread:set("id", threads); threads = threads + 1 end
local i = 0
init = function(args) i = math.floor((id or 0) * #paths / 2) end
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {["X-API-Key"] = key})
end
"""


def wrk(url: str, paths: list[str], key: str, seconds: float, connections: int, folder: Path) -> dict:
    """Requests per second and latency percentiles from ``wrk --latency`` (2 threads)."""
    script, plist = folder / "rotate.lua", folder / f"paths-{len(paths)}-{abs(hash(paths[0]))}.txt"
    script.write_text(WRK_LUA)
    plist.write_text("\n".join(paths) + "\n")
    env = dict(os.environ, WRK_PATHS=str(plist), WRK_KEY=key)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
                         env=env, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict:
    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    done = re.search(r"(\d+) requests in ", out)  # "16843 requests in 8.00s, 24.5MB read"
    if done:
        res["requests"] = int(done.group(1))
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = ms(m.group(1)) if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(errors.group(1)) if errors else 0
    sock = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = sock.group(1) if sock else ""
    return res


def gunicorn_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def serve(home: Path, db: Path, models: Path, port: int, blas_threads: int = 1, workers: int = 2,
          log: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    # NEWSREC_RATELIMIT=off: wrk sends thousands of requests a second with one key, past the per-key limit
    env = dict(os.environ, NEWSREC_HOME=str(home), NEWSREC_DB=str(db), NEWSREC_MODELS=str(models),
               NEWSREC_LOG_LEVEL="warning", NEWSREC_RATELIMIT="off", **(env or {}))
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "training", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--blas-threads", str(blas_threads)]
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=out)


def serve_hello(port: int, log: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    # as newsrec serve (api/gunicorn_conf.py): two gthread workers, each with its own SO_REUSEPORT socket
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
           "--reuse-port", "--worker-class", "gthread", "--chdir", str(ROOT), "--log-level", "warning", "benchmarks.serving:hello_app()"]
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=out)


def http(args: argparse.Namespace, db: Path, models: Path, work: Path, article_ids: list[str],
         user_ids: list[str]) -> dict:
    from recommender.security import KEYS_FILE, KeyStore

    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (Debian: apt-get install wrk)"}
    home = work / "home-http"
    home.mkdir(parents=True, exist_ok=True)
    key, _ = KeyStore(home / KEYS_FILE).add("site", name="benchmark")
    log = work / "server.log"
    res: dict = {"connections": CONNECTIONS, "seconds": args.http_seconds, "workers": 2, "threads": 4}
    related_paths = [f"/v1/articles/{a}/related?limit=10" for a in article_ids]
    feed_paths = [f"/v1/users/{u}/feed?limit=20" for u in user_ids]

    def measure_ceiling() -> list[dict]:
        port = free_port()
        hello = serve_hello(port, log)
        try:
            wait_ready(f"http://127.0.0.1:{port}/hello", hello)
            wrk(f"http://127.0.0.1:{port}", ["/hello"], "", 2, CONNECTIONS, work)  # warm-up
            return [wrk(f"http://127.0.0.1:{port}", ["/hello"], "", args.http_seconds, CONNECTIONS, work)
                    for _ in range(args.http_repeat)]
        finally:
            stop(hello)

    # the ceiling before and after the newsrec runs (median of both): on a shared machine a burst of
    # other work during a single block would otherwise skew every ratio
    ceiling = measure_ceiling()

    blas_settings = [1, os.cpu_count() or 2] if args.blas_compare else [1]
    for blas in blas_settings:
        port = free_port()
        start = time.perf_counter()
        server = serve(home, db, models, port, blas_threads=blas, log=log)
        try:
            ready = wait_ready(f"http://127.0.0.1:{port}/readyz", server)
            base = f"http://127.0.0.1:{port}"
            # warm every worker: first requests page in the memory-mapped arrays
            wrk(base, related_paths[:500], key, 3, CONNECTIONS, work)
            # each endpoint on its own, as the ceiling is: feeds leave thousands of impressions a
            # second for the background threads to write and read back, which would land on related runs
            runs = {"related": [], "feed": []}
            for _ in range(args.http_repeat):
                runs["related"].append(wrk(base, related_paths, key, args.http_seconds, CONNECTIONS, work))
            wrk(base, feed_paths[:500], key, 3, CONNECTIONS, work)
            for _ in range(args.http_repeat):
                runs["feed"].append(wrk(base, feed_paths, key, args.http_seconds, CONNECTIONS, work))
            tag = "" if blas == 1 else f"_blas{blas}"
            res[f"related{tag}"] = _median_wrk(runs["related"])
            res[f"feed{tag}"] = _median_wrk(runs["feed"])
            if blas == 1:
                res["server_ready_seconds"] = round(ready, 2)
                workers = gunicorn_pids(server.pid)
                res["memory_mb"] = {"master": rss_mb(server.pid), "workers": [rss_mb(p) for p in workers]}
        finally:
            stop(server)
        del start
    ceiling += measure_ceiling()
    res["ceiling"] = _median_wrk(ceiling)
    return res


def _median_wrk(runs: list[dict]) -> dict:
    out = {k: round(float(statistics.median(r[k] for r in runs)), 3) for k in ("rps", "p50_ms", "p90_ms", "p99_ms")}
    out["non_2xx"] = sum(r["non_2xx"] for r in runs)
    out["runs"] = runs
    return out


# -- report --------------------------------------------------------------------------------------

def summarize(res: dict) -> dict:
    ip, h = res["inprocess"], res.get("http", {})
    out = {"related_p99_ms": ip["related"]["p99_ms"], "feed_p99_ms": ip["feed"]["p99_ms"],
           "event_p99_ms": ip["event"]["p99_ms"], "article_p99_ms": ip["article"]["p99_ms"],
           "embed_p99_ms": ip["embed"]["p99_ms"], "related_p50_ms": ip["related"]["p50_ms"],
           "feed_p50_ms": ip["feed"]["p50_ms"], "event_p50_ms": ip["event"]["p50_ms"]}
    res["inprocess"].update(out)
    if "ceiling" in h:
        c = h["ceiling"]["rps"]
        h.update({"ceiling_rps": c, "related_rps": h["related"]["rps"], "feed_rps": h["feed"]["rps"],
                  "related_p99_ms": h["related"]["p99_ms"], "feed_p99_ms": h["feed"]["p99_ms"],
                  "related_share": round(h["related"]["rps"] / c, 3), "feed_share": round(h["feed"]["rps"] / c, 3)})
    return res


def show(res: dict) -> None:
    ip, h = res["inprocess"], res.get("http", {})
    size = res["size"]
    rows = [[name, ip[key]["p50_ms"], ip[key]["p99_ms"], ip[key]["n"]] for name, key in (
        ("related (limit 10)", "related"), ("feed (limit 20)", "feed"), ("  feed, known readers", "feed_known_readers"),
        ("  feed, served lists not logged", "feed_without_impression_logging"), ("post one event", "event"), ("  while impressions are written", "event_while_logging_impressions"),
        ("embed one article", "embed"), ("post one article", "article"),
        ("related, 1k fresh articles", "related_after_new"), ("feed, 1k fresh articles", "feed_after_new"))]
    print_table(f"In-process, {size['articles']:,} articles ({ip['window_articles']:,} in the window) / "
                f"{size['users']:,} readers", rows, ["call", "p50 ms", "p99 ms", "calls"])
    targets = [
        ["related p99 ms", ip["related_p99_ms"], TARGETS["related_p99_ms"], verdict(ip["related_p99_ms"], 1.0)],
        ["feed p99 ms", ip["feed_p99_ms"], TARGETS["feed_p99_ms"], verdict(ip["feed_p99_ms"], 3.0)],
        ["event p99 ms", ip["event_p99_ms"], TARGETS["event_p99_ms"], verdict(ip["event_p99_ms"], 2.0)],
        ["embed p99 ms", ip["embed_p99_ms"], TARGETS["embed_p99_ms"], verdict(ip["embed_p99_ms"], 2.0)],
        ["1,000 new articles s", ip["incremental_1000_seconds"], TARGETS["incremental_1000_seconds"],
         verdict(ip["incremental_1000_seconds"], 10.0)],
        ["start-up s (process)", ip["startup"]["process_seconds"], TARGETS["startup_seconds"],
         verdict(ip["startup"]["process_seconds"], 5.0)],
        [f"  after {ip['startup_after_new_articles']['new_articles']:,} new articles",
         ip["startup_after_new_articles"]["process_seconds"], TARGETS["startup_seconds"],
         verdict(ip["startup_after_new_articles"]["process_seconds"], 5.0)],
    ]
    if "ceiling_rps" in h:
        targets += [
            ["HTTP related / ceiling", h["related_share"], 0.5, verdict(h["related_share"], 0.5, True)],
            ["HTTP feed / ceiling", h["feed_share"], 0.25, verdict(h["feed_share"], 0.25, True)],
            ["HTTP related p99 ms", h["related_p99_ms"], 20.0, verdict(h["related_p99_ms"], 20.0)],
            ["HTTP feed p99 ms", h["feed_p99_ms"], 20.0, verdict(h["feed_p99_ms"], 20.0)],
        ]
        rows = [["bare Flask /hello", h["ceiling"]["rps"], h["ceiling"]["p50_ms"], h["ceiling"]["p99_ms"]],
                ["related", h["related"]["rps"], h["related"]["p50_ms"], h["related"]["p99_ms"]],
                ["feed", h["feed"]["rps"], h["feed"]["p50_ms"], h["feed"]["p99_ms"]]]
        for k in [k for k in h if k.startswith(("related_blas", "feed_blas")) and isinstance(h[k], dict)]:
            rows.append([k.replace("_", " (") + " threads)", h[k]["rps"], h[k]["p50_ms"], h[k]["p99_ms"]])
        print_table(f"HTTP through gunicorn (2 gthread workers x 4 threads, wrk {CONNECTIONS} connections, "
                    f"median of {len(h['related']['runs'])})", rows, ["endpoint", "req/s", "p50 ms", "p99 ms"])
        mem = h.get("memory_mb", {})
        if mem:
            rows = [["master", mem["master"]["rss"], mem["master"]["pss"], mem["master"]["private"],
                     mem["master"]["anonymous"]]]
            rows += [[f"worker {i + 1}", w["rss"], w["pss"], w["private"], w["anonymous"]]
                     for i, w in enumerate(mem["workers"])]
            print_table("Memory after the run (MB; anonymous = the worker's own heap, the rest is shared or "
                        "file-backed)", rows, ["process", "RSS", "PSS", "private", "anonymous"])
    if "feed_phases_ms" in ip:
        print_table("Where a feed's time goes (mean ms per feed)", [[k, v] for k, v in ip["feed_phases_ms"].items()],
                    ["step", "ms"])
    print_table("Against the targets", targets, ["figure", "value", "target", ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serving latency and HTTP throughput at portal scale.")
    add_scale_args(ap)
    ap.add_argument("--calls", type=int, default=3000, help="timed calls per in-process figure (default 3000)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--new-articles", type=int, default=1000)
    ap.add_argument("--startup-repeat", type=int, default=3)
    ap.add_argument("--no-background", dest="background", action="store_false",
                    help="in-process figures without the engine's background thread (polls, impressions)")
    ap.add_argument("--no-http", action="store_true", help="in-process figures only")
    ap.add_argument("--http-seconds", type=float, default=10.0)
    ap.add_argument("--http-repeat", type=int, default=3)
    ap.add_argument("--blas-compare", action="store_true",
                    help="also serve with BLAS threads at their default (one per core) to compare")
    ap.add_argument("--json", default=None)
    args = parse_scale_args(ap, argv)
    db, models = ensure_model(args)
    res: dict = {"benchmark": "serving", "size": {"articles": args.articles, "users": args.users,
                                                  "events": args.events, "window_days": args.window_days}}
    with tempfile.TemporaryDirectory(prefix="newsrec-bench-serve-", dir=CACHE) as tmp:
        work = Path(tmp)
        copy = working_copy(db, work)
        res["inprocess"] = inprocess(args, copy, models, work)
        if not args.no_http:
            from recommender.models.bundle import load_bundle
            from recommender.models.served import ServingModel
            from recommender.store import SQLiteStore

            model = ServingModel.from_bundle(load_bundle(models))
            article_ids, user_ids = sample_requests(SQLiteStore(copy), model, 20_000,
                                                    np.random.default_rng(args.seed + 1))
            res["http"] = http(args, copy, models, work, article_ids, user_ids)
    summarize(res)
    res["targets"] = TARGETS
    show(res)
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
