"""Screenshots of the console, the widget and the Personalize page for the README.

Builds a small sample ending now (in a temporary folder), serves it with ``newsrec serve``, drives
Debian's headless Chromium with Playwright (``/usr/bin/chromium``; ``playwright install`` is never
needed) and writes PNGs into ``docs/screenshots/``::

    .venv/bin/python docs/make_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import http.server
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load import build_sample  # noqa: E402
from benchmarks.serving import free_port, serve, stop, wait_ready  # noqa: E402
from tests.browser_fixtures import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

VIEWPORT = {"width": 1100, "height": 760}


def portal_page(anchor: str, newsrec: str, key: str) -> str:
    return ("<!doctype html><html lang='id'><head><meta charset='utf-8'><title>Portal</title>"
            "<style>body{font-family:Arial;margin:24px;max-width:700px}p{color:#444}</style></head><body>"
            f"<h1>Artikel {anchor}</h1><p>Isi artikel ... (halaman portal)</p>"
            f"<div data-newsrec-related=\"{anchor}\"></div>"
            f"<script src=\"{newsrec}/widget/embed.js\" data-newsrec-key=\"{key}\" data-limit=\"5\" async></script>"
            "</body></html>")


def small(path: Path) -> None:
    """256 colours are plenty for a page of text: about a third of the bytes (Pillow comes with matplotlib)."""
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)


def traffic(base: str, key: str, readers: list[str]) -> None:
    """Feeds for some readers and a click on one of the first items of each: lists to chart."""
    import json
    import urllib.request
    from datetime import datetime, timezone

    for k, reader in enumerate(readers):
        request = urllib.request.Request(f"{base}/v1/users/{reader}/feed?limit=10", headers={"X-API-Key": key})
        with urllib.request.urlopen(request, timeout=30) as response:
            listed = json.load(response)
        position = k % 4
        click = {"user_id": reader, "article_id": listed["items"][position]["article_id"], "event": "click",
                 "ts": datetime.now(timezone.utc).isoformat(), "list_id": listed["list_id"], "position": position}
        request = urllib.request.Request(f"{base}/v1/events", data=json.dumps(click).encode(), method="POST",
                                         headers={"X-API-Key": key, "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30).close()


def in_wib(hours: float) -> str:
    """A datetime-local value ``hours`` from now on the newsroom's clock."""
    import time
    from datetime import datetime

    from recommender.domain import WIB

    return datetime.fromtimestamp(time.time() + hours * 3600, tz=WIB).strftime("%Y-%m-%dT%H:%M")


def experiment(base: str, key: str) -> None:
    """An A/B experiment on feeds (the live model against itself) for the report page."""
    import json
    import urllib.request

    def call(path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(f"{base}{path}", data=None if body is None else json.dumps(body).encode(),
                                         method="GET" if body is None else "POST",
                                         headers={"X-API-Key": key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    live = next(m["version"] for m in call("/v1/admin/models")["models"] if m["live"])
    call("/v1/admin/experiments", {"name": "koran-ab", "lists": ["feed"], "variants": [
        {"label": "A", "model_version": live}, {"label": "B", "model_version": live, "params": {"feed_trending": 1.0}}]})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    from recommender.security import KEYS_FILE, KeyStore, ReaderTokens, load_token_secret

    with tempfile.TemporaryDirectory(prefix="newsrec-shots-") as tmp:
        root = Path(tmp)
        sample = build_sample(root, 400, 200, 4)
        keys = KeyStore(root / KEYS_FILE)
        admin = keys.add("admin", "Redaksi")[0]
        widget = keys.add("widget", "portal")[0]
        token = ReaderTokens(load_token_secret(root, {})).issue(sample["readers"][0], 3600)
        anchor = sample["articles"][-1]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = serve(root, root / "newsrec.sqlite3", root / "models", port, log=root / "server.log")
        page_html = portal_page(anchor, base, widget).encode("utf-8")

        class Portal(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(page_html)

            def log_message(self, *a):
                pass

        portal = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
        threading.Thread(target=portal.serve_forever, daemon=True).start()
        try:
            wait_ready(f"{base}/readyz", server)
            experiment(base, admin)
            traffic(base, admin, sample["readers"][:60])
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                ctx = browser.new_context(viewport=VIEWPORT)
                page = ctx.new_page()

                def shot(name: str, full: bool = False) -> None:
                    path = args.out / f"{name}.png"
                    page.screenshot(path=str(path), full_page=full)
                    small(path)
                    print("wrote", path)

                page.goto(f"{base}/console/")
                shot("console-signin")
                page.fill("#key", admin)
                page.click("form button[type=submit]")
                page.wait_for_url(f"{base}/console/")
                for _ in range(100):  # served lists are written by the workers' background flush (~1 s)
                    if page.locator("#positions figure").count():
                        break
                    page.wait_for_timeout(100)
                    page.reload()
                page.set_viewport_size({"width": 1100, "height": 1400})  # down to the position charts
                shot("console-overview")
                page.set_viewport_size(VIEWPORT)
                page.goto(f"{base}/console/articles/{anchor}?why={sample['articles'][0]}+{sample['articles'][-2]}")
                shot("console-article")
                page.goto(f"{base}/console/readers?user_id={sample['readers'][0]}")
                shot("console-reader")
                page.goto(f"{base}/console/models")
                shot("console-models")
                page.goto(f"{base}/console/articles/{anchor}")  # a pin through the console's own form
                page.click("#pin-here")
                page.fill("#pin-form input[name=article_id]", sample["articles"][-5])
                page.fill("#pin-form input[name=expires_at]", in_wib(hours=6))
                page.click("#pin-form button[type=submit]")
                page.set_viewport_size({"width": 1100, "height": 900})
                shot("console-pins")
                page.goto(f"{base}/console/experiments/koran-ab")
                shot("console-experiment", full=True)
                page.set_viewport_size(VIEWPORT)
                page.goto(f"http://127.0.0.1:{portal.server_address[1]}/artikel")
                page.wait_for_selector("[data-newsrec-ready='1']")
                page.set_viewport_size({"width": 760, "height": 560})
                shot("widget")
                page.set_viewport_size(VIEWPORT)
                page.set_viewport_size({"width": 1100, "height": 1250})  # the choices and the first items
                page.goto(f"{base}/baca/masuk?token={token}")
                page.wait_for_url(f"{base}/baca/untuk-anda")
                shot("personalize")
                browser.close()
        finally:
            portal.shutdown()
            portal.server_close()
            stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
