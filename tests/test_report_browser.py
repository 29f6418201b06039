"""The HTML report in a real browser: headless Chromium, offline, laid out, painted and printed.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3
in, fd 4 out, NUL-terminated JSON), so no Python browser library is needed. The page
itself runs no script; the test asks the browser about its layout. Skipped where
/usr/bin/chromium is missing, except under CI=true, where it fails (CI installs it).
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finops.render.charts import BAR_COLOR, LINE_COLOR
from finops.render.report_html import render_html
from tests.report_fixture import HOSTILE_FLOW, sample_report

CHROMIUM = os.environ.get("FINOPS_TEST_CHROMIUM", "/usr/bin/chromium")
TIMEOUT = 15.0


class Browser:
    """One headless Chromium with nowhere to connect to, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--force-device-scale-factor=1",
            "--window-size=1200,900", "--remote-debugging-pipe", "about:blank",
        ]  # fmt: skip
        # The shell moves our pipes to the fds Chromium reads (3) and writes (4) DevTools messages on.
        shell = 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null'
        self.proc = subprocess.Popen(
            ["sh", "-c", shell, "sh", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdin and self.proc.stdout
        self._out, self._in = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self._in], [], [], left)[0]:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise EOFError("Chromium exited")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return dict(json.loads(raw))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._message(deadline))

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Network.enable")
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]

    def screenshot(self, selector: str) -> bytes:
        x, y, w, h = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x, r.y + window.scrollY, r.width, r.height]; })()"
        )
        clip = {"x": x, "y": y, "width": w, "height": h, "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)[
            "data"
        ]
        return base64.b64decode(data)

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=5)
        except (OSError, TimeoutError, EOFError, RuntimeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe:
                    pipe.close()


def png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit, non-interlaced RGB(A) PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = depth = color = interlace = 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        data = png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat += data
    assert depth == 8 and interlace == 0 and color in (2, 6), (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(b"".join(bytes(line[x : x + 3]) for x in range(0, stride, bpp)))
        prev = line
    return width, height, rows


def pixels_of(rows: list[bytes], color: str) -> int:
    rgb = bytes.fromhex(color.lstrip("#"))
    return sum(1 for row in rows for x in range(0, len(row), 3) if row[x : x + 3] == rgb)


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
