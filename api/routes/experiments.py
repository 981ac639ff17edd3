"""Experiments (A/B and interleaving): created, listed, stopped and reported by admins.

The definitions live in the store; creating or stopping one reaches every worker of every replica
through the change log (``recommender.experiments.router``). List routes ask the router first.
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Blueprint, current_app

from recommender.experiments import registry
from recommender.experiments.router import ExperimentRouter, Routed

from ..auth import api_view
from ..errors import ApiError
from .common import engine, json_body, path_id

bp = Blueprint("experiments", __name__)

EXTENSION = "newsrec.experiments"


def experiments_router() -> ExperimentRouter | None:
    """The app's experiment router (None when the app has no store: no experiments)."""
    return current_app.extensions.get(EXTENSION)


def experiment_json(routed: Routed | None) -> dict:
    """What a served list inside an experiment adds beside ``model_version``."""
    if routed is None:
        return {}
    out = {"experiment": routed.experiment, "variant": routed.variant}
    if routed.teams is not None:
        out["teams"] = list(routed.teams)
    return out


def _store():
    store = getattr(engine(), "store", None) or current_app.extensions.get("newsrec.store")
    if store is None:
        raise ApiError(503, "store_unavailable", "this service has no store to keep experiments in")
    return store


def _models_dir() -> Path:
    return Path(getattr(engine(), "models_dir", None) or current_app.config["NEWSREC_MODELS"])


def experiments_now() -> float:
    """Now on the clock the router assigns by (the engine's), so a status agrees with assignment."""
    router = experiments_router()
    return router.clock() if router is not None else time.time()


def _described(experiment) -> dict:
    return experiment.described(experiments_now())


def _refresh_here() -> None:
    """This worker takes the change in at once (the others within their next poll)."""
    router = experiments_router()
    if router is not None:
        router.refresh()


@bp.post("/v1/admin/experiments")
@api_view("admin")
def create():
    """Create an experiment: ``{"name", "variants": [{"label", "model_version", "params"?}, ...],
    "shares"?, "lists"?, "mode"?, "starts_at"?, "ends_at"?}``; 201 with its definition."""
    try:
        experiment = registry.create(_store(), _models_dir(), json_body(), now=experiments_now())
    except registry.ExperimentConflict as exc:
        raise ApiError(409, "experiment_conflict", str(exc)) from None
    _refresh_here()
    return _described(experiment), 201


@bp.get("/v1/admin/experiments")
@api_view("admin")
def index():
    """Every experiment (scheduled, running, ended or stopped), oldest first."""
    return {"experiments": [_described(e) for e in registry.load_all(_store())]}


@bp.get("/v1/admin/experiments/<name>")
@api_view("admin")
def show(name: str):
    name = path_id(name, "name")
    try:
        return _described(registry.get(_store(), name))
    except registry.ExperimentNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@bp.post("/v1/admin/experiments/<name>/stop")
@api_view("admin")
def stop(name: str):
    """Stop an experiment: from now on its readers get the normal lists (409 if stopped already)."""
    name = path_id(name, "name")
    json_body(optional=True)
    try:
        experiment = registry.stop(_store(), name)
    except registry.ExperimentNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except registry.ExperimentConflict as exc:
        raise ApiError(409, "experiment_conflict", str(exc)) from None
    _refresh_here()
    return _described(experiment)


@bp.get("/v1/admin/experiments/<name>/report")
@api_view("admin")
def report(name: str):
    """Lists, clicks, CTR with 95 % intervals, CTR by position, the difference to the control,
    the sample-ratio-mismatch p-value and, for interleaving, the wins."""
    name = path_id(name, "name")
    try:
        return registry.report(_store(), name, now=experiments_now())
    except registry.ExperimentNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
