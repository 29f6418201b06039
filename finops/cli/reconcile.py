"""``finops poll`` and ``finops reconcile``: the providers' own reports against finops's ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from finops.cli.common import DbOpt, ledger_for, out
from finops.domain.money import format_usd, usd_to_nanos
from finops.errors import ConfigError, UsageError

__all__ = ["poll", "reconcile", "register"]

_PROVIDERS = ("openai", "anthropic")


class ReconcileFormat(StrEnum):
    table = "table"
    json = "json"


ProviderOpt = Annotated[str | None, typer.Option("--provider", help="openai or anthropic (default: both).")]


def _provider(name: str | None) -> str | None:
    if name is not None and name not in _PROVIDERS:
        raise UsageError(f"--provider must be openai or anthropic, got {name!r}")
    return name


def poll(provider: ProviderOpt = None, db: DbOpt = None) -> None:
    """Fetch the providers' usage and cost reports once (the daemon does this every poll interval)."""
    from finops.usecases.pollers import poll_all

    wanted = _provider(provider)
    ledger = ledger_for(db, create=True)  # loading reports into a new database is a start
    try:
        summaries = poll_all(ledger, ledger.settings, providers=(wanted,) if wanted else _PROVIDERS)
    finally:
        ledger.close()
    if all(s.skipped for s in summaries):
        raise ConfigError(
            "no admin key is set: set FINOPS_OPENAI_ADMIN_KEY (sk-admin-...) or FINOPS_ANTHROPIC_ADMIN_KEY "
            "(sk-ant-admin...)"
        )
    for summary in summaries:
        typer.echo(str(summary), err=summary.error is not None)
    if any(s.error for s in summaries):
        raise typer.Exit(1)


def _usd(nanos: int | None, exact: bool) -> str | None:
    if nanos is None:
        return None if exact else "-"
    sign = "-" if nanos < 0 else ""
    return sign + format_usd(abs(nanos), cents=not exact)


def reconcile(
    month: Annotated[
        str | None, typer.Option("--month", help="YYYY-MM, UTC days (default: this month).")
    ] = None,
    provider: ProviderOpt = None,
    fmt: Annotated[ReconcileFormat, typer.Option("--format", help="table or json.")] = ReconcileFormat.table,
    alert: Annotated[
        bool, typer.Option("--alert", help="Queue and send Slack alerts for final days past the thresholds.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Per provider and UTC day: metered cost, the provider's billed cost, the drift and its likely causes."""
    from finops.domain.periods import month_range
    from finops.domain.reconcile import past_threshold
    from finops.usecases.reconcile import alert_drift, reconcile_month

    label = month or f"{datetime.now(UTC):%Y-%m}"
    try:
        month_range(label, ZoneInfo("UTC"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ledger = ledger_for(db)
    settings = ledger.settings
    report = reconcile_month(ledger, label, provider=_provider(provider))
    threshold, min_nanos = settings.reconcile_threshold_pct, usd_to_nanos(settings.reconcile_min_usd)
    flagged = [past_threshold(r, threshold_pct=threshold, min_nanos=min_nanos) for r in report.rows]
    alerted = None
    if alert:
        from finops.notify.slack import sender_for
        from finops.usecases.alerts import deliver

        queued = alert_drift(ledger, label, now=datetime.now(UTC))
        result = deliver(ledger, sender_for(settings))
        alerted = f"alerts: {len(queued)} queued, {result.sent} sent, {result.failed} failed"
    ledger.close()
    exact = fmt is ReconcileFormat.json
    rows = [
        {
            "provider": r.provider,
            "day": r.day.isoformat(),
            "metered_usd": _usd(r.metered.cost_nanos, exact),
            "reported_usd": _usd(r.reported.cost_nanos, exact),
            "drift_usd": _usd(r.drift_nanos, exact),
            "drift_pct": None if r.drift_pct is None else str(r.drift_pct),
            "metered_tokens": r.metered.tokens,
            "reported_tokens": r.reported.tokens,
            "unpriced_records": r.metered.unpriced_records,
            "past_threshold": past,
            "causes": [{"cause": c.name, "detail": c.detail} for c in r.causes],
        }
        for r, past in zip(report.rows, flagged, strict=True)
    ]
    totals = {
        p: {
            "metered_usd": _usd(t.metered_nanos, exact),
            "reported_usd": _usd(t.reported_nanos, exact),
            "drift_usd": _usd(t.drift_nanos, exact),
        }
        for p, t in sorted(report.totals().items())
    }
    if exact:
        doc: dict[str, Any] = {
            "month": label,
            "thresholds": {"pct": str(threshold), "min_usd": str(Decimal(settings.reconcile_min_usd))},
            "rows": rows,
            "totals": totals,
        }
        if alerted:
            doc["alerts"] = alerted
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    _table(label, rows, totals, threshold, settings.reconcile_min_usd)
    if alerted:
        typer.echo(alerted)


def _table(
    label: str, rows: list[dict[str, Any]], totals: dict[str, dict[str, Any]], pct: Decimal, min_usd: Decimal
) -> None:
    console = out()
    if not rows:
        console.print(
            f"Nothing to reconcile in {label}: no provider reports. Set FINOPS_OPENAI_ADMIN_KEY or "
            "FINOPS_ANTHROPIC_ADMIN_KEY and run `finops poll`.",
            markup=False,
        )
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, title=f"Provider cost vs metered, {label} (UTC days)")
    for name in ("provider", "day", "metered_usd", "reported_usd", "drift_usd", "drift_pct", "causes"):
        table.add_column(name, justify="left" if name in ("provider", "day", "causes") else "right")
    for row in rows:
        mark = " !" if row["past_threshold"] else ""
        drift_pct = "-" if row["drift_pct"] is None else f"{row['drift_pct']}%"
        table.add_row(
            row["provider"],
            row["day"],
            row["metered_usd"],
            row["reported_usd"],
            row["drift_usd"] + mark,
            drift_pct,
            ", ".join(c["cause"] for c in row["causes"]),
        )
    for provider, t in totals.items():
        table.add_row(f"{provider} total", "", t["metered_usd"], t["reported_usd"], t["drift_usd"], "", "")
    console.print(table)
    flagged = [r for r in rows if r["past_threshold"]]
    console.print(
        f"{len(flagged)} day(s) marked ! drift more than {pct}% and more than ${min_usd} "
        "(FINOPS_RECONCILE_THRESHOLD_PCT, FINOPS_RECONCILE_MIN_USD)",
        markup=False,
    )
    for row in flagged:
        for cause in row["causes"]:
            console.print(
                f"  {row['provider']} {row['day']}: {cause['cause']}: {cause['detail']}", markup=False
            )


def register(app: typer.Typer) -> None:
    app.command("poll")(poll)
    app.command("reconcile")(reconcile)
