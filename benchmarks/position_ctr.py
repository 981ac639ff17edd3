"""Position-corrected click-through measured on the replay protocol (MIND sample, real click logs).

The live click-through feature of the feed (``ranking.ctr_lift``) divides an article's decayed
clicks either by its decayed impressions (uncorrected) or by the clicks expected at the positions
where it was shown (``RankingParams.ctr_position_corrected``; the position curve is fitted at
training from the logged impressions and clicks). The test day is replayed through the live engine
once per setting, plus the feature switched off for scale. MIND impressions carry no display order:
the position is the order of the impression list in ``behaviors.tsv``, what ``ingest mind`` stores.

A second measurement needs no data: lists ranked by a production-like policy (better articles
higher, with noise) and clicked under the position-biased click model of
``recommender.experiments.simulation`` (examination ``(k + 1) ** -0.8``); how well does each
counter's click-through order articles by their true attractiveness (Spearman), and how many of
the truly best 10 % are among its top 10 %? Prints tables and writes ``DIR/position_ctr.json``.

Usage::

    python benchmarks/position_ctr.py --data ../shared/data --out DIR [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quality import MIND, SEED, metric_rows, replay_variants  # noqa: E402
from recommender.domain import EVENT_CODES  # noqa: E402
from recommender.experiments.simulation import ClickModel  # noqa: E402
from recommender.models.popularity import DecayedCounters  # noqa: E402
from recommender.models.fitting import fit_position_curve  # noqa: E402
from recommender.params import TrainParams  # noqa: E402
from recommender.serving.ranking import ctr_lift  # noqa: E402

METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")


def variants() -> dict[str, TrainParams]:
    base = TrainParams()

    def ranking(**over) -> TrainParams:
        return replace(base, ranking=replace(base.ranking, **over))

    # rows are reported only under names that start with "newsrec"
    return {
        "newsrec (position-corrected ctr, default)": base,
        "newsrec-ctr-uncorrected": ranking(ctr_position_corrected=False),
        "newsrec-ctr-off": ranking(feed_ctr=0.0),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def synthetic(seed: int = SEED, n_articles: int = 300, sessions: int = 20_000, by_attractiveness: float = 1.0,
              by_placement: float = 0.0) -> dict:
    """Plain and position-corrected click-through against the truth of a position-biased click model.

    Lists rank each pool by ``by_attractiveness * log(attractiveness) + by_placement * placement``
    plus Gumbel noise, where ``placement`` is a per-article standard normal independent of
    attractiveness (what freshness, editors' placement or other features do to a slot)."""
    rng = np.random.default_rng(seed)
    model = ClickModel()
    quality = rng.lognormal(0.0, 0.5, size=n_articles)
    placement = rng.normal(size=n_articles)
    pool = np.stack([rng.choice(n_articles, model.pool_size, replace=False) for _ in range(sessions)])
    score = (by_attractiveness * np.log(quality[pool]) + by_placement * placement[pool]
             + rng.gumbel(size=pool.shape))
    shown = np.take_along_axis(pool, np.argsort(-score, axis=1)[:, : model.list_size], axis=1)  # (S, k)
    p = np.minimum(1.0, model.base * quality[shown]) * model.examine()
    clicked = rng.random(p.shape) < p
    positions = np.broadcast_to(np.arange(model.list_size), shown.shape)
    item = np.concatenate([shown.ravel(), shown[clicked]])
    position = np.concatenate([positions.ravel(), positions[clicked]])
    event = np.concatenate([np.full(shown.size, EVENT_CODES["impression"]),
                            np.full(int(clicked.sum()), EVENT_CODES["click"])]).astype(np.int8)
    ts = np.zeros(item.size)
    curve = fit_position_curve(event, position)
    counters = DecayedCounters.from_events(item, event, ts, n_articles, 0.0, 6.0, position=position, curve=curve)
    seen = np.flatnonzero(counters.impressions > 0)
    truth = quality[seen]
    best = set(seen[np.argsort(-truth)[: len(seen) // 10]].tolist())
    out = {"curve": np.round(curve[: model.list_size], 3).tolist(),
           "true_examination": np.round(model.examine(), 3).tolist(), "articles": int(seen.size)}
    for name, corrected in (("uncorrected", False), ("position-corrected", True)):
        lift = ctr_lift(counters, seen, TrainParams().ranking.ctr_prior_strength, position_corrected=corrected)
        top = set(seen[np.argsort(-lift, kind="stable")[: len(seen) // 10]].tolist())
        out[name] = {"spearman": round(_spearman(lift, truth), 4), "top10pct_recall": round(len(top & best) / len(best), 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="300 sampled impressions")
    parser.add_argument("--synthetic-only", action="store_true", help="only the click-model measurement")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    policies = {"ranked by attractiveness": (1.0, 0.0), "placed by other signals": (0.0, 1.0),
                "both": (1.0, 1.0), "both, placement strong": (1.0, 2.0)}
    sim = {label: synthetic(by_attractiveness=a, by_placement=b) for label, (a, b) in policies.items()}
    print("Synthetic position-biased clicks (300 articles, 20,000 lists of 10 from pools of 30):")
    for label, result in sim.items():
        print(f"fitted curve, {label}: {result['curve']}")
    print(f"true examination: {sim['both']['true_examination']}")
    print("| lists ranked | counter | Spearman with true attractiveness | recall of the best 10 % |")
    print("|---|---|---|---|")
    for label, result in sim.items():
        for name in ("uncorrected", "position-corrected"):
            print(f"| {label} | {name} | {result[name]['spearman']:.4f} | {result[name]['top10pct_recall']:.4f} |")
    (args.out / "position_ctr_synthetic.json").write_text(json.dumps(sim, indent=2))
    if args.synthetic_only:
        return 0
    folder = args.data / MIND
    if not folder.exists():
        print(f"{folder} not found", file=sys.stderr)
        return 1
    def training_curve(store, cut):
        log_ = store.load_interactions(end=cut)
        return fit_position_curve(log_.event, log_.position)

    entry, seconds, curve = replay_variants(folder, variants(), args.quick, prefix="newsrec-posctr-",
                                            before=training_curve)
    print(f"position curve (training log, positions 1-10): {np.round(curve[:10], 3).tolist()}")
    print(f"MIND sample, replay protocol: {entry['n_test']} impressions ({seconds:.0f} s)")
    rows = metric_rows(entry, variants(), METRICS)
    (args.out / "position_ctr.json").write_text(json.dumps(
        {"n_test": entry["n_test"], "curve": curve.tolist(), "models": rows, "full": entry["models"]},
        indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
