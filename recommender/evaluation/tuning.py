"""Parameter search on a validation split before the cut: sampled training parameters, then the
feed's blend weights searched on the replayed features (``newsrec tune``)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np

from recommender.domain import format_time
from recommender.params import TrainParams
from recommender.store import Store

from .protocols import FEED_WEIGHTS, Evaluation, Query
from .splitting import validation_cut

log = logging.getLogger(__name__)


def _group_metrics(group: np.ndarray, scores: np.ndarray, labels: np.ndarray, n_groups: int,
                   rng: np.random.Generator) -> dict[str, float]:
    """Mean AUC, MRR and nDCG@10 over impressions, vectorized (ties broken at random)."""
    order = np.lexsort((rng.random(scores.size), -scores, group))
    g, lab = group[order], labels[order]
    starts = np.searchsorted(g, np.arange(n_groups))
    sizes = np.bincount(g, minlength=n_groups)
    rank = np.arange(g.size) - starts[g] + 1  # 1 = best
    npos = np.bincount(g, weights=lab, minlength=n_groups)
    nneg = sizes - npos
    mrr = np.bincount(g, weights=lab / rank, minlength=n_groups) / npos
    asc = sizes[g] - rank + 1  # ascending rank for the Mann-Whitney U
    auc = (np.bincount(g, weights=lab * asc, minlength=n_groups) - npos * (npos + 1) / 2) / (npos * nneg)
    dcg = np.bincount(g, weights=lab * (rank <= 10) / np.log2(rank + 1), minlength=n_groups)
    ideal_ranks = np.arange(1, 11)
    idcg = np.array([np.sum(1.0 / np.log2(ideal_ranks[: int(min(p, 10))] + 1)) for p in npos])
    return {"auc": float(np.mean(auc)), "mrr": float(np.mean(mrr)), "ndcg@10": float(np.mean(dcg / idcg))}


def _objective(m: dict[str, float]) -> float:
    return (m["auc"] + m["mrr"] + m["ndcg@10"]) / 3.0


def _sample_params(base: TrainParams, rng: np.random.Generator) -> TrainParams:
    """One random point of the training search space (collaborative filtering, event weights, shapes)."""
    weights = replace(
        base.weights,
        read=float(rng.choice([1.0, 2.0, 3.0])),
        share=float(rng.choice([2.0, 4.0, 8.0])),
        half_life_days=[3.0, 7.0, 14.0, 30.0, None][int(rng.integers(5))],
    )
    ranking = replace(
        base.ranking,
        feed_fresh_half_life_hours=float(rng.choice([3.0, 6.0, 12.0, 24.0, 48.0])),
        trending_half_life_hours=float(rng.choice([1.0, 3.0, 6.0, 12.0, 24.0])),
        ctr_prior_strength=float(rng.choice([5.0, 10.0, 20.0, 50.0, 100.0])),
    )
    return replace(
        base,
        factors=int(rng.choice([32, 64, 128])),
        regularization=float(np.exp(rng.uniform(np.log(0.01), np.log(1.0)))),
        alpha=float(rng.choice([1.0, 3.0, 10.0, 30.0])),
        coread_half_life_days=float(rng.choice([1.0, 3.0, 7.0, 14.0])),
        weights=weights,
        ranking=ranking,
    )


def _blend_search(columns: list[tuple[Query, dict[str, np.ndarray]]], base: dict[str, float], samples: int,
                  rng: np.random.Generator) -> tuple[dict[str, float], dict[str, float]]:
    """Random then local search over the feed blend weights on recorded feature columns."""
    names = list(FEED_WEIGHTS)
    group = np.concatenate([np.full(q.items.size, g) for g, (q, _) in enumerate(columns)])
    labels = np.concatenate([q.labels for q, _ in columns])
    F = np.column_stack([np.concatenate([np.nan_to_num(c.get(n, np.zeros(q.items.size))) for q, c in columns])
                         for n in names])
    n_groups = len(columns)

    def evaluate_w(w: np.ndarray) -> dict[str, float]:
        return _group_metrics(group, F @ w, labels, n_groups, np.random.default_rng(0))

    best_w = np.array([base[n] for n in names])
    best_m = evaluate_w(best_w)
    best = _objective(best_m)
    n_random = samples // 2
    for i in range(samples):
        if i < n_random:
            w = np.where(rng.random(len(names)) < 0.3, 0.0, np.exp(rng.uniform(np.log(0.02), np.log(3.0), len(names))))
        else:  # perturb the best so far
            w = best_w * np.exp(rng.normal(0, 0.5, len(names)))
            w[rng.random(len(names)) < 0.1] = 0.0
            revive = (best_w == 0) & (rng.random(len(names)) < 0.1)
            w[revive] = np.exp(rng.uniform(np.log(0.02), np.log(1.0), int(revive.sum())))
        m = evaluate_w(w)
        if _objective(m) > best:
            best, best_w, best_m = _objective(m), w, m
    return {n: float(round(v, 4)) for n, v in zip(names, best_w)}, best_m


def tune(store: Store, cut: float, base: TrainParams | None = None, trials: int = 4, validation_days: float = 1.0,
         blend_samples: int = 300, seed: int = 0, max_queries: int | None = None,
         show_progress: bool = False) -> tuple[TrainParams, dict[str, Any]]:
    """Search training and blending parameters on a validation period before ``cut``.

    The validation period is the last ``validation_days`` of the training period; models are
    trained on what precedes it, and nothing at or after ``cut`` is ever loaded. Each trial
    trains one configuration (trial 0 is ``base``), replays the validation impressions
    through the engine once, then searches the feed blend weights on the recorded feature
    columns. Returns the best parameters and a report of every trial.
    """
    base = base or TrainParams()
    lg = store.load_interactions(end=cut)
    ts = lg.ts[~lg.history]
    if ts.size == 0:
        raise ValueError("no events before the cut: tuning needs interactions (ingest events first)")
    val_cut = validation_cut(ts, validation_days)
    rng = np.random.default_rng(seed)
    trials_out = []
    best: tuple[float, TrainParams, dict[str, float]] | None = None
    for trial in range(max(1, trials)):
        params = base if trial == 0 else _sample_params(base, rng)
        t0 = time.perf_counter()
        with Evaluation(store, val_cut, end=cut, variants={"newsrec": params}, baselines=[], seed=seed,
                        show_progress=show_progress, ablations=False) as ev:
            ev.prepare()
            if not ev.queries("replay", max_queries):
                raise ValueError("the validation period has no impression with a click; tuning needs impressions "
                                 "and clicks (or a longer --validation-days)")
            ev.run("replay", max_queries=max_queries, keep_columns=True)
        base_w = {n: getattr(params.ranking, FEED_WEIGHTS[n]) for n in FEED_WEIGHTS}
        blend, metrics = _blend_search(ev.columns_, base_w, blend_samples, rng)
        default_metrics = _blend_search(ev.columns_, base_w, 0, rng)[1]
        chosen = replace(params, ranking=replace(params.ranking, **{FEED_WEIGHTS[n]: w for n, w in blend.items()}))
        record = {"trial": trial, "objective": round(_objective(metrics), 4),
                  "validation": {k: round(v, 4) for k, v in metrics.items()},
                  "validation_with_trial_weights": {k: round(v, 4) for k, v in default_metrics.items()},
                  "n_validation": len(ev.columns_), "seconds": round(time.perf_counter() - t0, 1),
                  "params": chosen.to_dict()}
        trials_out.append(record)
        log.info("trial %d: objective %.4f %s", trial, record["objective"], record["validation"])
        if best is None or record["objective"] > best[0]:
            best = (record["objective"], chosen, metrics)
    assert best is not None
    report = {"cut": format_time(cut), "validation_start": format_time(val_cut), "trials": trials_out,
              "best_trial": max(trials_out, key=lambda r: r["objective"])["trial"], "objective":
              "mean of AUC, MRR and nDCG@10 over validation impressions (replay)"}
    return best[1], report
