"""The daily and weekly digest, queued in the outbox once per period (by the CLI or the daemon)."""

from __future__ import annotations

import time
from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo

from finops.app.budgets import budgets_in_force
from finops.app.ledger import Ledger
from finops.audit.digest import digest_lines, digest_message
from finops.notify.messages import SlackMessage
from finops.storage.alerts import enqueue
from finops.storage.db import write_transaction

__all__ = ["build_digest", "queue_digest"]


def build_digest(
    ledger: Ledger, *, period: Literal["daily", "weekly"], today: date, tz: ZoneInfo
) -> tuple[str, SlackMessage]:
    """The digest's period label and message for the budgets in force."""
    found = budgets_in_force(ledger, ledger.settings.budgets_dir)
    with ledger.engine.connect() as conn:
        label, lines = digest_lines(conn, found.budgets, period=period, today=today, tz=tz)
    return label, digest_message(period, label, lines)


def queue_digest(
    ledger: Ledger, *, period: Literal["daily", "weekly"], today: date, tz: ZoneInfo, channel: str | None
) -> tuple[str, bool]:
    """Queue the digest of the period before ``today``: once per period, whatever the replicas.

    Returns the period's label and whether this call queued it.
    """
    label, message = build_digest(ledger, period=period, today=today, tz=tz)
    with write_transaction(ledger.engine) as conn:
        queued = enqueue(
            conn,
            dedupe_key=f"digest:{period}:{label}",
            channel=channel or ledger.settings.slack_default_channel,
            payload={"type": "message", "text": message.text, "blocks": list(message.blocks)},
            now_us=time.time_ns() // 1000,
        )
    return label, queued
