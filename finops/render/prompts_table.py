"""``finops prompts top`` for a terminal: human headers, thousands separators, 120 columns.

By default the table fits :data:`WIDTH` columns (the prompt name is cut with ``…`` when it must be,
never a number); ``wide`` adds last month's spend, the flows and the models and cuts nothing. Costs
follow the report's rules (:mod:`finops.render.report_data`): unpriced usage is a dash, never $0,
and a change on too small a base reads ``new``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from finops.domain.words import plural
from finops.render.report_data import DASH, count, percent, relative_change, usd, usd_change
from finops.render.report_text import PARTLY_PRICED
from finops.usecases.audit.report_model import PromptLine

__all__ = ["WIDTH", "prompt_change", "prompt_cost", "prompt_dollars", "prompts_table"]

WIDTH = 120
_GAP = "  "
_MIN_NAME = 16
_LEFT = {"Prompt", "Flags", "Flows", "Models"}


def prompt_cost(p: PromptLine) -> str:
    if not p.cost_known:
        return DASH
    return usd(p.cost_nanos) + (PARTLY_PRICED if p.unpriced_records else "")


def prompt_change(p: PromptLine, base: bool) -> str:
    """The relative change on last month: ``+27.5%``, or ``new`` (nothing, or too little, before)."""
    if not p.cost_known or p.prev_cost_nanos is None:
        return "new" if p.cost_known else DASH
    return relative_change(p.cost_nanos, p.prev_cost_nanos, base=base)


def prompt_dollars(p: PromptLine) -> str:
    if not p.cost_known or p.prev_cost_nanos is None:
        return DASH
    return usd_change(p.cost_nanos - p.prev_cost_nanos)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def prompts_table(lines: Sequence[PromptLine], *, base: bool = True, wide: bool = False) -> str:
    """The prompts as an aligned text table (no trailing spaces), with footnotes for unpriced usage."""
    header = ["#", "Prompt", "Spend", "Share", "Calls", "Avg in", "Avg out", "Cached", "Success"]
    header += (
        ["Last month", "Change $", "Change", "Flags", "Flows", "Models"] if wide else ["Change", "Flags"]
    )
    rows = []
    for i, p in enumerate(lines, start=1):
        row = [
            str(i),
            p.prompt,
            prompt_cost(p),
            percent(p.share) if p.cost_known else DASH,
            count(p.calls),
            count(p.avg_input_tokens),
            count(p.avg_output_tokens),
            percent(p.cache_hit_ratio, places=0),
            percent(p.success_rate, places=0),
        ]
        if wide:
            prev = DASH if p.prev_cost_nanos is None else usd(p.prev_cost_nanos)
            row += [
                prev,
                prompt_dollars(p),
                prompt_change(p, base),
                " ".join(p.flags),
                ", ".join(p.flows),
                ", ".join(p.models),
            ]
        else:
            row += [prompt_change(p, base), " ".join(p.flags)]
        rows.append(row)
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(header)]
    if not wide:
        rest = sum(w for c, w in enumerate(widths) if c != 1) + len(_GAP) * (len(header) - 1)
        widths[1] = max(min(widths[1], WIDTH - rest), _MIN_NAME)
    out = []
    for cells in (header, *rows):
        parts = []
        for c, (text, width) in enumerate(zip(cells, widths, strict=True)):
            text = _cut(text, width)
            parts.append(text.ljust(width) if header[c] in _LEFT else text.rjust(width))
        out.append(_GAP.join(parts).rstrip())
    unknown = sum(p.unpriced_records for p in lines if not p.cost_known)
    partly = sum(p.unpriced_records for p in lines if p.cost_known)
    if unknown:
        out.append(
            f"{DASH} cost unknown: {plural(unknown, 'record')} with no price (`finops prices unpriced`)."
        )
    if partly:
        out.append(f"{PARTLY_PRICED} priced part only: {plural(partly, 'more record')} with no price.")
    if not base:
        out.append("Last month has too few days of usage to compare with: changes read new.")
    return "\n".join(out) + "\n"
