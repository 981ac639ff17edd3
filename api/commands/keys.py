"""``newsrec keys add|list|revoke`` and ``newsrec token issue``: credentials for the API.

A new key is printed once on stdout (alone, so ``KEY=$(newsrec keys add --role site)`` works)
and only its SHA-256 is stored, in the database (``NEWSREC_DB``): every worker of every replica
honours it from its next request, and stops honouring a revoked one within a second; no restart
is needed. Keys of older installations live in ``NEWSREC_HOME/keys.json`` on each host; they
still work on that host, and ``newsrec keys import`` moves them into the database.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from recommender.config import Settings
from recommender.security import (
    ENV_TOKEN_SECRET,
    KEYS_FILE,
    MAX_TOKEN_TTL,
    ROLES,
    KeyStore,
    ReaderTokens,
    SecurityError,
    atomic_write_private,
    load_token_secret,
)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # fullmatch: no final newline


def _keys_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a key and print it once")
    add.add_argument("--role", choices=ROLES, required=True,
                     help="site: lists, events, preferences; cms: publish and edit articles; editor: cms and "
                          "takedowns; admin: everything; widget: a public key for the portal's pages (the Artikel "
                          "Terkait widget) that may only post the anonymous reader's clicks")
    add.add_argument("--name", default=None, help="a label to recognise the key by (e.g. the server using it)")
    add.add_argument("--env-file", type=Path, default=None,
                     help="also write NAME=key into this file (created 0600; an existing NAME line is replaced)")
    add.add_argument("--env-name", default=None,
                     help="variable name for --env-file (default NEWSREC_<ROLE>_KEY, e.g. NEWSREC_CMS_KEY)")
    lst = sub.add_parser("list", help="show key ids, roles, names and creation times (never the keys)")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    rev = sub.add_parser("revoke", help="delete a key by key_id (or by name if unique)")
    rev.add_argument("key", help="key_id from 'newsrec keys list', or the key's name")
    sub.add_parser("import", help="copy this host's keys.json (older installations) into the database, so every "
                                  "replica honours its keys; the file is renamed keys.json.imported")


def update_env_file(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in a dotenv-style file, keeping its other lines; written 0600, atomically."""
    if not _ENV_NAME.fullmatch(name):
        raise SecurityError(f"--env-name must be a shell variable name like NEWSREC_SITE_KEY; got {name!r}")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if not re.match(rf"^\s*(export\s+)?{re.escape(name)}\s*=", line)]
    kept.append(f"{name}={value}")
    atomic_write_private(path, ("\n".join(kept) + "\n").encode("utf-8"))


def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    from api.auth import SharedKeys
    from recommender.store import open_store

    file_keys = KeyStore(settings.home / KEYS_FILE)
    store = SharedKeys(open_store(settings.ensure_dirs().db), file_keys)
    try:
        if args.keys_command == "import":
            imported, present = store.import_file()
            path = settings.home / KEYS_FILE
            if path.exists():
                path.rename(path.with_name(KEYS_FILE + ".imported"))
            for key in imported:
                print(f"imported {key.role} key {key.key_id} ({key.name})", file=sys.stderr)
            print(f"{len(imported)} key(s) imported into the database, {len(present)} there already"
                  + (f"; {path.name} renamed {path.name}.imported" if imported or present else ""), file=sys.stderr)
            return 0
        if args.keys_command == "add":
            env_name = args.env_name or f"NEWSREC_{args.role.upper()}_KEY"
            if args.env_file is not None and not _ENV_NAME.fullmatch(env_name):
                raise SecurityError(f"--env-name must be a shell variable name; got {env_name!r}")
            raw, key = store.add(args.role, args.name)
            if args.env_file is not None:
                update_env_file(args.env_file, env_name, raw)
            print(raw)
            where = f" and in {args.env_file} as {env_name}" if args.env_file is not None else ""
            print(f"created {key.role} key {key.key_id} ({key.name}); it is shown only now{where}",
                  file=sys.stderr)
            return 0
        if args.keys_command == "list":
            in_file = {k.key_id for k in file_keys.keys()}
            rows = [dict(k.public(), stored="keys.json" if k.key_id in in_file else "database") for k in store.keys()]
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print("no keys; create one with 'newsrec keys add --role site'", file=sys.stderr)
            else:
                for row in rows:
                    print(f"{row['key_id']}  {row['role']:6s}  {row['created']}  {row['stored']:9s}  {row['name']}")
            return 0
        revoked = store.revoke(args.key)
        if revoked is None:
            print(f"error: no key with key_id or name {args.key!r} (a revoked key is removed, so revoking it again "
                  "finds nothing); see 'newsrec keys list'", file=sys.stderr)
            return 1
        print(f"revoked {revoked.role} key {revoked.key_id} ({revoked.name})", file=sys.stderr)
        return 0
    except SecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _token_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    issue = sub.add_parser("issue", help="print a signed token for one reader")
    issue.add_argument("user_id", help="the reader the token speaks for")
    issue.add_argument("--ttl", type=int, default=3600,
                       help=f"seconds until it expires (default 3600, at most {MAX_TOKEN_TTL})")


def run_token(args: argparse.Namespace, settings: Settings) -> int:
    try:
        secret = load_token_secret(settings.home, {k: v for k, v in settings.extra.items() if k == ENV_TOKEN_SECRET})
        print(ReaderTokens(secret).issue(args.user_id, args.ttl))
    except (SecurityError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


# name -> (add_arguments, run, help): listed by the ``newsrec`` entry point (training.cli)
COMMANDS = {
    "keys": (_keys_args, run_keys, "manage API keys (in the database, shared by every replica): add --role "
                      "site|cms|editor|admin|widget, list, revoke, import (an older keys.json)"),
    "token": (_token_args, run_token, "issue reader tokens (Authorization: Bearer) for a browser: token issue USER_ID --ttl SECONDS"),
}
