"""How well do article vectors find the articles an editor linked? (real Indonesian news)

Ground truth: 794 of the 898 scraped Kompas/Tribunnews articles of 27 Feb 2023 carry inline
"Baca juga: <title>" links. A link whose text matches the title of another article in the
corpus (normalized, fuzzy prefix match) is a (query, target) pair. The links are stripped from
every body before embedding, otherwise the target's title would leak into the query.

For each variant, every other article is ranked by cosine similarity and Recall@5, Recall@10
and MRR are averaged over queries; the MRR difference to the default embedder comes with a
paired-bootstrap 95% interval. Also timed: ``ArticleEmbedder.embed_one`` (median of several
runs), batch ``transform`` and ``fit``.

Usage::

    python benchmarks/text_quality.py --data ../shared/data [--json OUT]

Exits 0 with a message when the data folder is absent (it is not part of the repo).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import logging
import platform
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.text.embedding import ArticleEmbedder  # noqa: E402
from recommender.evaluation.metrics import paired_bootstrap, recall_at_k, reciprocal_rank  # noqa: E402
from recommender.text.cleaning import (  # noqa: E402
    STOP_WORDS,
    extract_editor_links,
    normalize,
    strip_furniture,
    tokenize,
    unescape_html,
)

log = logging.getLogger("text_quality")

DATASET = "id-news-kompas-tribun-2023"
FILE = "tribunnews.csv"  # superset of kompas.csv, see PROVENANCE.md
MATCH_THRESHOLD = 0.9  # difflib ratio between a link's prefix and a corpus title
SEED = 0
DEFAULT = "tfidf 1-2g, title x3 (default)"


# --- data and ground truth ---------------------------------------------------------------------


def load_articles(path: Path) -> list[dict[str, str]]:
    """Rows of the CSV, first occurrence of every URL."""
    csv.field_size_limit(10_000_000)
    seen, articles = set(), []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["URL"] in seen:
                continue
            seen.add(row["URL"])
            articles.append(row)
    return articles


def section(url: str) -> str:
    """Kompas: subdomain (``money``); Tribunnews: first path segment (``superskor``)."""
    parts = url.split("/")
    host = parts[2]
    return parts[3] if host.endswith("tribunnews.com") else host.split(".")[0]


def editor_links(articles: list[dict[str, str]]) -> tuple[dict[int, set[int]], dict[str, float]]:
    """Query index -> indices of the corpus articles its "Baca juga" links point to.

    Links are fuzzy-matched: the scraper dropped characters around commas in Tribunnews
    bodies, and Kompas titles run into the next sentence, so the link text's prefix of the
    title's length is compared with ``difflib`` (ratio >= MATCH_THRESHOLD).
    """
    titles = [normalize(unescape_html(a["Title"])) for a in articles]
    by_word = defaultdict(set)
    for j, title in enumerate(titles):
        for word in set(title.split()):
            by_word[word].add(j)
    relevant: dict[int, set[int]] = defaultdict(set)
    n_links = 0
    for i, article in enumerate(articles):
        for link in extract_editor_links(article["Body_Text"]):
            n_links += 1
            text = normalize(link)
            shared = Counter(j for w in set(text.split()) for j in by_word.get(w, ()))
            best, best_j = 0.0, -1
            for j, n_shared in shared.items():
                if j == i or n_shared < 0.5 * len(set(titles[j].split())):
                    continue
                prefix = text[: len(titles[j])]
                ratio = difflib.SequenceMatcher(None, prefix, titles[j], autojunk=False).ratio()
                if ratio > best:
                    best, best_j = ratio, j
            if best >= MATCH_THRESHOLD:
                relevant[i].add(best_j)
    pairs = [(i, j) for i, targets in relevant.items() for j in targets]
    published = [a["PublishDate"] for a in articles]
    sections = [section(a["URL"]) for a in articles]
    stats = {
        "articles": len(articles),
        "articles_with_links": sum(1 for a in articles if extract_editor_links(a["Body_Text"])),
        "links": n_links,
        "pairs": len(pairs),
        "queries": len(relevant),
        "same_section_share": float(np.mean([sections[i] == sections[j] for i, j in pairs])),
        "target_published_earlier_share": float(np.mean([published[j] <= published[i] for i, j in pairs])),
    }
    return dict(relevant), stats


# --- evaluation --------------------------------------------------------------------------------


def evaluate(S: np.ndarray, relevant: dict[int, set[int]]) -> dict[str, np.ndarray]:
    """Per-query Recall@5, Recall@10 and reciprocal rank of ranking all other articles."""
    S = np.array(S, dtype=np.float64)
    np.fill_diagonal(S, -np.inf)
    out = {"recall@5": [], "recall@10": [], "mrr": []}
    for i in sorted(relevant):
        ranked = np.argsort(-S[i], kind="stable")[:-1]  # self is last
        out["recall@5"].append(recall_at_k(ranked, relevant[i], 5))
        out["recall@10"].append(recall_at_k(ranked, relevant[i], 10))
        out["mrr"].append(reciprocal_rank(ranked, relevant[i]))
    return {k: np.asarray(v) for k, v in out.items()}


def cosine(A: sp.spmatrix | np.ndarray) -> np.ndarray:
    S = A @ A.T
    return S.toarray() if sp.issparse(S) else np.asarray(S)


# --- variants ----------------------------------------------------------------------------------


def ngrams(tokens: list[str]) -> list[str]:
    return tokens + [a + " " + b for a, b in zip(tokens, tokens[1:])]


def weighted_tfidf(title_terms, body_terms, title_weight=3.0, bm25=None, title_only=False):
    """TF-IDF (or BM25) of pre-analyzed terms, for variants the embedder does not offer.

    Mirrors ``ArticleEmbedder`` (title_weight * title + body, sublinear TF, smooth IDF,
    max_df=0.9, L2) so that differences come from the idea being tested only.
    """
    cv = CountVectorizer(analyzer=lambda terms: terms, max_df=0.9)
    cv.fit([t + b for t, b in zip(title_terms, body_terms)])
    T = cv.transform(title_terms).astype(np.float64)
    B = cv.transform(body_terms).astype(np.float64)
    n = T.shape[0]
    df = np.bincount((T + B).tocsr().indices, minlength=T.shape[1])
    idf = np.log((1 + n) / (1 + df)) + 1
    W = T.tocsr() if title_only else (title_weight * T + B).tocsr()
    if bm25 is not None:
        k1, b = bm25
        length = np.asarray(W.sum(axis=1)).ravel()
        rows = np.repeat(np.arange(n), np.diff(W.indptr))
        W.data = W.data * (k1 + 1) / (W.data + k1 * (1 - b + b * length[rows] / length.mean()))
    else:
        W.data = np.where(W.data >= 1, 1 + np.log(W.data), W.data)
    return l2_normalize(W.multiply(idf).tocsr())


def variants(articles, X) -> dict[str, Callable[[], np.ndarray]]:
    """Name -> function returning the (n, n) similarity matrix."""
    titles = [unescape_html(a["Title"]) for a in articles]
    clean = [strip_furniture(a["Body_Text"]) for a in articles]
    title_terms = [ngrams(tokenize(t)) for t in titles]
    body_terms = [ngrams(tokenize(b)) for b in clean]
    cache: dict[str, np.ndarray] = {}

    def embedder(**params) -> ArticleEmbedder:
        return ArticleEmbedder(random_state=SEED, **params).fit(X)

    def default_sparse():
        if "default" not in cache:
            cache["default"] = cosine(embedder().transform_tfidf(X))
        return cache["default"]

    def dense(n_components=128):
        key = f"svd{n_components}"
        if key not in cache:
            cache[key] = cosine(embedder(n_components=n_components).transform(X))
        return cache[key]

    def char_ngrams():
        docs = [(normalize(t) + " ") * 3 + normalize(b) for t, b in zip(titles, clean)]
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, max_df=0.9)
        return cosine(vec.fit_transform(docs))

    def leaky():
        raw = [ngrams(tokenize(unescape_html(a["Body_Text"]))) for a in articles]
        return cosine(weighted_tfidf(title_terms, raw))

    def title_blend(alpha=0.1):
        return default_sparse() + alpha * cosine(weighted_tfidf(title_terms, body_terms, title_only=True))

    def section_prior(bonus=0.02):
        sec = np.array([section(a["URL"]) for a in articles])
        return default_sparse() + bonus * (sec[:, None] == sec[None, :])

    return {
        "tfidf 1-2g, title x1": lambda: cosine(embedder(title_weight=1.0).transform_tfidf(X)),
        DEFAULT: default_sparse,
        "tfidf 1-2g, title x3, no stop words": lambda: cosine(embedder(stop_words=None).transform_tfidf(X)),
        "tfidf 1g, title x3": lambda: cosine(embedder(ngram_range=(1, 1)).transform_tfidf(X)),
        "tfidf 1-2g, title x3, min_df=2": lambda: cosine(embedder(min_df=2).transform_tfidf(X)),
        "tfidf 1-2g, title x8": lambda: cosine(embedder(title_weight=8.0).transform_tfidf(X)),
        "BM25 1-2g (k1=1.2, b=0.75), title x3": lambda: cosine(
            weighted_tfidf(title_terms, body_terms, bm25=(1.2, 0.75))
        ),
        "tfidf x3 + 0.1 title-title cosine": title_blend,
        "SVD-128 dense (title x3)": dense,
        "SVD-256 dense (title x3)": lambda: dense(256),
        "tfidf x3 + 0.5 SVD-128": lambda: default_sparse() + 0.5 * dense(),
        "char_wb 3-5g tfidf, title x3": char_ngrams,
        "[metadata] tfidf x3 + 0.02 same section": section_prior,
        "[leaky] no furniture stripping": leaky,
    }


# --- timing ------------------------------------------------------------------------------------


def timing(X, n_runs: int = 5, n_articles: int = 200) -> dict[str, float]:
    t0 = time.perf_counter()
    est = ArticleEmbedder(random_state=SEED).fit(X)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    est.transform(X)
    transform_s = time.perf_counter() - t0
    sample = X[:n_articles]
    for title, body in sample[:20]:  # warm-up
        est.embed_one(title, body)
    run_medians, all_times = [], []
    for _ in range(n_runs):
        times = []
        for title, body in sample:
            t0 = time.perf_counter()
            est.embed_one(title, body)
            times.append(time.perf_counter() - t0)
        run_medians.append(np.median(times))
        all_times.extend(times)
    return {
        "fit_seconds": fit_s,
        "n_features": len(est.vocabulary_),
        "transform_articles_per_second": len(X) / transform_s,
        "embed_one_median_ms": float(np.median(run_medians) * 1e3),
        "embed_one_p95_ms": float(np.percentile(all_times, 95) * 1e3),
        "embed_one_runs": n_runs,
        "embed_one_articles_per_run": len(sample),
        "median_body_chars": float(np.median([len(b) for _, b in sample])),
    }


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding " + DATASET)
    parser.add_argument("--json", type=Path, default=None, help="write results to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    path = args.data / DATASET / FILE
    if not path.is_file():
        print(f"{path} not found; skipping the text quality benchmark (the data set is not in the repo).")
        return 0

    articles = load_articles(path)
    X = [(a["Title"], a["Body_Text"]) for a in articles]
    relevant, gt = editor_links(articles)
    print(
        f"{gt['articles']} articles, {gt['articles_with_links']} with 'Baca juga' links, "
        f"{gt['links']} links, "
        f"{gt['pairs']} pairs to corpus articles over {gt['queries']} queries "
        f"(same section {gt['same_section_share']:.0%}, target published earlier "
        f"{gt['target_published_earlier_share']:.0%})"
    )

    results, per_query = {}, {}
    for name, similarity in variants(articles, X).items():
        t0 = time.perf_counter()
        per_query[name] = evaluate(similarity(), relevant)
        results[name] = {k: float(v.mean()) for k, v in per_query[name].items()}
        results[name]["seconds"] = time.perf_counter() - t0
    for name, scores in per_query.items():
        boot = paired_bootstrap(scores["mrr"], per_query[DEFAULT]["mrr"], n_resamples=2000, rng=SEED)
        results[name]["mrr_diff_vs_default"] = boot["mean_diff"]
        results[name]["mrr_diff_ci95"] = [boot["ci_low"], boot["ci_high"]]

    width = max(map(len, results))
    print(f"\n{'variant':{width}s}  R@5    R@10   MRR    dMRR vs default [95% CI]")
    for name, r in results.items():
        lo, hi = r["mrr_diff_ci95"]
        print(
            f"{name:{width}s}  {r['recall@5']:.3f}  {r['recall@10']:.3f}  {r['mrr']:.3f}  "
            f"{r['mrr_diff_vs_default']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        )

    timings = timing(X)
    print(
        f"\nembed_one: median {timings['embed_one_median_ms']:.3f} ms, "
        f"p95 {timings['embed_one_p95_ms']:.3f} ms "
        f"({timings['embed_one_runs']} runs x {timings['embed_one_articles_per_run']} articles, median body "
        f"{timings['median_body_chars']:.0f} chars); "
        f"transform {timings['transform_articles_per_second']:.0f} "
        f"articles/s; fit {timings['fit_seconds']:.1f} s ({timings['n_features']} terms)"
    )

    if args.json is not None:
        report = {
            "dataset": f"{DATASET}/{FILE}",
            "ground_truth": gt,
            "match_threshold": MATCH_THRESHOLD,
            "default": DEFAULT,
            "variants": results,
            "timing": timings,
            "stop_words": len(STOP_WORDS),
            "environment": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "scikit-learn": sklearn.__version__,
                "machine": platform.machine(),
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
