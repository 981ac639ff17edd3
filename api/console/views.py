"""The console's pages: overview, article inspector, reader inspector, models; and their actions.

Actions are POST forms (CSRF-checked) that call the same engine and store methods as the JSON
API, so a takedown or promotion here reaches every worker and replica through the change log.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from flask import (current_app, g, make_response, redirect, render_template, request,
                   send_from_directory, url_for)

from recommender.domain import ValidationError, check_id
from recommender.models.versions import PromotionError, describe, promote, rollback
from recommender.serving.explain import FEED_REASONS, RELATED_REASONS, part_names
from recommender.serving.results import NotFound

from ..auth import EXTENSION as SECURITY
from ..routes.common import engine, metrics
from ..web.sessions import check_csrf
from . import CONSOLE_ROLES, bp, nav_for, sessions
from .overview import REPORT_FILE, by_position, ctr_chart, evaluation_report, training_report, traffic

SEARCH_LIMIT = 50
SEARCH_DAYS = 30  # titles are searched among articles published this recently
HISTORY = 30


def _store():
    return getattr(engine(), "store", None) or current_app.extensions.get("newsrec.store")


def _models_dir() -> Path:
    return Path(getattr(engine(), "models_dir", None) or current_app.config["NEWSREC_MODELS"])


def _id(value: str | None, name: str) -> str | None:
    """A user-typed id, or None when empty or malformed (the page says so)."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return check_id(value, name)
    except ValidationError:
        return None


def page(template: str, code: int = 200, **context):
    role = g.console["role"] if "console" in g else None
    response = make_response(render_template(template, nav=nav_for(role) if role else [], session=g.get("console"),
                                             role=role, **context), code)
    return response


def _require_admin():
    if g.console["role"] != "admin":
        return page("console/message.html", 403, title="Not allowed",
                    message="This action needs an admin key; editors may take articles down and restore them, "
                            "and pin articles and add rules.")
    return None


@bp.errorhandler(403)
def forbidden(exc):
    """A form refused (its CSRF token is missing or stale) as a page: a browser would show JSON."""
    return page("console/message.html", 403, title="Form expired", message=exc.description)


# -- signing in and out -------------------------------------------------------------------------
def _safe_next(target: str | None) -> str:
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.overview")


@bp.get("/signin")
def signin():
    csrf = (sessions().load() or {}).get("csrf") or secrets.token_urlsafe(24)
    response = make_response(render_template("console/signin.html", nav=[], session=None, role=None,
                                             next=_safe_next(request.args.get("next")), error=None, csrf=csrf))
    sessions().save(response, {"csrf": csrf})  # a session holding only the sign-in form's CSRF token
    return response


@bp.post("/signin")
def signin_post():
    pre = sessions().load()
    check_csrf(pre)
    raw = (request.form.get("key") or "").strip()
    key = current_app.extensions[SECURITY].keys.authenticate(raw) if raw else None
    target = _safe_next(request.form.get("next"))
    if key is None or key.role not in CONSOLE_ROLES:
        error = ("That key is not an admin or editor key." if key is not None
                 else "That key is not valid (create one with 'newsrec keys add --role editor').")
        response = make_response(render_template("console/signin.html", nav=[], session=None, role=None, next=target,
                                                 error=error, csrf=pre["csrf"]), 401)
        return response
    response = redirect(target, code=303)
    sessions().save(response, {"key_id": key.key_id, "role": key.role, "name": key.name, "at": time.time()})
    return response


@bp.post("/signout")
def signout():
    check_csrf(g.console)
    response = redirect(url_for("console.signin"), code=303)
    sessions().clear(response)
    return response


# -- overview -----------------------------------------------------------------------------------
@bp.get("/")
def overview():
    status = engine().status()
    store = _store()
    models = describe(store, _models_dir())
    live = next((m for m in models if m["live"]), None)
    now = engine().clock()  # the service's clock (replays and tests inject one)
    recent = traffic(store, now)
    fallbacks = sum(sample.value for family in metrics().fallbacks.collect() for sample in family.samples
                    if sample.name.endswith("_total"))
    positions = by_position(store, now)
    return page("console/overview.html", status=status, fallbacks=int(fallbacks),
                positions=[{**group, "chart": ctr_chart(group["rows"])} for group in positions or ()],
                positions_known=positions is not None, live=live, traffic=recent, chart=ctr_chart(recent["hours"]),
                training=training_report(_models_dir(), status.get("live_version")),
                evaluation=evaluation_report(Path(current_app.config["NEWSREC_HOME"])))


# -- articles -----------------------------------------------------------------------------------
def search_articles(query: str) -> list:
    """Articles whose id is ``query`` or whose title contains it (recent ones, newest first)."""
    store = _store()
    found = {}
    article_id = _id(query, "article_id")
    if article_id:
        found.update(store.get_stored_articles([article_id]))
    words = query.casefold().strip()
    if words:
        since = time.time() - SEARCH_DAYS * 86_400.0
        for stored in store.iter_articles(published_since=since, include_deleted=True):
            if words in stored.article.title.casefold():
                found[stored.article.article_id] = stored
    return sorted(found.values(), key=lambda s: s.article.published_at, reverse=True)[:SEARCH_LIMIT]


@bp.get("/articles")
def articles():
    query = request.args.get("q", "")[:200]
    results = search_articles(query) if query.strip() else []
    return page("console/articles.html", query=query, results=results)


def _article_page(article_id: str, message: str | None = None, code: int = 200):
    stored = _store().get_stored_articles([article_id]).get(article_id)
    if stored is None:
        return page("console/message.html", 404, title="No such article",
                    message=f"No article {article_id!r} in the store.")
    why = [a for a in (_id(x, "article_id") for x in request.values.get("why", "").split()) if a][:10]
    raw_limit = request.args.get("limit", "")
    limit = min(max(int(raw_limit), 1), 50) if re.fullmatch(r"[0-9]{1,3}", raw_limit) else 10
    inspected, problem = None, None
    if not stored.deleted:
        try:
            inspected = engine().inspect_related(article_id, limit=limit, others=tuple(why))
        except NotFound as exc:
            problem = str(exc)
    rows = []
    if inspected:
        for item, parts in zip(inspected["list"].items, inspected["parts"]):
            rows.append({"item": item, "parts": (parts or {}).get("parts", {})})
    verdict_parts = [v.parts for v in inspected["verdicts"]] if inspected else []
    return page("console/article.html", code, stored=stored, inspected=inspected, rows=rows, problem=problem,
                why=" ".join(why), limit=limit, message=message,
                part_names=part_names(RELATED_REASONS, [row["parts"] for row in rows] + verdict_parts))


@bp.get("/articles/<article_id>")
def article(article_id: str):
    article_id = _id(article_id, "article_id")
    if article_id is None:
        return page("console/message.html", 400, title="Bad id", message="That is not an article id.")
    return _article_page(article_id)


@bp.post("/articles/<article_id>/<action>")
def article_action(article_id: str, action: str):
    check_csrf(g.console)
    article_id = _id(article_id, "article_id")
    if article_id is None or action not in ("takedown", "restore"):
        return page("console/message.html", 400, title="Bad request", message="Unknown article or action.")
    if action == "takedown" and request.form.get("confirm", "").strip() != article_id:
        return page("console/message.html", 400, title="Not taken down",
                    message="Type the article's id exactly to confirm; nothing changed.")
    done = engine().takedown(article_id) if action == "takedown" else engine().restore(article_id)
    if not done:
        return page("console/message.html", 404, title="No such article", message=f"No article {article_id!r}.")
    verb = "taken down: no list shows it any more" if action == "takedown" else "restored"
    return _article_page(article_id, message=f"{article_id} {verb}.")


# -- readers ------------------------------------------------------------------------------------
def reader_view(user_id: str) -> dict:
    eng, store = engine(), _store()
    ranked = eng.feed(user_id, limit=20, log=False, explain=True)
    rows = [{"item": item, "parts": parts} for item, parts in zip(ranked.items, ranked.extra.get("parts", ()))]
    history = store.user_events(user_id, limit=HISTORY, events=("click", "read", "share"))
    titles = store.get_articles(list({e.article_id for e in history}), include_deleted=True)
    return {"ranked": ranked, "rows": rows, "part_names": part_names(FEED_REASONS, [row["parts"] for row in rows]),
            "prefs": eng.get_preferences(user_id),
            "history": [(e, titles.get(e.article_id)) for e in reversed(history)]}


@bp.get("/readers")
def readers():
    blocked = _require_admin()
    if blocked:
        return blocked
    raw = request.args.get("user_id", "")
    user_id = _id(raw, "user_id")
    view = reader_view(user_id) if user_id else None
    return page("console/readers.html", user_id=user_id, raw=raw[:200], view=view, removed=None)


@bp.post("/readers/<user_id>/forget")
def forget(user_id: str):
    check_csrf(g.console)
    blocked = _require_admin()
    if blocked:
        return blocked
    user_id = _id(user_id, "user_id")
    if user_id is None or request.form.get("confirm", "").strip() != user_id:
        return page("console/message.html", 400, title="Not forgotten",
                    message="Type the reader's id exactly to confirm; nothing was deleted.")
    removed = engine().forget_user(user_id)
    return page("console/readers.html", user_id=None, raw="", view=None, removed={"user_id": user_id, **removed})


# -- models -------------------------------------------------------------------------------------
@bp.get("/models")
def models():
    blocked = _require_admin()
    if blocked:
        return blocked
    return _models_page(None)


def _models_page(message: str | None, code: int = 200):
    rows = describe(_store(), _models_dir())  # oldest first
    live = next((k for k, row in enumerate(rows) if row["live"]), None)
    older = {row["version"] for row in rows[:live]} if live is not None else set()
    return page("console/models.html", code, models=list(reversed(rows)), older=older, message=message,
                live=rows[live]["version"] if live is not None else None,
                serving=engine().status().get("model_version"))


@bp.post("/models/<version>/<action>")
def model_action(version: str, action: str):
    check_csrf(g.console)
    blocked = _require_admin()
    if blocked:
        return blocked
    if action not in ("promote", "rollback"):
        return page("console/message.html", 400, title="Bad request", message="Unknown action.")
    expected = request.form.get("expected") or None
    code = 200
    try:
        if action == "promote":
            promote(_store(), _models_dir(), version, expected=expected)
        else:
            rollback(_store(), _models_dir(), version, expected=expected)
        message = f"{version} is live: every worker loads it within seconds."
    except PromotionError as exc:
        message, code = f"Nothing changed: {exc}", 409
    return _models_page(message, code)


@bp.get("/reports/<run>/<filename>")
def report_plot(run: str, filename: str):
    """A plot of an evaluation report (``$NEWSREC_HOME/reports/<run>/<name>.png``), for the overview."""
    if not REPORT_FILE.fullmatch(filename) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}", run):
        return page("console/message.html", 404, title="No such plot", message="No such plot.")
    folder = Path(current_app.config["NEWSREC_HOME"]) / "reports" / run
    return send_from_directory(folder, filename, mimetype="image/png", max_age=0)
