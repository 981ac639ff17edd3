"""Each import format, bad rows reported by line, good rows kept, re-import idempotent."""

from __future__ import annotations

import json

import pytest

from recommender.datasets.ingest import import_articles, import_events, import_mind, import_preferences

ARTICLES_CSV = """article_id,title,body,category,region,tags,url,published_at,language
a1,Persib menang di Bandung,Isi,Olahraga,Jabar,persib|liga 1,https://x/a1,2026-11-01T08:00:00+07:00,id
a2,Rupiah menguat,Isi,Ekonomi,,rupiah,https://x/a2,2026-11-01T09:00:00+07:00,id
,Tanpa id,Isi,Nasional,,,,2026-11-01T09:00:00+07:00,id
a4,Tanggal rusak,Isi,Nasional,,,,kemarin sore,id
a5,Kolom kurang,Isi
"""


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_articles_reject_bad_rows_by_line_and_keep_good_ones(store, tmp_path):
    path = write(tmp_path / "articles.csv", ARTICLES_CSV)
    report = import_articles(store, path)
    assert report.accepted == 2 and report.rejected == 3
    lines = {line: reason for line, reason in report.errors}
    assert set(lines) == {4, 5, 6}
    assert "article_id" in lines[4] and "ISO-8601" in lines[5] and "columns" in lines[6]
    got = store.get_articles(["a1", "a2"])
    assert got["a1"].tags == ("persib", "liga 1") and got["a1"].region == "Jabar"
    assert got["a2"].region is None
    again = import_articles(store, path)
    assert again.accepted == 2 and store.stats()["articles"] == 2


def test_jsonl_events_idempotent_and_bad_lines_reported(store, tmp_path):
    rows = [
        {"event_id": "e1", "user_id": "u1", "article_id": "a1", "event": "click", "ts": "2026-11-01T10:00:00+07:00"},
        {"event_id": "e2", "user_id": "u1", "article_id": "a1", "event": "read", "ts": "2026-11-01T10:01:00+07:00",
         "dwell_seconds": 75},
        {"user_id": "u2", "article_id": "a2", "event": "impression", "ts": "2026-11-01T10:02:00+07:00"},
        {"user_id": "u2", "article_id": "a2", "event": "vote", "ts": "2026-11-01T10:02:00+07:00"},
    ]
    text = "\n".join(json.dumps(r) for r in rows) + "\n{not json\n[1,2]\n"
    path = write(tmp_path / "events.jsonl", text)
    report = import_events(store, path)
    assert (report.accepted, report.rejected) == (3, 3)
    assert [line for line, _ in report.errors] == [4, 5, 6]
    again = import_events(store, path)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert store.stats()["events_by_type"] == {"impression": 1, "click": 1, "read": 1, "share": 0, "hide": 0}


def test_csv_events_and_preferences(store, tmp_path):
    events = write(tmp_path / "events.csv", "user_id,article_id,event,ts,dwell_seconds\n"
                   "u1,a1,read,2026-11-01T10:00:00+07:00,30\nu1,a2,share,2026-11-01T10:05:00+07:00,\n")
    assert import_events(store, events).accepted == 2
    prefs = write(tmp_path / "prefs.jsonl", json.dumps({"user_id": "u1", "categories": ["Olahraga"],
                                                          "regions": ["Jabar"]}) + "\n")
    assert import_preferences(store, prefs).accepted == 1
    assert store.get_preferences("u1").categories == ("Olahraga",)


def test_unknown_extension_is_a_clear_error(store, tmp_path):
    with pytest.raises(ValueError, match="jsonl or .csv"):
        import_events(store, write(tmp_path / "events.txt", ""))


MIND_NEWS = (
    "N1\tsports\tsoccer\tTeam wins\tAbstract one\thttps://m/n1\t[]\t[]\n"
    "N2\tnews\tpolitics\tVote today\t\thttps://m/n2\t[]\t[]\n"
    "N3\tbroken row\n"
)
MIND_BEHAVIORS = (
    "1\tU1\t11/13/2019 8:36:57 AM\tN9 N8\tN1-1 N2-0\n"
    "2\tU2\t11/14/2019 9:00:00 AM\t\tN2-1 N3-0 N1-0\n"
    "3\tU1\tnot a time\tN9\tN1-0\n"
    "4\tU3\t11/14/2019 10:00:00 AM\t\tN1-x\n"
)


def test_mind_import_keeps_impressions_and_dates_history_before_the_log(store, tmp_path):
    write(tmp_path / "news.tsv", MIND_NEWS)
    write(tmp_path / "behaviors.tsv", MIND_BEHAVIORS)
    news, behaviors = import_mind(store, tmp_path)
    assert news.accepted == 2 and [line for line, _ in news.errors] == [3]
    assert behaviors.rejected == 2 and [line for line, _ in behaviors.errors] == [3, 4]
    stats = store.stats()
    # impressions: 2 + 3 ; clicks: 2 labelled + 2 history (U1: N9, N8)
    assert stats["events_by_type"]["impression"] == 5
    assert stats["events_by_type"]["click"] == 4
    log = store.load_interactions()
    first_impression = log.ts[~log.history].min()
    assert log.history.sum() == 2 and log.ts[log.history].max() < first_impression
    # N1 is dated at its first impression, the moment it was first seen
    assert store.get_articles(["N1"])["N1"].published_at == first_impression
    import_mind(store, tmp_path)
    assert store.stats()["events"] == stats["events"]


def _events_file(tmp_path, n, bad_line=None):
    rows = [json.dumps({"event_id": f"e{i}", "user_id": f"u{i % 7}", "article_id": f"a{i % 5}", "event": "click",
                        "ts": "2026-11-01T10:00:00+07:00"}) for i in range(n)]
    if bad_line is not None:
        rows[bad_line - 1] = "{not json"
    return write(tmp_path / "events.jsonl", "\n".join(rows) + "\n")


def test_events_commit_per_batch_so_a_failure_keeps_committed_batches(store, tmp_path, monkeypatch):
    import recommender.datasets.ingest as ingest

    monkeypatch.setattr(ingest, "EVENT_BATCH_SIZE", 4)
    path = _events_file(tmp_path, 10, bad_line=2)
    real, calls = store.add_events, []

    def add_events(batch, source="client"):
        assert source == "import"  # the operator's own data: trusted, counted as it is
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(batch, source=source)

    monkeypatch.setattr(store, "add_events", add_events)
    with pytest.raises(RuntimeError, match="disk full"):
        import_events(store, path)
    # the first batch (lines 1, 3, 4, 5: the bad line 2 is skipped, not fatal) is committed
    assert calls == [4, 4] and store.stats()["events"] == 4
    monkeypatch.setattr(store, "add_events", real)
    report = import_events(store, path)
    assert (report.accepted, report.duplicates, report.rejected) == (5, 4, 1)
    assert store.stats()["events"] == 9


def test_bulk_settings_apply_during_an_import_and_are_restored(store, tmp_path, monkeypatch):
    conn = store._conn()
    before = [conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "mmap_size")]
    seen = []
    real = store.add_events

    def add_events(batch, source="client"):
        seen.append([conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "mmap_size")])
        return real(batch, source=source)

    monkeypatch.setattr(store, "add_events", add_events)
    assert import_events(store, _events_file(tmp_path, 3)).accepted == 3
    assert seen == [[-store.BULK_CACHE_KIB, 0]]
    assert [conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "mmap_size")] == before
    with pytest.raises(ValueError):  # restored on an error too
        import_events(store, write(tmp_path / "events.txt", ""))
    assert [conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "mmap_size")] == before
