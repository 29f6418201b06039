"""Breach records and the alert outbox.

A breach is recorded once per (budget, kind, period, threshold): the unique
constraint decides, whatever the number of replicas evaluating at once. The
alert is written to the outbox in the same transaction, so a crash after the
commit loses nothing: whoever runs delivery next sends it. Delivery claims a
row (pending -> sending) before calling Slack, so two deliverers never send
the same row; a row left in "sending" by a dead process is checked against
Slack before it is ever sent again (see finops.usecases.alerts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, select, update

from finops.storage.sql import dialect_insert
from finops.storage.tables import alert_outbox, budget_breaches

__all__ = [
    "OutboxRow",
    "claim",
    "due_rows",
    "enqueue",
    "finish",
    "open_breaches",
    "outbox_rows",
    "record_breach",
    "resolve_breach",
    "stale_claims",
]


@dataclass(frozen=True)
class OutboxRow:
    id: int
    dedupe_key: str
    channel: str | None
    payload: dict[str, Any]
    status: str
    attempts: int
    claimed_us: int | None
    last_error: str | None
    slack_ts: str | None
    created_us: int


def _row(r: Any) -> OutboxRow:
    return OutboxRow(
        r.id,
        r.dedupe_key,
        r.channel,
        json.loads(r.payload),
        r.status,
        r.attempts,
        r.claimed_us,
        r.last_error,
        r.slack_ts,
        r.created_us,
    )


def enqueue(
    conn: Connection, *, dedupe_key: str, channel: str | None, payload: dict[str, Any], now_us: int
) -> bool:
    """Queue a message for delivery once per ``dedupe_key``; ``False`` if it was queued before."""
    stmt = dialect_insert(conn, alert_outbox).values(
        dedupe_key=dedupe_key,
        channel=channel,
        payload=json.dumps(payload, default=str),
        status="pending",
        attempts=0,
        next_attempt_us=now_us,
        created_us=now_us,
        updated_us=now_us,
    )
    inserted = conn.execute(  # RETURNING: rowcount of an INSERT .. ON CONFLICT is -1 on psycopg
        stmt.on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(alert_outbox.c.id)
    ).first()
    return inserted is not None


def record_breach(
    conn: Connection,
    *,
    budget_key: str,
    kind: str,
    period: str,
    threshold: str,
    spend_nanos: int,
    cap_nanos: int,
    channel: str | None,
    payload: dict[str, Any],
    now_us: int,
) -> bool:
    """Record a breach and queue its alert; ``False`` when it was already recorded (by anyone)."""
    stmt = (
        dialect_insert(conn, budget_breaches)
        .on_conflict_do_nothing(index_elements=["budget_key", "kind", "period", "threshold"])
        .returning(budget_breaches.c.id)
    )
    breach_id = conn.execute(
        stmt,
        {
            "budget_key": budget_key,
            "kind": kind,
            "period": period,
            "threshold": threshold,
            "spend_nanos": spend_nanos,
            "cap_nanos": cap_nanos,
            "created_us": now_us,
        },
    ).scalar()
    if breach_id is None:
        return False
    enqueue(conn, dedupe_key=f"breach:{breach_id}", channel=channel, payload=payload, now_us=now_us)
    return True


def open_breaches(conn: Connection, *, budget_key: str, kind: str, period: str) -> dict[str, int]:
    """Unresolved breaches of a budget's period: threshold -> breach id, locked until commit
    (PostgreSQL) so that the spend read after this call is at least as new as they are."""
    b = budget_breaches.c
    rows = conn.execute(
        select(b.threshold, b.id)
        .where(b.budget_key == budget_key, b.kind == kind, b.period == period, b.resolved_us.is_(None))
        .with_for_update()
    )
    return {threshold: int(bid) for threshold, bid in rows}


def resolve_breach(
    conn: Connection, *, breach_id: int, channel: str | None, payload: dict[str, Any], now_us: int
) -> bool:
    """Mark a breach resolved (spend dropped back, e.g. after a re-price) and queue one message."""
    result = conn.execute(
        update(budget_breaches)
        .where(budget_breaches.c.id == breach_id, budget_breaches.c.resolved_us.is_(None))
        .values(resolved_us=now_us)
    )
    if result.rowcount != 1:
        return False
    enqueue(conn, dedupe_key=f"resolved:{breach_id}", channel=channel, payload=payload, now_us=now_us)
    return True


def due_rows(conn: Connection, *, now_us: int, limit: int = 100) -> list[OutboxRow]:
    """Pending rows whose next attempt is due, oldest first."""
    o = alert_outbox.c
    stmt = (
        select(alert_outbox)
        .where(o.status == "pending", o.next_attempt_us <= now_us)
        .order_by(o.id)
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(stmt)]


def claim(conn: Connection, row_id: int, *, now_us: int) -> bool:
    """Take a pending row for delivery; only one deliverer ever wins."""
    o = alert_outbox.c
    result = conn.execute(
        update(alert_outbox)
        .where(and_(o.id == row_id, o.status == "pending"))
        .values(status="sending", claimed_us=now_us, attempts=o.attempts + 1, updated_us=now_us)
    )
    return result.rowcount == 1


def finish(
    conn: Connection,
    row_id: int,
    *,
    status: str,
    now_us: int,
    error: str | None = None,
    slack_ts: str | None = None,
    next_attempt_us: int | None = None,
    claimed_us: int | None = None,
) -> bool:
    """Record how a delivery ended: sent, failed (permanent), ambiguous, or pending again.

    Only the claim that sent it may finish a row (status "sending", the same ``claimed_us``):
    a deliverer that was too slow and lost its claim to recovery changes nothing. Returns
    whether the row was updated.
    """
    values: dict[str, Any] = {"status": status, "updated_us": now_us, "last_error": error}
    if slack_ts is not None:
        values["slack_ts"] = slack_ts
    if next_attempt_us is not None:
        values["next_attempt_us"] = next_attempt_us
    o = alert_outbox.c
    stmt = update(alert_outbox).where(o.id == row_id, o.status == "sending", o.claimed_us == claimed_us)
    return bool(conn.execute(stmt.values(**values)).rowcount)


def stale_claims(conn: Connection, *, older_than_us: int) -> list[OutboxRow]:
    """Rows a deliverer claimed and never finished (it died mid-send)."""
    o = alert_outbox.c
    stmt = select(alert_outbox).where(o.status == "sending", o.claimed_us < older_than_us).order_by(o.id)
    return [_row(r) for r in conn.execute(stmt)]


def outbox_rows(conn: Connection, *, status: str | None = None, limit: int = 100) -> list[OutboxRow]:
    """The outbox, newest first (for `finops alerts list`)."""
    stmt = select(alert_outbox).order_by(alert_outbox.c.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(alert_outbox.c.status == status)
    return [_row(r) for r in conn.execute(stmt)]
