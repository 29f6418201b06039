"""The events drawn on the dashboard's time charts, for a window and (optionally) one flow.

Four kinds come from four places: ``deploy``/``note`` posted by CI and ``budget`` file changes
(the ``annotations`` table), ``price`` changes (a price entry imported into this ledger, or one
that has priced usage, taking effect in the window), and ``breach`` (a budget crossing a threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from sqlalchemy import Connection, or_, select, union

from finops.domain.budgets import Budget
from finops.domain.dashboard import Annotation
from finops.storage.tables import annotation_events, budget_breaches, price_entries, price_versions

__all__ = ["MAX_EVENTS", "annotations_between"]

#: The most posted events, and the most breaches, one window draws (the newest): an ingest token
#: may post without end, and 20,000 notes made a flow page of 18 MB.
MAX_EVENTS = 200


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def _prices(conn: Connection, start: datetime, end: datetime) -> list[Annotation]:
    """One ``price`` event per model and effective date in [start, end) (at 00:00 UTC that day)."""
    first, last = start.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    found = []
    for table in (price_entries, price_versions):
        t = table.c
        query = select(t.model, t.effective_from).where(t.effective_from >= first, t.effective_from <= last)
        found.append(query)
    rows = conn.execute(union(*found)).all()
    out = []
    for model, effective in {(str(m), e) for m, e in rows}:
        day = effective if isinstance(effective, date) else date.fromisoformat(str(effective))
        at = datetime.combine(day, time(0), UTC)
        if start <= at < end:
            out.append(Annotation(at, "price", f"{model} price from {day.isoformat()}", None))
    return out


def breach_text(key: str, kind: str, period: str, threshold: str) -> str:
    """A recorded breach in words: ``code-review passed 80% of its daily cap (2026-11-30)``."""
    try:
        fraction = Decimal(threshold)
    except (InvalidOperation, ValueError):
        fraction = None
    if kind in ("threshold", "monthly") and fraction is not None:
        span = "monthly" if kind == "monthly" or len(period) == 7 else "daily"
        percent = (fraction * 100).quantize(Decimal(1), ROUND_HALF_EVEN)
        reached = "reached its" if percent == 100 else f"passed {percent}% of its"
        return f"{key} {reached} {span} cap ({period})"
    if kind == "fanout":
        return f"{key}: more than {threshold} tool calls a request ({period})"
    if kind == "cost_per_success":
        return f"{key}: cost per success over ${threshold} ({period})"
    return f"{key}: {kind} {threshold} ({period})".replace("  ", " ")


def _breach_flow(budget: Budget | None, flow: str | None) -> tuple[bool, str | None]:
    """Whether a breach of ``budget`` belongs on ``flow``'s chart, and the flow it is drawn for."""
    if budget is None:  # a budget no longer in force (or none given): which flows is not known
        return True, None
    if budget.flow is not None:
        return flow is None or flow == budget.flow, budget.flow
    if flow is None:
        return True, None
    return budget.matches(flow, budget.tag_filter), flow


def annotations_between(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    flow: str | None = None,
    budgets: Sequence[Budget] = (),
) -> list[Annotation]:
    """Every event in [start, end) (UTC-aware), oldest first: of the posted events and of the
    breaches, the newest :data:`MAX_EVENTS` each.

    ``flow``: only events of that flow or of every flow (``None``: all events). ``budgets``: the
    budgets in force, so a breach belongs to the flows its budget covers (a tag-filtered budget
    covers part of its flows' spend, so its breach is drawn on them); a breach of a budget not
    given is drawn on every flow.
    """
    lo, hi = int(start.timestamp() * 1_000_000), int(end.timestamp() * 1_000_000)
    a = annotation_events.c
    query = select(a.ts_us, a.kind, a.text, a.flow).where(a.ts_us >= lo, a.ts_us < hi)
    if flow is not None:
        query = query.where(or_(a.flow.is_(None), a.flow == flow))
    query = query.order_by(a.ts_us.desc()).limit(MAX_EVENTS)
    found = [Annotation(_at(ts), kind, text, f) for ts, kind, text, f in conn.execute(query)]
    found.extend(_prices(conn, start, end))
    by_key = {b.key: b for b in budgets}
    b = budget_breaches.c
    breaches = (
        select(b.created_us, b.budget_key, b.kind, b.period, b.threshold)
        .where(b.created_us >= lo, b.created_us < hi)
        .order_by(b.created_us.desc())
        .limit(MAX_EVENTS)
    )
    for ts, key, kind, period, threshold in conn.execute(breaches):
        shown, drawn_for = _breach_flow(by_key.get(key), flow)
        if shown:
            found.append(Annotation(_at(ts), "breach", breach_text(key, kind, period, threshold), drawn_for))
    return sorted(found, key=lambda x: (x.at, x.kind, x.text))
