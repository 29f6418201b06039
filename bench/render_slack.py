"""Screenshots of finops's Slack alerts, one per severity, from the payloads finops really sends.

Builds a throwaway SQLite ledger with one day of spend for four budgets (info, warning, over
budget, blocked), evaluates them with finops's own alert evaluation and renders each with the
renderer delivery uses (``finops.usecases.alerts.would_send``), so the Block Kit JSON is exactly
what would be posted. Each payload becomes a simple Slack-like HTML card (header, sections,
fields, context; mrkdwn bold, italics, code and mentions) and Debian's chromium takes the
screenshot::

    python bench/render_slack.py            # docs/img/slack-alert-{info,warning,breach,blocked}.png
    python bench/render_slack.py --json     # also writes the payloads next to them

Needs ``chromium`` (Debian: /usr/bin/chromium) and, for the emoji, fonts-noto-color-emoji.
Block Kit has no colour of its own: what tells the levels apart is the emoji and the word.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finops.config.budget_spec import parse_budget  # noqa: E402
from finops.notify.messages import alert_severity  # noqa: E402
from finops.settings import Settings  # noqa: E402
from finops.usecases.alerts import evaluate_alerts, would_send  # noqa: E402
from finops.usecases.ingest import ingest_objects  # noqa: E402
from finops.usecases.ledger import Ledger  # noqa: E402

NOW = datetime(2026, 11, 3, 14, 10, tzinfo=UTC)
#: Who the user ids are, as Slack would show the mention.
PEOPLE = {"U0DANA123": "dana", "U0MARC456": "marc", "U0PRIYA78": "priya", "U0OPS9999": "platform-oncall"}
EMOJI = {
    "information_source": "ℹ️",
    "warning": "⚠️",
    "rotating_light": "🚨",
    "no_entry": "⛔",
    "mag": "🔍",
    "white_check_mark": "✅",
    "money_with_wings": "💸",
    "twisted_rightwards_arrows": "🔀",
}
#: name, budget (as a budget file would say), spend in dollars by (model, prompt), severity
SCENARIOS: list[tuple[str, dict[str, Any], list[tuple[str, str, float]]]] = [
    (
        "info",
        {"name": "search", "match": {"flow": "search-*"}, "owner": "U0MARC456", "daily_cap_usd": 200},
        [("gpt-4o-mini", "search/rerank@v2", 71.40), ("gpt-4o", "search/answer@v5", 39.00)],
    ),
    (
        "warning",
        {"flow": "support-gpt-en", "owner": "U0DANA123", "daily_cap_usd": 250, "timezone": "Europe/Berlin"},
        [("gpt-4o", "support/answer@v3", 150.00), ("gpt-4o-mini", "support/triage@v1", 62.40)],
    ),
    (
        "breach",
        {"flow": "summaries", "owner": "U0PRIYA78", "daily_cap_usd": 100},
        [("gpt-4o", "summaries/weekly@v2", 88.20), ("gpt-4o-mini", "summaries/daily@v4", 18.00)],
    ),
    (
        "blocked",
        {"flow": "agent-runner", "owner": "U0OPS9999", "daily_cap_usd": 50, "on_breach": "block"},
        [("gpt-4o", "agent/plan@v7", 41.40), ("gpt-4o-mini", "agent/tool-call@v7", 12.60)],
    ),
]
#: nano-dollars per output token (the catalog's list prices)
PER_TOKEN = {"gpt-4o": 10_000, "gpt-4o-mini": 600}


def payloads() -> dict[str, dict[str, Any]]:
    """severity -> the chat.postMessage payload (channel, text, blocks) finops would send."""
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/render.db", user_hash_secret="render")
        ledger = Ledger.open(settings, create=True)
        try:
            for name, raw, spends in SCENARIOS:
                budget = parse_budget({"slack_channel": "#ai-costs", **raw})
                flow = budget.flow or budget.flow_pattern.replace("*", "web")
                records = []
                for i, (model, prompt, usd) in enumerate(spends):
                    tokens = round(usd * 1e9) // PER_TOKEN[model]
                    for j in range(4):  # through the morning
                        records.append(
                            {
                                "id": f"{name}-{i}-{j}",
                                "ts": (NOW - timedelta(hours=9 - 2 * j)).isoformat(),
                                "model": model,
                                "flow": flow,
                                "output_tokens": tokens // 4,
                                "requests": tokens // 4 // 4_000 + 1,
                                "prompt_id": prompt,
                            }
                        )
                summary = ingest_objects(ledger, records, source="render")
                assert summary.rejected == 0, summary.examples
                outgoing = would_send(ledger, [budget], None, now=NOW)
                assert len(outgoing) == 1 and outgoing[0].message is not None, outgoing
                message = outgoing[0].message
                report = evaluate_alerts(ledger, [budget], now=NOW, dry_run=True)
                level = alert_severity(report.new_alerts[0])
                assert level == name, (level, name)
                out[name] = {
                    "channel": outgoing[0].channel,
                    "text": message.text,
                    "blocks": list(message.blocks),
                }
        finally:
            ledger.close()
    return out


# ------------------------------------------------------------------ Block Kit -> HTML


def mrkdwn(text: str) -> str:
    """Slack mrkdwn (already &-escaped by finops, as Slack wants it) as HTML."""
    text = text.replace("<", "&lt;").replace(">", "&gt;")  # mentions are &lt;@U..&gt; from here on
    codes: list[str] = []

    def keep(m: re.Match[str]) -> str:
        codes.append(f"<code>{m.group(1)}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = re.sub(r"`([^`]+)`", keep, text)
    text = re.sub(
        r"&lt;@([UW][A-Z0-9]+)&gt;",
        lambda m: f'<span class="mention">@{PEOPLE.get(m.group(1), m.group(1))}</span>',
        text,
    )
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"<i>\1</i>", text)
    text = re.sub(r":([a-z_]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], text)
    return text.replace("\n", "<br>")


def block_html(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "header":
        plain = html.escape(block["text"]["text"])
        return f'<div class="header">{re.sub(r":([a-z_]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), plain)}</div>'
    if kind == "section":
        parts = []
        if "text" in block:
            parts.append(f'<div class="text">{mrkdwn(block["text"]["text"])}</div>')
        if "fields" in block:
            fields = "".join(f'<div class="field">{mrkdwn(f["text"])}</div>' for f in block["fields"])
            parts.append(f'<div class="fields">{fields}</div>')
        return f'<div class="section">{"".join(parts)}</div>'
    if kind == "context":
        items = " ".join(mrkdwn(e.get("text", "")) for e in block["elements"])
        return f'<div class="context">{items}</div>'
    if kind == "divider":
        return "<hr>"
    return f"<pre>{html.escape(json.dumps(block))}</pre>"


CSS = """
body{margin:0;background:#fff;font-family:'Lato','Liberation Sans','DejaVu Sans',sans-serif;
 font-size:15px;line-height:1.46;color:#1d1c1d}
.msg{display:flex;gap:8px;padding:16px 20px 18px 20px;width:760px}
.avatar{width:36px;height:36px;border-radius:6px;background:#2eb67d;color:#fff;font-weight:700;
 display:flex;align-items:center;justify-content:center;font-size:18px;flex:none}
.who b{font-weight:900}.app{font-size:10px;background:#e8e8e8;color:#616061;border-radius:2px;
 padding:1px 3px;margin:0 4px;font-weight:700}.when{color:#616061;font-size:12px}
.header{font-size:18px;font-weight:900;margin:6px 0 4px}
.section{margin:6px 0}.fields{display:grid;grid-template-columns:1fr 1fr;gap:4px 16px}
.context{font-size:12px;color:#616061;margin-top:6px}
code{font-family:Monaco,Menlo,'DejaVu Sans Mono',monospace;font-size:12px;color:#e01e5a;
 background:#f6f6f6;border:1px solid #e3e3e3;border-radius:3px;padding:1px 3px}
.mention{background:#e8f5fa;color:#1264a3;border-radius:3px;padding:0 2px}
.channel{color:#616061;font-size:13px;margin-bottom:6px}
"""


def card(payload: dict[str, Any]) -> str:
    blocks = "".join(block_html(b) for b in payload["blocks"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body>"
        f'<div class="msg"><div class="avatar">F</div><div>'
        f'<div class="who"><b>finops</b><span class="app">APP</span>'
        f'<span class="when">{NOW:%H:%M}</span></div>{blocks}</div></div></body></html>'
    )


def screenshot(page: Path, png: Path, *, width: int, height: int) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--json", action="store_true", help="also write each payload as JSON")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for level, payload in payloads().items():
            page = Path(tmp) / f"{level}.html"
            page.write_text(card(payload), encoding="utf-8")
            png = args.out / f"slack-alert-{level}.png"
            screenshot(page, png, width=800, height=320)
            if args.json:
                (args.out / f"slack-alert-{level}.json").write_text(
                    json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
                )
            print(png.relative_to(ROOT) if png.is_relative_to(ROOT) else png)


if __name__ == "__main__":
    main()
