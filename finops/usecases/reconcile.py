"""Reconcile a month: metered cost per provider and UTC day against the providers' own reports.

Metered figures come from ``rollups_daily`` (UTC days, every status: failed calls are billed
too); reported ones from ``provider_costs`` (USD lines only) and ``provider_usage``. Only
providers that reported something that month are shown, unless one is asked for by name:
finops cannot reconcile a provider it has no report from.

Alerts (:func:`alert_drift`) go out once per provider and day, and only for days the
poller has taken as final, so a day still being revised never raises a false alarm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from finops.domain.money import format_usd, usd_to_nanos
from finops.domain.periods import month_range
from finops.domain.reconcile import Drift, MeteredDay, ReportedDay, past_threshold, reconcile_day
from finops.notify.blockkit import context, fit, header, section
from finops.storage.alerts import enqueue
from finops.storage.db import write_transaction
from finops.storage.provider_reports import read_cursor
from finops.storage.tables import poller_cursors, provider_costs, provider_usage, rollups_daily
from finops.usecases.ledger import Ledger

__all__ = ["ReconcileReport", "Totals", "alert_drift", "drift_message", "reconcile_month"]


@dataclass
class Totals:
    metered_nanos: int = 0
    reported_nanos: int = 0

    @property
    def drift_nanos(self) -> int:
        return self.reported_nanos - self.metered_nanos


@dataclass
class ReconcileReport:
    """Every provider day of a month with its drift and causes, and totals per provider."""

    month: str
    rows: list[Drift] = field(default_factory=list)

    def totals(self) -> dict[str, Totals]:
        """Per provider over the days that have a cost report (a day without one cannot drift)."""
        out: dict[str, Totals] = {}
        for row in self.rows:
            t = out.setdefault(row.provider, Totals())
            if row.reported.cost_nanos is not None:
                t.metered_nanos += row.metered.cost_nanos
                t.reported_nanos += row.reported.cost_nanos
        return out


def _day(epoch_s: int) -> date:
    return datetime.fromtimestamp(epoch_s, UTC).date()


def _metered(conn: Connection, start_s: int, end_s: int, providers: set[str] | None) -> dict[Any, MeteredDay]:
    r = rollups_daily.c
    query = (
        select(
            r.provider,
            r.day,
            func.sum(r.cost_nanos),
            func.sum(r.input_tokens),
            func.sum(r.output_tokens),
            func.sum(r.records),
            func.sum(r.unpriced_records),
        )
        .where(r.day >= start_s, r.day < end_s)
        .group_by(r.provider, r.day)
    )
    if providers is not None:
        query = query.where(r.provider.in_(sorted(providers)))
    return {
        (p, _day(int(d))): MeteredDay(int(c or 0), int(i or 0), int(o or 0), int(n or 0), int(u or 0))
        for p, d, c, i, o, n, u in conn.execute(query)
    }


def _reported(
    conn: Connection, start_s: int, end_s: int, providers: set[str] | None
) -> dict[Any, ReportedDay]:
    c, u = provider_costs.c, provider_usage.c
    start_us, end_us = start_s * 1_000_000, end_s * 1_000_000
    costs = (
        select(c.provider, c.bucket_start_us, func.sum(c.amount_nanos))
        .where(c.bucket_start_us >= start_us, c.bucket_start_us < end_us, c.currency == "USD")
        .group_by(c.provider, c.bucket_start_us)
    )
    usage = (
        select(u.provider, u.bucket_start_us, func.sum(u.input_tokens), func.sum(u.output_tokens))
        .where(u.bucket_start_us >= start_us, u.bucket_start_us < end_us)
        .group_by(u.provider, u.bucket_start_us)
    )
    if providers is not None:
        costs = costs.where(c.provider.in_(sorted(providers)))
        usage = usage.where(u.provider.in_(sorted(providers)))
    found: dict[Any, dict[str, int]] = {}
    for p, start, amount in conn.execute(costs):
        found.setdefault((p, _day(int(start) // 1_000_000)), {})["cost_nanos"] = int(amount or 0)
    for p, start, i, o in conn.execute(usage):
        found.setdefault((p, _day(int(start) // 1_000_000)), {}).update(
            input_tokens=int(i or 0), output_tokens=int(o or 0)
        )
    return {key: ReportedDay(**values) for key, values in found.items()}


def reconcile_month(
    ledger: Ledger, month: str, *, provider: str | None = None, replica: bool = False
) -> ReconcileReport:
    """Every provider day of ``month`` (``2026-11``, UTC) with its drift; raises ValueError on a bad month.

    ``replica``: read from the read database (the dashboard shows it); drift alerts read the primary.
    """
    start, end = month_range(month, ZoneInfo("UTC"))
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    wanted = {provider} if provider else None
    with (ledger.read_engine if replica else ledger.engine).connect() as conn:
        reported = _reported(conn, start_s, end_s, wanted)
        reporting = {p for p, _ in reported} | (wanted or set())
        metered = _metered(conn, start_s, end_s, reporting)
    report = ReconcileReport(month)
    for key in sorted(set(metered) | set(reported)):
        p, day = key
        report.rows.append(
            reconcile_day(p, day, metered.get(key, MeteredDay()), reported.get(key, ReportedDay()))
        )
    return report


def _months(now: datetime) -> list[str]:
    first = now.astimezone(UTC).date().replace(day=1)
    before = first - timedelta(days=1)
    return [f"{before:%Y-%m}", f"{first:%Y-%m}"]


def drift_message(drift: Drift, month: str) -> dict[str, Any]:
    """The Slack message of one drifting day, as an outbox payload of type "message"."""
    assert drift.drift_nanos is not None and drift.reported.cost_nanos is not None
    name = {"openai": "OpenAI", "anthropic": "Anthropic"}.get(drift.provider, drift.provider)
    sign = "+" if drift.drift_nanos > 0 else "-"
    amount = f"{sign}${format_usd(abs(drift.drift_nanos), cents=True)}"
    pct = "n/a" if drift.drift_pct is None else f"{drift.drift_pct:+}%"
    text = (
        f"{name} billed ${format_usd(drift.reported.cost_nanos, cents=True)} on {drift.day}, finops metered "
        f"${format_usd(drift.metered.cost_nanos, cents=True)}: drift {amount} ({pct})"
    )
    causes = "\n".join(f"• *{fit(c.name, 80)}*: {fit(c.detail, 600)}" for c in drift.causes)
    blocks = [
        header(fit(f"Cost drift: {name} on {drift.day}", 150)),
        section(
            fields=[
                f"*Billed by {fit(name, 40)}*\n${format_usd(drift.reported.cost_nanos, cents=True)}",
                f"*Metered by finops*\n${format_usd(drift.metered.cost_nanos, cents=True)}",
                f"*Drift*\n{amount} ({pct})",
            ]
        ),
        section(f"*Likely causes*\n{causes}" if causes else "*Likely causes*\nnone found in the numbers"),
        context(f"`finops reconcile --month {month} --provider {fit(drift.provider, 40)}`"),
    ]
    return {"type": "message", "text": text, "blocks": blocks}


def _final_until(conn: Connection, provider: str) -> int:
    """Epoch seconds before which the poller holds this provider's costs as final (0: none yet)."""
    saved = read_cursor(conn, f"{provider}.costs")
    return 0 if saved is None else int(saved["next_start_us"]) // 1_000_000


def _final_cursors(conn: Connection) -> dict[str, int]:
    """:func:`_final_until` of every provider with a cost poller's cursor."""
    names = list(conn.scalars(select(poller_cursors.c.name).where(poller_cursors.c.name.like("%.costs"))))
    return {p: _final_until(conn, p) for p in (n.removesuffix(".costs") for n in names)}


def alert_drift(ledger: Ledger, month: str | None = None, *, now: datetime) -> list[Drift]:
    """Queue one Slack alert per provider day past both thresholds; returns the days newly queued.

    ``month`` ``None`` checks the month of ``now`` and the one before (the last days of a month
    become final on the 2nd or 3rd of the next). Only final days are alerted, once each
    (dedupe key ``reconcile:{provider}:{day}``), whatever the number of replicas or runs.
    The daemon calls this once a day.
    """
    settings = ledger.settings
    min_nanos = usd_to_nanos(settings.reconcile_min_usd)
    channel = settings.reconcile_channel or settings.slack_default_channel
    now_us = int(now.timestamp() * 1_000_000)
    queued: list[Drift] = []
    for label in [month] if month else _months(now):
        with ledger.engine.connect() as conn:
            # The cursors before the reports: a poll stores a day's final revision in the commit
            # that moves the cursor past it, so reports read after a cursor are at least as new.
            # Read after, a poll in between made a day final that the report shows an earlier
            # revision of: a false alert, and its dedupe key keeps the true one from being sent.
            final = _final_cursors(conn)
        report = reconcile_month(ledger, label)
        with write_transaction(ledger.engine) as conn:
            for drift in report.rows:
                day_start = int(
                    datetime(drift.day.year, drift.day.month, drift.day.day, tzinfo=UTC).timestamp()
                )
                if day_start + 86_400 > final.get(drift.provider, 0):
                    continue  # the provider may still revise it
                if not past_threshold(
                    drift, threshold_pct=settings.reconcile_threshold_pct, min_nanos=min_nanos
                ):
                    continue
                if enqueue(
                    conn,
                    dedupe_key=f"reconcile:{drift.provider}:{drift.day}",
                    channel=channel,
                    payload=drift_message(drift, label),
                    now_us=now_us,
                ):
                    queued.append(drift)
    return queued
