"""The Artikel Terkait widget's HTML fragment next to the JSON related list, over HTTP.

``newsrec serve`` (2 workers, limits off) on a generated sample ending now; a closed-loop client
(``--threads`` keep-alive connections) asks for ``GET /widget/articles/<id>/related`` and
``GET /v1/articles/<id>/related`` (site key) alternately, over the same anchors in the same order,
so both see the same engine cache and the same machine load. Reports p50/p90/p99 per endpoint
and the bytes per answer. The fragment's extra work is the template and logging the served list
as the anonymous reader's (the JSON list without ``user_id`` logs nothing).

Usage::

    python benchmarks/widget.py [--requests 4000] [--threads 4] [--json benchmarks/results/widget.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import machine, percentiles_ms, print_table, write_json  # noqa: E402
from benchmarks.load import Client, build_sample  # noqa: E402
from benchmarks.serving import free_port, serve, stop, wait_ready  # noqa: E402

ENDPOINTS = {"widget fragment (HTML)": "/widget/articles/{}/related?limit={}",
             "JSON related list": "/v1/articles/{}/related?limit={}"}


def run(port: int, anchors: list[str], key: str, n: int, threads: int, limit: int) -> dict:
    """Each thread walks its share of the anchors, asking both endpoints for each in turn."""
    times: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    sizes: dict[str, list[int]] = {name: [] for name in ENDPOINTS}
    errors: dict[str, int] = {name: 0 for name in ENDPOINTS}
    lock = threading.Lock()

    def worker(k: int) -> None:
        client = Client(port)
        mine = {name: [] for name in ENDPOINTS}
        got = {name: [] for name in ENDPOINTS}
        bad = {name: 0 for name in ENDPOINTS}
        order = list(ENDPOINTS.items())
        for i in range(k, n, threads):
            anchor = anchors[i % len(anchors)]
            for name, template in (order if i % 2 else order[::-1]):  # neither always goes first
                start = time.perf_counter()
                try:
                    status, body = client.request("GET", template.format(anchor, limit), headers={"X-API-Key": key})
                except OSError:
                    status, body = 0, b""
                mine[name].append(time.perf_counter() - start)
                got[name].append(len(body))
                bad[name] += status != 200
        client.close()
        with lock:
            for name in ENDPOINTS:
                times[name].extend(mine[name])
                sizes[name].extend(got[name])
                errors[name] += bad[name]

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {name: {**percentiles_ms(times[name]), "errors": errors[name],
                   "bytes_mean": round(sum(sizes[name]) / max(len(sizes[name]), 1))} for name in ENDPOINTS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=4000, help="requests per endpoint (default 4000)")
    ap.add_argument("--threads", type=int, default=4, help="client connections (default 4)")
    ap.add_argument("--limit", type=int, default=10, help="items per list (default 10)")
    ap.add_argument("--articles", type=int, default=2000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from recommender.security import KEYS_FILE, KeyStore

    with tempfile.TemporaryDirectory(prefix="newsrec-widget-") as tmp:
        root = Path(tmp)
        sample = build_sample(root, args.articles, args.users, 5)
        key = KeyStore(root / KEYS_FILE).add("site")[0]
        port = free_port()
        server = serve(root, root / "newsrec.sqlite3", root / "models", port, log=root / "server.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", server)
            anchors = sample["articles"]
            run(port, anchors, key, min(400, args.requests), args.threads, args.limit)  # warm both workers
            result = run(port, anchors, key, args.requests, args.threads, args.limit)
        finally:
            stop(server)
    rows = [[name, r["n"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"], r["bytes_mean"], r["errors"]]
            for name, r in result.items()]
    print_table(f"related lists over HTTP: {args.threads} connections, 2 workers, {len(sample['articles'])} anchors, "
                f"limit {args.limit}", rows, ["endpoint", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "bytes", "errors"])
    write_json(args.json, {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                           "counts": sample["counts"], "results": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
