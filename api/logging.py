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
import re
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, g, request

from .metrics import Metrics

ACCESS_LOGGER = "newsrec.access"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_KEY_LIKE = re.compile(r"nr_(?:site|admin)_[A-Za-z0-9_\-]{8,}")
_UNNAMED_READER = frozenset({"users.forget"})  # endpoints whose log line must not name the reader

access_log = logging.getLogger(ACCESS_LOGGER)


def _request_id() -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def _logged_path() -> str:
    path = request.path
    user_id = (request.view_args or {}).get("user_id")
    if user_id and request.endpoint in _UNNAMED_READER:
        path = path.replace(f"/users/{user_id}", "/users/<user_id>", 1)
    return _KEY_LIKE.sub("nr_<masked>", path)


def init_request_logging(app: Flask, metrics: Metrics) -> None:
    """Register the before/after hooks; call before any other ``before_request``."""

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = _request_id()

    @app.after_request
    def _finish(response):
        started = g.get("request_started") or time.perf_counter()
        seconds = time.perf_counter() - started
        request_id = g.get("request_id") or _request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/v1/"):
            response.headers["Cache-Control"] = "no-store"
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.observe_request(endpoint, request.method, response.status_code, seconds)
        if access_log.isEnabledFor(logging.INFO):
            principal = g.get("principal")
            access_log.info(json.dumps({
                "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "request_id": request_id,
                "method": request.method,
                "path": _logged_path(),
                "endpoint": endpoint,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000.0, 3),
                "auth": principal.label if principal is not None else "none",
            }, ensure_ascii=False))
        return response

