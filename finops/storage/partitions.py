"""Monthly partitions of ``usage_records`` on PostgreSQL (SQLite keeps one table).

Why: at hundreds of millions of calls, deleting a month of raw records row by row takes
minutes and bloats the table; dropping the month's partition takes milliseconds. Queries
on a time range touch only the months in it.

The layout (migration 0008):

- ``usage_records`` is ``PARTITION BY RANGE (ts_us)``; one partition a UTC month, named
  ``usage_records_pYYYYMM``, and ``usage_records_default`` for any month without one (a
  backfill of old history, a clock far ahead), so an insert never fails for want of a partition.
- A partitioned table cannot hold a unique index without the partition key, so "one record
  per (source, record id)" lives in ``usage_record_keys``: the ledger claims the key first
  and stores only the rows whose key it won (storage/ledger.py).
- Retention closes whole UTC months and drops their partitions (storage/retention.py).

Creating or dropping a partition needs a strong lock on the parent, so it is done with a
short ``lock_timeout``: behind a long report it gives up and the next run tries again,
instead of queueing every writer behind it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, text

__all__ = [
    "DEFAULT_PARTITION",
    "KEYS_TABLE",
    "Partition",
    "create_month_partition",
    "drop_partitions_before",
    "ensure_partitions",
    "is_partitioned",
    "month_floor_us",
    "month_start_us",
    "months_with_rows",
    "next_month_us",
    "partition_name",
    "partitions",
    "prune_keys",
]

DEFAULT_PARTITION = "usage_records_default"
KEYS_TABLE = "usage_record_keys"
_NAME = re.compile(r"^usage_records_p(\d{4})(\d{2})$")
_DAY_US = 86_400 * 1_000_000
_YEAR_US = 366 * _DAY_US
#: How long partition DDL may wait for its lock before giving up until the next run.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, order=True)
class Partition:
    """One month's partition: rows with ``start_us <= ts_us < end_us``."""

    start_us: int
    end_us: int
    name: str


def month_start_us(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1_000_000


def _year_month(ts_us: int) -> tuple[int, int]:
    moment = datetime.fromtimestamp(ts_us // 1_000_000, UTC)
    return moment.year, moment.month


def month_floor_us(ts_us: int) -> int:
    """The start of the UTC month holding ``ts_us``."""
    return month_start_us(*_year_month(ts_us))


def next_month_us(ts_us: int) -> int:
    """The start of the UTC month after the one holding ``ts_us``."""
    year, month = _year_month(ts_us)
    return month_start_us(year + month // 12, month % 12 + 1)


def partition_name(start_us: int) -> str:
    year, month = _year_month(start_us)
    return f"usage_records_p{year:04d}{month:02d}"


def is_partitioned(conn: Connection) -> bool:
    """Whether this database keeps usage in monthly partitions (PostgreSQL at migration 0008+)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('usage_records')"))
    return bool(kind == "p")


def partitions(conn: Connection) -> list[Partition]:
    """The monthly partitions, oldest first (the default partition is not one of them)."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'usage_records'::regclass"
        )
    )
    found = []
    for (name,) in rows:
        match = _NAME.match(name)
        if match:
            start = month_start_us(int(match[1]), int(match[2]))
            found.append(Partition(start, next_month_us(start), name))
    return sorted(found)


def create_month_partition(conn: Connection, start_us: int) -> bool:
    """Create the partition of the month starting at ``start_us``; False if it exists.

    Rows of that month already in the default partition are moved into it first (else
    attaching it would fail). The new table is attached, which takes a weaker lock on the
    parent than ``CREATE TABLE ... PARTITION OF``: reads and inserts go on meanwhile.
    """
    name = partition_name(start_us)
    if conn.scalar(text("SELECT to_regclass(:name)"), {"name": name}) is not None:
        return False
    end_us = next_month_us(start_us)
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    # The parent first, in the mode ATTACH takes anyway (writers and readers go on): retention's
    # DETACH locks the parent, then the default partition; taken the other way round, each would
    # wait for the other and PostgreSQL would kill one of them (a deadlock).
    conn.execute(text("LOCK TABLE ONLY usage_records IN SHARE UPDATE EXCLUSIVE MODE"))
    # Writers into the default partition wait while its rows of this month move.
    conn.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN EXCLUSIVE MODE"))
    # Looked again under the lock: another session (a replica's daily job, the migration) may
    # have made it while this one waited, and CREATE TABLE would fail on "already exists".
    if conn.scalar(text("SELECT to_regclass(:name)"), {"name": name}) is not None:
        return False
    conn.execute(text(f"CREATE TABLE {name} (LIKE usage_records INCLUDING DEFAULTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts_us >= :lo AND ts_us < :hi "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        {"lo": start_us, "hi": end_us},
    )
    # The CHECK lets ATTACH skip scanning the new table; it is dropped once attached.
    conn.execute(
        text(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK (ts_us >= {start_us} AND ts_us < {end_us})"
        )
    )
    conn.execute(
        text(f"ALTER TABLE usage_records ATTACH PARTITION {name} FOR VALUES FROM ({start_us}) TO ({end_us})")
    )
    conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range"))
    return True


def ensure_partitions(conn: Connection, now: datetime, *, ahead: int = 2) -> list[str]:
    """Partitions for last UTC month (late records: on the 1st, yesterday is last month), this
    one and ``ahead`` more, and for every recent month whose rows sit in the default partition
    (a backfill), created if missing; returns those made.

    Run by the daemon once a day and by the migration, so ingest finds its month ready and
    retention can drop backfilled months whole. Months more than three years back or a year
    ahead stay in the default partition (a stray timestamp must not make a thousand tables).
    """
    if not is_partitioned(conn):
        return []
    now_us = int(now.timestamp()) * 1_000_000
    wanted = set()
    start = month_floor_us(month_floor_us(now_us) - 1)
    for _ in range(ahead + 2):
        wanted.add(start)
        start = next_month_us(start)
    wanted.update(months_with_rows(conn, DEFAULT_PARTITION, now))
    return [partition_name(s) for s in sorted(wanted) if create_month_partition(conn, s)]


def months_with_rows(conn: Connection, table: str, now: datetime) -> set[int]:
    """The starts of the UTC months within three years back and a year ahead of ``now`` that
    have rows in ``table`` (one of ours; the name is never user input)."""
    now_us = int(now.timestamp()) * 1_000_000
    days = conn.execute(
        text(f"SELECT DISTINCT ts_us / {_DAY_US} FROM {table} WHERE ts_us >= :lo AND ts_us < :hi"),
        {"lo": now_us - 3 * _YEAR_US, "hi": now_us + _YEAR_US},
    )
    return {month_floor_us(int(day) * _DAY_US) for (day,) in days}


def drop_partitions_before(conn: Connection, final_us: int) -> tuple[int, int]:
    """Detach and drop every monthly partition wholly before ``final_us``, and the outcome
    links to its records; returns (raw records dropped, links deleted).

    The caller holds the retention lock and has moved the watermark to ``final_us`` in
    the same transaction, so no writer can add to these months meanwhile.
    """
    rows = links = 0
    old = [p for p in partitions(conn) if p.end_us <= final_us]
    if not old:
        return 0, 0
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    for part in old:
        # Counted from the hourly rollups (they equal the raw rows, and stay): an index range, where
        # count(*) would read the whole month.
        rows += int(
            conn.scalar(
                text("SELECT coalesce(sum(records), 0) FROM rollups_hourly WHERE hour >= :lo AND hour < :hi"),
                {"lo": part.start_us // 1_000_000, "hi": part.end_us // 1_000_000},
            )
            or 0
        )
        # Links only within the month's id range (ids come from one sequence, in arrival order), so
        # the delete starts from the links, not from millions of usage rows.
        lo, hi = conn.execute(text(f"SELECT min(id), max(id) FROM {part.name}")).one()
        if lo is not None:
            links += conn.execute(
                text(
                    f"DELETE FROM outcome_links l WHERE l.usage BETWEEN :lo AND :hi "
                    f"AND EXISTS (SELECT 1 FROM {part.name} p WHERE p.id = l.usage)"
                ),
                {"lo": lo, "hi": hi},
            ).rowcount
        conn.execute(text(f"ALTER TABLE usage_records DETACH PARTITION {part.name}"))
        conn.execute(text(f"DROP TABLE {part.name}"))
    return rows, links


def prune_keys(conn: Connection, final_us: int, *, limit: int = 50_000) -> int:
    """Delete up to ``limit`` idempotency keys of closed usage; returns how many.

    A closed record is refused by the watermark anyway, so its key only takes space. Kept
    out of the retention transaction (a month is millions of keys): the daemon prunes a
    batch at a time until none are left.
    """
    return conn.execute(
        text(
            f"DELETE FROM {KEYS_TABLE} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {KEYS_TABLE} WHERE ts_us < :final LIMIT :limit))"
        ),
        {"final": final_us, "limit": limit},
    ).rowcount
