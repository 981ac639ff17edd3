"""Rate limits per caller on ``/v1`` (Flask-Limiter): one budget per API key, per reader token and
per client address for requests without valid credentials.

The caller is who :func:`api.auth.authenticate` says it is (checked once per request, before the
view): the key id of an API key, the user id of a *verified* reader token, otherwise the client
address. A forged or expired token therefore spends its sender's address budget, never the
reader's. Every endpoint shares the caller's budget; ``/healthz``, ``/readyz``, ``/metrics`` and
``/openapi.json`` are not limited.

Settings (Flask config or environment, config first):

* ``NEWSREC_RATELIMIT``: per API key, default :data:`DEFAULT_KEY_LIMIT`; ``off`` disables every
  limit (benchmarks do, to measure the service rather than the throttle)
* ``NEWSREC_RATELIMIT_READER``: per reader token, default :data:`DEFAULT_READER_LIMIT`
* ``NEWSREC_RATELIMIT_ANONYMOUS``: per client address, default :data:`DEFAULT_ANONYMOUS_LIMIT`
* ``NEWSREC_RATELIMIT_STORAGE``: where counts live, default ``memory://`` (each gunicorn worker
  counts alone, so a caller gets up to workers x the limit); ``redis://host:6379/0`` shares them
  between workers and servers. If that storage stops answering, counting falls back to memory.

Limits use Flask-Limiter's notation (``"6000 per minute"``, ``"100/second; 5000/hour"``). Over the
limit: 429 in the JSON error shape with ``Retry-After`` (seconds until the window resets).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Mapping

from flask import Flask, current_app, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import parse_many
from limits.storage import SCHEMES, MemoryStorage

from .auth import WIDGET_ROLE, ApiError, authenticate
from .errors import error_response

EXTENSION = "newsrec.ratelimit"
ENV_LIMIT = "NEWSREC_RATELIMIT"
ENV_READER = "NEWSREC_RATELIMIT_READER"
ENV_ANONYMOUS = "NEWSREC_RATELIMIT_ANONYMOUS"
ENV_STORAGE = "NEWSREC_RATELIMIT_STORAGE"
# per key: a site backend asks for every page view (load tests reach 1,000 req/s with one key)
DEFAULT_KEY_LIMIT = "60000 per minute"
DEFAULT_READER_LIMIT = "600 per minute"  # one browser: 10 requests a second, sustained
DEFAULT_ANONYMOUS_LIMIT = "600 per minute"  # behind a proxy every such request shares its address
OFF = ("off", "none", "0", "false")
LIMITED_PREFIX = "/v1/"
_NOUNS = {"key": "API key", "reader": "reader token", "anonymous": "client address"}


class SecondlyExpiryMemoryStorage(MemoryStorage):
    """``memory://`` as limits has it, but expired counters are swept once a second.

    limits' ``MemoryStorage`` starts a timer thread 10 ms after any hit that finds none running, to
    sweep every counter: ~0.6 ms a request here (a thread start per 10 ms of traffic), and a scan of
    all active callers up to 100 times a second. A counter past its window is already ignored when
    read (``get``), so sweeping only frees memory and once a second is plenty. The override is of a
    private method; ``tests/test_ratelimit.py`` fails if limits renames it.
    """

    STORAGE_SCHEME = ["newsrec-memory"]
    SWEEP_SECONDS = 1.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # limits' private MemoryStorage.__schedule_expiry
        if not self.timer.is_alive():
            self.timer = threading.Timer(self.SWEEP_SECONDS, self._MemoryStorage__expire_events)
            self.timer.daemon = True  # a worker's exit does not wait for the next sweep
            self.timer.start()


def settings(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The limits and storage to use, or None when limiting is off; raises ValueError on a bad limit."""
    environ = os.environ if environ is None else environ

    def get(name: str, default: str) -> str:
        value = config.get(name) or environ.get(name) or default
        return str(value).strip()

    key = get(ENV_LIMIT, DEFAULT_KEY_LIMIT)
    if key.lower() in OFF:
        return None
    out = {"key": key, "reader": get(ENV_READER, DEFAULT_READER_LIMIT),
           "anonymous": get(ENV_ANONYMOUS, DEFAULT_ANONYMOUS_LIMIT), "storage": get(ENV_STORAGE, "memory://")}
    for name, kind in ((ENV_LIMIT, "key"), (ENV_READER, "reader"), (ENV_ANONYMOUS, "anonymous")):
        try:
            items = parse_many(out[kind])
        except ValueError:
            items = []
        # "0 per minute" parsed, then answered every request 429: refused like a limit that does not parse
        if not items or any(item.amount < 1 for item in items):
            raise ValueError(f"{name}={out[kind]!r} is not a rate limit; write e.g. '6000 per minute' or "
                             f"'100/second; 5000/hour', at least 1 a period ({ENV_LIMIT}=off disables limits)")
    # limits' own error ("unknown storage scheme : abc") names no variable and came from each worker
    if out["storage"].partition("://")[0] not in SCHEMES or "://" not in out["storage"]:
        raise ValueError(f"{ENV_STORAGE}={out['storage']!r} is not a rate-limit storage; write memory:// "
                         "or e.g. redis://127.0.0.1:6379/0")
    return out


def caller() -> tuple[str, str] | None:
    """``(kind, identity)`` of the current ``/v1`` request's caller; None elsewhere (not limited)."""
    if not request.path.startswith(LIMITED_PREFIX):
        return None
    try:
        who = authenticate()
    except ApiError:
        return "anonymous", request.remote_addr or "unknown"
    if who.kind == "key" and who.role == WIDGET_ROLE:  # a public key: each visitor spends their own budget
        return "anonymous", request.remote_addr or "unknown"
    if who.kind == "key":
        return "key", who.key_id
    return "reader", who.user_id


def _limit(chosen: dict[str, str]) -> ApplicationLimit:
    """One limit whose amount and key follow the caller (one evaluation per request, not three)."""
    def amount() -> str:
        found = caller()
        return chosen[found[0] if found else "key"]

    return ApplicationLimit(limit_provider=amount, key_function=lambda: ":".join(caller()),
                            exempt_when=lambda: caller() is None, scope="v1")


def handle_rate_limited(exc: RateLimitExceeded):
    limiter: Limiter = current_app.extensions[EXTENSION]
    current = limiter.current_limit
    # reset_at is the window's end rounded up to a whole second (as Flask-Limiter's own header)
    retry = max(1, int(current.reset_at - time.time())) if current is not None else 1
    found = caller()
    noun = _NOUNS[found[0]] if found else "caller"
    return error_response(429, "rate_limited", f"too many requests for this {noun}: at most {exc.description}; "
                                               f"retry in {retry} s", headers={"Retry-After": str(retry)})


def init_rate_limits(app: Flask) -> Limiter | None:
    """Install the limits (before the blueprints' views run); None when they are off."""
    chosen = settings(app.config)
    if chosen is None:
        return None
    limiter = Limiter(
        key_func=lambda: ":".join(caller() or ("none", "-")),
        application_limits=[_limit(chosen)],
        storage_uri="newsrec-memory://" if chosen["storage"] == "memory://" else chosen["storage"],
        key_prefix="newsrec",
        in_memory_fallback_enabled=True,
        headers_enabled=False,  # X-RateLimit-* would cost a storage round trip on every response
    )
    limiter.init_app(app)
    app.extensions[EXTENSION] = limiter
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
    return limiter
