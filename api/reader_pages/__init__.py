"""The reader's "Personalize Your News" page (``/baca/untuk-anda``), in Bahasa Indonesia.

A logged-in reader arrives from the portal with their reader token once
(``/baca/masuk?token=...``, or the form there): it is checked like a ``Bearer`` token (signature,
expiry, not issued before the reader was forgotten) and exchanged for a signed session cookie
(path ``/baca``, HttpOnly, SameSite=Lax so the portal's link carries it, Secure over TLS); the
page then redirects, so the token does not stay in the address bar. There the reader picks the
regions (:mod:`api.web.regions`) and topics to follow and sees the feed with its reasons; a
"tidak tertarik" button posts a ``hide`` event where that event type exists.
"""

from __future__ import annotations

import re
import time

from flask import Blueprint, current_app, g, make_response, redirect, render_template, request, url_for

from recommender.domain import CATEGORIES, EVENT_TYPES, Interaction, Preferences, ValidationError, check_id
from recommender.security import ReaderTokens, TokenError

from ..auth import EXTENSION as SECURITY
from ..routes.common import engine
from ..web import page_headers, session_secret
from ..web.regions import GROUPS, VALUES
from ..web.sessions import CookieSessions, check_csrf

bp = Blueprint("reader_pages", __name__, url_prefix="/baca")
bp.after_request(page_headers)

SESSION_SECONDS = 7 * 86_400
FEED_LIMIT = 20
HIDE_EVENT = "hide"


def sessions() -> CookieSessions:
    return CookieSessions(session_secret(current_app, "reader"), "newsrec_reader", "/baca", SESSION_SECONDS, "Lax")


def can_hide() -> bool:
    """Whether readers can say "tidak tertarik" (the ``hide`` event type exists in this version)."""
    return HIDE_EVENT in EVENT_TYPES


def current_reader() -> dict | None:
    """The signed-in reader's session, unless their token expired or they were forgotten since."""
    session = sessions().load()
    if not session or not session.get("user_id"):
        return None
    if session.get("expires", 0) <= time.time():
        return None
    issued = session.get("issued")
    if ReaderTokens.issued_before_forget(issued, engine().forgotten_at(session["user_id"])):
        return None
    return session


def _page(template: str, status: int = 200, **context):
    return make_response(render_template(template, session=g.get("reader"), **context), status)


@bp.errorhandler(403)
def ditolak(exc):
    """A form refused (stale CSRF token, session ended) as the sign-in page, in the reader's language."""
    return _page("reader/masuk.html", 403, error="Formulir ini sudah kedaluwarsa. Muat ulang halaman dan coba lagi.")


@bp.get("/masuk")
def masuk():
    token = request.args.get("token", "")
    if token:
        return _exchange(token)
    return _page("reader/masuk.html", error=None)


@bp.post("/masuk")
def masuk_post():
    return _exchange(request.form.get("token", ""))


def _exchange(token: str):
    """A valid reader token becomes the page's session; anything else is told so (401)."""
    token = token.strip()
    security = current_app.extensions[SECURITY]
    try:
        user_id, issued = security.tokens.claims(token)
    except TokenError:
        return _page("reader/masuk.html", 401, error="Token tidak berlaku. Silakan masuk lagi lewat situs.")
    if ReaderTokens.issued_before_forget(issued, engine().forgotten_at(user_id)):
        return _page("reader/masuk.html", 401, error="Token tidak berlaku. Silakan masuk lagi lewat situs.")
    expires = int(token.split(".")[-2])  # checked by claims(): v1 and v2 both end with <expiry>.<signature>
    response = redirect(url_for("reader_pages.untuk_anda"), code=303)
    sessions().save(response, {"user_id": user_id, "issued": issued, "expires": expires})
    return response


@bp.post("/keluar")
def keluar():
    check_csrf(sessions().load())
    response = redirect(url_for("reader_pages.masuk"), code=303)
    sessions().clear(response)
    return response


@bp.get("/untuk-anda")
def untuk_anda():
    reader = current_reader()
    if reader is None:
        return redirect(url_for("reader_pages.masuk"), code=303)
    g.reader = reader
    user_id = reader["user_id"]
    prefs = engine().get_preferences(user_id) or Preferences(user_id)
    ranked = engine().feed(user_id, limit=FEED_LIMIT)
    return _page("reader/untuk_anda.html", user_id=user_id, prefs=prefs, ranked=ranked, categories=CATEGORIES,
                 groups=GROUPS, can_hide=can_hide(), saved=request.args.get("disimpan") == "1")


def _signed_in_post():
    reader = current_reader()
    check_csrf(reader)
    g.reader = reader
    return reader["user_id"]


@bp.post("/untuk-anda/preferensi")
def preferensi():
    user_id = _signed_in_post()
    categories = [c for c in request.form.getlist("topik") if c in CATEGORIES]
    regions = [r for r in request.form.getlist("wilayah") if r in VALUES]
    engine().set_preferences(Preferences(user_id, tuple(dict.fromkeys(categories)), tuple(dict.fromkeys(regions))))
    return redirect(url_for("reader_pages.untuk_anda", disimpan="1"), code=303)


def _event(kind: str):
    user_id = _signed_in_post()
    try:
        article_id = check_id(request.form.get("article_id", ""), "article_id")
        list_id = request.form.get("list_id") or None
        list_id = check_id(list_id, "list_id") if list_id else None
        position = request.form.get("position", "")
        position = int(position) if re.fullmatch(r"[0-9]{1,4}", position) else None
    except ValidationError as exc:
        return _page("reader/masuk.html", 400, error=f"Permintaan tidak valid: {exc}")
    engine().record_events([Interaction(user_id, article_id, kind, time.time(), list_id=list_id, position=position)])
    return None


@bp.post("/untuk-anda/tidak-tertarik")
def tidak_tertarik():
    if not can_hide():
        return _page("reader/masuk.html", 404, error="Fitur ini belum tersedia.")
    failed = _event(HIDE_EVENT)
    return failed or redirect(url_for("reader_pages.untuk_anda"), code=303)


@bp.post("/untuk-anda/klik")
def klik():
    """A click on a feed item, reported by reader.js before the browser follows the link."""
    failed = _event("click")
    return failed or ("", 204)
