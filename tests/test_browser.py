"""The console, the Artikel Terkait widget and the Personalize page in headless Chromium, against
``newsrec serve --workers 2`` (every state change is checked on both workers).

One server and one trained sample for the module; each test publishes the articles it needs, so
they do not depend on each other's order. The widget is embedded in a "portal" page served from
another origin (a second local HTTP server), as the portal would: the fragment and the click post
cross origins with CORS.
"""

from __future__ import annotations

import http.server
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from api.web.relative_time import waktu_relatif
from recommender.domain import EVENT_TYPES, format_time, parse_time
from recommender.datasets.ingest import import_articles, import_events, import_preferences
from recommender.datasets.synthetic import generate
from recommender.models.fitting import train
from recommender.security import KEYS_FILE, KeyStore, ReaderTokens, load_token_secret
from recommender.store import SQLiteStore

from .serve_fixtures import LiveServer, eventually, server_env

pytestmark = pytest.mark.slow

TIMEOUT_MS = 15_000
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@dataclass
class Site:
    server: LiveServer
    home: Path
    admin: str
    editor: str
    site: str
    widget: str
    tokens: ReaderTokens
    articles: dict
    readers: list
    portal: "Portal"
    used: set = field(default_factory=set)

    @property
    def base(self) -> str:
        return self.server.base

    def related_ids(self, article_id: str, limit: int = 10) -> list[str]:
        reply = self.server.get(f"/v1/articles/{article_id}/related?limit={limit}", key=self.site)
        assert reply.status == 200, reply.response.text[:300]
        return [i["article_id"] for i in reply.json()["items"]]

    def publish(self, article_id: str, title: str, like: str, age_seconds: float, **fields) -> dict:
        """A new article with the text of ``like`` (so it is in ``like``'s related list) and another headline."""
        source = self.articles[like]
        record = {"article_id": article_id, "title": title, "body": source["body"], "category": source["category"],
                  "region": source.get("region"), "url": f"{self.portal.base}/berita/{article_id}",
                  "published_at": format_time(time.time() - age_seconds), **fields}
        reply = self.server.post("/v1/articles", {"articles": [record]}, key=self.admin)
        assert reply.status == 200, reply.response.text[:300]
        self.articles[article_id] = record
        return record

    def anchor(self) -> str:
        """A recent article no other test uses, with a related list."""
        newest = sorted(self.articles, key=lambda a: parse_time(self.articles[a]["published_at"], "t"), reverse=True)
        found = next(a for a in newest if a not in self.used and a.startswith("a"))
        self.used.add(found)
        return found

    def widget_ids(self, anchor: str, pin=None) -> list[str]:
        reply = (pin or self.server).get(f"/widget/articles/{anchor}/related")
        assert reply.status == 200, reply.response.text[:300]
        return re.findall(r'data-newsrec-article="([^"]+)"', reply.response.text)


class Portal:
    """The portal's own pages on another origin: one embedding the widget, article pages for clicks."""

    def __init__(self):
        self.pages: dict[str, str] = {}
        portal = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = portal.pages.get(self.path, f"<!doctype html><title>artikel</title><h1>{self.path}</h1>")
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def article_page(self, path: str, anchor: str, newsrec: str, key: str) -> str:
        self.pages[path] = (
            "<!doctype html><html lang='id'><head><meta charset='utf-8'><title>Portal</title></head><body>"
            f"<h1>Artikel {anchor}</h1><div data-newsrec-related=\"{anchor}\"></div>"
            f"<script src=\"{newsrec}/widget/embed.js\" data-newsrec-key=\"{key}\" async></script></body></html>")
        return self.base + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser")
    env = server_env(home)
    # in this process (the CLI's subprocesses cost ~10 s each on a loaded machine): sample ending now, trained
    data = generate(n_articles=300, n_users=150, days=4, seed=5, end=datetime.now(timezone.utc))
    paths = data.write_jsonl(home / "sample")
    store = SQLiteStore(home / "newsrec.sqlite3")
    try:
        import_articles(store, paths["articles"], show_progress=False)
        import_events(store, paths["events"], show_progress=False)
        import_preferences(store, paths["preferences"], show_progress=False)
        train(store, home / "models", seed=0, promote=True)
    finally:
        store.close()
    key_store = KeyStore(home / KEYS_FILE)
    keys = {role: key_store.add(role)[0] for role in ("admin", "editor", "site", "widget")}
    tokens = ReaderTokens(load_token_secret(home, {}))
    articles = {a["article_id"]: a for a in data.articles}
    clicks: dict[str, int] = {}
    for e in data.events:
        if e["event"] == "click":
            clicks[e["user_id"]] = clicks.get(e["user_id"], 0) + 1
    portal = Portal()
    server = LiveServer(env, workers=2)
    try:
        server.wait_ready()
        yield Site(server, home, keys["admin"], keys["editor"], keys["site"], keys["widget"], tokens, articles,
                   sorted(clicks, key=clicks.get, reverse=True), portal)
    finally:
        portal.close()
        rc = server.stop()
    assert rc == 0, server.log_tail()


@pytest.fixture
def context(browser):
    ctx = browser.new_context()
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def sign_in(context, site: Site, key: str, path: str = "/console/"):
    page = context.new_page()
    page.goto(site.base + path)
    page.fill("#key", key)
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    return page


def on_every_worker(site: Site, check, what: str, timeout: float = 10.0) -> None:
    """``check(pinned connection)`` (asserting) passes on each worker, within ``timeout``."""
    def all_pass():
        with site.server.pinned() as pins:
            for pin in pins.values():
                try:
                    check(pin)
                except ValueError as exc:  # list.index(): not there yet
                    raise AssertionError(str(exc)) from None
        return True

    eventually(all_pass, timeout, interval=0.1, what=what)


def stored_clicks(site: Site, user_id: str) -> list[tuple]:
    """(article, list_id, position) of the reader's stored clicks (Store.user_events gives list ids
    of served lists only, so the events table is read as stored)."""
    conn = sqlite3.connect(f"file:{site.home / 'newsrec.sqlite3'}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(
            "SELECT k.article_id, e.list_id, e.position FROM events e JOIN article_keys k ON k.key = e.article_key "
            "JOIN users u ON u.key = e.user_key WHERE u.user_id = ? AND e.event = ?",
            (user_id, EVENT_TYPES.index("click"))).fetchall()
    finally:
        conn.close()


def no_script_ran(page) -> None:
    assert page.evaluate("window.__xss") is None, "a title's markup ran as code"


# -- signing in ---------------------------------------------------------------------------------------
def test_console_redirects_to_sign_in_and_sessions_work_on_every_worker(site, context):
    page = context.new_page()
    reply = page.goto(site.base + "/console/readers?user_id=u00004")
    assert page.url.startswith(site.base + "/console/signin?next="), page.url
    assert "Reader inspector" not in page.content()
    assert reply.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")

    page.fill("#key", "nr_admin_" + "x" * 43)
    page.click("form button[type=submit]")
    assert "not valid" in page.text_content("[role=alert]")
    page.fill("#key", site.site)  # a real key, but not one for the console
    page.click("form button[type=submit]")
    assert "not an admin or editor key" in page.text_content("[role=alert]")

    page.fill("#key", site.admin)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/readers\?user_id=u00004$"))
    assert page.text_content("h1") == "Reader inspector"
    cookie = next(c for c in context.cookies() if c["name"] == "newsrec_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert not cookie["secure"]  # plain HTTP here; Secure over TLS (tests/test_browser_pages.py)

    # the signed cookie is valid on both workers: no session lives in a process
    def signed_in(pin):
        reply = pin.get("/console/", headers={"Cookie": f"newsrec_console={cookie['value']}"})
        assert reply.status == 200 and "Click-through by hour" in reply.response.text, reply.status

    on_every_worker(site, signed_in, "the console session accepted by every worker")

    page.click("header form.action button")  # sign out
    page.wait_for_url(re.compile(r".*/console/signin$"))
    page.goto(site.base + "/console/models")
    assert "/console/signin" in page.url


# -- each console page ----------------------------------------------------------------------------------
def test_console_pages_show_the_live_state(site, context):
    page = sign_in(context, site, site.admin)
    live = site.server.get("/v1/admin/models", key=site.admin).json()
    version = next(m["version"] for m in live["models"] if m["live"])
    assert version in page.text_content("main .cards")
    assert page.locator("svg.chart").first.locator("rect").count() == 6  # one bar per hour

    anchor = site.anchor()
    title = site.articles[anchor]["title"]
    page.goto(site.base + "/console/articles")
    page.fill("input[name=q]", " ".join(title.split()[:4]))
    page.click("form.search button")
    page.click(f"#results a:text-is('{anchor}')")
    assert page.text_content("#article-title") == title
    listed = [href.rsplit("/", 1)[1] for href in page.locator("#related td:nth-child(2) > a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))")]
    assert listed == site.related_ids(anchor), "the console shows another list than readers get"
    assert page.locator("#related .part-text").count() == len(listed)

    # why not: the listed one is in it, a taken-down one is not, an old one is outside the window
    taken = listed[-1]
    assert site.server.delete(f"/v1/articles/{taken}", key=site.admin).status == 200
    page.fill("input[name=why]", f"{listed[0]} {taken} {anchor}")
    page.click("form.search button")
    verdicts = page.locator("#verdicts td:nth-child(2)").all_text_contents()
    assert verdicts == ["in the list", "taken down", "the article itself"], verdicts
    assert site.server.post(f"/v1/admin/articles/{taken}/restore", None, key=site.admin).status == 200

    reader = site.readers[0]
    page.goto(site.base + f"/console/readers?user_id={reader}")
    rows = page.locator("#feed tbody tr")
    assert rows.count() == 20 and page.locator("#feed .part-cf").count() == 20
    history = page.locator("#history tbody tr")
    assert history.count() > 0 and "No clicks" not in history.first.text_content()
    prefs = site.server.get(f"/v1/users/{reader}/preferences", key=site.site)
    shown = page.text_content("#prefs")
    if prefs.status == 200:
        assert all(c in shown for c in prefs.json()["categories"])
    else:
        assert shown == "No preferences set."

    page.goto(site.base + "/console/models")
    assert page.text_content("#models tr.status-live td:first-child") == version


def test_forget_a_reader_needs_confirmation(site, context):
    page = sign_in(context, site, site.admin)
    reader = site.readers[-1]
    page.goto(site.base + f"/console/readers?user_id={reader}")
    button = page.locator("form.danger button")
    assert button.is_disabled()  # console.js: until the id is typed
    page.fill("form.danger input[name=confirm]", reader)
    button.click()
    assert f"Reader {reader} forgotten" in page.text_content("#forgotten")
    store = SQLiteStore(site.home / "newsrec.sqlite3")
    try:
        assert store.user_events(reader) == [] and store.forgotten_at(reader) is not None
    finally:
        store.close()


# -- controls reach the widget on every worker ------------------------------------------------------------
def test_takedown_in_console_vanishes_from_the_widget(site, context):
    anchor = site.anchor()
    victim = site.related_ids(anchor)[1]
    on_every_worker(site, lambda pin: site.widget_ids(anchor, pin).index(victim), "the article in the widget first")

    page = sign_in(context, site, site.editor, f"/console/articles/{victim}")
    page.fill("form.danger input[name=confirm]", victim)
    page.click("form.danger button")
    assert page.text_content("#article-state") == "taken down"

    def gone(pin):  # no wait: a takedown is read before every list
        assert victim not in site.widget_ids(anchor, pin)

    with site.server.pinned() as pins:
        for pin in pins.values():
            gone(pin)

    page.click("form.action button:text-is('Restore')")
    assert page.text_content("#article-state") == "live"
    on_every_worker(site, lambda pin: site.widget_ids(anchor, pin).index(victim), "the restored article back")


# -- the widget on the portal's page ------------------------------------------------------------------------
def test_widget_shows_relative_times_and_reports_clicks(site, context):
    anchor = site.anchor()
    fresh = site.publish("w-fresh-5m", "Warga Antusias Sambut Kabar Terbaru Hari Ini", anchor, 5 * 60 + 5)
    older = site.publish("w-old-16h", "Kilas Balik Peristiwa Semalam yang Ramai Dibicarakan", anchor, 16 * 3600 + 60)
    def both_shown(pin):
        assert {fresh["article_id"], older["article_id"]} <= set(site.widget_ids(anchor, pin))

    on_every_worker(site, both_shown, "the new articles in every worker's widget")

    page = context.new_page()
    page.goto(site.portal.article_page(f"/artikel/{anchor}", anchor, site.base, site.widget))
    page.wait_for_selector("[data-newsrec-ready='1']")
    box = page.locator("section.newsrec-related")
    assert box.locator("h2").text_content() == "Artikel Terkait"

    published = {a: parse_time(site.articles[a]["published_at"], "t") for a in site.articles}
    rows = box.locator("li.newsrec-related__item")
    assert rows.count() == 10
    for k in range(rows.count()):
        row = rows.nth(k)
        article_id = row.locator("a").get_attribute("data-newsrec-article")
        shown = row.locator("time").text_content()
        now = time.time()
        assert shown in {waktu_relatif(published[article_id], now - 60), waktu_relatif(published[article_id], now)}
        record = site.articles[article_id]
        label = record.get("region") if record["category"] == "Regional" and record.get("region") else record["category"]
        assert row.locator(".newsrec-related__label").text_content() == label
    assert box.locator(f"li:has(a[data-newsrec-article='{fresh['article_id']}']) time").text_content() in (
        "5 menit lalu", "6 menit lalu")
    assert box.locator(f"li:has(a[data-newsrec-article='{older['article_id']}']) time").text_content() == "16 jam lalu"

    list_id = box.get_attribute("data-newsrec-list")
    link = box.locator(f"a[data-newsrec-article='{fresh['article_id']}']")
    position = int(link.get_attribute("data-newsrec-position"))
    link.click()
    page.wait_for_url(f"{site.portal.base}/berita/{fresh['article_id']}")

    clicks = eventually(lambda: stored_clicks(site, "anonymous"), 10, what="the widget's click in the store")
    assert (fresh["article_id"], list_id, position) in clicks
    # the list itself was logged as the anonymous reader's (impressions with the same list id)
    store = SQLiteStore(site.home / "newsrec.sqlite3")
    try:
        def logged():
            return [e for e in store.user_events("anonymous", events=("impression",)) if e.list_id == list_id]
        impressions = eventually(logged, 10, what="the widget's served list logged")
        assert [e.article_id for e in sorted(impressions, key=lambda e: e.position)][position] == fresh["article_id"]
    finally:
        store.close()


# -- Personalize Your News ------------------------------------------------------------------------------------
def reader_page(context, site: Site, reader: str):
    page = context.new_page()
    token = site.tokens.issue(reader, 3600)
    page.goto(f"{site.base}/baca/masuk?token={token}")
    page.wait_for_url(f"{site.base}/baca/untuk-anda")
    assert token not in page.url
    return page


def feed_of(page) -> list[tuple[str, str]]:
    items = page.locator("#umpan li.butir")
    return [(items.nth(k).locator(".judul").get_attribute("data-article"), items.nth(k).locator(".alasan").text_content())
            for k in range(items.count())]


def test_personalize_page_changes_the_feed(site, context):
    reader = site.readers[1]
    page = reader_page(context, site, reader)
    assert page.text_content("h1") == "Atur berita untuk Anda"
    before = feed_of(page)
    assert len(before) == 20
    assert page.locator("form.sembunyikan").count() == (20 if "hide" in EVENT_TYPES else 0)

    checked = page.locator("#form-preferensi input:checked")  # a live query: it shrinks as boxes are unchecked
    while checked.count():
        checked.first.uncheck()
    page.check("#form-preferensi input[name=topik][value=Otomotif]")
    page.check("#form-preferensi input[name=wilayah][value=Aceh]")
    page.check("#form-preferensi input[name=wilayah][value='Papua Selatan']")
    page.click("#form-preferensi button[type=submit]")
    page.wait_for_selector("#tersimpan")
    after = feed_of(page)
    followed = [reason for _, reason in after
                if reason in ("Topik yang Anda ikuti: Otomotif", "Berita Aceh yang Anda ikuti")]
    assert followed, f"no item follows the new choices: {after}"
    assert [a for a, _ in after] != [a for a, _ in before]
    assert page.is_checked("input[name=wilayah][value=Aceh]") and not page.is_checked("input[name=topik][value=Hiburan]")

    # stored once, seen by both workers
    def both(pin):
        reply = pin.get(f"/v1/users/{reader}/preferences", key=site.site)
        assert reply.json() == {"user_id": reader, "categories": ["Otomotif"], "regions": ["Aceh", "Papua Selatan"]}

    on_every_worker(site, both, "the new preferences on every worker")

    # a click on the feed is reported with its list and position (reader.js) before the link is followed;
    # the link is the article's own URL (the sample's on inews.id, or the test portal's for an article
    # another test published), answered here by the browser
    list_id = page.get_attribute("#umpan", "data-list")
    link = page.locator("#umpan a.judul").nth(2)
    article_id, href = link.get_attribute("data-article"), link.get_attribute("href")
    assert href.startswith(("https://", "http://")), href
    context.route(lambda url: url == href,
                  lambda route: route.fulfill(body="<!doctype html><title>artikel</title>", content_type="text/html"))
    link.click()
    page.wait_for_url(lambda url: url == href)
    eventually(lambda: (article_id, list_id, 2) in stored_clicks(site, reader), 10, what="the feed click stored")


# -- markup in titles is text everywhere -------------------------------------------------------------------------
def test_script_in_a_title_is_text_everywhere(site, context):
    anchor = site.anchor()
    title = f"{XSS} Banjir Rob Rendam Permukiman Warga"
    record = site.publish("xss-1", title, anchor, 120, region="Papua Selatan")
    on_every_worker(site, lambda pin: site.widget_ids(anchor, pin).index("xss-1"),
                    "the article in the widget on every worker")

    page = context.new_page()  # the widget on the portal's page
    page.goto(site.portal.article_page("/artikel/xss", anchor, site.base, site.widget))
    page.wait_for_selector("[data-newsrec-ready='1']")
    assert page.text_content("a[data-newsrec-article='xss-1']") == title
    no_script_ran(page)
    fragment = site.server.get(f"/widget/articles/{anchor}/related").response.text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in fragment and "<script>" not in fragment

    console = sign_in(context, site, site.admin, "/console/articles?q=Banjir+Rob+Rendam")
    assert title in console.text_content("#results")
    console.goto(site.base + "/console/articles/xss-1")
    assert console.text_content("#article-title") == title
    console.goto(site.base + f"/console/articles/{anchor}")
    assert title in console.text_content("#related")
    no_script_ran(console)

    reader = site.readers[2]
    assert site.server.request("PUT", f"/v1/users/{reader}/preferences", json={"categories": [], "regions": ["Papua Selatan"]},
                               key=site.site).status == 200
    personal = reader_page(context, site, reader)
    shown = feed_of(personal)
    assert title in [personal.locator(f"a[data-article='{a}']").text_content() for a, _ in shown
                     if a == "xss-1"], f"the article is not in the reader's feed: {shown}"
    no_script_ran(personal)
    del record


# -- forms without their CSRF token ------------------------------------------------------------------------------
def test_forms_without_the_csrf_token_are_refused(site, context):
    anchor = site.anchor()
    page = sign_in(context, site, site.admin)
    cookie = next(c for c in context.cookies() if c["name"] == "newsrec_console")
    jar = {"Cookie": f"newsrec_console={cookie['value']}"}
    for token in (None, "forged"):
        data = {"confirm": anchor, **({"csrf_token": token} if token else {})}
        reply = site.server.request("POST", f"/console/articles/{anchor}/takedown", data=data, headers=jar,
                                    allow_redirects=False)
        assert reply.status == 403 and "CSRF" in reply.response.text  # a page: a browser posted it
        assert reply.response.headers["Content-Type"].startswith("text/html")

    # a page of the same site (another port) posting the form: the cookie goes along, the missing token is refused
    site.portal.pages["/attack"] = (
        f"<!doctype html><form id=f method=post action='{site.base}/console/articles/{anchor}/takedown'>"
        f"<input name=confirm value='{anchor}'></form><script>document.getElementById('f').submit()</script>")
    attack = context.new_page()
    attack.goto(site.portal.base + "/attack")
    attack.wait_for_url(f"{site.base}/console/articles/{anchor}/takedown")
    assert "CSRF" in attack.text_content("body")
    # from another site (localhost is not 127.0.0.1): the SameSite=Strict cookie is not even sent
    attack.goto(site.portal.base.replace("127.0.0.1", "localhost") + "/attack")
    attack.wait_for_url(re.compile(r".*/console/signin.*"))
    store = SQLiteStore(site.home / "newsrec.sqlite3")
    try:
        assert not store.get_stored_articles([anchor])[anchor].deleted
    finally:
        store.close()

    reader = site.readers[3]
    personal = reader_page(context, site, reader)
    reader_cookie = next(c for c in context.cookies() if c["name"] == "newsrec_reader")
    reply = site.server.request("POST", "/baca/untuk-anda/preferensi", data={"topik": "Otomotif"},
                                headers={"Cookie": f"newsrec_reader={reader_cookie['value']}"}, allow_redirects=False)
    assert reply.status == 403
    assert site.server.get(f"/v1/users/{reader}/preferences", key=site.site).json().get("categories") != ["Otomotif"]
    del page, personal


# -- a pin made in the console leads the widget on every worker ----------------------------------------------
def test_pin_in_console_leads_the_widget_on_every_worker_until_removed(site, context):
    from recommender.domain import WIB

    anchor = site.anchor()
    pinned = site.related_ids(anchor, limit=30)[-1]
    assert pinned not in site.widget_ids(anchor)
    page = sign_in(context, site, site.editor, f"/console/articles/{anchor}")
    page.click("#pin-here")  # the inspector's shortcut: the form for this article's related lists
    assert page.input_value("#pin-form input[name=scope_article_id]") == anchor
    assert page.input_value("#pin-form select[name=list]") == "related"
    page.fill("#pin-form input[name=article_id]", pinned)
    page.fill("#pin-form input[name=position]", "1")
    expires = datetime.fromtimestamp(time.time() + 3 * 3600, tz=WIB).strftime("%Y-%m-%dT%H:%M")
    page.fill("#pin-form input[name=expires_at]", expires)
    page.click("#pin-form button[type=submit]")
    assert f"Pinned {pinned} at position 1" in page.text_content("#control-message")
    assert f"{expires.replace('T', ' ')} WIB" in page.text_content("#pins")

    def first(pin):
        assert site.widget_ids(anchor, pin)[0] == pinned

    on_every_worker(site, first, "the pinned article first in the widget")

    page.click(f"#pins tr:has-text('{pinned}') a.remove")
    page.click("form.confirm button")
    assert "removed" in page.text_content("#control-message")

    def gone(pin):
        assert pinned not in site.widget_ids(anchor, pin)

    on_every_worker(site, gone, "the pin gone from the widget")
