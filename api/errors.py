"""One JSON error shape for every failure: ``{"error": "<code>", "message": "<text>"}``.

Validation failures of a batch add ``"details": [{"index": i, "message": ...}]``. Tracebacks
are logged (with the request id), never sent.
"""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from recommender.domain import ValidationError
from recommender.serving.results import NotFound as ItemNotFound
from recommender.store import StoreDiskError, StoreUnavailable

log = logging.getLogger(__name__)

# Error codes of plain HTTP failures; anything else uses the status's name in snake case.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error raised by a view; turned into the JSON error shape by :func:`register_error_handlers`.

    Parameters
    ----------
    status : int
        HTTP status.
    code : str
        Stable machine-readable code (``validation_error``, ``unauthorized``...).
    message : str
        Human text that says how to fix the request.
    details : list of dict, optional
        Per-item problems of a batch, ``{"index": int, "message": str}``.
    headers : dict, optional
        Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(self, status: int, code: str, message: str, details: list | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details: list | None = None, headers=None):
    body = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers.items() if isinstance(headers, dict) else headers or ()):
        response.headers[name] = value
    return response


def _http_message(exc: HTTPException) -> str:
    if exc.code == 404:
        return f"no such endpoint: {request.method} {request.path}; see /openapi.json"
    if exc.code == 405:
        allowed = ", ".join(sorted(m for m in (getattr(exc, "valid_methods", None) or []) if m != "OPTIONS"))
        return f"method {request.method} is not allowed on {request.path}; allowed: {allowed}"
    if exc.code == 413:
        limit = request.max_content_length
        return f"request body is larger than {limit} bytes; send smaller batches"
    return exc.description or exc.name


def handle_api_error(exc: ApiError):
    if exc.status >= 500:
        log.warning("request %s failed: %s %s", g.get("request_id"), exc.code, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def handle_http_exception(exc: HTTPException):
    if exc.code is None:  # pragma: no cover - werkzeug internals, not errors
        return exc
    code = HTTP_CODES.get(exc.code) or exc.name.lower().replace(" ", "_").replace("'", "")
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return error_response(exc.code, code, _http_message(exc), headers=headers)


def handle_validation_error(exc: ValidationError):
    return error_response(400, "validation_error", str(exc))


def handle_not_found(exc: ItemNotFound):
    return error_response(404, "not_found", str(exc))


DISK_RETRY_AFTER = "5"  # seconds; a disk that failed is rarely fixed within one


def handle_store_unavailable(exc: StoreUnavailable):
    log.warning("request %s: store unavailable: %s", g.get("request_id"), exc)
    if isinstance(exc, StoreDiskError):  # /readyz reports it too, until a write succeeds
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        return error_response(503, "store_unavailable", f"the database cannot write to its disk ({cause}); nothing "
                              "was stored, retry later", headers={"Retry-After": DISK_RETRY_AFTER})
    return error_response(503, "store_unavailable", "the database is busy or does not answer; retry in a second",
                          headers={"Retry-After": "1"})


def handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):  # pragma: no cover - Flask routes these to the handler above
        return handle_http_exception(exc)
    log.exception("request %s %s %s failed", g.get("request_id"), request.method, request.path)
    return error_response(500, "internal_error",
                          f"internal error; quote request id {g.get('request_id', '-')} when reporting it")


def register_error_handlers(app: Flask) -> None:
    """Install the one handler family. Flask picks the most specific class first."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ValidationError, handle_validation_error)
    app.register_error_handler(ItemNotFound, handle_not_found)
    app.register_error_handler(StoreUnavailable, handle_store_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
