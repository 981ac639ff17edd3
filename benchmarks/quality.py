"""Recommendation quality on real public data that the team did not write.

Each data set is ingested into a fresh temporary store and evaluated with
:mod:`recommender.evaluation`, newsrec beside every baseline that applies, in one run:

* ``mind-sample`` (``../shared/data/mind-small-sample``, Microsoft News click logs): the
  last day is the test period. Protocol ``impressions`` (batch: models frozen at the cut) is
  reported as ``mind-sample`` and protocol ``replay`` (the test day replayed in time order
  through the live parts, each impression scored with the state just before it) as
  ``mind-sample-replay``. newsrec runs with parameters chosen by ``tune`` on a validation day
  carved from the training period (the test day is never seen), and with the defaults
  (``newsrec-defaults``). ``newsrec-learned`` is newsrec's served model with the learned ranking
  stage (:mod:`recommender.evaluation.learning`): trained on the impressions of the days before the
  cut replayed through the engine, its setting chosen on the last of them (``--learned-days``).
* ``id-news-editor-links`` (``../shared/data/id-news-kompas-tribun-2023/tribunnews.csv``, 898
  Indonesian articles): protocol ``related``; ground truth are the editor's in-body
  "Baca juga: <title>" links matched to corpus titles. The links are stripped from every body
  before it is stored, so no model can read the target's title in the anchor.
  ``newsrec-mmr-<lambda>`` rows are the same model with MMR re-ranking instead of the diversity
  caps (``RankingParams.diversity = "mmr"``), beside the caps' ``newsrec``.

A data set whose folder is absent is skipped with a message. Writes ``DIR/report.json``
(``{"datasets": {NAME: {"protocol", "n_test", "models": {MODEL: {METRIC: value}}}}}``),
``DIR/report.md`` and plots.

Usage::

    python benchmarks/quality.py --data ../shared/data --out DIR [--quick]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.domain import Article  # noqa: E402
from recommender.evaluation.protocols import Evaluation, choose_cut, editor_link_pairs  # noqa: E402
from recommender.evaluation.learning import choose_ranker, feature_ablation, replay_rows, with_learned  # noqa: E402
from recommender.evaluation.splitting import validation_cut  # noqa: E402
from recommender.evaluation.tuning import tune  # noqa: E402
from recommender.datasets.ingest import import_mind, scraped_article, scraped_rows, scraped_time  # noqa: E402
from recommender.params import RankingParams, TrainParams  # noqa: E402
from recommender.store import SQLiteStore  # noqa: E402
from training.report import model_table, new_report, write_report  # noqa: E402

log = logging.getLogger("quality")

MIND = "mind-small-sample"
ID_NEWS = "id-news-kompas-tribun-2023"
ID_FILE = "tribunnews.csv"  # a superset of kompas.csv (see its PROVENANCE.md)
SEED = 0
MMR_LAMBDAS = (0.95, 0.9, 0.7, 0.5)  # MMR diversity beside the caps on the editors' links


# --- MIND ------------------------------------------------------------------------------------
def replay_variants(folder: Path, variants: dict, quick: bool = False, prefix: str = "newsrec-replay-",
                    before=None) -> tuple[dict, float, object]:
    """The MIND sample's replay protocol for ``variants`` (name -> TrainParams) and no baselines:
    ``(entry, seconds, before(store, cut))``; ``before`` reads the store ahead of the replay."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        store = SQLiteStore(Path(tmp) / "mind.sqlite3", synchronous="OFF")
        ingest_mind(store, folder)
        cut = choose_cut(store, 1.0)
        extra = before(store, cut) if before is not None else None
        t0 = time.perf_counter()
        with Evaluation(store, cut, variants=variants, baselines=[], seed=SEED, ablations=False) as ev:
            ev.prepare()
            entry = ev.run("replay", max_queries=300 if quick else None)
        store.close()
    return entry, time.perf_counter() - t0, extra


def metric_rows(entry: dict, names, metrics) -> dict:
    """``{name: {metric: value or None}}`` of a protocol entry, printed as a Markdown table."""
    rows = {name: {m: entry["models"].get(name, {}).get(m) for m in metrics} for name in names}
    print("| setting | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join("-" if values[m] is None else f"{values[m]:.4f}" for m in metrics) + " |")
    return rows


def ingest_mind(store: SQLiteStore, folder: Path) -> dict:
    """MIND into the store as ``newsrec ingest mind`` puts it: news ids without text (in impressions
    or click histories) become placeholders with no text at all (``import_mind(stub_missing=True)``)."""
    reports = import_mind(store, folder, show_progress=False, stub_missing=True)
    lg = store.load_interactions()
    ids = list(dict.fromkeys(lg.article_ids.values()))
    have = store.get_articles(ids)
    blank = sum(1 for aid in ids if aid not in have or not have[aid].title)
    return {"news": reports[0].accepted, "events": reports[1].accepted, "rejected": sum(r.rejected for r in reports),
            "placeholders": blank, "with_text": len(ids) - blank}


def fit_learned(store, cut: float, params: TrainParams, days: float, max_queries: int | None, progress: bool):
    """The learned ranking stage for the test day: rows replayed over ``days`` before the cut,
    the setting chosen on the last of them, refitted on all; returns (ranker, report)."""
    lg = store.load_interactions(end=cut)
    ts = lg.ts[~lg.history]
    span = (cut - float(ts.min())) / 86_400.0
    # whole days back from the cut, leaving the first (partial) day to train the replay's model
    data, info = replay_rows(store, cut, params, min(days, max(1.0, math.ceil(span) - 1.5)), seed=SEED,
                             max_queries=max_queries, show_progress=progress)
    validation_start = validation_cut(ts, 1.0)
    ranker, report = choose_ranker(data, validation_start, seed=SEED)
    report.update(info)
    report["ablation_on_validation_day"] = feature_ablation(data, validation_start, report["chosen"]["settings"])
    return ranker, report


def print_learned(report: dict) -> None:
    """The learned stage's validation-day tables: every setting tried, and the feature-group ablation."""
    print("| learned stage on the validation day | AUC | MRR | nDCG@10 |\n|---|---|---|---|")
    rows = [(name, m) for name, m in report["reference"].items()]
    rows += [(f"{c['settings']} / position {c['position_bias']} / weighting {c.get('list_weighting', 'none')}",
              c["validation"]) for c in report["candidates"]]
    rows += list(report.get("ablation_on_validation_day", {}).items())
    for name, m in rows:
        print(f"| {name} | {m['auc']:.4f} | {m['mrr']:.4f} | {m['ndcg@10']:.4f} |")
    print(f"chosen: {report['chosen']}", flush=True)


def run_mind(folder: Path, quick: bool, trials: int, tune_enabled: bool, progress: bool,
             learned_days: float = 4.0) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="newsrec-quality-mind-") as tmp:
        store = SQLiteStore(Path(tmp) / "mind.sqlite3", synchronous="OFF")
        t0 = time.perf_counter()
        ingested = ingest_mind(store, folder)
        print(f"mind-sample: ingested {ingested} in {time.perf_counter() - t0:.0f}s", flush=True)
        cut = choose_cut(store, 1.0)
        max_queries = 300 if quick else None
        defaults = TrainParams()
        variants = {"newsrec": defaults}
        tuning = None
        if tune_enabled:
            t0 = time.perf_counter()
            tuned, tuning = tune(store, cut, defaults, trials=trials, validation_days=1.0,
                                 blend_samples=150 if quick else 400, seed=SEED, max_queries=max_queries,
                                 show_progress=progress)
            print(f"mind-sample: tuned on {tuning['validation_start']} .. {tuning['cut']} "
                  f"({len(tuning['trials'])} trials, {time.perf_counter() - t0:.0f}s); best trial "
                  f"{tuning['best_trial']}", flush=True)
            variants = {"newsrec": tuned, "newsrec-defaults": defaults}
        learned = None
        if learned_days:
            t0 = time.perf_counter()
            learned = fit_learned(store, cut, variants["newsrec"], learned_days, max_queries, progress)
            print(f"mind-sample: learned stage from {learned[1]['rows']} in {time.perf_counter() - t0:.0f}s; chosen "
                  f"{learned[1]['chosen']}", flush=True)
            print_learned(learned[1])
        out = {}
        with Evaluation(store, cut, variants=variants, seed=SEED, show_progress=progress) as ev:
            ev.prepare()
            if learned is not None:  # the served model of `newsrec` plus the learned ranking stage
                ev.add_model("newsrec-learned", with_learned(ev.models_["newsrec"], learned[0]))
            for protocol, name in (("impressions", "mind-sample"), ("replay", "mind-sample-replay")):
                t0 = time.perf_counter()
                entry = ev.run(protocol, max_queries=max_queries)
                entry["source"] = "mind-sample"
                entry["ingest"] = ingested
                entry["notes"] = [
                    "MIND gives no publication time: an article is dated at its first impression in the log.",
                    f"{ingested['placeholders']} of {ingested['placeholders'] + ingested['with_text']} news ids "
                    "have no text in this sample (placeholders), so text features barely apply.",
                ]
                if learned is not None:
                    entry["learned_stage"] = learned[1]
                    entry["notes"].append(
                        "newsrec-learned = newsrec's served model with the learned ranking stage: a ranker fitted on "
                        "the features the engine computed for every impression before the cut (replayed), setting "
                        "and position-bias handling chosen on the last day before the cut.")
                if tuning is not None:
                    entry["tuning"] = {k: tuning[k] for k in ("cut", "validation_start", "best_trial", "objective")}
                    entry["tuning"]["trials"] = [{k: t[k] for k in ("trial", "objective", "validation",
                                                                    "validation_with_trial_weights", "seconds")}
                                                 for t in tuning["trials"]]
                    entry["notes"].append("newsrec = parameters chosen by `tune` on the validation day before the "
                                          "cut; newsrec-defaults = TrainParams() defaults.")
                out[name] = entry
                print(f"{name}: {entry['n_test']} impressions in {time.perf_counter() - t0:.0f}s", flush=True)
        store.close()
    return out


# --- Indonesian news with editor links ----------------------------------------------------------
def read_id_news(path: Path) -> tuple[list[Article], dict[str, set[str]], dict]:
    """Articles as ``newsrec ingest id-news`` reads them (editor links stripped from bodies) and the
    "Baca juga" pairs by article id."""
    numbered, undated = scraped_rows(path)
    rows = [row for _, row in numbered]
    articles = [scraped_article(row, undated) for row in rows]
    pairs = editor_link_pairs([r["Title"] for r in rows], [r["Body_Text"] for r in rows])
    links = {articles[i].article_id: {articles[j].article_id for j in targets} for i, targets in pairs.items()}
    leaks = sum("baca juga" in a.body.lower() for a in articles)
    stats = {"articles": len(articles), "anchors": len(links), "pairs": sum(len(t) for t in links.values()),
             "missing_dates": sum(scraped_time(r) is None for r in rows),
             "bodies_still_with_baca_juga": leaks}
    return articles, links, stats


def run_id_news(path: Path, progress: bool) -> dict[str, dict]:
    articles, links, stats = read_id_news(path)
    print(f"id-news-editor-links: {stats}", flush=True)
    with tempfile.TemporaryDirectory(prefix="newsrec-quality-id-") as tmp:
        store = SQLiteStore(Path(tmp) / "id.sqlite3", synchronous="OFF")
        store.upsert_articles(articles)
        cut = max(a.published_at for a in articles) + 60.0
        # the caps (newsrec, the default) beside MMR re-ranking at a few lambdas, same models and anchors
        variants = {"newsrec": TrainParams(), **{
            f"newsrec-mmr-{lam}": TrainParams(ranking=RankingParams(diversity="mmr", mmr_lambda=lam))
            for lam in MMR_LAMBDAS}}
        with Evaluation(store, cut, variants=variants, editor_links=links, seed=SEED,
                        show_progress=progress) as ev:
            ev.prepare()
            entry = ev.run("related")
        store.close()
    entry["source"] = "id-news-editor-links"
    entry["ground_truth"] = stats
    entry["notes"] = [
        "Each anchor's list is asked for when the anchor is published: only earlier articles are candidates "
        "(99% of the editor's links point to earlier articles).",
        "'Baca juga' lines are stripped from every body before ingestion, so a target's title cannot leak.",
        "No interactions in this corpus: baselines that need events do not apply.",
    ]
    return {"id-news-editor-links": entry}


# --- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding the data sets")
    parser.add_argument("--out", type=Path, required=True, help="output folder for report.json, report.md, plots")
    parser.add_argument("--quick", action="store_true", help="300 sampled MIND impressions, one tuning trial")
    parser.add_argument("--trials", type=int, default=None, help="tuning trials on MIND (default 4, quick 1)")
    parser.add_argument("--no-tune", action="store_true", help="evaluate MIND with the default parameters only")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--learned-days", type=float, default=4.0,
                        help="days before the cut replayed to train the learned ranking stage (0: no learned stage)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    progress = sys.stderr.isatty()
    report = new_report("python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                        data=str(args.data), quick=args.quick, skipped=[])
    trials = args.trials if args.trials is not None else (1 if args.quick else 4)
    mind = args.data / MIND
    if (mind / "behaviors.tsv").is_file() and (mind / "news.tsv").is_file():
        report["datasets"].update(run_mind(mind, args.quick, trials, not args.no_tune, progress, args.learned_days))
    else:
        message = f"{mind} not found: skipping mind-sample (the data set is not part of the repo)"
        print(message)
        report["skipped"].append(message)
    id_news = args.data / ID_NEWS / ID_FILE
    if id_news.is_file():
        report["datasets"].update(run_id_news(id_news, progress))
    else:
        message = f"{id_news} not found: skipping id-news-editor-links (the data set is not part of the repo)"
        print(message)
        report["skipped"].append(message)
    if not report["datasets"]:
        print("no data set found; nothing evaluated")
    paths = write_report(report, args.out, plots=not args.no_plots)
    for name, entry in report["datasets"].items():
        print(f"\n## {name} ({entry['protocol']}, {entry['n_test']} queries, cut {entry['data_window']['cut']})\n")
        print(model_table(entry))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
