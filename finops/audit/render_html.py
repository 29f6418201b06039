"""The monthly token audit as one self-contained HTML file: mail it, open it offline, print it.

Everything is inline (CSS, SVG charts from :mod:`finops.audit.charts`); there is no
script, font, image or link to fetch, and a Content-Security-Policy forbids them, so even
a naming mistake upstream cannot turn the report into a page that runs code. Every string
from data is escaped. Sections and wording follow the Markdown report
(:mod:`finops.audit.render_text`), with charts. For machines, tables carry ids
(``by-flow``, ``by-model``, ``top-prompts``, ``outcomes``, ...), rows ``data-key`` and every
money cell ``data-nanos`` (exact integer nano-dollars), so a test or a scraper compares
numbers exactly with the JSON. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from html import escape

from finops.audit.charts import bar_chart, line_chart
from finops.audit.render_data import change, change_ratio, ratio, untagged_nanos
from finops.audit.render_text import (
    DASH,
    ESTIMATE_NOTE,
    breach_kind,
    breach_threshold,
    count,
    money_cell,
    month_name,
    of_cap,
    percent,
    percent_change,
    usd,
    usd_change,
    usd_unit,
    value_per_dollar_nanos,
)
from finops.audit.report_model import MonthlyReport, SpendLine
from finops.domain.money import nanos_to_usd

__all__ = ["render_html"]

_CHART_BARS = 10
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'"
_CSS = """
:root{--text:#1f2933;--muted:#616e7c;--line:#e4e7eb;--soft:#f5f7fa;--accent:#2f6bd8;
--up:#c0392b;--down:#1e7d3a;--warn:#8a5a00;--warn-bg:#fff8e6}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--text);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:32px 40px 48px}
h1{font-size:26px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:18px;margin:40px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:24px 0 8px}
p{margin:8px 0}.meta,.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(165px,1fr));gap:12px;margin:18px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;background:var(--soft)}
.card .label{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.card .value{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums;white-space:nowrap}
.card .sub{font-size:12px;color:var(--muted);font-variant-numeric:tabular-nums}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:6px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:var(--soft);white-space:nowrap}
.num{text-align:right;white-space:nowrap}
tbody tr:hover{background:#fafbfc}
tr.extra td{color:var(--muted);font-style:italic}
.name{overflow-wrap:anywhere;min-width:7em}
.up{color:var(--up)}.down{color:var(--down)}
.unknown{color:var(--warn);font-style:italic}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px}
.flag{display:inline-block;font-size:10.5px;font-weight:700;letter-spacing:.03em;padding:1px 6px;
border-radius:9px;margin:0 3px 2px 0}
.flag-new{background:#e3efff;color:#1a4fa0}.flag-growing{background:#fde8e6;color:#a12a1f}
.flag-bloated{background:#fff0db;color:#98500a}
.callout{border-left:4px solid var(--accent);background:#eef4fd;padding:8px 12px;border-radius:4px;margin:12px 0}
.callout.warn{border-color:#e8a317;background:var(--warn-bg)}
.preview{color:var(--muted);font-size:12px;margin-top:2px}
figure{margin:16px 0}svg.chart{max-width:100%;height:auto}
ol.findings{padding-left:22px}ol.findings li{margin-bottom:14px}
.saving{display:inline-block;margin-left:6px;font-size:12px;color:var(--down);font-weight:600}
footer{margin-top:40px;color:var(--muted);font-size:12px}
@page{size:A4 landscape;margin:12mm}
@media print{main{padding:0;max-width:none}body{font-size:11px}table{font-size:10.5px}
h2{break-after:avoid}tr,figure,.card,li,.callout{break-inside:avoid}thead{display:table-header-group}
.table-wrap{overflow:visible}tbody tr:hover{background:none}}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _cell(text: str, *, nanos: int | None = None, cls: str = "num", raw: bool = False) -> str:
    """A ``<td>``; ``nanos`` adds ``data-nanos``; ``raw`` means ``text`` is already markup."""
    data = "" if nanos is None else f' data-nanos="{nanos}"'
    return f'<td class="{cls}"{data}>{text if raw else _e(text)}</td>'


def _money(nanos: int | None, *, unit: bool = False, unknown: str = DASH) -> str:
    if nanos is None:
        return _cell(unknown, cls="num unknown" if unknown != DASH else "num muted")
    return _cell(usd_unit(nanos) if unit else usd(nanos), nanos=nanos)


def _direction(value: int | Decimal | None) -> str:
    """Spend going up is bad news (red), going down good news (green)."""
    return "" if not value else " up" if value > 0 else " down"


def _delta(now: int, prev: int | None) -> str:
    delta = change(now, prev)
    return _cell(usd_change(delta), nanos=delta, cls="num" + _direction(delta))


def _pct_delta(now: int, prev: int | None) -> str:
    rel = change_ratio(now, prev)
    return _cell(percent_change(rel), cls="num" + _direction(rel))


def _table(table_id: str, header: Sequence[str], rows: Iterable[str], *, text: Sequence[int] = (0,)) -> str:
    ths = "".join(f'<th class="{"" if i in text else "num"}">{_e(h)}</th>' for i, h in enumerate(header))
    body = "\n".join(rows)
    return (
        f'<div class="table-wrap"><table id="{table_id}">\n<thead><tr>{ths}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )


def _row(key: str, cells: Iterable[str], cls: str = "") -> str:
    extra = f' class="{cls}"' if cls else ""
    return f'<tr data-key="{_e(key)}"{extra}>' + "".join(cells) + "</tr>"


def _bars(lines: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """At most ten bars: the largest nine and one for all the others."""
    if len(lines) <= _CHART_BARS:
        return list(lines)
    rest = lines[_CHART_BARS - 1 :]
    return [*lines[: _CHART_BARS - 1], (f"{len(rest)} others", sum(v for _, v in rest))]


def _figure(chart_id: str, svg: str) -> str:
    return f'<figure id="chart-{chart_id}">{svg}</figure>'


def _spend_table(
    table_id: str, noun: str, lines: Sequence[SpendLine], r: MonthlyReport, *, untagged: int = 0
) -> str:
    if not lines:
        return '<p class="muted">No spend this month.</p>'
    prev = month_name(r.previous_month, short=True)
    header = [noun, "Spend", "Share", prev, "Change", "Change %", "Requests", "Input tokens"]
    header += ["Output tokens", "Cache hit"]
    rows = [
        _row(
            line.key,
            [
                f'<td class="name">{_e(line.key)}</td>',
                _money(line.cost_nanos),
                _cell(percent(ratio(line.cost_nanos, r.total_nanos))),
                _money(line.prev_cost_nanos),
                _delta(line.cost_nanos, line.prev_cost_nanos),
                _pct_delta(line.cost_nanos, line.prev_cost_nanos),
                _cell(count(line.requests)),
                _cell(count(line.input_tokens)),
                _cell(count(line.output_tokens)),
                _cell(percent(ratio(line.cached_input_tokens, line.input_tokens))),
            ],
        )
        for line in lines
    ]
    if untagged:
        share = _cell(percent(ratio(untagged, r.total_nanos)))
        label = f'<td class="name">(no {_e(noun)} tag)</td>'
        rows.append(_row("", [label, _money(untagged), share, *["<td></td>"] * 7], cls="extra"))
    return _table(table_id, header, rows)


def _card(label: str, value: str, sub: str = "", *, nanos: int | None = None, cls: str = "") -> str:
    data = "" if nanos is None else f' data-nanos="{nanos}"'
    sub_html = f'<div class="sub">{sub}</div>' if sub else ""
    return (
        f'<div class="card"><div class="label">{_e(label)}</div>'
        f'<div class="value{cls}"{data}>{_e(value)}</div>{sub_html}</div>'
    )


def _headline(r: MonthlyReport) -> str:
    exact = f"${nanos_to_usd(r.total_nanos):,f}"
    cards = [
        _card("Spend", usd(r.total_nanos), f'exact <span data-nanos="{r.total_nanos}">{_e(exact)}</span>',
              nanos=r.total_nanos),
    ]  # fmt: skip
    delta = change(r.total_nanos, r.prev_total_nanos)
    prev = month_name(r.previous_month)
    if delta is None or r.prev_total_nanos is None:
        cards.append(_card(f"vs {prev}", "no data"))
    else:
        rel = percent_change(change_ratio(r.total_nanos, r.prev_total_nanos))
        sub = (
            f'{_e(rel)} · <span data-nanos="{r.prev_total_nanos}">{_e(usd(r.prev_total_nanos))}</span> before'
        )
        cards.append(_card(f"vs {prev}", usd_change(delta), sub, nanos=delta, cls=_direction(delta)))
    cards += [
        _card("Requests", count(r.requests)),
        _card("Input tokens", count(r.input_tokens)),
        _card("Output tokens", count(r.output_tokens)),
        _card("Cache hits", percent(ratio(r.cached_input_tokens, r.input_tokens)),
              f"{_e(count(r.cached_input_tokens))} cached input tokens"),
    ]  # fmt: skip
    out = [f'<section id="headline"><h2>Headline</h2><div class="cards">{"".join(cards)}</div>']
    if r.unpriced:
        records = sum(u.records for u in r.unpriced)
        out.append(
            f'<p class="callout warn">Unpriced usage: {count(records)} records on {len(r.unpriced)} models, '
            "<strong>cost unknown</strong> (not in the total). See <em>Unpriced usage</em> below.</p>"
        )
    if r.token_counts_estimated:
        out.append(f'<p class="callout" id="estimates-note"><strong>Note:</strong> {_e(ESTIMATE_NOTE)}</p>')
    facts = []
    if r.breaches:
        facts.append(f"{len(r.breaches)} budget breaches")
    if r.findings:
        saving = sum(f.saving_nanos or 0 for f in r.findings)
        facts.append(f"{len(r.findings)} findings" + (f", estimated savings {usd(saving)}" if saving else ""))
    if facts:
        out.append(f"<p>{_e(' · '.join(facts))} (see below).</p>")
    out.append(_figure("daily", line_chart(r.daily, title="Daily spend")))
    return "\n".join([*out, "</section>"])


def _breaches(r: MonthlyReport) -> str:
    if not r.breaches:
        return '<p class="muted">No budget was breached this month.</p>'
    header = ["Budget", "Period", "Kind", "Threshold", "Spend", "Cap", "Of cap"]
    rows = [
        _row(
            b.budget,
            [
                f'<td class="name">{_e(b.budget)}</td>',
                f"<td>{_e(b.period)}</td>",
                f"<td>{_e(breach_kind(b.kind))}</td>",
                f"<td>{_e(breach_threshold(b))}</td>",
                _cell(money_cell(b.kind, b.spend_nanos), nanos=b.spend_nanos),
                _cell(money_cell(b.kind, b.cap_nanos), nanos=b.cap_nanos),
                _cell(
                    of_cap(b.spend_nanos, b.cap_nanos),
                    cls="num up" if b.spend_nanos >= b.cap_nanos else "num",
                ),
            ],
        )
        for b in r.breaches
    ]
    return _table("breaches", header, rows, text=(0, 1, 2, 3))


def _outcomes(r: MonthlyReport) -> str:
    if not r.outcomes:
        return '<p class="muted">No outcomes were reported this month.</p>'
    prev = month_name(r.previous_month, short=True)
    header = ["Flow", "Spend", "Outcomes", "Successes", "Partial", "Failed", "Success rate"]
    header += ["Per success", "Per attempt", f"{prev} per success", "Trend", "Value", "Value per $1"]
    rows = []
    for o in r.outcomes:
        cps = o.cost_per_success_nanos
        trend = change_ratio(cps, o.prev_cost_per_success_nanos) if cps is not None else None
        rows.append(
            _row(
                o.flow,
                [
                    f'<td class="name">{_e(o.flow)}</td>',
                    _money(o.cost_nanos),
                    *(_cell(count(n)) for n in (o.outcomes, o.successes, o.partials, o.failures)),
                    _cell(percent(o.success_rate)),
                    _money(cps, unit=True, unknown="no successes"),
                    _money(o.cost_per_attempt_nanos, unit=True),
                    _money(o.prev_cost_per_success_nanos, unit=True),
                    _cell(percent_change(trend), cls="num" + _direction(trend)),
                    _money(o.value_nanos),
                    _money(value_per_dollar_nanos(o.value_nanos, o.cost_nanos)),
                ],
            )
        )
    note = (
        '<p class="muted">Cost per success is all of a flow\'s spend (failed calls too) divided by its '
        "successful outcomes; the trend compares it with last month (up is worse).</p>"
    )
    return _table("outcomes", header, rows) + note


def _flags(flags: Sequence[str]) -> str:
    return "".join(
        f'<span class="flag flag-{re.sub(r"[^a-z]", "", f.lower())}">{_e(f)}</span>' for f in flags
    )


def _prompts(r: MonthlyReport) -> str:
    if not r.top_prompts:
        return '<p class="muted">No prompt usage this month.</p>'
    header = ["#", "Prompt", "Spend", "Share", "Calls", "Avg input", "Avg output", "Cache hit"]
    header += ["Success rate", "Flows", "Models", "Change", "Flags"]
    rows = []
    for i, p in enumerate(r.top_prompts, start=1):
        preview = f'<div class="preview">{_e(p.preview)}</div>' if p.preview else ""
        rows.append(
            _row(
                p.prompt,
                [
                    _cell(str(i)),
                    f'<td class="name"><span class="mono">{_e(p.prompt)}</span>{preview}</td>',
                    _money(p.cost_nanos),
                    _cell(percent(p.share)),
                    _cell(count(p.calls)),
                    _cell(count(p.avg_input_tokens)),
                    _cell(count(p.avg_output_tokens)),
                    _cell(percent(p.cache_hit_ratio)),
                    _cell(percent(p.success_rate)),
                    f'<td class="name">{"<br>".join(_e(f) for f in p.flows)}</td>',
                    f'<td class="name">{"<br>".join(_e(m) for m in p.models)}</td>',
                    _delta(p.cost_nanos, p.prev_cost_nanos),
                    f"<td>{_flags(p.flags)}</td>",
                ],
            )
        )
    legend = (
        f'<p class="muted">{_flags(["NEW"])} not seen last month · {_flags(["GROWING"])} spend rising fast · '
        f"{_flags(['BLOATED'])} unusually large prompts for what they return.</p>"
    )
    chart = _figure("top-prompts", bar_chart(_bars([(p.prompt, p.cost_nanos) for p in r.top_prompts]),
                                               title=f"Top {len(r.top_prompts)} prompts by spend"))  # fmt: skip
    return chart + _table("top-prompts", header, rows, text=(1, 9, 10, 12)) + legend


def _unpriced(r: MonthlyReport) -> str:
    if not r.unpriced:
        return '<p class="muted">All usage was priced.</p>'
    rows = [
        _row(
            u.model,
            [
                f'<td class="name">{_e(u.model)}</td>',
                *(_cell(count(n)) for n in (u.records, u.input_tokens, u.output_tokens)),
                _cell("cost unknown", cls="num unknown"),
            ],
        )
        for u in r.unpriced
    ]
    note = (
        '<p class="muted">These models have no price in effect, so their cost is unknown and not in any '
        "total above. Add prices, then run <code>finops prices unpriced</code> and re-price the month.</p>"
    )
    return _table("unpriced", ["Model", "Records", "Input tokens", "Output tokens", "Cost"], rows) + note


def _findings(r: MonthlyReport) -> str:
    if not r.findings:
        return '<p class="muted">Nothing stood out this month.</p>'
    items = []
    for f in r.findings:
        saving = (
            f'<span class="saving" data-nanos="{f.saving_nanos}">estimated saving {_e(usd(f.saving_nanos))}</span>'
            if f.saving_nanos
            else ""
        )
        items.append(
            f"<li><strong>{_e(f.title)}</strong>{saving}<br>{_e(f.detail)}<br>"
            f"<em>Suggestion:</em> {_e(f.suggestion)}</li>"
        )
    return '<ol class="findings" id="findings">' + "".join(items) + "</ol>"


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="section-{section_id}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def render_html(report: MonthlyReport) -> str:
    """The whole monthly audit as one HTML document (UTF-8 text; nothing external, no script)."""
    r = report
    title = f"LLM token audit: {month_name(r.month)}"
    flows = [(line.key, line.cost_nanos) for line in r.by_flow]
    models = [(line.key, line.cost_nanos) for line in r.by_model]
    parts = [
        _headline(r),
        _section(
            "by-flow",
            "Spend by flow",
            _figure("by-flow", bar_chart(_bars(flows), title="Spend by flow"))
            + _spend_table("by-flow", "Flow", r.by_flow, r),
        ),
        _section(
            "by-model",
            "Spend by model",
            _figure("by-model", bar_chart(_bars(models), title="Spend by model"))
            + _spend_table("by-model", "Model", r.by_model, r),
        ),
        _section(
            "by-provider", "Spend by provider", _spend_table("by-provider", "Provider", r.by_provider, r)
        ),
    ]
    used: set[str] = set()
    for key, lines in r.by_tag.items():
        slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "tag"
        while slug in used:
            slug += "-x"
        used.add(slug)
        table = _spend_table(f"by-tag-{slug}", key, lines, r, untagged=untagged_nanos(r, key))
        parts.append(_section(f"by-tag-{slug}", f"Spend by tag: {key}", table))
    parts += [
        _section("breaches", "Budget breaches", _breaches(r)),
        _section("outcomes", "Cost per successful outcome", _outcomes(r)),
        _section("top-prompts", f"Top {len(r.top_prompts)} prompts", _prompts(r)),
        _section("unpriced", "Unpriced usage", _unpriced(r)),
        _section("findings", "Findings", _findings(r)),
    ]
    if r.notes:
        parts.append(
            _section("notes", "Notes", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in r.notes) + "</ul>")
        )
    meta = (
        f"Generated {_e(r.generated_at)} · days in {_e(r.timezone)} · compared with "
        f"{_e(month_name(r.previous_month))} · dollars rounded to the cent"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            "<main>",
            f'<header><h1>{_e(title)}</h1><p class="meta">{meta}</p></header>',
            *parts,
            "<footer>Generated by finops. Exact figures: the JSON and CSV exports of this report.</footer>",
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )
