"""Screenshots of the dashboard for docs/img/: ``python -m tests.screenshots_dashboard DB_URL docs/img``.

Starts the real daemon on the database (the demo's, ``finops demo``) with the repository's
``budgets/``, and photographs the overview, a flow page and the outcomes page in the headless
Chromium of tests/browser.py at 1280 px wide, each page whole.
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

from tests.browser import Browser
from tests.daemon_proc import DaemonProcess

REPO = Path(__file__).resolve().parents[1]
PAGES = (("dashboard-overview.png", "/"), ("dashboard-flow.png", "/flows/code-review"),
         ("dashboard-outcomes.png", "/outcomes"))  # fmt: skip


def shoot(db_url: str, outdir: Path, width: int = 1280) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        daemon = DaemonProcess(Path(tmp), db_url, budgets=REPO / "budgets").start()
        b = Browser(Path(tmp) / "profile")
        try:
            for name, path in PAGES:
                b.goto(daemon.base + path)
                b.width(width)
                height = int(b.evaluate("document.documentElement.scrollHeight"))
                clip = {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1}
                data = b.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
                target = outdir / name
                target.write_bytes(base64.b64decode(data["data"]))
                written.append(target)
        finally:
            b.close()
            daemon.stop()
    return written


if __name__ == "__main__":
    for written_path in shoot(sys.argv[1], Path(sys.argv[2])):
        print(f"wrote {written_path}")
