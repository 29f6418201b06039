"""Claims on scheduled jobs: the first replica to insert (job, period) runs it; the rest skip.

A claim left unfinished by a dead replica may be taken over after ``stale_us``; the jobs make
that safe (their Slack messages have outbox dedupe keys, retention is idempotent).
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, update

from finops.storage.sql import dialect_insert
from finops.storage.tables import schedule_runs

__all__ = ["claim_run", "finish_run"]


def claim_run(conn: Connection, *, job: str, period: str, owner: str, now_us: int, stale_us: int) -> bool:
    """``True`` if this caller now owns the run of ``job`` for ``period``."""
    stmt = dialect_insert(conn, schedule_runs).values(job=job, period=period, owner=owner, claimed_us=now_us)
    inserted = conn.execute(  # RETURNING: rowcount of an INSERT .. ON CONFLICT is -1 on psycopg
        stmt.on_conflict_do_nothing(index_elements=["job", "period"]).returning(schedule_runs.c.job)
    ).first()
    if inserted is not None:
        return True
    s = schedule_runs.c
    taken = conn.execute(
        update(schedule_runs)
        .where(
            and_(s.job == job, s.period == period, s.finished_us.is_(None), s.claimed_us < now_us - stale_us)
        )
        .values(owner=owner, claimed_us=now_us)
    )
    return taken.rowcount == 1


def finish_run(conn: Connection, *, job: str, period: str, owner: str, now_us: int, result: str) -> None:
    s = schedule_runs.c
    conn.execute(
        update(schedule_runs)
        .where(and_(s.job == job, s.period == period, s.owner == owner))
        .values(finished_us=now_us, result=result[:2000])
    )
