"""Tests for the synthetic portal: formats, determinism, stories and reader behaviour."""

from __future__ import annotations

import collections
import importlib.util
import itertools
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from recommender.domain import CATEGORIES, EVENT_TYPES, WIB, Article, Interaction, Preferences
from recommender.datasets.synthetic import DEFAULT_END, REGIONS, SampleData, generate, slugify

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "data" / "sample"
SAMPLE_SEED = 7  # what data/generate_sample.py uses by default

ARTICLE_KEYS = {"article_id", "title", "body", "category", "region", "tags", "url", "published_at", "language"}
EVENT_KEYS = {"event_id", "user_id", "article_id", "event", "ts", "dwell_seconds"}
WORD_RE = re.compile(r"\w+")


@pytest.fixture(scope="module")
def data() -> SampleData:
    return generate(seed=11)


@pytest.fixture(scope="module")
def many_readers() -> SampleData:
    """More readers than the sample, so per-category statistics are not at the mercy of a few."""
    return generate(n_articles=600, n_users=900, days=7, seed=21)


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def user_truth(d: SampleData) -> dict[str, dict]:
    return {t["user_id"]: t for t in d.truth if t["kind"] == "user"}


def clicks_by_user(d: SampleData) -> dict[str, list[str]]:
    category = {a["article_id"]: a["category"] for a in d.articles}
    out = collections.defaultdict(list)
    for e in d.events:
        if e["event"] == "click":
            out[e["user_id"]].append(category[e["article_id"]])
    return out


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_identical_files(tmp_path):
    a = generate(n_articles=80, n_users=40, days=3, seed=5)
    b = generate(n_articles=80, n_users=40, days=3, seed=5)
    assert a == b
    pa, pb = a.write_jsonl(tmp_path / "a"), b.write_jsonl(tmp_path / "b")
    assert set(pa) == {"articles", "events", "preferences", "truth"}
    for name in pa:
        assert pa[name].name == f"{name}.jsonl"
        assert pa[name].read_bytes() == pb[name].read_bytes()


def test_different_seed_differs():
    a = generate(n_articles=80, n_users=40, days=3, seed=5)
    b = generate(n_articles=80, n_users=40, days=3, seed=6)
    assert [x["title"] for x in a.articles] != [x["title"] for x in b.articles]
    assert a.events != b.events


def test_committed_sample_is_up_to_date():
    expected = generate(seed=SAMPLE_SEED)
    for name in ("articles", "events", "preferences", "truth"):
        lines = (SAMPLE_DIR / f"{name}.jsonl").read_text("utf-8").splitlines()
        assert [json.loads(line) for line in lines] == getattr(expected, name), (
            f"data/sample/{name}.jsonl is stale: run `.venv/bin/python data/generate_sample.py`"
        )
    size = sum(p.stat().st_size for p in SAMPLE_DIR.glob("*.jsonl"))
    assert size < 3_000_000


# --- formats ---------------------------------------------------------------------------------------


def test_article_schema(data):
    ids = [a["article_id"] for a in data.articles]
    assert ids == [f"a{i:06d}" for i in range(1, 601)]
    times = [parse(a["published_at"]) for a in data.articles]
    assert times == sorted(times)
    start = DEFAULT_END - timedelta(days=7)
    for a, published in zip(data.articles, times):
        assert set(a) == ARTICLE_KEYS
        assert published.tzinfo is not None and published.utcoffset() == timedelta(hours=7)
        assert start <= published < DEFAULT_END
        assert a["category"] in CATEGORIES
        assert a["region"] is None or a["region"] in REGIONS
        if a["category"] == "Regional":
            assert a["region"] is not None
        assert a["language"] == "id"
        assert isinstance(a["title"], str) and 20 <= len(a["title"]) <= 160
        assert 80 <= len(a["body"].split()) <= 300
        assert a["tags"] and all(isinstance(t, str) and t for t in a["tags"])
        assert len(set(a["tags"])) == len(a["tags"])
        assert a["url"] == (
            f"https://www.inews.id/{a['category'].lower()}/{slugify(a['title'])}-{a['article_id']}"
        )
        assert re.fullmatch(r"https://www\.inews\.id/[a-z]+/[a-z0-9-]+-a\d{6}", a["url"])
    assert {a["category"] for a in data.articles} == set(CATEGORIES)
    assert len({a["region"] for a in data.articles} - {None}) >= 10


def test_event_schema(data):
    users = {t["user_id"] for t in data.truth if t["kind"] == "user"}
    articles = {a["article_id"] for a in data.articles}
    assert [e["event_id"] for e in data.events] == [f"e{i:07d}" for i in range(1, len(data.events) + 1)]
    times = [parse(e["ts"]) for e in data.events]
    assert times == sorted(times)
    for e, ts in zip(data.events, times):
        assert set(e) == EVENT_KEYS
        assert ts.tzinfo is not None and ts.utcoffset() == timedelta(hours=7)
        assert e["event"] in EVENT_TYPES
        assert re.fullmatch(r"u\d{5}", e["user_id"]) and e["user_id"] in users
        assert e["article_id"] in articles
        if e["event"] == "read":
            assert isinstance(e["dwell_seconds"], float) and 0 < e["dwell_seconds"] <= 1200
        else:
            assert e["dwell_seconds"] is None
    assert {e["event"] for e in data.events} == set(EVENT_TYPES) - {"hide"}  # synthetic readers never hide


def test_records_pass_the_ingester_validation(data):
    for a in data.articles:
        Article.from_dict(a, strict=True)
    for e in data.events[:3000]:
        Interaction.from_dict(e, strict=True)
    for p in data.preferences:
        Preferences.from_dict(p, strict=True)


def test_preferences_follow_hidden_tastes(data):
    truth = user_truth(data)
    assert 0.2 * len(truth) <= len(data.preferences) <= 0.6 * len(truth)
    assert len({p["user_id"] for p in data.preferences}) == len(data.preferences)
    hits = 0
    for p in data.preferences:
        assert set(p) == {"user_id", "categories", "regions"}
        assert p["categories"] and set(p["categories"]) <= set(CATEGORIES)
        assert set(p["regions"]) <= set(REGIONS)
        hits += truth[p["user_id"]]["favourite_category"] in p["categories"]
    assert hits >= 0.9 * len(data.preferences)


def test_truth_rows(data):
    kinds = collections.Counter(t["kind"] for t in data.truth)
    assert kinds == {"article": 600, "user": 300}
    stories = {t["article_id"]: t["story_id"] for t in data.truth if t["kind"] == "article"}
    assert set(stories) == {a["article_id"] for a in data.articles}
    for t in user_truth(data).values():
        assert set(t["categories"]) == set(CATEGORIES) and set(t["regions"]) == set(REGIONS)
        assert sum(t["categories"].values()) == pytest.approx(1.0, abs=1e-3)
        assert sum(t["regions"].values()) == pytest.approx(1.0, abs=1e-3)
        assert t["favourite_category"] == max(t["categories"], key=t["categories"].get)


def test_end_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(n_articles=10, n_users=5, days=1, end=datetime(2026, 11, 1))


def test_custom_end_is_written_in_wib():
    end = datetime(2026, 5, 1, 3, 0, tzinfo=timezone.utc)  # 10:00 WIB
    d = generate(n_articles=30, n_users=20, days=2, seed=1, end=end)
    published = [parse(a["published_at"]) for a in d.articles]
    assert all(p.utcoffset() == timedelta(hours=7) for p in published)
    assert end - timedelta(days=2) <= min(published) and max(published) < end
    assert all(parse(e["ts"]) < end for e in d.events)


def test_slugify():
    assert slugify("Persib Tekuk Persija 2-1, Bobotoh Bersorak!") == "persib-tekuk-persija-2-1-bobotoh-bersorak"
    assert len(slugify("kata " * 40)) <= 80


# --- stories ---------------------------------------------------------------------------------------


def test_stories_are_coherent(data):
    by_story = collections.defaultdict(list)
    article = {a["article_id"]: a for a in data.articles}
    for t in data.truth:
        if t["kind"] == "article":
            by_story[t["story_id"]].append(article[t["article_id"]])
    sizes = collections.Counter(len(v) for v in by_story.values())
    assert set(sizes) <= set(range(1, 9)) and sizes[1] > 0 and max(sizes) >= 5
    for members in by_story.values():
        assert len({a["category"] for a in members}) == 1
        assert len({a["region"] for a in members}) == 1
        times = [parse(a["published_at"]) for a in members]
        assert max(times) - min(times) <= timedelta(days=3)
        assert len({a["title"] for a in members}) == len(members)


def test_story_articles_share_vocabulary(data):
    words = {a["article_id"]: set(WORD_RE.findall((a["title"] + " " + a["body"]).lower())) for a in data.articles}
    story = {t["article_id"]: t["story_id"] for t in data.truth if t["kind"] == "article"}
    category = {a["article_id"]: a["category"] for a in data.articles}
    within, same_category = [], []
    for x, y in itertools.combinations(sorted(words), 2):
        if category[x] != category[y]:
            continue
        jaccard = len(words[x] & words[y]) / len(words[x] | words[y])
        (within if story[x] == story[y] else same_category).append(jaccard)
    assert len(within) > 100
    # articles of one story are much closer than other stories of the same category
    assert np.mean(within) > 1.5 * np.mean(same_category)
    assert np.percentile(within, 25) > np.percentile(same_category, 75)


# --- readers ---------------------------------------------------------------------------------------


def test_events_follow_publication_and_sessions(data):
    published = {a["article_id"]: parse(a["published_at"]) for a in data.articles}
    seen, clicked, read = set(), set(), set()
    for e in data.events:
        ts = parse(e["ts"])
        assert ts > published[e["article_id"]]
        assert ts < DEFAULT_END
        key = (e["user_id"], e["article_id"])
        if e["event"] == "impression":
            seen.add(key)
        elif e["event"] == "click":
            assert key in seen, "a click must follow an impression of the same article"
            clicked.add(key)
        elif e["event"] == "read":
            assert key in clicked
            read.add(key)
        else:
            assert key in read
    assert len(seen - clicked) > len(clicked) > 100  # impressions with and without clicks


def test_click_through_rate_is_sane(data):
    counts = collections.Counter(e["event"] for e in data.events)
    assert 0.08 <= counts["click"] / counts["impression"] <= 0.25
    assert 0.5 <= counts["read"] / counts["click"] <= 0.95
    assert 0 < counts["share"] < counts["read"] / 5
    impressions_per_user = collections.Counter(e["user_id"] for e in data.events if e["event"] == "impression")
    activity = np.array(sorted(impressions_per_user.values()))
    assert activity[-1] > 5 * np.median(activity)  # a few heavy readers, many light ones


def test_olahraga_fans_click_mostly_olahraga(many_readers):
    truth = user_truth(many_readers)
    clicks = clicks_by_user(many_readers)
    fans = [cs for u, cs in clicks.items() if truth[u]["favourite_category"] == "Olahraga" and len(cs) >= 3]
    assert len(fans) >= 30
    shares = [np.mean([c == "Olahraga" for c in cs]) for cs in fans]
    assert np.median(shares) >= 0.5
    assert np.mean([c == "Olahraga" for cs in fans for c in cs]) >= 0.5
    everyone = [c == "Olahraga" for u, cs in clicks.items() if truth[u]["favourite_category"] != "Olahraga" for c in cs]
    assert np.mean(everyone) < 0.25


def test_active_readers_click_several_categories(many_readers):
    truth = user_truth(many_readers)
    clicks = clicks_by_user(many_readers)
    active = [cs for cs in clicks.values() if len(cs) >= 10]
    assert len(active) >= 50
    assert np.mean([len(set(cs)) >= 2 for cs in active]) >= 0.85
    # ... while the favourite still leads for most of them
    fav = [np.mean([c == truth[u]["favourite_category"] for c in cs]) for u, cs in clicks.items() if len(cs) >= 10]
    assert np.median(fav) >= 0.5


def test_readers_prefer_their_home_region(many_readers):
    truth = user_truth(many_readers)
    region = {a["article_id"]: a["region"] for a in many_readers.articles if a["category"] == "Regional"}
    home = {u: max(t["regions"], key=t["regions"].get) for u, t in truth.items()}
    pairs = [(home[e["user_id"]], region[e["article_id"]])
             for e in many_readers.events if e["event"] == "click" and e["article_id"] in region]
    assert len(pairs) > 100
    hit_rate = np.mean([h == r for h, r in pairs])
    # the hit rate of readers who pick Regional articles blind to the edition
    homes, supply = collections.Counter(h for h, _ in pairs), collections.Counter(region.values())
    chance = sum(homes[r] * supply[r] for r in REGIONS) / (len(pairs) * len(region))
    assert hit_rate > 2 * chance


def test_generate_sample_script(tmp_path):
    spec = importlib.util.spec_from_file_location("generate_sample", ROOT / "data" / "generate_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "sample"
    args = ["--out", str(out), "--articles", "40", "--users", "15", "--days", "2", "--seed", "3"]
    assert module.main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "articles.jsonl", "events.jsonl", "preferences.jsonl", "truth.jsonl",
    ]
    expected = generate(n_articles=40, n_users=15, days=2, seed=3)
    lines = (out / "articles.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == expected.articles
    assert module.parse_end("2026-01-02T03:04:05").tzinfo == WIB
