"""The retention job: keep raw usage for FINOPS_RETENTION_DAYS, previews for their own horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finops.storage.db import write_transaction
from finops.storage.retention import RetentionResult, apply_retention
from finops.usecases.ledger import Ledger

__all__ = ["run_retention"]


def run_retention(ledger: Ledger, *, now: datetime) -> RetentionResult:
    """Close and delete raw usage before the start of the UTC day ``retention_days`` ago.

    Whole UTC days, so a daily rollup is never half raw, half deleted.
    """
    settings = ledger.settings
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    usage_before = today - timedelta(days=settings.retention_days)
    preview_before = today - timedelta(days=settings.prompt_preview_retention_days)
    with write_transaction(ledger.engine) as conn:
        return apply_retention(
            conn,
            usage_before_us=int(usage_before.timestamp()) * 1_000_000,
            preview_before_day=int(preview_before.timestamp()),
            dead_letters_before_us=int(usage_before.timestamp()) * 1_000_000,
            reservations_before_us=int(usage_before.timestamp()) * 1_000_000,
        )
