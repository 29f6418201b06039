"""What providers reported (usage and cost buckets) and where each poller is up to.

A bucket is *replaced*, never added to: a re-poll of a day the provider is still
revising overwrites that day's numbers (upsert on ``(provider, bucket_start_us,
group_key)``) and drops the groups the provider no longer reports for it. Callers
write a page's buckets and the poller's cursor in one transaction, so a crash
leaves both as they were.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, select

from finops.domain.provider_reports import Bucket, CostRow, UsageRow
from finops.storage.sql import dialect_insert
from finops.storage.tables import poller_cursors, provider_costs, provider_usage

__all__ = ["read_cursor", "replace_costs", "replace_usage", "write_cursor"]


def _replace(
    conn: Connection,
    table: Table,
    provider: str,
    buckets: Sequence[Bucket],
    rows: Sequence[UsageRow] | Sequence[CostRow],
    now_us: int,
) -> int:
    keys_by_bucket: dict[int, set[str]] = {b.start_us: set() for b in buckets}
    for row in rows:
        keys_by_bucket.setdefault(row.bucket_start_us, set()).add(row.group_key)
    for start_us, keys in keys_by_bucket.items():
        gone = and_(table.c.provider == provider, table.c.bucket_start_us == start_us)
        if keys:
            gone = and_(gone, table.c.group_key.not_in(sorted(keys)))
        conn.execute(delete(table).where(gone))
    if not rows:
        return 0
    values = [{**dataclasses.asdict(row), "fetched_us": now_us} for row in rows]
    stmt = dialect_insert(conn, table)
    updated = {
        name: stmt.excluded[name]
        for name in values[0]
        if name not in ("provider", "bucket_start_us", "group_key")
    }
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["provider", "bucket_start_us", "group_key"], set_=updated),
        values,
    )
    return len(values)


def replace_usage(
    conn: Connection, *, provider: str, buckets: Sequence[Bucket], rows: Sequence[UsageRow], now_us: int
) -> int:
    """Store a page of usage buckets as the provider now reports them; returns the rows written."""
    return _replace(conn, provider_usage, provider, buckets, rows, now_us)


def replace_costs(
    conn: Connection, *, provider: str, buckets: Sequence[Bucket], rows: Sequence[CostRow], now_us: int
) -> int:
    """Store a page of cost buckets as the provider now reports them; returns the rows written."""
    return _replace(conn, provider_costs, provider, buckets, rows, now_us)


def read_cursor(conn: Connection, name: str) -> dict[str, Any] | None:
    """A poller's cursor (its own JSON shape), ``None`` before its first poll."""
    raw = conn.execute(select(poller_cursors.c.cursor).where(poller_cursors.c.name == name)).scalar()
    return None if raw is None else dict(json.loads(raw))


def write_cursor(conn: Connection, name: str, cursor: dict[str, Any], *, now_us: int) -> None:
    """Set a poller's cursor (call it in the transaction that stored what it covers)."""
    stmt = dialect_insert(conn, poller_cursors)
    text = json.dumps(cursor, sort_keys=True)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"cursor": text, "updated_us": now_us}),
        {"name": name, "cursor": text, "updated_us": now_us},
    )
