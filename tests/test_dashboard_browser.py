"""Every dashboard page in real Chromium on the demo's ledger: no console problems, nothing
fetched from anywhere but the daemon, no script, every link and control reachable by keyboard,
and no horizontal scrolling on a phone (375 px) or a wide screen (1440 px)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Browser, require_chromium
from tests.daemon_proc import DaemonProcess

REPO = Path(__file__).resolve().parents[1]
PAGES = [
    "/", "/flows/code-review", "/flows/search-summarize", "/outcomes", "/outcomes?month=2026-11",
    "/prompts", "/prompts?flow=support-gpt-en", "/spend", "/spend?by=day&period=month&tz=Europe%2FBerlin",
    "/spend?by=model&period=today",
]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, Browser]]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("pages")
    db = f"sqlite:///{tmp / 'demo.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "finops", "demo", "--db", db, "--days", "45"],
        capture_output=True, text=True, cwd=tmp, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    daemon = DaemonProcess(tmp, db, budgets=REPO / "budgets").start()
    browser = Browser(tmp / "profile")
    try:
        yield daemon, browser
    finally:
        browser.close()
        daemon.stop()


def _visit(site: tuple[DaemonProcess, Browser], path: str) -> Browser:
    daemon, b = site
    b.goto(daemon.base + path)
    b.width(1440)
    assert b.evaluate("document.title").endswith("· finops"), path
    return b


@pytest.mark.parametrize("path", PAGES)
def test_a_page_loads_clean_and_offline(site: tuple[DaemonProcess, Browser], path: str) -> None:
    b = _visit(site, path)
    daemon = site[0]
    assert b.problems() == [], (path, b.problems())
    # data: URLs never leave the machine (the favicon, Chromium's own date-picker icon)
    assert all(url.startswith((daemon.base + "/", "data:")) for url in b.requests()), b.requests()
    assert b.evaluate("document.scripts.length") == 0
    assert b.evaluate("document.querySelectorAll('[style], [onclick], [onload]').length") == 0
    assert b.evaluate("document.querySelector('h1') !== null")


@pytest.mark.parametrize("path", PAGES)
def test_a_page_fits_a_phone_and_a_wide_screen(site: tuple[DaemonProcess, Browser], path: str) -> None:
    b = _visit(site, path)
    for width in (375, 1440):
        b.width(width)
        scroll, inner = b.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"{path}: horizontal scroll at {width}px ({scroll} > {inner})"


@pytest.mark.parametrize("path", PAGES)
def test_keyboard_reaches_every_link_and_control(site: tuple[DaemonProcess, Browser], path: str) -> None:
    b = _visit(site, path)
    focusable = (
        "[...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, [tabindex]')]"
        ".filter(e => e.tabIndex >= 0 && !e.disabled && e.getClientRects().length)"
    )
    wanted = b.evaluate(f"{focusable}.length")
    b.evaluate(f"{focusable}.forEach((e, i) => e.dataset.kb = i)")
    reached: set[Any] = set()
    for _ in range(wanted + 2):
        b.press_tab()
        reached.add(b.evaluate("document.activeElement.dataset.kb"))
    missing = set(map(str, range(wanted))) - reached
    assert not missing, (
        path,
        b.evaluate(
            f"{focusable}.filter(e => {sorted(missing)!r}.includes(e.dataset.kb))"
            ".map(e => e.outerHTML.slice(0, 80))"
        ),
    )
