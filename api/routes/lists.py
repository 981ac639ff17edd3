"""Recommendation lists: related articles and a reader's feed."""

from __future__ import annotations

from flask import Blueprint

from recommender.serving.results import CURSOR_MAX_CHARS, InvalidCursor
from recommender.serving.stages import ListFilter

from ..auth import api_view, principal
from ..errors import ApiError
from .common import engine, int_param, list_json, metrics, path_id, query_arg
from .experiments import experiment_json, experiments_router

bp = Blueprint("lists", __name__)

MAX_CURSOR = CURSOR_MAX_CHARS
MAX_SECTIONS = 20  # names per filter parameter
MAX_SECTION_CHARS = 100


def _names(name: str) -> tuple[str, ...]:
    """A comma-separated section filter (``politik,ekonomi``): 1-20 names of 1-100 printable
    characters each; 400 otherwise."""
    raw = query_arg(name)
    if raw is None:
        return ()
    names = tuple(part.strip() for part in raw.split(","))
    if (not 1 <= len(names) <= MAX_SECTIONS or any(not n or len(n) > MAX_SECTION_CHARS for n in names)
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in raw)):
        raise ApiError(400, "invalid_parameter",
                       f"{name} must be 1-{MAX_SECTIONS} comma-separated names of 1-{MAX_SECTION_CHARS} printable "
                       f"characters (e.g. {name}=politik,ekonomi); got {raw[:40]!r}")
    return names


def section_filter() -> ListFilter:
    return ListFilter(categories=_names("category"), regions=_names("region"))


@bp.get("/v1/articles/<article_id>/related")
@api_view("site", reader=True, params=("limit", "user_id", "anonymous_id", "category", "region"))
def related(article_id: str):
    """Articles to show under ``article_id``; ``user_id`` leaves out what that reader has read.

    A reader token may call this for its own reader only (the default ``user_id`` then).
    ``anonymous_id`` (the page view's visitor id) assigns a visitor without ``user_id`` to an
    experiment's variant; it is not stored.
    """
    article_id = path_id(article_id, "article_id")
    limit = int_param("limit", 10, 1, 50)
    user_id = query_arg("user_id") or None
    who = principal()
    if who.kind == "token":
        if user_id is not None and user_id != who.user_id:
            raise ApiError(403, "forbidden", "this reader token belongs to another reader")
        user_id = who.user_id
    if user_id is not None:
        user_id = path_id(user_id, "user_id")
    filters = section_filter()
    options = {"filters": filters} if filters else {}
    anonymous_id = query_arg("anonymous_id") or None
    if anonymous_id is not None:
        anonymous_id = path_id(anonymous_id, "anonymous_id")
    routed = experiments_router()
    routed = routed and routed.related(article_id, limit, user_id, user_id or anonymous_id, **options)
    ranked = routed.ranked if routed else engine().related(article_id, limit=limit, user_id=user_id, **options)
    metrics().observe_list("related", ranked.strategy, ranked.model_version)
    return {"article_id": article_id, **list_json(ranked), **experiment_json(routed)}


@bp.get("/v1/users/<user_id>/feed")
@api_view("site", reader="user_id", params=("limit", "cursor", "category", "region"))
def feed(user_id: str):
    """A reader's personalized feed; unknown readers get a cold-start list."""
    user_id = path_id(user_id, "user_id")
    limit = int_param("limit", 20, 1, 100)
    cursor = query_arg("cursor") or None
    filters = section_filter()
    if cursor is not None and len(cursor) > MAX_CURSOR:
        raise ApiError(400, "invalid_cursor", "cursor is too long; pass back next_cursor unchanged")
    routed = None
    try:
        options = {"filters": filters} if filters else {}
        router = experiments_router()
        routed = router and router.feed(user_id, limit, cursor, **options)
        ranked = routed.ranked if routed else engine().feed(user_id, limit=limit, cursor=cursor, **options)
    except InvalidCursor as exc:  # (any other ValueError is a bug, answered as a 500)
        raise ApiError(400, "invalid_cursor", f"cursor refused: {exc}") from None  # exc says what to do
    metrics().observe_list("feed", ranked.strategy, ranked.model_version)
    metrics().observe_feed_cache(ranked.cache)
    return {"user_id": user_id, **list_json(ranked), **experiment_json(routed), "next_cursor": ranked.next_cursor}
