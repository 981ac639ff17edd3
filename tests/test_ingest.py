"""Each import format, bad rows reported by line, good rows kept, re-import idempotent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommender.domain import key64_bytes
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


def test_threads_hand_over_sooner_during_an_events_import_and_the_interval_comes_back(store, tmp_path, monkeypatch):
    import sys

    from recommender.datasets.ingest import IMPORT_SWITCH_INTERVAL

    seen = []
    real = store.add_events

    def add_events(batch, source="client"):
        seen.append(sys.getswitchinterval())
        if len(seen) == 2:
            raise RuntimeError("disk full")
        return real(batch, source=source)

    monkeypatch.setattr(store, "add_events", add_events)
    before = sys.getswitchinterval()
    assert before > IMPORT_SWITCH_INTERVAL  # (Python's default, 5 ms)
    assert import_events(store, _events_file(tmp_path, 3)).accepted == 3
    assert seen == [IMPORT_SWITCH_INTERVAL] and sys.getswitchinterval() == before
    with pytest.raises(RuntimeError, match="disk full"):  # back on an error too
        import_events(store, _events_file(tmp_path, 3))
    assert seen[1] == IMPORT_SWITCH_INTERVAL and sys.getswitchinterval() == before


def test_the_garbage_collector_pauses_during_an_events_import_and_comes_back_as_it_was(store, tmp_path, monkeypatch):
    import gc

    seen = []
    real = store.add_events

    def add_events(batch, source="client"):
        seen.append(gc.isenabled())
        return real(batch, source=source)

    monkeypatch.setattr(store, "add_events", add_events)
    assert gc.isenabled()
    assert import_events(store, _events_file(tmp_path, 3)).accepted == 3
    assert seen == [False] and gc.isenabled()
    def failing(batch, source="client"):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "add_events", failing)
    with pytest.raises(RuntimeError, match="disk full"):  # back on an error too
        import_events(store, _events_file(tmp_path, 3))
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        monkeypatch.setattr(store, "add_events", real)
        import_events(store, _events_file(tmp_path, 3))
        assert not gc.isenabled()
    finally:
        gc.enable()


# -- the batch parser: same events and errors as Interaction.from_dict, row by row ----------------
def _by_from_dict(records):
    from recommender.domain import Interaction, ValidationError

    out, errors = [], []
    for number, record in enumerate(records, start=1):
        try:
            out.append(Interaction.from_dict(record))
        except ValidationError as exc:
            errors.append((number, str(exc)))
    return out, errors


def test_batch_parser_gives_the_events_and_errors_of_from_dict_row_by_row():
    from recommender.datasets.ingest import ImportReport, _events

    ts = "2026-11-01T10:00:00+07:00"
    base = {"user_id": "u1", "article_id": "a1", "event": "click", "ts": ts}
    records = [
        base,
        {**base, "event_id": "e-1", "list_id": "L:1", "dwell_seconds": 12},      # int dwell -> float
        {**base, "event": "read", "dwell_seconds": 35.5, "event_id": ""},        # "" is no event id
        {**base, "ts": "2026-11-01T03:00:00Z"},                                  # other forms: parse_time
        {**base, "ts": 1793502000, "position": 3, "history": True},               # numbers, flags: from_dict
        {**base, "user_id": 17, "dwell_seconds": "40"},                          # coerced by from_dict
        {**base, "user_id": "bad id"},                                           # rejected with its message
        {**base, "user_id": "u1\nu2"},                                            # two ids' worth of a column
        {**base, "article_id": "a1\n"},
        {**base, "article_id": None},
        {**base, "event": "vote"},
        {**base, "event": ["click"]},
        {**base, "event_id": "x" * 129},
        {**base, "dwell_seconds": -1.0},
        {**base, "dwell_seconds": float("nan")},
        {**base, "dwell_seconds": True},
        {**base, "ts": "2026-02-30T10:00:00+07:00"},                              # no such day
        {**base, "ts": "2999-01-01T00:00:00+07:00"},                              # far future
        {**base, "ts": "kemarin"},
        {**base, "ts": None},
    ]
    want, want_errors = _by_from_dict(records)
    report = ImportReport("x", "events")
    got = _events(list(enumerate(records, start=1)), report)
    assert got == want and [type(e) for e in got] == [type(e) for e in want]
    assert [e.key64() for e in got] == [e.key64() for e in want]
    # the bulk writers' batch form of the key: same numbers (event ids given and derived alike)
    assert any(e.event_id for e in got) and any(not e.event_id for e in got)
    assert np.frombuffer(key64_bytes(got), dtype=">i8").tolist() == [e.key64() for e in want]
    assert report.errors == want_errors and len(want_errors) == 14
    assert got[1].dwell_seconds == 12.0 and type(got[1].dwell_seconds) is float and got[2].event_id is None


def test_batch_parser_keeps_errors_in_line_order_with_unreadable_lines(tmp_path):
    from recommender.datasets.ingest import ImportReport, _events

    ok = {"user_id": "u1", "article_id": "a1", "event": "click", "ts": "2026-11-01T10:00:00+07:00"}
    report = ImportReport("x", "events")
    got = _events([(1, ok), (2, "not valid JSON"), (3, {**ok, "event": "vote"}), (4, "each line must be a JSON object"),
                   (5, {**ok, "user_id": "u2"})], report)
    assert [e.user_id for e in got] == ["u1", "u2"]
    assert [line for line, _ in report.errors] == [2, 3, 4]


def test_iso_times_match_parse_time_where_they_answer():
    import numpy as np

    from recommender.datasets.ingest import iso_times
    from recommender.domain import ValidationError, parse_time

    rng = np.random.default_rng(7)
    texts = [f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{sign}{oh:02d}:{om:02d}"
             for y, mo, d, h, mi, s, sign, oh, om in zip(
                 rng.choice([1969, 1970, 1971, 2000, 2024, 2100, 2998, 2999], 20_000), rng.integers(0, 14, 20_000),
                 rng.integers(0, 33, 20_000), rng.integers(0, 26, 20_000), rng.integers(0, 62, 20_000),
                 rng.integers(0, 62, 20_000), rng.choice(["+", "-"], 20_000), rng.integers(0, 26, 20_000),
                 rng.choice([0, 30, 59, 60], 20_000))]
    texts += ["2024-02-29T23:59:59+07:00", "2023-02-29T10:00:00+07:00", "2026-11-01 10:00:00+07:00",
              "2026-11-01T10:00:00Z", "2026-11-01T10:00:00.5+07:0", "", "x" * 25]
    got = iso_times(texts)
    answered = 0
    for text, value in zip(texts, got):
        try:
            want = parse_time(text, "ts")
        except ValidationError:
            want = None
        if not np.isnan(value):
            answered += 1
            assert value == want, text
    assert answered > 3_000  # the test covers the fast path, not only its refusals
    assert got[-7] == parse_time("2024-02-29T23:59:59+07:00", "ts") and np.isnan(got[-6]) and np.isnan(got[-5])


def test_a_write_error_stops_the_reader_and_nothing_more_is_written(store, tmp_path, monkeypatch):
    import threading

    import recommender.datasets.ingest as ingest

    monkeypatch.setattr(ingest, "EVENT_BATCH_SIZE", 2)
    path = _events_file(tmp_path, 40)
    calls = []

    def add_events(batch, source="client"):
        calls.append([e.event_id for e in batch])
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "add_events", add_events)
    with pytest.raises(RuntimeError, match="disk full"):
        import_events(store, path)
    assert calls == [["e0", "e1"]] and store.stats()["events"] == 0
    assert not [t for t in threading.enumerate() if t.name == "newsrec-import-reader"]


def test_a_read_error_reaches_the_caller_after_the_batches_before_it(store, tmp_path, monkeypatch):
    import recommender.datasets.ingest as ingest

    monkeypatch.setattr(ingest, "EVENT_BATCH_SIZE", 3)
    path = _events_file(tmp_path, 7)
    real = ingest.read_rows

    def read_rows(path, fmt=None):
        for number, record in real(path, fmt):
            if number == 5:
                raise OSError("input/output error")
            yield number, record

    monkeypatch.setattr(ingest, "read_rows", read_rows)
    with pytest.raises(OSError, match="input/output"):
        import_events(store, path)
    assert store.stats()["events"] == 3  # the first batch, committed before the error


def test_an_id_with_a_newline_is_rejected_when_the_rest_of_its_column_is_valid():
    from recommender.datasets.ingest import ImportReport, _events

    ok = {"user_id": "u1", "article_id": "a1", "event": "click", "ts": "2026-11-01T10:00:00+07:00"}
    records = [ok, {**ok, "user_id": "u1\nu2"}, {**ok, "article_id": "a2\n"}, {**ok, "event_id": "e\n1"}, ok]
    report = ImportReport("x", "events")
    got = _events(list(enumerate(records, start=1)), report)
    assert len(got) == 2 and [line for line, _ in report.errors] == [2, 3, 4]
    assert "user_id" in report.errors[0][1] and "article_id" in report.errors[1][1]


def test_mind_placeholders_give_news_without_text_an_article_so_their_events_count(store, tmp_path):
    """A sampled MIND has text for a few news ids only: without placeholders every other event is
    skipped by training as an event of an unknown article, and evaluation ties every candidate."""
    write(tmp_path / "news.tsv", MIND_NEWS)
    write(tmp_path / "behaviors.tsv", MIND_BEHAVIORS)
    import_mind(store, tmp_path, stub_missing=True)
    got = store.get_articles(["N1", "N2", "N3", "N8", "N9"])
    assert sorted(got) == ["N1", "N2", "N3", "N8", "N9"] and got["N1"].title == "Team wins"
    for placeholder in ("N3", "N8", "N9"):  # N3: in an impression (its news.tsv row is broken); N8, N9: histories
        assert (got[placeholder].title, got[placeholder].body, got[placeholder].category) == ("", "", "unknown")
    log = store.load_interactions()
    first_impression = log.ts[~log.history].min()
    assert got["N3"].published_at == log.ts[~log.history].max()  # first seen in the later list (9:00)
    assert got["N9"].published_at == got["N8"].published_at == first_impression - 3600.0
    assert store.stats()["articles_referenced_without_text"] == 0
    before = store.stats()["articles"]
    import_mind(store, tmp_path, stub_missing=True)  # again: nothing new
    assert store.stats()["articles"] == before


def test_the_command_adds_mind_placeholders_unless_told_not_to(tmp_path, monkeypatch, capsys):
    from training.cli import main

    (tmp_path / "mind").mkdir()
    write(tmp_path / "mind" / "news.tsv", MIND_NEWS)
    write(tmp_path / "mind" / "behaviors.tsv", MIND_BEHAVIORS)
    for flags, articles in (([], 5), (["--no-placeholders"], 2)):
        monkeypatch.setenv("NEWSREC_HOME", str(tmp_path / f"home{len(flags)}"))
        monkeypatch.delenv("NEWSREC_DB", raising=False)
        assert main(["ingest", "mind", str(tmp_path / "mind"), *flags]) == 0
        capsys.readouterr()
        assert main(["stats", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["articles"] == articles


def test_scraped_portal_articles_get_sections_clean_bodies_and_one_row_per_url(cli_home, tmp_path, capsys):
    """``newsrec ingest id-news``: the Kompas/Tribunnews scrape's layout (no section column, HTML
    escaped twice, "Baca juga" links and credits in bodies, a body as a Python list string, a
    missing time "[]", a URL twice) becomes a catalog newsrec can train on."""
    import csv

    from recommender.store import open_store
    from training.cli import main

    path = tmp_path / "scraped.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["URL", "PublishDate", "Article_ID", "Title", "Body_Text"])
        out.writerow(["https://money.kompas.com/read/2023/02/27/1/harga-beras", "2023-02-27 09:15:00", "1",
                      "Harga Beras &amp;quot;Naik&amp;quot; Lagi",
                      "JAKARTA, KOMPAS.com - Harga beras naik lagi di pasar.\nBaca juga: Stok Beras Aman\nEditor : Anu"])
        out.writerow(["https://www.tribunnews.com/superskor/2023/02/27/timnas-menang", "[]", "2",
                      "Timnas Menang", "['Timnas menang besar tadi malam.', 'Pelatih puas.']"])
        out.writerow(["https://money.kompas.com/read/2023/02/27/1/harga-beras", "2023-02-27 10:00:00", "1",
                      "Harga Beras (salinan)", "Salinan yang sama."])
    assert main(["ingest", "id-news", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert (report["accepted"], report["rejected"]) == (2, 0)
    store = open_store(cli_home / "newsrec.sqlite3")
    got = store.get_articles(["kompas-1", "tribun-2"])
    beras, timnas = got["kompas-1"], got["tribun-2"]
    assert (beras.category, beras.title, beras.language) == ("money", 'Harga Beras "Naik" Lagi', "id")
    assert "Harga beras naik lagi" in beras.body and "Baca juga" not in beras.body and "Editor" not in beras.body
    assert timnas.category == "superskor" and "Timnas menang besar" in timnas.body and "['" not in timnas.body
    first_midnight = 1677430800.0  # 2023-02-27 00:00 WIB: the file's first day, for the row with no time
    assert (beras.published_at, timnas.published_at) == (first_midnight + 9 * 3600 + 15 * 60, first_midnight)
    store.close()
    other = tmp_path / "articles.csv"
    other.write_text("article_id,title,body,category,published_at\na1,T,B,Ekonomi,2026-11-01T08:00:00+07:00\n")
    assert main(["ingest", "id-news", str(other)]) == 2
    assert "lacks the column(s) URL" in capsys.readouterr().err
