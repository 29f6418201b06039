"""The monthly token audit as Markdown, and the number formats every human-facing renderer shares.

Read by a finance person (what did we spend, why did it move, is it worth it) and an
engineer (which flow, model and prompt to fix), so the report leads with the headline,
then the breakdowns, then what to do. Dollars are rounded to the cent in tables and the
exact total is given once; a cost per success or per attempt below one dollar keeps four
decimals, because "$0.06" hides the difference between a 4.3 and a 5.7 cent outcome, and
budgets cap it at such figures. Unknown is never shown as zero: unpriced usage reads "cost
unknown", a flow without successes "no successes", a figure without a previous month "new".

Every string from data is escaped for Markdown (a flow may be called ``a|b`` or
``<script>``), so tables keep their columns and a permissive renderer shows the text
rather than running it. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from finops.audit.render_data import change, change_ratio, ratio, untagged_nanos
from finops.audit.report_model import Breach, MonthlyReport, SpendLine
from finops.domain.money import format_usd, nanos_to_usd

__all__ = [
    "DASH",
    "ESTIMATE_NOTE",
    "breach_kind",
    "breach_threshold",
    "count",
    "md",
    "money_cell",
    "month_name",
    "of_cap",
    "percent",
    "percent_change",
    "render_markdown",
    "usd",
    "usd_change",
    "usd_unit",
    "value_per_dollar_nanos",
]

DASH = "—"
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_KINDS = {
    "threshold": "daily threshold",
    "monthly": "monthly cap",
    "fanout": "tool-call fan-out",
    "cost_per_success": "cost per success",
}

# ---------------------------------------------------------------- shared formats


def usd(nanos: int) -> str:
    """Dollars to the cent, half to even: ``$1,234.57``, ``-$3.10``."""
    sign = "-" if nanos < 0 else ""
    return f"{sign}${format_usd(abs(nanos), cents=True)}"


def usd_unit(nanos: int) -> str:
    """A unit cost (per success, per attempt): four decimals below one dollar, else cents."""
    if abs(nanos) >= 1_000_000_000:
        return usd(nanos)
    sign = "-" if nanos < 0 else ""
    value = nanos_to_usd(abs(nanos)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    return f"{sign}${value}"


def usd_change(nanos: int | None) -> str:
    """A signed difference (``+$12.30``, ``-$4.00``); None (no previous figure) reads ``new``."""
    if nanos is None:
        return "new"
    return ("+" if nanos > 0 else "") + usd(nanos)


def percent(value: float | Decimal | None, places: int = 1) -> str:
    """A fraction as a percentage (0.214 is ``21.4%``); None reads as a dash, not 0%."""
    if value is None:
        return DASH
    q = (Decimal(str(value)) * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{abs(q) if q == 0 else q}%"


def percent_change(value: Decimal | None) -> str:
    """A signed relative change (``+21.0%``); None (nothing to compare with) reads as a dash."""
    if value is None:
        return DASH
    text = percent(value)
    return text if text.startswith("-") or text == "0.0%" else "+" + text


def count(n: int) -> str:
    return f"{n:,}"


def month_name(month: str, *, short: bool = False) -> str:
    """``2026-10`` as ``October 2026`` (``Oct 2026`` when short); anything else unchanged."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        return month
    name = _MONTHS[int(m.group(2)) - 1]
    return f"{name[:3] if short else name} {m.group(1)}"


def breach_kind(kind: str) -> str:
    return _KINDS.get(kind, kind)


def breach_threshold(breach: Breach) -> str:
    """A threshold fraction (``0.8``) as ``80%``; other thresholds (a dollar cap, a count) as written."""
    if breach.kind in ("threshold", "monthly"):
        try:
            return percent(Decimal(breach.threshold), places=0)
        except ArithmeticError:
            pass
    if breach.kind == "cost_per_success" and re.fullmatch(r"\d+(\.\d+)?", breach.threshold):
        return f"${breach.threshold}"
    return breach.threshold


def of_cap(spend: int, cap: int) -> str:
    """Spend as a whole percent of its cap, floored (99.9% never reads 100%); a dash without a cap."""
    return f"{max(spend, 0) * 100 // cap}%" if cap > 0 else DASH


def value_per_dollar_nanos(value: int | None, cost: int) -> int | None:
    """Value earned per dollar spent, in nano-dollars (rounded half to even); None when unknown."""
    if value is None or cost <= 0:
        return None
    q, rem = divmod(value * 1_000_000_000, cost)
    return q + (1 if rem * 2 > cost or (rem * 2 == cost and q % 2) else 0)


def money_cell(kind: str, nanos: int) -> str:
    """Unit costs keep sub-cent precision; everything else is to the cent."""
    return usd_unit(nanos) if kind == "cost_per_success" else usd(nanos)


# ---------------------------------------------------------------- Markdown


def md(text: str) -> str:
    r"""Escape text for a Markdown table cell or line: ``|``, ``<``, ``*`` etc. get a backslash.

    An underscore is only escaped at a word edge (``_x_`` would be emphasis, ``support_bot`` is not).
    """
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"([\\`*\[\]<>|&~#!])", r"\\\1", text)
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, text: Container[int] = (0,)) -> list[str]:
    """A GitHub-flavoured table: the ``text`` columns left-aligned, numbers right-aligned."""
    align = ["---" if i in text else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _spend_section(
    title: str, noun: str, lines: Sequence[SpendLine], r: MonthlyReport, *, untagged: int = 0
) -> list[str]:
    prev = month_name(r.previous_month, short=True)
    header = [md(noun), "Spend", "Share", prev, "Change", "Change %", "Requests", "Input tokens"]
    header += ["Output tokens", "Cache hit"]
    rows = [
        [
            md(line.key),
            usd(line.cost_nanos),
            percent(ratio(line.cost_nanos, r.total_nanos)),
            DASH if line.prev_cost_nanos is None else usd(line.prev_cost_nanos),
            usd_change(change(line.cost_nanos, line.prev_cost_nanos)),
            percent_change(change_ratio(line.cost_nanos, line.prev_cost_nanos)),
            count(line.requests),
            count(line.input_tokens),
            count(line.output_tokens),
            percent(ratio(line.cached_input_tokens, line.input_tokens)),
        ]
        for line in lines
    ]
    if untagged:
        share = percent(ratio(untagged, r.total_nanos))
        rows.append([f"_(no {md(noun)} tag)_", usd(untagged), share, *[""] * 7])
    out = [f"## {title}", ""]
    if not lines:
        return [*out, "No spend this month.", ""]
    return [*out, *_table(header, rows), ""]


def _headline(r: MonthlyReport) -> list[str]:
    prev = month_name(r.previous_month)
    delta = change(r.total_nanos, r.prev_total_nanos)
    if delta is None:
        vs = f"no data for {prev}"
    else:
        assert r.prev_total_nanos is not None
        pct = percent_change(change_ratio(r.total_nanos, r.prev_total_nanos))
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
            f"- Unpriced usage: {count(records)} records on {len(r.unpriced)} models, "
            "**cost unknown** (not in the total)"
        )
    if r.breaches:
        lines.append(f"- Budget breaches: {len(r.breaches)}")
    if r.findings:
        saving = sum(f.saving_nanos or 0 for f in r.findings)
        est = f", estimated savings {usd(saving)}" if saving else ""
        lines.append(f"- Findings: {len(r.findings)}{est}")
    if r.token_counts_estimated:
        lines += ["", f"> **Note:** {ESTIMATE_NOTE}"]
    return [*lines, ""]


#: Said wherever token counts are shown, when some of them are estimates.
ESTIMATE_NOTE = (
    "some prompt token counts are estimates (no exact tokenizer for their model), "
    "so average prompt sizes are approximate. Costs come from the recorded usage."
)


def _breaches(r: MonthlyReport) -> list[str]:
    out = ["## Budget breaches", ""]
    if not r.breaches:
        return [*out, "No budget was breached this month.", ""]
    header = ["Budget", "Period", "Kind", "Threshold", "Spend", "Cap", "Of cap"]
    rows = [
        [
            md(b.budget),
            md(b.period),
            md(breach_kind(b.kind)),
            md(breach_threshold(b)),
            money_cell(b.kind, b.spend_nanos),
            money_cell(b.kind, b.cap_nanos),
            of_cap(b.spend_nanos, b.cap_nanos),
        ]
        for b in r.breaches
    ]
    return [*out, *_table(header, rows, text=(0, 1, 2, 3)), ""]


def _outcomes(r: MonthlyReport) -> list[str]:
    out = ["## Cost per successful outcome", ""]
    if not r.outcomes:
        return [*out, "No outcomes were reported this month.", ""]
    prev = month_name(r.previous_month, short=True)
    header = ["Flow", "Spend", "Outcomes", "Successes", "Partial", "Failed", "Success rate"]
    header += ["Per success", "Per attempt", f"{prev} per success", "Trend", "Value", "Value per $1"]
    rows = []
    for o in r.outcomes:
        cps = o.cost_per_success_nanos
        trend = change_ratio(cps, o.prev_cost_per_success_nanos) if cps is not None else None
        per_dollar = value_per_dollar_nanos(o.value_nanos, o.cost_nanos)
        rows.append(
            [
                md(o.flow),
                usd(o.cost_nanos),
                count(o.outcomes),
                count(o.successes),
                count(o.partials),
                count(o.failures),
                percent(o.success_rate),
                "no successes" if cps is None else usd_unit(cps),
                DASH if o.cost_per_attempt_nanos is None else usd_unit(o.cost_per_attempt_nanos),
                DASH if o.prev_cost_per_success_nanos is None else usd_unit(o.prev_cost_per_success_nanos),
                percent_change(trend),
                DASH if o.value_nanos is None else usd(o.value_nanos),
                DASH if per_dollar is None else usd(per_dollar),
            ]
        )
    note = (
        "Cost per success is all of a flow's spend (failed calls too) divided by its successful outcomes; "
        "the trend compares it with last month (up is worse)."
    )
    return [*out, *_table(header, rows), "", note, ""]


def _prompts(r: MonthlyReport) -> list[str]:
    out = [f"## Top {len(r.top_prompts)} prompts", ""]
    if not r.top_prompts:
        return [*out, "No prompt usage this month.", ""]
    header = ["#", "Prompt", "Spend", "Share", "Calls", "Avg input", "Avg output", "Cache hit"]
    header += ["Success rate", "Flows", "Models", "Change", "Flags"]
    rows = []
    for i, p in enumerate(r.top_prompts, start=1):
        delta = change(p.cost_nanos, p.prev_cost_nanos)
        moved = "new"
        if delta is not None:
            moved = f"{usd_change(delta)} ({percent_change(change_ratio(p.cost_nanos, p.prev_cost_nanos))})"
        rows.append(
            [
                str(i),
                md(p.prompt),
                usd(p.cost_nanos),
                percent(p.share),
                count(p.calls),
                count(p.avg_input_tokens),
                count(p.avg_output_tokens),
                percent(p.cache_hit_ratio),
                percent(p.success_rate),
                md(", ".join(p.flows)),
                md(", ".join(p.models)),
                moved,
                " ".join(f"**{md(f)}**" for f in p.flags),
            ]
        )
    table = _table(header, rows, text=(1, 9, 10, 12))
    legend = (
        "Flags: **NEW** not seen last month · **GROWING** spend rising fast · "
        "**BLOATED** unusually large prompts for what they return."
    )
    previews = [f"- {md(p.prompt)}: _{md(p.preview)}_" for p in r.top_prompts if p.preview]
    if previews:
        previews = ["", "Redacted previews:", "", *previews]
    return [*out, *table, "", legend, *previews, ""]


def _unpriced(r: MonthlyReport) -> list[str]:
    out = ["## Unpriced usage", ""]
    if not r.unpriced:
        return [*out, "All usage was priced.", ""]
    rows = [
        [md(u.model), count(u.records), count(u.input_tokens), count(u.output_tokens), "cost unknown"]
        for u in r.unpriced
    ]
    note = (
        "These models have no price in effect, so their cost is **unknown** and not in any total above. "
        "Add prices, then run `finops prices unpriced` and re-price the month."
    )
    return [*out, *_table(["Model", "Records", "Input tokens", "Output tokens", "Cost"], rows), "", note, ""]


def _findings(r: MonthlyReport) -> list[str]:
    out = ["## Findings", ""]
    if not r.findings:
        return [*out, "Nothing stood out this month.", ""]
    for i, f in enumerate(r.findings, start=1):
        saving = f" (estimated saving {usd(f.saving_nanos)})" if f.saving_nanos else ""
        out += [
            f"{i}. **{md(f.title)}**{saving}",
            f"   {md(f.detail)}",
            f"   _Suggestion:_ {md(f.suggestion)}",
            "",
        ]
    return out


def render_markdown(report: MonthlyReport) -> str:
    """The whole monthly audit as GitHub-flavoured Markdown (headline, breakdowns, actions, notes)."""
    r = report
    out = [
        f"# LLM token audit: {month_name(r.month)}",
        "",
        f"Generated {md(r.generated_at)} · days in {md(r.timezone)} · "
        f"compared with {month_name(r.previous_month)} · dollars rounded to the cent.",
        "",
        *_headline(r),
        *_spend_section("Spend by flow", "Flow", r.by_flow, r),
        *_spend_section("Spend by model", "Model", r.by_model, r),
        *_spend_section("Spend by provider", "Provider", r.by_provider, r),
    ]
    for key, lines in r.by_tag.items():
        out += _spend_section(f"Spend by tag: {md(key)}", key, lines, r, untagged=untagged_nanos(r, key))
    out += [*_breaches(r), *_outcomes(r), *_prompts(r), *_unpriced(r), *_findings(r)]
    if r.notes:
        out += ["## Notes", "", *(f"- {md(n)}" for n in r.notes), ""]
    return "\n".join(out).rstrip("\n") + "\n"
