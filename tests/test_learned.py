"""The learned ranking stage: exposure features counted the same way offline and online, the
ranker's plain-array export scoring exactly as scikit-learn did, and the engine ranking feeds with it."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.domain import EVENT_CODES, parse_time
from recommender.evaluation.learning import (
    POSITION, RankingData, choose_ranker, fit_ranker, from_columns, list_metrics, position_propensity,
    serving_scores, with_learned,
)
from recommender.models.bundle import load_bundle, write_bundle
from recommender.models.exposure import NEVER, ExposureStats
from recommender.models.learned import LearnedRanker, NotFittedError
from recommender.serving.features import FEATURE_NAMES, PREFIX, feed_features

CLICK, SHOWN = EVENT_CODES["click"], EVENT_CODES["impression"]
HOUR = 3600.0


# --- exposure statistics: batch (training) == incremental (serving) --------------------------
def random_events(rng, n=400, n_items=30, t0=1_000_000.0, span=48 * HOUR):
    item = rng.integers(-1, n_items, n)
    event = np.where(rng.random(n) < 0.2, CLICK, SHOWN).astype(np.int8)
    ts = np.sort(t0 + rng.random(n) * span)
    return item, event, ts


def test_exposure_counted_at_once_equals_counted_as_events_arrive(rng):
    item, event, ts = random_events(rng)
    half = ts.size // 2
    item[:half] %= 20  # articles 20-29 arrive in the second half
    end = float(ts[-1]) + 10.0
    batch = ExposureStats.from_events(item, event, ts, 30, end)
    live = ExposureStats.from_events(item[:half], event[:half], ts[:half], 20, float(ts[half - 1]))
    def site_ctr(stats, j):  # what global_ctr keeps between changes, summed afresh
        return float(stats.clicks[j].sum()) / float(stats.impressions[j].sum())

    for k in range(half, ts.size, 37):  # the service: advance to each poll, count what arrived, grow for new articles
        for change in (lambda: live.advance(float(ts[k])), lambda: live.grow(30),
                       lambda: live.add(item[k:k + 37], event[k:k + 37], ts[k:k + 37])):
            live.global_ctr(1)  # kept ...
            change()
            assert [live.global_ctr(j) for j in range(4)] == [site_ctr(live, j) for j in range(4)]  # ... not stale
    live.advance(end)
    np.testing.assert_allclose(live.clicks, batch.clicks, rtol=1e-9)
    np.testing.assert_allclose(live.impressions, batch.impressions, rtol=1e-9)
    np.testing.assert_array_equal(live.first_impression, batch.first_impression)
    np.testing.assert_array_equal(live.first_click, batch.first_click)
    shown_items = np.unique(item[(event == SHOWN) & (item >= 0)])
    assert (batch.first_impression[shown_items] < NEVER).all()
    never = np.setdiff1d(np.arange(30), item[item >= 0])
    assert (batch.first_impression[never] == NEVER).all() and (batch.clicks[:, never] == 0).all()
    # shorter windows forget faster: an article clicked only long ago keeps clicks in the 24 h window only
    old = ExposureStats.from_events(np.array([0]), np.array([CLICK]), np.array([0.0]), 1, 48 * HOUR)
    assert old.clicks[0, 0] < 1e-9 < old.clicks[2, 0]


def test_training_counts_the_exposure_the_service_reaches_from_an_older_model(trained, tmp_path):
    """A model fitted now holds the exposure a service running an older model has counted by now."""
    from recommender.models.fitting import build_model
    from recommender.serving.engine import Engine, EngineConfig

    sample = trained
    older_at = sample.now - 6 * HOUR
    older = build_model(sample.store, as_of=older_at, seed=0).serving_model("older")
    engine = Engine(sample.store, tmp_path, EngineConfig(poll_interval=3600.0), clock=lambda: sample.now)
    engine.use_model(older)
    engine.refresh()
    live = engine._state.counters.exposure
    fitted = build_model(sample.store, as_of=sample.now, seed=0)
    batch = ExposureStats.from_arrays(fitted.arrays, sample.now)
    ids = older.item_ids.ids
    index = fitted.serving_model().item_ids.indices(list(ids))
    assert (index >= 0).all()
    np.testing.assert_allclose(live.clicks[:, : ids.size], batch.clicks[:, index], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(live.impressions[:, : ids.size], batch.impressions[:, index], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(live.first_click[: ids.size], batch.first_click[index])
    assert live.impressions[1].sum() > 0  # the sample has impressions in the last hours
    engine.close()


# --- the ranker: exact export, round trip through a bundle without pickle ---------------------
def toy_rows(rng, n=3000, f=6):
    X = rng.normal(size=(n, f))
    X[rng.random((n, f)) < 0.02] = np.nan  # missing values take the learned side
    logit = 1.5 * np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) ** 2 + 0.5 * (np.nan_to_num(X[:, 2]) > 0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return X, y, [f"f{j}" for j in range(f)]


@pytest.mark.parametrize("kind", ["hgb", "logistic"])
def test_ranker_survives_a_bundle_round_trip_bit_for_bit(kind, rng, tmp_path):
    X, y, names = toy_rows(rng)
    ranker = LearnedRanker(kind=kind, max_iter=40, min_samples_leaf=20).fit(X, y, names)
    arrays, document = ranker.to_bundle()
    assert all(a.dtype != object for a in arrays.values())
    version = write_bundle(tmp_path, arrays, {"learned": document}, publish=False)
    bundle = load_bundle(tmp_path, version)  # np.load(allow_pickle=False) inside
    loaded = LearnedRanker.from_bundle(bundle.arrays, bundle.documents["learned"])
    np.testing.assert_array_equal(loaded.decision_function(X), ranker.decision_function(X))
    # and it learned the signal: AUC well above chance on fresh rows
    X2, y2, _ = toy_rows(np.random.default_rng(7))
    s = loaded.decision_function(X2)
    pos, neg = s[y2 > 0], s[y2 == 0]
    assert (pos[:, None] > neg[None, :]).mean() > 0.7


def test_exported_trees_score_exactly_as_scikit_learn(rng):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y, names = toy_rows(rng)
    ranker = LearnedRanker(kind="hgb", max_iter=30, max_leaf_nodes=7, min_samples_leaf=20).fit(X, y, names)
    reference = HistGradientBoostingClassifier(max_iter=30, learning_rate=0.05, max_leaf_nodes=7,
                                               min_samples_leaf=20, l2_regularization=1.0, early_stopping=False,
                                               random_state=0).fit(X, y)
    X2, _, _ = toy_rows(np.random.default_rng(3), n=500)
    np.testing.assert_allclose(ranker.decision_function(X2), reference.decision_function(X2), rtol=1e-12,
                               atol=1e-12)


def test_ranker_refuses_misuse_with_a_message_that_says_what_to_do(rng):
    X, y, names = toy_rows(rng, n=200)
    with pytest.raises(NotFittedError, match="Call fit first"):
        LearnedRanker().decision_function(X)
    with pytest.raises(ValueError, match="kind"):
        LearnedRanker(kind="forest").fit(X, y, names)
    with pytest.raises(ValueError, match="both clicked and not clicked"):
        LearnedRanker().fit(X, np.zeros(200), names)
    ranker = LearnedRanker(kind="logistic").fit(X, y, names)
    with pytest.raises(ValueError, match="6 columns"):
        ranker.decision_function(X[:, :3])


# --- position bias ------------------------------------------------------------------------------
def lists_with_position_bias(rng, n_lists=600, size=10):
    """Lists whose clicks depend on a relevance column *and* on the position (examination 1/(1+p))."""
    f = len(FEATURE_NAMES)
    X = rng.normal(size=(n_lists * size, f))
    position = np.tile(np.arange(size), n_lists)
    relevance = X[:, FEATURE_NAMES.index("content")]
    p = 1 / (1 + np.exp(-(2.0 * relevance - 1.0))) / (1.0 + position)
    y = (rng.random(p.size) < p).astype(float)
    group = np.repeat(np.arange(n_lists), size)
    clicks = np.bincount(group, weights=y, minlength=n_lists)
    data = RankingData(X, y, group, position, np.arange(n_lists, dtype=float))
    return data.take((clicks > 0) & (clicks < size))  # lists with a click and a miss, as the replay keeps


def test_position_propensity_falls_with_position_and_bias_handling_is_selectable(rng):
    data = lists_with_position_bias(rng)
    prop = position_propensity(data)
    assert prop[0] == pytest.approx(1.0) and prop[-1] < 0.35  # examination 1/(1+p): 0.1 at p = 9
    assert np.all(np.diff(prop[:5]) < 0)
    as_feature = fit_ranker(data, {"kind": "logistic"}, "feature")
    assert as_feature.feature_names_[-1] == POSITION and as_feature.serving_values_ == {POSITION: 0.0}
    # serving scores every candidate as if shown first: the position cannot reorder candidates
    scores = serving_scores(as_feature, data)
    np.testing.assert_allclose(scores, as_feature.decision_function(
        np.column_stack([data.X, np.zeros(data.y.size)])))
    ipw = fit_ranker(data, {"kind": "logistic"}, "ipw")
    for ranker in (as_feature, ipw):
        assert list_metrics(data, serving_scores(ranker, data))["auc"] > 0.6
    with pytest.raises(ValueError, match="list_weighting must be one of none, list"):
        fit_ranker(data, {"kind": "logistic"}, list_weighting="equal")


def test_list_weighting_gives_every_list_the_same_say(rng):
    """Long lists carry the opposite signal to short ones: unweighted, the long lists win (they hold
    most rows and clicks); weighted per list, the many short lists win."""
    names = list(FEATURE_NAMES)
    j = names.index("content")
    rows, groups, labels = [], [], []
    for g in range(240):
        size = 40 if g % 6 == 0 else 4  # 40 long lists (1600 rows) and 200 short ones (800 rows)
        x = np.zeros((size, len(names)))
        x[:, j] = rng.normal(size=size)
        y = np.zeros(size)  # long lists: the 10 lowest in content clicked; short lists: the highest
        y[np.argsort(x[:, j])[:10] if size == 40 else np.argmax(x[:, j])] = 1.0
        rows.append(x), groups.append(np.full(size, g)), labels.append(y)
    group = np.concatenate(groups)
    data = RankingData(np.vstack(rows), np.concatenate(labels), group,
                       np.concatenate([np.arange(len(y)) for y in labels]), np.arange(240, dtype=float))
    plain = fit_ranker(data, {"kind": "logistic"})
    per_list = fit_ranker(data, {"kind": "logistic"}, list_weighting="list")
    assert plain.coef_[j] < 0 < per_list.coef_[j]


def test_choose_ranker_judges_on_later_lists_and_reports_the_blend_beside_it(rng):
    data = lists_with_position_bias(rng, n_lists=400)
    small = ({"kind": "logistic", "C": 1.0}, {"kind": "logistic", "C": 0.001})
    ranker, report = choose_ranker(data, validation_start=250.0, candidates=small)
    later = int((data.ts >= 250.0).sum())
    assert report["fit_lists"] == data.n_groups - later and report["validation_lists"] == later > 50
    assert len(report["candidates"]) == 5  # 2 settings, then ipw and feature with the best, then list weighting
    assert set(report["reference"]) == {"blend", "online ctr (ctr_all_p10)"}
    best = max(report["candidates"], key=lambda c: c["objective"])
    assert report["chosen"] == {k: best[k] for k in ("settings", "position_bias", "list_weighting")}
    last = report["candidates"][-1]  # list weighting is tried with the best of the earlier trials
    earlier = max(report["candidates"][:-1], key=lambda c: c["objective"])
    assert last["list_weighting"] == "list" and (last["settings"], last["position_bias"]) == (
        earlier["settings"], earlier["position_bias"])
    assert best["validation"]["auc"] > report["reference"]["blend"]["auc"] + 0.1  # relevance is in "content"


# --- the engine: same features offline and online, feeds ranked by the learned stage ------------
def test_replayed_feature_columns_equal_an_engine_that_saw_only_earlier_events(tmp_path):
    """The rows a ranker trains on are what a serving engine computes at that moment."""
    from recommender.datasets.ingest import import_articles, import_events
    from recommender.datasets.synthetic import generate
    from recommender.evaluation.protocols import Evaluation, NewsrecRunner, choose_cut, copy_store, record_events
    from recommender.store import SQLiteStore

    paths = generate(n_articles=150, n_users=60, days=4, seed=5).write_jsonl(tmp_path / "sample")
    store = SQLiteStore(tmp_path / "s.sqlite3")
    import_articles(store, paths["articles"], show_progress=False)
    import_events(store, paths["events"], show_progress=False)
    with Evaluation(store, choose_cut(store, 1.0), baselines=["online_ctr"], seed=0, ablations=False) as ev:
        ev.prepare()
        ev.run("replay", keep_columns=True)
        kept = ev.columns_
        data = from_columns(kept)
        assert data.n_groups > 10 and data.X.shape[1] == len(FEATURE_NAMES)
        names = list(FEATURE_NAMES)
        for name in ("clicked_sim_max", "skipped_sim_max", "skipped_count", "reader_ctr"):  # compared below, and live
            assert np.ptp(data.X[:, names.index(name)]) > 0, name
        test = ev.split_.test
        for n, (query, columns) in enumerate((kept[len(kept) // 2], kept[-1])):
            copy = copy_store(ev.replay_base_, tmp_path / f"q{n}.sqlite3")
            record_events(copy, ev.split_, test.take(slice(0, int(np.searchsorted(test.ts, query.ts, side="left")))))
            runner = NewsrecRunner("newsrec", ev.models_["newsrec"], copy, ev.split_, ablations=False)
            runner.start(query.ts)
            runner.refresh(query.ts)
            _, fresh = runner.engine.score(ev.split_.users[query.user],
                                           [str(a) for a in ev.split_.catalog.ids[query.items]], features=True)
            runner.close()
            copy.close()
            for name in FEATURE_NAMES:
                np.testing.assert_allclose(fresh[PREFIX + name], columns[PREFIX + name], rtol=1e-6, atol=1e-9,
                                           err_msg=name)
        # a ranker fitted on those rows, served through the engine, scores each list as it predicts
        ranker = fit_ranker(data, {"kind": "hgb", "max_iter": 20, "min_samples_leaf": 20})
        ev.add_model("newsrec-learned", with_learned(ev.models_["newsrec"], ranker))
        entry = ev.run("replay")
    store.close()
    learned = entry["models"]["newsrec-learned"]
    assert 0.0 <= learned["auc"] <= 1.0
    assert learned["rbo_vs_newsrec"] < 0.999  # the learned stage re-ranked the blend's lists
    assert set(entry["significance"]["newsrec-learned vs online_ctr"]) == {"auc", "mrr", "ndcg@5", "ndcg@10"}


class _Snap:
    """The two catalog reads :func:`feed_features` makes, over fixed arrays."""

    def __init__(self, text, published_at):
        self._text, self._published = text, published_at

    def text(self, idx):
        return self._text[np.asarray(idx, dtype=np.int64)]

    def published_at(self, idx):
        return self._published[np.asarray(idx, dtype=np.int64)]


def test_reader_and_exposure_features_match_their_definitions_by_hand():
    """Clicks against what the exposure predicts, similarity to clicked and skipped, the reader's own
    click-through: each column checked against the arithmetic it claims, on a 5-article catalog."""
    from types import SimpleNamespace

    from recommender.serving.ranking import Candidates, ReaderProfile

    now = 1_000_000.0
    text = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0, 0, 0], [0, 0, 1]], dtype=np.float32)
    snap = _Snap(text, np.full(5, now - 3 * HOUR))
    # article 0: 100 shown, 12 clicks; 1: 100 shown, 0 clicks; 2: never shown; 4: 10 shown 1 click (3: no text)
    item = np.array([0] * 100 + [0] * 12 + [1] * 100 + [4] * 10 + [4])
    event = np.array([SHOWN] * 100 + [CLICK] * 12 + [SHOWN] * 100 + [SHOWN] * 10 + [CLICK], dtype=np.int8)
    exposure = ExposureStats.from_events(item, event, np.full(item.size, now), 5, now)
    counters = SimpleNamespace(exposure=exposure)
    none = np.zeros(0, dtype=np.int64)
    profile = ReaderProfile(read=np.array([0, 3]), positives=np.array([3, 0]), weights=np.ones(2), session=none,
                            cf_vector=None, content=None, session_vector=None, followed_categories=none,
                            followed_regions=none, shown=np.array([1, 4]), shown_counts=np.array([3, 1]),
                            skipped=np.array([4, 1]), impressions_seen=20, impressions_clicked=4)
    index = np.array([0, 1, 2, 4])
    X = feed_features(snap, profile, counters, now, Candidates(index, {}, np.arange(4.0)))
    col = {name: X[:, j] for j, name in enumerate(FEATURE_NAMES)}
    site = 13 / 210
    for w in ("1h", "6h", "24h", "all"):  # every event at `now`: no decay yet
        expected = np.array([100, 100, 0, 10]) * site
        np.testing.assert_allclose(col[f"excess_{w}"], (np.array([12, 0, 0, 1]) - expected) / np.sqrt(expected + 1))
    assert col["excess_all"][0] > 0 > col["excess_all"][1] and col["excess_all"][2] == 0
    # clicked: articles 0 and 3; 3 has no text, so only 0 counts
    np.testing.assert_allclose(col["clicked_sim_max"], [1.0, 0.0, 0.6, 0.0], atol=1e-6)
    np.testing.assert_allclose(col["clicked_sim_mean"], col["clicked_sim_max"], atol=1e-6)
    # skipped: articles 4 and 1
    np.testing.assert_allclose(col["skipped_sim_max"], [0.0, 1.0, 0.8, 1.0], atol=1e-6)
    np.testing.assert_allclose(col["skipped_sim_mean"], [0.0, 0.5, 0.4, 0.5], atol=1e-6)
    np.testing.assert_allclose(col["skipped_count"], np.log1p([0, 3, 0, 1]))
    np.testing.assert_allclose(col["reader_ctr"], (4 + 10 * site) / (20 + 10) / site)
    np.testing.assert_allclose(col["reader_impressions"], np.log1p(20))
    assert col["rank_skipped_sim_max"][0] == 0.0 and col["rank_clicked_sim_max"][0] == 1.0
    assert col["since_first_click"][2] == -1.0 and col["since_first_click"][0] == 0.0


def test_rank_columns_are_scipy_average_ranks_scaled_to_0_1(rng):
    """The rank features (one sort of all columns) equal scipy's ``rankdata(method="average")``
    per column, scaled to [0, 1]: ties share their rank, a column with NaN is all NaN."""
    from scipy.stats import rankdata

    from recommender.serving.features import _percentiles

    for n in (2, 3, 17, 100):
        for ties in (False, True):
            x = rng.integers(0, 4, size=(n, 6)).astype(np.float64) if ties else rng.random((n, 6))
            x[:, 5] = 7.0  # one value throughout: every rank is the middle
            x[n // 2, 4] = np.nan
            want = np.column_stack([(rankdata(x[:, j], method="average") - 1.0) / (n - 1.0) for j in range(6)])
            np.testing.assert_array_equal(_percentiles(x), want)
            assert np.isnan(_percentiles(x)[:, 4]).all() and (_percentiles(x)[:, 5] == 0.5).all()
    np.testing.assert_array_equal(_percentiles(np.array([[3.0, np.nan]])), [[1.0, 1.0]])
    np.testing.assert_array_equal(_percentiles(np.array([[2.0], [1.0], [2.0], [0.0]])),
                                  [[5 / 6], [1 / 3], [5 / 6], [0.0]])


def test_not_clicked_similarity_follows_what_the_reader_skips(trained, tmp_path):
    """An impression the reader does not click makes that article (and its story mates) skipped;
    clicking it afterwards takes it out again. Read from the store for every list, as serving does."""
    from recommender.domain import Interaction

    sample = trained.clone(tmp_path)
    engine = sample.engine()
    user = next(iter(sample.readers))
    touched = {e.article_id for e in sample.store.user_events(user, limit=10_000)}
    by_story: dict[str, list[str]] = {}
    for aid, story in sample.story.items():
        if aid not in touched and aid in engine._state.model.item_ids:
            by_story.setdefault(story, []).append(aid)
    a, mate = next(ids[:2] for ids in by_story.values() if len(ids) >= 2)

    def columns():
        _, cols = engine.score(user, [a, mate], features=True)
        return {n: cols[PREFIX + n] for n in ("skipped_sim_max", "skipped_count", "reader_impressions")}

    before = columns()
    sample.store.add_events([Interaction(user, a, "impression", sample.now - 30.0, event_id="skip-1")])
    after = columns()
    assert after["skipped_count"][0] == pytest.approx(np.log1p(1)) and after["skipped_count"][1] == 0.0
    assert after["skipped_sim_max"][0] == pytest.approx(1.0, abs=1e-5)
    assert before["skipped_sim_max"][0] < 0.999
    assert after["skipped_sim_max"][1] >= before["skipped_sim_max"][1]
    assert after["reader_impressions"][0] > before["reader_impressions"][0]
    sample.store.add_events([Interaction(user, a, "click", sample.now - 20.0, event_id="click-1")])
    clicked = columns()
    assert clicked["skipped_count"][0] == 0.0 and clicked["skipped_sim_max"][0] < 1.0 - 1e-6
    engine.close()
    sample.store.close()


def test_feed_is_ranked_by_the_learned_stage_when_the_model_has_one(trained, tmp_path):
    """A ranker that wants the oldest articles first turns the fresh-first blend around."""
    engine = trained.engine()
    user = next(iter(trained.readers))
    blend = engine.feed(user, limit=10)
    state = engine._state
    names = list(FEATURE_NAMES)
    X = np.zeros((2, len(names)))
    X[1, names.index("age")] = 1.0
    ranker = LearnedRanker(kind="logistic").fit(np.vstack([X] * 10), np.tile([0.0, 1.0], 10), names)
    assert ranker.coef_[names.index("age")] > 0
    engine.use_model(with_learned(state.model, ranker))
    learned = engine.feed(user, limit=10)
    published = {i.article_id: parse_time(trained.articles[i.article_id]["published_at"], "published_at")
                 for i in blend.items + learned.items}
    assert np.mean([published[i.article_id] for i in learned.items]) < np.mean(
        [published[i.article_id] for i in blend.items])
    assert not {i.article_id for i in learned.items} & {
        e.article_id for e in trained.store.user_events(user, limit=1000) if e.event != "impression"}
    # engine.score ranks an impression with the same ranker
    ids = [i.article_id for i in blend.items]
    scores, columns = engine.score(user, ids, features=True)
    X = np.column_stack([columns[PREFIX + n] for n in FEATURE_NAMES])
    np.testing.assert_allclose(scores, ranker.decision_function(X))
    engine.close()


def test_a_trained_bundle_with_a_learned_stage_is_served_from_disk(trained, tmp_path):
    from recommender.models.fitting import train

    sample = trained.clone(tmp_path)
    names = list(FEATURE_NAMES)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, len(names)))
    y = (X[:, names.index("content")] + rng.normal(size=400) > 0).astype(float)
    ranker = LearnedRanker(kind="hgb", max_iter=20, min_samples_leaf=20).fit(X, y, names)
    version, built = train(sample.store, sample.models_dir, as_of=sample.now, seed=0, promote=True, learned=ranker)
    assert built.report["learned_ranker"]["kind"] == "hgb"
    engine = sample.engine()
    assert engine.model_version == version and engine._state.model.learned is not None
    user = next(iter(sample.readers))
    feed = engine.feed(user, limit=10)
    ids = [i.article_id for i in feed.items]
    scores, columns = engine.score(user, ids, features=True)
    X = np.column_stack([columns[PREFIX + n] for n in FEATURE_NAMES])
    np.testing.assert_array_equal(scores, ranker.decision_function(X))
    engine.close()
    sample.store.close()


# --- report metrics: how far re-ranking moves a list, rank-biased category mix -------------------
def slow_rbo(a, b, p):
    """RBO_ext straight from the definition (Webber et al. 2010, eq. 32)."""
    k = min(len(a), len(b))
    X = lambda d: len(set(a[:d]) & set(b[:d]))  # noqa: E731
    return X(k) / k * p ** k + (1 - p) / p * sum(p ** d * X(d) / d for d in range(1, k + 1))


def test_rank_biased_overlap_matches_the_definition_and_its_limits(rng):
    from recommender.evaluation.metrics import rank_biased_overlap

    for _ in range(50):
        items = rng.permutation(30)
        a, b = list(items[:10]), list(rng.permutation(items[:15])[:10])
        assert rank_biased_overlap(a, b, 0.9) == pytest.approx(slow_rbo(a, b, 0.9))
    assert rank_biased_overlap([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert rank_biased_overlap([1, 2, 3], [4, 5, 6]) == 0.0
    # a swap at the top moves a list more than the same swap at the bottom
    assert rank_biased_overlap([2, 1, 3, 4, 5], [1, 2, 3, 4, 5]) < rank_biased_overlap([1, 2, 3, 5, 4], [1, 2, 3, 4, 5])
    assert np.isnan(rank_biased_overlap([], [1]))


def test_rank_biased_entropy_weights_the_top_of_the_list():
    from recommender.evaluation.metrics import category_entropy, rank_biased_entropy

    assert rank_biased_entropy(["a"] * 5) == 0.0
    mixed_top = ["a", "b", "a", "a", "a", "a"]
    mixed_bottom = ["a", "a", "a", "a", "a", "b"]
    assert category_entropy(mixed_top) == category_entropy(mixed_bottom)
    assert rank_biased_entropy(mixed_top) > rank_biased_entropy(mixed_bottom)
    assert rank_biased_entropy(["a", "b"], p=0.999999) == pytest.approx(1.0, abs=1e-5)


def test_feature_ablation_shows_which_columns_carry_the_signal(rng):
    from recommender.evaluation.learning import FEATURE_GROUPS, feature_ablation

    assert set().union(*FEATURE_GROUPS.values()) <= set(FEATURE_NAMES)
    data = lists_with_position_bias(rng, n_lists=300)  # relevance lives in "content", a blend part
    out = feature_ablation(data, 200.0, {"kind": "logistic"})
    assert out["all features"]["auc"] > out["without blend parts"]["auc"] + 0.1
    assert abs(out["all features"]["auc"] - out["without ranks inside the list"]["auc"]) < 0.05


def test_an_engine_loaded_after_many_arrivals_scores_them_without_new_events(trained, tmp_path):
    """More articles published since training than the counters' spare room, and no event since:
    scoring them (the batch protocol does) must find room in the live counters."""
    from recommender.domain import Article

    sample = trained.clone(tmp_path)
    fresh = [Article(f"late-{n}", f"Berita terbaru nomor {n} tentang banjir", "Isi berita.", "Nasional",
                     sample.now - 30.0) for n in range(400)]
    sample.store.upsert_articles(fresh)
    engine = sample.engine()
    user = next(iter(sample.readers))
    scores, columns = engine.score(user, [a.article_id for a in fresh[-5:]], features=True)
    assert np.isfinite(scores).all() and (columns[PREFIX + "impressions_all"] == 0).all()
    engine.close()
    sample.store.close()


def test_cli_train_with_a_learned_stage_keeps_it_only_when_it_beat_the_blend(tmp_path, monkeypatch, capsys):
    import json

    from recommender.models.bundle import load_bundle
    from training.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("NEWSREC_HOME", str(home))
    monkeypatch.delenv("NEWSREC_DB", raising=False)
    monkeypatch.delenv("NEWSREC_MODELS", raising=False)
    assert main(["sample", "--articles", "150", "--users", "60", "--days", "4", "--seed", "5", "--ingest"]) == 0
    assert main(["train", "--learned-days", "1"]) == 1
    assert "at least 2" in capsys.readouterr().err
    assert main(["train", "--learned-days", "2", "--promote", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    stage = summary["learned_stage"]
    blend = stage["reference"]["blend"]
    beat = sum(stage["chosen_validation"].values()) > sum(blend[k] for k in ("auc", "mrr", "ndcg@10"))
    assert stage["used"] == beat
    bundle = load_bundle(home / "models", summary["version"])
    assert ("learned" in bundle.documents) == stage["used"]
    if stage["used"]:
        assert bundle.documents["learned"]["params"] == {**stage["chosen"]["settings"], **{
            k: v for k, v in bundle.documents["learned"]["params"].items() if k not in stage["chosen"]["settings"]}}
