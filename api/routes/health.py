"""Probes, metrics and the API description: no authentication, no personal data."""

from __future__ import annotations

import logging
import sqlite3

from flask import Blueprint, Response, current_app, jsonify

from recommender.store import StoreError

from ..openapi import OPENAPI
from .common import engine, metrics

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers (liveness); says nothing about the store or the model."""
    return {"status": "ok"}


def _ping_store() -> None:
    store = current_app.extensions.get("newsrec.store")
    if store is not None:
        store.get_preferences("readyz-probe")  # one indexed read: the database opens and answers


@bp.get("/readyz")
def readyz():
    """200 while the store answers: ``ready``, or ``degraded`` (fallback lists, see ``reasons``).

    503 only when the store cannot be reached, so a load balancer keeps a degraded worker.
    """
    try:
        _ping_store()
        status = dict(engine().status())
    except (StoreError, sqlite3.Error, OSError) as exc:
        log.warning("readiness: store unreachable: %s", exc)
        response = jsonify({"status": "unavailable", "error": "store_unavailable",
                            "message": "the database cannot be reached; check NEWSREC_DB and disk"})
        response.status_code = 503
        response.headers["Retry-After"] = "1"
        return response
    status.pop("status", None)
    return {"status": "degraded" if status.get("degraded") else "ready", **status}


@bp.get("/metrics")
def prometheus():
    body, content_type = metrics().render()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi():
    return OPENAPI
