"""The records newsrec stores: articles, interactions and reader preferences.

Parsing lives here so that the file importers and the HTTP API accept exactly the
same shapes and reject bad input with the same messages.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

WIB = timezone(timedelta(hours=7), "WIB")

CATEGORIES = (
    "Nasional",
    "Internasional",
    "Ekonomi",
    "Olahraga",
    "Teknologi",
    "Hiburan",
    "Otomotif",
    "Regional",
)

# codes are positions: append new types, never reorder. ``hide`` is a reader's "tidak tertarik"
# (not interested): that article never comes back to them, its story and, hidden again and again,
# its category sink in their feed
EVENT_TYPES = ("impression", "click", "read", "share", "hide")
EVENT_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}
# the reader id of page views without a logged-in reader (served related lists, their clicks)
ANONYMOUS = "anonymous"

# matched with fullmatch: "$" would also match before a final newline ("a1\n")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@\-]{0,127}")
MAX_TITLE = 1_000
MAX_BODY = 200_000
MAX_LABEL = 64
MAX_TAGS = 50
MAX_DWELL_SECONDS = 24 * 3600.0

ARTICLE_FIELDS = frozenset(
    {"article_id", "title", "body", "category", "region", "tags", "url", "published_at", "language"}
)
EVENT_FIELDS = frozenset(
    {"user_id", "article_id", "event", "ts", "dwell_seconds", "event_id", "list_id", "position", "history"}
)
PREFERENCE_FIELDS = frozenset({"user_id", "categories", "regions"})


class ValidationError(ValueError):
    """A record that cannot be accepted; the message says which field and why."""


def check_id(value: Any, name: str, strict: bool = False) -> str:
    """Return ``value`` as an id or raise: ids are 1-128 URL-safe characters.

    ``strict`` (the API's JSON bodies): a JSON string only; otherwise a whole number is read as its
    digits too (exports often write numeric ids).
    """
    if strict and not isinstance(value, str) and value is not None:
        raise ValidationError(f"{name} must be a string (ids are JSON strings); got {_preview(value)}")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValidationError(
            f"{name} must be 1-128 characters of letters, digits and . _ : @ -, starting with a "
            f"letter or digit; got {_preview(value)}"
        )
    return value


# an event stamped further ahead of the server's clock than this is refused: a feed ignores events
# "from the future", and live counters would have counted it as now
MAX_FUTURE_SECONDS = 300.0


def _not_future(ts: float) -> float:
    if ts > time.time() + MAX_FUTURE_SECONDS:
        raise ValidationError(f"ts is more than {MAX_FUTURE_SECONDS / 60:.0f} minutes ahead of the server's clock; "
                              "send the time the event happened (with its UTC offset)")
    return ts


def parse_time(value: Any, name: str) -> float:
    """Parse an ISO-8601 string or epoch seconds into epoch seconds.

    A time without an offset is read as WIB (UTC+7), the portal's own clock.
    """
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be an ISO-8601 time or epoch seconds; got {value!r}")
    if isinstance(value, (int, float)):
        try:
            ts = float(value)
        except OverflowError:  # a JSON integer of hundreds of digits
            raise ValidationError(f"{name} is out of range for epoch seconds: {_preview(value)}") from None
    elif isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=WIB)
        ts = dt.timestamp()
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValidationError(
                    f"{name} is not an ISO-8601 time (e.g. 2026-11-27T08:00:00+07:00): {_preview(value)}"
                ) from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=WIB)
            ts = dt.timestamp()
    else:
        raise ValidationError(f"{name} is required (ISO-8601 time or epoch seconds)")
    if not math.isfinite(ts) or not (0.0 <= ts < 32503680000.0):
        raise ValidationError(f"{name} is out of range: {_preview(value)}")
    return ts


def format_time(ts: float) -> str:
    """Epoch seconds as ISO-8601 in WIB, the form the API returns."""
    return datetime.fromtimestamp(ts, tz=WIB).isoformat(timespec="seconds")


def _label(value: Any, name: str, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string; got {_preview(value)}")
    found = _CONTROL.search(value)
    if found:
        raise _control_error(name, found.group())
    text = value.strip()
    if len(text) > MAX_LABEL:
        raise ValidationError(f"{name} must be at most {MAX_LABEL} printable characters")
    return text


def _labels(value: Any, name: str, strict: bool = False) -> tuple[str, ...]:
    """A list of labels; null (and blank or null entries) count as none. ``strict`` (the API's JSON
    bodies): a JSON array only; otherwise (CSV has no lists) a string separated by , | or ; too."""
    if value is None or (not strict and value == ""):
        return ()
    if isinstance(value, str) and not strict:
        value = [part for part in re.split(r"[,|;]", value)]
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f'{name} must be a list of strings (a JSON array, e.g. ["Olahraga"]); '
                              f"got {_preview(value)}")
    if len(value) > MAX_TAGS:
        raise ValidationError(f"{name} holds at most {MAX_TAGS} entries")
    out = []
    for item in value:
        if item is not None and not isinstance(item, str):
            raise ValidationError(f"{name}: each entry must be a string, as in [\"Olahraga\"]; got {_preview(item)}")
        label = _label(item, name, required=False)
        if label and label not in out:
            out.append(label)
    return tuple(out)


# C0 and C1 control characters, DEL and lone surrogates (not text: SQLite cannot even store them)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # the same, less \t and \n
_WEB_SCHEMES = ("http", "https")
MAX_URL = 2048


def control_character(text: str) -> str | None:
    """The first character of ``text`` that labels and titles may not hold (C0 and C1 controls, DEL,
    lone surrogates: a store cannot even encode those), None when it is printable text."""
    found = _CONTROL.search(text)
    return found.group() if found else None


def _control_error(name: str, found: str, allowed: str = "") -> ValidationError:
    return ValidationError(f"{name} must be printable text{allowed}; found control character U+{ord(found):04X}")


def _web_url(value: Any) -> str | None:
    """An absolute http(s) link with a host, or None; anything else (``javascript:``, ``ftp:``,
    relative paths, spaces, control characters) is refused, since sites render it as a link."""
    if value is None or value == "":
        return None
    problem = not isinstance(value, str) or len(value) > MAX_URL or control_character(value) is not None or re.search(r"\s", value)
    if not problem:
        try:
            parts = urlsplit(value)
            problem = parts.scheme.lower() not in _WEB_SCHEMES or not parts.hostname
        except ValueError:  # e.g. an unclosed IPv6 bracket
            problem = True
    if problem:
        raise ValidationError(f"url must be an http:// or https:// link with a host, no spaces or control "
                              f"characters, at most {MAX_URL} characters; got {_preview(value)}")
    return value


# Typed fields. ``strict`` (the API, JSON bodies): the JSON type itself, no coercion, so a
# "false" string is not read as true and True is not read as position 1. Otherwise (CSV has no
# types): the usual text spellings too, still refusing anything ambiguous.
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})
_WHOLE_TEXT = re.compile(r"\s*[+-]?[0-9]{1,9}\s*")


def _flag(value: Any, name: str, strict: bool) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if not strict and isinstance(value, (str, int)):
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    spelled = "a JSON boolean" if strict else "or 1/0, yes/no"  # (a CSV cell is text, not JSON)
    raise ValidationError(f"{name} must be true or false ({spelled}); got {_preview(value)}")


def _whole(value: Any, name: str, strict: bool) -> int | None:
    if value is None or (not strict and value == ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not strict:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _WHOLE_TEXT.fullmatch(value):
            return int(value)
    spelled = " (a JSON integer)" if strict else ""
    raise ValidationError(f"{name} must be a whole number{spelled}; got {_preview(value)}")


def _number(value: Any, name: str, strict: bool) -> float | None:
    if value is None or (not strict and value == ""):
        return None
    if not isinstance(value, bool) and isinstance(value, (int, float) if strict else (int, float, str)):
        try:
            return float(value)
        except (ValueError, OverflowError):  # a string that is no number; an int past float range
            pass
    raise ValidationError(f"{name} must be a number; got {_preview(value)}")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _optional_id(value: Any, name: str, strict: bool) -> str | None:
    """An optional id: null (or, in CSV, an empty cell) is none; in the API's JSON bodies "" is
    refused, not read as none (leave the field out or send null)."""
    if value is None or (not strict and value == ""):
        return None
    if value == "":
        raise ValidationError(f"{name} is empty: an id is 1-128 characters; to send none, leave {name} out "
                              "or send null")
    return check_id(value, name, strict)


def _reject_unknown(record: Mapping[str, Any], allowed: frozenset[str], kind: str) -> None:
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise ValidationError(
            f"unknown field(s) for {kind}: {', '.join(map(str, unknown[:5]))}; allowed: {', '.join(sorted(allowed))}"
        )


@dataclass(frozen=True)
class Article:
    """A news article as the CMS publishes it."""

    article_id: str
    title: str
    body: str
    category: str
    published_at: float
    region: str | None = None
    tags: tuple[str, ...] = ()
    url: str | None = None
    language: str = "id"

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], strict: bool = False) -> "Article":
        if not isinstance(record, Mapping):
            raise ValidationError("an article must be a JSON object")
        if strict:
            _reject_unknown(record, ARTICLE_FIELDS, "article")
        title = record.get("title")
        if title is None or (isinstance(title, str) and not title.strip()):
            raise ValidationError("title is required")
        if not isinstance(title, str):
            raise ValidationError(f"title must be a string (text); got {_preview(title)}")
        if len(title) > MAX_TITLE:
            raise ValidationError(f"title is longer than {MAX_TITLE} characters")
        found = _CONTROL.search(title)
        if found:
            raise _control_error("title", found.group())
        body = record.get("body") or ""
        if not isinstance(body, str):
            raise ValidationError("body must be a string")
        if len(body) > MAX_BODY:
            raise ValidationError(f"body is longer than {MAX_BODY} characters")
        if "\r" in body:  # CR LF and CR line breaks are line breaks
            body = body.replace("\r\n", "\n").replace("\r", "\n")
        found = _BODY_CONTROL.search(body)
        if found:
            raise _control_error("body", found.group(), " (line breaks and tabs allowed)")
        url = _web_url(record.get("url"))
        return cls(
            article_id=check_id(record.get("article_id"), "article_id", strict),
            title=title.strip(),
            body=body,
            category=_label(record.get("category"), "category", required=True),
            published_at=parse_time(record.get("published_at"), "published_at"),
            region=_label(record.get("region"), "region", required=False),
            tags=_labels(record.get("tags"), "tags", strict),
            url=url,
            language=_label(record.get("language"), "language", required=False) or "id",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "article_id": self.article_id,
            "title": self.title,
            "body": self.body,
            "category": self.category,
            "region": self.region,
            "tags": list(self.tags),
            "url": self.url,
            "published_at": format_time(self.published_at),
            "language": self.language,
        }


@dataclass(frozen=True)
class Interaction:
    """One reader event. ``event_id`` makes a retried delivery count once."""

    user_id: str
    article_id: str
    event: str
    ts: float
    dwell_seconds: float | None = None
    event_id: str | None = None
    list_id: str | None = None
    position: int | None = None
    history: bool = False

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], strict: bool = False) -> "Interaction":
        if not isinstance(record, Mapping):
            raise ValidationError("an event must be a JSON object")
        if strict:
            _reject_unknown(record, EVENT_FIELDS, "event")
        event = record.get("event")
        if not isinstance(event, str) or event not in EVENT_CODES:  # (a dict or list is unhashable)
            raise ValidationError(f"event must be one of {', '.join(EVENT_TYPES)}; got {_preview(event)}")
        dwell = _number(record.get("dwell_seconds"), "dwell_seconds", strict)
        if dwell is not None and (not math.isfinite(dwell) or dwell < 0 or dwell > MAX_DWELL_SECONDS):
            raise ValidationError(f"dwell_seconds must be between 0 and {MAX_DWELL_SECONDS:.0f}")
        position = _whole(record.get("position"), "position", strict)
        if position is not None and not 0 <= position <= 10_000:
            raise ValidationError("position must be between 0 and 10000")
        return cls(
            user_id=check_id(record.get("user_id"), "user_id", strict),
            article_id=check_id(record.get("article_id"), "article_id", strict),
            event=event,
            ts=_not_future(parse_time(record.get("ts"), "ts")),
            dwell_seconds=dwell,
            event_id=_optional_id(record.get("event_id"), "event_id", strict),
            list_id=_optional_id(record.get("list_id"), "list_id", strict),
            position=position,
            history=_flag(record.get("history"), "history", strict),
        )

    def identity(self) -> str:
        """The idempotency key: the reader plus the given ``event_id``, or one derived from the
        content (two readers' ``"e1"`` are two events)."""
        if self.event_id:
            return f"{self.user_id}|#{self.event_id}"
        return f"{self.user_id}|{self.article_id}|{self.event}|{self.ts!r}|{self.list_id or ''}"

    def key64(self) -> int:
        """A signed 64-bit hash of :meth:`identity`, the events table's primary key."""
        digest = hashlib.blake2b(self.identity().encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "article_id": self.article_id,
            "event": self.event,
            "ts": format_time(self.ts),
            "dwell_seconds": self.dwell_seconds,
            "event_id": self.event_id,
        }


def key64_bytes(events: Iterable[Interaction]) -> bytes:
    """Each event's :meth:`Interaction.key64` as 8 big-endian bytes, one after the other (what a
    bulk writer reads as one array; ~1.3x cheaper per event than ``key64`` one at a time)."""
    blake = hashlib.blake2b
    return b"".join([blake(e.identity().encode("utf-8"), digest_size=8).digest() for e in events])


@dataclass(frozen=True)
class Preferences:
    """What a reader follows explicitly."""

    user_id: str
    categories: tuple[str, ...] = field(default_factory=tuple)
    regions: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], user_id: str | None = None, strict: bool = False) -> "Preferences":
        if not isinstance(record, Mapping):
            raise ValidationError("preferences must be a JSON object")
        allowed = PREFERENCE_FIELDS
        if strict:
            _reject_unknown(record, allowed, "preferences")
        uid = user_id if user_id is not None else record.get("user_id")
        if user_id is not None and record.get("user_id") not in (None, user_id):
            raise ValidationError("user_id in the body does not match the URL")
        return cls(
            user_id=check_id(uid, "user_id", strict),
            categories=_labels(record.get("categories"), "categories", strict),
            regions=_labels(record.get("regions"), "regions", strict),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "categories": list(self.categories), "regions": list(self.regions)}


def chunked(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Yield lists of at most ``size`` items, streaming."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
