"""The HTML report in a real browser: headless Chromium, offline, laid out, painted and printed.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3
in, fd 4 out, NUL-terminated JSON), so no Python browser library is needed. The page
itself runs no script; the test asks the browser about its layout. Skipped where
/usr/bin/chromium is missing, except under CI=true, where it fails (CI installs it).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops.render.charts import BAR_COLOR, LINE_COLOR
from finops.render.report_html import render_html
from tests.browser import CHROMIUM, Browser, pixels_of, png_pixels
from tests.report_fixture import HOSTILE_FLOW, sample_report


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Browser, Path]]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {CHROMIUM} is missing: CI must `apt-get install -y chromium`")
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium to run the browser test")
    tmp = tmp_path_factory.mktemp("browser")
    page = tmp / "report.html"
    page.write_text(render_html(sample_report()), encoding="utf-8")
    b = Browser(tmp / "profile")
    try:
        b.open(page.as_uri())
        yield b, page
    finally:
        b.close()


def test_report_loads_offline_without_a_single_request_beyond_itself(browser: tuple[Browser, Path]) -> None:
    b, page = browser
    requested = [
        e["params"]["request"]["url"] for e in b.events if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requested == [page.as_uri()]
    assert b.evaluate("document.scripts.length") == 0
    assert b.evaluate("document.characterSet") == "UTF-8"


def test_charts_are_laid_out_with_a_bar_per_flow_and_a_point_per_day(browser: tuple[Browser, Path]) -> None:
    b, _ = browser
    charts = b.evaluate(
        """[...document.querySelectorAll('svg[data-chart]')].map(s => {
             const r = s.getBoundingClientRect();
             return {id: s.parentElement.id, kind: s.dataset.chart, w: r.width, h: r.height,
                     title: s.querySelector('title').textContent,
                     marks: [...s.querySelectorAll('[data-value]')].map(m => {
                       const box = m.getBoundingClientRect();
                       return [Number(m.dataset.value), box.width, box.height]; })}; })"""
    )
    report = sample_report()
    by_id = {c["id"]: c for c in charts}
    assert set(by_id) == {"chart-daily", "chart-by-flow", "chart-by-model", "chart-top-prompts"}
    for chart in charts:
        assert chart["w"] > 600 and chart["h"] > 100 and chart["title"]
        assert all(w > 0 and h > 0 for v, w, h in chart["marks"] if v > 0), chart["id"]
    assert [v for v, _, _ in by_id["chart-by-flow"]["marks"]] == [x.cost_nanos for x in report.by_flow]
    assert [v for v, _, _ in by_id["chart-daily"]["marks"]] == [v for _, v in report.daily]
    assert by_id["chart-daily"]["kind"] == "line" and len(by_id["chart-top-prompts"]["marks"]) == 12
    widths = [w for _, w, _ in by_id["chart-by-flow"]["marks"]]
    assert widths == sorted(widths, reverse=True) and widths[0] > 20 * widths[-1]  # drawn to scale


def test_tables_render_with_numbers_right_aligned_and_names_as_text(browser: tuple[Browser, Path]) -> None:
    b, _ = browser
    tables = b.evaluate(
        """Object.fromEntries([...document.querySelectorAll('table[id]')].map(t => [t.id, {
             rows: t.querySelectorAll('tbody tr[data-key]').length, h: t.getBoundingClientRect().height,
             align: getComputedStyle(t.querySelector('td.num')).textAlign}]))"""
    )
    report = sample_report()
    assert tables["by-flow"]["rows"] == len(report.by_flow)
    assert tables["top-prompts"]["rows"] == len(report.top_prompts)
    assert tables["outcomes"]["rows"] == len(report.outcomes)
    assert {"by-model", "by-provider", "by-tag-team", "by-tag-env", "breaches", "unpriced"} <= set(tables)
    for table_id, t in tables.items():
        assert t["h"] > 40 and t["align"] == "right", table_id
    first = b.evaluate("document.querySelector('#by-flow tbody tr:nth-child(5) td').textContent")
    assert first == HOSTILE_FLOW  # shown as text, not run as markup
    # A wide table scrolls inside its own box; the page itself never scrolls sideways.
    assert b.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    wider = b.evaluate(
        "[...document.querySelectorAll('.table-wrap')]"
        ".filter(w => w.getBoundingClientRect().right > window.innerWidth).length"
    )
    assert wider == 0


def test_names_never_break_inside_a_table_cell(browser: tuple[Browser, Path]) -> None:
    """``claude-sonnet-4-5-`` / ``20250929`` on two lines is a different model to a reader."""
    b, _ = browser
    broken = b.evaluate(
        """[...document.querySelectorAll('td.name, td.list')].filter(td => {
             const range = document.createRange(); range.selectNodeContents(td);
             const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
             return tops.size > td.querySelectorAll('br').length + 1; }).map(td => td.textContent)"""
    )
    assert broken == []
    assert b.evaluate("[...document.querySelectorAll('td.name')].length") > 30
    assert b.evaluate("getComputedStyle(document.querySelector('td.name')).whiteSpace") == "nowrap"


def test_charts_are_painted_in_their_colours(browser: tuple[Browser, Path]) -> None:
    b, _ = browser
    whole = b.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    assert len(base64.b64decode(whole)) > 20_000
    _, _, bars = png_pixels(b.screenshot("#chart-by-flow"))
    assert pixels_of(bars, BAR_COLOR) > 3_000
    width, height, line = png_pixels(b.screenshot("#chart-daily"))
    assert width > 600 and height > 200
    assert pixels_of(line, LINE_COLOR) > 1_000
    assert len({row[x : x + 3] for row in line for x in range(0, len(row), 3)}) > 20  # not a blank box


def test_report_prints_to_pdf(browser: tuple[Browser, Path]) -> None:
    b, _ = browser
    pdf = base64.b64decode(b.call("Page.printToPDF", printBackground=True, preferCSSPageSize=True)["data"])
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) >= 3  # A4 landscape pages
