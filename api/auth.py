"""Who may call what: API keys (``X-API-Key``) and reader tokens (``Authorization: Bearer``).

Every ``/v1`` view is wrapped in :func:`api_view`, which authenticates, checks the role and
refuses unknown query parameters before the view runs. ``/healthz``, ``/readyz``, ``/metrics``
and ``/openapi.json`` are open (no personal data; keep ``/metrics`` off the public internet at
the reverse proxy).

Access rules
------------
* no credentials, an unknown key or a bad/expired token: 401
* ``admin`` key: every endpoint
* ``site`` key: lists, events and preferences (:data:`ACCESS` ``"site"``); article writes,
  takedowns and admin endpoints answer 403
* ``cms`` key: publishing and editing articles only (``"cms"``)
* ``editor`` key: what cms may, plus takedowns (``"editor"``)
* ``widget`` key (public, in the portal's page): only ``POST /v1/events`` with click events of the
  anonymous reader (the view checks the events); 403 everywhere else
* reader token: only where the view allows readers and only for the token's own ``user_id``
  (403 otherwise)
* ``X-API-Key`` wins when both headers are sent (a wrong key is 401 even with a good token)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from flask import current_app, g, request

from recommender.security import KeyStore, Principal, ReaderTokens, TokenError, looks_like_key

from .errors import ApiError

EXTENSION = "newsrec.security"
API_KEY_HEADER = "X-API-Key"
# WSGI names of the headers: reading the environ skips werkzeug's header lookups (same values).
_API_KEY_ENVIRON = "HTTP_X_API_KEY"
_AUTHORIZATION_ENVIRON = "HTTP_AUTHORIZATION"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="newsrec"'}

# the access a view asks for -> key roles that have it, and what a key without it is told
ACCESS = {"site": ("admin", "site"), "cms": ("admin", "editor", "cms"), "editor": ("admin", "editor"),
          "admin": ("admin",)}
_REFUSED = {
    "site": "this endpoint is for the site's backend: use a site key (cms and editor keys may only write articles)",
    "cms": "publishing and editing articles needs a cms, editor or admin key; site keys may not write articles "
           "(create one with 'newsrec keys add --role cms')",
    "editor": "taking articles down needs an editor or admin key (create one with 'newsrec keys add --role editor')",
    "admin": "this endpoint needs an admin key",
}
WIDGET_ROLE = "widget"  # a public key: only click events of the anonymous reader (see api.routes.events)
_BLANKS = " \t"  # HTTP's optional whitespace; str.strip() would also drop Latin-1 blanks such as \xa0


@dataclass(frozen=True)
class Security:
    """The app's key store and token checker (``app.extensions["newsrec.security"]``)."""

    keys: KeyStore
    tokens: ReaderTokens


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=_CHALLENGE)


def authenticate() -> Principal:
    """The caller of the current request, or raise a 401 :class:`ApiError`.

    Decided once per request: the rate limiter asks first (``api.ratelimit``), the view's guard after.
    """
    found = g.get("_newsrec_caller")
    if found is None:
        try:
            found = _authenticate()
        except ApiError as exc:
            found = exc
        g._newsrec_caller = found
    if isinstance(found, ApiError):
        raise found
    return found


def _authenticate() -> Principal:
    security: Security = current_app.extensions[EXTENSION]
    environ = request.environ
    raw_key = environ.get(_API_KEY_ENVIRON)
    if raw_key is not None:
        raw_key = raw_key.strip(_BLANKS)
        key = security.keys.authenticate(raw_key) if looks_like_key(raw_key) else None
        if key is None:
            raise _unauthorized(f"the {API_KEY_HEADER} header holds no valid key; create one with 'newsrec keys add'")
        return Principal(kind="key", role=key.role, key_id=key.key_id)
    header = environ.get(_AUTHORIZATION_ENVIRON)
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip(_BLANKS)
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("use 'Authorization: Bearer <reader token>' or the X-API-Key header")
        try:
            user_id, issued_at = security.tokens.claims(token)
        except TokenError as exc:
            raise _unauthorized(f"reader token refused: {exc}") from None
        if ReaderTokens.issued_before_forget(issued_at, current_app.extensions["newsrec"].forgotten_at(user_id)):
            raise _unauthorized("reader token refused: it was issued before this reader's data was deleted; "
                                "ask the site for a new one")
        return Principal(kind="token", user_id=user_id)
    raise _unauthorized(f"send an API key in {API_KEY_HEADER} or a reader token in 'Authorization: Bearer ...'")


def authorize(principal: Principal, role: str, reader: bool | str, view_args: dict, widget: bool = False) -> None:
    """Raise a 403 :class:`ApiError` unless ``principal`` may call a view with these rules."""
    if principal.kind == "key" and principal.role == WIDGET_ROLE:
        if not widget:
            raise ApiError(403, "forbidden", "widget keys may only post click events to /v1/events")
        return
    if principal.kind == "key":
        if principal.role not in ACCESS[role]:
            raise ApiError(403, "forbidden", _REFUSED[role])
        return
    if not reader:
        raise ApiError(403, "forbidden", "reader tokens cannot use this endpoint; call it from the site's backend "
                                         "with an API key")
    if isinstance(reader, str) and view_args.get(reader) != principal.user_id:
        raise ApiError(403, "forbidden", "this reader token belongs to another reader")


def api_view(role: str, reader: bool | str = False, params: tuple[str, ...] = (), widget: bool = False) -> Callable:
    """Guard a ``/v1`` view.

    Parameters
    ----------
    role : {"site", "cms", "editor", "admin"}
        The access the view needs; :data:`ACCESS` lists the key roles that have it (admin keys
        pass everywhere).
    reader : bool or str
        False: no reader tokens. A view argument name (``"user_id"``): tokens for that reader
        only. True: any valid token; the view checks the user ids in the request itself.
    params : tuple of str
        Query parameters the view reads; any other one is a 400 (typos like ``limt`` must not
        be silently ignored).
    widget : bool
        Whether public ``widget`` keys may call it (the view then limits what they may do).
    """
    if role not in ACCESS:
        raise ValueError(f"role must be one of {', '.join(ACCESS)}, got {role!r}")
    allowed_params = frozenset(params)

    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(**view_args):
            principal = authenticate()
            g.principal = principal
            authorize(principal, role, reader, view_args, widget)
            args = request.args
            unknown = sorted(set(args) - allowed_params) if args else None
            if unknown:
                allowed = ", ".join(params) if params else "none"
                raise ApiError(400, "unknown_parameter",
                               f"unknown query parameter(s): {', '.join(unknown)[:200]}; allowed: {allowed}")
            return view(**view_args)

        guarded.newsrec_access = {"role": role, "roles": ACCESS[role], "reader": reader, "params": tuple(params)}
        return guarded

    return wrap


def principal() -> Principal:
    """The authenticated caller of the current request (inside an :func:`api_view`)."""
    return g.principal
