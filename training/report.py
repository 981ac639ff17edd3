"""Evaluation reports: ``report.json`` (the machine-readable shape scripts rely on),
``report.md`` (tables for people) and PNG plots (matplotlib, Agg backend, no display).

``report.json`` is ``{"datasets": {NAME: {"protocol", "n_test", "models": {MODEL: {METRIC: v}},
...}}}`` plus run metadata; each dataset may carry ``details`` (the data behind the plots), so
the plots can be redrawn from the JSON alone.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ACCURACY_COLUMNS = ("auc", "mrr", "ndcg@5", "ndcg@10", "recall@5", "recall@10", "recall@20", "ndcg@20", "hit@5",
                    "hit@10", "hit@20", "same_category@10")
TABLE_COLUMNS = {  # the markdown table; report.json keeps every metric
    "impressions": ("auc", "mrr", "ndcg@5", "ndcg@10"),
    "replay": ("auc", "mrr", "ndcg@5", "ndcg@10"),
    "topk": ("recall@5", "recall@10", "recall@20", "ndcg@10", "hit@10", "mrr"),
    "related": ("recall@5", "recall@10", "recall@20", "ndcg@10", "hit@10", "mrr", "same_category@10"),
}
BEYOND_COLUMNS = ("coverage", "novelty", "diversity", "category_entropy", "rank_biased_entropy", "freshness_hours",
                  "popular_share", "rbo_scored_vs_served", "rbo_vs_newsrec")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "dataset"


def environment() -> dict[str, str]:
    import scipy
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "machine": platform.machine()}


def new_report(command: str, **meta: Any) -> dict[str, Any]:
    """An empty report with run metadata (the code version among it, see
    :mod:`recommender.models.provenance`); fill ``report["datasets"][name]``."""
    from recommender.models.provenance import code_version

    return {"datasets": {}, "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command, "environment": environment(), "code_version": code_version(), **meta}


def write_report(report: dict[str, Any], out: str | Path, plots: bool = True) -> list[Path]:
    """Write ``report.json``, ``report.md`` and (with ``plots``) one PNG per plot into ``out``.

    Returns the written paths.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    images: dict[str, list[str]] = {}
    if plots:
        for name, entry in report.get("datasets", {}).items():
            images[name] = [p.name for p in plot_dataset(name, entry, out)]
            written += [out / p for p in images[name]]
    path = out / "report.json"
    path.write_text(json.dumps(json_safe(report), indent=2, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    written.append(path)
    md = out / "report.md"
    md.write_text(markdown(report, images), encoding="utf-8")
    written.append(md)
    return written


def json_safe(value: Any) -> Any:
    """NaN and inf become None (JSON has no NaN); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- markdown ---------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def model_table(entry: dict[str, Any], columns: tuple[str, ...] | None = None) -> str:
    """A markdown table: one row per model, the dataset's metrics as columns (bold = best)."""
    models = entry.get("models", {})
    if not models:
        return "_no model was evaluated_\n"
    present = {m for values in models.values() for m in values}
    if columns is None:
        accuracy = TABLE_COLUMNS.get(entry.get("protocol"), ACCURACY_COLUMNS)
        columns = tuple(c for c in accuracy if c in present) + tuple(
            c for c in BEYOND_COLUMNS if c in present and any(v.get(c) is not None for v in models.values()))
    best = {}
    for c in columns:
        if c in ACCURACY_COLUMNS:
            vals = [v.get(c) for v in models.values() if v.get(c) is not None]
            best[c] = max(vals) if vals else None
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in models.items():
        cells = []
        for c in columns:
            text = _fmt(values.get(c))
            if best.get(c) is not None and values.get(c) == best[c]:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any], images: dict[str, list[str]] | None = None) -> str:
    images = images or {}
    lines = ["# newsrec offline evaluation", ""]
    lines.append(f"Generated {report.get('generated_at', '?')} by `{report.get('command', '?')}`.")
    env = report.get("environment")
    if env:
        lines.append("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + ".")
    if report.get("code_version"):
        from recommender.models.provenance import describe

        lines.append(f"Code: {describe(report['code_version'])}."
                     + (f" Data fingerprint: `{report['data_fingerprint']}`." if report.get("data_fingerprint") else ""))
    for note in report.get("notes", []):
        lines += ["", f"> {note}"]
    lines.append("")
    lines.append("Accuracy columns: higher is better (bold = best row). Beyond accuracy on the top-10 lists: "
                 "coverage (share of candidates ever listed), novelty (mean self-information, bits), diversity "
                 "(1 - mean pairwise text cosine), category entropy (bits), freshness_hours (median age when "
                 "listed), popular_share (share of the pre-cut top-1% most read).")
    for name, entry in report.get("datasets", {}).items():
        lines += ["", f"## {name}: protocol `{entry.get('protocol')}`, {entry.get('n_test')} test queries", ""]
        if entry.get("skipped"):
            lines += [f"Skipped: {entry['skipped']}", ""]
            continue
        window = entry.get("data_window", {})
        if window:
            lines.append("Data window: " + ", ".join(f"{k} {_fmt(v)}" for k, v in window.items()) + ".")
        settings = {k: v for k, v in entry.get("settings", {}).items() if v is not None}
        if settings:
            lines.append("Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".")
        for note in entry.get("notes", []):
            lines.append(f"Note: {note}")
        lines += ["", model_table(entry)]
        gains = entry.get("gain_over_best_baseline", {})
        if gains:
            lines += ["Gain of `newsrec` over the best baseline per metric:", "",
                      "| metric | best baseline | baseline | newsrec | gain |", "|---|---|---|---|---|"]
            for metric, g in gains.items():
                lines.append(f"| {metric} | {g['best_baseline']} | {_fmt(g['baseline'])} | {_fmt(g['newsrec'])} | "
                             f"{_fmt(g['gain'])} |")
            lines.append("")
        sig = entry.get("significance", {})
        if sig:
            lines += ["Paired bootstrap (2000 resamples) of the per-query difference:", "",
                      "| comparison | metric | mean diff | 95% CI | p (diff <= 0) |", "|---|---|---|---|---|"]
            for comparison, metrics in sig.items():
                for metric, b in metrics.items():
                    lines.append(f"| {comparison} | {metric} | {_fmt(b.get('mean_diff'))} | "
                                 f"[{_fmt(b.get('ci_low'))}, {_fmt(b.get('ci_high'))}] | {_fmt(b.get('p_value'))} |")
            lines.append("")
        for image in images.get(name, []):
            lines.append(f"![{image}]({image})")
        if images.get(name):
            lines.append("")
    return "\n".join(lines) + "\n"


# -- plots ------------------------------------------------------------------------------------
def plot_dataset(name: str, entry: dict[str, Any], out: Path) -> list[Path]:
    """Metric vs K, popularity-bias curve, freshness histogram and per-category accuracy."""
    details = entry.get("details")
    if not details:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slug = _slug(name)
    paths = []

    def save(fig, suffix: str) -> None:
        path = out / f"{slug}-{suffix}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    at_k = details.get("at_k", {})
    if at_k.get("values"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for model, values in at_k["values"].items():
            ks = np.arange(1, len(values) + 1)
            ax.plot(ks, [np.nan if v is None else v for v in values], marker="o", ms=3, label=model,
                    lw=2.5 if model == "newsrec" else 1.2)
        ax.set_xlabel("K")
        ax.set_ylabel(f"{at_k.get('metric', 'metric')}@K")
        ax.set_title(f"{name}: {at_k.get('metric')}@K per model")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        save(fig, "metric-at-k")
    pop = details.get("popularity_curve", {})
    if pop.get("share"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        bins = pop.get("bins", [])
        for model, share in pop["share"].items():
            ax.plot(range(len(share)), share, marker="o", ms=3, label=model,
                    lw=2.5 if model == "newsrec" else 1.2, ls="--" if model.startswith("(") else "-")
        ax.set_xticks(range(len(bins)))
        ax.set_xticklabels(bins, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share of listed articles")
        ax.set_title(f"{name}: popularity bias (pre-cut readers per article)")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        save(fig, "popularity-bias")
    fresh = details.get("freshness_hist", {})
    if fresh.get("counts"):
        edges = fresh["edges_hours"]
        labels = [f"{a:g}-{b:g}" if b is not None else f"> {a:g}" for a, b in zip(edges[:-1], edges[1:])]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        models = list(fresh["counts"])
        width = 0.8 / max(len(models), 1)
        for j, model in enumerate(models):
            counts = np.asarray(fresh["counts"][model], dtype=float)
            share = counts / max(counts.sum(), 1)
            ax.bar(np.arange(len(share)) + j * width, share, width, label=model)
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2)
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("article age when listed (hours)")
        ax.set_ylabel("share of listed articles")
        ax.set_title(f"{name}: freshness of the top-10 lists")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        save(fig, "freshness")
    per_cat = details.get("per_category", {})
    if per_cat.get("values") and any(per_cat["values"].values()):
        models = [m for m, v in per_cat["values"].items() if v]
        cats = list(per_cat["values"][models[0]])
        fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(cats) + 3), 4.5))
        width = 0.8 / max(len(models), 1)
        for j, model in enumerate(models):
            vals = [per_cat["values"][model].get(c) for c in cats]
            ax.bar(np.arange(len(cats)) + j * width, [np.nan if v is None else v for v in vals], width, label=model)
        ax.set_xticks(np.arange(len(cats)) + 0.4 - width / 2)
        counts = per_cat.get("queries", {})
        ax.set_xticklabels([f"{c} ({counts.get(c, '?')})" for c in cats], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(per_cat.get("metric", "metric"))
        ax.set_title(f"{name}: {per_cat.get('metric')} by category")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        save(fig, "per-category")
    return paths
