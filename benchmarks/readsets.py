"""A heavy reader's read set: the store query every feed ran before vs the per-reader cache
(``recommender.serving.readsets.ReadSets``), on SQLite and PostgreSQL.

One reader with ``--reads`` click/read/share events (a bot or a very heavy reader: the case that set
the feed's p99) among ``--others`` readers' events. Timed, ``--calls`` each, median of ``--repeat``
runs: ``Store.user_read_keys`` (what ``Engine._window_reads`` asked every feed), the cache with
nothing new (two index probes), and the cache right after one new click each time (the probes plus
a delta read). Both answers are checked equal.

Usage::

    python benchmarks/readsets.py [--reads 30000] [--calls 300] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import percentiles_ms, print_table, write_json  # noqa: E402

T0 = 1_793_466_000.0


def fill(store, reads: int, others: int, rng: np.random.Generator) -> None:
    from recommender.domain import Article, Interaction

    store.upsert_articles([Article(article_id=f"a{i}", title=f"Judul {i}", body="Isi", category="Nasional",
                                   published_at=T0) for i in range(5000)])
    kinds = ("click", "read", "share")
    events = [Interaction(user_id="heavy", article_id=f"a{int(a)}", event=kinds[i % 3], ts=T0 + i, event_id=f"h{i}")
              for i, a in enumerate(rng.integers(0, 5000, reads))]
    events += [Interaction(user_id=f"u{int(u)}", article_id=f"a{int(a)}", event="click", ts=T0 + i, event_id=f"o{i}")
               for i, (u, a) in enumerate(zip(rng.integers(0, 20000, others), rng.integers(0, 5000, others)))]
    with store.bulk_load():
        for lo in range(0, len(events), 50_000):
            store.add_events(events[lo:lo + 50_000], source="import")


def measure(store, calls: int) -> dict:
    from recommender.domain import Interaction
    from recommender.serving.readsets import ReadSets

    now = T0 + 10**7
    cache = ReadSets(store)
    direct = [store.user_read_keys("heavy", T0, until=now) for _ in range(3)]
    assert np.array_equal(cache.keys("heavy", T0, now), direct[0])

    def timed(fn, n):
        out = []
        for i in range(n):
            start = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - start)
        return np.array(out)

    res = {"store_query": percentiles_ms(timed(lambda i: store.user_read_keys("heavy", T0, until=now), calls)),
           "cache_unchanged": percentiles_ms(timed(lambda i: cache.keys("heavy", T0, now), calls))}
    tag = uuid.uuid4().hex[:6]
    after = []
    for i in range(calls):
        store.add_events([Interaction(user_id="heavy", article_id=f"a{i % 5000}", event="click", ts=T0 + 100 + i,
                                      event_id=f"new-{tag}-{i}")])
        start = time.perf_counter()
        got = cache.keys("heavy", T0, now)
        after.append(time.perf_counter() - start)
    assert np.array_equal(got, store.user_read_keys("heavy", T0, until=now))
    res["cache_after_a_click"] = percentiles_ms(after)
    res["distinct_articles"] = int(got.size)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reads", type=int, default=30_000)
    ap.add_argument("--others", type=int, default=200_000)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import psycopg

    from recommender.store import SQLiteStore
    from recommender.store.postgres import PostgresStore

    results: dict = {"reads": args.reads, "others": args.others, "calls": args.calls}
    name = f"newsrec_readsets_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(args.server)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend, store in (("sqlite", SQLiteStore(Path(tmp) / "r.sqlite3")), ("postgresql", PostgresStore(url))):
                fill(store, args.reads, args.others, np.random.default_rng(0))
                runs = [measure(store, args.calls) for _ in range(args.repeat)]
                results[backend] = {f"{k}_{p}": round(statistics.median(r[k][p] for r in runs), 3)
                                    for k in ("store_query", "cache_unchanged", "cache_after_a_click")
                                    for p in ("p50_ms", "p99_ms")}
                store.close()
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    import os

    results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    rows = [(f"{backend}: {k.replace('_', ' ')}", v) for backend in ("sqlite", "postgresql")
            for k, v in results[backend].items()]
    print_table(f"heavy reader ({args.reads:,} reads): read set per feed, medians of {args.repeat} runs, "
                f"load {results['load_average']}", rows, ("figure", "ms"))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
