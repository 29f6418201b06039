"""The events drawn on the dashboard's time charts, for a window and (optionally) one flow."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, or_, select

from finops.domain.dashboard import Annotation
from finops.storage.tables import annotation_events, budget_breaches

__all__ = ["annotations_between"]


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def annotations_between(
    conn: Connection, start: datetime, end: datetime, *, flow: str | None = None
) -> list[Annotation]:
    """Posted events (deploys, notes, budget file changes) and breaches in [start, end), oldest first.

    ``flow``: only events of that flow or of every flow (``None``: all events).
    """
    lo, hi = int(start.timestamp() * 1_000_000), int(end.timestamp() * 1_000_000)
    a = annotation_events.c
    query = select(a.ts_us, a.kind, a.text, a.flow).where(a.ts_us >= lo, a.ts_us < hi)
    if flow is not None:
        query = query.where(or_(a.flow.is_(None), a.flow == flow))
    found = [Annotation(_at(ts), kind, text, f) for ts, kind, text, f in conn.execute(query)]
    b = budget_breaches.c
    breaches = select(b.created_us, b.budget_key, b.kind, b.threshold).where(
        b.created_us >= lo, b.created_us < hi
    )
    for ts, key, kind, threshold in conn.execute(breaches):
        what = f"{key}: {kind} {threshold}".strip()
        found.append(Annotation(_at(ts), "breach", what, None))
    return sorted(found, key=lambda x: (x.at, x.kind, x.text))
