"""Position-corrected click-through: clicks over the clicks expected at the positions shown.

The position curve is fitted at training and kept in the bundle; exposures count the curve at
their position, offline (training) and online (the engine following the store) alike.
"""

from __future__ import annotations

import numpy as np
import pytest

from recommender.domain import EVENT_CODES, Article, Interaction
from recommender.models.fitting import fit_position_curve
from recommender.models.popularity import DecayedCounters, default_curve, position_curve, position_weights
from recommender.serving.ranking import ctr_lift
from recommender.store import ServedList

SHOW, CLICK = EVENT_CODES["impression"], EVENT_CODES["click"]
HALF_LIFE = 6.0


def biased_log(rng, rates, shows_per_position=4000):
    """Impressions at every position and clicks drawn with the given click rate per position."""
    position = np.repeat(np.arange(len(rates)), shows_per_position)
    clicked = rng.random(position.size) < np.asarray(rates)[position]
    event = np.concatenate([np.full(position.size, SHOW), np.full(int(clicked.sum()), CLICK)]).astype(np.int8)
    return event, np.concatenate([position, position[clicked]])


def test_the_curve_follows_the_logged_click_rate_by_position(rng):
    event, position = biased_log(rng, [0.2, 0.1, 0.05, 0.05])
    curve = fit_position_curve(event, position)
    assert curve[0] == 1.0
    assert curve[1] == pytest.approx(0.5, abs=0.08) and curve[2] == pytest.approx(0.25, abs=0.06)
    assert (np.diff(curve) <= 0).all()  # a lower slot is never examined more
    # positions the log never showed fall back to the default shape, scaled: still non-increasing, floored
    assert curve[10] <= curve[3] and curve.min() > 0


def test_without_positions_in_the_log_the_curve_is_the_default():
    event = np.array([SHOW, SHOW, CLICK], dtype=np.int8)
    curve = fit_position_curve(event, np.full(3, -1))
    np.testing.assert_allclose(curve, default_curve(), rtol=1e-9)
    # an impression of unknown position counts as a first position (the uncorrected count)
    np.testing.assert_array_equal(position_weights(curve, np.array([-1, 0, 3]), 3), [1.0, 1.0, curve[3]])


def test_an_article_clicked_low_in_lists_outranks_one_with_the_same_clicks_at_the_top():
    curve = position_curve(np.zeros(0), np.zeros(0))
    counters = DecayedCounters.empty(3, as_of=1000.0, half_life_hours=HALF_LIFE)
    counters.keep_expected(curve)
    # article 0 shown 200 times first, article 1 shown 200 times tenth, both clicked 10 times;
    # article 2 shown 200 times first and clicked 30 times (a truly better article)
    item = np.repeat([0, 1, 2], 200)
    pos = np.repeat([0, 9, 0], 200)
    clicks = np.array([0] * 10 + [1] * 10 + [2] * 30)
    click_pos = np.array([0] * 10 + [9] * 10 + [0] * 30)
    counters.add(np.concatenate([item, clicks]),
                 np.concatenate([np.full(item.size, SHOW), np.full(clicks.size, CLICK)]).astype(np.int8),
                 np.full(item.size + clicks.size, 1000.0), position=np.concatenate([pos, click_pos]))
    index = np.arange(3)
    plain = ctr_lift(counters, index, 20.0, position_corrected=False)
    corrected = ctr_lift(counters, index, 20.0, position_corrected=True)
    assert plain[0] == pytest.approx(plain[1])  # the plain counter cannot tell them apart
    assert corrected[1] > corrected[0]  # the same clicks from a slot readers look at far less
    assert corrected[2] > corrected[0] and plain[2] > plain[0]
    # the expected clicks of the low article are the tenth position's share of its exposures
    assert counters.expected[1] == pytest.approx(200 * curve[9]) and counters.expected[0] == pytest.approx(200)


def test_offline_and_online_counters_agree(rng):
    n_items, n = 40, 3000
    item = rng.integers(-1, n_items, n)
    event = rng.choice([SHOW, CLICK, EVENT_CODES["read"]], n, p=[0.8, 0.15, 0.05]).astype(np.int8)
    ts = np.sort(rng.uniform(0, 50_000, n))
    position = rng.integers(-1, 30, n)
    curve = fit_position_curve(event, position)
    offline = DecayedCounters.from_events(item, event, ts, n_items, 50_000.0, HALF_LIFE, position=position,
                                          curve=curve)
    # online: counted in chunks as they arrive, the reference time moving forward in between
    online = DecayedCounters.empty(n_items, 0.0, HALF_LIFE)
    online.keep_expected(curve)
    for chunk in np.array_split(np.arange(n), 7):
        online.advance(float(ts[chunk[0]]))
        online.add(item[chunk], event[chunk], ts[chunk], position=position[chunk])
    online.advance(50_000.0)
    np.testing.assert_allclose(online.expected, offline.expected, rtol=1e-9)
    np.testing.assert_allclose(online.clicks, offline.clicks, rtol=1e-9)
    assert (offline.expected <= offline.impressions + 1e-9).all() and offline.expected.sum() > 0


def test_the_bundle_keeps_the_curve_and_the_engine_counts_positions_as_training_does(trained, tmp_path):
    """Round trip through the bundle (plain arrays), then exposures written after training: the
    engine's live counters (store positions read back) equal the offline computation on the same log."""
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    model = engine._state.model
    assert model.position_curve is not None and model.position_curve[0] == 1.0
    assert model.counters["expected"].shape == (model.n_items,)
    assert model.counters["expected"].dtype == np.float64
    now = sample.now
    fresh = [Article(article_id=f"pos-{k}", title=f"Berita posisi {k} tentang pemilu daerah",
                     body="Isi berita tentang pemilu dan kampanye di daerah", category="Nasional",
                     published_at=now - 3600) for k in range(11)]
    sample.store.upsert_articles(fresh)
    ids = [a.article_id for a in fresh]
    top, low = ids[0], ids[9]
    lists = [ServedList(list_id=f"L{k}", user_id=f"posreader{k}", ts=now - 1800 + k,
                        article_ids=tuple(ids[:10])) for k in range(150)]
    assert sample.store.add_served_lists(lists) == 150
    clicks = [Interaction(user_id=f"posreader{k}", article_id=art, event="click", ts=now - 1000 + k,
                          list_id=f"L{k}", position=p)
              for k in range(8) for art, p in ((top, 0), (low, 9))]
    sample.store.add_events(clicks)
    engine.refresh()
    state = engine._state
    index = state.indices([top, low])
    assert (index >= 0).all()
    counters = state.counters
    plain = ctr_lift(counters, index, model.ranking.ctr_prior_strength, position_corrected=False)
    corrected = ctr_lift(counters, index, model.ranking.ctr_prior_strength, position_corrected=True)
    assert plain[0] == pytest.approx(plain[1]) and corrected[1] > corrected[0]
    # offline: the same events from a training load, counted with the bundle's curve
    log_ = sample.store.load_interactions()
    keys = sample.store.article_keys([top, low])
    item = np.select([log_.article_key == keys[top], log_.article_key == keys[low]], [0, 1], -1)
    offline = DecayedCounters.from_events(item, log_.event, log_.ts, 2, counters.as_of, counters.half_life_hours,
                                          position=log_.position, curve=model.position_curve)
    np.testing.assert_allclose(counters.expected[index], offline.expected, rtol=1e-9)
    np.testing.assert_allclose(counters.clicks[index], offline.clicks, rtol=1e-9)
    engine.close()
