"""``/outcomes``: cost per successful outcome per flow, against last week (or last month), against
each covering budget's ``max_cost_per_success_usd``, and over the last eight weeks.

The headline is :func:`finops.usecases.audit.outcomes.flow_outcomes` itself (what ``finops
outcomes`` prints), for the last complete UTC week (Monday to Sunday) against the week before, or
for a month against the previous one. The trend reads the daily rollups once (spend per flow and
day) and the outcomes table once (successes per flow and week, through its ``ts_us`` index), and
divides with the same :func:`~finops.usecases.audit.outcomes.divide_nanos`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, case, func, select

from finops.domain.budgets import Budget
from finops.domain.dashboard import Annotation
from finops.domain.money import usd_to_nanos
from finops.domain.periods import month_range
from finops.storage.tables import outcomes
from finops.usecases.audit.monthly import previous_month
from finops.usecases.audit.outcomes import divide_nanos, flow_outcomes
from finops.usecases.audit.report_model import FlowOutcomes
from finops.usecases.dashboard.annotations import annotations_between
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, run_spend

__all__ = ["TREND_WEEKS", "FlowRow", "OutcomesView", "Target", "WeekPoint", "outcomes_view", "week_start"]

#: Weeks in the trend (the last one is the last complete week of the period shown).
TREND_WEEKS = 8
_WEEK = timedelta(days=7)
_UTC = UTC
_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Target:
    """One budget covering the flow, with its ``max_cost_per_success_usd`` in nanos."""

    budget: str
    max_nanos: int
    over: bool | None  # None: no successes, nothing to compare


@dataclass(frozen=True)
class WeekPoint:
    start: date  # the week's Monday (UTC)
    cost_nanos: int
    successes: int
    cost_per_success_nanos: int | None  # None: no successes that week


@dataclass(frozen=True)
class FlowRow:
    line: FlowOutcomes  # the headline period, exactly as ``finops outcomes`` computes it
    targets: tuple[Target, ...]
    trend: tuple[WeekPoint, ...]

    @property
    def over_target(self) -> bool:
        return any(t.over for t in self.targets)


@dataclass(frozen=True)
class OutcomesView:
    now: datetime
    mode: str  # "week" (the last complete week vs the one before) or "month"
    label: str  # "2026-11-23" (the week's Monday) or "2026-11"
    start: datetime
    end: datetime
    prev_start: datetime
    prev_end: datetime
    partial: bool  # a month still running
    rows: tuple[FlowRow, ...]
    weeks: tuple[date, ...]  # the trend's Mondays, oldest first
    annotations: tuple[Annotation, ...]  # events in the trend's window


def week_start(at: datetime) -> datetime:
    """The Monday 00:00 UTC of the week ``at`` falls in."""
    day = at.astimezone(_UTC).date()
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=_UTC)


def _targets(flow: str, line: FlowOutcomes, budgets: Sequence[Budget]) -> tuple[Target, ...]:
    found = []
    for b in budgets:
        if b.max_cost_per_success_usd is None or not b.matches(flow, {}):
            continue
        limit = usd_to_nanos(b.max_cost_per_success_usd)
        per = line.cost_per_success_nanos
        found.append(Target(b.key, limit, None if per is None else per > limit))
    return tuple(sorted(found, key=lambda t: (t.max_nanos, t.budget)))


def _weekly_spend(conn: Connection, lo: datetime, hi: datetime) -> dict[str, list[int]]:
    """Spend per flow and trend week, from the daily rollups (whole UTC days)."""
    result = run_spend(conn, SpendQuery(group_by=("flow", "day"), start=lo, end=hi))
    weeks = round((hi - lo) / _WEEK)
    out: dict[str, list[int]] = {}
    for row in result.rows:
        day = date.fromisoformat(row.keys["day"])
        i = (day - lo.date()).days // 7
        out.setdefault(row.keys["flow"], [0] * weeks)[i] += row.sums["cost_nanos"]
    return out


def _weekly_successes(conn: Connection, lo: datetime, hi: datetime) -> dict[str, list[int]]:
    """Successful outcomes per flow and trend week (the flow as ``flow_outcomes`` names it)."""
    o = outcomes.c
    lo_us, week_us = int(lo.timestamp() * 1_000_000), int(_WEEK.total_seconds()) * 1_000_000
    flow = func.coalesce(o.flow, o.linked_flow, "unassigned")
    week = (o.ts_us - lo_us) // week_us
    rows = conn.execute(
        select(flow, week, func.sum(case((o.status == "success", 1), else_=0)))
        .where(o.ts_us >= lo_us, o.ts_us < int(hi.timestamp() * 1_000_000))
        .group_by(flow, week)
    )
    weeks = round((hi - lo) / _WEEK)
    out: dict[str, list[int]] = {}
    for name, i, wins in rows:
        out.setdefault(str(name), [0] * weeks)[int(i)] += int(wins or 0)
    return out


def _period(
    now: datetime, month: str | None
) -> tuple[str, str, datetime, datetime, datetime, datetime, bool]:
    if month is None:
        end = week_start(now)
        start = end - _WEEK
        return "week", start.date().isoformat(), start, end, start - _WEEK, start, False
    start, end = month_range(month, _ZONE)  # raises ValueError for a month that is not YYYY-MM
    p_start, p_end = month_range(previous_month(month), _ZONE)
    return "month", month, start, end, p_start, p_end, start <= now < end


def outcomes_view(
    ledger: Ledger, budgets: Sequence[Budget], now: datetime, *, month: str | None = None
) -> OutcomesView:
    """The page at ``now``: the last complete week by default, or ``month`` (``2026-11``, UTC,
    the same figures as ``finops outcomes --month 2026-11``). Raises ValueError for a bad month."""
    now = now.astimezone(_UTC)
    mode, label, start, end, p_start, p_end, partial = _period(now, month)
    trend_end = week_start(min(end, now)) if mode == "month" else end
    trend_start = trend_end - TREND_WEEKS * _WEEK
    with ledger.engine.connect() as conn:
        lines = flow_outcomes(conn, start=start, end=end, prev_start=p_start, prev_end=p_end)
        spend = _weekly_spend(conn, trend_start, trend_end) if lines else {}
        wins = _weekly_successes(conn, trend_start, trend_end) if lines else {}
        notes = annotations_between(conn, trend_start, trend_end)
    mondays = tuple((trend_start + i * _WEEK).date() for i in range(TREND_WEEKS))
    rows = []
    for line in lines:
        costs = spend.get(line.flow, [0] * TREND_WEEKS)
        counts = wins.get(line.flow, [0] * TREND_WEEKS)
        trend = tuple(
            WeekPoint(monday, cost, n, divide_nanos(cost, n))
            for monday, cost, n in zip(mondays, costs, counts, strict=True)
        )
        rows.append(FlowRow(line, _targets(line.flow, line, budgets), trend))
    return OutcomesView(
        now=now,
        mode=mode,
        label=label,
        start=start,
        end=end,
        prev_start=p_start,
        prev_end=p_end,
        partial=partial,
        rows=tuple(rows),
        weeks=mondays,
        annotations=tuple(notes),
    )
