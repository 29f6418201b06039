"""Retention: raw usage older than the horizon is deleted once its rollups are final; rollups stay.

"Final" is a watermark kept in ``finops_meta``: usage before it is closed. The ledger refuses a
record older than the watermark (its id may have been stored and deleted already, so storing it
again could count it twice), which is what makes deleting raw records safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Connection, and_, cast, delete, exists, func, select, text, update
from sqlalchemy.sql.elements import ColumnElement

from finops.storage.partitions import drop_partitions_before, is_partitioned, month_floor_us, next_month_us
from finops.storage.sql import dialect_insert
from finops.storage.tables import (
    dead_letters,
    meta,
    outcome_links,
    prompt_rollups_daily,
    prompts,
    reservation_budgets,
    reservations,
    rollups_hourly,
    usage_records,
)

__all__ = [
    "FINAL_KEY",
    "RetentionResult",
    "apply_retention",
    "final_before_sql",
    "final_before_us",
    "hold_retention_lock",
]

FINAL_KEY = "usage_final_before_us"
#: PostgreSQL advisory lock: writers hold it shared, retention exclusive (SQLite: BEGIN IMMEDIATE
#: already lets one writer at a time in).
_LOCK_KEY = 0x66696E6F7073  # "finops"


def hold_retention_lock(conn: Connection, *, shared: bool) -> None:
    """Until the transaction ends: a batch and retention never overlap, so a record whose raw row
    retention is deleting cannot be stored again under the old watermark (and counted twice)."""
    if conn.dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        conn.execute(text(f"SELECT {fn}(:key)"), {"key": _LOCK_KEY})


def final_before_us(conn: Connection) -> int:
    """Usage with ``ts_us`` before this is final (0: nothing is)."""
    value = conn.scalar(select(meta.c.value).where(meta.c.key == FINAL_KEY))
    return int(value) if value is not None else 0


def final_before_sql() -> ColumnElement[int]:
    """:func:`final_before_us` as an expression, for a query that must read the watermark in the
    same snapshot as the rows it splits (retention moves it and deletes raw rows in one commit)."""
    value = select(cast(meta.c.value, BigInteger)).where(meta.c.key == FINAL_KEY).scalar_subquery()
    return func.coalesce(value, 0)


@dataclass(frozen=True)
class RetentionResult:
    final_before_us: int
    usage_deleted: int
    links_deleted: int
    dead_letters_deleted: int
    previews_cleared: int
    reservations_deleted: int = 0
    keys_pruned: int = 0  # PostgreSQL: idempotency keys of closed months deleted (after the commit)


def _set_final(conn: Connection, cutoff_us: int) -> int:
    """Move the watermark forward, never back; returns the watermark in force."""
    current = final_before_us(conn)
    if cutoff_us <= current:
        return current
    stmt = dialect_insert(conn, meta).values(key=FINAL_KEY, value=str(cutoff_us))
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": str(cutoff_us)}))
    return cutoff_us


_DAY_US = 86_400_000_000


def apply_retention(
    conn: Connection,
    *,
    usage_before_us: int,
    preview_before_day: int,
    dead_letters_before_us: int,
    reservations_before_us: int | None = None,
    batch: int = 50_000,
) -> RetentionResult:
    """Close usage before ``usage_before_us`` and delete its raw records (in ``batch``-sized steps,
    so a database with months of backlog is not locked in one statement).

    Run in one write transaction: the watermark and the deletes commit together.
    """
    hold_retention_lock(conn, shared=False)
    u = usage_records.c
    monthly = is_partitioned(conn)
    # The watermark moves only past days that had raw records: on a new or quiet database,
    # older history can still be loaded; once it is deleted, it is closed. Partitioned
    # (PostgreSQL), it moves in whole UTC months, so a month is dropped, never deleted row by row.
    newest = _newest_before(conn, usage_before_us, monthly=monthly)
    final = final_before_us(conn)
    if newest is not None:
        if monthly:
            final = _set_final(conn, min(month_floor_us(usage_before_us), next_month_us(newest)))
        else:
            final = _set_final(conn, min(usage_before_us, (newest // _DAY_US + 1) * _DAY_US))
    deleted = links = 0
    if monthly:
        deleted, links = drop_partitions_before(conn, final)
    # What is left before the watermark (SQLite; PostgreSQL's default partition) goes row by row.
    old_ids = select(u.id).where(u.ts_us < final).limit(batch)
    while True:
        ids = list(conn.scalars(old_ids))
        if not ids:
            break
        links += conn.execute(delete(outcome_links).where(outcome_links.c.usage.in_(ids))).rowcount
        # ts_us bounds the delete to what is before the watermark: PostgreSQL skips open partitions.
        deleted += conn.execute(delete(usage_records).where(u.id.in_(ids), u.ts_us < final)).rowcount
    d = dead_letters.c
    dead = conn.execute(delete(dead_letters).where(d.created_us < dead_letters_before_us)).rowcount
    p, r = prompts.c, prompt_rollups_daily.c
    seen_lately = exists().where(and_(r.prompt_id == p.prompt_id, r.day >= preview_before_day))
    cleared = conn.execute(
        update(prompts).where(p.preview.is_not(None), ~seen_lately).values(preview=None)
    ).rowcount
    held = 0 if reservations_before_us is None else _delete_reservations(conn, reservations_before_us, batch)
    return RetentionResult(final, deleted, links, dead, cleared, held)


def _newest_before(conn: Connection, before_us: int, *, monthly: bool) -> int | None:
    """The newest usage time before ``before_us``. Partitioned, from the hourly rollups (an
    index lookup; a time index on the raw rows is BRIN, which cannot answer a max), to the
    hour: the watermark rounds it up to a day or a month anyway."""
    if not monthly:
        u = usage_records.c
        newest = conn.scalar(select(func.max(u.ts_us)).where(u.ts_us < before_us))
        return None if newest is None else int(newest)
    h = rollups_hourly.c
    hour = conn.scalar(select(func.max(h.hour)).where(h.hour < before_us // 1_000_000, h.records > 0))
    return None if hour is None else min(int(hour) * 1_000_000, before_us - 1)


def _delete_reservations(conn: Connection, before_us: int, batch: int) -> int:
    """Closed reservations (settled, released, lapsed, denied) that expired before ``before_us``,
    with their budget links; an open hold is never deleted. At a thousand calls a second the
    table would otherwise grow by 86 million rows a day."""
    r = reservations.c
    closed = ("settled", "released", "lapsed", "denied")
    old = select(r.id).where(r.status.in_(closed), r.expires_us < before_us).limit(batch)
    deleted = 0
    while True:
        ids = list(conn.scalars(old))
        if not ids:
            return deleted
        conn.execute(delete(reservation_budgets).where(reservation_budgets.c.reservation_id.in_(ids)))
        deleted += conn.execute(delete(reservations).where(r.id.in_(ids))).rowcount
