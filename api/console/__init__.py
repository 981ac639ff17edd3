"""The newsroom console (``/console/``): editors and data scientists see and steer what readers get.

Signing in exchanges an ``admin`` or ``editor`` API key for a signed session cookie (see
:mod:`api.web.sessions`: valid on every worker, HttpOnly, SameSite=Strict, Secure over TLS);
the key itself is never stored in it, only its id, checked against the key file on every request,
so revoking the key ends the session. Every page but the sign-in form redirects there without a
session; every form carries the session's CSRF token.

Pages are listed in :data:`NAV`; a page for a new admin capability is one view, one template
and one entry here (``needs`` names a URL rule the app must have, so a page appears only once
its API exists, e.g. ``/v1/admin/pins``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, g, redirect, request, url_for

from ..auth import EXTENSION as SECURITY
from ..web import page_headers, session_secret
from ..web.sessions import CookieSessions

bp = Blueprint("console", __name__, url_prefix="/console")
bp.after_request(page_headers)

SESSION_SECONDS = 8 * 3600
CONSOLE_ROLES = ("admin", "editor")


@dataclass(frozen=True)
class Page:
    endpoint: str
    label: str
    roles: tuple[str, ...] = CONSOLE_ROLES
    needs: str | None = None  # a URL rule that must exist (a capability not merged yet hides the page)
    args: tuple[tuple[str, str], ...] = ()  # url_for arguments

    @property
    def url_args(self) -> dict:
        return dict(self.args)


NAV = (
    Page("console.overview", "Overview"),
    Page("console.articles", "Articles"),
    Page("console.readers", "Readers", roles=("admin",)),
    Page("console.models", "Models", roles=("admin",)),
    Page("console.pins", "Pins", needs="/v1/admin/pins"),
    Page("console.rules", "Rules", needs="/v1/admin/rules"),
    Page("console.audit", "Audit", needs="/v1/admin/audit"),
    Page("console.experiments", "Experiments", roles=("admin",), needs="/v1/admin/experiments"),
)


def sessions() -> CookieSessions:
    return CookieSessions(session_secret(current_app, "console"), "newsrec_console", "/console", SESSION_SECONDS,
                          "Strict")


def has_rule(rule: str, method: str = "GET") -> bool:
    return any(r.rule == rule and method in r.methods for r in current_app.url_map.iter_rules())


def nav_for(role: str) -> list[Page]:
    return [p for p in NAV if role in p.roles and (p.needs is None or has_rule(p.needs))]


def signed_in() -> dict | None:
    """The session if it is valid and its key still exists with a console role."""
    session = sessions().load()
    if not session:
        return None
    keys = current_app.extensions[SECURITY].keys.keys()
    key = next((k for k in keys if k.key_id == session.get("key_id")), None)
    if key is None or key.role not in CONSOLE_ROLES or key.role != session.get("role"):
        return None
    return session


@bp.before_request
def require_session():
    if request.endpoint in ("console.signin", "console.signin_post"):
        return None
    session = signed_in()
    if session is None:
        target = request.full_path if request.method == "GET" else url_for("console.overview")
        return redirect(url_for("console.signin", next=target.rstrip("?")))
    g.console = session
    return None


from . import views  # noqa: E402,F401  (registers the views on bp)
from . import controls  # noqa: E402,F401  (pins, rules, audit and experiments forms)
from .overview import ctr_row, report_rows  # noqa: E402

bp.add_app_template_filter(ctr_row, "ctr_row")
bp.add_app_template_filter(report_rows, "report_rows")
bp.add_app_template_global(has_rule, "has_rule")
