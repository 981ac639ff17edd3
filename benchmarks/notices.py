"""What PostgreSQL's notices of writes cost a listening worker (``Store.watch_writes``, read by
the engine's notices thread; see recommender/serving/freshness.py).

A thread reads notices as the engine's does (``PostgresWriteWatch.notices``, then a pause of
``--pause`` seconds before the next read, or none) while another connection sends ``--notices``
of them, one reader each, ``--gap`` seconds apart. The listening thread's CPU (``thread_time``:
its own and the kernel's work for it) divided by the notices is what each write costs each worker
of each host. Pauses alternate run by run; medians of ``--repeat`` runs.

Usage::

    python benchmarks/notices.py [--notices 2000] [--gaps 0.002,0.0005] [--pauses 0,0.005] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import print_table, write_json  # noqa: E402
from benchmarks.portal import DEFAULT_SERVER, Databases  # noqa: E402


def one_run(url: str, notices: int, gap: float, pause: float) -> dict:
    """Send ``notices`` and read them with ``pause``: the listener's CPU per notice and wake-ups."""
    import psycopg

    from recommender.store.postgres import NOTICE_CHANNEL, PostgresWriteWatch, reader_notice

    watch = PostgresWriteWatch(url, {"autocommit": True}, "benchmark")
    got, wakes, cpu = [0], [0], [0.0]
    stop = threading.Event()

    def listen() -> None:
        start = time.thread_time()
        while not stop.is_set():
            batch = watch.notices(timeout=0.1)
            got[0] += len(batch)
            if batch:
                wakes[0] += 1
                if pause:
                    stop.wait(pause)
        cpu[0] = time.thread_time() - start

    thread = threading.Thread(target=listen)
    thread.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(notices):
                conn.execute("SELECT pg_notify(%s, %s)", (NOTICE_CHANNEL, reader_notice([f"reader-{i}"])))
                if gap:
                    time.sleep(gap)
        deadline = time.monotonic() + 30
        while got[0] < notices and time.monotonic() < deadline:  # every notice read, then stop
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
        watch.close()
    return {"received": got[0], "wakeups": wakes[0], "cpu_ms_per_notice": cpu[0] * 1e3 / notices,
            "notices_per_wakeup": got[0] / max(1, wakes[0])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notices", type=int, default=2000)
    ap.add_argument("--gaps", default="0.002,0.0005", help="seconds between two writes, comma-separated")
    ap.add_argument("--pauses", default="0,0.005", help="the listener's pause after a read (0: none)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--server", default=DEFAULT_SERVER, help="admin URL of the PostgreSQL server")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    gaps = [float(g) for g in args.gaps.split(",")]
    pauses = [float(p) for p in args.pauses.split(",")]
    dbs = Databases(args.server)
    runs: dict[tuple[float, float], list[dict]] = {(g, p): [] for g in gaps for p in pauses}
    try:
        url = dbs.create()
        for _ in range(args.repeat):
            for gap in gaps:
                for pause in pauses:  # alternating, so a slower minute hits every variant
                    runs[gap, pause].append(one_run(url, args.notices, gap, pause))
    finally:
        dbs.drop_all()
    rows, results = [], []
    for (gap, pause), got in runs.items():
        cpu = statistics.median(r["cpu_ms_per_notice"] for r in got)
        per_wake = statistics.median(r["notices_per_wakeup"] for r in got)
        missing = args.notices * len(got) - sum(r["received"] for r in got)
        rows.append((f"{gap * 1e3:g} ms apart, pause {pause * 1e3:g} ms", round(cpu, 4), round(per_wake, 1), missing))
        results.append({"gap_s": gap, "pause_s": pause, "cpu_ms_per_notice": cpu, "notices_per_wakeup": per_wake,
                        "runs": got})
    print_table(f"a listener's CPU per notice, {args.notices} notices a run, medians of {args.repeat} runs", rows,
                ("writes", "CPU ms a notice", "notices a wake-up", "not received"))
    write_json(args.json, {"notices": args.notices, "repeat": args.repeat, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
