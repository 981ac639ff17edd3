"""Portal-scale synthetic data, fast: 100k articles, 1M readers, 10M events in a few minutes.

``recommender.synthetic`` writes a small sample whose every detail is realistic; this module
trades detail for speed so the benchmarks can run at the size of a national portal. All of it
is vectorized numpy; rows go straight into a SQLite store with ``executemany`` (or into a JSON
Lines file for the importer benchmark).

What it keeps of real news data, because the costs depend on it:

* **Text** with a Zipf vocabulary, phrases that repeat, subtopic words (25 per category) and
  per-story names: ~200 tokens a body after stop words and the 100 commonest words making
  ~15 % of them, like the 1,246 real Kompas/Tribunnews articles of 27 Feb 2023. It is more
  diverse than real text (on a corpus of that size 29 % new words and 74 % new bigrams per
  token against 9 % and 47 %), so TF-IDF costs are if anything overstated; in SVD space a
  random pair of articles has cosine ~0.13 (real: 0.02), two articles of one story ~0.95.
* **Power-law popularity and time**: each article's appeal is Pareto distributed and its
  interest decays with age as a power law (Lomax, half of it in the first ~6 hours); reader
  activity is Zipf distributed (most readers come once or twice, a few every day).
* **Sessions**: readers read several articles of their favourite category minutes apart, so
  co-reading and collaborative filtering have structure to find.

Data sets are cached under ``benchmarks/cache/`` (git-ignored), keyed by their size and seed.

Usage::

    python benchmarks/synthetic_scale.py --articles 100000 --users 1000000 --events 10000000
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

try:
    from common import CACHE, ROOT
except ImportError:  # imported as benchmarks.synthetic_scale
    from benchmarks.common import CACHE, ROOT

from recommender.domain import CATEGORIES, EVENT_CODES, WIB, format_time
from recommender.store import SQLiteStore
from recommender.text.cleaning import STOP_WORDS

log = logging.getLogger(__name__)

# bump when the generator changes: cached stores are keyed by it (v3: the store's sequence counter
# set after the events, and its own reader index instead of schema 1's beside it)
FORMAT = "v3"
END = datetime(2026, 11, 1, tzinfo=WIB).timestamp()
"""End of the simulated span (fixed, in the past, so a seed alone fixes the data)."""

CATEGORY_SHARE = {"Nasional": 0.20, "Internasional": 0.10, "Ekonomi": 0.15, "Olahraga": 0.15,
                  "Teknologi": 0.08, "Hiburan": 0.12, "Otomotif": 0.06, "Regional": 0.14}
REGIONS = ("Jakarta", "Jabar", "Jateng", "Jatim", "Sumut", "Sulsel", "Bali", "Banten", "Yogyakarta",
           "Kalbar", "Papua", "Aceh")
EVENT_MIX = {"impression": 0.15, "click": 0.40, "read": 0.40, "share": 0.05}
"""Share of each event type. Most events carry interest so the CF matrix is as large as the log."""

N_WORDS = 650_000
BACKGROUND = 150_000  # words [0, BACKGROUND) are shared by every category
SUBTOPICS = 25  # per category (football, badminton, ...): a story belongs to one
TOPIC_WORDS = 1500  # per subtopic, right after the background words
BODY_MIX = (0.45, 0.20, 0.35)  # background, subtopic, story words
STORY_WORDS = 12
SUCCESSORS = 4
PHRASE_LENGTHS = (0.2, 0.3, 0.3, 0.2)
BG_ZIPF = 1.1
BG_OFFSET = 30.0
MEDIAN_BODY_TOKENS = 190
SESSION_MEAN = 3.0
LOYALTY = 0.75  # share of sessions a reader spends in their favourite category
INTEREST_HALF_HOURS = 6.0
INTEREST_SHAPE = 1.2


@dataclass
class ScaleData:
    """Generated rows as arrays (articles in publication order, events in time order)."""

    article_ids: list[str]
    titles: list[str]
    bodies: list[str]
    category: np.ndarray  # int (n_articles,) into CATEGORIES
    region: np.ndarray  # int (n_articles,) into REGIONS, -1 for none
    published_at: np.ndarray  # float (n_articles,)
    story: np.ndarray  # int (n_articles,)
    n_users: int
    favourite: np.ndarray  # int (n_users,) favourite category
    home_region: np.ndarray  # int (n_users,)
    ev_user: np.ndarray  # int (n_events,)
    ev_article: np.ndarray
    ev_code: np.ndarray  # int8
    ev_ts: np.ndarray  # float64
    ev_dwell: np.ndarray  # float32, NaN when none


# -- text ----------------------------------------------------------------------------------

def _words(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct pronounceable pseudo-Indonesian words, not stop words."""
    onsets = np.array(["b", "c", "d", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "w", "y",
                       "ng", "ny", "sy", "kh", "pr", "tr", "br", "st"])
    vowels = np.array(["a", "i", "u", "e", "o", "a", "i", "a"])
    finals = np.array(["", "", "", "n", "ng", "r", "s", "t", "k", "h", "l", "m"])
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        m = int((n - len(out)) * 1.3) + 1000
        syll = rng.integers(2, 5, size=m)
        parts = []
        for s in range(4):
            sy = np.char.add(onsets[rng.integers(0, onsets.size, m)], vowels[rng.integers(0, vowels.size, m)])
            parts.append(np.where(syll > s, sy, ""))
        word = parts[0]
        for p in parts[1:]:
            word = np.char.add(word, p)
        word = np.char.add(word, finals[rng.integers(0, finals.size, m)])
        for w in word.tolist():
            if w not in seen and w not in STOP_WORDS and len(w) > 2:
                seen.add(w)
                out.append(w)
                if len(out) == n:
                    break
    return np.array(out, dtype=object)


def _zipf_p(n: int, s: float, offset: float) -> np.ndarray:
    p = 1.0 / np.power(np.arange(n) + offset, s)
    return p / p.sum()


def _texts(rng: np.random.Generator, topic_of: np.ndarray, story: np.ndarray, n_stories: int) -> tuple[list, list]:
    """Titles and bodies: phrases of Zipf background words, subtopic words, story names.

    A body is a run of "units": a story name, or a phrase of 1-4 words that follow each other
    through a fixed successor table (so bigrams repeat across articles as in real text).
    """
    n = topic_of.size
    words = _words(rng, N_WORDS)
    caps = np.array([w.capitalize() for w in words.tolist()], dtype=object)
    n_topic = len(CATEGORIES) * SUBTOPICS * TOPIC_WORDS
    story_words = rng.integers(BACKGROUND + n_topic, N_WORDS, size=(n_stories, STORY_WORDS))
    # successors: a background word is followed by background words, a topic word by its topic's
    succ_rank = rng.choice(BACKGROUND, size=(BACKGROUND + n_topic, SUCCESSORS), p=_zipf_p(BACKGROUND, BG_ZIPF, BG_OFFSET))
    topic_succ = rng.choice(TOPIC_WORDS, size=(n_topic, SUCCESSORS), p=_zipf_p(TOPIC_WORDS, 0.9, 5.0))
    succ_rank[BACKGROUND:] = BACKGROUND + (np.arange(n_topic) // TOPIC_WORDS * TOPIC_WORDS)[:, None] + topic_succ
    lengths = np.clip(rng.lognormal(math.log(MEDIAN_BODY_TOKENS), 0.45, size=n), 40, 1200).astype(np.int64)
    ends = np.cumsum(lengths)
    total = int(ends[-1])
    unit_len = rng.choice(np.arange(1, 5), size=int(total / 2.0 * 1.1) + 100, p=PHRASE_LENGTHS)
    unit_start = np.cumsum(unit_len) - unit_len
    keep = unit_start < total
    unit_len, unit_start = unit_len[keep], unit_start[keep]
    m = unit_len.size
    art = np.searchsorted(ends, unit_start, side="right")
    source = rng.choice(3, size=m, p=BODY_MIX)
    first = np.empty(m, dtype=np.int64)
    bg = source == 0
    first[bg] = rng.choice(BACKGROUND, size=int(bg.sum()), p=_zipf_p(BACKGROUND, BG_ZIPF, BG_OFFSET))
    topic = source == 1
    first[topic] = (BACKGROUND + topic_of[art[topic]] * TOPIC_WORDS
                    + rng.choice(TOPIC_WORDS, size=int(topic.sum()), p=_zipf_p(TOPIC_WORDS, 0.9, 5.0)))
    st = source == 2
    # story names: the first few of a story's words are its protagonists, used most
    first[st] = story_words[story[art[st]], np.minimum(rng.geometric(0.25, size=int(st.sum())) - 1, STORY_WORDS - 1)]
    unit_len[st] = 1
    chain = np.empty((m, 4), dtype=np.int64)
    chain[:, 0] = first
    pick = rng.choice(SUCCESSORS, size=(m, 3), p=_zipf_p(SUCCESSORS, 1.0, 1.0))
    for j in range(1, 4):
        prev = chain[:, j - 1]
        inner = prev < BACKGROUND + n_topic
        chain[:, j] = np.where(inner, succ_rank[np.where(inner, prev, 0), pick[:, j - 1]], prev)
    mask = np.arange(4)[None, :] < unit_len[:, None]
    text = words[chain[mask]]
    token_art = np.repeat(art, unit_len)
    t_ends = np.cumsum(np.bincount(token_art, minlength=n))
    t_starts = t_ends - np.bincount(token_art, minlength=n)
    bodies = []
    for a in range(n):
        seg = text[t_starts[a]:t_ends[a]].tolist()
        # sentences of ~15 words, paragraphs of ~4 sentences
        sentences = [" ".join(seg[i:i + 15]).capitalize() + "." for i in range(0, len(seg), 15)]
        bodies.append("\n".join(" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4)))
    t_story = story_words[story][:, :4]
    t_topic = BACKGROUND + topic_of[:, None] * TOPIC_WORDS + rng.choice(
        TOPIC_WORDS, size=(n, 3), p=_zipf_p(TOPIC_WORDS, 0.9, 5.0))
    t_bg = rng.choice(BACKGROUND, size=(n, 1), p=_zipf_p(BACKGROUND, BG_ZIPF, BG_OFFSET))
    title_ids = np.concatenate([t_story[:, :2], t_topic[:, :2], t_story[:, 2:], t_topic[:, 2:], t_bg], axis=1)
    titles = [" ".join(row) for row in caps[title_ids].tolist()]
    return titles, bodies


# -- articles, readers, events -------------------------------------------------------------

def generate(n_articles: int, n_users: int, n_events: int, seed: int = 0, days: float = 28.0,
             end: float = END) -> ScaleData:
    """All rows of a data set, in memory."""
    rng = np.random.default_rng(seed)
    span = days * 86_400.0
    start = end - span
    # stories: power-law sizes 1..12, each over hours to a few days
    sizes = np.arange(1, 13)
    p_size = sizes ** -1.6 / (sizes ** -1.6).sum()
    n_stories = int(n_articles / float((sizes * p_size).sum()) * 1.1) + 10
    story_size = rng.choice(sizes, size=n_stories, p=p_size)
    story = np.repeat(np.arange(n_stories), story_size)[:n_articles]
    n_stories = int(story.max()) + 1
    cats = np.array([CATEGORY_SHARE[c] for c in CATEGORIES])
    story_cat = rng.choice(len(CATEGORIES), size=n_stories, p=cats / cats.sum())
    story_start = rng.uniform(start, end, size=n_stories)
    published = np.minimum(story_start[story] + rng.exponential(12 * 3600.0, size=story.size), end - 60.0)
    order = np.argsort(published, kind="stable")
    story, published = story[order], published[order]
    category = story_cat[story]
    regional = category == CATEGORIES.index("Regional")
    region = np.where(regional | (rng.random(story.size) < 0.2), rng.integers(0, len(REGIONS), story.size), -1)
    story_topic = story_cat * SUBTOPICS + rng.integers(0, SUBTOPICS, size=n_stories)
    titles, bodies = _texts(rng, story_topic[story], story, n_stories)

    # each article's share of the events: Pareto appeal x the part of its interest inside the span
    appeal = rng.pareto(1.1, size=n_articles) + 0.05
    h = INTEREST_HALF_HOURS * 3600.0 / (2 ** (1 / INTEREST_SHAPE) - 1)
    lomax_cdf = 1.0 - (1.0 + (end - published) / h) ** -INTEREST_SHAPE
    w = appeal * lomax_cdf
    per_article = rng.multinomial(n_events, w / w.sum())
    ev_article = np.repeat(np.arange(n_articles), per_article)
    u = rng.random(n_events) * lomax_cdf[ev_article]
    age = h * ((1.0 - u) ** (-1.0 / INTEREST_SHAPE) - 1.0)
    ts = published[ev_article] + age

    # readers: favourite category, Zipf activity; sessions of a few articles of one group
    favourite = rng.choice(len(CATEGORIES), size=n_users, p=cats / cats.sum())
    home_region = rng.integers(0, len(REGIONS), size=n_users)
    activity = 1.0 / (rng.permutation(n_users) + 3.0) ** 0.9
    group = np.where(rng.random(n_events) < LOYALTY, category[ev_article], len(CATEGORIES))
    order = np.lexsort((ts, group))
    ev_article, ts, group = ev_article[order], ts[order], group[order]
    new_session = np.ones(n_events, dtype=bool)
    new_session[1:] = (group[1:] != group[:-1]) | (rng.random(n_events - 1) < 1.0 / SESSION_MEAN)
    session = np.cumsum(new_session) - 1
    first = np.flatnonzero(new_session)
    position = np.arange(n_events) - first[session]
    session_group = group[first]
    session_user = np.empty(first.size, dtype=np.int64)
    for g in range(len(CATEGORIES) + 1):
        members = np.flatnonzero(favourite == g) if g < len(CATEGORIES) else np.arange(n_users)
        which = np.flatnonzero(session_group == g)
        if which.size and members.size:
            p = activity[members] / activity[members].sum()
            session_user[which] = members[rng.choice(members.size, size=which.size, p=p)]
    ev_user = session_user[session]
    gaps = rng.exponential(90.0, size=n_events)
    ts = np.minimum(np.maximum(ts[first][session] + position * gaps, ts), end - 1.0)
    codes = np.array([EVENT_CODES[e] for e in EVENT_MIX])
    ev_code = rng.choice(codes, size=n_events, p=np.array(list(EVENT_MIX.values()))).astype(np.int8)
    dwell = np.where(ev_code == EVENT_CODES["read"], np.round(rng.lognormal(math.log(45.0), 0.8, n_events), 1),
                     np.nan).astype(np.float32)
    order = np.argsort(ts, kind="stable")
    return ScaleData(
        article_ids=[f"a{i:07d}" for i in range(n_articles)], titles=titles, bodies=bodies, category=category,
        region=region, published_at=published, story=story, n_users=n_users, favourite=favourite,
        home_region=home_region, ev_user=ev_user[order], ev_article=ev_article[order], ev_code=ev_code[order],
        ev_ts=ts[order], ev_dwell=dwell[order],
    )


def user_id(index: int) -> str:
    return f"u{index:07d}"


# -- writing -------------------------------------------------------------------------------

def write_store(data: ScaleData, path: Path, preference_share: float = 0.2, seed: int = 0) -> None:
    """Write everything into a new SQLite store at ``path`` (bulk: indexes built at the end)."""
    path = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = SQLiteStore(path)
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    conn.execute("DROP INDEX IF EXISTS events_user_cover")
    conn.execute("DROP INDEX IF EXISTS events_ts")
    n = len(data.article_ids)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO article_keys(key, article_id) VALUES (?, ?)",
                     zip(range(1, n + 1), data.article_ids))
    cat_names = np.array(CATEGORIES, dtype=object)[data.category].tolist()
    reg_names = [REGIONS[r] if r >= 0 else None for r in data.region.tolist()]
    pub = data.published_at.tolist()
    conn.executemany(
        "INSERT INTO articles(key, title, body, category, region, tags, url, published_at, language, updated_at, "
        "deleted) VALUES (?,?,?,?,?,'[]',?,?,'id',?,0)",
        ((i + 1, data.titles[i], data.bodies[i], cat_names[i], reg_names[i],
          f"https://portal.example/{data.article_ids[i]}", pub[i], pub[i]) for i in range(n)))
    conn.executemany("INSERT INTO users(key, user_id) VALUES (?, ?)",
                     ((j + 1, user_id(j)) for j in range(data.n_users)))
    rng = np.random.default_rng(seed + 1)
    follows = np.flatnonzero(rng.random(data.n_users) < preference_share)
    fav = np.array(CATEGORIES, dtype=object)[data.favourite[follows]].tolist()
    home = np.array(REGIONS, dtype=object)[data.home_region[follows]].tolist()
    conn.executemany("INSERT INTO preferences(user_key, categories, regions, updated_at) VALUES (?,?,?,?)",
                     ((int(j) + 1, json.dumps([c]), json.dumps([r]), END)
                      for j, c, r in zip(follows.tolist(), fav, home)))
    conn.execute("COMMIT")
    chunk = 1_000_000
    m = data.ev_ts.size
    for lo in range(0, m, chunk):
        hi = min(lo + chunk, m)
        dwell = data.ev_dwell[lo:hi].astype(object)
        dwell[np.isnan(data.ev_dwell[lo:hi])] = None
        ts = data.ev_ts[lo:hi].tolist()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events(seq, eid, user_key, article_key, event, ts, dwell, history, received_at) "
            "VALUES (?,?,?,?,?,?,?,0,?)",
            zip(range(lo + 1, hi + 1), range(lo + 1, hi + 1), (data.ev_user[lo:hi] + 1).tolist(),
                (data.ev_article[lo:hi] + 1).tolist(), data.ev_code[lo:hi].tolist(), ts, dwell.tolist(), ts))
        conn.execute("COMMIT")
    # the store's own indexes (MIGRATIONS), built once at the end
    conn.execute("CREATE INDEX events_user_cover ON events(user_key, event, ts, seq, article_key, dwell)")
    conn.execute("CREATE INDEX events_ts ON events(ts)")
    # the store's sequence counter goes on after the rows written here: left at 0, every later write
    # draws seq 1, 2, ... again, and INSERT OR IGNORE drops those events as duplicates without a word
    conn.execute("UPDATE meta SET value = ? WHERE key = 'event_seq'", (str(int(m)),))
    conn.execute("INSERT INTO meta(key, value) VALUES ('synthetic_scale', ?)",
                 (json.dumps({"articles": n, "users": data.n_users, "events": int(m)}),))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def write_events_jsonl(data: ScaleData, path: Path, lo: int, hi: int, prefix: str = "bulk") -> int:
    """Events ``[lo, hi)`` as JSON Lines in the importer's format (with event ids); returns rows."""
    names = {code: name for name, code in EVENT_CODES.items()}
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(lo, hi):
            dwell = float(data.ev_dwell[i])
            fh.write(json.dumps({
                "event_id": f"{prefix}{i}", "user_id": user_id(int(data.ev_user[i])),
                "article_id": data.article_ids[int(data.ev_article[i])], "event": names[int(data.ev_code[i])],
                "ts": format_time(float(data.ev_ts[i])), "dwell_seconds": None if dwell != dwell else dwell,
            }) + "\n")
    return hi - lo


def cache_path(n_articles: int, n_users: int, n_events: int, seed: int = 0, days: float = 28.0) -> Path:
    return CACHE / f"scale{FORMAT}-a{n_articles}-u{n_users}-e{n_events}-d{days:g}-s{seed}.sqlite3"


def ensure_store(n_articles: int, n_users: int, n_events: int, seed: int = 0, days: float = 28.0,
                 verbose: bool = True) -> Path:
    """The cached store of this size, generated first if missing (returns its path)."""
    path = cache_path(n_articles, n_users, n_events, seed, days)
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = generate(n_articles, n_users, n_events, seed=seed, days=days)
    t1 = time.perf_counter()
    tmp = path.with_name(path.name + ".partial")
    write_store(data, tmp, seed=seed)
    os.replace(tmp, path)
    Path(f"{tmp}.writelock").unlink(missing_ok=True)  # the store's writers' lock file, if it made one
    if verbose:
        print(f"generated {path.name}: {t1 - t0:.1f}s generate, {time.perf_counter() - t1:.1f}s write, "
              f"{path.stat().st_size / 1e9:.2f} GB", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=float, default=28.0, help="span of publication and events (default 28)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args(argv)
    path = cache_path(args.articles, args.users, args.events, args.seed, args.days)
    if args.force:
        path.unlink(missing_ok=True)
    print(ensure_store(args.articles, args.users, args.events, args.seed, args.days))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
