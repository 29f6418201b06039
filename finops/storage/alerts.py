"""Breach records and the alert outbox.

A breach is recorded once per (budget, kind, period, threshold): the unique
constraint decides, whatever the number of replicas evaluating at once. The
alert is written to the outbox in the same transaction, so a crash after the
commit loses nothing: whoever runs delivery next sends it.

Delivery claims a row (pending -> sending) before calling Slack, so two
deliverers never send the same row. A claim is a lease: it is stamped with the
time it was taken and lasts until ``lease_until_us`` (longer than the longest
send; renewed before a further Slack call). The claim is identified by the
attempt number it set, and every later change of the row is conditional on it,
so a deliverer that lost its claim changes nothing. A row whose lease expired
(its deliverer died) and a row whose send went unanswered (``ambiguous``) are
checked against Slack before they are ever sent again (see finops.usecases.alerts).

Statuses: pending, sending, sent, failed, ambiguous, dismissed (a person decided).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select, update

from finops.storage.sql import dialect_insert
from finops.storage.tables import alert_outbox, budget_breaches

__all__ = [
    "DECIDABLE",
    "OLD_LEASE_US",
    "OutboxRow",
    "breach_recorded",
    "claim",
    "decide",
    "due_lookups",
    "due_rows",
    "enqueue",
    "expired_claims",
    "finish",
    "open_breaches",
    "outbox_row",
    "outbox_rows",
    "record_breach",
    "renew",
    "resolve_breach",
    "settle",
]

#: A claim taken by a finops from before leases (no lease_until_us) lasted this long.
OLD_LEASE_US = 120_000_000
#: Statuses a person may decide about with `finops alerts resend|dismiss`.
DECIDABLE = ("ambiguous", "failed")


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
    next_attempt_us: int
    lease_until_us: int | None


def _row(r: Any) -> OutboxRow:
    return OutboxRow(
        id=r.id,
        dedupe_key=r.dedupe_key,
        channel=r.channel,
        payload=json.loads(r.payload),
        status=r.status,
        attempts=r.attempts,
        claimed_us=r.claimed_us,
        last_error=r.last_error,
        slack_ts=r.slack_ts,
        created_us=r.created_us,
        next_attempt_us=r.next_attempt_us,
        lease_until_us=r.lease_until_us,
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
    payload: dict[str, Any] | None,
    now_us: int,
) -> bool:
    """Record a breach and queue its alert; ``False`` when it was already recorded (by anyone).

    Without a ``payload`` the breach is recorded silently: nothing is queued, now or later (a
    lower threshold crossed in the same jump as a higher one, whose alert says it all).
    """
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
    if payload is not None:
        enqueue(conn, dedupe_key=f"breach:{breach_id}", channel=channel, payload=payload, now_us=now_us)
    return True


def breach_recorded(conn: Connection, *, budget_key: str, kind: str, period: str, threshold: str) -> bool:
    """Whether this breach was recorded already (what ``record_breach`` would refuse)."""
    b = budget_breaches.c
    found = conn.execute(
        select(b.id).where(
            b.budget_key == budget_key, b.kind == kind, b.period == period, b.threshold == threshold
        )
    ).first()
    return found is not None


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
    conn: Connection, *, breach_id: int, channel: str | None, payload: dict[str, Any] | None, now_us: int
) -> bool:
    """Mark a breach resolved (spend dropped back, e.g. after a re-price) and queue one message
    (none without a ``payload``: resolved silently)."""
    result = conn.execute(
        update(budget_breaches)
        .where(budget_breaches.c.id == breach_id, budget_breaches.c.resolved_us.is_(None))
        .values(resolved_us=now_us)
    )
    if result.rowcount != 1:
        return False
    if payload is not None:
        enqueue(conn, dedupe_key=f"resolved:{breach_id}", channel=channel, payload=payload, now_us=now_us)
    return True


def _among(ids: Collection[int] | None) -> ColumnElement[bool]:
    return alert_outbox.c.id.in_(list(ids)) if ids is not None else alert_outbox.c.id.is_not(None)


def due_rows(
    conn: Connection, *, now_us: int, limit: int = 100, ids: Collection[int] | None = None
) -> list[OutboxRow]:
    """Pending rows whose next attempt is due, oldest first (only ``ids``, when given)."""
    o = alert_outbox.c
    stmt = (
        select(alert_outbox)
        .where(o.status == "pending", o.next_attempt_us <= now_us, _among(ids))
        .order_by(o.id)
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(stmt)]


def claim(conn: Connection, row: OutboxRow, *, now_us: int, lease_until_us: int) -> bool:
    """Take a pending row for delivery until ``lease_until_us``; only one deliverer ever wins.

    The claim is attempt ``row.attempts + 1``: that number identifies it from now on.
    """
    o = alert_outbox.c
    result = conn.execute(
        update(alert_outbox)
        .where(o.id == row.id, o.status == "pending", o.attempts == row.attempts)
        .values(
            status="sending",
            claimed_us=now_us,
            lease_until_us=lease_until_us,
            attempts=row.attempts + 1,
            updated_us=now_us,
        )
    )
    return result.rowcount == 1


def renew(conn: Connection, row_id: int, *, attempts: int, now_us: int, lease_until_us: int) -> bool:
    """Extend a claim that has not expired yet; ``False`` when it expired or was taken over."""
    o = alert_outbox.c
    result = conn.execute(
        update(alert_outbox)
        .where(o.id == row_id, o.status == "sending", o.attempts == attempts, o.lease_until_us > now_us)
        .values(lease_until_us=lease_until_us, updated_us=now_us)
    )
    return result.rowcount == 1


def _outcome(
    status: str,
    now_us: int,
    error: str | None,
    slack_ts: str | None,
    next_attempt_us: int | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": status,
        "updated_us": now_us,
        "last_error": error,
        "lease_until_us": None,
    }
    if slack_ts is not None:
        values["slack_ts"] = slack_ts
    if next_attempt_us is not None:
        values["next_attempt_us"] = next_attempt_us
    return values


def finish(
    conn: Connection,
    row_id: int,
    *,
    attempts: int,
    status: str,
    now_us: int,
    error: str | None = None,
    slack_ts: str | None = None,
    next_attempt_us: int | None = None,
) -> bool:
    """Record how a delivery ended: sent, failed (permanent), ambiguous, or pending again.

    Only the claim that sent it (``attempts``, still "sending") may finish a row: a deliverer
    that lost its claim changes nothing. Returns whether the row was updated.
    """
    o = alert_outbox.c
    stmt = update(alert_outbox).where(o.id == row_id, o.status == "sending", o.attempts == attempts)
    return bool(
        conn.execute(stmt.values(**_outcome(status, now_us, error, slack_ts, next_attempt_us))).rowcount
    )


def settle(
    conn: Connection,
    row: OutboxRow,
    *,
    status: str,
    now_us: int,
    error: str | None = None,
    slack_ts: str | None = None,
    next_attempt_us: int | None = None,
) -> bool:
    """Record what a lookup in Slack decided about ``row``, if the row is still as it was read
    (same status, claim and lease): a claim renewed meanwhile, or another deliverer's decision,
    wins. Returns whether the row was updated."""
    o = alert_outbox.c
    lease = (
        o.lease_until_us.is_(None) if row.lease_until_us is None else o.lease_until_us == row.lease_until_us
    )
    stmt = update(alert_outbox).where(
        o.id == row.id, o.status == row.status, o.attempts == row.attempts, lease
    )
    return bool(
        conn.execute(stmt.values(**_outcome(status, now_us, error, slack_ts, next_attempt_us))).rowcount
    )


def expired_claims(conn: Connection, *, now_us: int, ids: Collection[int] | None = None) -> list[OutboxRow]:
    """Rows claimed by a deliverer whose lease ended before ``now_us`` (it died mid-send)."""
    o = alert_outbox.c
    lease_end = func.coalesce(o.lease_until_us, o.claimed_us + OLD_LEASE_US)
    stmt = select(alert_outbox).where(o.status == "sending", lease_end < now_us, _among(ids)).order_by(o.id)
    return [_row(r) for r in conn.execute(stmt)]


def due_lookups(conn: Connection, *, now_us: int, ids: Collection[int] | None = None) -> list[OutboxRow]:
    """Ambiguous rows whose lookup in Slack is due (``next_attempt_us``)."""
    o = alert_outbox.c
    stmt = (
        select(alert_outbox)
        .where(o.status == "ambiguous", o.next_attempt_us <= now_us, _among(ids))
        .order_by(o.id)
    )
    return [_row(r) for r in conn.execute(stmt)]


def decide(conn: Connection, row_id: int, *, status: str, now_us: int, note: str) -> bool:
    """A person's decision on an ambiguous or failed row: send it again ("pending", due now) or
    leave it ("dismissed"). ``False`` when the row is not (or no longer) ambiguous or failed."""
    o = alert_outbox.c
    values: dict[str, Any] = {
        "status": status,
        "updated_us": now_us,
        "last_error": note,
        "lease_until_us": None,
    }
    if status == "pending":
        values["next_attempt_us"] = now_us
    stmt = update(alert_outbox).where(o.id == row_id, o.status.in_(DECIDABLE)).values(**values)
    return bool(conn.execute(stmt).rowcount)


def outbox_row(conn: Connection, row_id: int) -> OutboxRow | None:
    """One row of the outbox, or None."""
    found = conn.execute(select(alert_outbox).where(alert_outbox.c.id == row_id)).first()
    return None if found is None else _row(found)


def outbox_rows(conn: Connection, *, status: str | None = None, limit: int = 100) -> list[OutboxRow]:
    """The outbox, newest first (for `finops alerts list`)."""
    stmt = select(alert_outbox).order_by(alert_outbox.c.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(alert_outbox.c.status == status)
    return [_row(r) for r in conn.execute(stmt)]
