"""Request ids, timing, metrics and one JSON access-log line per request.

Logger ``newsrec.access`` gets messages that are complete JSON objects::

    {"ts": "...Z", "request_id": "...", "method": "GET", "path": "/v1/users/u1/feed",
     "endpoint": "/v1/users/<user_id>/feed", "status": 200, "duration_ms": 3.1, "auth": "site"}

No headers and no query string are logged, so API keys and tokens never reach the log; text
in a path that looks like an API key is masked too. The line of ``DELETE /v1/users/<user_id>``
(forget a reader) does not name the reader: it is written after the deletion.
``X-Request-ID`` is taken from the request when it is a safe id (1-128 of ``A-Za-z0-9._:-``),
generated otherwise, and always echoed in the response.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time

from flask import Flask, g, request

from .metrics import Metrics

ACCESS_LOGGER = "newsrec.access"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # the WSGI name of the header: no werkzeug header lookup
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_KEY_LIKE = re.compile(r"nr_(?:site|cms|editor|admin)_[A-Za-z0-9_\-]{8,}")
_UNNAMED_READER = frozenset({"users.forget"})  # endpoints whose log line must not name the reader
# One encoder for every line: ``json.dumps`` with options builds a new encoder per call.
_LINE = json.JSONEncoder(ensure_ascii=False)

access_log = logging.getLogger(ACCESS_LOGGER)


def _request_id(environ: dict) -> str:
    given = environ.get(_REQUEST_ID_ENVIRON)
    return given if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


def _utc_stamp(now: float) -> str:
    """``2024-05-01T10:00:00.123Z`` (cheaper than an aware datetime's isoformat)."""
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now))}.{int(now % 1 * 1000):03d}Z"


def _logged_path(req) -> str:
    path = req.path
    if req.endpoint in _UNNAMED_READER:
        user_id = (req.view_args or {}).get("user_id")
        if user_id:
            path = path.replace(f"/users/{user_id}", "/users/<user_id>", 1)
    return _KEY_LIKE.sub("nr_<masked>", path) if "nr_" in path else path


def init_request_logging(app: Flask, metrics: Metrics) -> None:
    """Register the before/after hooks; call before any other ``before_request``."""

    @app.before_request
    def _start() -> None:
        ctx = g._get_current_object()  # one context lookup instead of one per attribute
        ctx.request_started = time.perf_counter()
        ctx.request_id = _request_id(request.environ)

    @app.after_request
    def _finish(response):
        finished = time.perf_counter()
        ctx, req = g._get_current_object(), request._get_current_object()
        seconds = finished - (getattr(ctx, "request_started", None) or finished)
        request_id = getattr(ctx, "request_id", None) or _request_id(req.environ)
        headers = response.headers
        headers.set(REQUEST_ID_HEADER, request_id)
        headers.set("X-Content-Type-Options", "nosniff")  # no view sets another value
        path = req.path
        if path.startswith("/v1/"):
            headers.set("Cache-Control", "no-store")
        rule = req.url_rule
        endpoint = rule.rule if rule is not None else "unmatched"
        status = response.status_code
        metrics.observe_request(endpoint, req.method, status, seconds)
        if access_log.isEnabledFor(logging.INFO):
            principal = getattr(ctx, "principal", None)
            access_log.info(_LINE.encode({
                "ts": _utc_stamp(time.time()),
                "request_id": request_id,
                "method": req.method,
                "path": _logged_path(req),
                "endpoint": endpoint,
                "status": status,
                "duration_ms": round(seconds * 1000.0, 3),
                "auth": principal.label if principal is not None else "none",
            }))
        return response
