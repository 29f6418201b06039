"""Scheduled jobs of the daemon: the daily digest, the monthly report, retention, provider polls.

Each job says which period is due now (or ``None``); a replica claims (job, period) in the database
before running it, so with several replicas each period runs once (storage/schedules.py).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from finops.daemon.database_outage import describe, unavailable
from finops.storage.db import write_transaction
from finops.storage.schedules import claim_run, finish_run
from finops.usecases.ledger import Ledger

__all__ = ["Job", "default_jobs", "owner_id", "run_due"]

log = logging.getLogger("finops.schedules")

#: A claim not finished after this long is taken to belong to a dead replica.
STALE_US = 15 * 60 * 1_000_000


@dataclass(frozen=True)
class Job:
    name: str
    due: Callable[[datetime], str | None]  # the period due at this instant, or None
    run: Callable[[Ledger, datetime, str], str]  # returns a line for the log


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _local(now: datetime, tz: ZoneInfo) -> datetime:
    return now.astimezone(tz)


def _after(now: datetime, tz: ZoneInfo, at: str) -> bool:
    hour, minute = (int(x) for x in at.split(":"))
    local = _local(now, tz)
    return (local.hour, local.minute) >= (hour, minute)


def _previous_month(day: date) -> str:
    last = day.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def default_jobs(ledger: Ledger, *, extra: tuple[Job, ...] = ()) -> list[Job]:
    """The jobs for these settings: Slack jobs only when a channel is set."""
    settings = ledger.settings
    tz = ZoneInfo(settings.schedule_tz)
    channel = settings.digest_channel or settings.slack_default_channel
    slack = settings.slack_bot_token is not None or settings.slack_webhook_url is not None
    jobs: list[Job] = [
        Job("retention", lambda now: now.astimezone(UTC).date().isoformat(), _retention),
        Job("partitions", lambda now: now.astimezone(UTC).date().isoformat(), _partitions),
    ]
    if slack and channel:

        def digest_due(now: datetime) -> str | None:
            return _local(now, tz).date().isoformat() if _after(now, tz, settings.digest_time) else None

        def report_due(now: datetime) -> str | None:
            """The previous month's report, from the 1st at the digest time: a daemon that was down
            on the 1st posts it when it comes back (the claim keeps it to once a month)."""
            local = _local(now, tz)
            if local.day == 1 and not _after(now, tz, settings.digest_time):
                return None
            return _previous_month(local.date())

        def digest(ledger: Ledger, now: datetime, period: str) -> str:
            from finops.render.digest_slack import digest_message
            from finops.usecases.digests import digest_for, queue_digest

            label, lines = digest_for(ledger, period="daily", today=date.fromisoformat(period), tz=tz)
            message = digest_message("daily", label, lines, public_url=settings.public_url)
            queued = queue_digest(ledger, period="daily", label=label, message=message, channel=channel)
            return f"digest {label} {'queued' if queued else 'was already queued'}"

        def report(ledger: Ledger, now: datetime, period: str) -> str:
            from finops.render.report_html import render_html
            from finops.render.report_slack import report_summary_message
            from finops.usecases.audit.monthly import build_monthly_report
            from finops.usecases.reports import queue_report

            if not _has_usage(ledger, period, tz):  # e.g. the month before a new install
                return f"report {period}: no usage that month, nothing posted"
            built = build_monthly_report(ledger, month=period, tz=tz)
            queued = queue_report(
                ledger,
                built.month,
                summary=report_summary_message(built),
                filename=f"finops-report-{period}.html",
                content=render_html(built),
                channel=channel,
                dedupe_key=f"report:scheduled:{period}",
            )
            return f"report {period} {'queued' if queued else 'was already queued'}"

        jobs += [Job("daily-digest", digest_due, digest), Job("monthly-report", report_due, report)]
    return [*jobs, *extra]


def _has_usage(ledger: Ledger, month: str, tz: ZoneInfo) -> bool:
    from sqlalchemy import select

    from finops.domain.periods import month_range
    from finops.storage.tables import rollups_hourly

    start, end = month_range(month, tz)
    h = rollups_hourly.c.hour
    stmt = select(h).where(h >= int(start.timestamp()), h < int(end.timestamp())).limit(1)
    with ledger.engine.connect() as conn:
        return conn.execute(stmt).first() is not None


def _retention(ledger: Ledger, now: datetime, period: str) -> str:
    from finops.usecases.retention import run_retention

    result = run_retention(ledger, now=now)
    final = datetime.fromtimestamp(result.final_before_us / 1e6, UTC).date().isoformat()
    closed = f"usage before {final} final" if result.final_before_us else "no usage old enough yet"
    return (
        f"{closed}: {result.usage_deleted} raw records deleted, "
        f"{result.dead_letters_deleted} dead letters, {result.previews_cleared} prompt previews, "
        f"{result.reservations_deleted} closed reservations"
        + (f", {result.keys_pruned} idempotency keys" if result.keys_pruned else "")
    )


def _partitions(ledger: Ledger, now: datetime, period: str) -> str:
    from finops.usecases.retention import prepare_partitions

    made = prepare_partitions(ledger, now=now)
    return f"partitions made: {', '.join(made)}" if made else "partitions ready"


def run_due(ledger: Ledger, jobs: list[Job], *, now: datetime, owner: str) -> list[tuple[str, str, str]]:
    """Run every job whose period is due and not yet claimed; returns (job, period, result)."""
    done: list[tuple[str, str, str]] = []
    for job in jobs:
        period = job.due(now)
        if period is None:
            continue
        now_us = time.time_ns() // 1000
        with write_transaction(ledger.engine) as conn:
            if not claim_run(
                conn, job=job.name, period=period, owner=owner, now_us=now_us, stale_us=STALE_US
            ):
                continue
        try:
            result = job.run(ledger, now, period)
        except Exception as exc:  # a failed job is retried once its claim goes stale
            if unavailable(exc):  # e.g. the read database of a report: one line, not a traceback
                log.warning(
                    "scheduled job failed: a database is unavailable",
                    extra={"job": job.name, "period": period, "cause": describe(exc)},
                )
            else:
                log.exception("scheduled job failed", extra={"job": job.name, "period": period})
            done.append((job.name, period, f"failed: {exc}"))
            continue
        with write_transaction(ledger.engine) as conn:
            finish_run(
                conn, job=job.name, period=period, owner=owner, now_us=time.time_ns() // 1000, result=result
            )
        log.info("scheduled job done", extra={"job": job.name, "period": period, "result": result})
        done.append((job.name, period, result))
    return done
