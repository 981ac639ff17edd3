"""Portal scale on SQLite AND PostgreSQL in one invocation: ingest, copy, in-process and HTTP serving,
two replicas, each figure next to its target (issue 13).

1. **Bulk import** (``newsrec ingest events``: parse and validate in a reader thread, ``add_events``
   in batches of 50,000 inside ``bulk_load()``) of a JSON Lines file of ``--events`` new events into
   an empty SQLite store and an empty PostgreSQL database; and the store part alone (``add_events``
   on ready-made batches: keys, on PostgreSQL one binary COPY straight into ``events``, commit) to
   show where the time goes.
2. **Copy** of the scale store (``synthetic_scale.py``, trained once; both cached in
   ``benchmarks/cache``) from SQLite to PostgreSQL with ``newsrec migrate-store``: rows per second.
3. **In-process** (one ``Engine`` per backend, same bundle, same clock, one poll made as a serving
   worker's background thread makes it, then what it loaded frozen out of the cycle collector's
   sight as each serving worker freezes it): p50/p99 of feeds, related lists and posting one event over
   ``--calls`` calls each, and of each feed's CPU time in its thread (the wall clock less what it
   waited for: on PostgreSQL the server's statement, on a shared machine the other processes);
   the backends' runs take turns, so a slow phase of the machine falls on both.
4. **HTTP** (``newsrec serve --workers 2``, loopback; every worker loaded and 3 s of warm-up before
   anything is timed): feed requests per second with ``wrk`` (``--connections``, 64) on the SQLite server
   and on PostgreSQL replica A, next to a bare Flask JSON endpoint served the same way in the same
   run (the ceiling), in two workloads, the two ends of a portal's mix: *misses* (readers no request
   of the run asked for before: every page is built) and *hits* (200 warmed-up readers in turn: the
   per-reader cache serves nearly every page), each with the share of cache hits the server counted
   (``newsrec_feed_cache_lookups_total``); event POST p99 (one event, keep-alive, one
   client), right after the hit workload and again once the server's workers are idle (what the
   feed load left, its served lists written and followed, worked off; ``wait_idle``);
   **propagation**: a click posted to replica A until replica B's feed for that reader no
   longer lists the clicked article (B polled every 2 ms), ``--propagation`` times.

Every measurement runs ``--repeat`` times; the table shows medians of the runs (p99 of each run,
then the median). Targets: PostgreSQL bulk import >= 50k events/s; event POST p99 <= 5 ms;
propagation p99 <= 1 s; in-process feed p99 <= 3 ms on both backends; HTTP feed >= 25 % of the
bare-Flask ceiling.

Usage::

    python benchmarks/portal.py [--events 100000 | 1000000 | 10000000] [--repeat 3] [--json OUT]
        [--parts ingest,copy,inprocess,http]

``--parts ingest`` runs the bulk import alone (it writes new events into empty stores, so neither
the scale store nor a trained bundle is made): what to run at 10M events.

Sizes follow ``--events``: articles = events / 100 (at least 2,000), readers = events / 10 (the
issue's 100k articles / 1M readers / 10M events at ``--events 10000000``). PostgreSQL databases are
created on ``--server`` for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import CACHE, percentiles_ms, print_table, time_calls, verdict, write_json  # noqa: E402

TARGETS = {  # name -> (target, higher is better)
    "postgresql_import_events_per_second": (50_000, True),
    "event_post_p99_ms": (5.0, False),
    "propagation_p99_ms": (1000.0, False),
    "feed_p99_ms": (3.0, False),
    "http_feed_share": (0.25, True),
}
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PARTS = ("ingest", "copy", "inprocess", "http")


# -- databases -------------------------------------------------------------------------------------
class Databases:
    """PostgreSQL databases made for this run on ``server``; all dropped by :meth:`drop_all`."""

    def __init__(self, server: str):
        self.server = server
        self.names: list[str] = []

    def create(self) -> str:
        import psycopg

        name = f"newsrec_portal_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        parts = urlsplit(self.server)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))

    def settings(self, names: tuple[str, ...] = ("server_version", "shared_buffers", "max_wal_size",
                                                    "synchronous_commit")) -> dict[str, str]:
        """The server's settings the figures depend on (the PostgreSQL feed's tail on
        ``shared_buffers`` above all: see the README's "What to size")."""
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            return {name: admin.execute(f"SHOW {name}").fetchone()[0] for name in names}

    def drop_all(self) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            for name in self.names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scale_store(args) -> tuple[Path, Path]:
    """(cached SQLite store, models folder with a bundle trained on it), made once per size."""
    from benchmarks.synthetic_scale import END, ensure_store
    from recommender.models.fitting import train
    from recommender.store import SQLiteStore

    db = ensure_store(args.articles, args.users, args.events, seed=args.seed, days=args.days)
    models = CACHE / f"portal-models-{db.stem}"
    store = SQLiteStore(db)
    try:
        if not list(models.glob("*/manifest.json")):
            print(f"training a bundle into {models.name} ...", flush=True)
            train(store, models, as_of=END, seed=0, promote=True)
        # the store names the live version (copies of it too): one this folder does not hold (a
        # run from another checkout promoted its own bundle into a shared store) would leave every
        # engine on fallback lists, measured as if they were feeds
        live, have = store.live_model(), sorted(p.parent.name for p in models.glob("*/manifest.json"))
        if live not in have:
            print(f"the cached store names version {live}, not in {models.name}: promoting {have[-1]}", flush=True)
            store.promote_model(have[-1])
    finally:
        store.close()
    return db, models


def working_copy(db: Path, folder: Path) -> Path:
    out = folder / "newsrec.sqlite3"
    shutil.copyfile(db, out)
    os.sync()
    return out


# -- 1. bulk import --------------------------------------------------------------------------------
def ingest(args, dbs: Databases, folder: Path) -> dict:
    from benchmarks.ingest_postgres import rows
    from recommender.datasets.ingest import EVENT_BATCH_SIZE, import_events
    from recommender.domain import Interaction
    from recommender.store import SQLiteStore
    from recommender.store.postgres import PostgresStore

    n = args.events
    path = folder / "events.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows(n, args.articles, args.users, args.seed, "imp-"))
    out: dict = {}
    for backend in ("sqlite", "postgresql"):
        runs = []
        for r in range(args.repeat):
            if backend == "sqlite":
                store = SQLiteStore(folder / f"ingest-{r}.sqlite3")
            else:
                store = PostgresStore(dbs.create())
            start = time.perf_counter()
            report = import_events(store, path, show_progress=False)
            file_seconds = time.perf_counter() - start
            assert report.accepted == n, report.to_dict()
            # each ready-made batch built just before it is written, outside the clock (10M events
            # as Interaction objects at once would take ~6 GB)
            made = iter(rows(n, args.articles, args.users, args.seed + 1, "st-"))
            start, building = time.perf_counter(), 0.0
            with store.bulk_load():
                for lo in range(0, n, EVENT_BATCH_SIZE):
                    built = time.perf_counter()
                    batch = [Interaction.from_dict(next(made)) for _ in range(min(EVENT_BATCH_SIZE, n - lo))]
                    building += time.perf_counter() - built
                    store.add_events(batch, source="import")
            store_seconds = time.perf_counter() - start - building
            assert store.stats()["events"] == 2 * n
            store.close()
            runs.append({"import_events_per_second": n / file_seconds, "store_events_per_second": n / store_seconds})
        out[backend] = {k: round(statistics.median(r[k] for r in runs)) for k in runs[0]}
    return out


# -- 2. copy ---------------------------------------------------------------------------------------
def copy_to_postgres(db: Path, url: str) -> dict:
    from recommender.store import SQLiteStore
    from recommender.store.postgres import PostgresStore
    from training.migrate import comparable_stats, migrate_store

    source, target = SQLiteStore(db), PostgresStore(url)
    start = time.perf_counter()
    report = migrate_store(source, target)
    seconds = time.perf_counter() - start
    same = comparable_stats(source) == comparable_stats(target)
    source.close()
    target.close()
    rows = sum(report["rows"].values())
    return {"rows": rows, "seconds": round(seconds, 1), "rows_per_second": round(rows / seconds),
            "events_rows_per_second": round(report["rows"]["events"] / max(report["seconds"]["events"], 1e-9)),
            "same_counts": same}


# -- 3. in-process ---------------------------------------------------------------------------------
def sample_ids(db: Path, n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Readers by activity (feeds come from active readers; 10 % unknown) and articles of the window."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        top = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        seqs = rng.integers(1, top + 1, size=int(n * 0.9)).tolist()
        users = []
        for lo in range(0, len(seqs), 500):
            part = seqs[lo:lo + 500]
            users += [r[0] for r in conn.execute(
                "SELECT u.user_id FROM events e JOIN users u ON u.key = e.user_key "
                f"WHERE e.seq IN ({','.join('?' * len(part))})", part)]
        articles = [r[0] for r in conn.execute(
            "SELECT k.article_id FROM articles a JOIN article_keys k ON k.key = a.key WHERE a.deleted = 0 "
            "ORDER BY a.published_at DESC LIMIT 5000")]
    finally:
        conn.close()
    users += [f"new-reader-{i}" for i in range(n - len(users))]
    rng.shuffle(users)
    return users, [articles[int(i)] for i in rng.integers(0, len(articles), size=n)]


def serving_engine(store, models: Path, now: float):
    """An engine on ``store`` as a serving worker runs it once loaded, its clock fixed at ``now``."""
    from threadpoolctl import threadpool_limits

    from recommender.serving.engine import Engine, EngineConfig

    threadpool_limits(1)  # one BLAS thread, as `newsrec serve` gives each worker
    engine = Engine(store, models, EngineConfig(), clock=lambda: now)
    if engine._state.model.version is None:  # fallback lists are no measure of feeds
        engine.close()
        raise SystemExit(f"no bundle loaded from {models} for the version the store names "
                         f"({store.live_model()}): nothing measured")
    # one poll, as a serving worker's background thread makes within a second of loading: it maps
    # every store article key to the catalog (without it, each feed asks the store about the keys
    # of its reader's history it has not met yet, which no worker of `newsrec serve` does)
    engine.refresh()
    # and then, as each `newsrec serve` worker does once loaded (post_worker_init in
    # api/gunicorn_conf.py), what it loaded goes out of the cycle collector's sight: without it
    # the young collections right after loading walk the catalog (up to ~4.5 ms each, several in a
    # run) and a full one takes ~50 ms, pauses no serving worker has (callers gc.unfreeze() after)
    gc.collect()
    gc.freeze()
    return engine


def inprocess(store_factory, models: Path, users: list[str], articles: list[str], now: float, calls: int,
              warmup: int) -> dict:
    from recommender.domain import Interaction

    store = store_factory()
    engine = serving_engine(store, models, now)
    tag = uuid.uuid4().hex[:6]

    def post(i: int) -> None:
        engine.record_events([Interaction(user_id=users[i % len(users)], article_id=articles[i % len(articles)],
                                          event="click", ts=now, event_id=f"bench-{tag}-{i}")])

    cpu: list[float] = []  # the feeding thread's CPU time a feed: the wall clock less the waits (the
    # store's server, the machine's other work), as steady as this machine gets

    def feed(user: str) -> None:
        start = time.thread_time()
        engine.feed(user, limit=20)
        cpu.append(time.thread_time() - start)

    try:
        res = {"feed": percentiles_ms(time_calls(feed, users[:calls + warmup], warmup)),
               "related": percentiles_ms(time_calls(lambda a: engine.related(a, limit=10),
                                                    articles[:calls + warmup], warmup)),
               "event": percentiles_ms(time_calls(post, range(calls + warmup), warmup))}
        res["feed_cpu"] = percentiles_ms(cpu[warmup:])
        engine.flush_impressions()
    finally:
        engine.close()
        store.close()
        gc.unfreeze()  # the next run's engine replaces this one: let it go
    return res


# -- 4. HTTP ---------------------------------------------------------------------------------------
def add_key(location: str) -> str:
    from api.auth import SharedKeys
    from recommender.store import open_store

    store = open_store(location)
    try:
        return SharedKeys(store).add("site", name=f"portal-{uuid.uuid4().hex[:6]}")[0]
    finally:
        store.close()


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, port: int, key: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
        reply = self.conn.getresponse()
        data = reply.read()
        return reply.status, json.loads(data) if data else {}

    def close(self) -> None:
        self.conn.close()


def event_posts(port: int, key: str, users: list[str], articles: list[str], n: int, warmup: int = 50) -> dict:
    client = Client(port, key)
    tag = uuid.uuid4().hex[:6]
    times = []
    try:
        for i in range(n + warmup):
            body = {"events": [{"user_id": users[i % len(users)], "article_id": articles[i % len(articles)],
                                "event": "click", "ts": time.time(), "event_id": f"http-{tag}-{i}"}]}
            start = time.perf_counter()
            status, _ = client.call("POST", "/v1/events", body)
            elapsed = time.perf_counter() - start
            assert status == 200, status
            if i >= warmup:
                times.append(elapsed)
    finally:
        client.close()
    return percentiles_ms(times)


def wait_idle(pids: list[int], window: float = 0.25, share: float = 0.05, deadline: float = 30.0) -> float:
    """Seconds until the processes used less than ``share`` of one core together over ``window``
    (a feed load's served lists written and followed); gives up at ``deadline`` (returned then)."""
    from benchmarks.http_overhead import cpu_seconds

    started = time.monotonic()
    while time.monotonic() - started < deadline:
        before = cpu_seconds(pids)
        time.sleep(window)
        if cpu_seconds(pids) - before < share * window:
            break
    return round(time.monotonic() - started, 2)


def propagation(a_port: int, b_port: int, key: str, users: list[str], n: int, timeout: float = 10.0) -> dict:
    """Seconds from A's answer to a click until B's feed for that reader leaves the article out."""
    a, b = Client(a_port, key), Client(b_port, key)
    times, missed = [], 0
    try:
        for i in range(n):
            reader = users[i % len(users)]
            status, feed = b.call("GET", f"/v1/users/{reader}/feed?limit=20")
            assert status == 200, status
            if not feed["items"]:
                continue
            clicked = feed["items"][0]["article_id"]
            status, _ = a.call("POST", "/v1/events", {"events": [{"user_id": reader, "article_id": clicked,
                                                                  "event": "click", "ts": time.time()}]})
            assert status == 200, status
            start = time.perf_counter()
            while True:
                status, feed = b.call("GET", f"/v1/users/{reader}/feed?limit=20")
                if clicked not in {item["article_id"] for item in feed.get("items", ())}:
                    times.append(time.perf_counter() - start)
                    break
                if time.perf_counter() - start > timeout:
                    missed += 1
                    break
                time.sleep(0.002)
    finally:
        a.close()
        b.close()
    out = percentiles_ms(times)
    out["missed"] = missed
    return out


def feed_cache_counts(port: int) -> dict:
    """``newsrec_feed_cache_lookups_total`` by result, summed over the server's workers."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {result: sum(float(m) for m in re.findall(
        rf'^newsrec_feed_cache_lookups_total{{result="{result}"}} (\S+)$', text, re.M)) for result in ("hit", "miss")}


def miss_readers(db: Path, taken: set[str], n: int, seed: int) -> list[str]:
    """``n`` readers no feed of the run asked for before (activity-weighted, 10 % unknown): every
    first request of each is a cache miss (fewer if the store has fewer readers)."""
    drawn, _ = sample_ids(db, max(4 * n, 1000), np.random.default_rng(seed + 1))
    known = [u for u in dict.fromkeys(drawn) if u not in taken and not u.startswith("new-reader-")]
    out = known[:int(n * 0.9)]
    out += [f"miss-reader-{seed}-{i}" for i in range(n - len(out))]
    np.random.default_rng(seed + 2).shuffle(out)
    return out


def over_http(args, db: Path, url: str, models: Path, folder: Path, users: list[str], articles: list[str]) -> dict:
    """Each server is warmed up (every worker loaded, 3 s of feeds) before anything is timed.

    Two feed workloads per server and run, the two ends of what a portal's traffic mixes: *misses*
    (readers no request asked for before: every page is built) and *hits* (200 readers asked for
    in turn, warmed up, so the per-reader cache serves nearly every page). Each is reported with
    the share of cache hits the server counted (``newsrec_feed_cache_lookups_total``); a portal
    where a share h of first pages are served again gets about 1 / (h / hits + (1 - h) / misses)."""
    from benchmarks.http_overhead import cpu_seconds
    from benchmarks.serving import free_port, gunicorn_pids, serve, serve_hello, stop, wait_ready, wait_workers, wrk

    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (Debian: apt-get install wrk)"}
    revisit = list(dict.fromkeys(users))[:200]
    feed_paths = [f"/v1/users/{u}/feed?limit=20" for u in revisit]
    per_run = int(args.http_seconds * 1000)  # a run at more than 1,000 misses/s comes round again (hits)
    misses = miss_readers(db, set(revisit), per_run * args.repeat * 2, args.seed)
    out: dict = {"runs": [], "hit_readers": len(revisit), "miss_readers": len(misses)}
    procs = []
    try:
        hello_port = free_port()
        procs.append(serve_hello(hello_port, log=folder / "hello.log"))
        wait_ready(f"http://127.0.0.1:{hello_port}/hello", procs[-1])
        wait_workers(procs[-1], 2)
        servers, workers = {}, {}
        sqlite_key = add_key(str(db))
        pg_key = add_key(url)
        for name, location in (("sqlite", str(db)), ("postgresql_a", url), ("postgresql_b", url)):
            home = folder / f"home-{name}"
            home.mkdir(exist_ok=True)
            prom = folder / f"prometheus-{name}"
            prom.mkdir(exist_ok=True)
            port = free_port()
            procs.append(serve(home, location, models, port, log=folder / f"{name}.log",
                               env={"PROMETHEUS_MULTIPROC_DIR": str(prom),
                                    **({} if args.lag is None else {"NEWSREC_LAG_SECONDS": f"{args.lag:g}"})}))
            servers[name] = port
        keys = {"sqlite": sqlite_key, "postgresql_a": pg_key, "postgresql_b": pg_key}
        for proc, port in zip(procs[1:], servers.values()):
            wait_ready(f"http://127.0.0.1:{port}/healthz", proc, timeout=300)
            wait_workers(proc, 2, mapped=models)
        for name, proc in zip(servers, procs[1:]):
            workers[name] = gunicorn_pids(proc.pid)
        wrk(f"http://127.0.0.1:{hello_port}", ["/hello"], "", 3, args.connections, folder)  # warm-up
        for name in ("sqlite", "postgresql_a"):
            wrk(f"http://127.0.0.1:{servers[name]}", feed_paths, keys[name], 3, args.connections, folder)
        used = 0
        for _ in range(args.repeat):
            run = {"hello_rps": wrk(f"http://127.0.0.1:{hello_port}/hello", ["/hello"], "", args.http_seconds,
                                    args.connections, folder)["rps"]}
            for name in ("sqlite", "postgresql_a"):
                port = servers[name]
                fresh = [f"/v1/users/{u}/feed?limit=20" for u in misses[used:used + per_run]]
                used += per_run
                for workload, paths in (("miss", fresh), ("hit", feed_paths)):
                    if workload == "hit":  # cached pages live 30 s: the warm-up must be this close
                        wrk(f"http://127.0.0.1:{port}", paths, keys[name], 2, args.connections, folder)
                    before = feed_cache_counts(port)
                    cpu_before = [cpu_seconds([pid]) for pid in workers[name]]
                    got = wrk(f"http://127.0.0.1:{port}", paths, keys[name], args.http_seconds, args.connections,
                              folder)
                    after = feed_cache_counts(port)
                    run[f"{name}_feed_{workload}_worker_cpu_s"] = [
                        round(cpu_seconds([pid]) - was, 2) for pid, was in zip(workers[name], cpu_before)]
                    lookups = sum(after.values()) - sum(before.values())
                    prefix = f"{name}_feed_{workload}"
                    run[f"{prefix}_rps"] = got["rps"]
                    # what the workers spent a request: an API host's cost, whatever the database's
                    # (NaN, not the run's whole CPU, when wrk's request count could not be read)
                    run[f"{prefix}_worker_cpu_ms"] = round(
                        1000 * sum(run[f"{prefix}_worker_cpu_s"]) / (got.get("requests") or float("nan")), 3)
                    run[f"{prefix}_non_2xx"] = got["non_2xx"]
                    run[f"{prefix}_hit_share"] = round((after["hit"] - before["hit"]) / lookups, 3) if lookups else 0.0
                run[f"{name}_event_post_p99_ms"] = event_posts(port, keys[name], users, articles, args.posts)["p99_ms"]
                # the same once the server has worked off what the feed load left (its workers idle)
                run[f"{name}_idle_after_s"] = wait_idle(workers[name])
                run[f"{name}_event_post_rest_p99_ms"] = event_posts(port, keys[name], users, articles,
                                                                    args.posts)["p99_ms"]
            got = propagation(servers["postgresql_a"], servers["postgresql_b"], pg_key, users[:500], args.propagation)
            run["propagation_p99_ms"] = got["p99_ms"]
            run["propagation_p50_ms"] = got["p50_ms"]
            run["propagation_missed"] = got["missed"]
            out["runs"].append(run)
            print(f"  http run: {run}", flush=True)
    finally:
        for proc in procs:
            stop(proc)
    med = {k: round(statistics.median(r[k] for r in out["runs"]), 3) for k in out["runs"][0]
           if not isinstance(out["runs"][0][k], list)}
    out["median"] = med
    return out


# -- main ------------------------------------------------------------------------------------------
def add_size_args(ap: argparse.ArgumentParser, events: int, what: str = "events in the store") -> None:
    """``--events`` and the sizes of :func:`scale_store` that follow from it (:func:`fill_sizes`)."""
    ap.add_argument("--events", type=int, default=events, help=what)
    ap.add_argument("--articles", type=int, default=None, help="default events / 100, at least 2000")
    ap.add_argument("--users", type=int, default=None, help="default events / 10, at least 1000")
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--seed", type=int, default=0)


def fill_sizes(args: argparse.Namespace) -> argparse.Namespace:
    """The sizes :func:`add_size_args` left to ``--events``."""
    args.articles = args.articles or max(2000, args.events // 100)
    args.users = args.users or max(1000, args.events // 10)
    return args


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_args(ap, 100_000, "events in the store and in the import (100k; 1M and 10M possible)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement (medians are reported)")
    ap.add_argument("--calls", type=int, default=2000, help="in-process calls of each kind per run")
    ap.add_argument("--posts", type=int, default=500, help="HTTP event posts per run")
    ap.add_argument("--propagation", type=int, default=50, help="clicks timed from replica A to replica B per run")
    ap.add_argument("--http-seconds", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=64,
                    help="wrk's keep-alive connections (each stays with the worker whose SO_REUSEPORT socket "
                         "the kernel gave it: 64 split 33/31 to 37/27 between two workers, 16 as unevenly as 11/5)")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"which measurements to run, comma-separated (default all: {','.join(PARTS)}); "
                         "ingest alone needs no scale store")
    ap.add_argument("--lag", type=float, default=None,
                    help="NEWSREC_LAG_SECONDS of the HTTP servers (default: unset, newsrec's default: 1 on "
                         "PostgreSQL, ended by notices of writes, 0 on SQLite; 0: every list asks the database; "
                         "see recommender/serving/freshness.py)")
    ap.add_argument("--skip-http", action="store_true", help="the same as leaving http out of --parts")
    ap.add_argument("--server", default=DEFAULT_SERVER, help="admin URL of the PostgreSQL server")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown --parts {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    from recommender.serving.engine import MAX_LAG_SECONDS

    if args.lag is not None and not 0.0 <= args.lag <= MAX_LAG_SECONDS:
        ap.error(f"--lag: seconds from 0 to {MAX_LAG_SECONDS:g} (NEWSREC_LAG_SECONDS)")
    if args.skip_http and "http" in parts:
        parts.remove("http")
    fill_sizes(args)

    from benchmarks.synthetic_scale import END

    started = time.time()
    load_before = os.getloadavg()
    dbs = Databases(args.server)
    results: dict = {"events": args.events, "articles": args.articles, "readers": args.users, "repeat": args.repeat,
                     "parts": parts, "lag_seconds": args.lag, "load_average_before": [round(x, 2) for x in load_before],
                     "postgresql_settings": dbs.settings()}
    try:
        with tempfile.TemporaryDirectory(prefix="newsrec-portal-") as tmp:
            folder = Path(tmp)
            if "ingest" in parts:  # new events into empty stores: the scale store is not needed
                print(f"1. bulk import of {args.events} events ...", flush=True)
                results["ingest"] = ingest(args, dbs, folder)
                print(f"   {results['ingest']}", flush=True)
            if not {"copy", "inprocess", "http"} & set(parts):
                return finish(args, results, started)
            print(f"scale store: {args.articles} articles, {args.users} readers, {args.events} events", flush=True)
            cached, models = scale_store(args)
            db = working_copy(cached, folder)
            url = dbs.create()
            if "copy" in parts:
                print("2. copy SQLite -> PostgreSQL (migrate-store) ...", flush=True)
                results["copy"] = copy_to_postgres(db, url)
                print(f"   {results['copy']}", flush=True)
            else:  # serving reads the scale store from PostgreSQL too
                copy_to_postgres(db, url)
            if not {"inprocess", "http"} & set(parts):
                return finish(args, results, started)
            from recommender.store import SQLiteStore
            from recommender.store.postgres import PostgresStore

            users, articles = sample_ids(db, args.calls + 200, np.random.default_rng(args.seed))
            now = END + 3600.0
            if "inprocess" in parts:
                print("3. in-process ...", flush=True)
                results["inprocess"] = {}
                factories = {"sqlite": lambda: SQLiteStore(db), "postgresql": lambda: PostgresStore(url)}
                runs: dict[str, list[dict]] = {backend: [] for backend in factories}
                for _ in range(args.repeat):  # the backends take turns: a slow phase of the machine hits both
                    for backend, factory in factories.items():
                        runs[backend].append(inprocess(factory, models, users, articles, now, args.calls, 200))
                for backend, got in runs.items():
                    results["inprocess"][backend] = {
                        f"{kind}_{p}": round(statistics.median(r[kind][p] for r in got), 3)
                        for kind in ("feed", "feed_cpu", "related", "event") for p in ("p50_ms", "p99_ms")}
                    results["inprocess"][backend]["feed_p99_ms_runs"] = [round(r["feed"]["p99_ms"], 3) for r in got]
                    print(f"   {backend}: {results['inprocess'][backend]}", flush=True)
            if "http" in parts:
                print("4. HTTP: bare Flask, SQLite server, PostgreSQL replicas A and B ...", flush=True)
                results["http"] = over_http(args, db, url, models, folder, users, articles)
    finally:
        dbs.drop_all()
    return finish(args, results, started)


def finish(args, results: dict, started: float) -> int:
    """Time and load average of the run, the table, and the JSON file."""
    results["seconds"] = round(time.time() - started)
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report(results)
    write_json(args.json, results)
    return 0


def _lag_title(results: dict) -> str:
    """The servers' NEWSREC_LAG_SECONDS as run (files from before 2026-12-06 lack it: 0)."""
    lag = results.get("lag_seconds", 0.0)
    return "unset (newsrec's default: 1 on PostgreSQL, ended by notices; 0 on SQLite)" if lag is None else f"{lag:g}"


def report(results: dict) -> None:
    rows = []
    ingest_ = results.get("ingest", {})
    for backend in ("sqlite", "postgresql"):
        if backend in ingest_:
            value = ingest_[backend]["import_events_per_second"]
            target = TARGETS["postgresql_import_events_per_second"][0] if backend == "postgresql" else float("nan")
            rows.append((f"bulk import, {backend} (events/s)", value, target,
                         verdict(value, target, True) if backend == "postgresql" else ""))
            rows.append((f"  store part alone, {backend} (events/s)", ingest_[backend]["store_events_per_second"],
                         float("nan"), ""))
    if "copy" in results:
        rows.append(("migrate-store SQLite -> PostgreSQL (rows/s)", results["copy"]["rows_per_second"], float("nan"),
                     "same counts" if results["copy"]["same_counts"] else "COUNTS DIFFER"))
    for backend, figures in results.get("inprocess", {}).items():
        rows.append((f"in-process feed p99, {backend} (ms)", figures["feed_p99_ms"], 3.0,
                     verdict(figures["feed_p99_ms"], 3.0)))
        if "feed_cpu_p99_ms" in figures:  # JSON files from before 2026-12-06 night lack it
            rows.append(("  its CPU p50 / p99, the wall clock less the waits (ms)",
                         f"{figures['feed_cpu_p50_ms']:.2f} / {figures['feed_cpu_p99_ms']:.2f}", float("nan"), ""))
        rows.append((f"in-process related p99, {backend} (ms)", figures["related_p99_ms"], float("nan"), ""))
        rows.append((f"in-process event p99, {backend} (ms)", figures["event_p99_ms"], float("nan"), ""))
    med = results.get("http", {}).get("median")
    if med:
        rows.append(("bare Flask ceiling (requests/s)", med["hello_rps"], float("nan"), ""))
        for name in ("sqlite", "postgresql_a"):
            for prefix, what in ((f"{name}_feed_miss", "readers new to the run"), (f"{name}_feed_hit", "200 readers again")):
                if f"{prefix}_rps" not in med:  # a JSON file from before the two workloads
                    continue
                share = med[f"{prefix}_rps"] / med["hello_rps"] if med["hello_rps"] else float("nan")
                hits = med.get(f"{prefix}_hit_share", float("nan"))
                rows.append((f"HTTP feed, {name}, {what}, {hits:.0%} cache hits (requests/s)", med[f"{prefix}_rps"],
                             float("nan"), ""))
                rows.append(("  HTTP feed / ceiling", round(share, 3), 0.25, verdict(share, 0.25, True)))
                if f"{prefix}_worker_cpu_ms" in med:  # JSON files from before 2026-12-06 lack it
                    rows.append(("  the workers' CPU a request (ms)", med[f"{prefix}_worker_cpu_ms"], float("nan"), ""))
            rows.append((f"event POST p99, {name}, right after the feed load (ms)", med[f"{name}_event_post_p99_ms"],
                         5.0, verdict(med[f"{name}_event_post_p99_ms"], 5.0)))
            if f"{name}_event_post_rest_p99_ms" in med:  # JSON files from before 2026-12-04 lack it
                rows.append((f"event POST p99, {name}, workers idle first (ms)",
                             med[f"{name}_event_post_rest_p99_ms"], 5.0,
                             verdict(med[f"{name}_event_post_rest_p99_ms"], 5.0)))
        rows.append(("propagation A -> B p99 (ms)", med["propagation_p99_ms"], 1000.0,
                     verdict(med["propagation_p99_ms"], 1000.0)))
    print_table(f"portal scale: {results['events']:,} events, {results['articles']:,} articles, "
                f"{results['readers']:,} readers; medians of {results['repeat']} runs; HTTP servers' "
                f"NEWSREC_LAG_SECONDS {_lag_title(results)}; load average before "
                f"{results['load_average_before']}, after {results['load_average_after']}; PostgreSQL "
                + ", ".join(f"{k} {v}" for k, v in results.get("postgresql_settings", {}).items()),
                rows, ("figure", "value", "target", "verdict"))


if __name__ == "__main__":
    sys.exit(main())
