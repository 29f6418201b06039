"""One breach alert queued in the outbox, as evaluation queues it: the fault tests of Slack
delivery (items 2 and 3) start from it."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from sqlalchemy import select

from finops.notify.messages import AlertMessage, render_alert
from finops.storage import alerts as outbox
from finops.storage.db import write_transaction
from finops.storage.tables import alert_outbox
from finops.usecases.ledger import Ledger

CHANNEL = "#support-ai-costs"
KEY = "breach:1"


def queue_alert(ledger: Ledger, *, now_us: int) -> int:
    """A threshold alert (one Slack message) in the outbox since ``now_us``; its outbox id."""
    message = AlertMessage(
        kind="threshold",
        budget_key="support-gpt-en",
        flow="support-gpt-en",
        owner="U0DANA123",
        channel=CHANNEL,
        period="2026-11-03 (Europe/Berlin)",
        spend_nanos=85_000_000_000,
        cap_nanos=100_000_000_000,
        threshold=Decimal("0.8"),
    )
    assert len(render_alert(message)) == 1
    payload = {k: str(v) if isinstance(v, Decimal) else v for k, v in dataclasses.asdict(message).items()}
    with write_transaction(ledger.engine) as conn:
        assert outbox.enqueue(conn, dedupe_key=KEY, channel=CHANNEL, payload=payload, now_us=now_us)
        return int(conn.execute(select(alert_outbox.c.id)).scalar_one())
