"""Change-log retention (``newsrec store prune``): what a bundle's catch-up needs is never pruned.

A trained sample gets edits after its bundle was fitted; pruning "two days later" removes the
changes before the bundle's ``change_pos`` and keeps every one after it, so a worker that loads
the bundle after the prune builds the same lists as one that loaded it before.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from recommender.domain import Article
from recommender.store import FeatureLogRow
from training.cli import main as cli_main
from training.retention import DAY, bundle_positions, prune


def ids(ranked) -> list[str]:
    return [i.article_id for i in ranked.items]


def test_pruning_keeps_what_the_bundles_catch_up_needs(trained, tmp_path, monkeypatch, capsys):
    own = trained.clone(tmp_path)
    store = own.store
    fitted = bundle_positions(own.models_dir)[own.version]
    newest = sorted(own.articles, key=lambda a: own.articles[a]["published_at"])
    old = store.get_articles(newest[-10:-4])
    store.upsert_articles([Article(**{**a.__dict__, "title": a.title + " (Diperbarui)"}) for a in old.values()])
    store.takedown_article(newest[-2])
    needed = store.changes_after(fitted)
    anchors = newest[-20:-2]
    engine = own.engine()  # a worker that loaded the bundle before the prune
    before = [ids(engine.related(anchor, limit=10)) for anchor in anchors]
    edited = {i.article_id: i.title for anchor in anchors for i in engine.related(anchor, limit=10).items
              if i.article_id in old}
    engine.close()

    # today nothing is old enough; the dry run names the bundle's position
    monkeypatch.setenv("NEWSREC_HOME", str(own.root))
    monkeypatch.setenv("NEWSREC_DB", str(own.root / "newsrec.sqlite3"))
    monkeypatch.setenv("NEWSREC_MODELS", str(own.models_dir))
    assert cli_main(["store", "prune", "--keep-days", "1", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["before_pos"] == fitted + 1 and plan["bundles"] == {own.version: fitted}
    assert cli_main(["store", "prune", "--keep-days", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 0
    assert cli_main(["store", "prune", "--keep-days", "0"]) == 2

    # two days later: everything before the bundle's position goes, except the newest of each kind
    report = prune(store, own.models_dir, keep_days=1, now=time.time() + 2 * DAY)
    assert report["deleted"] > 0
    assert store.changes_after(fitted) == needed
    kept = [c.kind for c in store.changes_after(0) if c.pos <= fitted]
    assert kept and len(kept) == len(set(kept))
    engine = own.engine()  # and one that loads it after
    assert [ids(engine.related(anchor, limit=10)) for anchor in anchors] == before
    titles = {i.article_id: i.title for anchor in anchors for i in engine.related(anchor, limit=10).items
              if i.article_id in old}
    assert titles == edited and titles and all(t.endswith("(Diperbarui)") for t in titles.values())
    assert newest[-2] not in {a for listed in before for a in listed}
    engine.close()


def test_pruning_drops_feature_rows_older_than_the_feature_log_limit(trained, tmp_path, monkeypatch, capsys):
    own = trained.clone(tmp_path)
    store = own.store
    arts = tuple(sorted(own.articles)[:3])
    now = time.time()

    def row(list_id: str, days_ago: float) -> FeatureLogRow:
        return FeatureLogRow(list_id, "u1", now - days_ago * DAY, arts, ("blend", "age"), np.ones((3, 2)))

    assert store.add_feature_logs([row("L40", 40), row("L20", 20), row("L1", 1)]) == 3
    monkeypatch.setenv("NEWSREC_HOME", str(own.root))
    monkeypatch.setenv("NEWSREC_DB", str(own.root / "newsrec.sqlite3"))
    monkeypatch.setenv("NEWSREC_MODELS", str(own.models_dir))
    assert cli_main(["store", "prune", "--keep-days", "7", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["feature_log_older_than"] < now - 29 * DAY
    assert len(store.feature_logs()) == 3  # a dry run deletes nothing
    assert cli_main(["store", "prune", "--keep-days", "7"]) == 0  # default: 30 days of feature rows
    assert json.loads(capsys.readouterr().out)["feature_log_deleted"] == 1
    assert [r.list_id for r in store.feature_logs()] == ["L20", "L1"]
    assert cli_main(["store", "prune", "--keep-days", "7", "--feature-log-days", "10"]) == 0
    assert [r.list_id for r in store.feature_logs()] == ["L1"]
    assert cli_main(["store", "prune", "--keep-days", "7", "--feature-log-days", "0.5"]) == 2
    assert [r.list_id for r in store.feature_logs()] == ["L1"]


def test_pruning_refuses_infinite_days_whose_report_would_not_be_json(cli_home, capsys):
    """``--keep-days inf`` (or ``1e309``) printed ``"older_than": -Infinity``, which JSON readers
    (jq, a strict parser) refuse; it is now refused like ``nan``, and a huge finite value still works."""
    for flag in ("--keep-days", "--feature-log-days"):
        for days in ("inf", "1e309", "nan"):
            assert cli_main(["store", "prune", flag, days, "--dry-run"]) == 2
            assert "finite number" in capsys.readouterr().err
    assert cli_main(["store", "prune", "--keep-days", "99999999999999999999", "--dry-run"]) == 0
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
