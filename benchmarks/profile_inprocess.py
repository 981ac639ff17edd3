"""Where in-process feed and related time goes: py-spy of this process while it serves them.

Builds one :class:`recommender.engine.Engine` on the scale store and bundle (as
``benchmarks/serving.py`` does, background thread running and impressions logged, as in a
server), starts ``py-spy record`` on its own pid and serves ``--calls`` feeds (or uncached
related lists), then writes a text summary per thread: the frames with the most own samples
and the most samples on the stack.

Usage::

    python benchmarks/profile_inprocess.py --what feed --out benchmarks/profiles/inprocess_feed.txt

py-spy must be installed (``pip install py-spy``; it ptraces this process, so run as a user
allowed to). ``--gil`` samples only the thread holding the GIL.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
_THREAD = re.compile(r"^thread \((\d+)\): ([^;]*);")


def summarize(raw: Path, top: int = 25) -> str:
    """Per thread: top frames by own and by total samples, from py-spy's collapsed stacks."""
    own: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    total: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    samples: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        match = _THREAD.match(stack)
        if match is None and stack.startswith("thread ("):
            continue  # a thread with no Python frame at that moment
        thread = match.group(2) if match else "all"
        frames = stack[match.end():].split(";") if match else stack.split(";")
        frames = [_FRAME.sub(lambda m: f"{m[1]} ({'/'.join(m[2].split('/')[-2:])})", f) for f in frames]
        n = int(count)
        samples[thread] += n
        own[thread][frames[-1]] += n
        for frame in set(frames):
            total[thread][frame] += n
    out = []
    for thread, n in samples.most_common():
        out += [f"== thread {thread}: {n} samples", "", f"top {top} by own samples (% of the thread's):"]
        out += [f"{100 * c / n:6.1f} %  {f}" for f, c in own[thread].most_common(top)]
        out += ["", f"top {top} by total samples (frame on the stack):"]
        out += [f"{100 * c / n:6.1f} %  {f}" for f, c in total[thread].most_common(top)]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import add_scale_args, parse_scale_args
    from benchmarks.serving import ensure_model, sample_requests, working_copy
    from benchmarks.synthetic_scale import END

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_args(ap)
    ap.add_argument("--what", choices=("feed", "related"), default="feed")
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL")
    ap.add_argument("--out", required=True, help="text summary to write")
    args = parse_scale_args(ap, argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed; skipping", file=sys.stderr)
        return 0
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as `newsrec serve` sets for each worker
    from recommender.serving.engine import Engine, EngineConfig
    from recommender.store import SQLiteStore

    db, models = ensure_model(args)
    now = END + 3600.0
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(working_copy(db, Path(tmp)))
        engine = Engine(store, models, EngineConfig(), clock=lambda: now)
        engine.start_background()
        article_ids, user_ids = sample_requests(store, engine._state.model, args.calls + 200, np.random.default_rng(1))
        for u in user_ids[:200]:
            engine.feed(u)
        raw = Path(tmp) / "raw.txt"
        cmd = [spy, "record", "-p", str(os.getpid()), "-r", str(args.rate), "-f", "raw", "-o", str(raw), "--threads",
               "--nonblocking"] + (["--gil"] if args.gil else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.5)  # py-spy attaches
        start = time.perf_counter()
        for i in range(args.calls):
            if args.what == "feed":
                engine.feed(user_ids[200 + i], limit=20)
            else:
                engine._state.related_cache.clear()  # every call a miss: the cost the p99 is made of
                engine.related(article_ids[200 + i], limit=10)
        seconds = time.perf_counter() - start
        proc.send_signal(2)
        proc.wait(timeout=60)
        engine.close()
        header = (f"py-spy record -r {args.rate} --threads{' --gil' if args.gil else ''} of one process serving "
                  f"{args.calls} {args.what} calls in-process{' (each a cache miss)' if args.what == 'related' else ''} "
                  f"({seconds / args.calls * 1e3:.2f} ms a call, background "
                  f"thread and impression logging on), {args.articles:,} articles / {args.users:,} readers.\n"
                  f"Threads: MainThread serves; newsrec-live polls events, writes impressions, refreshes the "
                  f"window summary.\n\n")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(header + summarize(raw))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
