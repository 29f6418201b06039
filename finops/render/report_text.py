"""The monthly token audit as Markdown, built from tables that the HTML report shares.

Read by a finance person (what did we spend, why did it move, is it worth it) and an
engineer (which flow, model and prompt to fix), so the report leads with the headline,
then the breakdowns, then what to do. :func:`report_tables` decides once what each table
shows (columns, words, dollars, the exact nano-dollars behind every money cell); the
Markdown here and the HTML in :mod:`finops.render.report_html` only lay the cells out, so
the two formats cannot disagree on a number (the number formats themselves are in
:mod:`finops.render.report_data`). Dollars are rounded to the cent in tables and the exact
total is given once; unknown is never shown as zero.

Every string from data is escaped for Markdown (a flow may be called ``a|b`` or
``<script>``), so tables keep their columns and a permissive renderer shows the text
rather than running it. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from finops.domain.money import nanos_to_usd, usd_to_nanos
from finops.domain.words import plural
from finops.render.report_data import (
    DASH,
    ESTIMATE_NOTE,
    breach_kind,
    breach_threshold,
    change,
    change_ratio,
    compared_label,
    count,
    month_name,
    of_cap,
    percent,
    percent_change,
    period_label,
    ratio,
    relative_change,
    untagged_nanos,
    usd,
    usd_change,
    usd_unit,
    value_per_dollar_nanos,
)
from finops.usecases.audit.report_model import Breach, MonthlyReport, SpendLine

__all__ = ["PARTLY_PRICED", "Cell", "Row", "Table", "md", "md_inline", "render_markdown", "report_tables"]

#: Marks a cost that is the priced part only (some of the line's records have no price).
PARTLY_PRICED = "†"

# ---------------------------------------------------------------- tables

CellKind = Literal["num", "name", "code", "list", "flags", "text"]


@dataclass(frozen=True)
class Cell:
    """One table cell as words, plus the exact money behind it (``nanos``) when it is money.

    ``tone`` is ``up``/``down`` for a change (spend up is bad news), ``unknown`` for a cost
    nobody knows; ``items`` holds the names of a ``list`` or ``flags`` cell.
    """

    text: str
    kind: CellKind = "num"
    nanos: int | None = None
    tone: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[Cell, ...]
    extra: bool = False  # a derived row (untagged spend), not one of the report's lines
    detail: str | None = None  # a redacted prompt preview
    total: bool = False  # the totals row: the exact sum of the rows above


@dataclass(frozen=True)
class Table:
    id: str  # the HTML id: by-flow, by-model, by-tag-team, breaches, outcomes, top-prompts, unpriced
    title: str
    header: tuple[str, ...]
    rows: tuple[Row, ...]
    empty: str  # what to say instead of an empty table
    note: str = ""


def _tone(value: int | Decimal | None) -> str:
    return "" if not value else "up" if value > 0 else "down"


def _money(nanos: int | None, *, unit: bool = False, unknown: str = DASH) -> Cell:
    if nanos is None:
        return Cell(unknown, tone="unknown" if unknown != DASH else "")
    return Cell(usd_unit(nanos) if unit else usd(nanos), nanos=nanos)


def _delta(now: int, prev: int | None) -> Cell:
    delta = change(now, prev)
    return Cell(usd_change(delta), nanos=delta, tone=_tone(delta))


def _relative(now: int, prev: int | None, base: bool) -> Cell:
    text = relative_change(now, prev, base=base)
    return Cell(text, tone=_tone(change_ratio(now, prev)) if text not in (DASH, "new") else "")


def _num(n: int) -> Cell:
    return Cell(count(n))


def _pct(value: float | None) -> Cell:
    return Cell(percent(value))


def _cost(nanos: int, records: int, unpriced: int) -> Cell:
    """A line's cost: a dash when all of it is unpriced (unknown, never $0), the priced part marked
    with a dagger when some of it is."""
    if records and unpriced >= records:
        return Cell(DASH, tone="unknown")
    if unpriced:
        return Cell(usd(nanos) + PARTLY_PRICED, nanos=nanos)
    return _money(nanos)


def _unpriced_note(unknown: int, partly: int) -> str:
    """The footnote of a table with unpriced usage: how many records, and what the marks mean."""
    notes = []
    if unknown:
        notes.append(f"{DASH} cost unknown: {plural(unknown, 'record')} with no price in effect")
    if partly:
        notes.append(
            f"{PARTLY_PRICED} priced part only: {plural(partly, 'more record')} on these lines "
            f"{'has' if partly == 1 else 'have'} no price"
        )
    return "; ".join(notes) + " (see Unpriced usage; not in any total)." if notes else ""


def _join(*notes: str) -> str:
    return " ".join(n for n in notes if n)


def _total_note(total: int, r: MonthlyReport) -> str:
    """Says the totals row is exact; the exact figure is given once (the headline's, when it is that)."""
    exact = "the headline's exact spend" if total == r.total_nanos else f"exactly ${nanos_to_usd(total):,f}"
    return (
        f"Total: the exact sum of the rows ({exact}), rounded to the cent once; "
        "the rounded rows may differ from it by a cent or two."
    )


def _spend(table_id: str, title: str, noun: str, lines: Sequence[SpendLine], r: MonthlyReport) -> Table:
    prev = month_name(r.previous_month, short=True)
    header = (noun, "Spend", "Share", prev, "Change", "Change %", "Requests", "Input tokens", "Output tokens")
    rows = [
        Row(
            line.key,
            (
                Cell(line.key, "name"),
                _cost(line.cost_nanos, line.records, line.unpriced_records),
                _pct(ratio(line.cost_nanos, r.total_nanos)) if line.cost_known else Cell(DASH),
                _money(line.prev_cost_nanos) if line.prev_cost_known else Cell(DASH, tone="unknown"),
                _delta(line.cost_nanos, line.prev_cost_nanos)
                if line.cost_known and line.prev_cost_known
                else Cell(DASH),
                _relative(line.cost_nanos, line.prev_cost_nanos, r.prev_base)
                if line.cost_known
                else Cell(DASH),
                _num(line.requests),
                _num(line.input_tokens),
                _num(line.output_tokens),
                _pct(ratio(line.cached_input_tokens, line.input_tokens)),
            ),
        )
        for line in lines
    ]
    unknown = sum(x.unpriced_records for x in lines if not x.cost_known)
    partly = sum(x.unpriced_records for x in lines if x.cost_known)
    table = Table(
        table_id,
        title,
        (*header, "Cache hit"),
        tuple(rows),
        "No spend this month.",
        _unpriced_note(unknown, partly),
    )
    return table


def _totals(table: Table, lines: Sequence[SpendLine], r: MonthlyReport, extra: int = 0) -> Table:
    """``table`` with its totals row: the exact sums of the rows (``extra``: the untagged row's spend)."""
    if not lines:
        return table
    cost = sum(x.cost_nanos for x in lines) + extra
    prevs = [x.prev_cost_nanos for x in lines if x.prev_cost_nanos is not None]
    prev = sum(prevs) if prevs else None
    inp = sum(x.input_tokens for x in lines)
    cells = [
        Cell("Total", "name"),
        Cell(usd(cost), nanos=cost),
        _pct(ratio(cost, r.total_nanos)),
        _money(prev),
        _delta(cost, prev),
        _relative(cost, prev, r.prev_base),
        _num(sum(x.requests for x in lines)),
        _num(inp),
        _num(sum(x.output_tokens for x in lines)),
        _pct(ratio(sum(x.cached_input_tokens for x in lines), inp)),
    ]
    if extra:  # a tag table: the untagged row has no previous figure or counts of its own
        cells[3:6] = [Cell(DASH), Cell(DASH), Cell(DASH)]
        cells[6:] = [Cell(DASH)] * 4
    row = Row("", tuple(cells), total=True)
    return Table(
        table.id,
        table.title,
        table.header,
        (*table.rows, row),
        table.empty,
        _join(table.note, _total_note(cost, r)),
    )


def _tag(key: str, slug: str, r: MonthlyReport) -> Table:
    lines = r.by_tag[key]
    table = _spend(f"by-tag-{slug}", f"Spend by tag: {key}", key, lines, r)
    untagged = untagged_nanos(r, key)
    if not untagged:
        return _totals(table, lines, r)
    cells = (Cell(f"(no {key} tag)", "name"), _money(untagged), _pct(ratio(untagged, r.total_nanos)))
    row = Row("", (*cells, *[Cell("")] * 7), extra=True)
    with_untagged = Table(table.id, table.title, table.header, (*table.rows, row), table.empty, table.note)
    return _totals(with_untagged, lines, r, extra=untagged)


def _threshold_nanos(threshold: str) -> int | None:
    """A cost-per-success threshold is dollars (``"0.05"``): its exact nanos, when it is a number."""
    return usd_to_nanos(Decimal(threshold)) if re.fullmatch(r"\d+(\.\d+)?", threshold) else None


def _breach_table(table_id: str, title: str, breaches: Sequence[Breach], empty: str, note: str) -> Table:
    header = ("Budget", "Period", "Kind", "Threshold", "Spend", "Cap", "Of cap")
    rows = []
    for b in breaches:
        unit = b.kind == "cost_per_success"  # spend and cap are costs per success here
        over = "up" if b.spend_nanos >= b.cap_nanos > 0 else ""
        cells = (
            Cell(b.budget, "name"),
            Cell(b.period, "text"),
            Cell(breach_kind(b), "text"),
            Cell(breach_threshold(b), "text", nanos=_threshold_nanos(b.threshold) if unit else None),
            _money(b.spend_nanos, unit=unit),
            _money(b.cap_nanos, unit=unit),
            Cell(of_cap(b.spend_nanos, b.cap_nanos), tone=over),
        )
        rows.append(Row(b.budget, cells))
    return Table(table_id, title, header, tuple(rows), empty, note if rows else "")


def _breaches(r: MonthlyReport) -> Table:
    note = (
        "A breach is spend at or over a cap: 100% of a daily or monthly cap, "
        "or a cost per success over its limit."
    )
    return _breach_table(
        "breaches", "Budget breaches", r.over_cap, "No budget was breached this month.", note
    )


def _crossings(r: MonthlyReport) -> Table:
    note = "Alerts below the cap (50%, 80% ...) and tool-call fan-out guardrails; not breaches."
    return _breach_table(
        "crossings", "Threshold crossings", r.crossings, "No threshold was crossed this month.", note
    )


def _budget_vs_actual(r: MonthlyReport) -> Table:
    header = ("Flow", "Budget", "Cap per day", "Days", "Cap", "Actual", "Of cap")
    rows = []
    for b in r.budgets:
        actual = Cell(
            usd(b.actual_nanos) + (PARTLY_PRICED if b.unpriced_records else ""), nanos=b.actual_nanos
        )
        pct = of_cap(b.actual_nanos, b.cap_nanos)
        cells = (
            Cell(b.flow, "name"),
            Cell(b.budget, "name"),
            _money(b.daily_cap_nanos),
            _num(b.days),
            _money(b.cap_nanos),
            actual,
            Cell(pct, tone="up" if b.actual_nanos >= b.cap_nanos > 0 else ""),
        )
        rows.append(Row(f"{b.flow}\t{b.budget}", cells))
    partly = sum(b.unpriced_records for b in r.budgets)
    days = "the whole days so far" if r.partial else "the days of the month"
    note = _join(
        f"Cap is the budget's daily cap times {days}; of cap is the actual spend as a whole percent of it, "
        "rounded down (99.9% reads 99%).",
        _unpriced_note(0, partly),
    )
    return Table("budgets", "Budget vs actual", header, tuple(rows), _no_budgets(r), note)


def _no_budgets(r: MonthlyReport) -> str:
    if r.budgets_problem:
        return f"No budgets were read, so there is no budget vs actual ({r.budgets_problem.rstrip('.')})."
    return "No budget covers a flow with spend."


def _outcomes(r: MonthlyReport) -> Table:
    prev = month_name(r.previous_month, short=True)
    header = ("Flow", "Spend", "Outcomes", "Successes", "Partial", "Failed", "Success rate",
              "Per success", prev, "Trend", "Per attempt", "Value", "Value per $1")  # fmt: skip
    rows = []
    for o in r.outcomes:
        cps = o.cost_per_success_nanos
        trend = change_ratio(cps, o.prev_cost_per_success_nanos) if cps is not None else None
        cells = (
            Cell(o.flow, "name"),
            _money(o.cost_nanos),
            *(_num(n) for n in (o.outcomes, o.successes, o.partials, o.failures)),
            _pct(o.success_rate),
            _money(cps, unit=True, unknown="no successes"),
            _money(o.prev_cost_per_success_nanos, unit=True),
            Cell(percent_change(trend), tone=_tone(trend)),
            _money(o.cost_per_attempt_nanos, unit=True),
            _money(o.value_nanos),
            _money(value_per_dollar_nanos(o.value_nanos, o.cost_nanos)),
        )
        rows.append(Row(o.flow, cells))
    note = (
        f"Cost per success is all of a flow's spend (failed calls too) divided by its successful outcomes; "
        f"{prev} is last month's, and the trend compares the two (up is worse)."
    )
    return Table(
        "outcomes", "Cost per successful outcome", header, tuple(rows), "No outcomes this month.", note
    )


def _prompts(r: MonthlyReport) -> Table:
    header = ("#", "Prompt", "Spend", "Share", "Calls", "Avg in", "Avg out", "Cache hit", "Success",
              "Flows", "Models", "Change", "Flags")  # fmt: skip
    rows = []
    for i, p in enumerate(r.top_prompts, start=1):
        cells = (
            Cell(str(i)),
            Cell(p.prompt, "code"),
            _cost(p.cost_nanos, p.records, p.unpriced_records),
            _pct(p.share) if p.cost_known else Cell(DASH),
            _num(p.calls),
            _num(p.avg_input_tokens),
            _num(p.avg_output_tokens),
            _pct(p.cache_hit_ratio),
            _pct(p.success_rate),
            Cell(", ".join(p.flows), "list", items=p.flows),
            Cell(", ".join(p.models), "list", items=p.models),
            _prompt_change(p.cost_nanos, p.prev_cost_nanos, r.prev_base) if p.cost_known else Cell(DASH),
            Cell(" ".join(p.flags), "flags", items=p.flags),
        )
        rows.append(Row(p.prompt, cells, detail=p.preview))
    note = (
        "Flags: NEW no spend last month · GROWING spend up sharply on last month · "
        "BLOATED average input tokens per call up sharply on last month. Avg in/out: tokens per call. "
        "Change reads new when last month's spend is too small a base (below a tenth of this month's)."
    )
    unknown = sum(p.unpriced_records for p in r.top_prompts if not p.cost_known)
    partly = sum(p.unpriced_records for p in r.top_prompts if p.cost_known)
    if r.top_prompts:
        cost = sum(p.cost_nanos for p in r.top_prompts)
        calls = sum(p.calls for p in r.top_prompts)
        blank = Cell("")
        total = (
            blank,
            Cell(f"Total of the top {len(r.top_prompts)}", "name"),
            Cell(usd(cost), nanos=cost),
            _pct(ratio(cost, r.total_nanos)),
            _num(calls),
            *[blank] * 8,
        )
        rows.append(Row("", total, total=True))
        note = _join(note, _total_note(cost, r))
    title = f"Top {plural(len(r.top_prompts), 'prompt')}"
    note = _join(_unpriced_note(unknown, partly), note)
    return Table("top-prompts", title, header, tuple(rows), "No prompt usage this month.", note)


def _prompt_change(now: int, prev: int | None, base: bool) -> Cell:
    """The dollar change, or ``new`` when there was nothing (or too little) to compare with."""
    if prev is not None and not relative_change(now, prev, base=base).startswith(("+", "-", "0")):
        return Cell("new")
    return _delta(now, prev)


def _unpriced(r: MonthlyReport) -> Table:
    rows = [
        Row(u.model, (Cell(u.model, "name"), *map(_num, (u.records, u.input_tokens, u.output_tokens)),
                      Cell("cost unknown", tone="unknown")))
        for u in r.unpriced
    ]  # fmt: skip
    note = (
        "These models have no price in effect, so their cost is unknown and not in any total above. "
        "Add their prices, then re-price the month (see finops prices unpriced)."
    )
    header = ("Model", "Records", "Input tokens", "Output tokens", "Cost")
    return Table("unpriced", "Unpriced usage", header, tuple(rows), "All usage was priced.", note)


def _slugs(keys: Sequence[str]) -> list[str]:
    """HTML-id-safe, distinct slugs for tag keys (``Cost Center`` and ``cost-center`` both exist)."""
    out: list[str] = []
    for key in keys:
        slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "tag"
        base, n = slug, 2
        while slug in out:
            slug, n = f"{base}-{n}", n + 1
        out.append(slug)
    return out


def report_tables(report: MonthlyReport) -> list[Table]:
    """Every table of the report, in reading order: spend breakdowns, breaches, outcomes, prompts."""
    r = report
    tables = [
        _spend("by-flow", "Spend by flow", "Flow", r.by_flow, r),
        _spend("by-model", "Spend by model", "Model", r.by_model, r),
        _spend("by-provider", "Spend by provider", "Provider", r.by_provider, r),
    ]
    tables += [_tag(key, slug, r) for key, slug in zip(r.by_tag, _slugs(list(r.by_tag)), strict=True)]
    tables = [
        _totals(tables[0], r.by_flow, r),
        _totals(tables[1], r.by_model, r),
        _totals(tables[2], r.by_provider, r),
        *tables[3:],
    ]
    return [
        *tables,
        _budget_vs_actual(r),
        _breaches(r),
        _crossings(r),
        _outcomes(r),
        _prompts(r),
        _unpriced(r),
    ]


# ---------------------------------------------------------------- Markdown


def md(text: str) -> str:
    r"""Escape text for a Markdown table cell or line: ``|``, ``<``, ``*`` etc. get a backslash.

    An underscore is only escaped at a word edge (``_x_`` would be emphasis, ``support_bot`` is not),
    and ``#``, ``+``, ``-``, ``=`` only at the start, so names and prose stay readable as plain text.
    """
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"([\\`*\[\]<>|&~])", r"\\\1", text)
    text = re.sub(r"^([#+=-])", r"\\\1", text)  # would start a heading or a list on its own line
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def md_inline(text: str) -> str:
    """Prose that may hold code spans (``finops reprice`` in backticks): the spans kept as code,
    the rest escaped like :func:`md`."""
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append(f"`{part}`")
        elif part.strip():
            lead = " " if part[0].isspace() else ""
            out.append(lead + md(part) + (" " if part[-1].isspace() else ""))
        else:
            out.append(" " if part else "")
    return "".join(out)


def _md_cell(cell: Cell) -> str:
    if cell.kind == "flags":
        return " ".join(f"**{md(f)}**" for f in cell.items)
    text = md(cell.text)
    return f"_{text}_" if cell.tone == "unknown" else text


def _md_table(t: Table) -> list[str]:
    out = [f"## {md(t.title)}", ""]
    if not t.rows:
        return [*out, t.empty, ""]
    kinds = [c.kind for c in t.rows[0].cells]
    align = ["---:" if k == "num" else "---" for k in kinds]
    out += ["| " + " | ".join(md(h) for h in t.header) + " |", "|" + "|".join(align) + "|"]
    for row in t.rows:
        cells = [_md_cell(c) for c in row.cells]
        if row.extra:
            cells[0] = f"_{cells[0]}_"
        if row.total:
            cells = [f"**{c}**" if c else c for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    if t.note:
        out += [md(t.note), ""]
    previews = [f"- {md(row.key)}: _{md(row.detail)}_" for row in t.rows if row.detail]
    if previews:
        out += ["Redacted prompt previews:", "", *previews, ""]
    return out


def _headline(r: MonthlyReport) -> list[str]:
    prev = compared_label(r)
    delta = change(r.total_nanos, r.prev_total_nanos)
    if delta is None or r.prev_total_nanos is None:
        vs = f"no data for {prev}"
    else:
        pct = relative_change(r.total_nanos, r.prev_total_nanos, base=r.prev_base)
        vs = f"**{usd_change(delta)} ({pct})** vs {prev} ({usd(r.prev_total_nanos)})"
    lines = [
        "## Headline",
        "",
        f"- **Spend: {usd(r.total_nanos)}** (exact: ${nanos_to_usd(r.total_nanos):,f}), {vs}",
        f"- Requests: {count(r.requests)}",
        f"- Tokens: {count(r.input_tokens)} input, {count(r.output_tokens)} output",
        f"- Cache hits: {percent(ratio(r.cached_input_tokens, r.input_tokens))} of input tokens "
        f"({count(r.cached_input_tokens)})",
    ]
    if r.unpriced:
        records = sum(u.records for u in r.unpriced)
        lines.append(
            f"- Unpriced usage: {plural(records, 'record')} on {plural(len(r.unpriced), 'model')}, "
            "**cost unknown** (not in the total)"
        )
    if r.breaches:
        lines.append(
            f"- Budget breaches (spend at or over a cap): {len(r.over_cap)} · "
            f"threshold crossings below the cap: {len(r.crossings)}"
        )
    if r.findings:
        saving = sum(f.saving_nanos or 0 for f in r.findings)
        lines.append(
            f"- Findings: {len(r.findings)}" + (f", estimated savings {usd(saving)}" if saving else "")
        )
    if r.token_counts_estimated:
        lines += ["", f"> **Note:** {ESTIMATE_NOTE}"]
    return [*lines, ""]


def _findings(r: MonthlyReport) -> list[str]:
    out = ["## Findings", ""]
    if not r.findings:
        return [*out, "Nothing stood out this month.", ""]
    for i, f in enumerate(r.findings, start=1):
        saving = f" (estimated saving {usd(f.saving_nanos)})" if f.saving_nanos else ""
        out += [
            f"{i}. **{md_inline(f.title)}**{saving}  ",
            f"   {md_inline(f.detail)}  ",
            f"   _Suggestion:_ {md_inline(f.suggestion)}",
        ]
        out.append("")
    return out


def render_markdown(report: MonthlyReport) -> str:
    """The whole monthly audit as GitHub-flavoured Markdown (headline, breakdowns, actions, notes)."""
    r = report
    out = [
        f"# LLM token audit: {period_label(r)}",
        "",
        f"Generated {md(r.generated_at)} · days in {md(r.timezone)} · "
        f"compared with {compared_label(r)} · dollars rounded to the cent.",
        "",
        *_headline(r),
    ]
    for table in report_tables(r):
        out += _md_table(table)
    out += _findings(r)
    if r.notes:
        out += ["## Notes", "", *(f"- {md(n)}" for n in r.notes), ""]
    return "\n".join(out).rstrip("\n") + "\n"
