"""Recommendation lists: related articles and a reader's feed."""

from __future__ import annotations

from flask import Blueprint

from recommender.serving.results import CURSOR_MAX_CHARS

from ..auth import api_view, principal
from ..errors import ApiError
from .common import engine, int_param, list_json, metrics, path_id, query_arg
from .experiments import experiment_json, experiments_router

bp = Blueprint("lists", __name__)

MAX_CURSOR = CURSOR_MAX_CHARS


@bp.get("/v1/articles/<article_id>/related")
@api_view("site", reader=True, params=("limit", "user_id", "anonymous_id"))
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
    anonymous_id = query_arg("anonymous_id") or None
    if anonymous_id is not None:
        anonymous_id = path_id(anonymous_id, "anonymous_id")
    routed = experiments_router()
    routed = routed and routed.related(article_id, limit, user_id, user_id or anonymous_id)
    ranked = routed.ranked if routed else engine().related(article_id, limit=limit, user_id=user_id)
    metrics().observe_list("related", ranked.strategy, ranked.model_version)
    return {"article_id": article_id, **list_json(ranked), **experiment_json(routed)}


@bp.get("/v1/users/<user_id>/feed")
@api_view("site", reader="user_id", params=("limit", "cursor"))
def feed(user_id: str):
    """A reader's personalized feed; unknown readers get a cold-start list."""
    user_id = path_id(user_id, "user_id")
    limit = int_param("limit", 20, 1, 100)
    cursor = query_arg("cursor") or None
    if cursor is not None and len(cursor) > MAX_CURSOR:
        raise ApiError(400, "invalid_cursor", "cursor is too long; pass back next_cursor unchanged")
    routed = None
    try:
        router = experiments_router()
        routed = router and router.feed(user_id, limit, cursor)
        ranked = routed.ranked if routed else engine().feed(user_id, limit=limit, cursor=cursor)
    except ValueError as exc:
        if cursor is None:
            raise  # not a cursor problem: a bug, answered as a 500
        raise ApiError(400, "invalid_cursor",
                       f"cursor refused ({exc}); pass back next_cursor unchanged or drop it to start over") from None
    metrics().observe_list("feed", ranked.strategy, ranked.model_version)
    return {"user_id": user_id, **list_json(ranked), **experiment_json(routed), "next_cursor": ranked.next_cursor}
