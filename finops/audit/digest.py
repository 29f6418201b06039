"""The daily and weekly digest: per flow, spend against cap, cost per success and the change
against the previous period. Top 5 flows only, never a wall of text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from finops.audit.outcomes import divide_nanos, flow_outcomes
from finops.domain.budgets import Budget
from finops.domain.money import format_usd
from finops.domain.periods import day_range
from finops.notify.blockkit import context, fit, header, section
from finops.notify.messages import SlackMessage
from finops.reports.spend import SpendQuery, run_spend

__all__ = ["DigestLine", "digest_lines", "digest_message", "digest_period"]

Period = Literal["daily", "weekly"]


@dataclass(frozen=True)
class DigestLine:
    flow: str
    spend_nanos: int
    prev_spend_nanos: int
    cap_nanos: int | None  # the flow's budget for the period (daily cap × days), if any
    cost_per_success_nanos: int | None


def digest_period(period: Period, *, today: date, tz: ZoneInfo) -> tuple[str, datetime, datetime, datetime]:
    """The last whole day (or the 7 days before today), and the same length before it."""
    days = 1 if period == "daily" else 7
    start, _ = day_range(today - timedelta(days=days), tz)
    end, _ = day_range(today, tz)
    prev_start, _ = day_range(today - timedelta(days=2 * days), tz)
    label = (
        (today - timedelta(days=1)).isoformat()
        if days == 1
        else (f"{(today - timedelta(days=7)).isoformat()} to {(today - timedelta(days=1)).isoformat()}")
    )
    return label, start, end, prev_start


def digest_lines(
    conn: Connection, budgets: Sequence[Budget], *, period: Period, today: date, tz: ZoneInfo, top: int = 5
) -> tuple[str, list[DigestLine]]:
    label, start, end, prev_start = digest_period(period, today=today, tz=tz)
    now = run_spend(conn, SpendQuery(group_by=("flow",), start=start, end=end, tz=tz))
    before = {
        r.keys["flow"]: r.sums["cost_nanos"]
        for r in run_spend(conn, SpendQuery(group_by=("flow",), start=prev_start, end=start, tz=tz)).rows
    }
    per_success = {
        o.flow: o.cost_per_success_nanos
        for o in flow_outcomes(conn, start=start, end=end, prev_start=prev_start, prev_end=start)
    }
    days = 1 if period == "daily" else 7
    lines = []
    for row in now.rows[:top]:
        flow = row.keys["flow"]
        caps = [b.daily_cap_nanos * days for b in budgets if b.matches(flow, {})]
        lines.append(
            DigestLine(
                flow,
                row.sums["cost_nanos"],
                before.get(flow, 0),
                min(caps) if caps else None,
                per_success.get(flow),
            )
        )
    return label, lines


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
            share = divide_nanos(line.spend_nanos * 100, line.cap_nanos)
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
