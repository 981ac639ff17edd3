"""Editorial control: pins, boosts, buries and blocks with start and expiry, and their audit log.

Every change is stored with an audit entry (who: the API key id) and a ``rules`` change in the
log, so every worker of every replica applies it within a poll; this worker at once.
"""

from __future__ import annotations

import secrets

from flask import Blueprint

from recommender.domain import ValidationError, format_time
from recommender.serving.rules import parse_pin, parse_rule, rule_view
from recommender.store import EditorialRule, StoreError

from ..auth import api_view, principal
from ..errors import ApiError
from .common import engine, int_param, json_body, path_id, query_arg

bp = Blueprint("editorial", __name__)


def _who() -> str:
    who = principal()
    return f"key:{who.key_id}" if who.key_id else f"{who.kind}:{who.user_id}"


def _create(parse, prefix: str) -> EditorialRule:
    now = engine().clock()
    try:
        rule = parse(json_body(), prefix + secrets.token_hex(8), now, _who())
    except ValidationError as exc:
        raise ApiError(400, "validation_error", str(exc)) from None
    engine().add_rule(rule, who=rule.created_by)
    return rule


def _remove(rule_id: str, pins: bool) -> dict:
    rule_id = path_id(rule_id, "pin_id" if pins else "rule_id")
    found = next((r for r in engine().rules.rules if r.rule_id == rule_id), None)
    if found is None:
        try:
            found = next((r for r in engine().store.list_rules() if r.rule_id == rule_id), None)
        except StoreError:
            found = None
    if found is None or (found.kind == "pin") != pins or not engine().remove_rule(rule_id, who=_who()):
        noun = "pin" if pins else "rule"
        raise ApiError(404, "not_found", f"no {noun} {rule_id} is in force (unknown, or removed already); "
                                         f"GET /v1/admin/{noun}s lists them")
    return {"pin_id" if pins else "rule_id": rule_id, "removed": True}


def _listing(pins: bool) -> list[dict]:
    now = engine().clock()
    return [rule_view(r, now) for r in engine().store.list_rules() if (r.kind == "pin") == pins]


@bp.post("/v1/admin/pins")
@api_view("editor")
def create_pin():
    """Pin an article at a position of feeds or related lists until ``expires_at``."""
    rule = _create(parse_pin, "p")
    return {"pin_id": rule.rule_id, **rule_view(rule, engine().clock())}, 201


@bp.get("/v1/admin/pins")
@api_view("editor")
def list_pins():
    return {"pins": _listing(pins=True)}


@bp.delete("/v1/admin/pins/<pin_id>")
@api_view("editor")
def delete_pin(pin_id: str):
    return _remove(pin_id, pins=True)


@bp.post("/v1/admin/rules")
@api_view("editor")
def create_rule():
    """A boost or bury (score multiplier) or a block, over an article, a category or a region."""
    rule = _create(parse_rule, "r")
    return {"rule_id": rule.rule_id, **rule_view(rule, engine().clock())}, 201


@bp.get("/v1/admin/rules")
@api_view("editor")
def list_rules():
    return {"rules": _listing(pins=False)}


@bp.delete("/v1/admin/rules/<rule_id>")
@api_view("editor")
def delete_rule(rule_id: str):
    return _remove(rule_id, pins=False)


@bp.get("/v1/admin/audit")
@api_view("editor", params=("limit", "rule_id"))
def audit():
    """Every change to pins and rules, newest first: who (key id), when, what."""
    limit = int_param("limit", 100, 1, 1000)
    rule_id = query_arg("rule_id")
    if rule_id is not None:
        rule_id = path_id(rule_id, "rule_id")
    entries = engine().store.audit_log(limit=limit, rule_id=rule_id)
    return {"audit": [{"seq": e.seq, "at": format_time(e.at), "who": e.who, "action": e.action,
                       "rule_id": e.rule_id, "rule": e.detail} for e in entries]}
