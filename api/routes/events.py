"""Reader events (impressions, clicks, reads, shares): all-or-nothing, durable before 200."""

from __future__ import annotations

from flask import Blueprint

from recommender.domain import Interaction

from ..auth import api_view, principal
from ..errors import ApiError
from .common import batch_records, engine, json_body, parse_all

bp = Blueprint("events", __name__)

MAX_EVENTS = 1000


@bp.post("/v1/events")
@api_view("site", reader=True)
def post_events():
    """Store 1..1000 events. A retry of the same batch is safe: duplicates are counted, not stored.

    A reader token may only send events whose ``user_id`` is its own (403 otherwise, nothing stored).
    """
    records = batch_records(json_body(), "events", MAX_EVENTS, "event")
    events = parse_all(records, lambda r: Interaction.from_dict(r, strict=True), "event")
    who = principal()
    if who.kind == "token":
        foreign = [i for i, e in enumerate(events) if e.user_id != who.user_id]
        if foreign:
            raise ApiError(403, "forbidden", f"events {foreign[:10]} are for another reader than the token's; "
                                             "nothing was stored")
    inserted, duplicates = engine().record_events(events)
    return {"accepted": inserted, "duplicates": duplicates}
