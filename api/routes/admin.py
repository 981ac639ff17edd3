"""Model operations: hot reload and the list of bundles."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app

from recommender.models.bundle import BundleError, list_versions, read_current, set_current

from ..auth import api_view
from ..errors import ApiError
from .common import engine, json_body, metrics

bp = Blueprint("admin", __name__)


def _models_dir() -> Path:
    """The engine's bundle folder (the app's NEWSREC_MODELS when the engine does not say)."""
    return Path(getattr(engine(), "models_dir", None) or current_app.config["NEWSREC_MODELS"])


@bp.post("/v1/admin/reload")
@api_view("admin")
def reload():
    """Load the CURRENT bundle (or ``{"version": ...}``) beside the old one and swap.

    This worker reloads at once; the others follow CURRENT from their background thread within
    seconds. So a ``version`` other than CURRENT, once it has loaded here, is made CURRENT
    (``bundle.set_current``, the same step as ``newsrec models rollback``); otherwise every
    background thread, this one included, would switch back to CURRENT a second later.
    A bundle that fails to load never becomes CURRENT.
    """
    body = json_body(optional=True)
    if not isinstance(body, dict) or set(body) - {"version"}:
        raise ApiError(400, "validation_error", 'send no body or {"version": "<bundle version>"}')
    version = body.get("version")
    if version is not None and (not isinstance(version, str) or not version):
        raise ApiError(400, "validation_error", "version must be a bundle version string; see GET /v1/admin/models")
    previous = engine().status().get("model_version")
    models_dir = _models_dir()
    try:
        loaded = engine().reload(version)
        if version is not None and read_current(models_dir) != loaded:
            set_current(models_dir, loaded)
    except BundleError as exc:
        metrics().reload_failures.inc()
        keeps = f"model {previous} keeps serving" if previous else "fallback lists keep serving (no model was loaded)"
        raise ApiError(409, "reload_failed", f"{exc}; {keeps}") from None
    return {"model_version": loaded, "previous_version": previous}


@bp.get("/v1/admin/models")
@api_view("admin")
def models():
    return {"models": list_versions(_models_dir()),
            "serving": engine().status().get("model_version")}
