"""Import files as a new user writes them: bytes that are not UTF-8, exports' spellings converted
(the API's bodies stay strict), fields newsrec does not read named, and messages that name the real
problem."""

from __future__ import annotations

import json

import pytest

from recommender.datasets.ingest import import_articles, import_events, import_mind, import_preferences
from recommender.domain import Article, ValidationError
from recommender.serving.rules import parse_rule
from tests.api_fixtures import app, client, creds, engine, event, home  # noqa: F401
from training.cli import main

TS = "2026-11-01T10:00:00+07:00"
ARTICLE = {"article_id": "a1", "title": "Persib menang", "body": "Isi.", "category": "Olahraga",
           "published_at": "2026-11-01T08:00:00+07:00"}


def jsonl(path, *lines) -> str:
    """``lines`` (dicts as JSON, bytes as they are) as one JSON Lines file; returns its path."""
    path.write_bytes(b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n"
                              for line in lines))
    return path


# -- bytes that are not UTF-8: that row rejected by line, the others kept -------------------------
LATIN_CSV = (b"article_id,title,body,category,published_at\n"
             b"a1,Satu,Isi,Olahraga,2026-11-01T08:00:00+07:00\n"
             b"a2,Dua,Isi,Ekonomi,2026-11-01T08:00:00+07:00\n"
             b"a3,Caf\xe9 baru,Isi,Ekonomi,2026-11-01T08:00:00+07:00\n"
             b'a4,Empat,"Paragraf satu.\nParagraf dua, caf\xe9.",Nasional,2026-11-01T08:00:00+07:00\n'
             b"a5,Lima,Isi,Nasional,2026-11-01T08:00:00+07:00\n")


def test_a_csv_row_that_is_not_utf8_is_rejected_by_line_and_the_good_rows_are_kept(store, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(LATIN_CSV)
    report = import_articles(store, path)
    assert (report.accepted, report.rejected) == (3, 2)
    # a4's quoted body spans lines 5-6: the line that holds the byte is named
    assert report.errors == [(4, "not UTF-8 text (byte 0xe9 at column 7): save the file as UTF-8"),
                             (6, "not UTF-8 text (byte 0xe9 at column 18): save the file as UTF-8")]
    assert set(store.get_articles(["a1", "a2", "a3", "a4", "a5"])) == {"a1", "a2", "a5"}


def test_a_csv_header_that_is_not_utf8_stops_the_import_with_the_reason(store, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"article_id,t\xeftle\n")
    with pytest.raises(ValueError, match=r"the header row is not UTF-8 text \(byte 0xef at column 13\)"):
        import_articles(store, path)


def test_a_jsonl_line_that_is_not_utf8_is_rejected_by_line_and_the_good_lines_are_kept(store, tmp_path):
    bad = json.dumps(dict(ARTICLE, article_id="a2", title="Cafe")).encode().replace(b"Cafe", b"Caf\xe9")
    path = jsonl(tmp_path / "latin.jsonl", ARTICLE, bad, dict(ARTICLE, article_id="a3"))
    report = import_articles(store, path)
    column = bad.index(b"\xe9") + 1
    assert (report.accepted, report.rejected) == (2, 1)
    assert report.errors == [(2, f"not UTF-8 text (byte 0xe9 at column {column}): save the file as UTF-8")]
    assert set(store.get_articles(["a1", "a2", "a3"])) == {"a1", "a3"}


def test_events_and_preferences_files_keep_their_good_lines_around_bytes_that_are_not_utf8(store, tmp_path):
    good = {"user_id": "u1", "article_id": "a1", "event": "click", "ts": TS}
    events = jsonl(tmp_path / "events.jsonl", good, b'{"user_id": "u\xff", "article_id": "a1"}',
                   dict(good, user_id="u2"))
    report = import_events(store, events)
    assert (report.accepted, report.rejected) == (2, 1)
    assert report.errors == [(2, "not UTF-8 text (byte 0xff at column 15): save the file as UTF-8")]
    prefs = tmp_path / "prefs.csv"
    prefs.write_bytes(b"user_id,categories,regions\nu1,Olahraga,\nu2,Ekonom\xed,\n")
    report = import_preferences(store, prefs)
    assert (report.accepted, report.errors) == (1, [(3, "not UTF-8 text (byte 0xed at column 10): save the file "
                                                        "as UTF-8")])


def test_a_utf8_bom_at_the_start_is_skipped(store, tmp_path):
    csv_path = tmp_path / "excel.csv"
    csv_path.write_bytes(b"\xef\xbb\xbfarticle_id,title,body,category,published_at\n"
                         b"a1,Satu,Isi,Olahraga,2026-11-01T08:00:00+07:00\n")
    assert import_articles(store, csv_path).to_dict()["errors"] == []
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(dict(ARTICLE, article_id="a2")).encode() + b"\n")
    report = import_articles(store, path)
    assert (report.accepted, report.errors) == (1, [])
    assert set(store.get_articles(["a1", "a2"])) == {"a1", "a2"}


def test_mind_lines_that_are_not_utf8_are_rejected_by_line(store, tmp_path):
    (tmp_path / "news.tsv").write_bytes(b"N1\tsports\tsoccer\tTeam wins\tAbstract\thttps://m/n1\t[]\t[]\n"
                                        b"N2\tnews\tpolitics\tCaf\xe9\t\thttps://m/n2\t[]\t[]\n")
    (tmp_path / "behaviors.tsv").write_bytes(b"1\tU1\t11/13/2019 8:36:57 AM\t\tN1-1 N2-0\n"
                                             b"2\tU\xe92\t11/13/2019 8:40:00 AM\t\tN1-1\n")
    news, behaviors = import_mind(store, tmp_path)
    assert news.accepted == 1 and news.errors == [(2, "not UTF-8 text (byte 0xe9 at column 21): save the file "
                                                       "as UTF-8")]
    assert behaviors.errors == [(2, "not UTF-8 text (byte 0xe9 at column 4): save the file as UTF-8")]
    assert store.stats()["events_by_type"]["impression"] == 2


def test_the_command_reports_the_line_and_keeps_the_good_rows(cli_home, capsys, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(LATIN_CSV)
    code = main(["ingest", "articles", str(path), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "latin.csv:4: rejected: not UTF-8 text (byte 0xe9 at column 7): save the file as UTF-8" in err
    assert "codec can't decode" not in err
    assert json.loads(out)[0]["accepted"] == 3


# -- files are exports, not API bodies: converted where unambiguous, unknown fields named ------------
def test_jsonl_exports_are_converted_as_csv_cells_are_and_the_api_stays_strict(store, tmp_path, client, creds):
    """Exports write numeric ids, numbers and booleans as text and labels as one "a|b" text: the
    importers read them (README, Data formats); the API's JSON bodies refuse each (400)."""
    record = event("u9", ts=TS, position="3", list_id=17, history="false", dwell_seconds="4", event_id=7)
    resp = client.post("/v1/events", json=record, headers={"X-API-Key": creds.site})
    assert resp.status_code == 400 and resp.get_json()["error"] == "validation_error"
    report = import_events(store, jsonl(tmp_path / "events.jsonl", record))
    assert (report.accepted, report.rejected) == (1, 0)
    log = store.load_interactions()
    assert (log.position.tolist(), log.dwell.tolist(), log.history.tolist()) == ([3], [4.0], [False])
    article = {**ARTICLE, "article_id": 17, "tags": "a|b"}
    assert client.post("/v1/articles", json=article, headers={"X-API-Key": creds.admin}).status_code == 400
    assert import_articles(store, jsonl(tmp_path / "articles.jsonl", article)).accepted == 1
    assert store.get_articles(["17"])["17"].tags == ("a", "b")


def test_values_that_cannot_be_converted_are_rejected_by_line_in_both_formats(store, tmp_path):
    path = jsonl(tmp_path / "events.jsonl", event("u1", ts=TS), event("u2", ts=TS, position=True, list_id="l1"),
                 event("u3", ts=TS, list_id=["x"]), event("u4", ts=TS, history="maybe"))
    report = import_events(store, path)
    assert report.accepted == 1 and [line for line, _ in report.errors] == [2, 3, 4]
    assert "position must be a whole number" in report.errors[0][1] and "list_id" in report.errors[1][1]
    assert "history must be true or false" in report.errors[2][1]


def test_fields_newsrec_does_not_read_are_skipped_and_named_in_the_report(store, tmp_path, cli_home, capsys):
    """A misspelt field ("categry") would otherwise vanish without a word; the rows stay."""
    path = jsonl(tmp_path / "articles.jsonl", ARTICLE, {**ARTICLE, "article_id": "a2", "categry": "x", "author": "y"},
                 {**ARTICLE, "article_id": "a3", "author": "z"})
    report = import_articles(store, path)
    assert report.accepted == 3 and report.to_dict()["ignored_fields"] == {"author": 2, "categry": 1}
    events = tmp_path / "events.csv"
    events.write_text(f"user_id,article_id,event,ts,device\nu1,a1,click,{TS},hp\nu2,a1,read,{TS},pc\n",
                      encoding="utf-8")
    report = import_events(store, events)
    assert report.accepted == 2 and report.to_dict()["ignored_fields"] == {"device": 2}
    assert "ignored_fields" not in import_articles(store, jsonl(tmp_path / "plain.jsonl", ARTICLE)).to_dict()
    assert main(["ingest", "articles", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ignored_fields"] == {"author": 2, "categry": 1}


def test_csv_cells_are_still_read_from_their_text_spellings(store, tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("user_id,article_id,event,ts,dwell_seconds,list_id,position,history\n"
                      f"u1,a1,click,{TS},3,l1,3,false\nu2,a1,click,{TS},,l1,0,yes\n", encoding="utf-8")
    assert import_events(store, events).to_dict()["errors"] == []
    articles = tmp_path / "articles.csv"
    articles.write_text("article_id,title,body,category,tags,published_at\n"
                        f"a1,Judul,Isi,Olahraga,a|b,{TS}\n", encoding="utf-8")
    assert import_articles(store, articles).accepted == 1
    assert store.get_articles(["a1"])["a1"].tags == ("a", "b")


def test_the_projects_own_sample_data_imports_without_a_rejection(store, tmp_path):
    from pathlib import Path

    from recommender.datasets.synthetic import generate

    generated = generate(n_articles=60, n_users=30, days=2, seed=3).write_jsonl(tmp_path / "sample")
    shipped = Path(__file__).resolve().parent.parent / "data" / "sample"
    for paths in (generated, {name: shipped / f"{name}.jsonl" for name in ("articles", "events", "preferences")}):
        for name, fn in (("articles", import_articles), ("events", import_events),
                         ("preferences", import_preferences)):
            report = fn(store, paths[name], show_progress=False)
            assert report.rejected == 0 and report.accepted + report.duplicates > 0, (name, report.errors[:3])
            assert "ignored_fields" not in report.to_dict(), (name, report.to_dict())


# -- messages that name the real problem -----------------------------------------------------------
@pytest.mark.parametrize("title,message", [
    (5, "title must be a string (text); got 5"), (["Judul"], "title must be a string (text); got ['Judul']"),
    (None, "title is required"), ("  ", "title is required"),
])
def test_a_title_that_is_not_text_is_not_called_missing(title, message):
    record = dict(ARTICLE, title=title)
    for strict in (True, False):
        with pytest.raises(ValidationError) as caught:
            Article.from_dict(record, strict=strict)
        assert str(caught.value) == message


def test_a_factor_that_is_not_a_number_is_not_called_missing():
    body = {"kind": "bury", "target": {"category": "X"}, "scope": {"list": "feed"}}
    with pytest.raises(ValidationError) as caught:
        parse_rule(dict(body, factor="x"), "r", 1.9e9, "k")
    assert str(caught.value) == "factor must be a number (boost > 1, bury < 1); got 'x'"
    with pytest.raises(ValidationError) as caught:
        parse_rule(dict(body, factor=True), "r", 1.9e9, "k")
    assert str(caught.value) == "factor must be a number (boost > 1, bury < 1); got True"
    with pytest.raises(ValidationError) as caught:
        parse_rule(body, "r", 1.9e9, "k")
    assert str(caught.value) == "factor is required for a bury: a number (boost > 1, bury < 1)"


def test_integers_too_long_for_a_float_are_a_400_not_a_500(client, creds):
    """JSON integers have no size limit; float() of 10**400 raised OverflowError (a 500)."""
    huge = "1" + "0" * 400
    raw = {"X-API-Key": creds.site, "Content-Type": "application/json"}
    resp = client.post("/v1/events", data='{"user_id": "u1", "article_id": "a1", "event": "click", "ts": %s}' % huge,
                       headers=raw)
    assert resp.status_code == 400 and "ts is out of range for epoch seconds" in resp.get_json()["details"][0]["message"]
    for kind, factor, says in (("boost", int(huge), "a boost's factor must be above 1 and at most 100"),
                               ("bury", -int(huge), "a bury's factor must be at least 0.01 and below 1")):
        with pytest.raises(ValidationError) as caught:
            parse_rule({"kind": kind, "target": {"category": "X"}, "scope": {"list": "feed"}, "factor": factor},
                       "r", 1.9e9, "k")
        assert str(caught.value) == says


def test_a_control_character_in_a_category_is_named_as_the_reason(store, tmp_path, client, creds):
    control = "categories must be printable text; found control character U+0001"
    too_long = "categories must be at most 64 printable characters"
    for value, message in (("Olah\x01raga", control), ("x" * 65, too_long)):
        resp = client.put("/v1/users/u1/preferences", json={"categories": [value]}, headers={"X-API-Key": creds.site})
        assert resp.status_code == 400 and resp.get_json()["message"] == message
    prefs = tmp_path / "prefs.csv"
    prefs.write_text(f"user_id,categories,regions\nu1,Olah\x01raga,\nu2,{'x' * 65},\nu3,Olahraga,\n", encoding="utf-8")
    report = import_preferences(store, prefs)
    assert (report.accepted, report.errors) == (1, [(2, control), (3, too_long)])


def test_csv_messages_speak_of_text_not_json(store, tmp_path, client, creds):
    events = tmp_path / "events.csv"
    events.write_text("user_id,article_id,event,ts,history,position\n"
                      f"u1,a1,click,{TS},perhaps,3\nu1,a1,click,{TS},false,2.5\n", encoding="utf-8")
    report = import_events(store, events)
    assert report.errors == [(2, "history must be true or false (or 1/0, yes/no); got 'perhaps'"),
                             (3, "position must be a whole number; got '2.5'")]
    assert not any("JSON" in reason for _, reason in report.errors)
    resp = client.post("/v1/events", json=event(history="perhaps"), headers={"X-API-Key": creds.site})
    assert resp.get_json()["details"][0]["message"] == "history must be true or false (a JSON boolean); got 'perhaps'"


def test_a_directory_is_called_a_directory(store, tmp_path, cli_home, capsys):
    folder = tmp_path / "exports"
    folder.mkdir()
    message = f"{folder} is a directory, not a file: give one .jsonl or .csv file (only 'ingest mind' takes a folder)"
    for fmt in (None, "csv"):
        with pytest.raises(ValueError) as caught:
            import_articles(store, folder, fmt=fmt)
        assert str(caught.value) == message
    named = tmp_path / "articles.jsonl"  # a folder with a file's name
    named.mkdir()
    with pytest.raises(ValueError, match="is a directory, not a file"):
        import_events(store, named)
    assert main(["ingest", "articles", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_a_control_character_in_a_rules_section_is_named_as_the_reason():
    body = {"kind": "block", "target": {"category": "Olah\x01raga"}, "scope": {"list": "feed"}}
    with pytest.raises(ValidationError) as caught:
        parse_rule(body, "r", 1.9e9, "k")
    assert str(caught.value) == "target.category must be a section name, printable text: found control character U+0001"
    with pytest.raises(ValidationError) as caught:
        parse_rule(dict(body, target={"category": "x" * 101}), "r", 1.9e9, "k")
    assert str(caught.value) == "target.category must be a section name of 1-100 printable characters"


def test_an_events_file_given_as_preferences_clears_nobodys_follows(store, tmp_path):
    """A preferences row replaces the reader's follows: a row naming neither categories nor regions
    (an events file, say) was accepted as "follows nothing" and cleared them."""
    prefs = tmp_path / "prefs.csv"
    prefs.write_text("user_id,categories,regions\nu1,Olahraga,Jabar\nu2,,\n", encoding="utf-8")
    assert import_preferences(store, prefs).accepted == 2  # empty cells clear, as before
    events = tmp_path / "events.csv"
    events.write_text(f"user_id,article_id,event,ts\nu1,a1,click,{TS}\nu3,a1,click,{TS}\n", encoding="utf-8")
    report = import_preferences(store, events)
    assert (report.accepted, report.rejected) == (0, 2)
    assert "names neither categories nor regions" in report.errors[0][1]
    assert store.get_preferences("u1").categories == ("Olahraga",) and store.get_preferences("u3") is None
    jsonl(tmp_path / "only.jsonl", {"user_id": "u1", "regions": ["Jatim"]})  # one field named: a row still
    assert import_preferences(store, tmp_path / "only.jsonl").accepted == 1  # (replacing both, as a PUT does)
    assert (store.get_preferences("u1").categories, store.get_preferences("u1").regions) == ((), ("Jatim",))
