"""The monthly token audit as one self-contained HTML file: mail it, open it offline, print it.

Everything is inline (CSS, SVG charts from :mod:`finops.render.charts`); there is no
script, font, image or link to fetch, and a Content-Security-Policy forbids them, so even
an escaping mistake could not make the report run code or call home. Every string from
data is escaped. The tables are :func:`finops.render.report_text.report_tables`, the same
as the Markdown's, laid out with charts above the big ones. For machines, tables carry
ids (``by-flow``, ``by-model``, ``top-prompts``, ``outcomes``, ...), rows ``data-key`` and
every money cell ``data-nanos`` (exact integer nano-dollars), so a test or a scraper
compares numbers exactly with the JSON. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from finops.domain.money import nanos_to_usd
from finops.domain.words import plural
from finops.render.charts import bar_chart, line_chart
from finops.render.report_data import (
    ESTIMATE_NOTE,
    change,
    compared_label,
    count,
    month_name,
    percent,
    period_label,
    ratio,
    relative_change,
    usd,
    usd_change,
)
from finops.render.report_text import Cell, Table, report_tables
from finops.usecases.audit.report_model import MonthlyReport

__all__ = ["render_html"]

_CHART_BARS = 10
_NAME_MAX = 60
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'"
_CSS = """
:root{--text:#1f2933;--muted:#616e7c;--line:#e4e7eb;--soft:#f5f7fa;--accent:#2f6bd8;
--up:#c0392b;--down:#1e7d3a;--warn:#8a5a00;--warn-bg:#fff8e6}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--text);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1400px;margin:0 auto;padding:32px 32px 48px}
h1{font-size:26px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:18px;margin:40px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
p{margin:8px 0}.meta,.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin:18px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;background:var(--soft)}
.card .label{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.card .value{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums;white-space:nowrap}
.card .sub{font-size:12px;color:var(--muted);font-variant-numeric:tabular-nums}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:var(--soft);vertical-align:bottom}
.num{text-align:right}td.num{white-space:nowrap}
tr.extra td{color:var(--muted);font-style:italic}
tr.total td{font-weight:650;border-top:2px solid var(--text);background:var(--soft)}
tr.has-detail td{border-bottom:none}tr.detail td{padding-top:0;color:var(--muted);font-size:12px}
.name,.list{white-space:nowrap}.list{font-size:12px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px;
background:var(--soft);padding:0 3px;border-radius:3px}
.partial{display:inline-block;font-size:12px;font-weight:600;color:var(--warn);background:var(--warn-bg);
padding:1px 8px;border-radius:9px;margin-left:6px;vertical-align:middle}
.up{color:var(--up)}.down{color:var(--down)}.unknown{color:var(--warn);font-style:italic}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px}
.flag{display:inline-block;font-size:10.5px;font-weight:700;letter-spacing:.03em;padding:1px 6px;
border-radius:9px;margin:0 3px 2px 0}
.flag-new{background:#e3efff;color:#1a4fa0}.flag-growing{background:#fde8e6;color:#a12a1f}
.flag-bloated{background:#fff0db;color:#98500a}
.callout{border-left:4px solid var(--accent);background:#eef4fd;padding:8px 12px;border-radius:4px}
.callout.warn{border-color:#e8a317;background:var(--warn-bg)}
figure{margin:16px 0}svg.chart{max-width:100%;height:auto}
ol.findings{padding-left:22px}ol.findings li{margin-bottom:14px}
.saving{margin-left:8px;font-size:12px;color:var(--down);font-weight:600;white-space:nowrap}
footer{margin-top:40px;color:var(--muted);font-size:12px}
@page{size:A4 landscape;margin:12mm}
@media print{main{padding:0;max-width:none}body{font-size:11px}table{font-size:10.5px}
h2{break-after:avoid}tr,figure,.card,li,.callout{break-inside:avoid}thead{display:table-header-group}
.table-wrap{overflow:visible}.list,.mono,.detail td{font-size:inherit}}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _flags(flags: Sequence[str]) -> str:
    """Flag badges; the class only takes letters, whatever the flag says."""
    return "".join(
        f'<span class="flag flag-{"".join(c for c in f.lower() if c.isalpha())}">{_e(f)}</span>'
        for f in flags
    )


def _name(text: str) -> str:
    """A name, escaped; a very long one is cut (the whole name is its tooltip) so tables keep their shape."""
    if len(text) <= _NAME_MAX:
        return _e(text)
    return f'<span title="{_e(text)}">{_e(text[: _NAME_MAX - 1])}…</span>'


def _td(cell: Cell) -> str:
    if cell.kind == "flags":
        return f"<td>{_flags(cell.items)}</td>"
    if cell.kind == "list":
        return f'<td class="list">{"<br>".join(_name(i) for i in cell.items)}</td>'
    if cell.kind == "code":
        return f'<td class="name"><span class="mono">{_name(cell.text)}</span></td>'
    if cell.kind == "name":
        return f'<td class="name">{_name(cell.text)}</td>'
    classes = " ".join(c for c in ("num" if cell.kind == "num" else "", cell.tone) if c)
    data = "" if cell.nanos is None else f' data-nanos="{cell.nanos}"'
    return f'<td class="{classes}"{data}>{_e(cell.text)}</td>'


def _code(text: str) -> str:
    """Prose from a finding, escaped, with its `code spans` as <code> (never literal backticks)."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(f"<code>{_e(p)}</code>" if i % 2 else _e(p) for i, p in enumerate(parts))


def _table(t: Table) -> str:
    if not t.rows:
        return f'<p class="muted">{_e(t.empty)}</p>'
    kinds = [c.kind for c in t.rows[0].cells]
    ths = "".join(
        f'<th class="{"num" if k == "num" else ""}">{_e(h)}</th>'
        for h, k in zip(t.header, kinds, strict=True)
    )
    rows = []
    foot = ""
    for row in t.rows:
        if row.total:
            foot = '<tfoot><tr class="total">' + "".join(_td(c) for c in row.cells) + "</tr></tfoot>"
            continue
        classes = " ".join(c for c in ("extra" if row.extra else "", "has-detail" if row.detail else "") if c)
        attrs = f' data-key="{_e(row.key)}"' + (f' class="{classes}"' if classes else "")
        rows.append(f"<tr{attrs}>" + "".join(_td(c) for c in row.cells) + "</tr>")
        if row.detail:
            span = len(row.cells) - 1
            rows.append(
                f'<tr class="detail"><td></td><td colspan="{span}">Preview: {_e(row.detail)}</td></tr>'
            )
    note = f'<p class="muted">{_e(t.note)}</p>' if t.note else ""
    return (
        f'<div class="table-wrap"><table id="{t.id}">\n<thead><tr>{ths}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + f"\n</tbody>{foot}</table></div>{note}"
    )


def _bars(items: Sequence[tuple[str, int | None]]) -> list[tuple[str, int | None]]:
    """At most ten bars: the largest nine and one for all the others (their known costs)."""
    if len(items) <= _CHART_BARS:
        return list(items)
    rest = items[_CHART_BARS - 1 :]
    return [*items[: _CHART_BARS - 1], (f"{len(rest)} others", sum(v or 0 for _, v in rest))]


def _charts(r: MonthlyReport) -> dict[str, str]:
    """The chart drawn above each table, by table id; an unpriced line has no bar ("cost unknown")."""
    month = period_label(r)
    partly = frozenset(
        x.key for x in (*r.by_flow, *r.by_model) if x.unpriced_records and x.cost_known
    ) | frozenset(p.prompt for p in r.top_prompts if p.unpriced_records and p.cost_known)
    return {
        "by-flow": bar_chart(
            _bars([(x.key, x.cost_nanos if x.cost_known else None) for x in r.by_flow]),
            title=f"Spend by flow, {month}",
            partly=partly,
        ),
        "by-model": bar_chart(
            _bars([(x.key, x.cost_nanos if x.cost_known else None) for x in r.by_model]),
            title=f"Spend by model, {month}",
            partly=partly,
        ),
        "top-prompts": bar_chart(
            [(p.prompt, p.cost_nanos if p.cost_known else None) for p in r.top_prompts],
            title=f"Top {plural(len(r.top_prompts), 'prompt')}, {month}",
            partly=partly,
        ),
    }


def _compact(n: int) -> str:
    """Token counts for a card: ``10.0 B``, ``584 M`` (the exact count is underneath)."""
    for size, unit in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= size:
            x = n / size
            return f"{x:.0f} {unit}" if x >= 100 else f"{x:.1f} {unit}" if x >= 10 else f"{x:.2f} {unit}"
    return count(n)


def _card(label: str, value: str, sub: str = "", *, nanos: int | None = None, tone: str = "") -> str:
    """One headline figure; ``sub`` is markup (already escaped)."""
    data = "" if nanos is None else f' data-nanos="{nanos}"'
    return (
        f'<div class="card"><div class="label">{_e(label)}</div>'
        f'<div class="value {tone}"{data}>{_e(value)}</div><div class="sub">{sub}</div></div>'
    )


def _headline(r: MonthlyReport) -> str:
    exact = f"${nanos_to_usd(r.total_nanos):,f}"
    prev = compared_label(r) if r.partial else month_name(r.previous_month)
    cards = [_card("Spend", usd(r.total_nanos), f"exact {_e(exact)}", nanos=r.total_nanos)]
    delta = change(r.total_nanos, r.prev_total_nanos)
    if delta is None or r.prev_total_nanos is None:
        cards.append(_card(f"vs {prev}", "no data"))
    else:
        rel = relative_change(r.total_nanos, r.prev_total_nanos, base=r.prev_base)
        tone = "up" if delta > 0 else "down" if delta < 0 else ""
        before = f'<span data-nanos="{r.prev_total_nanos}">{_e(usd(r.prev_total_nanos))}</span>'
        cards.append(_card(f"vs {prev}", usd_change(delta), f"{_e(rel)} on {before}", nanos=delta, tone=tone))
    cards += [
        _card("Requests", count(r.requests)),
        _card("Input tokens", _compact(r.input_tokens), _e(count(r.input_tokens))),
        _card("Output tokens", _compact(r.output_tokens), _e(count(r.output_tokens))),
        _card("Cache hits", percent(ratio(r.cached_input_tokens, r.input_tokens)), "of input tokens"),
    ]
    out = [f'<section id="headline"><h2>Headline</h2><div class="cards">{"".join(cards)}</div>']
    if r.unpriced:
        records = sum(u.records for u in r.unpriced)
        out.append(
            f'<p class="callout warn">Unpriced usage: {plural(records, "record")} on '
            f"{plural(len(r.unpriced), 'model')}, <strong>cost unknown</strong> (not in the total): "
            "shown as — in the tables. See Unpriced usage below.</p>"
        )
    if r.partial:
        out.append(
            f'<p class="callout warn" id="partial-note">{_e(month_name(r.month))} is not over: this report '
            f"covers {_e(r.partial)} and compares it with {_e(compared_label(r))}.</p>"
        )
    if r.token_counts_estimated:
        out.append(f'<p class="callout" id="estimates-note"><strong>Note:</strong> {_e(ESTIMATE_NOTE)}</p>')
    facts = (
        [
            f"{plural(len(r.over_cap), 'budget breach', 'budget breaches')} (spend at or over a cap)",
            f"{plural(len(r.crossings), 'threshold crossing')} below the cap",
        ]
        if r.breaches
        else []
    )
    if r.findings:
        saving = sum(f.saving_nanos or 0 for f in r.findings)
        facts.append(
            plural(len(r.findings), "finding") + (f", estimated savings {usd(saving)}" if saving else "")
        )
    if facts:
        out.append(f"<p>{_e(' · '.join(facts))}: see below.</p>")
    chart = line_chart(
        r.daily, title=f"Daily spend, {period_label(r)} ({r.timezone} days)", unpriced=dict(r.daily_unpriced)
    )
    caption = ""
    if r.daily_unpriced:
        days = plural(len(r.daily_unpriced), "day")
        caption = (
            f'<figcaption class="muted">Hollow dots: {days} with unpriced usage; the line is the priced '
            "part of each day (hover a dot for its unpriced records).</figcaption>"
        )
    out.append(f'<figure id="chart-daily">{chart}{caption}</figure>')
    return "\n".join([*out, "</section>"])


def _findings(r: MonthlyReport) -> str:
    if not r.findings:
        return '<p class="muted">Nothing stood out this month.</p>'
    items = []
    for f in r.findings:
        saving = ""
        if f.saving_nanos:
            amount = _e(usd(f.saving_nanos))
            saving = f'<span class="saving" data-nanos="{f.saving_nanos}">est. saving {amount}</span>'
        items.append(
            f"<li><strong>{_code(f.title)}</strong>{saving}<br>{_code(f.detail)}<br>"
            f"<em>Suggestion:</em> {_code(f.suggestion)}</li>"
        )
    return '<ol class="findings" id="findings">' + "".join(items) + "</ol>"


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="section-{section_id}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def render_html(report: MonthlyReport) -> str:
    """The whole monthly audit as one HTML document (UTF-8 text; nothing external, no script)."""
    r = report
    title = f"LLM token audit: {month_name(r.month)}"
    badge = f' <span class="partial">partial ({_e(r.partial)})</span>' if r.partial else ""
    charts = _charts(r)
    parts = [_headline(r)]
    for t in report_tables(r):
        chart = f'<figure id="chart-{t.id}">{charts[t.id]}</figure>' if t.id in charts and t.rows else ""
        parts.append(_section(t.id, t.title, chart + _table(t)))
    parts.append(_section("findings", "Findings", _findings(r)))
    if r.notes:
        parts.append(
            _section("notes", "Notes", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in r.notes) + "</ul>")
        )
    meta = (
        f"Generated {_e(r.generated_at)} · days in {_e(r.timezone)} · compared with "
        f"{_e(compared_label(r))} · dollars rounded to the cent"
    )
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
    ]
    body = [
        "<body>",
        "<main>",
        f'<header><h1>{_e(title)}{badge}</h1><p class="meta">{meta}</p></header>',
        *parts,
        "<footer>Generated by finops. Exact figures: the JSON and CSV exports of this report.</footer>",
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(head + body)
