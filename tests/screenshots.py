"""Screenshots of an HTML report for docs/img/: ``python -m tests.screenshots REPORT.html docs/img``.

Uses the headless Chromium of tests/test_report_browser.py (Debian's /usr/bin/chromium, over the
DevTools pipe, offline) at 1280×900: ``report-top.png`` is the first screen of the report,
``report-prompts.png`` the top prompts section (its chart and table).
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path

from tests.test_report_browser import Browser


def _section(b: Browser, selector: str, margin: int = 24) -> bytes:
    """A section with a white margin around it (the page's own, not cropped at the text)."""
    x, y, w, h = b.evaluate(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
        " return [r.x, r.y + window.scrollY, r.width, r.height]; })()"
    )
    clip = {
        "x": max(x - margin, 0),
        "y": max(y - margin, 0),
        "width": w + 2 * margin,
        "height": h + 2 * margin,
    }
    data = b.call(
        "Page.captureScreenshot", format="png", clip={**clip, "scale": 1}, captureBeyondViewport=True
    )
    return base64.b64decode(data["data"])


def shoot(report: Path, outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        b = Browser(Path(profile))
        try:
            b.open(report.resolve().as_uri())
            b.call(
                "Emulation.setDeviceMetricsOverride",
                width=1280,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            top = outdir / "report-top.png"
            clip = {"x": 0, "y": 0, "width": 1280, "height": 900, "scale": 1}
            data = b.call("Page.captureScreenshot", format="png", clip=clip)["data"]
            top.write_bytes(base64.b64decode(data))
            prompts = outdir / "report-prompts.png"
            prompts.write_bytes(_section(b, "#section-top-prompts"))
        finally:
            b.close()
    return [top, prompts]


if __name__ == "__main__":
    for path in shoot(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"wrote {path}")
