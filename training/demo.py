"""``newsrec demo``: the whole loop on the embedded default: sample data -> train -> serve."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone

from recommender.config import Settings
from recommender.store import open_store

from .cli import COMMANDS, build_parser, command


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--articles", type=int, default=600, help="sample articles (default 600)")
    p.add_argument("--users", type=int, default=300, help="sample readers (default 300)")
    p.add_argument("--days", type=int, default=7, help="days of sample activity (default 7)")
    p.add_argument("--seed", type=int, default=7, help="sample seed")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-serve", action="store_true", help="stop after training (print the summary)")


def _busiest_reader(store) -> str | None:
    """The reader with the most clicks, reads and shares: the most telling example feed."""
    import numpy as np

    log = store.load_interactions()
    positive = log.event > 0
    if not positive.any():
        return None
    keys, counts = np.unique(log.user_key[positive], return_counts=True)
    return log.user_ids[int(keys[np.argmax(counts)])]


def _run(argv: list[str], settings: Settings) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][1](args, settings)


@command("demo", "generate sample data (ending now), ingest it, train, create demo keys and serve")(_args)
def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    settings.ensure_dirs()
    store = open_store(settings.db)
    if store.stats()["articles"] == 0:
        print(f"== generating {args.articles} articles / {args.users} readers over {args.days} days, ingesting into "
              f"{settings.db_label}", flush=True)
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        code = _run(["sample", "--articles", str(args.articles), "--users", str(args.users), "--days", str(args.days),
                     "--seed", str(args.seed), "--end", now, "--ingest"], settings)
        if code:
            return code
    else:
        print(f"== store {settings.db_label} already holds data; skipping sample generation", flush=True)
    print("== store now holds:", json.dumps(store.stats()["events_by_type"]), flush=True)
    print("== training", flush=True)
    code = _run(["train", "--json", "--promote"], settings)
    if code:
        return code
    env_file = settings.home / "demo.env"
    if not env_file.exists() and "keys" in COMMANDS:
        for role, name in (("site", "NEWSREC_SITE_KEY"), ("admin", "NEWSREC_ADMIN_KEY")):
            code = _run(["keys", "add", "--role", role, "--name", f"demo-{role}", "--env-file", str(env_file),
                         "--env-name", name], settings)
            if code:
                return code
    base = f"http://{args.host}:{args.port}"
    recent = None
    for stored in store.iter_articles(published_since=time.time() - 2 * 86400):
        recent = stored.article  # the newest article makes the best example
    article_id = recent.article_id if recent else "ARTICLE_ID"
    reader = _busiest_reader(store) or "u00001"
    print(f"""
== newsrec is ready. Demo keys are in {env_file}. Try, in another terminal:

  set -a; . {env_file}; set +a
  curl -s -H "X-API-Key: $NEWSREC_SITE_KEY" '{base}/v1/articles/{article_id}/related?limit=5'
  curl -s -H "X-API-Key: $NEWSREC_SITE_KEY" '{base}/v1/users/{reader}/feed?limit=10'
  curl -s -H "X-API-Key: $NEWSREC_SITE_KEY" -H 'Content-Type: application/json' \\
       -d '{{"events": [{{"user_id": "{reader}", "article_id": "{article_id}", "event": "click", "ts": "{datetime.now(timezone.utc).isoformat(timespec="seconds")}"}}]}}' {base}/v1/events
  curl -s {base}/readyz
""", flush=True)
    if args.no_serve or "serve" not in COMMANDS:
        return 0
    print(f"== serving on {base} (Ctrl-C to stop)", flush=True)
    sys.stdout.flush()
    return _run(["serve", "--host", args.host, "--port", str(args.port)], settings)
