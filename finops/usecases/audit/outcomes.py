"""Cost per successful outcome per flow: all of a flow's spend (failed and retried calls too)
divided by its successes, with cost per attempt, success rate, value and the trend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, case, func, select

from finops.storage.tables import outcomes
from finops.usecases.audit.report_model import FlowOutcomes
from finops.usecases.spend import SpendQuery, run_spend

__all__ = ["divide_nanos", "flow_outcomes"]


def divide_nanos(total: int, count: int) -> int | None:
    """``total / count`` rounded half to even to a nano-dollar; None when count is 0."""
    if count <= 0:
        return None
    quotient, remainder = divmod(total, count)
    twice = 2 * remainder
    if twice > count or (twice == count and quotient % 2):
        quotient += 1
    return quotient


def _counts(
    conn: Connection, start: datetime, end: datetime
) -> dict[str, tuple[int, int, int, int, int | None]]:
    o = outcomes.c
    flow = func.coalesce(o.flow, o.linked_flow, "unassigned")
    success = o.status == "success"
    rows = conn.execute(
        select(
            flow,
            func.count(),
            func.sum(case((success, 1), else_=0)),
            func.sum(case((o.status == "failure", 1), else_=0)),
            func.sum(case((o.status == "partial", 1), else_=0)),
            func.sum(case((success, o.value_nanos), else_=None)),
        )
        .where(o.ts_us >= int(start.timestamp() * 1e6), o.ts_us < int(end.timestamp() * 1e6))
        .group_by(flow)
    )
    return {
        str(f): (int(n), int(s), int(fl), int(p), None if v is None else int(v)) for f, n, s, fl, p, v in rows
    }


def _spend(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    result = run_spend(conn, SpendQuery(group_by=("flow",), start=start, end=end))
    return {r.keys["flow"]: r.sums["cost_nanos"] for r in result.rows}


def flow_outcomes(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    prev_start: datetime,
    prev_end: datetime,
    flows: Sequence[str] = (),
) -> list[FlowOutcomes]:
    """Per flow with outcomes in [start, end): the figures above, most costly per success first."""
    counts, spend = _counts(conn, start, end), _spend(conn, start, end)
    prev_counts, prev_spend = _counts(conn, prev_start, prev_end), _spend(conn, prev_start, prev_end)
    lines = []
    for flow, (n, successes, failures, partials, value) in counts.items():
        if flows and flow not in flows:
            continue
        cost = spend.get(flow, 0)
        prev = prev_counts.get(flow)
        lines.append(
            FlowOutcomes(
                flow=flow,
                cost_nanos=cost,
                outcomes=n,
                successes=successes,
                failures=failures,
                partials=partials,
                value_nanos=value,
                cost_per_success_nanos=divide_nanos(cost, successes),
                cost_per_attempt_nanos=divide_nanos(cost, n),
                prev_cost_per_success_nanos=divide_nanos(prev_spend.get(flow, 0), prev[1]) if prev else None,
            )
        )
    return sorted(lines, key=lambda f: (-(f.cost_per_success_nanos or 0), f.flow))
