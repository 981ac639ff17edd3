"""The console's controls for pins, boosts/buries/blocks, their audit log and experiments.

Forms are parsed into the JSON bodies the admin API takes and handed to the same core code
(``rules.parse_pin``/``parse_rule`` and ``Engine.add_rule``/``remove_rule``; the experiments
registry), so a change made here is audited with the signed-in key's id and reaches every worker
and replica through the change log exactly like one made through ``/v1/admin``. Times are typed
and shown in WIB (Asia/Jakarta), the newsroom's clock.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from flask import g, request

from recommender.domain import WIB, ValidationError
from recommender.experiments import registry
from recommender.serving.results import NotFound
from recommender.serving.rules import MAX_POSITION, parse_pin, parse_rule, rule_view

from ..routes.common import engine
from ..routes.experiments import experiments_now, experiments_router
from ..web.sessions import check_csrf
from . import bp
from .views import _require_admin, _store, page

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends
LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,3})?)?")  # seconds: step
LATEST = 32503680000.0  # the year 3000, as recommender.domain.parse_time bounds every time


def who() -> str:
    """The audit log's ``who`` for the signed-in key, as the API writes it."""
    return f"key:{g.console['key_id']}"


def wib(value: str, name: str) -> float | None:
    """A datetime-local value (no offset) read as WIB; None when empty."""
    value = (value or "").strip()
    if not value:
        return None
    try:  # the whole value: one with text after the minutes is not a time the form sent
        if not LOCAL_TIME.fullmatch(value):
            raise ValueError(value)
        ts = datetime.strptime(value[:16], LOCAL_FORMAT).replace(tzinfo=WIB).timestamp()
    except ValueError:
        raise ValidationError(f"{name} must be a date and time such as 2026-12-31T18:00 (WIB)") from None
    if not 0.0 <= ts < LATEST:  # said here as typed: the core would show epoch seconds nobody typed
        raise ValidationError(f"{name} must be after 1970 and before the year 3000; got {value}")
    return ts


def wib_text(ts: float | None) -> str:
    return "–" if ts is None else datetime.fromtimestamp(ts, tz=WIB).strftime("%Y-%m-%d %H:%M WIB")


def scope_text(scope: dict) -> str:
    """A rule's scope as people read it: "feed", "related under a000123", "feed · category Politik"."""
    text = str(scope.get("list", ""))
    if scope.get("article_id"):
        text += f" under {scope['article_id']}"
    if scope.get("story"):
        text += f" in the story of {scope['story']}"
    return " · ".join([text] + [f"{key} {scope[key]}" for key in ("category", "region") if scope.get(key)])


def target_text(target: dict) -> str:
    """A rule's target as people read it: "article a000123", "category Politik"."""
    return " · ".join(f"{'article' if key == 'article_id' else key} {value}" for key, value in target.items())


def _scope(form) -> dict:
    scope = {"list": form.get("list", "")}
    for key in ("category", "region", "article_id"):
        value = (form.get(f"scope_{key}") or "").strip()
        if value:
            scope[key] = value
    return scope


def _times(form, body: dict) -> dict:
    starts, expires = wib(form.get("starts_at"), "Starts"), wib(form.get("expires_at"), "Expires")
    if starts is not None:
        body["starts_at"] = starts
    if expires is not None:
        body["expires_at"] = expires
    return body


def pin_body(form) -> dict:
    """The JSON body of POST /v1/admin/pins from the console's form."""
    raw = (form.get("position") or "").strip()
    if not re.fullmatch(r"[0-9]{1,3}", raw):
        raise ValidationError(f"position must be a whole number from 1 (first) to {MAX_POSITION}")
    return _times(form, {"article_id": (form.get("article_id") or "").strip(), "position": int(raw),
                         "scope": _scope(form)})


def rule_body(form) -> dict:
    """The JSON body of POST /v1/admin/rules from the console's form."""
    kind = form.get("kind", "")
    target_key = form.get("target_kind", "")
    if target_key not in ("article_id", "category", "region"):
        raise ValidationError("choose what the rule targets: an article, a category or a region")
    body = {"kind": kind, "target": {target_key: (form.get("target") or "").strip()}, "scope": _scope(form)}
    raw = (form.get("factor") or "").strip()
    if raw:  # (a block with a factor, or a boost without one: the core says what is wrong)
        try:
            body["factor"] = float(raw)
        except ValueError:
            raise ValidationError(f"factor must be a number (boost > 1, bury < 1), not {raw[:20]!r}") from None
    return _times(form, body)


def _listing(pins: bool) -> list[dict]:
    now = engine().clock()
    return [rule_view(r, now) | {"starts": wib_text(r.starts_at), "expires": wib_text(r.expires_at)}
            for r in engine().store.list_rules() if (r.kind == "pin") == pins]


def _find(rule_id: str):
    return next((r for r in engine().store.list_rules() if r.rule_id == rule_id), None)


# -- pins and rules -------------------------------------------------------------------------------
def _editorial_page(pins: bool, message: str | None = None, error: str | None = None, form=None, code: int = 200):
    return page("console/pins.html" if pins else "console/rules.html", code, rows=_listing(pins), message=message,
                error=error, form=form or {}, now_wib=wib_text(engine().clock()))


@bp.get("/pins")
def pins():
    return _editorial_page(True, form=request.args)


@bp.get("/rules")
def rules():
    return _editorial_page(False)


def _create(pins: bool):
    check_csrf(g.console)
    now = engine().clock()
    try:
        body = pin_body(request.form) if pins else rule_body(request.form)
        rule = (parse_pin if pins else parse_rule)(body, ("p" if pins else "r") + secrets.token_hex(8), now, who())
    except ValidationError as exc:
        return _editorial_page(pins, error=f"Nothing saved: {exc}", form=request.form, code=400)
    try:
        engine().add_rule(rule, who=rule.created_by)
    except NotFound as exc:  # a pin of an article the store does not hold, or a scope's
        return _editorial_page(pins, error=f"Nothing saved: {exc}", form=request.form, code=404)
    what = (f"Pinned {rule.target['article_id']} at position {rule.position}" if pins
            else f"{rule.kind.capitalize()} {rule.rule_id} saved")
    return _editorial_page(pins, message=f"{what} ({rule.rule_id}); every worker applies it within seconds.")


@bp.post("/pins")
def create_pin():
    return _create(True)


@bp.post("/rules")
def create_rule():
    return _create(False)


def _remove(rule_id: str, pins: bool):
    found = _find(rule_id)
    if found is None or (found.kind == "pin") != pins:
        return _editorial_page(pins, error=f"No {'pin' if pins else 'rule'} {rule_id!r} is in force.", code=404)
    if request.method == "GET":  # the confirmation step
        row = rule_view(found, engine().clock())
        row.update(scope=scope_text(found.scope), target=target_text(found.target))  # not Python dicts
        return page("console/confirm.html", title=f"Remove {rule_id}?", row=row,
                    action=request.path, confirm=rule_id, expires=wib_text(found.expires_at), label="Remove",
                    back="console.pins" if pins else "console.rules")
    check_csrf(g.console)
    if request.form.get("confirm") != rule_id:
        return _editorial_page(pins, error="Not confirmed; nothing removed.", code=400)
    if not engine().remove_rule(rule_id, who=who()):
        return _editorial_page(pins, error=f"{rule_id} was removed already.", code=404)
    return _editorial_page(pins, message=f"{rule_id} removed; every worker drops it within seconds.")


@bp.route("/pins/<rule_id>/remove", methods=("GET", "POST"))
def remove_pin(rule_id: str):
    return _remove(rule_id, True)


@bp.route("/rules/<rule_id>/remove", methods=("GET", "POST"))
def remove_rule(rule_id: str):
    return _remove(rule_id, False)


@bp.get("/audit")
def audit():
    entries = engine().store.audit_log(limit=200)
    return page("console/audit.html", entries=entries, wib_text=wib_text)


# -- experiments ----------------------------------------------------------------------------------
def _experiments_page(message: str | None = None, error: str | None = None, code: int = 200):
    rows = registry.load_all(_store())
    return page("console/experiments.html", code, experiments=list(reversed(rows)), message=message, error=error,
                wib_text=wib_text, now=experiments_now())


@bp.get("/experiments")
def experiments():
    return _require_admin() or _experiments_page()


@bp.get("/experiments/<name>")
def experiment_report(name: str):
    blocked = _require_admin()
    if blocked:
        return blocked
    try:
        experiment = registry.get(_store(), name)
        report = registry.report(_store(), name, now=experiments_now())
    except registry.ExperimentNotFound as exc:
        return _experiments_page(error=str(exc), code=404)
    return page("console/experiment.html", experiment=experiment, report=report, wib_text=wib_text)


@bp.route("/experiments/<name>/stop", methods=("GET", "POST"))
def stop_experiment(name: str):
    blocked = _require_admin()
    if blocked:
        return blocked
    try:
        experiment = registry.get(_store(), name)
    except registry.ExperimentNotFound as exc:
        return _experiments_page(error=str(exc), code=404)
    if request.method == "GET":
        return page("console/confirm.html", title=f"Stop experiment {name}?", row={"experiment": name,
                    "variants": ", ".join(experiment.labels), "lists": ", ".join(experiment.lists)},
                    action=request.path, confirm=name, label="Stop", back="console.experiments", expires=None)
    check_csrf(g.console)
    if request.form.get("confirm") != name:
        return _experiments_page(error="Not confirmed; nothing stopped.", code=400)
    try:
        registry.stop(_store(), name)
    except registry.ExperimentConflict as exc:
        return _experiments_page(error=str(exc), code=409)
    router = experiments_router()
    if router is not None:
        router.refresh()
    return _experiments_page(message=f"{name} stopped: its readers get the normal lists from now on.")
