"""A reader's explicit preferences, and forgetting a reader."""

from __future__ import annotations

from flask import Blueprint

from recommender.domain import Preferences

from ..auth import api_view
from ..errors import ApiError
from .common import engine, json_body, path_id

bp = Blueprint("users", __name__)


@bp.get("/v1/users/<user_id>/preferences")
@api_view("site", reader="user_id")
def get_preferences(user_id: str):
    user_id = path_id(user_id, "user_id")
    prefs = engine().get_preferences(user_id)
    if prefs is None:
        raise ApiError(404, "not_found", f"no preferences stored for reader {user_id!r}; PUT them first")
    return prefs.to_dict()


@bp.put("/v1/users/<user_id>/preferences")
@api_view("site", reader="user_id")
def put_preferences(user_id: str):
    """Replace the reader's followed categories and regions (empty lists clear them)."""
    user_id = path_id(user_id, "user_id")
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "validation_error", 'send {"categories": [...], "regions": [...]}')
    prefs = Preferences.from_dict(body, user_id=user_id, strict=True)
    engine().set_preferences(prefs)
    return prefs.to_dict()


@bp.delete("/v1/users/<user_id>")
@api_view("admin")
def forget(user_id: str):
    """Delete everything stored about a reader (right to erasure); returns the counts removed."""
    user_id = path_id(user_id, "user_id")
    return {"user_id": user_id, "removed": engine().forget_user(user_id)}
