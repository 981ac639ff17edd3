"""The Artikel Terkait widget: an HTML fragment of a related list and the script that embeds it.

``GET /widget/articles/<id>/related`` needs no key (related lists are public: the page's visitors
fetch it), is rate-limited per client address (``NEWSREC_RATELIMIT_ANONYMOUS``), cacheable by a
CDN for :data:`CACHE_SECONDS`, and logs the served list as the anonymous reader's, like every other
list. ``GET /widget/embed.js`` fills each ``<div data-newsrec-related="ID">`` with it and reports
each click to ``POST /v1/events`` with the list's id and the position, using the public ``widget``
key of its script tag (``newsrec keys add --role widget``: click events of the anonymous reader
only). Without JavaScript the fragment works on its own (e.g. in an ``<iframe>``).
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, make_response, render_template, request

from ..auth import check_once
from ..errors import ApiError
from ..routes.common import engine, int_param, metrics, path_id

CACHE_SECONDS = 60
SCRIPT_CACHE_SECONDS = 300
DEFAULT_LIMIT, MAX_LIMIT = 10, 50  # as GET /v1/articles/<id>/related
EVENTS_PATH = "/v1/events"
# opened on its own (an iframe without JavaScript): no script at all, our stylesheet, any page may frame it
FRAGMENT_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"

bp = Blueprint("widget", __name__)


def section_label(category: str, region: str | None) -> str:
    """The label above a headline: the regional edition for regional news, else the section."""
    return region if category == "Regional" and region else category


@bp.get("/widget/articles/<article_id>/related")
def related(article_id: str):
    """The related list of ``article_id`` as the portal's "Artikel Terkait" box (an HTML fragment)."""
    unknown = sorted(set(request.args) - {"limit"})
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown query parameter(s): {', '.join(unknown)[:200]}; "
                                                 "allowed: limit")
    check_once(request.args)
    article_id = path_id(article_id, "article_id")
    limit = int_param("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    ranked = engine().related(article_id, limit=limit)
    engine().log_ranked(ranked)
    metrics().observe_list("widget", ranked.strategy, ranked.model_version)
    items = [{"item": item, "label": section_label(item.category, item.region),
              "link": item.url if item.url and item.url.startswith(("https://", "http://")) else None}
             for item in ranked.items]
    response = make_response(render_template("widget/related.html", ranked=ranked, items=items, now=time.time()))
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = FRAGMENT_CSP  # applies when it is framed, not when inserted
    return response


@bp.get("/widget/embed.js")
def embed_js():
    """The embedding script (read per request: 2 KB, and a CDN keeps it for :data:`SCRIPT_CACHE_SECONDS`)."""
    from ..web import STATIC

    response = Response((STATIC / "embed.js").read_bytes(), mimetype="text/javascript")
    response.headers["Cache-Control"] = f"public, max-age={SCRIPT_CACHE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def allow_cross_origin(response):
    """The fragment, the script and the click posts are used from the portal's own origin: CORS
    for any origin is safe here (no cookies; /v1/events authenticates by header)."""
    path = request.path
    if path.startswith("/widget/") or path == EVENTS_PATH or path.startswith("/static/widget"):
        response.headers["Access-Control-Allow-Origin"] = "*"
        if path == EVENTS_PATH and request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-API-Key"
            response.headers["Access-Control-Max-Age"] = "600"
    return response


def init_widget(app: Flask) -> None:
    """Register the widget: its rate limit per client address, CORS for the portal's pages."""
    from ..ratelimit import EXTENSION as LIMITER, settings

    limiter = app.extensions.get(LIMITER)
    if limiter is not None:
        limiter.limit(settings(app.config)["anonymous"], key_func=lambda: "widget:" + (request.remote_addr or "-"),
                      scope="widget")(bp)
    app.register_blueprint(bp)
    app.after_request(allow_cross_origin)
