"""The retention job: keep raw usage for FINOPS_RETENTION_DAYS, previews for their own horizon."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from finops.storage.db import write_transaction
from finops.storage.partitions import ensure_partitions, is_partitioned, prune_keys
from finops.storage.retention import RetentionResult, apply_retention
from finops.usecases.ledger import Ledger

__all__ = ["prepare_partitions", "run_retention"]

#: Seconds a retention run may spend deleting closed months' idempotency keys; the rest waits
#: for the next run (a month at 100M calls a year is about 8M keys).
KEY_PRUNE_SECONDS = 30.0


def prepare_partitions(ledger: Ledger, *, now: datetime) -> list[str]:
    """PostgreSQL: partitions for last month, this month and the next two, made if missing."""
    with write_transaction(ledger.engine) as conn:
        return ensure_partitions(conn, now)


def run_retention(ledger: Ledger, *, now: datetime) -> RetentionResult:
    """Close and delete raw usage before the start of the UTC day ``retention_days`` ago.

    Whole UTC days, so a daily rollup is never half raw, half deleted.
    """
    settings = ledger.settings
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    usage_before = today - timedelta(days=settings.retention_days)
    preview_before = today - timedelta(days=settings.prompt_preview_retention_days)
    with write_transaction(ledger.engine) as conn:
        result = apply_retention(
            conn,
            usage_before_us=int(usage_before.timestamp()) * 1_000_000,
            preview_before_day=int(preview_before.timestamp()),
            dead_letters_before_us=int(usage_before.timestamp()) * 1_000_000,
            reservations_before_us=int(usage_before.timestamp()) * 1_000_000,
        )
        partitioned = is_partitioned(conn)
    if not partitioned or not result.final_before_us:
        return result
    pruned, deadline = 0, time.monotonic() + KEY_PRUNE_SECONDS
    while time.monotonic() < deadline:  # a batch a transaction: writers are never held for long
        with write_transaction(ledger.engine) as conn:
            step = prune_keys(conn, result.final_before_us)
        pruned += step
        if step == 0:
            break
    return replace(result, keys_pruned=pruned)
