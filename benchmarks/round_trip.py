"""What one round trip to PostgreSQL costs a feed beyond the statement's own work.

A feed on PostgreSQL computes for a millisecond or two between its statements, while the server
has nothing to do. On a virtual machine an idle vCPU is halted, and waking it is part of the next
round trip. This times a prepared ``SELECT 1`` (no work on either side) back to back and after the
client computed for each of ``--gaps`` milliseconds (a busy loop: the client's vCPU stays awake,
the server's idles), ``--calls`` each, in one process. The difference to the back-to-back figure
is what waking the server costs; the rest of a feed's wait for its reader statement is the
statement's own work.

Usage::

    python benchmarks/round_trip.py [--server postgresql://postgres@127.0.0.1:5432/postgres] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import print_table, write_json  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def compute(ms: float) -> None:
    """Keep this thread on its CPU for ``ms`` milliseconds (a feed's work between statements)."""
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


def main(argv: list[str] | None = None) -> int:
    import psycopg

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=DEFAULT_SERVER, help="any database of the server (nothing is written)")
    ap.add_argument("--gaps", default="0,0.1,0.3,1,1.5,3", help="client milliseconds before each call")
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    gaps = [float(g) for g in args.gaps.split(",")]
    rows, results = [], {"server": args.server.rsplit("@", 1)[-1], "calls": args.calls, "gaps": {}}
    with psycopg.connect(args.server, autocommit=True) as conn:
        cur = conn.cursor()
        for _ in range(200):  # prepared, and the connection warm
            cur.execute("SELECT 1", prepare=True).fetchone()
        for gap in gaps:
            times = []
            for _ in range(args.calls):
                if gap:
                    compute(gap)
                start = time.perf_counter()
                cur.execute("SELECT 1", prepare=True).fetchone()
                times.append(time.perf_counter() - start)
            p50, p90, p99 = (round(float(v), 4) for v in np.percentile(np.array(times) * 1e3, [50, 90, 99]))
            results["gaps"][f"{gap:g}"] = {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99}
            rows.append((f"{gap:g}", p50, p90, p99))
    print_table("SELECT 1 after the client computed for a while", rows,
                ("client ms before", "round trip p50 ms", "p90", "p99"))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
