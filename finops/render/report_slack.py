"""The monthly audit's Slack summary: the numbers that matter, posted with the full report attached.

A channel reads the headline (spend, change, volume, cache hits), the five costliest
prompts, what moved most since last month and what to do; everything else is in the
attached report. Built with :mod:`finops.notify.blockkit`, so every name is escaped
for Slack (a flow called ``<!channel>`` pings nobody) and every text fits Slack's limits
whatever ``top`` or the names' length. Pure: no I/O (attaching the file is the sender's job).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from finops.domain.words import plural
from finops.notify.blockkit import (
    FALLBACK_TEXT_MAX,
    FIELD_TEXT_MAX,
    SECTION_TEXT_MAX,
    Block,
    clip_markup,
    context,
    divider,
    fit,
    header,
    section,
)
from finops.notify.messages import SlackMessage
from finops.render.report_data import (
    change,
    compared_label,
    count,
    month_name,
    movers,
    percent,
    period_label,
    ratio,
    relative_change,
    usd,
)
from finops.usecases.audit.report_model import MonthlyReport, SpendLine

__all__ = ["report_summary_message"]

_NAME_MAX = 60
_MOVERS = 4
_FINDINGS = 3


def _code(text: str) -> str:
    """Inline code; a backtick inside would end the span early, so it becomes a quote."""
    return "`" + fit(text.replace("`", "'").replace("\n", " "), _NAME_MAX) + "`"


def _packed(title: str, lines: Iterable[str], limit: int) -> str:
    """``title`` and as many whole lines as fit in ``limit`` characters, then "+N more"."""
    lines = list(lines)
    out = title
    for i, line in enumerate(lines):
        more = f"\n_+{len(lines) - i} more in the report_"
        if len(out) + 1 + len(line) + len(more) > limit:
            return out + more
        out += "\n" + line
    return out


def _change(now: int, prev: int | None, base: bool = True) -> str:
    delta = change(now, prev)
    rel = relative_change(now, prev, base=base)
    if delta is None or rel == "new":
        return "new"
    arrow = "▲ " if delta > 0 else "▼ " if delta < 0 else ""
    return f"{arrow}{usd(abs(delta))} ({rel})"


def _headline_fields(r: MonthlyReport) -> list[str]:
    prev = compared_label(r) if r.partial else month_name(r.previous_month)
    fields = [f"*Spend*\n{usd(r.total_nanos)}"]
    if r.prev_total_nanos is None:
        fields.append(f"*vs {prev}*\nno data")
    else:
        fields.append(
            f"*vs {prev}*\n{_change(r.total_nanos, r.prev_total_nanos, r.prev_base)} "
            f"on {usd(r.prev_total_nanos)}"
        )
    fields += [
        f"*Requests*\n{count(r.requests)}",
        f"*Tokens*\n{count(r.input_tokens)} in · {count(r.output_tokens)} out",
        f"*Cache hits*\n{percent(ratio(r.cached_input_tokens, r.input_tokens))} of input tokens",
        f"*Budget breaches*\n{len(r.over_cap)} (spend at or over a cap)",
        f"*Threshold crossings*\n{len(r.crossings)} (below the cap)",
    ]
    return fields


def _prompt_lines(r: MonthlyReport, top: int) -> list[str]:
    lines = []
    for i, p in enumerate(r.top_prompts[:top], start=1):
        flags = " ".join(f"*{fit(f, 20)}*" for f in p.flags)
        moved = (
            ""
            if (p.prev_cost_nanos is None and "NEW" in p.flags) or not p.cost_known
            else " · " + _change(p.cost_nanos, p.prev_cost_nanos, r.prev_base)
        )
        cost = f"{usd(p.cost_nanos)} ({percent(p.share)})" if p.cost_known else "cost unknown (unpriced)"
        if p.cost_known and p.unpriced_records:
            cost += f" + {plural(p.unpriced_records, 'unpriced record')}"
        line = f"{i}. {_code(p.prompt)}  {cost}{moved}"
        lines.append(f"{line} {flags}".rstrip())
    return lines


def _mover_lines(lines: Sequence[SpendLine], base: bool) -> list[str]:
    return [
        f"• {fit(x.key, _NAME_MAX)}  {_change(x.cost_nanos, x.prev_cost_nanos, base)}"
        for x in movers([x for x in lines if x.cost_known], _MOVERS)
    ]


def report_summary_message(report: MonthlyReport, *, top: int = 5) -> SlackMessage:
    """The month's summary as one Slack message, to post with the full report attached.

    ``top`` prompts are listed (as many as fit in one section; the rest are counted).
    """
    r = report
    month = period_label(r)
    blocks: list[Block] = [
        header(f":bar_chart: LLM token audit · {fit(month, 40)}"),
        section(fields=_headline_fields(r)),
    ]
    if r.unpriced:
        records = sum(u.records for u in r.unpriced)
        models = ", ".join(_code(u.model) for u in r.unpriced[:3])
        more = f" and {len(r.unpriced) - 3} more" if len(r.unpriced) > 3 else ""
        blocks.append(
            section(
                f":warning: {plural(records, 'record')} {'has' if records == 1 else 'have'} no price, "
                "*cost unknown* (not in the total): "
                f"{models}{more}."
            )
        )
    if r.token_counts_estimated:
        blocks.append(
            context("Some prompt token counts are estimates; average prompt sizes are approximate.")
        )
    prompts = _prompt_lines(r, max(top, 0))
    if prompts:
        title = f"*Top {plural(len(prompts), 'prompt')}* (spend, share, change)"
        blocks.append(section(_packed(title, prompts, SECTION_TEXT_MAX)))
    moved = [
        _packed("*Flows that moved most*", _mover_lines(r.by_flow, r.prev_base), FIELD_TEXT_MAX),
        _packed("*Models that moved most*", _mover_lines(r.by_model, r.prev_base), FIELD_TEXT_MAX),
    ]
    moved = [m for m in moved if "\n" in m]
    if moved:
        blocks.append(section(fields=moved))
    if r.findings:
        lines = [
            f"• {fit(f.title, 200)}" + (f" (est. saving {usd(f.saving_nanos)})" if f.saving_nanos else "")
            for f in r.findings[:_FINDINGS]
        ]
        if len(r.findings) > _FINDINGS:
            lines.append(f"_+{len(r.findings) - _FINDINGS} more in the report_")
        blocks.append(section(_packed("*What to do*", lines, SECTION_TEXT_MAX)))
    blocks += [
        divider(),
        context(f":paperclip: The full report for {fit(month, 40)} is attached, with every table and chart."),
    ]
    delta = (
        "" if r.prev_total_nanos is None else f" ({_change(r.total_nanos, r.prev_total_nanos, r.prev_base)})"
    )
    text = f"LLM token audit {month}: {usd(r.total_nanos)}{delta}. Full report attached."
    return SlackMessage(
        text=clip_markup(fit(text, FALLBACK_TEXT_MAX), FALLBACK_TEXT_MAX), blocks=tuple(blocks)
    )
