"""The HTML pages through Flask's test client on the real engine: what the browser tests need
underneath (escaping, cookies, CSRF, headers, the widget key's limits), checked fast."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from api import create_app
from api.web.relative_time import tanggal, waktu_relatif
from recommender.domain import Article, format_time
from recommender.security import KEYS_FILE, KeyStore

NOW = 1_796_000_000.0


@pytest.mark.parametrize("age, expected", [
    (0, "baru saja"), (59, "baru saja"), (-30, "baru saja"), (60, "1 menit lalu"), (5 * 60 + 59, "5 menit lalu"),
    (3599, "59 menit lalu"), (3600, "1 jam lalu"), (16 * 3600 + 30, "16 jam lalu"), (86_399, "23 jam lalu"),
    (86_400, "kemarin"), (2 * 86_400 - 1, "kemarin"), (2 * 86_400, "2 hari lalu"), (6 * 86_400 + 10, "6 hari lalu"),
])
def test_relative_times_in_indonesian(age, expected):
    assert waktu_relatif(NOW - age, NOW) == expected


def test_a_week_and_older_shows_the_date():
    late_evening_utc = datetime(2026, 12, 29, 20, 0, tzinfo=timezone.utc).timestamp()  # already the 30th in WIB
    assert tanggal(late_evening_utc) == "30 Desember 2026"
    assert waktu_relatif(late_evening_utc, late_evening_utc + 7 * 86_400) == "30 Desember 2026"
    assert tanggal(datetime(2026, 8, 17, 10, 0, tzinfo=timezone.utc).timestamp()) == "17 Agustus 2026"


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """The trained sample behind an app (limits tight for anonymous callers), with console keys."""
    sample = trained.clone(tmp_path_factory.mktemp("pages"))
    home = sample.root / "home"
    keys = KeyStore(home / KEYS_FILE)
    raw = {role: keys.add(role)[0] for role in ("admin", "editor", "site", "widget")}
    config = {"NEWSREC_HOME": str(home), "TESTING": True, "NEWSREC_RATELIMIT_ANONYMOUS": "30 per minute",
              "NEWSREC_TOKEN_SECRET": "test-secret-0123456789abcdef"}
    engine = sample.engine(related_cache_seconds=0)

    def app(**extra):
        return create_app({**config, **extra, "ENGINE": engine, "STORE": sample.store})

    yield sample, app, raw, keys
    sample.store.close()


def sign_in(client, key: str, **request) -> dict:
    page = client.get("/console/signin", **request)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    reply = client.post("/console/signin", data={"csrf_token": csrf, "key": key, "next": "/console/"}, **request)
    assert reply.status_code == 303, reply.text[:300]
    return {"csrf": csrf, "cookie": reply.headers["Set-Cookie"]}


def anchor_of(sample) -> str:
    return max(sample.articles, key=lambda a: sample.articles[a]["published_at"])


def test_widget_escapes_every_field_and_is_cacheable(served):
    sample, app, raw, _ = served
    anchor = anchor_of(sample)
    source = sample.articles[anchor]
    hostile = Article(article_id="x-1", title='<b onmouseover="x()">Banjir</b> & \'kutip\'', body=source["body"],
                      category="Reg<i>onal", region="<em>Bali</em>", url='https://portal.example/a?x="><script>',
                      published_at=sample.now - 300)
    application = app()
    application.extensions["newsrec"].publish_articles([hostile])  # the anchor's text: high in its list
    reply = application.test_client().get(f"/widget/articles/{anchor}/related?limit=50")
    assert reply.status_code == 200 and reply.mimetype == "text/html"
    assert reply.headers["Cache-Control"] == "public, max-age=60"
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    html = reply.text
    assert 'data-newsrec-article="x-1"' in html
    assert "<b " not in html and "<em>" not in html and "<i>" not in html and "<script>" not in html
    assert "&lt;b onmouseover=&#34;x()&#34;&gt;Banjir&lt;/b&gt; &amp; &#39;kutip&#39;" in html
    assert 'href="https://portal.example/a?x=&#34;&gt;&lt;script&gt;"' in html


def test_widget_refuses_bad_requests_as_json(served):
    sample, app, _, _ = served
    client = app().test_client()
    anchor = anchor_of(sample)
    for path, status, code in ((f"/widget/articles/{anchor}/related?limt=3", 400, "unknown_parameter"),
                               (f"/widget/articles/{anchor}/related?limit=0", 400, "invalid_parameter"),
                               ("/widget/articles/no-such-article/related", 404, "not_found"),
                               ("/widget/articles/bad%20id/related", 400, "validation_error")):
        reply = client.get(path)
        assert (reply.status_code, reply.json["error"]) == (status, code), path
    items = re.findall(r'data-newsrec-position="(\d+)"', client.get(f"/widget/articles/{anchor}/related?limit=3").text)
    assert items == ["0", "1", "2"]


def test_widget_is_limited_per_client_address(served):
    sample, app, _, _ = served
    client = app(NEWSREC_RATELIMIT_ANONYMOUS="3 per minute").test_client()
    path = f"/widget/articles/{anchor_of(sample)}/related"
    statuses = [client.get(path, environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get(path, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200


def test_widget_keys_may_only_post_anonymous_clicks(served):
    sample, app, raw, _ = served
    client = app().test_client()
    anchor = anchor_of(sample)
    headers = {"X-API-Key": raw["widget"]}
    click = {"user_id": "anonymous", "article_id": anchor, "event": "click", "ts": format_time(sample.now),
             "list_id": "l0123", "position": 2}
    for bad in ({"event": "read"}, {"user_id": "u1"}, {"list_id": None}, {"position": None}):
        reply = client.post("/v1/events", json={"events": [{**click, **bad}]}, headers=headers)
        assert reply.status_code == 403, bad
    assert client.get(f"/v1/articles/{anchor}/related", headers=headers).status_code == 403
    assert client.get("/v1/users/anonymous/feed", headers=headers).status_code == 403
    reply = client.post("/v1/events", json={"events": [click]}, headers=headers)
    assert reply.status_code == 200 and reply.json["accepted"] == 1
    preflight = client.options("/v1/events", headers={"Origin": "https://portal.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-API-Key" in preflight.headers["Access-Control-Allow-Headers"]


def test_console_cookie_is_secure_behind_tls_and_valid_in_another_worker(served):
    _, app, raw, _ = served
    plain = sign_in(app().test_client(), raw["admin"])
    assert "HttpOnly" in plain["cookie"] and "SameSite=Strict" in plain["cookie"] and "Secure" not in plain["cookie"]
    # https is what gunicorn sets behind a trusted TLS proxy (FORWARDED_ALLOW_IPS)
    tls = sign_in(app().test_client(), raw["admin"], base_url="https://newsrec.example")
    assert "Secure" in tls["cookie"]
    proxied = app(NEWSREC_PROXY_FIX=1).test_client()
    page = proxied.get("/console/signin", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in page.headers["Set-Cookie"]

    # another app on the same home (another worker) accepts the session: the key is derived, not random
    other = app().test_client()
    value = plain["cookie"].split(";", 1)[0].split("=", 1)[1]
    other.set_cookie("newsrec_console", value, path="/console")
    reply = other.get("/console/")
    assert reply.status_code == 200 and reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert reply.headers["X-Frame-Options"] == "DENY"


def test_revoking_the_key_ends_the_session_and_editors_see_less(served):
    sample, app, raw, keys = served
    client = app().test_client()
    raw_editor, record = keys.add("editor", "short-lived")
    sign_in(client, raw_editor)
    assert client.get("/console/").status_code == 200
    assert client.get("/console/readers?user_id=u1").status_code == 403
    assert b"Readers" not in client.get("/console/").data.split(b"<main>")[0]
    keys.revoke(record.key_id)
    reply = client.get("/console/")
    assert reply.status_code == 302 and "/console/signin" in reply.headers["Location"]


def test_console_actions_need_their_csrf_token_and_confirmation(served):
    sample, app, raw, _ = served
    client = app().test_client()
    session = sign_in(client, raw["admin"])
    target = anchor_of(sample)
    assert client.post(f"/console/articles/{target}/takedown", data={"confirm": target}).status_code == 403
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/console/articles/{target}").text).group(1)
    assert csrf != session["csrf"]  # signing in issued a new token: the sign-in form's is dead
    stale = {"csrf_token": session["csrf"], "confirm": target}
    assert client.post(f"/console/articles/{target}/takedown", data=stale).status_code == 403
    reply = client.post(f"/console/articles/{target}/takedown", data={"csrf_token": csrf, "confirm": "wrong"})
    assert reply.status_code == 400 and not sample.store.get_stored_articles([target])[target].deleted
    reply = client.post(f"/console/articles/{target}/takedown", data={"csrf_token": csrf, "confirm": target})
    assert reply.status_code == 200 and sample.store.get_stored_articles([target])[target].deleted
    reply = client.post(f"/console/articles/{target}/restore", data={"csrf_token": csrf})
    assert reply.status_code == 200 and not sample.store.get_stored_articles([target])[target].deleted


def test_a_stale_form_is_answered_with_a_page_not_json(served):
    """A form posted with a dead CSRF token (signed in again in another tab, the reader's session
    ended) is refused, nothing done, as a page in the site's language telling what to do: JSON
    would be what the browser shows."""
    sample, app, raw, _ = served
    from recommender.security import ReaderTokens

    client = app().test_client()
    session = sign_in(client, raw["admin"])
    target = anchor_of(sample)
    reply = client.post(f"/console/articles/{target}/takedown", data={"csrf_token": session["csrf"], "confirm": target})
    assert reply.status_code == 403 and reply.mimetype == "text/html", reply.text[:300]
    assert "reload the page" in reply.text and not sample.store.get_stored_articles([target])[target].deleted
    reader = next(iter(sample.readers))
    client.get(f"/baca/masuk?token={ReaderTokens(b'test-secret-0123456789abcdef').issue(reader, 600)}")
    reply = client.post("/baca/untuk-anda/tidak-tertarik", data={"csrf_token": "stale", "article_id": target})
    assert reply.status_code == 403 and reply.mimetype == "text/html", reply.text[:300]
    assert "Muat ulang halaman" in reply.text


def test_reader_page_needs_a_valid_token_and_ends_with_a_forget(served):
    sample, app, raw, _ = served
    from recommender.security import ReaderTokens

    client = app().test_client()
    assert client.get("/baca/untuk-anda").status_code == 303
    assert client.get("/baca/masuk?token=v2.forged.1.2.sig").status_code == 401
    reader = next(iter(sample.readers))
    token = ReaderTokens(b"test-secret-0123456789abcdef").issue(reader, 600)
    reply = client.get(f"/baca/masuk?token={token}")
    assert reply.status_code == 303 and "SameSite=Lax" in reply.headers["Set-Cookie"]
    page = client.get("/baca/untuk-anda")
    assert page.status_code == 200 and "Atur berita untuk Anda" in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<script>" not in re.sub(r'<script src="[^"]+" defer></script>', "", page.text)  # no inline script
    client.application.extensions["newsrec"].forget_user(reader)
    assert client.get("/baca/untuk-anda").status_code == 303  # the session went with the reader's data


def test_console_lists_pins_rules_and_experiments_from_their_apis(served):
    """The console's pages for pins, rules and experiments show what their admin APIs answer, escaped."""
    sample, app, raw, _ = served
    client = app().test_client()
    sign_in(client, raw["admin"])
    overview = client.get("/console/").data
    for name in ("pins", "rules", "audit", "experiments"):
        assert f'href="/console/{name}"'.encode() in overview
    article_id = anchor_of(sample)
    reply = client.post("/v1/admin/pins", headers={"X-API-Key": raw["editor"]},
                        json={"article_id": article_id, "position": 2,
                              "scope": {"list": "feed", "category": "<b>Banjir</b>"},
                              "expires_at": "2099-01-01T00:00:00+07:00"})
    assert reply.status_code == 201, reply.text
    pin_id = reply.get_json()["pin_id"]
    page = client.get("/console/pins")
    assert page.status_code == 200
    assert pin_id in page.text and article_id in page.text
    assert "<b>Banjir</b>" not in page.text and "&lt;b&gt;Banjir&lt;/b&gt;" in page.text
    assert client.delete(f"/v1/admin/pins/{pin_id}", headers={"X-API-Key": raw["editor"]}).status_code == 200
    assert pin_id not in client.get("/console/pins").text


def test_sign_in_attempts_are_limited_per_client_address(served):
    _, app, raw, _ = served
    client = app(NEWSREC_RATELIMIT_ANONYMOUS="3 per minute").test_client()
    page = client.get("/console/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    guess = {"csrf_token": csrf, "key": "nr_admin_" + "g" * 43, "next": "/console/"}
    statuses = [client.post("/console/signin", data=guess, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    reply = client.post("/console/signin", data={**guess, "key": raw["admin"]}, environ_base={"REMOTE_ADDR": "10.0.0.8"})
    assert reply.status_code == 303


def test_article_inspector_explains_every_article_of_the_window(trained):
    """The console's "why not": for every article, a verdict that agrees with the list readers get."""
    from recommender.serving.inspect import VERDICTS

    engine = trained.engine(related_cache_seconds=0)
    anchor = anchor_of(trained)
    others = tuple(sorted(trained.articles)) + ("never-published",)
    scheduled = Article(article_id="later-1", title="Jadwal Besok", body=trained.articles[anchor]["body"],
                        category="Nasional", published_at=trained.now + 86_400)
    engine.publish_articles([scheduled])
    seen = engine.inspect_related(anchor, limit=10, others=others + ("later-1",))
    listed = [item.article_id for item in seen["list"].items]
    assert listed == [item.article_id for item in engine.related(anchor, limit=10).items]
    last = min(item.score for item in seen["list"].items)
    for item, parts in zip(seen["list"].items, seen["parts"]):
        assert abs(sum(parts["parts"].values()) - item.score) < 1e-4  # the parts add up to the score shown
    verdicts = {v.article_id: v for v in seen["verdicts"]}
    assert verdicts["never-published"].code == "unknown" and verdicts["later-1"].code == "scheduled"
    assert verdicts[anchor].code == "anchor"
    for article_id, v in verdicts.items():
        assert v.code in VERDICTS
        assert (v.code == "listed") == (article_id in listed), (article_id, v)
        if v.code == "scored_lower":
            assert v.score is not None and v.score <= last + 1e-9, v
    assert {v.code for v in verdicts.values()} >= {"listed", "scored_lower"}


def test_reader_inspector_parts_add_up_to_the_feed_scores(served):
    sample, app, raw, _ = served
    client = app().test_client()
    sign_in(client, raw["admin"])
    reader = max(sample.readers, key=lambda r: sum(e["user_id"] == r for e in sample.data.events))
    engine = client.application.extensions["newsrec"]
    engine.flush_impressions()
    page = client.get(f"/console/readers?user_id={reader}").text
    assert engine.flush_impressions() == 0  # looking at a feed here serves nobody: no list logged
    rows = re.findall(r"<tr><td>\d+</td>.*?</tr>", page, flags=re.S)
    assert len(rows) == 20
    for row in rows:
        score = float(re.search(r"<td>(-?\d+\.\d+)</td>", row).group(1))
        parts = dict(re.findall(r'class="part part-\w+" title="(\w+) (-?\d+\.\d+)"', row))
        # the blend's nine, and the reader's hides and fatigue (negative): every part, adding up to the score
        assert len(parts) == 12 and {"hide_story", "hide_category", "fatigue"} <= set(parts), row
        assert abs(sum(float(v) for v in parts.values()) - score) < 0.01, row
    engine.feed(reader, limit=20)
    assert engine.flush_impressions() == 20  # (the check above can fail: a reader's own feed is logged)


def test_overview_charts_click_through_per_position(served):
    from recommender.domain import Interaction

    sample, app, raw, _ = served
    application = app()
    engine = application.extensions["newsrec"]
    client = application.test_client()
    sign_in(client, raw["admin"])
    reader = sorted(sample.readers)[3]
    ranked = engine.feed(reader, limit=10)
    engine.flush_impressions()
    engine.record_events([Interaction(reader, ranked.items[1].article_id, "click", sample.now, list_id=ranked.list_id,
                                      position=1)])
    page = client.get("/console/").text
    charts = page.split('id="positions"')[1]
    group = re.search(r"<figcaption>([^<]+)</figcaption>(.*?)</svg>", charts, flags=re.S)
    assert group.group(1) == ranked.strategy
    labels = re.findall(r"<title>(\d+): (\d+) clicks / (\d+) impressions</title>", group.group(2))
    assert [(p, int(c)) for p, c, _ in labels if int(c)] == [("2", 1)] and len(labels) == 10


def test_overview_shows_the_newest_evaluation_report_and_its_plots(served):
    import json
    import os

    sample, app, raw, _ = served
    application = app()
    home = Path(application.config["NEWSREC_HOME"])
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    for run, auc in (("2026-11-30", 0.51), ("2026-12-01", 0.61)):
        folder = home / "reports" / run
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps({"datasets": {"store": {"newsrec": {"auc": auc}}}}))
        (folder / "auc.png").write_bytes(png)
        os.utime(folder / "report.json", (1e9 + auc * 1e6, 1e9 + auc * 1e6))
    (home / "reports" / "secret.png").write_bytes(png)
    client = application.test_client()
    assert client.get("/console/reports/2026-12-01/auc.png").status_code == 302  # signed in only
    sign_in(client, raw["admin"])
    page = client.get("/console/").text
    assert "datasets.store.newsrec.auc" in page and "0.61" in page and "0.51" not in page
    assert 'src="/console/reports/2026-12-01/auc.png"' in page
    plot = client.get("/console/reports/2026-12-01/auc.png")
    assert plot.status_code == 200 and plot.mimetype == "image/png" and plot.data == png
    plot.close()
    for bad in ("/console/reports/2026-12-01/..%2Fsecret.png", "/console/reports/..%2Freports/secret.png",
                "/console/reports/2026-12-01/report.json", "/console/reports/2026-12-01/missing.png"):
        reply = client.get(bad, follow_redirects=True)
        assert reply.status_code == 404 and reply.data != png, bad


def test_models_page_promotes_and_rolls_back_with_compare_and_set(served):
    from recommender.models.fitting import train

    sample, app, raw, _ = served
    older = sample.store.live_model()
    newer, _ = train(sample.store, sample.models_dir, as_of=sample.now, seed=1)  # staged, not live
    client = app().test_client()
    sign_in(client, raw["admin"])
    page = client.get("/console/models").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert f'/console/models/{newer}/promote' in page and f'/console/models/{older}/' not in page

    reply = client.post(f"/console/models/{newer}/promote", data={"csrf_token": csrf, "expected": older})
    assert reply.status_code == 200 and f"{newer} is live" in reply.text
    assert sample.store.live_model() == newer
    stale = client.post(f"/console/models/{newer}/promote", data={"csrf_token": csrf, "expected": older})
    assert stale.status_code == 409 and "Nothing changed" in stale.text  # someone promoted meanwhile
    assert f'/console/models/{older}/rollback' in client.get("/console/models").text
    reply = client.post(f"/console/models/{older}/rollback", data={"csrf_token": csrf, "expected": newer})
    assert reply.status_code == 200 and sample.store.live_model() == older
    assert client.post(f"/console/models/{newer}/rollback",  # a rollback only goes back
                       data={"csrf_token": csrf, "expected": older}).status_code == 409
    assert sample.store.live_model() == older


# -- controls: pins, rules, audit, experiments -----------------------------------------------------------
def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def wib_local(ts: float) -> str:
    """What a datetime-local input sends for ``ts`` on a WIB clock (to the minute)."""
    from recommender.domain import WIB

    return datetime.fromtimestamp(ts, tz=WIB).strftime("%Y-%m-%dT%H:%M")


def test_console_pins_an_article_until_a_wib_expiry_audited_as_the_key_and_removes_it(served):
    sample, app, raw, keys = served
    client = app().test_client()
    engine = client.application.extensions["newsrec"]
    sign_in(client, raw["editor"])
    anchor = anchor_of(sample)
    pinned = engine.related(anchor, limit=50).items[-1].article_id
    assert pinned not in [i.article_id for i in engine.related(anchor, limit=10).items]
    # the shortcut on the article inspector fills the form
    inspector = client.get(f"/console/articles/{anchor}").text
    assert f'href="/console/pins?list=related&amp;scope_article_id={anchor}"' in inspector
    form = client.get(f"/console/pins?list=related&scope_article_id={anchor}")
    assert f'name="scope_article_id" value="{anchor}"' in form.text
    expires = wib_local(sample.now + 2 * 86_400)
    reply = client.post("/console/pins", data={
        "csrf_token": csrf_of(form), "article_id": pinned, "position": "1", "list": "related",
        "scope_article_id": anchor, "scope_category": "", "scope_region": "", "starts_at": "", "expires_at": expires})
    assert reply.status_code == 200 and f"Pinned {pinned} at position 1" in reply.text, reply.text[-800:]
    assert engine.related(anchor, limit=10).items[0].article_id == pinned
    rule = next(r for r in sample.store.list_rules() if r.kind == "pin")
    # typed in WIB: 7 hours ahead of UTC (read as UTC, it would be 7 hours later)
    assert rule.expires_at == datetime.strptime(expires + "+0700", "%Y-%m-%dT%H:%M%z").timestamp()
    assert rule.scope == {"list": "related", "article_id": anchor} and rule.position == 1
    assert f"{expires.replace('T', ' ')} WIB" in reply.text  # shown back in WIB
    editor_id = keys.authenticate(raw["editor"]).key_id
    assert rule.created_by == f"key:{editor_id}"

    confirm = client.get(f"/console/pins/{rule.rule_id}/remove")
    assert confirm.status_code == 200 and pinned in confirm.text and 'name="confirm"' in confirm.text
    unconfirmed = client.post(f"/console/pins/{rule.rule_id}/remove", data={"csrf_token": csrf_of(confirm)})
    assert unconfirmed.status_code == 400 and engine.related(anchor, limit=10).items[0].article_id == pinned
    assert client.post(f"/console/pins/{rule.rule_id}/remove", data={"confirm": rule.rule_id}).status_code == 403
    reply = client.post(f"/console/pins/{rule.rule_id}/remove", data={"csrf_token": csrf_of(confirm),
                                                                        "confirm": rule.rule_id})
    assert reply.status_code == 200 and f"{rule.rule_id} removed" in reply.text
    assert pinned not in [i.article_id for i in engine.related(anchor, limit=10).items]
    audit = client.get("/console/audit").text
    rows = re.findall(r"<tr><td>\d+</td><td>[^<]+</td><td>([^<]+)</td><td>(\w+)</td><td>([^<]+)</td>", audit)
    assert rows[:2] == [(f"key:{editor_id}", "delete", rule.rule_id), (f"key:{editor_id}", "create", rule.rule_id)]


def test_console_blocks_and_boosts_with_expiry_and_removes_them(served):
    sample, app, raw, _ = served
    client = app().test_client()
    engine = client.application.extensions["newsrec"]
    sign_in(client, raw["admin"])
    anchor = anchor_of(sample)
    before = [i.article_id for i in engine.related(anchor, limit=10).items]
    csrf = csrf_of(client.get("/console/rules"))
    base = {"csrf_token": csrf, "list": "related", "scope_article_id": anchor, "expires_at": wib_local(sample.now + 3600)}
    reply = client.post("/console/rules", data={**base, "kind": "block", "target_kind": "article_id",
                                                "target": before[0], "factor": ""})
    assert reply.status_code == 200 and "Block" in reply.text
    assert before[0] not in [i.article_id for i in engine.related(anchor, limit=10).items]
    block = next(r for r in sample.store.list_rules() if r.kind == "block")
    last = before[-1]
    reply = client.post("/console/rules", data={**base, "kind": "boost", "target_kind": "article_id", "target": last,
                                                "factor": "100"})
    assert reply.status_code == 200
    boost = next(r for r in sample.store.list_rules() if r.kind == "boost")
    assert boost.factor == 100.0
    assert engine.related(anchor, limit=10).items[0].article_id == last
    for rule in (block, boost):
        assert client.post(f"/console/rules/{rule.rule_id}/remove",
                           data={"csrf_token": csrf, "confirm": rule.rule_id}).status_code == 200
    assert [i.article_id for i in engine.related(anchor, limit=10).items] == before
    assert client.post(f"/console/pins/{block.rule_id}/remove", data={"csrf_token": csrf, "confirm": block.rule_id}
                       ).status_code == 404  # a rule is not a pin, and it is gone anyway


@pytest.mark.parametrize("form, says", [
    ({"position": "abc"}, "position must be a whole number from 1 (first) to 100"),
    ({"position": "0"}, "position must be a whole number from 1"),
    ({"expires_at": ""}, "expires_at is required"),
    ({"expires_at": "2001-01-01T10:00"}, "expires_at must be later than now"),
    ({"expires_at": "<b>soon</b>"}, "Expires must be a date and time"),
    ({"expires_at": "2099-01-01T10:00junk"}, "Expires must be a date and time"),  # not cut to its first 16
    ({"expires_at": "9999-12-31T23:59"}, "Expires must be after 1970 and before the year 3000"),  # as typed, not epoch
    ({"article_id": "<script>alert(1)</script>"}, "article_id"),
    ({"list": "homepage"}, "scope.list must be one of"),
    ({"list": "feed"}, "goes with list 'related'"),  # an anchor article with feed lists
    ({"scope_category": "<i>x</i>" * 30}, "scope.category must be a section name"),
])
def test_console_pin_form_shows_bad_input_as_an_escaped_error(served, form, says):
    sample, app, raw, _ = served
    client = app().test_client()
    sign_in(client, raw["editor"])
    anchor = anchor_of(sample)
    good = {"csrf_token": csrf_of(client.get("/console/pins")), "article_id": anchor, "position": "2",
            "list": "related", "scope_article_id": anchor, "expires_at": wib_local(sample.now + 86_400)}
    rules_before = sample.store.list_rules()
    reply = client.post("/console/pins", data={**good, **form})
    assert reply.status_code == 400 and reply.mimetype == "text/html"
    error = re.search(r'<p class="error" role="alert" id="control-error">([^<]*)</p>', reply.text)
    assert error and "Nothing saved" in error.group(1) and says in error.group(1).replace("&#39;", "'"), reply.text[-600:]
    assert "<script>alert" not in reply.text and "<i>x</i>" not in reply.text and "<b>soon" not in reply.text
    assert sample.store.list_rules() == rules_before


def test_console_refuses_to_pin_an_article_the_store_does_not_hold(served):
    sample, app, raw, _ = served
    client = app().test_client()
    sign_in(client, raw["editor"])
    anchor = anchor_of(sample)
    rules_before = sample.store.list_rules()
    reply = client.post("/console/pins", data={
        "csrf_token": csrf_of(client.get("/console/pins")), "article_id": anchor + "x", "position": "2",
        "list": "feed", "expires_at": wib_local(sample.now + 86_400)})
    assert reply.status_code == 404 and reply.mimetype == "text/html"
    error = re.search(r'<p class="error" role="alert" id="control-error">([^<]*)</p>', reply.text)
    assert error and f"Nothing saved: article {anchor}x is not in the store" in error.group(1), reply.text[-600:]
    assert sample.store.list_rules() == rules_before
    reply = client.post("/console/rules", data={  # a rule for the related lists of an unknown article
        "csrf_token": csrf_of(client.get("/console/rules")), "kind": "block", "target_kind": "category",
        "target": "Olahraga", "list": "related", "scope_article_id": anchor + "x"})
    assert reply.status_code == 404 and f"article {anchor}x is not in the store" in reply.text
    assert sample.store.list_rules() == rules_before


@pytest.mark.parametrize("form, says", [
    ({"factor": "lots"}, "factor must be a number"),
    ({"factor": ""}, "factor is required for a boost"),
    ({"factor": "nan"}, "factor must be a finite number"),  # typed, so not "required"
    ({"factor": "0.5"}, "a boost's factor must be above 1"),
    ({"kind": "bury", "factor": "2"}, "a bury's factor must be at least"),
    ({"kind": "block", "factor": "2"}, "a block takes no factor"),
    ({"kind": "pin"}, "kind must be boost, bury or block"),
    ({"target_kind": "story"}, "choose what the rule targets"),
    ({"target": ""}, "target.category must be a section name"),
    ({"starts_at": "2099-01-02T00:00", "expires_at": "2099-01-01T00:00"}, "later than now and than starts_at"),
])
def test_console_rule_form_shows_bad_input_as_an_error(served, form, says):
    sample, app, raw, _ = served
    client = app().test_client()
    sign_in(client, raw["editor"])
    good = {"csrf_token": csrf_of(client.get("/console/rules")), "kind": "boost", "factor": "1.5",
            "target_kind": "category", "target": "Politik", "list": "feed"}
    rules_before = sample.store.list_rules()
    reply = client.post("/console/rules", data={**good, **form})
    assert reply.status_code == 400
    assert says in reply.text.replace("&#39;", "'"), reply.text[-600:]
    assert sample.store.list_rules() == rules_before


def test_console_experiment_report_shows_the_registry_numbers_and_stops_it(served):
    from recommender.domain import Interaction
    from recommender.experiments import registry

    sample, app, raw, _ = served
    live = sample.store.live_model()
    registry.create(sample.store, sample.models_dir, {
        "name": "feed-ab", "variants": [{"label": "A", "model_version": live}, {"label": "B", "model_version": live}],
        "lists": ["feed"]}, now=sample.now - 60)
    application = app()
    client = application.test_client()
    engine = application.extensions["newsrec"]
    site = {"X-API-Key": raw["site"]}
    readers = [r for r in sorted(sample.readers) if sample.store.forgotten_at(r) is None][:12]  # (one test forgets one)
    for reader in readers:
        listed = client.get(f"/v1/users/{reader}/feed?limit=5", headers=site).get_json()
        assert listed["experiment"] == "feed-ab"
        if int(reader[-1], 36) % 2:
            engine.record_events([Interaction(reader, listed["items"][0]["article_id"], "click", sample.now,
                                              list_id=listed["list_id"], position=0)])
    engine.flush_impressions()
    report = registry.report(sample.store, "feed-ab")
    assert sum(v["lists"] for v in report["variants"].values()) == 12

    editor = app().test_client()
    sign_in(editor, raw["editor"])
    assert editor.get("/console/experiments/feed-ab").status_code == 403
    sign_in(client, raw["admin"])
    listing = client.get("/console/experiments").text
    assert 'href="/console/experiments/feed-ab"' in listing and "running" in listing
    page = client.get("/console/experiments/feed-ab").text
    rows = re.findall(r"<tr><td>(\w)(?: \(control\))?</td><td>[^<]*</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>"
                      r"<td>\d+</td><td>([^<]+)</td>", page)
    assert rows == [(label, str(v["lists"]), str(v["impressions"]), str(v["clicks"]), "%.2f%%" % (v["ctr"] * 100))
                    for label, v in report["variants"].items()]
    assert "B − A" in page and f"p = {report['srm_p']:.4f}" in page
    first = re.search(r'id="by-position".*?<tbody>\s*<tr><td>1</td>\s*<td>(\d+)</td><td>(\d+)</td>', page, flags=re.S)
    a_first = report["variants"]["A"]["by_position"][0]
    assert (int(first.group(1)), int(first.group(2))) == (a_first["shown"], a_first["clicks"])
    assert client.get("/console/experiments/no-such").status_code == 404

    confirm = client.get("/console/experiments/feed-ab/stop")
    assert confirm.status_code == 200 and 'value="feed-ab"' in confirm.text
    assert client.post("/console/experiments/feed-ab/stop", data={"csrf_token": csrf_of(confirm)}).status_code == 400
    assert registry.get(sample.store, "feed-ab").stopped_at is None
    reply = client.post("/console/experiments/feed-ab/stop", data={"csrf_token": csrf_of(confirm), "confirm": "feed-ab"})
    assert reply.status_code == 200 and "feed-ab stopped" in reply.text
    assert registry.get(sample.store, "feed-ab").stopped_at is not None
    assert "experiment" not in client.get(f"/v1/users/{readers[0]}/feed", headers=site).get_json()
    again = client.post("/console/experiments/feed-ab/stop", data={"csrf_token": csrf_of(confirm), "confirm": "feed-ab"})
    assert again.status_code == 409
