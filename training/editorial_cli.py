"""``newsrec pins`` and ``newsrec rules``: editorial rules from the command line.

They write to the store like the admin API (audited as ``cli:<os user>``, with a ``rules``
change), so every running worker of every replica applies them within a poll.
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
import time

from recommender.config import Settings
from recommender.domain import ValidationError, format_time
from recommender.serving.results import NotFound
from recommender.serving.rules import check_named_articles, parse_pin, parse_rule, rule_view
from recommender.store import open_store

from .cli import command


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _scope_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--list", dest="list_kind", choices=("feed", "related"), default="feed",
                   help="which lists (default feed)")
    p.add_argument("--in-category", help="only feeds filtered to this section / related lists under its articles")
    p.add_argument("--in-region", help="only feeds of this regional edition / related lists under its articles")
    p.add_argument("--anchor", help="related: only the lists under this article")
    p.add_argument("--story", help="related: the lists under any article of this article's story")
    p.add_argument("--starts", help="ISO-8601 time or epoch seconds (default now)")
    p.add_argument("--expires", help="ISO-8601 time or epoch seconds")


def _scope(args: argparse.Namespace) -> dict:
    scope = {"list": args.list_kind, "category": args.in_category, "region": args.in_region,
             "article_id": args.anchor, "story": args.story}
    return {k: v for k, v in scope.items() if v is not None}


def _times(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("starts_at", args.starts), ("expires_at", args.expires)) if v is not None}


def _print_rules(rules, as_json: bool) -> None:
    now = time.time()
    if as_json:
        print(json.dumps([rule_view(r, now) for r in rules], indent=2, ensure_ascii=False))  # as the API
        return
    for r in rules:
        what = f"{r.target['article_id']} at {r.position}" if r.kind == "pin" else (
            f"{r.kind} {json.dumps(r.target, ensure_ascii=False)}" + (f" x{r.factor:g}" if r.factor else ""))
        until = format_time(r.expires_at) if r.expires_at else "until removed"
        print(f"{r.rule_id}  {what}  in {json.dumps(r.scope, ensure_ascii=False)}  -> {until}  by {r.created_by}")


def _pins_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="pin an article at a position until --expires")
    add.add_argument("article_id")
    add.add_argument("--position", type=int, required=True, help="1 = first")
    _scope_args(add)
    ls = sub.add_parser("list", help="pins in force")
    ls.add_argument("--json", action="store_true")
    rm = sub.add_parser("remove", help="remove a pin now")
    rm.add_argument("rule_id")


def _rules_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="boost, bury or block an article, a category or a region")
    add.add_argument("kind", choices=("boost", "bury", "block"))
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--article", help="the article it changes")
    target.add_argument("--category", help="every article of this category")
    target.add_argument("--region", help="every article of this region")
    add.add_argument("--factor", type=float, help="boost: above 1; bury: below 1")
    _scope_args(add)
    ls = sub.add_parser("list", help="boosts, buries and blocks in force")
    ls.add_argument("--json", action="store_true")
    rm = sub.add_parser("remove", help="remove a rule now")
    rm.add_argument("rule_id")
    audit = sub.add_parser("audit", help="every change to pins and rules, newest first")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true")


def _run(args: argparse.Namespace, settings: Settings, pins: bool) -> int:
    store = open_store(settings.ensure_dirs().db)
    try:
        if args.action == "add":
            now, who = time.time(), _who()
            try:
                if pins:
                    rule = parse_pin({"article_id": args.article_id, "position": args.position,
                                      "scope": _scope(args), **_times(args)}, "p" + secrets.token_hex(8), now, who)
                else:
                    target = {k: v for k, v in (("article_id", args.article), ("category", args.category),
                                                ("region", args.region)) if v is not None}
                    body = {"kind": args.kind, "target": target, "scope": _scope(args), **_times(args)}
                    if args.factor is not None:
                        body["factor"] = args.factor
                    rule = parse_rule(body, "r" + secrets.token_hex(8), now, who)
            except ValidationError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            try:
                check_named_articles(store, rule)
            except NotFound as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            store.add_rule(rule, who)
            print(rule.rule_id)
            return 0
        if args.action == "list":
            _print_rules([r for r in store.list_rules() if (r.kind == "pin") == pins], args.json)
            return 0
        if args.action == "remove":
            found = next((r for r in store.list_rules() if r.rule_id == args.rule_id), None)
            if found is None or (found.kind == "pin") != pins or not store.remove_rule(args.rule_id, _who()):
                print(f"error: no {'pin' if pins else 'rule'} {args.rule_id} is in force", file=sys.stderr)
                return 1
            print(f"removed {args.rule_id}")
            return 0
        entries = store.audit_log(limit=args.limit)  # audit
        if args.json:
            print(json.dumps([{"seq": e.seq, "at": format_time(e.at), "who": e.who, "action": e.action,
                               "rule_id": e.rule_id, "rule": e.detail} for e in entries], indent=2, ensure_ascii=False))
        else:
            for e in entries:
                print(f"{format_time(e.at)}  {e.who}  {e.action:6s}  {e.rule_id}  {e.detail.get('kind')}")
        return 0
    finally:
        store.close()


@command("pins", "pin articles at positions of feeds or related lists: add, list, remove")(_pins_args)
def run_pins(args: argparse.Namespace, settings: Settings) -> int:
    return _run(args, settings, pins=True)


@command("rules", "boosts, buries and blocks (add, list, remove) and the audit log of every editorial change")(
    _rules_args)
def run_rules(args: argparse.Namespace, settings: Settings) -> int:
    return _run(args, settings, pins=False)
