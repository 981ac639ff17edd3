"""Paths for large catalogs: candidate feeds match a scan of the window; cached related lists follow the catalog."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.serving.ranking import factor_moments, summarize_window

# pools far smaller than the 500-article sample, so the candidate path really leaves articles out
SMALL_POOLS = {"full_scan_max": 0, "feed_pool": 30, "feed_pool_per_label": 10, "feed_pool_per_cluster": 3,
               "feed_clusters": 2}


def _ids(ranked):
    return [item.article_id for item in ranked.items]


def test_candidate_feeds_match_the_full_scan(trained):
    full, cand = trained.engine(), trained.engine(**SMALL_POOLS)
    overlap, deviation = [], []
    for user_id in list(trained.readers)[:120]:
        a, b = full.feed(user_id, limit=10), cand.feed(user_id, limit=10)
        overlap.append(len(set(_ids(a)) & set(_ids(b))) / max(1, len(a.items)))
        scores = {item.article_id: item.score for item in a.items}
        deviation += [abs(item.score - scores[item.article_id]) for item in b.items if item.article_id in scores]
    assert cand._state.summary is not None and full._state.summary is None
    assert np.mean(overlap) >= 0.85
    assert np.median(deviation) < 0.02


def test_candidate_feeds_leave_out_read_and_taken_down_articles(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine(**SMALL_POOLS)
    limit = engine.config.max_reader_events  # the feed looks this far back
    user_id = max(sample.readers, key=lambda u: len(sample.store.user_events(u, limit=limit)))
    read = {e.article_id for e in sample.store.user_events(user_id, limit=limit) if e.event in ("click", "read", "share")}
    first = _ids(engine.feed(user_id, limit=20))
    assert first and not read & set(first)
    engine.takedown(first[0])
    assert first[0] not in _ids(engine.feed(user_id, limit=20))


def test_window_summary_puts_cf_on_the_window_scale(trained, rng):
    engine = trained.engine(**SMALL_POOLS)
    state = engine._state
    snap = state.snapshot()
    base = state.model.item_factors[state.model.window_start:]
    summary = summarize_window(snap, state.counters, trained.now, factor_moments(base), pool=5, per_label=2)
    x = rng.normal(size=base.shape[1])
    mean, sd = summary.cf_scale(x)
    direct = np.asarray(snap.window_arrays()["factors"], dtype=np.float64) @ x  # bundle window and fresh articles
    assert mean == pytest.approx(direct.mean(), rel=1e-6, abs=1e-9)
    assert sd == pytest.approx(direct.std(), rel=1e-6)
    assert summary.popular.size == 5 and all(v.size <= 2 for v in summary.by_category.values())


def test_related_lists_are_cached_until_the_catalog_changes(trained, tmp_path):
    sample = trained.clone(tmp_path)
    engine = sample.engine()
    anchor = sample.engine()._state.model.item_ids.id(sample.engine()._state.model.n_items - 1)
    first, second = engine.related(anchor, limit=5), engine.related(anchor, limit=5)
    assert _ids(first) == _ids(second) and first.list_id != second.list_id  # every list served is its own
    assert (engine._state.model.item_ids.get(anchor), 5) in engine._state.related_cache
    engine.takedown(_ids(first)[0])
    assert _ids(first)[0] not in _ids(engine.related(anchor, limit=5))
    uncached = sample.engine(related_cache_seconds=0)
    uncached.related(anchor, limit=5)
    assert not uncached._state.related_cache
