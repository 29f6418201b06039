"""``/prompts``: the month's costliest prompts with their flags, in ``finops prompts top``'s words.

The cells are the command's (:mod:`finops.render.prompts_table`: ``new`` on too small a base, a
dash for unknown cost, ``†`` for a partly priced prompt), money as :func:`layout.money` (the
exact amount in ``<data value>``), and a GET form filters by flow, month and how many.
"""

from __future__ import annotations

from finops.domain.words import plural
from finops.render.dashboard.layout import esc, flow_href, money, page, table
from finops.render.prompts_table import prompt_change, prompt_dollars
from finops.render.report_data import DASH, count, month_name, percent
from finops.render.report_text import PARTLY_PRICED
from finops.usecases.audit.monthly import previous_month
from finops.usecases.audit.prompts import PromptAuditOptions
from finops.usecases.audit.report_model import PromptLine
from finops.usecases.dashboard.prompts import MAX_TOP, PromptsView

__all__ = ["FLAG_WORDS", "render_prompts"]

_DEFAULTS = PromptAuditOptions()
#: What each flag means, as the report says it (with the thresholds the audit uses).
FLAG_WORDS = {
    "NEW": "no spend last month",
    "GROWING": f"spend up sharply on last month (more than {_DEFAULTS.growing_pct}%)",
    "BLOATED": f"average input tokens per call up sharply on last month (more than {_DEFAULTS.bloated_pct}%)",
}


def _flags(flags: tuple[str, ...]) -> str:
    return " ".join(
        f'<span class="flag" data-flag="{esc(f)}" title="{esc(FLAG_WORDS.get(f, f))}">{esc(f)}</span>'
        for f in flags
    )


def _spend(p: PromptLine) -> str:
    if not p.cost_known:
        return money(None)
    mark = f'<span title="priced part only">{PARTLY_PRICED}</span>' if p.unpriced_records else ""
    return money(p.cost_nanos) + mark


def _names(names: tuple[str, ...], link: bool) -> str:
    if link:
        return ", ".join(f'<a href="{esc(flow_href(n))}">{esc(n)}</a>' for n in names)
    return ", ".join(esc(n) for n in names)


def _row(i: int, p: PromptLine, base: bool) -> list[str]:
    prev = money(p.prev_cost_nanos) if p.prev_cost_nanos is not None else DASH
    return [
        str(i),
        f'<code data-prompt="{esc(p.prompt)}">{esc(p.prompt)}</code>',
        _spend(p),
        esc(percent(p.share)) if p.cost_known else DASH,
        esc(count(p.calls)),
        esc(count(p.avg_input_tokens)),
        esc(count(p.avg_output_tokens)),
        esc(percent(p.cache_hit_ratio, places=0)),
        esc(percent(p.success_rate, places=0)),
        prev,
        esc(prompt_dollars(p)),
        esc(prompt_change(p, base)),
        _flags(p.flags),
        _names(p.flows, link=True),
        _names(p.models, link=False),
    ]


def _form(v: PromptsView) -> str:
    chosen = v.flows[0] if len(v.flows) == 1 else ""
    names = sorted({*v.month_flows, *v.flows})
    options = ['<option value="">All flows</option>'] + [
        f'<option value="{esc(n)}"{" selected" if n == chosen else ""}>{esc(n)}</option>' for n in names
    ]
    return (
        '<form class="filters" method="get" action="/prompts" role="search" aria-label="Filter the prompts">'
        f'<label for="f-flow">Flow<select id="f-flow" name="flow">{"".join(options)}</select></label>'
        f'<label for="f-month">Month (UTC)<input id="f-month" name="month" type="month" '
        f'value="{esc(v.month)}" required></label>'
        f'<label for="f-top">How many<input id="f-top" name="top" type="number" min="1" max="{MAX_TOP}" '
        f'value="{v.top}" required></label>'
        '<button type="submit">Show</button></form>'
    )


def _period(v: PromptsView) -> str:
    name = month_name(v.month)
    prev = month_name(previous_month(v.month))
    if v.partial:
        head = f"{name}, partial ({v.partial})"
        compared = f"the same days of {prev} ({v.compared_days})"
    else:
        head, compared = name, prev
    who = "every flow" if not v.flows else ", ".join(v.flows)
    return (
        f'<p data-period="{esc(v.month)}"{" data-partial" if v.partial else ""}>'
        f"<strong>{esc(head)}</strong> (UTC days), compared with {esc(compared)}; {esc(who)}: "
        f"{money(v.total_nanos)} in all. The same list as "
        f"<code>finops prompts top --month {esc(v.month)}</code>.</p>"
    )


def _notes(v: PromptsView) -> str:
    legend = " · ".join(f"<strong>{esc(k)}</strong> {esc(w)}" for k, w in FLAG_WORDS.items())
    lines = [f"Flags: {legend}. Avg in/out: tokens per call."]
    unknown = sum(p.unpriced_records for p in v.lines if not p.cost_known)
    partly = sum(p.unpriced_records for p in v.lines if p.cost_known)
    if unknown:
        lines.append(
            f"{DASH} cost unknown: {esc(plural(unknown, 'record'))} with no price "
            "(<code>finops prices unpriced</code>)."
        )
    if partly:
        lines.append(f"{PARTLY_PRICED} priced part only: {esc(plural(partly, 'more record'))} with no price.")
    if not v.base:
        lines.append("Last month has too few days of usage to compare with: changes read new.")
    return "".join(f'<p class="muted">{line}</p>' for line in lines)


def render_prompts(v: PromptsView, *, generated: str) -> str:
    """The whole page (``generated``: when the numbers were read, for the footer)."""
    header = ["#", "Prompt", "Spend", "Share", "Calls", "Avg in", "Avg out", "Cached", "Success",
              "Last month", "Change $", "Change", "Flags", "Flows", "Models"]  # fmt: skip
    if v.lines:
        caption = f"Top {plural(len(v.lines), 'prompt')} by spend"
        body = table(
            header,
            [_row(i, p, v.base) for i, p in enumerate(v.lines, start=1)],
            caption=caption,
            numeric=(0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
            name="prompts",
        )
        body += _notes(v)
    else:
        body = (
            f'<p class="notice">No prompts with spend in {esc(month_name(v.month))}: send '
            "<code>prompt_id</code> (or prompt text) with usage.</p>"
        )
    return page(
        title="Prompts",
        active="prompts",
        body=_form(v) + _period(v) + body,
        generated=generated,
    )
