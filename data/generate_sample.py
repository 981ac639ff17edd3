"""Regenerate the committed sample data in ``data/sample/`` (or a bigger set elsewhere).

Usage (from the repository root)::

    .venv/bin/python data/generate_sample.py                      # the committed sample
    .venv/bin/python data/generate_sample.py --out /tmp/big --articles 5000 --users 5000 --days 14
    .venv/bin/python data/generate_sample.py --out /tmp/live --end now

The same arguments always give byte-identical files, except with ``--end now``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script, the package is not installed
    sys.path.insert(0, str(ROOT))

from recommender.domain import WIB  # noqa: E402
from recommender.datasets.synthetic import DEFAULT_END, generate  # noqa: E402

log = logging.getLogger("generate_sample")


def parse_end(text: str) -> datetime:
    """``now`` or an ISO-8601 time; a time without an offset is read as WIB."""
    if text == "now":
        return datetime.now(tz=WIB).replace(microsecond=0)
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--end must be 'now' or ISO-8601 like 2026-11-01T00:00:00+07:00; got {text!r}") from None
    return end if end.tzinfo else end.replace(tzinfo=WIB)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "sample", help="output directory (default: data/sample)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--articles", type=int, default=600, help="number of articles (default: 600)")
    parser.add_argument("--users", type=int, default=300, help="number of readers (default: 300)")
    parser.add_argument("--days", type=float, default=7, help="days of publishing and reading (default: 7)")
    parser.add_argument(
        "--end", type=parse_end, default=DEFAULT_END,
        help=f"end of the window: 'now' or ISO-8601 (default: {DEFAULT_END.isoformat()})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    data = generate(n_articles=args.articles, n_users=args.users, days=args.days, seed=args.seed, end=args.end)
    paths = data.write_jsonl(args.out)
    counts = {"articles": len(data.articles), "events": len(data.events),
              "preferences": len(data.preferences), "truth": len(data.truth)}
    for name, path in paths.items():
        log.info("%-12s %7d records %9.1f kB  %s", name, counts[name], path.stat().st_size / 1000, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
