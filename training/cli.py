"""The ``newsrec`` command: one entry point, subcommands picked from a registry."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from recommender.config import Settings, SettingsError

log = logging.getLogger("newsrec")

Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Settings], int], str]
COMMANDS: dict[str, Command] = {}


def command(name: str, help_text: str):
    """Register ``run`` with an ``add_arguments`` companion under ``name``."""

    def register(add_arguments: Callable[[argparse.ArgumentParser], None]):
        def bind(run: Callable[[argparse.Namespace, Settings], int]):
            COMMANDS[name] = (add_arguments, run, help_text)
            return run

        return bind

    return register


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


# -- sample ----------------------------------------------------------------------------------
def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--articles", type=int, default=600, help="number of articles (default 600)")
    p.add_argument("--users", type=int, default=300, help="number of readers (default 300)")
    p.add_argument("--days", type=int, default=7, help="days of publishing and reading (default 7)")
    p.add_argument("--seed", type=int, default=7, help="random seed: the same seed gives the same data")
    p.add_argument("--out", type=Path, default=None, help="output folder (default NEWSREC_HOME/sample)")
    p.add_argument("--end", default="now",
                   help="end of the simulated period, ISO time or 'now' (default now, so that a model trained on it "
                        "serves fresh articles; give a time for the same files on every run)")
    p.add_argument("--ingest", action="store_true", help="also load the files into the store")


@command("sample", "write a synthetic Indonesian data set (articles, events, preferences, truth) as JSON Lines")(_sample_args)
def run_sample(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.datasets.synthetic import generate

    for name in ("articles", "users", "days"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1")
    if args.end == "now":
        end = datetime.now(timezone.utc).replace(microsecond=0)
    else:
        try:
            end = datetime.fromisoformat(args.end)
        except ValueError:
            raise SystemExit(f"--end must be 'now' or an ISO time like 2026-11-27T00:00:00+07:00; got {args.end!r}"
                             ) from None
        if end.tzinfo is None:
            raise SystemExit("--end needs an offset, e.g. 2026-11-27T00:00:00+07:00")
    out = args.out or settings.home / "sample"
    data = generate(n_articles=args.articles, n_users=args.users, days=args.days, seed=args.seed, end=end)
    paths = data.write_jsonl(out)
    summary = {"out": str(out), "files": {k: str(v) for k, v in paths.items()},
               "articles": len(data.articles), "events": len(data.events), "preferences": len(data.preferences)}
    if args.ingest:
        summary["ingested"] = _ingest_folder(settings, out)
    _print_json(summary)
    return 0


def _ingest_folder(settings: Settings, folder: Path) -> dict:
    """Import articles, events and preferences JSON Lines from a sample folder."""
    from recommender.datasets.ingest import import_articles, import_events, import_preferences
    from recommender.store import open_store

    store = open_store(settings.ensure_dirs().db)
    reports = {}
    for name, fn in (("articles", import_articles), ("events", import_events), ("preferences", import_preferences)):
        path = folder / f"{name}.jsonl"
        if path.exists():
            report = fn(store, path)
            reports[name] = {"accepted": report.accepted, "duplicates": report.duplicates, "rejected": report.rejected}
    return reports


# -- ingest ----------------------------------------------------------------------------------
def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["articles", "events", "preferences", "mind", "id-news"],
                   help="what the file holds; 'mind' takes a folder with news.tsv and behaviors.tsv; 'id-news' a CSV "
                        "of scraped articles (URL, PublishDate, Article_ID, Title, Body_Text: the Kompas/Tribunnews "
                        "set), sections from the URLs, page furniture stripped")
    p.add_argument("path", type=Path, help="a .jsonl or .csv file (or a MIND folder)")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="override the format guessed from the name")
    p.add_argument("--report", type=Path, default=None, help="write the full import report (JSON) here")
    p.add_argument("--no-placeholders", action="store_true",
                   help="mind: no placeholder articles (no text) for news ids without a news.tsv row; without "
                        "them their events are skipped by training and evaluation")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")


@command("ingest", "import articles, events or preferences (JSON Lines / CSV), a MIND folder or scraped Indonesian "
                   "articles into the store")(_ingest_args)
def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.datasets.ingest import IMPORTERS, import_mind, import_scraped
    from recommender.store import open_store

    if not args.path.exists():
        print(f"error: {args.path} does not exist", file=sys.stderr)
        return 2
    store = open_store(settings.ensure_dirs().db)
    show = False if args.no_progress else None
    if args.kind == "mind":
        try:
            reports = import_mind(store, args.path, show_progress=show, stub_missing=not args.no_placeholders)
        except FileNotFoundError as exc:  # a file, or a folder without MIND's two files
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        try:
            if args.kind == "id-news":
                reports = [import_scraped(store, args.path, show_progress=show)]
            else:
                reports = [IMPORTERS[args.kind](store, args.path, fmt=args.format, show_progress=show)]
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    full = [r.to_dict() for r in reports]
    if args.report:
        args.report.write_text(json.dumps(full, indent=2, ensure_ascii=False))
    for report in full:
        for err in report["errors"][:20]:
            print(f"{report['source']}:{err['line']}: rejected: {err['reason']}", file=sys.stderr)
        if report["rejected"] > 20:
            print(f"... {report['rejected'] - 20} more rejected rows (see --report)", file=sys.stderr)
    _print_json([{k: v for k, v in r.items() if k != "errors"} for r in full])
    refused = [r for r in full if r["rejected"] and not r["accepted"] and not r["duplicates"]]
    for report in refused:  # (a wrong --format or kind, most likely): say so in the exit code too
        print(f"error: no row of {report['source']} was imported ({report['rejected']} rejected)", file=sys.stderr)
    return 1 if refused else 0


# -- stats -----------------------------------------------------------------------------------
def _stats_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


@command("stats", "show what the store holds (articles, readers, events by type, newest event)")(_stats_args)
def run_stats(args: argparse.Namespace, settings: Settings) -> int:
    from recommender.domain import format_time
    from recommender.store import open_store

    if no_store(settings):  # (a mistyped NEWSREC_HOME would otherwise get a new, empty store)
        return 2
    stats = open_store(settings.db).stats()
    newest = stats["newest_event_ts"]
    stats["newest_event_time"] = format_time(newest) if newest is not None else None
    if args.json:
        _print_json(stats)
    else:
        for key, value in stats.items():
            print(f"{key:34s} {value}")
    return 0


def no_store(settings: Settings) -> bool:
    """True (after saying so) when there is no store to read: commands that only read must not
    create one."""
    if settings.db_url is not None or settings.db_path.exists():  # a server: opening it says what is wrong
        return False
    print(f"error: no store at {settings.db_label}: ingest data first (newsrec ingest ...), or set NEWSREC_HOME "
          "or NEWSREC_DB", file=sys.stderr)
    return True


class _Parser(argparse.ArgumentParser):
    """Says which (sub)command an unknown argument was given to: argparse hands a subcommand's
    leftovers up, and the top-level parser then printed its own usage for ``newsrec train --bogus``."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = _Parser(
        prog="newsrec",
        description="newsrec: related articles and personalized feeds for an Indonesian news portal. "
        "Configuration: NEWSREC_HOME (default ./var), NEWSREC_DB, NEWSREC_MODELS.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
    return parser


def _load_plugins() -> None:
    """Import the job modules whose commands register themselves here, and list the service's own
    commands (``serve``, ``keys``, ``token`` live with the service in ``api.commands``)."""
    import importlib

    for module in ("training.demo", "training.train", "training.models_cli", "training.evaluate", "training.tune",
                   "training.migrate", "training.retention", "training.editorial_cli",
                   "training.experiments_cli"):
        importlib.import_module(module)
    from api.commands import COMMANDS as SERVICE_COMMANDS

    COMMANDS.update(SERVICE_COMMANDS)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.command:
        parser.print_help()
        return 2
    _, run, _ = COMMANDS[args.command]
    from recommender.store import StoreError

    try:
        settings = Settings.from_env()
    except ValueError as exc:  # NEWSREC_DB names no database newsrec knows
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return run(args, settings)
    except SettingsError as exc:  # a folder of NEWSREC_HOME, NEWSREC_DB or NEWSREC_MODELS cannot be made
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # the database is unreachable, busy or newer than this code
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover - run as `python -m training.cli`
    from training.cli import main as _main  # the registry lives in the imported module, not __main__

    sys.exit(_main())
