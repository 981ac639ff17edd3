"""gunicorn settings for ``newsrec serve`` (command-line flags override these).

* ``gthread`` workers: the handlers wait on SQLite and numpy, which release the GIL.
* ``preload_app = False``: every worker imports ``api.wsgi`` after the fork and opens its own
  SQLite connections and engine background thread (SQLite handles must not cross a fork).
* BLAS thread pools are pinned to 1 per worker (measured: 2 workers with 2 BLAS threads each
  lose up to 65 % throughput on 2 cores). Override with ``newsrec serve --blas-threads``.
* ``kill -HUP <master pid>``: gunicorn re-reads this file and replaces the workers gracefully;
  new workers load the live model version and the current code. Without SIGHUP each worker's
  background thread still picks up a promotion or rollback (``newsrec models promote``) within seconds.
* Access log: gunicorn's own is off (and not even built: :class:`QuietAccessLogger`);
  ``newsrec.access`` writes one JSON line per request to stdout, without headers (no keys or
  tokens in logs). gunicorn's error log quotes malformed request lines and headers, which may
  hold a key: every handler masks key- and token-like text.
* ``reuse_port``: each worker listens on its own socket with ``SO_REUSEPORT`` and the kernel
  spreads new connections over the workers. With one shared socket, keep-alive connections opened
  together (a load balancer's pool, wrk) stay with whichever worker accepted them first: all 64 of
  them on one worker in one of four trials at 10M events, the other worker idle and the busy one
  spending ~30 % of its CPU in the kernel (futex) on GIL hand-offs. ``newsrec serve`` refuses a
  port another server already listens on (SO_REUSEPORT would share it). ``NEWSREC_REUSE_PORT=0``:
  one shared socket (e.g. for a bind gunicorn cannot open per worker, or systemd sockets).
* The workers' heartbeat file is in ``/dev/shm`` (memory) where there is one: each worker's main
  thread touches it (``utime``) between every two events it dispatches, and on a disk-backed
  ``/tmp`` that call waits for the file system's journal, behind the fsyncs of durable commits
  (gunicorn's ``worker_tmp_dir`` note; measured with ``strace -T`` under event posts to a SQLite
  server, load ~6: 11 of 2,111 calls over 1 ms, up to 5.1 ms, each delaying the next request).
* Python's cycle collector: each worker freezes what it loaded (``gc.freeze`` in
  ``post_worker_init``), and the engine's caches keep their lists as plain tuples
  (``results.pack_items``), which the collector stops walking. Measured in-process at 10M events
  with the feed cache filling to its 20,000 pages: full collections, which stop every thread of
  the worker, took 40 ms growing to 193 ms, and now 5-8 ms (``benchmarks/gc_pauses.py``).
* ``PROMETHEUS_MULTIPROC_DIR`` (optional): the folder is emptied at start and dead workers are
  marked, so ``/metrics`` sums every worker.
* Errors gunicorn answers itself, before the app sees the request (414 request line too long,
  431 headers too large, 400 malformed request line or header, 500 outside Flask), are the
  API's JSON error shape too: gunicorn has no setting or hook for its error page, and writes all
  of them through one function, ``gunicorn.util.write_error(sock, status, reason, message)``
  (called from ``Worker.handle_error`` only), so each worker replaces that function once, in the
  documented ``post_worker_init`` hook (:func:`write_json_error`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from gunicorn.glogging import Logger as _GunicornLogger

from recommender.config import ENV_DB, serve_threads  # standard library only
from recommender.config import reuse_port as parse_reuse_port  # (the setting below takes the name)

# Nothing from api/ or numpy is imported here: the master must not start BLAS threads or open
# SQLite before forking, and workers must see these variables before numpy loads.
ACCESS_LOGGER = "newsrec.access"  # api.logging.ACCESS_LOGGER; duplicated so api/ is not imported

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


_SECRET_LIKE = re.compile(r"nr_(?:site|cms|editor|admin)_[A-Za-z0-9_\-]{8,}|v1\.[A-Za-z0-9_\-]+\.[0-9]+\.[A-Za-z0-9_\-]{16,}")


class MaskSecrets(logging.Filter):
    """Replace API-key- and reader-token-like text in a record's message (e.g. gunicorn quoting a
    malformed header) before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _SECRET_LIKE.sub("<masked>", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class QuietAccessLogger(_GunicornLogger):
    """gunicorn's logger, minus the per-request work of an access line nobody writes.

    gunicorn builds its access-log atoms for every request whenever a ``logconfig_dict`` is set,
    even with ``gunicorn.access`` at WARNING (measured: ~5 % of a worker's GIL time serving
    ``related``). Access lines come from ``newsrec.access`` instead; if ``gunicorn.access`` is
    ever enabled for INFO, gunicorn's own lines come back.
    """

    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):  # a cached level check
            super().access(resp, req, environ, request_time)


def logging_config(level: str = "INFO") -> dict:
    """``logging.config.dictConfig`` for the server: access lines as bare JSON on stdout,
    everything else (tracebacks included) as text on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json_line": {"format": "%(message)s"},
            "text": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"},
        },
        "filters": {"mask_secrets": {"()": MaskSecrets}},
        "handlers": {
            "access": {"class": "logging.StreamHandler", "formatter": "json_line", "stream": "ext://sys.stdout",
                       "filters": ["mask_secrets"]},
            "console": {"class": "logging.StreamHandler", "formatter": "text", "stream": "ext://sys.stderr",
                        "filters": ["mask_secrets"]},
        },
        "loggers": {
            ACCESS_LOGGER: {"level": "INFO", "handlers": ["access"], "propagate": False},
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
        "root": {"level": level, "handlers": ["console"]},
    }


def heartbeat_dir() -> str | None:
    """``/dev/shm`` if it is a writable folder (Linux), else None: gunicorn's default, the temp dir."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK) else None


bind = os.environ.get("NEWSREC_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("NEWSREC_WORKERS", "2"))
threads = int(os.environ.get("NEWSREC_THREADS", serve_threads(os.environ.get(ENV_DB, ""))))  # as `newsrec serve`
worker_class = "gthread"
reuse_port = parse_reuse_port(os.environ.get("NEWSREC_REUSE_PORT")) is not False
preload_app = False
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 0
worker_tmp_dir = heartbeat_dir()
accesslog = None
errorlog = "-"
loglevel = os.environ.get("NEWSREC_LOG_LEVEL", "info")
logconfig_dict = logging_config(loglevel.upper())
logger_class = QuietAccessLogger
proc_name = "newsrec"
control_socket_disable = True  # recent gunicorn opens ~/.gunicorn/gunicorn.ctl otherwise, shared by every server
limit_request_field_size = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of a previous run would be summed in
            stale.unlink()
        server.log.info("prometheus multiprocess mode in %s", path)


def when_ready(server):
    if server.cfg.reuse_port:  # gunicorn's "Listening at:" line is empty then: the workers open the sockets
        server.log.info("each worker listens on %s (SO_REUSEPORT)", ", ".join(server.cfg.bind))


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error`` with the API's body: ``{"error": code, "message": text}``.

    The code is the reason in snake case (``uri_too_long``, ``request_header_fields_too_large``,
    ``bad_request``; ``internal_error`` for 500, as the app's own); the connection is closed.
    """
    from gunicorn import util

    if status_int >= 500:
        code, message = "internal_error", "internal error; the server log has the details"
    else:
        code = re.sub(r"[^a-z]+", "_", reason.lower()).strip("_") or "bad_request"
        message = f"{reason}: {mesg}" if mesg else reason
        message = message if len(message) <= 300 else message[:297] + "..."
    body = json.dumps({"error": code, "message": message}).encode("ascii")  # non-ASCII as \u escapes
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def post_worker_init(worker):
    import gc

    from gunicorn import util

    # what the worker has loaded (code, model, catalog: ~85,000 objects at 10M events) stays for its
    # life: out of the cycle collector's sight, a full collection walks only what came after (~5
    # instead of ~30 ms; such objects still go when nothing refers to them, as a replaced model does)
    gc.collect()
    gc.freeze()

    if not callable(getattr(util, "write_error", None)):  # pragma: no cover - a gunicorn that changed the seam
        worker.log.warning("gunicorn.util.write_error is gone: gunicorn's own errors stay HTML")
        return
    util.write_error = write_json_error


def post_fork(server, worker):
    # The app (and its engine background thread) is created lazily in the worker because
    # preload_app is False; nothing else must start before the fork.
    server.log.debug("worker %s forked", worker.pid)


def worker_exit(server, worker):
    import sys

    module = sys.modules.get("api.wsgi")
    if module is not None:
        try:
            experiments = module.app.extensions.get("newsrec.experiments")
            if experiments is not None:  # first: its lists are written by the engine's close
                experiments.close()
            module.app.extensions["newsrec"].close()
        except Exception:  # pragma: no cover - best effort on the way out
            server.log.exception("engine close failed in worker %s", worker.pid)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
