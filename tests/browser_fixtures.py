"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright for Python.

The browser is the system's ``/usr/bin/chromium`` (Playwright's own download is never used:
``playwright install`` is not run). When it is missing and the tests run as root with apt, it is
installed here once per session (``apt-get update && apt-get install -y chromium``). When no
browser can be had, the browser tests are skipped with a loud reason, or fail when
``NEWSREC_REQUIRE_BROWSER=1`` (what ``.ci/run`` sets: CI must not pass by skipping them).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ENV_REQUIRE = "NEWSREC_REQUIRE_BROWSER"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_TIMEOUT = 900


def _unavailable(reason: str):
    message = f"BROWSER TESTS NOT RUN: {reason}"
    print(f"\n{'!' * 20} {message} {'!' * 20}", file=sys.stderr)
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(f"{message} ({ENV_REQUIRE}=1: CI needs them)", pytrace=False)
    pytest.skip(message)


def _install_chromium() -> str | None:
    """Install Debian's chromium when we may (root with apt-get); why not otherwise."""
    if os.geteuid() != 0:
        return f"{CHROMIUM} is missing and the tests do not run as root (install it: apt-get install chromium)"
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install it"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(cmd)} failed: {exc}"
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}"
    return None if os.path.exists(CHROMIUM) else f"apt-get installed chromium but {CHROMIUM} is missing"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium that Playwright can drive (installed if missing and possible)."""
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is not installed (python3 dev.py test installs the dev extras)")
    if not os.path.exists(CHROMIUM):
        why = _install_chromium()
        if why:
            _unavailable(why)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium):
    """One headless Chromium for the session; tests open their own contexts (cookies apart)."""
    from playwright.sync_api import Error, sync_playwright

    manager = sync_playwright().start()
    try:
        try:
            instance = manager.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=60_000)
        except Error as exc:
            _unavailable(f"{chromium} does not start under Playwright: {str(exc)[:500]}")
        yield instance
        instance.close()
    finally:
        manager.stop()
