"""Offline evaluation: time splits that do not leak, replay that never peeks, report shape, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommender.evaluation.baselines import BASELINES, Scorer
from recommender.domain import Article, Interaction, parse_time
from recommender.evaluation.protocols import (
    LIST_LENGTH, PROTOCOLS, SCORE_COLUMN, Evaluation, NewsrecRunner, _ndcg_curve, copy_store,
    editor_link_pairs, impression_queries, load_split, record_events, related_queries, topk_queries,
)
from recommender.evaluation.metrics import impression_metrics, ndcg_at_k
from recommender.evaluation.tuning import _group_metrics
from recommender.params import TrainParams
from recommender.store import SQLiteStore
from recommender.text.cleaning import strip_furniture

CUT = parse_time("2026-11-10T00:00:00+07:00", "cut")
DAY = 86_400.0
T1, T2, T3, T4 = CUT + 100, CUT + 1000, CUT + 2000, CUT + 3000

# Six articles: A0-A4 a day before the cut, A5 published after it.
TOPICS = ["banjir melanda kota bandung", "harga beras naik di pasar", "timnas menang atas vietnam",
          "mobil listrik baru diluncurkan", "gempa guncang pulau lombok", "bursa saham menguat tajam"]
ARTICLES = [Article(f"A{i}", TOPICS[i].title(), f"Berita {TOPICS[i]} hari ini.", "Nasional", CUT - DAY)
            for i in range(5)] + [Article("A5", TOPICS[5].title(), f"Berita {TOPICS[5]} hari ini.", "Ekonomi",
                                          CUT + 4000)]


def ev_(user, article, event, ts, **kw):
    return Interaction(user, article, event, ts, **kw)


EVENTS = [
    # before the cut: u1 read A0 (and a history click with no real time)
    ev_("u1", "A0", "impression", CUT - 3600), ev_("u1", "A0", "click", CUT - 3590),
    ev_("u1", "A1", "click", CUT - 30 * DAY, history=True),
    # u2 is shown A0, A1, A2 a moment apart and clicks A1 twenty seconds later
    ev_("u2", "A0", "impression", T1), ev_("u2", "A1", "impression", T1 + 2), ev_("u2", "A2", "impression", T1 + 4),
    ev_("u2", "A1", "click", T1 + 20),
    # u3: a MIND-style list, the click stamped with the list's time
    ev_("u3", "A1", "impression", T2), ev_("u3", "A2", "impression", T2), ev_("u3", "A2", "click", T2),
    # u4 clicks nothing, u5 clicks everything it is shown (both undefined for AUC)
    ev_("u4", "A0", "impression", T3), ev_("u4", "A1", "impression", T3),
    ev_("u5", "A3", "impression", T4), ev_("u5", "A4", "impression", T4), ev_("u5", "A3", "click", T4),
    ev_("u5", "A4", "click", T4 + 60),
    # u1 comes back for the fresh article
    ev_("u1", "A5", "click", CUT + 5000),
]


@pytest.fixture
def hand(tmp_path):
    store = SQLiteStore(tmp_path / "hand.sqlite3")
    store.upsert_articles(ARTICLES)
    store.add_events(EVENTS)
    yield store
    store.close()


def ids(split, items):
    return [str(split.catalog.ids[i]) for i in items]


# --- splits and queries ---------------------------------------------------------------------
def test_split_puts_everything_before_the_cut_in_training_only(hand):
    split = load_split(hand, T2)
    assert split.train.ts.max() < T2 <= split.test.ts.min()
    assert len(split.train) + len(split.test) == len(EVENTS)
    assert split.train.history.sum() == 1
    later = load_split(hand, CUT, end=T3)
    assert later.test.ts.max() < T3
    with pytest.raises(ValueError, match="after the cut"):
        load_split(hand, CUT, end=CUT)


def test_impression_queries_group_lists_and_label_later_clicks(hand):
    split = load_split(hand, CUT)
    queries = impression_queries(split)
    assert [(split.users[q.user], q.ts) for q in queries] == [("u2", T1), ("u3", T2)]
    assert ids(split, queries[0].items) == ["A0", "A1", "A2"] and queries[0].labels.tolist() == [0, 1, 0]
    assert ids(split, queries[1].items) == ["A1", "A2"] and queries[1].labels.tolist() == [0, 1]


def test_topk_queries_rank_what_existed_and_was_not_read_yet(hand):
    split = load_split(hand, CUT)
    by_user = {split.users[q.user]: q for q in topk_queries(split)}
    assert set(by_user) == {"u1", "u2", "u3", "u5"}
    assert by_user["u2"].ts == T1 + 20 and ids(split, by_user["u2"].relevant) == ["A1"]
    assert "A5" not in ids(split, by_user["u2"].items)  # published later
    assert "A0" not in ids(split, by_user["u1"].items)  # read before the cut
    assert ids(split, by_user["u1"].relevant) == ["A5"]
    assert ids(split, by_user["u5"].relevant) == ["A3", "A4"]


def test_related_queries_from_coreading_and_from_editor_links(hand):
    split = load_split(hand, CUT)
    coread = {ids(split, [q.anchor])[0]: ids(split, q.relevant) for q in related_queries(split)}
    assert coread == {"A3": ["A4"], "A4": ["A3"]}
    links = related_queries(split, links={"A5": {"A0", "A4"}, "A0": {"A5"}})
    assert len(links) == 1  # A0 was published before A5 existed: no candidate to find
    assert ids(split, [links[0].anchor]) == ["A5"] and links[0].ts == CUT + 4000
    assert ids(split, links[0].relevant) == ["A0", "A4"]


def test_editor_links_are_matched_to_titles_and_stripped_from_bodies():
    titles = ["Harga Beras Naik di Jakarta", "Bulog Gelar Operasi Pasar di Jakarta Timur", "Persib Kalah dari Barito"]
    bodies = [
        "JAKARTA - Harga beras naik. Baca juga: Bulog Gelar Operasi Pasar di Jakarta Timur Menurut pedagang, "
        "kenaikan terjadi sejak Senin.",
        "Bulog menggelar operasi pasar. Baca juga: Harga Beras Naik di Jakarta",
        "Persib kalah. Baca juga: Judul yang Tidak Pernah Ada di Korpus Ini",
    ]
    assert editor_link_pairs(titles, bodies) == {0: {1}, 1: {0}}
    assert "Operasi Pasar" not in strip_furniture(bodies[0]) and "kenaikan terjadi" in strip_furniture(bodies[0])


# --- replay never peeks -----------------------------------------------------------------------
class Spy(Scorer):
    """An online scorer that records, at each query, the newest event it had been fed."""

    name = "spy"
    online = True
    needs_events = False

    def fit(self, data):
        super().fit(data)
        self.newest_, self.seen_ = -np.inf, []
        return self

    def partial_fit(self, events):
        self.newest_ = max(self.newest_, float(events.ts.max()))
        return self

    def score(self, user, items, now, history):
        self.seen_.append((now, self.newest_, None if history is None else sorted(history.tolist())))
        return np.zeros(len(items))


def test_replay_feeds_only_events_strictly_before_each_impression(hand):
    spy = Spy()
    with Evaluation(hand, CUT, baselines=[spy], ablations=False) as ev:
        ev.prepare()
        ev.run("replay")
        assert ev.baselines_ == [spy]
        assert spy.seen_[0][:2] == (T1, -np.inf)  # nothing of the test period yet
        assert spy.seen_[1][:2] == (T2, T1 + 20)  # u2's click, not u3's own list
        assert all(seen < now for now, seen, _ in spy.seen_)
        ev.run("impressions")  # batch: frozen at the cut
        assert spy.seen_[-1][1] == -np.inf


def test_articles_whose_text_has_no_indexable_word_count_as_without_text(hand):
    # stopwords only or one letter: tokenize() finds nothing, the text vector is all zeros
    blank = [Article(f"B{i}", title, "", "Nasional", CUT - DAY)
             for i, title in enumerate(["Apa Kata Mereka?", "Ini Dia", "x"])]
    hand.upsert_articles(blank)
    with Evaluation(hand, CUT, baselines=["random"], ablations=False) as ev:
        ev.prepare()
        # 8 candidates, fewer than a list's 10: every top-k and related list holds the blank ones
        for protocol in ("topk", "related"):
            entry = ev.run(protocol)  # raised "list_vectors has all-zero rows" before
            assert entry["data_window"]["candidates"] <= LIST_LENGTH
            assert 0.0 < entry["models"]["newsrec"]["diversity"] <= 2.0
        cat = ev.split_.catalog
        assert not cat.has_text[[cat.index[a.article_id] for a in blank]].any()
        assert cat.has_text[cat.index["A0"]]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small generated portal, ingested and evaluated once per module (about 2 s)."""
    from recommender.evaluation.protocols import choose_cut
    from recommender.datasets.ingest import import_articles, import_events, import_preferences
    from recommender.datasets.synthetic import generate

    root = tmp_path_factory.mktemp("eval")
    paths = generate(n_articles=150, n_users=60, days=4, seed=5).write_jsonl(root / "sample")
    store = SQLiteStore(root / "s.sqlite3")
    import_articles(store, paths["articles"], show_progress=False)
    import_events(store, paths["events"], show_progress=False)
    import_preferences(store, paths["preferences"], show_progress=False)
    ev = Evaluation(store, choose_cut(store, 1.0), seed=0).prepare()
    yield ev
    ev.close()
    store.close()


def test_replay_scores_equal_an_engine_that_saw_only_earlier_events(synthetic, tmp_path):
    ev = synthetic
    ev.run("replay", keep_columns=True)
    kept = ev.columns_
    assert len(kept) > 10
    test = ev.split_.test
    for n, (query, columns) in enumerate((kept[1], kept[len(kept) // 2], kept[-1])):
        store = copy_store(ev.replay_base_, tmp_path / f"q{n}.sqlite3")
        record_events(store, ev.split_, test.take(slice(0, int(np.searchsorted(test.ts, query.ts, side="left")))))
        runner = NewsrecRunner("newsrec", ev.models_["newsrec"], store, ev.split_, ablations=False)
        runner.start(query.ts)
        runner.refresh(query.ts)
        fresh, _ = runner.score(query)
        runner.close()
        store.close()
        np.testing.assert_allclose(fresh["newsrec"], columns[SCORE_COLUMN], rtol=1e-6, atol=1e-9)


def test_model_trained_at_the_cut_is_the_model_of_the_pre_cut_store(synthetic):
    from recommender.models.fitting import build_model

    ev = synthetic
    pre_cut = SQLiteStore(ev.replay_base_)
    other = build_model(pre_cut, ev.variants["newsrec"], as_of=ev.cut, seed=ev.seed).serving_model()
    pre_cut.close()
    model = ev.models_["newsrec"]
    for name in ("clicks", "impressions", "engagement"):
        np.testing.assert_array_equal(model.counters[name], other.counters[name])
    np.testing.assert_array_equal(model.evidence, other.evidence)
    np.testing.assert_array_equal(model.neighbours["coread"][0], other.neighbours["coread"][0])
    assert model.counters["clicks"].sum() > 0


# --- results ----------------------------------------------------------------------------------
ALLOWED_METRICS = {"auc", "mrr", "ndcg@5", "ndcg@10", "ndcg@20", "recall@5", "recall@10", "recall@20", "hit@5",
                   "hit@10", "hit@20", "coverage", "novelty", "diversity", "category_entropy", "freshness_hours",
                   "popular_share", "same_category@10", "rank_biased_entropy", "rbo_scored_vs_served",
                   "rbo_vs_newsrec"}


def check_entry(entry, protocol):
    assert entry["protocol"] == protocol and isinstance(entry["n_test"], int) and entry["n_test"] > 0
    assert "newsrec" in entry["models"]
    for model, values in entry["models"].items():
        assert model in BASELINES or model == "newsrec" or model.startswith("newsrec-"), model
        assert set(values) <= ALLOWED_METRICS, set(values) - ALLOWED_METRICS
        assert all(v is None or np.isfinite(v) for v in values.values())


def test_report_entries_have_the_documented_shape(synthetic, tmp_path):
    from training.report import new_report, write_report

    ev = synthetic
    report = new_report("test")
    for protocol in ("impressions", "topk", "related"):
        entry = ev.run(protocol)
        check_entry(entry, protocol)
        report["datasets"][f"synthetic-{protocol}"] = entry
    imp = report["datasets"]["synthetic-impressions"]["models"]
    assert "online_ctr" not in imp  # replay only
    assert {"newsrec-no-ctr", "newsrec-no-fresh"} <= set(imp)
    assert 0.0 <= imp["random"]["auc"] <= 1.0 and imp["newsrec"]["auc"] > imp["random"]["auc"]
    related = report["datasets"]["synthetic-related"]["models"]
    assert "newsrec-no-text" in related and "content" in related
    assert 0.0 <= related["content"]["same_category@10"] <= 1.0
    paths = write_report(report, tmp_path / "out")
    loaded = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(loaded["datasets"]) == set(report["datasets"])
    md = (tmp_path / "out" / "report.md").read_text().splitlines()
    assert sum(line.startswith("| newsrec |") for line in md) == 3  # one table row per data set
    pngs = [p for p in paths if p.suffix == ".png"]
    assert len(pngs) >= 9 and all(p.stat().st_size > 1000 for p in pngs)  # per-category needs >= 10 queries


def test_vectorized_group_metrics_match_the_reference(rng):
    groups, labels, scores = [], [], []
    for g in range(30):
        n = int(rng.integers(3, 25))
        lab = np.zeros(n)
        lab[rng.choice(n, size=int(rng.integers(1, n)), replace=False)] = 1.0  # 1 .. n-1 clicks
        groups.append(np.full(n, g))
        labels.append(lab)
        scores.append(rng.random(n))  # no ties
    got = _group_metrics(np.concatenate(groups), np.concatenate(scores), np.concatenate(labels), 30, rng)
    want = [impression_metrics(lab, s) for lab, s in zip(labels, scores)]
    for metric in ("auc", "mrr", "ndcg@10"):
        assert got[metric] == pytest.approx(np.mean([w[metric] for w in want]))
    lab, s = labels[0], scores[0]
    order = np.argsort(-s)
    curve = _ndcg_curve(lab[order], 10)
    assert curve == pytest.approx([ndcg_at_k(lab, s, k) for k in range(1, 11)])


def test_unknown_protocol_is_refused(synthetic):
    with pytest.raises(ValueError, match="choose from"):
        synthetic.queries("nope")
    assert set(PROTOCOLS) == {"impressions", "replay", "topk", "related"}


# --- command line -----------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch):
    from training.cli import main

    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NEWSREC_DB", raising=False)
    monkeypatch.delenv("NEWSREC_MODELS", raising=False)
    assert main(["sample", "--articles", "150", "--users", "60", "--days", "4", "--seed", "5", "--ingest"]) == 0
    return tmp_path / "home"


def test_cli_evaluate_writes_report_and_plots(tmp_path, monkeypatch, capsys):
    from training.cli import main

    # a fixed end: with the default ("now") the last day's impression lists depend on the clock,
    # and once in a while fewer than 25 of them fell on the test day
    monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NEWSREC_DB", raising=False)
    monkeypatch.delenv("NEWSREC_MODELS", raising=False)
    assert main(["sample", "--articles", "150", "--users", "60", "--days", "4", "--seed", "5", "--ingest",
                 "--end", "2026-11-20T12:00:00+07:00"]) == 0
    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["evaluate", "--protocol", "impressions", "--protocol", "replay", "--out", str(out),
                 "--max-queries", "25", "--baselines", "random,popular,online_ctr"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["datasets"]) == {"store-impressions", "store-replay"}
    check_entry(report["datasets"]["store-replay"], "replay")
    assert set(report["datasets"]["store-replay"]["models"]) >= {"newsrec", "random", "popular", "online_ctr"}
    assert report["datasets"]["store-replay"]["n_test"] == 25
    assert report["parameters_from"] == "defaults" and report["datasets"]["store-replay"]["data_window"]["cut"]
    assert (out / "report.md").exists() and len(list(out.glob("*.png"))) >= 6
    assert "wrote" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_tune_writes_a_config_that_train_and_evaluate_use(home, capsys):
    from training.cli import main

    # a 4-day sample: the test day, then 30% of the training events as the validation period
    out = home / "tuned"
    assert main(["tune", "--trials", "2", "--blend-samples", "20", "--validation-days", "0.3", "--out", str(out),
                 "--apply"]) == 0
    config = home / "config" / "train.json"
    params = TrainParams.load(config)
    assert (out / "report.json").exists()
    capsys.readouterr()
    assert main(["train", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["parameters_from"] == str(config)
    tuning = json.loads((out / "report.json").read_text())
    assert len(tuning["trials"]) == 2 and tuning["validation_start"] < tuning["cut"]
    assert params == TrainParams.from_dict(tuning["trials"][tuning["best_trial"]]["params"])


def test_a_rows_figures_do_not_depend_on_which_other_rows_ran(synthetic):
    """Ties are broken at random, and every row drew from one generator in turn: a baseline's MRR
    moved when the ablation rows (or a plugin's) were added or left out, and between `evaluate`
    and `evaluate --config candidate.json` on the same data. Each row now has its own draws."""
    ev = synthetic
    full = ev.run("impressions")["models"]
    ev.ablations = False
    try:
        alone = ev.run("impressions")["models"]
    finally:
        ev.ablations = True
    assert len(full) > len(alone) and "newsrec-no-ctr" not in alone
    for name in set(alone) - {"random"}:  # random's scores are draws of its own, new each run
        assert full[name] == alone[name], name
