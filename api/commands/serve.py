"""``newsrec serve``: run the API under gunicorn (see ``api/gunicorn_conf.py`` for the why).

The process is replaced by gunicorn (``os.execvpe``), so signals reach gunicorn directly:
``kill -HUP`` reloads workers gracefully, ``kill -TERM`` stops after in-flight requests.
``--check`` builds the app once (no background thread, no server) and reports what it found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from recommender.config import ENV_DB, ENV_HOME, ENV_MODELS, SERVE_THREADS, Settings, reuse_port, serve_threads

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "api" / "gunicorn_conf.py"
ENV_PROMETHEUS = "PROMETHEUS_MULTIPROC_DIR"
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2: one per core)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"threads per worker (default {SERVE_THREADS['sqlite']} on SQLite, "
                        f"{SERVE_THREADS['postgresql']} on PostgreSQL, where a request waiting for the server "
                        "holds a thread but not the CPU)")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS/OpenMP threads per worker (default 1; more loses throughput with several workers)")
    p.add_argument("--check", action="store_true", help="validate the configuration, print a summary and exit")


def threads_for(args: argparse.Namespace, settings: Settings) -> int:
    """``--threads``, else ``NEWSREC_THREADS``, else the backend's default (``config.serve_threads``).
    (gunicorn takes its command line over the config file, so the variable is read here too.)"""
    if args.threads is not None:
        return args.threads
    named = os.environ.get("NEWSREC_THREADS", "").strip()
    if named:
        if not named.isdigit() or int(named) < 1:
            raise SystemExit(f"NEWSREC_THREADS must be a whole number of at least 1, got {named!r}")
        return int(named)
    return serve_threads(settings.db)


def environment_problem(settings: Settings) -> str | None:
    """What is wrong with the environment's settings that every worker reads when it builds the app
    (engine knobs, rate limits, proxies, token secret), or None. Checked before gunicorn starts: a bad
    value in a worker was a traceback per worker and "Worker failed to boot"."""
    from api import engine_config_from_env
    from api.ratelimit import settings as rate_limit_settings
    from api.web import ENV_PROXY_FIX, proxy_count
    from recommender.security import SecurityError, load_token_secret

    try:
        engine_config_from_env(os.environ)
        rate_limit_settings({}, os.environ)
        proxy_count(os.environ.get(ENV_PROXY_FIX))
        load_token_secret(settings.ensure_dirs().home, os.environ)
    except (ValueError, SecurityError) as exc:
        return str(exc)
    if reuse_port(os.environ.get("NEWSREC_REUSE_PORT")) is None:
        return ("NEWSREC_REUSE_PORT must be 1 (a socket per worker) or 0 (one shared socket); got "
                f"{os.environ['NEWSREC_REUSE_PORT'].strip().lower()!r}")
    folder = os.environ.get(ENV_PROMETHEUS)  # gunicorn's on_starting creates it: a file there was its traceback
    if folder and Path(folder).exists() and not Path(folder).is_dir():
        return f"{ENV_PROMETHEUS}={folder!r} is a file, not a folder for the workers' metrics"
    return None


def server_command(args: argparse.Namespace, settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The gunicorn argv and environment ``newsrec serve`` would exec."""
    env = dict(os.environ)
    env[ENV_HOME] = str(settings.home.resolve())
    env[ENV_DB] = settings.db_url if settings.db_url is not None else str(settings.db_path.resolve())
    env[ENV_MODELS] = str(settings.models_dir.resolve())
    for name in BLAS_VARS:
        env[name] = str(args.blas_threads)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    argv = [
        sys.executable, "-m", "gunicorn",
        "--config", str(GUNICORN_CONF),
        "--bind", f"{args.host}:{args.port}",
        "--workers", str(args.workers),
        "--threads", str(threads_for(args, settings)),
        "--worker-class", "gthread",
        "--chdir", str(ROOT),
        "api.wsgi:app",
    ]
    return argv, env


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (another server holds it, or the address is not
    this host's), or None when it is free."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return str(exc)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what gunicorn sets: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def check(settings: Settings) -> dict:
    """Build the app without starting anything; raises on a configuration that cannot serve."""
    from api import create_app

    settings.ensure_dirs()
    if os.environ.get(ENV_PROMETHEUS):  # as gunicorn's on_starting does, or the check fails where serve would not
        Path(os.environ[ENV_PROMETHEUS]).mkdir(parents=True, exist_ok=True)
    app = create_app({ENV_HOME: str(settings.home), ENV_DB: settings.db,
                      ENV_MODELS: str(settings.models_dir), "START_BACKGROUND": False})
    engine = app.extensions["newsrec"]
    try:
        status = engine.status()
        keys = app.extensions["newsrec.security"].keys.keys()
    finally:
        engine.close()
    roles = sorted({k.role for k in keys})
    problems = []
    if not keys:
        problems.append("no API keys: create one with 'newsrec keys add --role site'")
    return {"ok": not problems, "problems": problems, "home": str(settings.home),
            "keys_in": settings.db_label, "key_roles": roles, "n_keys": len(keys),
            "gunicorn_conf": str(GUNICORN_CONF), "engine": status}


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    for name, low in (("workers", 1), ("threads", 1), ("blas_threads", 1)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least {low}")
    if not 0 < args.port < 65536:
        raise SystemExit("--port must be between 1 and 65535")
    if args.check:
        try:
            threads_for(args, settings)  # NEWSREC_THREADS, which only serve reads
            problem = environment_problem(settings)
            if problem:
                raise ValueError(problem)
            summary = check(settings)
        except (Exception, SystemExit) as exc:  # report any configuration failure as a message, not a traceback
            print(json.dumps({"ok": False, "problems": [f"{type(exc).__name__}: {exc}"]}, indent=2))
            return 2
        print(json.dumps(summary, indent=2, default=str))
        return 0 if summary["ok"] else 1
    problem = environment_problem(settings)
    if problem:
        raise SystemExit(f"newsrec serve: {problem}")
    argv, env = server_command(args, settings)
    # each worker binds its own socket with SO_REUSEPORT (api/gunicorn_conf.py), which would also
    # share a port some other server of this user listens on: refuse that here, as a plain bind does
    taken = port_in_use(args.host, args.port)
    if taken:
        raise SystemExit(f"cannot listen on {args.host}:{args.port}: {taken}")
    settings.ensure_dirs()
    # schema migrations run here, once, before the workers start: building an index on millions of
    # events takes longer than a worker waits for the write lock
    from recommender.store import open_store

    open_store(settings.db).close()
    os.execvpe(argv[0], argv, env)
    return 0  # pragma: no cover - execvpe does not return


# name -> (add_arguments, run, help): listed by the ``newsrec`` entry point (training.cli)
COMMANDS = {
    "serve": (_serve_args, run_serve, "run the HTTP API under gunicorn (gthread workers, one BLAS thread each)"),
}
