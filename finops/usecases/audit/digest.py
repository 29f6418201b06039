"""The daily and weekly digest's numbers: per flow, spend against cap, cost per success and the
spend of the period before. Top 5 flows only; :mod:`finops.render.digest_slack` words them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from finops.domain.budgets import Budget
from finops.domain.periods import day_range
from finops.usecases.audit.outcomes import flow_outcomes
from finops.usecases.spend import SpendQuery, run_spend

__all__ = ["DigestLine", "Period", "digest_lines", "digest_period"]

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
