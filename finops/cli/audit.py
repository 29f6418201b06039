"""``finops outcomes``, ``finops prompts top``, ``finops report monthly``: the token audit for people."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from finops.cli.common import DbOpt, Format, TzOpt, ledger_for, out, zone
from finops.domain.money import format_usd
from finops.errors import UsageError

__all__ = ["prompts_app", "register", "report_app"]

prompts_app = typer.Typer(
    help="The prompt audit: the costliest prompts and what changed.", no_args_is_help=True
)
report_app = typer.Typer(help="The monthly token audit report.", no_args_is_help=True)

MonthOpt = Annotated[
    str | None,
    typer.Option("--month", help="YYYY-MM (default: the last complete month; the current one is partial)."),
]


class ReportFormat(StrEnum):
    md = "md"
    html = "html"
    json = "json"
    csv = "csv"


def _month(month: str | None, tz: str) -> str:
    """``--month``, or the last complete month in ``tz`` (a month still running is partial)."""
    from finops.domain.periods import month_range
    from finops.usecases.audit.monthly import last_complete_month

    label = month or last_complete_month(datetime.now(UTC), zone(tz))
    try:
        month_range(label, zone(tz))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return label


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _money(nanos: int | None, exact: bool) -> str:
    return "" if nanos is None else format_usd(nanos, cents=not exact)


def _emit(rows: list[dict[str, Any]], fmt: Format, columns: list[str], doc: dict[str, Any]) -> None:
    if fmt is Format.json:
        typer.echo(json.dumps({**doc, "rows": rows}, indent=2, ensure_ascii=False))
        return
    if fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(buf.getvalue(), nl=False)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for name in columns:
        table.add_column(
            name, justify="left" if name in ("flow", "prompt", "flags") else "right", overflow="fold"
        )
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    out().print(table)


def outcomes(
    by: Annotated[str, typer.Option("--by", help="flow (the only grouping for now).")] = "flow",
    month: MonthOpt = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    tz: TzOpt = "UTC",
    db: DbOpt = None,
) -> None:
    """Cost per successful outcome per flow: spend (failed calls too) / successes, and the trend."""
    from finops.domain.periods import month_range
    from finops.storage.db import write_transaction
    from finops.storage.outcomes import relink_unlinked
    from finops.usecases.audit.monthly import previous_month
    from finops.usecases.audit.outcomes import flow_outcomes

    if by != "flow":
        raise UsageError("outcomes are grouped --by flow")
    label = _month(month, tz)
    start, end = month_range(label, zone(tz))
    p_start, p_end = month_range(previous_month(label), zone(tz))
    ledger = ledger_for(db)
    with write_transaction(ledger.engine) as conn:
        relink_unlinked(conn, since_us=int(p_start.timestamp() * 1e6), until_us=int(end.timestamp() * 1e6))
    with ledger.read_engine.connect() as conn:  # a replica may not show that relink yet: it follows
        lines = flow_outcomes(conn, start=start, end=end, prev_start=p_start, prev_end=p_end)
    ledger.close()
    exact = fmt is not Format.table
    rows = [
        {
            "flow": o.flow,
            "cost_usd": _money(o.cost_nanos, exact),
            "outcomes": o.outcomes,
            "successes": o.successes,
            "success_rate": _pct(o.success_rate) if not exact else o.success_rate,
            "cost_per_success_usd": _money(o.cost_per_success_nanos, exact) or "no successes",
            "cost_per_attempt_usd": _money(o.cost_per_attempt_nanos, exact),
            "value_per_dollar": ""
            if not o.value_nanos or not o.cost_nanos
            else f"{o.value_nanos / o.cost_nanos:.2f}",
            "prev_cost_per_success_usd": _money(o.prev_cost_per_success_nanos, exact),
        }
        for o in lines
    ]
    columns = [
        "flow",
        "cost_usd",
        "outcomes",
        "successes",
        "success_rate",
        "cost_per_success_usd",
        "cost_per_attempt_usd",
        "value_per_dollar",
        "prev_cost_per_success_usd",
    ]
    if not rows and fmt is Format.table:
        out().print(
            f"No outcomes in {label}. Send them with `finops ingest FILE --kind outcomes`.", markup=False
        )
        return
    _emit(rows, fmt, columns, {"month": label, "timezone": tz})


@prompts_app.command("top")
def prompts_top(
    n: Annotated[int, typer.Option("-n", "--top", min=1, max=1000, help="How many prompts.")] = 20,
    month: MonthOpt = None,
    flow: Annotated[list[str] | None, typer.Option("--flow", help="Only these flows.")] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column (last month, flows, models); names not cut.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """The N costliest prompts of a month (UTC days), flagged NEW, GROWING or BLOATED."""
    from finops.render.prompts_table import prompts_table
    from finops.usecases.audit.monthly import report_period
    from finops.usecases.audit.prompts import PromptAuditOptions, previous_is_base, top_prompts
    from finops.usecases.spend import SpendQuery, run_spend

    label = _month(month, "UTC")
    utc = zone("UTC")
    period = report_period(label, utc, datetime.now(UTC))
    start, end, p_start, p_end = period.start, period.end, period.prev_start, period.prev_end
    ledger = ledger_for(db)
    with ledger.read_engine.connect() as conn:
        total = run_spend(conn, SpendQuery(start=start, end=end, flows=tuple(flow or ()))).total["cost_nanos"]
        base = previous_is_base(conn, start, end, p_start, p_end)
        lines = top_prompts(
            conn,
            start=start,
            end=end,
            prev_start=p_start,
            prev_end=p_end,
            total_nanos=total,
            options=PromptAuditOptions(top=n, flows=tuple(flow or ()), prev_is_base=base),
        )
    ledger.close()
    if fmt is Format.table and lines:
        if period.partial:
            typer.echo(f"{label}, partial ({period.partial}), compared with {period.compared_days}")
        typer.echo(prompts_table(lines, base=base, wide=wide), nl=False)
        return
    exact = fmt is not Format.table
    rows = [
        {
            "prompt": p.prompt,
            "cost_usd": _money(p.cost_nanos, exact) if p.cost_known else None,
            "unpriced_records": p.unpriced_records,
            "share": None if not p.cost_known else f"{p.share:.1%}" if not exact else f"{p.share:.6f}",
            "calls": p.calls,
            "avg_input_tokens": p.avg_input_tokens,
            "avg_output_tokens": p.avg_output_tokens,
            "cache_hit": f"{p.cache_hit_ratio:.0%}" if not exact else f"{p.cache_hit_ratio:.6f}",
            "success_rate": _pct(p.success_rate) if not exact else p.success_rate,
            "flows": ",".join(p.flows),
            "models": ",".join(p.models),
            "prev_cost_usd": _money(p.prev_cost_nanos, exact),
            "flags": " ".join(p.flags),
        }
        for p in lines
    ]
    columns = [
        "prompt",
        "cost_usd",
        "share",
        "calls",
        "avg_input_tokens",
        "avg_output_tokens",
        "cache_hit",
        "success_rate",
        "flows",
        "models",
        "prev_cost_usd",
        "flags",
        "unpriced_records",
    ]
    if not rows and fmt is Format.table:
        out().print(
            f"No prompts with spend in {label}: send prompt_id (or prompt text) with usage.", markup=False
        )
        return
    doc = {"month": label, "total_usd": format_usd(total), "partial": period.partial}
    _emit(rows, fmt, columns, doc | {"previous_is_base": base})


@report_app.command("monthly")
def report_monthly(
    month: MonthOpt = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="md, html, json or csv.")] = ReportFormat.md,
    out_path: Annotated[Path | None, typer.Option("--out", help="File to write (csv: a folder).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=200, help="Prompts in the top list.")] = 20,
    post_slack: Annotated[
        bool, typer.Option("--post-slack", help="Post a summary and the report file.")
    ] = False,
    channel: Annotated[
        str | None,
        typer.Option(
            help="Slack channel for --post-slack (default FINOPS_DIGEST_CHANNEL, else "
            "FINOPS_SLACK_DEFAULT_CHANNEL).",
        ),
    ] = None,
    tz: TzOpt = "UTC",
    db: DbOpt = None,
) -> None:
    """The monthly token audit: spend and deltas, breaches, cost per outcome, top prompts, findings."""
    from finops.usecases.audit.monthly import build_monthly_report

    label = _month(month, tz)
    ledger = ledger_for(db)
    if post_slack:  # before any work: a report with nowhere to go is an error, not a queued alert
        from finops.errors import ConfigError

        channel = channel or ledger.settings.digest_channel or ledger.settings.slack_default_channel
        if not channel:
            ledger.close()
            raise ConfigError("set FINOPS_DIGEST_CHANNEL or pass --channel")
    report = build_monthly_report(ledger, month=label, tz=zone(tz), top=top)
    files = _render(report, fmt)
    if out_path is None and fmt is not ReportFormat.csv:
        typer.echo(next(iter(files.values())), nl=False)
    else:
        target = out_path or Path(f"finops-report-{label}")
        written = _write(files, target, fmt)
        typer.echo(f"wrote {', '.join(str(p) for p in written)}")
    if post_slack:
        from finops.render.report_slack import report_summary_message
        from finops.usecases.reports import post_report

        name, body = next(
            iter(_render(report, ReportFormat.html if fmt is ReportFormat.csv else fmt).items())
        )
        result = post_report(
            ledger,
            report.month,
            summary=report_summary_message(report),
            filename=name,
            content=body,
            channel=channel,
        )
        printed = out_path is None and fmt is not ReportFormat.csv
        typer.echo(("\n" if printed and not body.endswith("\n") else "") + result)  # not glued to the JSON
    ledger.close()


def _render(report: Any, fmt: ReportFormat) -> dict[str, str]:
    from finops.render.report_data import report_to_csv, report_to_json
    from finops.render.report_html import render_html
    from finops.render.report_text import render_markdown

    stem = f"finops-report-{report.month}"
    if fmt is ReportFormat.md:
        return {f"{stem}.md": render_markdown(report)}
    if fmt is ReportFormat.html:
        return {f"{stem}.html": render_html(report)}
    if fmt is ReportFormat.json:
        return {f"{stem}.json": report_to_json(report)}
    return dict(report_to_csv(report))


def _write(files: dict[str, str], target: Path, fmt: ReportFormat) -> list[Path]:
    if fmt is ReportFormat.csv:
        target.mkdir(parents=True, exist_ok=True)
        paths = [target / name for name in files]
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        paths = [target]
    for path, body in zip(paths, files.values(), strict=True):
        path.write_text(body, encoding="utf-8")
    return paths


class DigestPeriod(StrEnum):
    daily = "daily"
    weekly = "weekly"


class DigestFormat(StrEnum):
    text = "text"
    blocks = "blocks"


def digest(
    period: Annotated[
        DigestPeriod, typer.Option("--period", help="daily (yesterday) or weekly (7 days).")
    ] = (DigestPeriod.daily),
    post_slack: Annotated[bool, typer.Option("--post-slack", help="Post it (once per period).")] = False,
    channel: Annotated[
        str | None, typer.Option(help="Slack channel (default FINOPS_SLACK_DEFAULT_CHANNEL).")
    ] = None,
    fmt: Annotated[
        DigestFormat, typer.Option("--format", help="text (for people) or blocks (the Slack Block Kit JSON).")
    ] = DigestFormat.text,
    tz: TzOpt = "UTC",
    db: DbOpt = None,
) -> None:
    """Per flow (top 5): spend against cap, cost per success, change vs the period before."""
    from finops.render.digest_slack import digest_message, digest_text
    from finops.usecases.digests import digest_for, queue_digest

    ledger = ledger_for(db)
    tzinfo = zone(tz)
    today = datetime.now(UTC).astimezone(tzinfo).date()
    label, lines = digest_for(ledger, period=period.value, today=today, tz=tzinfo)
    message = digest_message(period.value, label, lines, public_url=ledger.settings.public_url)
    if not post_slack:
        if fmt is DigestFormat.blocks:
            typer.echo(
                json.dumps(
                    {"text": message.text, "blocks": list(message.blocks)}, indent=2, ensure_ascii=False
                )
            )
        else:
            typer.echo(digest_text(period.value, label, lines), nl=False)
        ledger.close()
        return
    from finops.notify.slack import sender_for
    from finops.usecases.alerts import deliver

    queue_digest(ledger, period=period.value, label=label, message=message, channel=channel)
    result = deliver(ledger, sender_for(ledger.settings))
    ledger.close()
    typer.echo(f"digest {label}: delivered {result.sent}, failed {result.failed}, retrying {result.retrying}")
    for problem in result.problems:
        typer.echo(f"not delivered: {problem}", err=True)


def register(app: typer.Typer) -> None:
    app.command("digest")(digest)
    app.command("outcomes")(outcomes)
    app.add_typer(prompts_app, name="prompts")
    app.add_typer(report_app, name="report")
