"""What the HTML pages share: templates' helpers, static files, security headers, sessions.

:func:`init_web` is called by :func:`api.create_app` after the JSON blueprints; it registers the
newsroom console (``api.console``), the Artikel Terkait widget (``api.widget``) and the reader's
Personalize page (``api.reader_pages``). Templates live in ``api/templates``, CSS and JavaScript in
``api/static`` (no inline script anywhere: the Content-Security-Policy forbids it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Blueprint, Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from recommender.security import ENV_TOKEN_SECRET, load_token_secret

from .relative_time import epoch, tanggal, waktu_relatif
from .sessions import CSRF_FIELD, derive_secret

STATIC = Path(__file__).resolve().parents[1] / "static"
SESSION_SECRET_EXTENSION = "newsrec.web_secret"
# blueprints of pages for people, not API endpoints: /openapi.json leaves them out
HTML_BLUEPRINTS = ("console", "reader_pages", "assets")
ENV_PROXY_FIX = "NEWSREC_PROXY_FIX"  # how many reverse proxies set X-Forwarded-* in front (0: none trusted)

# pages: scripts and styles from our own static files only; no framing, no foreign form targets
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def page_headers(response: Response) -> Response:
    """Security headers of a console or reader page (``after_request`` of their blueprints)."""
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def session_secret(app: Flask, purpose: str) -> bytes:
    return derive_secret(app.extensions[SESSION_SECRET_EXTENSION], purpose)


def proxy_count(raw) -> int:
    """``NEWSREC_PROXY_FIX`` as a number of proxies; a bad value stops the start with a message
    naming the variable (``int()``'s own said only "invalid literal", and -1 quietly meant 0)."""
    text = str(raw if raw is not None else "").strip() or "0"
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{ENV_PROXY_FIX} must be a whole number of reverse proxies, 0 or more; got {raw!r}")
    return int(text)


def init_web(app: Flask) -> None:
    """Register the HTML blueprints, static files and template helpers on ``app``."""
    proxies = proxy_count(app.config.get(ENV_PROXY_FIX) or os.environ.get(ENV_PROXY_FIX))
    if proxies > 0:  # X-Forwarded-For/-Proto from this many proxies in front (rate limits, Secure cookies)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    env = {ENV_TOKEN_SECRET: app.config["NEWSREC_TOKEN_SECRET"]} if app.config.get("NEWSREC_TOKEN_SECRET") else {}
    app.extensions[SESSION_SECRET_EXTENSION] = load_token_secret(app.config["NEWSREC_HOME"], env)
    app.jinja_env.globals.update(waktu_relatif=waktu_relatif, tanggal=tanggal, epoch=epoch, now=time.time,
                                 CSRF_FIELD=CSRF_FIELD)
    app.jinja_env.autoescape = True  # every template, whatever its extension (.html is already)
    app.register_blueprint(Blueprint("assets", __name__, static_folder=str(STATIC), static_url_path="/static"))

    from ..console import bp as console_bp
    from ..reader_pages import bp as reader_bp
    from ..widget import init_widget

    app.register_blueprint(console_bp)
    app.register_blueprint(reader_bp)
    init_widget(app)
    limit_sign_ins(app)


def limit_sign_ins(app: Flask) -> None:
    """Sign-in posts (console keys, reader tokens) count against the client address's budget
    (``NEWSREC_RATELIMIT_ANONYMOUS``), as requests without valid credentials do on ``/v1``."""
    from flask import request

    from ..ratelimit import EXTENSION as LIMITER, settings

    limiter = app.extensions.get(LIMITER)
    if limiter is None:
        return
    per_address = limiter.limit(settings(app.config)["anonymous"], scope="signin", methods=["POST"],
                                key_func=lambda: "signin:" + (request.remote_addr or "-"))
    for endpoint in ("console.signin_post", "reader_pages.masuk_post"):
        app.view_functions[endpoint] = per_address(app.view_functions[endpoint])
