"""Re-pricing a past period after a price correction, and what it changed.

Runs in chunks, one transaction each: the rows are locked, re-priced with the
book in force, and each changed row moves its old cost out of its rollup and
its new cost in, so rollups always equal the sum of their records.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from finops.domain.pricing import PriceMatch
from finops.domain.usage import UsageRecord
from finops.storage.db import write_transaction
from finops.storage.ledger import add_to_rollups, record_price_versions
from finops.storage.retention import hold_retention_lock
from finops.storage.tables import USAGE_COLUMNS, usage_records
from finops.usecases.ledger import Ledger
from finops.usecases.pricing import price_record

__all__ = ["RepriceReport", "reprice"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COST = USAGE_COLUMNS.index("cost_nanos")


@dataclass
class ModelChange:
    records: int = 0
    old_nanos: int = 0
    new_nanos: int = 0
    newly_priced: int = 0
    newly_unpriced: int = 0


@dataclass
class RepriceReport:
    """Totals before and after, and per provider/model what moved."""

    examined: int = 0
    changed: int = 0
    old_nanos: int = 0
    new_nanos: int = 0
    by_model: dict[str, ModelChange] = field(default_factory=lambda: defaultdict(ModelChange))

    @property
    def delta_nanos(self) -> int:
        return self.new_nanos - self.old_nanos


def reprice(
    ledger: Ledger,
    *,
    since: datetime,
    until: datetime | None = None,
    dry_run: bool = False,
    chunk: int = 5000,
) -> RepriceReport:
    """Recompute the cost of every record in [since, until) with the current price book."""
    report = RepriceReport()
    book = ledger.book  # loaded before the first transaction: loading reads the database
    t = usage_records.c
    last_id = 0
    lo = int((since - _EPOCH) / timedelta(microseconds=1))
    hi = int((until - _EPOCH) / timedelta(microseconds=1)) if until else None
    while True:
        with write_transaction(ledger.engine) as conn:
            if not dry_run:
                # Alone (PostgreSQL), before any row: a batch adds to the same rollup and source
                # rows in another order (source, per-prompt, daily, hourly), and each would wait
                # for a row the other holds; PostgreSQL killed one of them as a deadlock.
                hold_retention_lock(conn, shared=False)
            stmt = select(t.id, *(t[c] for c in USAGE_COLUMNS)).where(t.ts_us >= lo, t.id > last_id)
            if hi is not None:
                stmt = stmt.where(t.ts_us < hi)
            stmt = stmt.order_by(t.id).limit(chunk)
            if not dry_run:
                stmt = stmt.with_for_update()
            fetched = list(conn.execute(stmt))
            if not fetched:
                break
            last_id = fetched[-1][0]
            old_rows: list[tuple[Any, ...]] = []
            new_rows: list[tuple[Any, ...]] = []
            updates: list[dict[str, Any]] = []
            matches: dict[str, PriceMatch] = {}
            for rid, *values in fetched:
                row = dict(zip(USAGE_COLUMNS, values, strict=True))
                report.examined += 1
                cost, match = price_record(book, _record(row))
                version = match.version if match else None
                old = row["cost_nanos"]
                report.old_nanos += old or 0
                report.new_nanos += cost or 0
                if old == cost and row["price_version"] == version:
                    continue
                report.changed += 1
                change = report.by_model[f"{row['provider']}/{row['model']}"]
                change.records += 1
                change.old_nanos += old or 0
                change.new_nanos += cost or 0
                change.newly_priced += old is None and cost is not None
                change.newly_unpriced += old is not None and cost is None
                if match is not None:
                    matches[match.version] = match
                old_rows.append(tuple(values))
                new_rows.append((*values[:_COST], cost, *values[_COST + 1 :]))
                updates.append({"rid": rid, "cost": cost, "version": version})
            if updates and not dry_run:
                now = time.time_ns() // 1000
                record_price_versions(conn, matches.values(), now_us=now)
                conn.execute(
                    update(usage_records)
                    .where(t.id == bindparam("rid"))
                    .values(cost_nanos=bindparam("cost"), price_version=bindparam("version")),
                    updates,
                )
                add_to_rollups(conn, old_rows, sign=-1)
                add_to_rollups(conn, new_rows)
    return report


def _record(row: dict[str, Any]) -> UsageRecord:
    """Enough of a stored row to price it again."""
    return UsageRecord(
        id=row["record_id"],
        ts=_EPOCH + timedelta(microseconds=row["ts_us"]),
        model=row["model"],
        provider=row["provider"],
        service_tier=row["service_tier"],
        input_tokens=row["input_tokens"],
        cached_input_tokens=row["cached_input_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        cache_write_1h_tokens=row["cache_write_1h_tokens"],
        output_tokens=row["output_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
    )
