"""What a new user walking through the console, ``newsrec models`` and ``newsrec store prune`` found:
score parts that leave out a plugin's share, a version listed ``ok`` that ``models verify`` refuses,
a dry run that does not say how much it would delete, and the small things (help texts, a scope
shown as a Python dict, a model size in two units)."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from api import create_app
from recommender.models.bundle import list_versions
from recommender.models.fitting import train
from recommender.params import TrainParams
from recommender.security import KEYS_FILE, KeyStore
from recommender.serving.rules import parse_pin, parse_rule
from recommender.store import FeatureLogRow
from tests.test_browser_pages import csrf_of, sign_in
from training.cli import main as cli_main
from training.retention import DAY, dry_run, prune

ROOT = Path(__file__).resolve().parents[1]
REGION_SCORER = {"role": "scorer", "path": "regional:RegionScorer", "params": {"favour": "Jabar"}, "weight": 5.0}


@pytest.fixture
def sample(trained, tmp_path):
    copy = trained.clone(tmp_path)
    yield copy
    copy.store.close()


def console(sample, engine):
    """A test client signed in to the console as admin, on ``engine``."""
    home = sample.root / "home"
    admin = KeyStore(home / KEYS_FILE).add("admin")[0]
    app = create_app({"NEWSREC_HOME": str(home), "TESTING": True, "ENGINE": engine, "STORE": sample.store,
                      "NEWSREC_TOKEN_SECRET": "test-secret-0123456789abcdef"})
    client = app.test_client()
    sign_in(client, admin)
    return client


def cli_env(sample, monkeypatch):
    monkeypatch.setenv("NEWSREC_HOME", str(sample.root))
    monkeypatch.setenv("NEWSREC_DB", str(sample.root / "newsrec.sqlite3"))
    monkeypatch.setenv("NEWSREC_MODELS", str(sample.models_dir))


def listed(capsys) -> dict[str, str]:
    """``newsrec models list``'s lines by version."""
    return {line[2:].split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:1] in "* "}


def shown_rows(page: str) -> list[tuple[float, dict[str, float]]]:
    """The reader inspector's feed: (score shown, {part: value shown}) per row."""
    out = []
    for row in re.findall(r"<tr><td>\d+</td>.*?</tr>", page, flags=re.S):
        score = float(re.search(r"<td>(-?\d+\.\d+)</td>", row).group(1))
        parts = dict(re.findall(r'class="part part-\w+" title="(\w+) (-?\d+\.\d+)"', row))
        out.append((score, {k: float(v) for k, v in parts.items()}))
    return out


# -- 1. score parts add up to the score, a plugin's share included ------------------------------
def test_feed_score_parts_add_up_to_the_score_with_and_without_a_plugin(sample, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    readers = sorted(sample.readers)[:8]
    engine = sample.engine()
    for reader in readers:
        ranked = engine.feed(reader, limit=20, log=False, explain=True)
        for item, parts in zip(ranked.items, ranked.extra["parts"]):
            assert abs(sum(parts.values()) - item.score) < 1e-6, (item, parts)
            assert not any(name.startswith("plugin_") for name in parts) and "adjustment" not in parts
    page = console(sample, engine).get(f"/console/readers?user_id={readers[0]}").text
    assert "plugin_" not in page
    engine.close()

    train(sample.store, sample.models_dir, TrainParams.from_dict({"plugins": [REGION_SCORER]}), as_of=sample.now,
          promote=True)
    engine = sample.engine()
    jabar = 0
    for reader in readers:
        ranked = engine.feed(reader, limit=20, log=False, explain=True)
        for item, parts in zip(ranked.items, ranked.extra["parts"]):
            assert abs(sum(parts.values()) - item.score) < 1e-6, (item, parts)
            assert "adjustment" not in parts  # the plugin's share is its own part, not a remainder
            assert parts["plugin_p0"] >= 5.0 * (item.region == "Jabar")  # weight 5 x bonus 1 (+ its lift)
            jabar += item.region == "Jabar"
    assert jabar
    # the console lists every part, the plugin's as plugin_p0, and they add up to the score shown
    page = console(sample, engine).get(f"/console/readers?user_id={readers[0]}").text
    rows = shown_rows(page)
    assert len(rows) == 20
    for score, parts in rows:
        assert "plugin_p0" in parts and {"fatigue", "hide_story", "hide_category"} <= set(parts)
        assert abs(sum(parts.values()) - score) < 0.01, (score, parts)  # (each shown to 3 decimals)
    assert max(parts["plugin_p0"] for _, parts in rows) >= 5.0
    engine.close()


def test_an_editors_boost_shows_as_an_adjustment_part(sample):
    engine = sample.engine()
    reader = sorted(sample.readers)[0]
    top = engine.feed(reader, limit=10, log=False).items[-1]
    rule = parse_rule({"kind": "boost", "target": {"article_id": top.article_id}, "scope": {"list": "feed"},
                       "factor": 3.0}, "rboost1", sample.now, "test")
    engine.add_rule(rule, who="test")
    ranked = engine.feed(reader, limit=10, log=False, explain=True)
    by_id = {item.article_id: (item, parts) for item, parts in zip(ranked.items, ranked.extra["parts"])}
    item, parts = by_id[top.article_id]
    assert parts["adjustment"] > 0 and abs(sum(parts.values()) - item.score) < 1e-6
    for item, parts in zip(ranked.items, ranked.extra["parts"]):
        assert abs(sum(parts.values()) - item.score) < 1e-6
        assert ("adjustment" in parts) == (item.article_id == top.article_id)
    engine.close()


# -- 2. models list agrees with models verify about a plugin that cannot be imported --------------
def test_models_list_says_a_plugin_cannot_be_imported_here_as_verify_does(sample, tmp_path, monkeypatch, capsys):
    package = tmp_path / "pkgs"
    package.mkdir()
    (package / "byo_list_gone.py").write_text((ROOT / "tests" / "byo_plugins.py").read_text())
    monkeypatch.syspath_prepend(str(package))
    version, _ = train(sample.store, sample.models_dir, TrainParams.from_dict({"plugins": [
        {"role": "scorer", "path": "byo_list_gone:Faulty", "params": {"mode": "ok"}}]}), as_of=sample.now)
    cli_env(sample, monkeypatch)
    assert cli_main(["models", "list"]) == 0
    assert listed(capsys)[version].rstrip().endswith("  ok")  # importable here
    (package / "byo_list_gone.py").unlink()
    monkeypatch.delitem(sys.modules, "byo_list_gone")

    assert cli_main(["models", "verify", version]) == 1
    assert "cannot be imported" in json.loads(capsys.readouterr().out)["problems"][0]
    import recommender.models.bundle as bundle_module

    def no_hashing(*args, **kwargs):
        raise AssertionError("models list hashed a file")

    monkeypatch.setattr(bundle_module, "_sha256_file", no_hashing)  # listing stays cheap: nothing is hashed
    assert cli_main(["models", "list"]) == 0
    lines = listed(capsys)
    assert "NOT LOADABLE HERE: plugin p0 (scorer, 'byo_list_gone:Faulty') cannot be imported" in lines[version]
    assert lines[sample.version].rstrip().endswith("  ok")
    assert cli_main(["models", "list", "--json"]) == 0
    rows = {row["version"]: row for row in json.loads(capsys.readouterr().out)}
    assert "cannot be imported" in rows[version]["plugin_problem"] and rows[sample.version]["plugin_problem"] is None


# -- 3. the prune's dry run counts what the real run deletes -------------------------------------
def test_prune_dry_run_counts_what_the_prune_deletes_and_deletes_nothing(sample, monkeypatch, capsys):
    store = sample.store
    arts = tuple(sorted(sample.articles)[:3])
    wall = time.time()
    store.add_feature_logs([FeatureLogRow(f"L{d}", "u1", wall - d * DAY, arts, ("blend",), np.ones((3, 1)))
                            for d in (45, 40, 20, 1)])
    newest = sorted(sample.articles, key=lambda a: sample.articles[a]["published_at"])
    store.takedown_article(newest[-1])  # a change after the bundle's position: never pruned
    cli_env(sample, monkeypatch)

    before = (store.changes_after(0), [r.list_id for r in store.feature_logs()])
    assert cli_main(["store", "prune", "--keep-days", "7", "--dry-run"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["dry_run"] is True and planned["feature_log_deleted"] == 2 and planned["deleted"] == 0
    assert (store.changes_after(0), [r.list_id for r in store.feature_logs()]) == before  # nothing deleted
    assert cli_main(["store", "prune", "--keep-days", "7"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert set(done) == set(planned) and done["dry_run"] is False
    assert (done["deleted"], done["feature_log_deleted"]) == (planned["deleted"], planned["feature_log_deleted"])

    # two days later the changes before the bundle's position go too: counted first, then deleted
    later = time.time() + 2 * DAY
    changes = store.changes_after(0)
    plan = dry_run(store, sample.models_dir, keep_days=1, now=later)
    assert plan["deleted"] > 0 and store.changes_after(0) == changes
    report = prune(store, sample.models_dir, keep_days=1, now=later)
    assert (report["deleted"], report["feature_log_deleted"]) == (plan["deleted"], plan["feature_log_deleted"])
    assert len(changes) - len(store.changes_after(0)) == report["deleted"]


# -- 4. the small things ---------------------------------------------------------------------------
def test_keys_add_help_describes_every_role(capsys):
    from recommender.security import ROLES

    with pytest.raises(SystemExit):
        cli_main(["keys", "add", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for role in ROLES:
        assert f"{role}:" in text, role
    assert "widget: a public key" in text


def test_pin_removal_confirmation_shows_the_scope_readably_and_escaped(sample):
    engine = sample.engine()
    client = console(sample, engine)
    anchor = max(sample.articles, key=lambda a: sample.articles[a]["published_at"])
    pinned = sorted(sample.articles)[0]
    for rule_id, scope, shown in (
            ("pfeed0001", {"list": "feed"}, "<td>feed</td>"),
            ("prel00001", {"list": "related", "article_id": anchor}, f"<td>related under {anchor}</td>"),
            ("pcat00001", {"list": "feed", "category": "<b>Nasional</b>"},
             "<td>feed · category &lt;b&gt;Nasional&lt;/b&gt;</td>")):
        engine.add_rule(parse_pin({"article_id": pinned, "position": 1, "scope": scope,
                                   "expires_at": sample.now + DAY}, rule_id, sample.now, "test"), who="test")
        page = client.get(f"/console/pins/{rule_id}/remove")
        assert page.status_code == 200 and shown in page.text, page.text
        assert "{&#39;" not in page.text and "{'" not in page.text  # no Python dict
        assert f"<td>article {pinned}</td>" in page.text  # the target too
        csrf = csrf_of(page)
        assert client.post(f"/console/pins/{rule_id}/remove", data={"csrf_token": csrf, "confirm": rule_id}
                           ).status_code == 200
    engine.close()


def test_console_and_cli_show_a_models_size_in_the_same_megabytes(sample, monkeypatch, capsys):
    cli_env(sample, monkeypatch)
    assert cli_main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    engine = sample.engine()
    page = console(sample, engine).get("/console/models").text
    engine.close()
    for row in list_versions(sample.models_dir):
        megabytes = f"{row['total_bytes'] / 1e6:.1f} MB"  # MB: 1,000,000 bytes
        assert f"{megabytes}  ok" in listed and f"<td>{megabytes}</td>" in page, (megabytes, page)


def test_related_score_parts_in_the_inspector_include_a_plugins_share(sample, monkeypatch):
    """The Articles page scores a related list as the related pipeline does: with its plugins."""
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    related_scorer = dict(REGION_SCORER, lists=["related"])
    train(sample.store, sample.models_dir, TrainParams.from_dict({"plugins": [related_scorer]}), as_of=sample.now,
          promote=True)
    engine = sample.engine()
    shown = 0
    newest = sorted(sample.articles, key=lambda a: sample.articles[a]["published_at"])[-40:]
    for article_id in newest:
        got = engine.inspect_related(article_id, limit=10)
        for item, found in zip(got["list"].items, got["parts"]):
            if found is None:
                continue
            assert "plugin_p0" in found["parts"], found
            assert abs(sum(found["parts"].values()) - found["score"]) < 1e-6, found
            assert abs(found["score"] - item.score) < 1e-6, (found, item)
            shown += 1
        if shown >= 10:
            break
    assert shown >= 10
    engine.close()
