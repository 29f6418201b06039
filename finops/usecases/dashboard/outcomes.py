"""``/outcomes``: cost per successful outcome per flow, against last week (or last month), against
each covering budget's ``max_cost_per_success_usd``, and over the last eight weeks.

The headline is :func:`finops.usecases.audit.outcomes.flow_outcomes` itself (what ``finops
outcomes`` prints), for the last complete UTC week (Monday to Sunday) against the week before, or
for a month against the previous one. Each week of the trend divides with the same
:func:`~finops.usecases.audit.outcomes.divide_nanos`: its spend is the spend query
``flow_outcomes`` asks (daily rollups), its successes one grouped count through the outcomes'
``ts_us`` index; the last week of the default view is the headline itself, not read twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

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


def _week_spend(conn: Connection, lo: datetime, hi: datetime) -> dict[str, int]:
    """Spend per flow in [lo, hi): the spend query ``flow_outcomes`` asks, on the daily rollups."""
    result = run_spend(conn, SpendQuery(group_by=("flow",), start=lo, end=hi))
    return {r.keys["flow"]: r.sums["cost_nanos"] for r in result.rows}


def _week_successes(conn: Connection, lo: datetime, hi: datetime) -> dict[str, int]:
    """Successful outcomes per flow in [lo, hi) (the flow as ``flow_outcomes`` names it), through
    the ``ts_us`` index; one query a week keeps the grouping small."""
    o = outcomes.c
    flow = func.coalesce(o.flow, o.linked_flow, "unassigned")
    rows = conn.execute(
        select(flow, func.count())
        .where(
            o.ts_us >= int(lo.timestamp() * 1_000_000),
            o.ts_us < int(hi.timestamp() * 1_000_000),
            o.status == "success",
        )
        .group_by(flow)
    )
    return {str(name): int(n) for name, n in rows}


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
    with ledger.read_engine.connect() as conn:
        lines = flow_outcomes(conn, start=start, end=end, prev_start=p_start, prev_end=p_end)
        starts = [trend_start + i * _WEEK for i in range(TREND_WEEKS)] if lines else []
        if mode == "week" and lines:  # the headline is the trend's last week
            starts.pop()
        weeks = [(_week_spend(conn, lo, lo + _WEEK), _week_successes(conn, lo, lo + _WEEK)) for lo in starts]
        if mode == "week" and lines:
            weeks.append(({o.flow: o.cost_nanos for o in lines}, {o.flow: o.successes for o in lines}))
        notes = annotations_between(conn, trend_start, trend_end)
    mondays = tuple((trend_start + i * _WEEK).date() for i in range(TREND_WEEKS))
    rows = []
    for line in lines:
        trend = []
        for monday, (spend, wins) in zip(mondays, weeks, strict=False):
            cost, n = spend.get(line.flow, 0), wins.get(line.flow, 0)
            trend.append(WeekPoint(monday, cost, n, divide_nanos(cost, n)))
        rows.append(FlowRow(line, _targets(line.flow, line, budgets), tuple(trend)))
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
