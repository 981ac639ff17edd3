"""How the portal says when an article was published: "5 menit lalu", "16 jam lalu", "kemarin".

Pure functions of two epoch times, so the widget, the reader pages and the tests agree.
"""

from __future__ import annotations

from datetime import datetime

from recommender.domain import WIB, ValidationError, parse_time

MINUTE, HOUR, DAY = 60.0, 3600.0, 86_400.0
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember")
DAYS_IN_WORDS = 7  # "6 hari lalu" is the last relative form; from a week on, the date


def tanggal(ts: float) -> str:
    """The date in WIB as the portal prints it: ``27 November 2026``."""
    dt = datetime.fromtimestamp(ts, tz=WIB)
    return f"{dt.day} {MONTHS[dt.month - 1]} {dt.year}"


def waktu_relatif(published_at: float, now: float) -> str:
    """``published_at`` seen from ``now`` in Indonesian.

    Under a minute (or a clock a little ahead): "baru saja"; then minutes, hours up to 24 h,
    "kemarin" up to 48 h, days up to a week, the date beyond.
    """
    age = now - published_at
    if age < MINUTE:
        return "baru saja"
    if age < HOUR:
        return f"{int(age // MINUTE)} menit lalu"
    if age < DAY:
        return f"{int(age // HOUR)} jam lalu"
    if age < 2 * DAY:
        return "kemarin"
    if age < DAYS_IN_WORDS * DAY:
        return f"{int(age // DAY)} hari lalu"
    return tanggal(published_at)


WIB_OFFSET_HOURS = 7


def epoch(value) -> float | None:
    """Epoch seconds of a time given as seconds or an ISO-8601 string (None when neither)."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value, "time")
    except ValidationError:
        return None
