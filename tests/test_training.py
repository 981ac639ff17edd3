"""Training on the generated sample recovers what the generator hid."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.models.bundle import load_bundle, verify_bundle
from recommender.models.served import ServingModel
from recommender.models.neighbours import top_k
from recommender.params import TrainParams
from recommender.models.fitting import TrainingError, build_model


def test_text_neighbours_are_mostly_from_the_same_story(trained):
    model = trained.built.serving_model()
    idx, _ = model.neighbours["text"]
    ids = model.item_ids.ids
    shares = []
    for row, article in enumerate(ids[model.window_start:]):
        story = trained.story[str(article)]
        mates = sum(trained.story[str(a)] == story for a in ids) - 1
        if mates < 3:
            continue
        top = [str(ids[j]) for j in idx[row, :3] if j >= 0]
        shares.append(np.mean([trained.story[a] == story for a in top]))
    assert len(shares) > 50
    assert np.mean(shares) > 0.8


def test_new_article_gets_a_bridged_vector_near_its_story(trained):
    model = trained.built.serving_model()
    evidence = model.evidence
    # stories with several well-read articles: hold one out as if it were brand new
    ids = [str(i) for i in model.item_ids.ids]
    hits, baseline = [], []
    rng = np.random.default_rng(0)
    for i in np.flatnonzero(evidence >= 5)[:80]:
        story = trained.story[ids[i]]
        others = [j for j in np.flatnonzero(evidence >= 5) if j != i]
        same = [trained.story[ids[j]] == story for j in others]
        if sum(same) < 2:
            continue
        a = trained.articles[ids[i]]
        _, factors = model.embed(a["title"], a["body"])
        F = model.item_factors[others]
        sims = F @ factors / np.maximum(np.linalg.norm(F, axis=1) * np.linalg.norm(factors), 1e-9)
        best = top_k(sims, 3)
        hits.append(np.mean([same[b] for b in best]))
        baseline.append(np.mean(rng.choice(same, 3)))
    assert len(hits) >= 10
    assert np.mean(hits) > 0.5 and np.mean(hits) > 3 * np.mean(baseline)


def test_bundle_round_trips_exactly(trained):
    bundle = load_bundle(trained.models_dir, trained.version)
    for name, array in trained.built.arrays.items():
        assert np.array_equal(np.asarray(bundle.arrays[name]), array), name
        assert bundle.arrays[name].dtype == array.dtype
    loaded = ServingModel.from_bundle(bundle)
    a = trained.data.articles[0]
    in_memory = trained.built.serving_model()
    assert np.array_equal(loaded.embed(a["title"], a["body"])[0], in_memory.embed(a["title"], a["body"])[0])
    from recommender.domain import parse_time

    known = [x for x in trained.data.articles if parse_time(x["published_at"], "t") <= trained.now + 300]
    assert bundle.manifest["counts"]["articles"] == len(known)


def test_flipped_byte_is_refused(trained, tmp_path):
    copy = trained.clone(tmp_path)
    target = copy.models_dir / copy.version / "item_factors.npy"
    raw = bytearray(target.read_bytes())
    raw[-7] ^= 0x01
    target.write_bytes(bytes(raw))
    assert any("item_factors.npy" in p for p in verify_bundle(copy.models_dir, copy.version))
    from recommender.models.bundle import BundleError

    with pytest.raises(BundleError):
        load_bundle(copy.models_dir, copy.version)


def test_events_after_as_of_never_reach_training(trained):
    early = trained.now - 2 * 86400
    built = build_model(trained.store, as_of=early, seed=0)
    assert built.manifest["data_window"]["end"] < trained.built.manifest["data_window"]["end"]
    assert built.report["events_used"] < trained.built.report["events_used"]
    # nothing published after the cut is in the bundle
    assert float(built.arrays["published_at"].max()) <= early + 300


def test_empty_catalog_is_refused_with_a_clear_message(store):
    with pytest.raises(TrainingError, match="ingest articles first"):
        build_model(store)


def test_bpr_option_trains(trained):
    params = TrainParams(cf_method="bpr", iterations=20, factors=16)
    built = build_model(trained.store, params, as_of=trained.now, seed=0)
    assert built.documents["params"]["has_cf"] and built.arrays["item_factors"].shape[1] >= 16


def test_bm25_weighting_option_and_unknown_weighting(trained):
    built = build_model(trained.store, TrainParams(cf_weighting="bm25", iterations=5), as_of=trained.now, seed=0)
    assert built.documents["params"]["has_cf"]
    with pytest.raises(TrainingError, match="cf_weighting"):
        build_model(trained.store, TrainParams(cf_weighting="tfidf"), as_of=trained.now, seed=0)
