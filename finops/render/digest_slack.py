"""The daily and weekly digest as one short Slack message: a line per flow (top 5), within Slack's
limits, never a wall of text."""

from __future__ import annotations

from collections.abc import Sequence

from finops.domain.budgets import percent_of
from finops.domain.money import format_usd
from finops.notify.blockkit import context, fit, header, section
from finops.notify.messages import SlackMessage
from finops.usecases.audit.digest import DigestLine, Period

__all__ = ["digest_message"]


def _change(now: int, before: int) -> str:
    if not before:
        return "new"
    pct = (now - before) * 100 / before
    return f"{'+' if pct >= 0 else ''}{pct:.0f}%"


def digest_message(period: Period, label: str, lines: Sequence[DigestLine]) -> SlackMessage:
    """One short message: a line per flow (top 5), within Slack's limits."""
    title = f"finops {period} digest: {label}"
    if not lines:
        return SlackMessage(
            text=f"{title}: no spend", blocks=(header(title), section("No spend in this period."))
        )
    rows = []
    for line in lines:
        spent = format_usd(line.spend_nanos, cents=True)
        cap = ""
        if line.cap_nanos:
            share = percent_of(line.spend_nanos, line.cap_nanos)
            cap = f" of ${format_usd(line.cap_nanos, cents=True)} ({share}%)"
        cps = ""
        if line.cost_per_success_nanos:
            cps = f", ${format_usd(line.cost_per_success_nanos, cents=True)}/success"
        change = _change(line.spend_nanos, line.prev_spend_nanos)
        rows.append(f"*{fit(line.flow, 120)}*: ${spent}{cap}{cps} ({change} vs the period before)")
    total = sum(line.spend_nanos for line in lines)
    text = f"{title}: top {len(lines)} flows spent ${format_usd(total, cents=True)}"
    return SlackMessage(
        text=text[:3000],
        blocks=(
            header(title),
            section("\n".join(rows)[:3000]),
            context("Details: `finops budgets status`, `finops outcomes --by flow`"),
        ),
    )
