"""Request parsing and response shaping shared by the blueprints: typed, capped, one error shape."""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any, Callable

from flask import current_app, request
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import RequestEntityTooLarge

from recommender.domain import ValidationError, check_id, format_time
from recommender.serving.results import RankedItem, RankedList

from ..errors import ApiError
from ..jsonio import RawJSON

_DIGITS = re.compile(r"[0-9]{1,9}")  # fullmatch: "5\n" is not a number
MAX_DETAILS = 100
FORMAT_TIME_EXTENSION = "newsrec.format_time"
FORMAT_TIME_CACHE = 1 << 16  # publication times remembered per app (~10 MB at most)
ITEMS_JSON_EXTENSION = "newsrec.items_json"
ITEMS_JSON_CACHE = 4096  # cached feed pages whose items are kept encoded, per app


def engine():
    """The recommendation engine of the running app."""
    return current_app.extensions["newsrec"]


def metrics():
    return current_app.extensions["newsrec.metrics"]


def path_id(value: str, name: str) -> str:
    """A URL path id, checked like ids in bodies (400 if malformed)."""
    try:
        return check_id(value, name)
    except ValidationError as exc:
        raise ApiError(400, "validation_error", str(exc)) from None


def query_arg(name: str) -> str | None:
    """The first value of query parameter ``name``, or None.

    ``request.args.get`` raises and catches a ``BadRequestKeyError`` (an HTTP exception, costly
    to build) for every absent parameter; a membership test first does not.
    """
    args = request.args
    return args[name] if name in args else None


def int_param(name: str, default: int, low: int, high: int) -> int:
    raw = query_arg(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_parameter", f"{name} must be a whole number from {low} to {high}; "
                                                 f"got {raw[:40]!r}")
    return int(raw)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def json_body(optional: bool = False) -> Any:
    """The parsed JSON body. 415 if not JSON, 400 if malformed or too deep, 413 if too large.

    With ``optional``, an empty body (no Content-Length or 0) means ``{}``.
    """
    if optional and not request.content_length and "chunked" not in request.headers.get("Transfer-Encoding", ""):
        return {}
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "send the body as JSON with 'Content-Type: application/json'")
    try:
        raw = request.get_data(cache=False)  # raises 413 when Content-Length is past MAX_CONTENT_LENGTH
        limit = request.max_content_length
        if limit is not None and len(raw) >= limit and request.content_length is None:
            # a chunked body has no Content-Length: werkzeug stops reading at the limit without an
            # error, so a longer body would be parsed cut short. One byte more means it is too large.
            if request.input_stream.read(1):
                raise RequestEntityTooLarge()
    except (ParseException, NoMoreData) as exc:
        # gunicorn reads a chunked body as Flask asks for it, so a bad chunk (or a connection
        # closed inside one) raises here: the client's framing, a 400, not a 500 with a traceback
        why = "the connection closed inside it" if isinstance(exc, NoMoreData) else str(exc)
        raise ApiError(400, "bad_request", f"malformed chunked request body ({why}); "
                                           "send well-formed chunks or a Content-Length") from None
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "malformed_json", "request body is nested too deeply; flatten it") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None


def batch_records(body: Any, key: str, limit: int, noun: str) -> list:
    """``{key: [...]}`` or one bare object, as a list of 1..limit records."""
    if isinstance(body, dict) and key in body:
        extra = sorted(set(body) - {key})
        if extra:
            raise ApiError(400, "validation_error",
                           f"unknown field(s) beside '{key}': {', '.join(map(str, extra[:5]))}")
        records = body[key]
        if not isinstance(records, list):
            raise ApiError(400, "validation_error", f"'{key}' must be a list of {noun} objects")
    elif isinstance(body, dict):
        records = [body]
    else:
        raise ApiError(400, "validation_error", f"send one {noun} object or {{\"{key}\": [...]}}")
    if not records:
        raise ApiError(400, "validation_error", f"'{key}' is empty; send 1 to {limit} {noun}s")
    if len(records) > limit:
        raise ApiError(400, "validation_error",
                       f"{len(records)} {noun}s in one request; send at most {limit} per request")
    return records


def parse_all(records: list, parse: Callable[[Any], Any], noun: str) -> list:
    """Parse every record or none: any invalid one is a 400 listing each bad index."""
    parsed, details = [], []
    for index, record in enumerate(records):
        try:
            parsed.append(parse(record))
        except ValidationError as exc:
            details.append({"index": index, "message": str(exc)})
    if details:
        shown = details[:MAX_DETAILS]
        more = f" (first {MAX_DETAILS} listed)" if len(details) > MAX_DETAILS else ""
        raise ApiError(400, "validation_error",
                       f"{len(details)} of {len(records)} {noun}s are invalid{more}; nothing was stored. "
                       "Fix them and resend the whole batch.", details=shown)
    return parsed


def memo_format_time() -> Callable[[float], str]:
    """``format_time`` remembered per app: the same articles' times are formatted for every list
    (an aware datetime and its isoformat were ~4 % of a worker's time serving ``related``)."""
    return functools.lru_cache(maxsize=FORMAT_TIME_CACHE)(format_time)


def item_json(item: RankedItem, fmt_time: Callable[[float], str] = format_time) -> dict:
    score = float(item.score)
    return {
        "article_id": item.article_id,
        "title": item.title,
        "url": item.url,
        "category": item.category,
        "region": item.region,
        "published_at": fmt_time(item.published_at),
        "score": round(score, 6) if math.isfinite(score) else None,  # NaN/inf are not JSON
        "reason": item.reason,
    }


def items_json(ranked: RankedList) -> list[dict] | RawJSON:
    """The list's items for the response; a cached feed page's items are encoded once and reused
    (``RankedList.packed``: a page served again holds the very same tuple of them, as the cache
    keeps them). Encoding 20 items was ~15 % of a worker's time serving cached pages."""
    fmt_time = current_app.extensions.get(FORMAT_TIME_EXTENSION, format_time)
    key = ranked.packed
    memo = current_app.extensions.get(ITEMS_JSON_EXTENSION) if key is not None else None
    if memo is None:
        return [item_json(item, fmt_time) for item in ranked.items]
    kept = memo.get(id(key))
    if kept is not None and kept[0] is key:  # the tuple itself is kept: its id is not reused
        return kept[1]
    raw = RawJSON(current_app.json.encode([item_json(item, fmt_time) for item in ranked.items]))
    if len(memo) >= ITEMS_JSON_CACHE:
        try:
            memo.pop(next(iter(memo)), None)  # the oldest entry
        except (RuntimeError, StopIteration):  # another thread changed it meanwhile
            pass
    memo[id(key)] = (key, raw)  # (plain tuples: nothing the cycle collector walks, results.pack_items)
    return raw


def list_json(ranked: RankedList) -> dict:
    out = {
        "items": items_json(ranked),
        "strategy": ranked.strategy,
        "model_version": ranked.model_version,
        "list_id": ranked.list_id,
    }
    if ranked.extra.get("empty_reason"):  # an empty list says why (e.g. a section with nothing to show)
        out["empty_reason"] = ranked.extra["empty_reason"]
    return out
