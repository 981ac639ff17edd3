"""API keys for the portal's servers and signed tokens for readers' browsers.

No Flask here: the CLI mints keys and tokens, the API checks them, both through this module.

API keys
--------
``X-API-Key: nr_<role>_<43 url-safe characters>``. Roles: ``site`` (the portal's backend: lists,
events, preferences), ``cms`` (the newsroom's CMS: publishing and editing articles), ``editor``
(cms, plus taking articles down) and ``admin`` (everything, including model reload and
forgetting a reader), plus ``widget``: a key meant to be *public*, in the script tag of the portal's
pages, that may only post click events of the anonymous reader (the Artikel Terkait widget's
clicks; rate-limited per client address, not per key). What each may call is decided in
``api/auth.py``. ``NEWSREC_HOME/keys.json`` (mode 0600) holds only
``sha256(key)`` with the role, a name and the creation time, so a leaked file does not leak keys.
The API re-reads the file when it changes, so ``newsrec keys add`` / ``revoke`` take effect
without a restart.

Reader tokens
-------------
``Authorization: Bearer v2.<b64u(user_id)>.<issued>.<expiry>.<b64u(signature)>`` where

* ``b64u`` is URL-safe base64 **without** ``=`` padding,
* ``user_id`` is UTF-8 encoded before base64,
* ``issued`` is the issue time in whole epoch **milliseconds** and ``expiry`` the expiry time in
  whole epoch seconds (decimal ASCII, no sign),
* ``signature = HMAC-SHA256(secret, "v2." + b64u(user_id) + "." + issued + "." + expiry)`` over
  those ASCII bytes,
* ``secret`` is the UTF-8 bytes of ``NEWSREC_TOKEN_SECRET`` if set, otherwise of the stripped
  content of ``NEWSREC_HOME/token_secret`` (created with 0600 and 32 random bytes, url-safe
  base64 encoded, on first use).

A site backend in any language can mint the same tokens, e.g. in Python::

    now = time.time()
    body = "v2." + b64u(user_id.encode()) + "." + str(int(now * 1000)) + "." + str(int(now) + ttl)
    token = body + "." + b64u(hmac.new(secret, body.encode(), "sha256").digest())

A token proves "this browser belongs to reader ``user_id`` until ``expiry``"; it grants that
reader's feed, preferences and events only. Forgetting a reader refuses every token issued
before the forget (the API compares ``issued`` with the store's tombstone). Version 1 tokens
(``v1.<b64u(user_id)>.<expiry>.<signature>``, no issue time) are still accepted, except for a
reader forgotten within the longest token life (366 days): they cannot say when they were issued.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from .domain import check_id

log = logging.getLogger(__name__)

ROLES = ("site", "cms", "editor", "admin", "widget")
KEYS_FILE = "keys.json"
SECRET_FILE = "token_secret"
ENV_TOKEN_SECRET = "NEWSREC_TOKEN_SECRET"
TOKEN_VERSION = "v2"
TOKEN_VERSIONS = ("v1", "v2")
MAX_TOKEN_TTL = 366 * 24 * 3600
MIN_SECRET_BYTES = 16
# both matched with fullmatch ("$" would accept a final newline)
_KEY_PATTERN = re.compile(r"nr_(site|cms|editor|admin|widget)_[A-Za-z0-9_\-]{20,100}")
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:@\-]{0,63}")


class SecurityError(Exception):
    """A key or token file cannot be used; the message says how to repair it."""


class TokenError(ValueError):
    """A reader token is malformed, tampered with or expired (HTTP 401)."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key: never the key itself, only its SHA-256."""

    key_id: str
    role: str
    name: str
    created: str
    sha256: str

    def public(self) -> dict:
        """What ``keys list`` may show (no hash)."""
        return {"key_id": self.key_id, "role": self.role, "name": self.name, "created": self.created}


@dataclass(frozen=True)
class Principal:
    """Who made a request: an API key (``role`` set) or a reader token (``user_id`` set)."""

    kind: str  # "key" or "token"
    role: str | None = None
    user_id: str | None = None
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "key" and self.role == "admin"

    @property
    def label(self) -> str:
        """Short, non-secret description for logs: ``admin``, ``site`` or ``reader``."""
        return self.role if self.kind == "key" else "reader"


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_\-]*", text):
        raise TokenError("token is not URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 via a temporary file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialize read-modify-write of ``path`` between processes (``keys add`` run twice at once)."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def mint_key(role: str, name: str | None, existing: int) -> tuple[str, ApiKey]:
    """A new raw key and its record (id and SHA-256 only; the raw key is never stored), with a
    default name counting the ``existing`` keys. Raises SecurityError on a bad role or name."""
    if role not in ROLES:
        raise SecurityError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if name is not None and not _NAME_PATTERN.fullmatch(name):
        raise SecurityError("name must be 1-64 letters, digits, spaces or . _ : @ -")
    raw = f"nr_{role}_{secrets.token_urlsafe(32)}"
    digest = hash_key(raw)
    return raw, ApiKey(key_id=digest[:12], role=role, name=name or f"{role}-{existing + 1}",
                       created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), sha256=digest)


class KeyStore:
    """API keys in a JSON file, re-read whenever the file changes.

    Parameters
    ----------
    path : Path
        The keys file, normally ``NEWSREC_HOME/keys.json``. A missing file means no keys.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._keys: tuple[ApiKey, ...] = ()

    # -- reading -----------------------------------------------------------------------------
    def _stat_signature(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _parse(self) -> tuple[ApiKey, ...]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ()
        except (OSError, ValueError) as exc:
            raise SecurityError(f"{self.path} is unreadable ({exc}); fix or remove it and re-add keys") from exc
        rows = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise SecurityError(f"{self.path} has no 'keys' list; fix or remove it and re-add keys")
        keys = []
        for row in rows:
            try:
                key = ApiKey(key_id=str(row["key_id"]), role=str(row["role"]), name=str(row.get("name", "")),
                             created=str(row.get("created", "")), sha256=str(row["sha256"]))
            except (KeyError, TypeError) as exc:
                raise SecurityError(f"{self.path} has a malformed entry ({exc}); fix or remove it") from exc
            if key.role not in ROLES or not re.fullmatch(r"[0-9a-f]{64}", key.sha256):
                raise SecurityError(f"{self.path}: entry {key.key_id} has a bad role or hash; fix or remove it")
            keys.append(key)
        return tuple(keys)

    def keys(self) -> tuple[ApiKey, ...]:
        """The current keys, re-reading the file if it changed since the last call.

        A file that became unreadable keeps the last good keys (logged), so a half-edited
        file cannot lock every client out.
        """
        signature = self._stat_signature()
        if signature == self._signature:
            return self._keys
        with self._lock:
            if signature != self._signature:
                try:
                    self._keys = self._parse()
                    log.info("loaded %d API key(s) from %s", len(self._keys), self.path)
                except SecurityError as exc:
                    if self._signature is None:
                        raise
                    log.error("keeping the previous API keys: %s", exc)
                self._signature = signature
        return self._keys

    def authenticate(self, raw: str) -> ApiKey | None:
        """The stored key matching ``raw``, or None. Compares every hash in constant time."""
        digest = hash_key(raw)
        found = None
        for key in self.keys():
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found

    # -- writing (CLI) -----------------------------------------------------------------------
    def _write(self, keys: list[ApiKey]) -> None:
        doc = {"version": 1, "keys": [
            {"key_id": k.key_id, "role": k.role, "name": k.name, "created": k.created, "sha256": k.sha256}
            for k in keys
        ]}
        atomic_write_private(self.path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))

    def add(self, role: str, name: str | None = None) -> tuple[str, ApiKey]:
        """Create a key; returns ``(raw_key, record)``. The raw key is never stored."""
        with _file_lock(self.path):
            existing = list(self._parse())
            raw, key = mint_key(role, name, len(existing))
            self._write(existing + [key])
        return raw, key

    def revoke(self, key_id_or_name: str) -> ApiKey | None:
        """Remove the key with this id (or unique name); returns it, or None if no key matches."""
        with _file_lock(self.path):
            existing = list(self._parse())
            match = [k for k in existing if k.key_id == key_id_or_name]
            if not match:
                match = [k for k in existing if k.name == key_id_or_name]
            if len(match) > 1:
                raise SecurityError(
                    f"{len(match)} keys are named {key_id_or_name!r}; revoke by key_id (see 'newsrec keys list')"
                )
            if not match:
                return None
            self._write([k for k in existing if k is not match[0]])
        return match[0]


def looks_like_key(raw: str) -> bool:
    """Cheap shape check before hashing, so garbage is refused without touching the key file."""
    return bool(_KEY_PATTERN.fullmatch(raw))


# -- reader tokens -----------------------------------------------------------------------------
def load_token_secret(home: str | Path, environ: Mapping[str, str] | None = None) -> bytes:
    """The token secret: ``NEWSREC_TOKEN_SECRET`` or ``home/token_secret`` (created 0600 if missing).

    Creation is race-free between processes (write a temporary file, then hard-link it into
    place; the loser of a race reads the winner's secret).
    """
    env = environ if environ is not None else {}
    value = env.get(ENV_TOKEN_SECRET)
    if value:
        secret = value.encode("utf-8")
        if len(secret) < MIN_SECRET_BYTES:
            raise SecurityError(f"{ENV_TOKEN_SECRET} must be at least {MIN_SECRET_BYTES} bytes; use a long random string")
        return secret
    path = Path(home) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{SECRET_FILE}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)
                log.info("created token secret %s", path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    secret = path.read_text(encoding="utf-8").strip().encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise SecurityError(f"{path} holds fewer than {MIN_SECRET_BYTES} bytes; delete it to generate a new secret")
    return secret


class ReaderTokens:
    """Issue and verify reader tokens (format in the module docstring).

    Parameters
    ----------
    secret : bytes
        The HMAC key, at least 16 bytes.
    """

    def __init__(self, secret: bytes):
        if len(secret) < MIN_SECRET_BYTES:
            raise SecurityError(f"token secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def _sign(self, body: str) -> str:
        return _b64u(hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest())

    def issue(self, user_id: str, ttl: int, now: float | None = None) -> str:
        """A token for ``user_id`` valid for ``ttl`` seconds (1 s to 366 days)."""
        user_id = check_id(user_id, "user_id")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TOKEN_TTL:
            raise ValueError(f"ttl must be whole seconds between 1 and {MAX_TOKEN_TTL}; got {ttl!r}")
        now = time.time() if now is None else now
        body = f"{TOKEN_VERSION}.{_b64u(user_id.encode('utf-8'))}.{int(now * 1000)}.{int(now) + ttl}"
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, now: float | None = None) -> str:
        """The token's user id; raises :class:`TokenError` if it is malformed, forged or expired."""
        return self.claims(token, now)[0]

    def claims(self, token: str, now: float | None = None) -> tuple[str, float | None]:
        """``(user_id, issued_at)`` of a valid token (``issued_at`` None for a version 1 token);
        raises :class:`TokenError` if it is malformed, forged or expired."""
        if not token.isascii():
            raise TokenError("malformed token: not ASCII")
        parts = token.split(".")
        if len(token) > 1024 or not parts or parts[0] not in TOKEN_VERSIONS or len(parts) != (
                4 if parts[0] == "v1" else 5):
            raise TokenError("malformed token: expected v2.<user>.<issued>.<expiry>.<signature>")
        user_b64, issued_text, expiry_text, sig = (parts[1], None, parts[2], parts[3]) if parts[0] == "v1" else parts[1:]
        body = ".".join(parts[:-1])
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,100}", sig) or not hmac.compare_digest(self._sign(body), sig):
            raise TokenError("token signature is invalid")
        if not re.fullmatch(r"[0-9]{1,12}", expiry_text) or (
                issued_text is not None and not re.fullmatch(r"[0-9]{1,15}", issued_text)):
            raise TokenError("malformed token times")
        if int(expiry_text) <= (time.time() if now is None else now):
            raise TokenError("token has expired; ask the site for a new one")
        try:
            user_id = check_id(_unb64u(user_b64).decode("utf-8"), "user_id")
        except (UnicodeDecodeError, ValueError) as exc:
            raise TokenError("malformed token user") from exc
        return user_id, None if issued_text is None else int(issued_text) / 1000.0

    @staticmethod
    def issued_before_forget(issued_at: float | None, forgotten_at: float | None, now: float | None = None) -> bool:
        """Whether a token must be refused because its reader was forgotten after it was issued."""
        if forgotten_at is None:
            return False
        if issued_at is None:  # a version 1 token cannot say: refused while any could predate the forget
            return (time.time() if now is None else now) < forgotten_at + MAX_TOKEN_TTL
        return issued_at <= forgotten_at
