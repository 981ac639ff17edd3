"""Model operations: hot reload, promotion and the list of versions."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app

from recommender.models.bundle import BundleError
from recommender.models.versions import UNSET, PromotionConflict, describe, live_version, promote

from ..auth import api_view
from ..errors import ApiError
from .common import engine, json_body, metrics

bp = Blueprint("admin", __name__)


def _models_dir() -> Path:
    """The engine's bundle folder (the app's NEWSREC_MODELS when the engine does not say)."""
    return Path(getattr(engine(), "models_dir", None) or current_app.config["NEWSREC_MODELS"])


def _store():
    """The engine's store (where the live version is kept); None for an injected engine without one."""
    return getattr(engine(), "store", None) or current_app.extensions.get("newsrec.store")


@bp.post("/v1/admin/reload")
@api_view("admin")
def reload():
    """Load the live version (or ``{"version": ...}``) here beside the old one and swap.

    Without a version this worker loads the live version at once (the others follow within a
    second anyway). A ``version`` is loaded here first and, once it has loaded, made live in the
    database (the same step as ``newsrec models promote``), so every worker of every replica
    serves it within seconds; a version that fails to load is never made live. With
    ``"expected"`` (a version, or null for none), only if that is the live version (compare-and-set;
    default: the live version when the request arrived): 409 ``promotion_conflict`` otherwise.
    """
    body = json_body(optional=True)
    if not isinstance(body, dict) or set(body) - {"version", "expected"}:
        raise ApiError(400, "validation_error", 'send no body or {"version": "<bundle version>"} '
                                                '(optionally with "expected": "<live version>" or null)')
    version = body.get("version")
    if version is not None and (not isinstance(version, str) or not version):
        raise ApiError(400, "validation_error", "version must be a bundle version string; see GET /v1/admin/models")
    expected = body.get("expected", UNSET)
    if expected is not UNSET and (version is None or not (expected is None or (isinstance(expected, str) and expected))):
        raise ApiError(400, "validation_error", "expected goes with a version and is a version string or null")
    previous = engine().status().get("model_version")
    store, models_dir = _store(), _models_dir()
    if version is not None and expected is UNSET and store is not None:
        expected = live_version(store, models_dir)  # what the operator replaces: a promotion meanwhile conflicts

    def make_live(loaded: str) -> None:  # loaded, not yet served here: a conflict leaves this worker as it was
        if store is None:
            raise ApiError(503, "store_unavailable", "this service has no store to record the live version in")
        promote(store, models_dir, loaded, expected=expected, verify=False)  # verified as it loaded

    try:
        loaded = engine().reload(version, before_swap=make_live if version is not None else None)
    except PromotionConflict as exc:
        raise ApiError(409, "promotion_conflict", str(exc)) from None
    except BundleError as exc:
        metrics().reload_failures.inc()
        keeps = f"model {previous} keeps serving" if previous else "fallback lists keep serving (no model was loaded)"
        raise ApiError(409, "reload_failed", f"{exc}; {keeps}") from None
    return {"model_version": loaded, "previous_version": previous}


@bp.get("/v1/admin/models")
@api_view("admin")
def models():
    """Every version in the models folder with its part (live, staged, retired) and the one this
    worker serves."""
    return {"models": describe(_store(), _models_dir()),
            "serving": engine().status().get("model_version")}
