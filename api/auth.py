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
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from flask import current_app, g, request

from recommender.security import (
    ApiKey,
    KeyStore,
    Principal,
    ReaderTokens,
    SecurityError,
    TokenError,
    hash_key,
    looks_like_key,
    mint_key,
)
from recommender.store import Store, StoreError, StoreUnavailable

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
    "editor": "takedowns, pins and editorial rules need an editor or admin key "
              "(create one with 'newsrec keys add --role editor')",
    "admin": "this endpoint needs an admin key",
}
WIDGET_ROLE = "widget"  # a public key: only click events of the anonymous reader (see api.routes.events)
_BLANKS = " \t"  # HTTP's optional whitespace; str.strip() would also drop Latin-1 blanks such as \xa0


log = logging.getLogger(__name__)
KEY_CHANGES = ("keys",)


class SharedKeys:
    """API keys stored in the database, so that every replica honours a key made on any host,
    plus the host's ``keys.json`` (older installations; ``newsrec keys import`` moves its keys
    into the database).

    The same interface as :class:`recommender.security.KeyStore`. Each worker holds the keys in
    memory and looks for ``keys`` changes in the log at most every :attr:`REFRESH` seconds (an
    indexed read), and at once, at most every :attr:`RETRY_UNKNOWN` seconds, for a key it does not
    know: a key made on another host works on its first request here, a revoked one stops
    working everywhere within ``REFRESH`` seconds. While the store does not answer, the keys last
    read keep working.

    Parameters
    ----------
    store : Store
    file_keys : KeyStore, optional
        The host's ``keys.json``.
    """

    REFRESH = 1.0
    RETRY_UNKNOWN = 0.2

    def __init__(self, store: Store, file_keys: KeyStore | None = None):
        self.store = store
        self.file_keys = file_keys
        self._lock = threading.Lock()
        self._stored: tuple[ApiKey, ...] = ()
        self._pos: int | None = None  # log position the stored keys are as of (None: never read)
        self._checked = float("-inf")  # monotonic time of the last look at the log
        self._failed: StoreError | None = None  # why the last look at the store failed (None: it answered)

    # -- reading -----------------------------------------------------------------------------
    def _refresh(self, every: float) -> None:
        if time.monotonic() - self._checked < every:
            return
        with self._lock:
            if time.monotonic() - self._checked < every:
                return
            try:
                if self._pos is None:
                    pos = self.store.log_position()[0]
                else:
                    changes = self.store.changes_after(self._pos, limit=1000, kinds=KEY_CHANGES)
                    pos = changes[-1].pos if changes else None
                if pos is not None:  # read the keys after the position: nothing older is missed
                    self._stored = tuple(ApiKey(*row) for row in self.store.api_keys())
                    self._pos = pos
                self._failed = None
            except StoreError as exc:
                log.error("API keys not refreshed from the store (the last ones read stay valid): %s", exc)
                self._failed = exc
            self._checked = time.monotonic()

    def keys(self) -> tuple[ApiKey, ...]:
        """Every key: the database's, then the host file's."""
        self._refresh(self.REFRESH)
        return self._stored + (self.file_keys.keys() if self.file_keys is not None else ())

    def stored_keys(self) -> tuple[ApiKey, ...]:
        self._refresh(0.0)
        return self._stored

    def authenticate(self, raw: str) -> ApiKey | None:
        """The key matching ``raw``, or None. Compares every hash in constant time.

        Raises :class:`StoreUnavailable` (the API answers 503, not 401) for a key not among those
        read when the store did not answer the last look: it may well be valid (a worker that
        started during an outage has read none), and a client must retry, not drop its key."""
        digest = hash_key(raw)
        found = _match(digest, self.keys())
        if found is None:  # perhaps made on another host a moment ago
            self._refresh(self.RETRY_UNKNOWN)
            found = _match(digest, self.keys())
        failed = self._failed
        if found is None and failed is not None:
            raise StoreUnavailable(f"API keys cannot be read from the database: {failed}") from failed
        return found

    # -- writing (CLI) -----------------------------------------------------------------------
    def add(self, role: str, name: str | None = None) -> tuple[str, ApiKey]:
        """Create a key in the database; returns ``(raw_key, record)``. The raw key is never stored."""
        raw, key = mint_key(role, name, len(self.keys()))
        self.store.add_api_key(key.key_id, key.role, key.name, key.created, key.sha256)
        self._checked = float("-inf")
        return raw, key

    def revoke(self, key_id_or_name: str) -> ApiKey | None:
        """Remove the key with this id (or unique name) from the database, and from the host's
        file if it is there; returns it, or None if no key matches."""
        every = self.stored_keys() + (self.file_keys.keys() if self.file_keys is not None else ())
        match = [k for k in every if k.key_id == key_id_or_name] or [k for k in every if k.name == key_id_or_name]
        if len({k.key_id for k in match}) > 1:
            raise SecurityError(f"{len(match)} keys are named {key_id_or_name!r}; revoke by key_id "
                                "(see 'newsrec keys list')")
        if not match:
            return None
        key = match[0]
        self.store.revoke_api_key(key.key_id)
        if self.file_keys is not None and any(k.key_id == key.key_id for k in self.file_keys.keys()):
            self.file_keys.revoke(key.key_id)
        self._checked = float("-inf")
        return key

    def import_file(self) -> tuple[list[ApiKey], list[ApiKey]]:
        """Copy the host file's keys into the database; returns (imported, already there)."""
        if self.file_keys is None:
            return [], []
        stored = {k.sha256 for k in self.stored_keys()}
        imported, present = [], []
        for key in self.file_keys.keys():
            if key.sha256 in stored:
                present.append(key)
                continue
            self.store.add_api_key(key.key_id, key.role, key.name, key.created, key.sha256)
            stored.add(key.sha256)
            imported.append(key)
        self._checked = float("-inf")
        return imported, present


def _match(digest: str, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.sha256):
            found = key
    return found


@dataclass(frozen=True)
class Security:
    """The app's key store and token checker (``app.extensions["newsrec.security"]``)."""

    keys: KeyStore | SharedKeys
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


def check_once(args) -> None:
    """400 for a query parameter given twice (``?limit=5&limit=6``): which one counts would be a
    guess, so neither is taken (several sections go in one, comma-separated)."""
    repeated = sorted(k for k in args if len(args.getlist(k)) > 1)
    if repeated:
        raise ApiError(400, "invalid_parameter", f"query parameter(s) given more than once: "
                                                 f"{', '.join(repeated)[:200]}; give each once (several sections "
                                                 "as one comma-separated value)")


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
            if args:
                check_once(args)
            return view(**view_args)

        guarded.newsrec_access = {"role": role, "roles": ACCESS[role], "reader": reader, "params": tuple(params)}
        return guarded

    return wrap


def principal() -> Principal:
    """The authenticated caller of the current request (inside an :func:`api_view`)."""
    return g.principal
