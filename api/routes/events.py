"""Reader events (impressions, clicks, reads, shares): all-or-nothing, durable before 200."""

from __future__ import annotations

from flask import Blueprint

from recommender.domain import ANONYMOUS, Interaction

from ..auth import WIDGET_ROLE, api_view, principal
from ..errors import ApiError
from .common import batch_records, engine, json_body, parse_all

bp = Blueprint("events", __name__)

MAX_EVENTS = 1000


@bp.post("/v1/events")
@api_view("site", reader=True, widget=True)
def post_events():
    """Store 1..1000 events. A retry of the same batch is safe: duplicates are counted, not stored.

    A reader token may only send events whose ``user_id`` is its own (403 otherwise, nothing stored).
    A public ``widget`` key may only send clicks of the anonymous reader that name their list.
    """
    records = batch_records(json_body(), "events", MAX_EVENTS, "event")
    events = parse_all(records, lambda r: Interaction.from_dict(r, strict=True), "event")
    who = principal()
    if who.kind == "token":
        foreign = [i for i, e in enumerate(events) if e.user_id != who.user_id]
        if foreign:
            raise ApiError(403, "forbidden", f"events {foreign[:10]} are for another reader than the token's; "
                                             "nothing was stored")
    if who.kind == "key" and who.role == WIDGET_ROLE:
        refused = [i for i, e in enumerate(events)
                   if e.event != "click" or e.user_id != ANONYMOUS or not e.list_id or e.position is None]
        if refused:
            raise ApiError(403, "forbidden", f"events {refused[:10]} are refused: a widget key may only send "
                                             f"clicks of user_id {ANONYMOUS!r} with list_id and position; "
                                             "nothing was stored")
    inserted, duplicates = engine().record_events(events)
    return {"accepted": inserted, "duplicates": duplicates}
