"""Posting the monthly report to Slack through the alert outbox (the same reliable delivery).

The caller renders the summary and the file (``finops.render``); this queues and delivers them.
"""

from __future__ import annotations

import hashlib
import time

from finops.notify.messages import SlackMessage
from finops.notify.slack import sender_for
from finops.storage import alerts as outbox
from finops.storage.db import write_transaction
from finops.usecases.alerts import deliver
from finops.usecases.ledger import Ledger

__all__ = ["post_report", "queue_report"]


def queue_report(
    ledger: Ledger,
    month: str,
    *,
    summary: SlackMessage,
    filename: str,
    content: str,
    channel: str | None,
    dedupe_key: str | None = None,
) -> bool:
    """Queue the summary and the file in the outbox; ``False`` when ``dedupe_key`` was queued before.

    On demand, every call posts (the key carries the time); the daemon's schedule passes one key
    per month, so replicas and restarts post a month's report once.
    """
    digest = hashlib.sha256(content.encode()).hexdigest()[:12]
    payload = {
        "type": "report",
        "summary": {"text": summary.text, "blocks": list(summary.blocks)},
        "filename": filename,
        "content": content,
        "title": f"finops token audit {month}",
    }
    now_us = time.time_ns() // 1000
    with write_transaction(ledger.engine) as conn:
        return outbox.enqueue(
            conn,
            dedupe_key=dedupe_key or f"report:{month}:{digest}:{now_us}",
            channel=channel or ledger.settings.slack_default_channel,
            payload=payload,
            now_us=now_us,
        )


def post_report(
    ledger: Ledger, month: str, *, summary: SlackMessage, filename: str, content: str, channel: str | None
) -> str:
    """Queue the summary and the file, then deliver; returns a line saying what happened."""
    queue_report(ledger, month, summary=summary, filename=filename, content=content, channel=channel)
    result = deliver(ledger, sender_for(ledger.settings))
    if result.sent:
        return f"posted the {month} report to Slack"
    problems = "; ".join(result.problems) or "it will be retried by `finops alerts run`"
    return f"the {month} report was not posted yet: {problems}"
