"""Which provider pollers the daemon runs (those whose admin key is set), each claimed per poll
interval in the database so several replicas poll a provider once, not once each."""

from __future__ import annotations

import time
from datetime import datetime

from finops.daemon.cycle import Poller
from finops.daemon.schedules import Job, owner_id
from finops.errors import IngestError
from finops.settings import Settings
from finops.storage.db import write_transaction
from finops.storage.schedules import claim_run, finish_run
from finops.usecases.ledger import Ledger

__all__ = ["configured_pollers", "reconcile_job"]


def _poller(provider: str, settings: Settings) -> Poller:
    def poll(ledger: Ledger, now: datetime) -> str:
        from finops.usecases.pollers import poll_all

        slot = str(int(now.timestamp() // settings.poll_interval_s))
        owner = owner_id()
        stale_us = int(settings.poll_interval_s * 1_000_000)
        with write_transaction(ledger.engine) as conn:
            if not claim_run(
                conn, job=f"poll:{provider}", period=slot, owner=owner, now_us=_us(), stale_us=stale_us
            ):
                return "polled by another replica this interval"
        summary = poll_all(ledger, settings, now=now, providers=(provider,))[0]
        with write_transaction(ledger.engine) as conn:
            finish_run(
                conn, job=f"poll:{provider}", period=slot, owner=owner, now_us=_us(), result=str(summary)
            )
        if summary.error:
            raise IngestError(str(summary))  # counted as a failed poll; the cursor says where to resume
        return str(summary)

    return poll


def _us() -> int:
    return time.time_ns() // 1000


def configured_pollers(settings: Settings) -> dict[str, Poller]:
    pollers: dict[str, Poller] = {}
    if settings.openai_admin_key is not None:
        pollers["openai"] = _poller("openai", settings)
    if settings.anthropic_admin_key is not None:
        pollers["anthropic"] = _poller("anthropic", settings)
    return pollers


def reconcile_job(settings: Settings) -> Job | None:
    """Once a UTC day, alert the provider days whose drift passed the thresholds (when polling)."""
    if settings.openai_admin_key is None and settings.anthropic_admin_key is None:
        return None

    def run(ledger: Ledger, now: datetime, period: str) -> str:
        from finops.usecases.reconcile import alert_drift

        drifts = alert_drift(ledger, now=now)
        return f"{len(drifts)} provider day(s) past the drift thresholds alerted"

    return Job("reconcile", lambda now: now.date().isoformat(), run)
