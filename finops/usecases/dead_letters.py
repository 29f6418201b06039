"""The dead letters: records refused at ingest, newest first, with where they came from and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from finops.storage.tables import dead_letters

__all__ = ["DeadLetter", "newest_dead_letters"]


@dataclass(frozen=True)
class DeadLetter:
    source: str
    location: str
    line: int | None
    record_id: str | None
    reason: str
    digest: str
    at: datetime


def newest_dead_letters(engine: Engine, *, limit: int) -> tuple[int, list[DeadLetter]]:
    """How many dead letters there are, and the newest ``limit`` of them."""
    d = dead_letters.c
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(dead_letters)) or 0
        rows = list(
            conn.execute(
                select(d.source, d.location, d.line, d.record_id, d.reason, d.raw, d.created_us)
                .order_by(d.id.desc())
                .limit(limit)
            )
        )
    return total, [
        DeadLetter(
            source=r.source,
            location=r.location,
            line=r.line,
            record_id=r.record_id,
            reason=r.reason,
            digest=r.raw,
            at=datetime.fromtimestamp(r.created_us / 1_000_000, UTC),
        )
        for r in rows
    ]
