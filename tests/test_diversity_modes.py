"""The diversity stage's two modes through the engine: the fixed caps (default) and MMR
(``RankingParams.diversity = "mmr"``, :func:`recommender.serving.ranking.mmr`)."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from recommender.models.fitting import train
from recommender.params import RankingParams, TrainParams

LIMIT = 10


def _with(model, **changes):
    variant = copy.copy(model)
    variant.ranking = replace(model.ranking, **changes)
    return variant


def test_mmr_feeds_follow_lambda_score_order_at_one_more_categories_below(trained):
    engine = trained.engine(feed_cache_seconds=0.0)
    try:
        base = engine._state.model
        assert base.ranking.diversity == "caps"
        readers = list(trained.readers)[:25]
        lists = {}
        for lam in (1.0, 0.3):
            engine.use_model(_with(base, diversity="mmr", mmr_lambda=lam))
            lists[lam] = [engine.feed(u, limit=LIMIT).items for u in readers]
        for items in lists[1.0]:  # lambda 1: nothing but the score decides
            scores = [i.score for i in items]
            assert len(items) == LIMIT and scores == sorted(scores, reverse=True)
        spread = {lam: np.mean([len({i.category for i in items}) for items in got]) for lam, got in lists.items()}
        assert spread[0.3] > spread[1.0], spread
        # the reader still gets their best article first
        assert sum(a[0].article_id == b[0].article_id for a, b in zip(lists[1.0], lists[0.3])) == len(readers)
    finally:
        engine.close()


def test_the_mode_round_trips_through_a_trained_bundle(trained, tmp_path):
    clone = trained.clone(tmp_path)
    params = TrainParams(ranking=RankingParams(diversity="mmr", mmr_lambda=0.6))
    version, _ = train(clone.store, clone.models_dir, params, as_of=clone.now, seed=0, promote=True)
    engine = clone.engine()
    try:
        assert engine._state.model.ranking.diversity == "mmr" and engine._state.model.ranking.mmr_lambda == 0.6
        anchor = next(iter(trained.articles))
        related = engine.related(anchor, limit=LIMIT).items
        assert related and anchor not in {i.article_id for i in related}
    finally:
        engine.close()
        clone.store.close()


def test_the_inspector_says_mmr_held_an_article_back_not_a_story_cap(trained):
    engine = trained.engine(related_cache_seconds=0)
    try:
        engine.use_model(_with(engine._state.model, diversity="mmr", mmr_lambda=0.3))
        anchor = sorted(trained.articles)[0]
        seen = engine.inspect_related(anchor, limit=LIMIT, others=tuple(sorted(trained.articles)))
        listed = [item.article_id for item in seen["list"].items]
        assert listed == [item.article_id for item in engine.related(anchor, limit=LIMIT).items]
        last = min(item.score for item in seen["list"].items)
        verdicts = list(seen["verdicts"])
        assert not any(v.code == "story_capped" for v in verdicts)
        held = [v for v in verdicts if v.code == "mmr_redundant"]
        assert held and all(v.score > last and v.article_id not in listed for v in held)
        assert all(v.score <= last + 1e-9 for v in verdicts if v.code == "scored_lower")
    finally:
        engine.close()
