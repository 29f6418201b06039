"""The daily and weekly digest, queued in the outbox once per period (by the CLI or the daemon).

The numbers come from :func:`digest_for`; the caller words them (``finops.render.digest_slack``)
and queues the message with :func:`queue_digest`, so this layer never imports a presenter.
"""

from __future__ import annotations

import time
from datetime import date
from zoneinfo import ZoneInfo

from finops.notify.messages import SlackMessage
from finops.storage.alerts import enqueue
from finops.storage.db import write_transaction
from finops.usecases.audit.digest import DigestLine, Period, digest_lines
from finops.usecases.budgets import budgets_in_force
from finops.usecases.ledger import Ledger

__all__ = ["digest_for", "queue_digest"]


def digest_for(ledger: Ledger, *, period: Period, today: date, tz: ZoneInfo) -> tuple[str, list[DigestLine]]:
    """The digest's period label and lines for the budgets in force."""
    found = budgets_in_force(ledger, ledger.settings.budgets_dir)
    with ledger.read_engine.connect() as conn:
        label, lines = digest_lines(conn, found.budgets, period=period, today=today, tz=tz)
    return label, list(lines)


def queue_digest(
    ledger: Ledger, *, period: Period, label: str, message: SlackMessage, channel: str | None
) -> bool:
    """Queue the digest of the period ``label``: once per period, whatever the replicas.

    Returns whether this call queued it.
    """
    with write_transaction(ledger.engine) as conn:
        return enqueue(
            conn,
            dedupe_key=f"digest:{period}:{label}",
            channel=channel or ledger.settings.slack_default_channel,
            payload={"type": "message", "text": message.text, "blocks": list(message.blocks)},
            now_us=time.time_ns() // 1000,
        )
