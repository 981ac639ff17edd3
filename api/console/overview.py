"""What the console's overview shows: the live model, the window, recent traffic as a chart.

Traffic is read from the store's interaction log of the last :data:`HOURS` hours (served lists
expanded into impressions), so it counts every worker and replica, not this process.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np

from recommender.domain import EVENT_CODES

from ..web.relative_time import WIB_OFFSET_HOURS

HOURS = 6
REPORT_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.png")  # plots the console serves from a report run
PER_MINUTE_SPAN = 600.0  # events per minute over the last ten minutes
CHART_W, CHART_H, CHART_PAD = 560, 160, 28


def traffic(store, now: float | None = None, hours: int = HOURS) -> dict:
    """Impressions, clicks and click-through per clock hour, and events per minute lately."""
    now = time.time() if now is None else now
    start = math.floor(now / 3600.0) * 3600.0 - (hours - 1) * 3600.0
    log_ = store.load_interactions(start=start, end=now + 1.0)
    hour = np.clip(((log_.ts - start) // 3600.0).astype(np.int64), 0, hours - 1) if len(log_) else np.zeros(0, int)
    shown = np.bincount(hour[log_.event == EVENT_CODES["impression"]], minlength=hours)
    clicked = np.bincount(hour[log_.event == EVENT_CODES["click"]], minlength=hours)
    recent = (log_.ts >= now - PER_MINUTE_SPAN) & (log_.event != EVENT_CODES["impression"])
    rows = [{"hour": start + 3600.0 * h, "label": f"{int((start // 3600 + h + WIB_OFFSET_HOURS) % 24):02d}",
             "impressions": int(shown[h]), "clicks": int(clicked[h]),
             "ctr": (float(clicked[h]) / float(shown[h])) if shown[h] else None} for h in range(hours)]
    return {"hours": rows, "events_per_minute": float(recent.sum()) / (PER_MINUTE_SPAN / 60.0),
            "impressions": int(shown.sum()), "clicks": int(clicked.sum())}


def by_position(store, now: float | None = None, hours: int = HOURS, positions: int = 10) -> list[dict]:
    """Click-through per position of each kind of list (strategy, variant) served in the last hours:
    ``[{"name", "rows": [{"label", "impressions", "clicks", "ctr"}]}]``; None if the store cannot say."""
    now = time.time() if now is None else now
    try:
        found = store.list_click_through(since=now - hours * 3600.0)
    except NotImplementedError:
        return None
    groups: dict[tuple, list[dict]] = {}
    for row in found:
        if row["position"] < positions:
            groups.setdefault((row["strategy"], row["variant"]), []).append(
                {"label": str(row["position"] + 1), "impressions": row["impressions"], "clicks": row["clicks"],
                 "ctr": row["clicks"] / row["impressions"] if row["impressions"] else None})
    return [{"name": f"{strategy or 'unknown'}" + (f" / variant {variant}" if variant else ""), "rows": rows}
            for (strategy, variant), rows in groups.items()]


def ctr_chart(rows: list[dict]) -> dict:
    """Bars of click-through (one per row, labelled ``row["label"]``), as coordinates an inline SVG
    template draws (no script)."""
    values = [r["ctr"] or 0.0 for r in rows]
    top = max(values + [0.01])
    width = (CHART_W - 2 * CHART_PAD) / max(len(rows), 1)
    bars = []
    for k, (row, value) in enumerate(zip(rows, values)):
        height = (CHART_H - 2 * CHART_PAD) * value / top
        bars.append({"x": round(CHART_PAD + k * width + 2, 1), "w": round(width - 4, 1),
                     "y": round(CHART_H - CHART_PAD - height, 1), "h": round(height, 1), "row": row})
    return {"bars": bars, "top": top, "width": CHART_W, "height": CHART_H, "pad": CHART_PAD}


def training_report(models_dir: Path, version: str | None) -> dict | None:
    """The live bundle's training report (counts, timings), if the bundle holds one."""
    if not version:
        return None
    for name in ("report.json", "documents.json"):
        path = Path(models_dir) / version / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return data.get("report", data) if isinstance(data, dict) else None
    return None


def evaluation_report(home: Path) -> dict | None:
    """The newest ``newsrec evaluate`` report under ``$NEWSREC_HOME/reports/<run>/``, with the names
    of its plots (PNG files beside ``report.json``)."""
    try:
        found = sorted((Path(home) / "reports").glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return None
    for path in reversed(found[-1:]):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        plots = sorted(p.name for p in path.parent.glob("*.png") if REPORT_FILE.fullmatch(p.name))
        return {"path": str(path), "run": path.parent.name, "report": report, "plots": plots}
    return None


def ctr_row(row: dict) -> dict:
    """An hour of :func:`traffic` as table cells."""
    hour = int((row["hour"] // 3600 + WIB_OFFSET_HOURS) % 24)
    return {"when": f"{hour:02d}:00", "impressions": row["impressions"], "clicks": row["clicks"],
            "ctr": f"{100 * row['ctr']:.2f} %" if row["ctr"] is not None else None}


def report_rows(report: dict, limit: int = 60) -> list[dict]:
    """A (nested) JSON report as figure/value rows, dotted keys, at most ``limit``."""
    rows: list[dict] = []

    def walk(prefix: str, value) -> None:
        if len(rows) >= limit:
            return
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list):
            rows.append({"k": prefix, "v": ", ".join(map(str, value[:10])) + (" ..." if len(value) > 10 else "")})
        else:
            rows.append({"k": prefix, "v": f"{value:.4g}" if isinstance(value, float) else value})

    walk("", report)
    return rows
