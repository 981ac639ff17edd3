"""Signed session cookies and CSRF tokens for the HTML pages (console, reader pages).

A session is a small dict signed with itsdangerous (Flask's own dependency) under a key derived
from the token secret, which every gunicorn worker and every host already share
(``NEWSREC_TOKEN_SECRET`` or ``$NEWSREC_HOME/token_secret``): a sign-in on one worker is valid on
all of them, and nothing is kept in process memory. Each session holds a random CSRF token that
every form posts back (:func:`check_csrf`).

Cookies are HttpOnly, ``Secure`` when the request came over TLS (``request.is_secure``: gunicorn
trusts ``X-Forwarded-Proto`` from ``FORWARDED_ALLOW_IPS``; ``NEWSREC_PROXY_FIX`` adds werkzeug's
ProxyFix for other set-ups) and ``SameSite`` as the page needs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import Response, abort, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

CSRF_FIELD = "csrf_token"


def derive_secret(token_secret: bytes, purpose: str) -> bytes:
    """A key for one purpose from the shared token secret (a leaked session key forges no reader token)."""
    return hmac.new(token_secret, f"newsrec-web:{purpose}".encode("ascii"), hashlib.sha256).digest()


@dataclass(frozen=True)
class CookieSessions:
    """One kind of session cookie.

    Parameters
    ----------
    secret : bytes
        Signing key (see :func:`derive_secret`).
    cookie : str
        Cookie name.
    path : str
        Cookie path: the pages that need it, nothing else.
    max_age : int
        Seconds a session lasts after sign-in.
    samesite : {"Strict", "Lax"}
    """

    secret: bytes
    cookie: str
    path: str
    max_age: int
    samesite: str = "Strict"

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=self.cookie)

    def load(self) -> dict | None:
        """The current request's session, or None (absent, forged, expired)."""
        raw = request.cookies.get(self.cookie)
        if not raw or len(raw) > 4096:
            return None
        try:
            data = self._serializer().loads(raw, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is one
            return None
        return data if isinstance(data, dict) else None

    def save(self, response: Response, data: dict) -> dict:
        """Write ``data`` (plus a fresh CSRF token if it has none) into the response's cookie."""
        data = {**data, "csrf": data.get("csrf") or secrets.token_urlsafe(24)}
        response.set_cookie(self.cookie, self._serializer().dumps(data), max_age=self.max_age, path=self.path,
                            httponly=True, secure=request.is_secure, samesite=self.samesite)
        return data

    def clear(self, response: Response) -> None:
        response.delete_cookie(self.cookie, path=self.path, httponly=True, secure=request.is_secure,
                               samesite=self.samesite)


def check_csrf(session: dict | None) -> None:
    """Abort with 403 unless the posted form carries the session's CSRF token."""
    sent = request.form.get(CSRF_FIELD, "")
    if not session or not sent or not hmac.compare_digest(str(session.get("csrf", "")), sent):
        abort(403, description="the form's CSRF token is missing or stale; reload the page and try again")
