"""Commands for budgets at run time: `finops check`, `finops budgets status`,
`finops alerts run|list|resend|dismiss`.

Kept apart from cli.py so each file stays small; the same conventions apply:
parse, call app/, print; finops errors become exit codes in cli._FinopsGroup.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finops.cli.common import budgets_for, err_console, ledger_for, tag_pair
from finops.domain.money import format_usd
from finops.domain.words import plural
from finops.errors import UsageError

if TYPE_CHECKING:
    from finops.settings import Settings

__all__ = ["alerts_app", "check", "register"]

alerts_app = typer.Typer(
    help=(
        "Budget alerts: evaluate and deliver to Slack, list the outbox, decide about ambiguous sends. "
        "A send Slack did not answer is 'ambiguous': with a bot token finops looks for it in the "
        "channel and sends it again only if it is not there; with a webhook it cannot look, so "
        "`finops alerts list --status ambiguous` shows them and a person runs "
        "`finops alerts resend ID` or `finops alerts dismiss ID`."
    ),
    no_args_is_help=True,
)

#: `finops check` says "deny" with its own exit code, so a gateway can tell it from a broken finops (1).
DENY_EXIT = 4

DbOpt = Annotated[str | None, typer.Option("--db", help="SQLite file or database URL.")]
BudgetsOpt = Annotated[
    Path | None, typer.Option("--budgets", help="Budget directory (default FINOPS_BUDGETS_DIR).")
]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json.")]


def check(
    flow: Annotated[str, typer.Argument(help="The flow about to spend.")],
    estimate_usd: Annotated[str, typer.Option("--estimate-usd", help="What the next call may cost.")] = "0",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE tags of the call.")] = None,
    budgets: BudgetsOpt = None,
    db: DbOpt = None,
) -> None:
    """Allow or deny spending on FLOW now: exit 0 allow, 4 deny (1 is an error); JSON with the numbers."""
    from finops.render.budget_docs import check_document
    from finops.usecases.budgets import check_flow, flow_suggestion

    try:
        estimate = Decimal(estimate_usd)
    except InvalidOperation:
        raise UsageError(f"--estimate-usd takes a number of dollars, got {estimate_usd!r}") from None
    if not estimate.is_finite() or estimate < 0:
        raise UsageError(f"--estimate-usd takes a non-negative number of dollars, got {estimate_usd!r}")
    tags = dict(tag_pair(t) for t in tag or [])
    ledger = ledger_for(db)
    found = budgets_for(ledger, budgets)  # file messages straight to stderr: no rich for a check
    with ledger.engine.connect() as conn:
        result = check_flow(conn, found, flow=flow, tags=tags, now=datetime.now(UTC), estimate_usd=estimate)
        close = None if result.known_flow else flow_suggestion(conn, found, flow)
    ledger.close()
    if not result.known_flow:  # a typo in a flow name would otherwise be allowed without a word
        hint = f"did you mean {close!r}?" if close else "check its name (flow names are case-sensitive)"
        typer.echo(f"warning: flow {flow!r} has no usage and no budget; {hint}", err=True)
    doc = check_document(result)
    typer.echo(json.dumps(doc, indent=2))
    if result.decision == "deny":
        raise typer.Exit(DENY_EXIT)


def status(
    budgets: BudgetsOpt = None,
    fmt: FormatOpt = "table",
    db: DbOpt = None,
) -> None:
    """Every budget today, in its own time zone: spend, held by calls in flight (open
    reservations), cap, projection, state, what drives it."""
    from rich.console import Console
    from rich.table import Table

    from finops.render.budget_docs import state_document
    from finops.usecases.budgets import budget_state, drivers
    from finops.usecases.holds import held_now

    err = err_console()
    ledger = ledger_for(db)
    found = budgets_for(ledger, budgets, err)
    now = datetime.now(UTC)
    rows = []
    with ledger.engine.connect() as conn:
        held = held_now(conn, found, now)
        for budget in found:
            state = budget_state(conn, budget, now)
            rows.append((state, drivers(conn, budget, state.start, state.end)))
    ledger.close()
    if fmt == "json":
        typer.echo(
            json.dumps(
                [
                    {
                        **state_document(s, held[s.budget.key]),
                        "top_models": [{"model": m, "cost_usd": format_usd(c)} for m, c in d.models],
                        "top_prompts": [{"prompt": p, "cost_usd": format_usd(c)} for p, c in d.prompts],
                    }
                    for s, d in rows
                ],
                indent=2,
            )
        )
        return
    out = Console(highlight=False, width=None if Console().is_terminal else 200)
    if not rows:
        out.print(
            f"No budgets in {budgets or ledger.settings.budgets_dir}. See budgets/README.md.", markup=False
        )
        return
    table = Table(box=None, pad_edge=False)
    numbers = ("spend", "held", "cap", "%", "projected")
    for name in ("budget", "today", *numbers, "cap hit at", "state", "top model"):
        table.add_column(name, justify="right" if name in numbers else "left")
    style = {"ok": "green", "warning": "yellow", "breached": "bold red"}
    for s, d in rows:
        hit = s.projection.cap_hit_at
        table.add_row(
            s.budget.key,
            f"{s.local_day} {s.budget.timezone}",
            format_usd(s.spend_nanos, cents=True),
            format_usd(held[s.budget.key], cents=True),
            format_usd(s.cap_nanos, cents=True),
            f"{s.percent}%",
            format_usd(s.projection.end_of_period_nanos, cents=True),
            f"{hit.astimezone(s.budget.zone):%H:%M}" if hit else "-",
            f"[{style[s.state]}]{s.state}[/]",
            d.models[0][0] if d.models else "-",
        )
    out.print(table)


@alerts_app.command("run")
def alerts_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the messages; record and send nothing.")
    ] = False,
    budgets: BudgetsOpt = None,
    db: DbOpt = None,
) -> None:
    """Evaluate every budget against the ledger, record breaches once, deliver due alerts to Slack.

    With --dry-run: print, one JSON object a line, exactly the messages a run would send now (the
    same renderer, owners looked up in Slack), recording and sending nothing; "nothing due" if none.
    """
    from finops.usecases.alerts import deliver, evaluate_alerts

    err = err_console()
    ledger = ledger_for(db)
    found = budgets_for(ledger, budgets, err)
    now = datetime.now(UTC)
    if dry_run:
        _dry_run(ledger, found, now)
        return
    report = evaluate_alerts(ledger, found, now=now)
    sender = _sender(ledger.settings)
    delivered = deliver(ledger, sender, now=now)
    ledger.close()
    typer.echo(
        f"{plural(len(found), 'budget')} evaluated: {plural(len(report.new_alerts), 'new alert')}, "
        f"{len(report.resolved)} resolved; "
        f"delivered {delivered.sent}, failed {delivered.failed}, retrying {delivered.retrying}, "
        f"ambiguous {delivered.ambiguous}"
        + (
            f"; {plural(delivered.recovered, 'interrupted send')} checked in Slack"
            if delivered.recovered
            else ""
        )
    )
    for problem in delivered.problems:
        err.print(f"alert not delivered: {problem}", markup=False)


def _dry_run(ledger: Any, found: list[Any], now: datetime) -> None:
    from finops.errors import ConfigError
    from finops.usecases.alerts import would_send

    try:
        sender = _sender(ledger.settings)
    except ConfigError:
        sender = None  # Slack not configured: nothing could be sent, but show what would be
    try:
        outgoing = would_send(ledger, found, sender, now=now)
    finally:
        ledger.close()
    if not outgoing:
        typer.echo("nothing due")
        return
    default = ledger.settings.slack_default_channel
    for item in outgoing:
        doc: dict[str, Any] = {"channel": item.channel or default}
        if item.message is not None:
            doc.update(text=item.message.text, blocks=list(item.message.blocks))
        if item.file is not None:
            doc["file"] = item.file
        typer.echo(json.dumps(doc, ensure_ascii=False))


def _sender(settings: Settings) -> Any:
    from finops.notify.slack import sender_for

    return sender_for(settings)


_STATUSES = ("pending", "sending", "sent", "failed", "ambiguous", "dismissed")


@alerts_app.command("list")
def alerts_list(
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help=f"Only rows in this state: {', '.join(_STATUSES)}."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    db: DbOpt = None,
) -> None:
    """The alert outbox, newest first: id, key, budget, threshold, state, when (UTC), and why it
    failed or is ambiguous; "outbox empty" when there is nothing."""
    from finops.storage.alerts import outbox_rows

    if status_filter is not None and status_filter not in _STATUSES:
        raise UsageError(f"--status takes one of {', '.join(_STATUSES)}, got {status_filter!r}")
    ledger = ledger_for(db)
    with ledger.engine.connect() as conn:
        rows = outbox_rows(conn, status=status_filter, limit=limit)
    ledger.close()
    if not rows:
        typer.echo("outbox empty" if status_filter is None else f"no {status_filter} alerts in the outbox")
        return
    table = [("id", "key", "budget", "threshold", "state", "when", "error")]
    for row in rows:
        created = datetime.fromtimestamp(row.created_us / 1e6, UTC)
        table.append(
            (
                str(row.id),
                row.dedupe_key,
                _budget_cell(row.payload),
                _what_cell(row.payload),
                row.status,
                f"{created:%Y-%m-%d %H:%M} UTC",
                row.last_error or "",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        cells = [
            c.rjust(w) if i == 0 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))
        ]
        typer.echo("  ".join([*cells, r[-1]]).rstrip())


def _budget_cell(payload: dict[str, Any]) -> str:
    if payload.get("type") == "report":
        return "monthly report"
    if payload.get("type") == "message":
        return "digest"
    return str(payload.get("budget_key") or "")


def _what_cell(payload: dict[str, Any]) -> str:
    """The threshold an alert is for (``80%``, ``100% month``), else what the row is."""
    kind = payload.get("kind")
    threshold = payload.get("threshold")
    if kind in ("threshold", "resolved") and threshold is not None:
        value = Decimal(str(threshold)) * 100
        pct = f"{value.normalize():f}%"
        month = " month" if "(month)" in str(payload.get("period") or "") else ""
        return f"{pct}{month}" if kind == "threshold" else f"back below {pct}"
    return {"fanout": "tool calls", "cost_per_success": "cost per success"}.get(str(kind), "")


AlertId = Annotated[
    int, typer.Argument(metavar="ID", help="The alert's ID, as `finops alerts list` shows it.", min=1)
]


@alerts_app.command("resend")
def alerts_resend(alert_id: AlertId, db: DbOpt = None) -> None:
    """Send an ambiguous (or failed) alert again now, after checking its channel: it is not there.

    Meant for incoming webhooks, which cannot read the channel (a bot token's lookup decides by
    itself). The message carries the same tag, so a later lookup still finds it.
    """
    from finops.usecases.alerts import resend

    ledger = ledger_for(db)
    try:
        delivered = resend(ledger, _sender(ledger.settings), alert_id)
    finally:
        ledger.close()
    if delivered.sent:
        typer.echo(f"alert {alert_id} sent")
        return
    for problem in delivered.problems:
        typer.echo(f"alert not delivered: {problem}", err=True)
    if not delivered.problems:
        typer.echo(
            f"alert {alert_id} not sent yet: Slack asked to retry later; it goes on the next run "
            "(`finops alerts list` says why)",
            err=True,
        )
    raise typer.Exit(1)


@alerts_app.command("dismiss")
def alerts_dismiss(alert_id: AlertId, db: DbOpt = None) -> None:
    """Never send an ambiguous (or failed) alert: you found it in the channel, or it no longer matters."""
    from finops.usecases.alerts import dismiss

    ledger = ledger_for(db)
    try:
        dismiss(ledger, alert_id)
    finally:
        ledger.close()
    typer.echo(f"alert {alert_id} dismissed")


def register(app: typer.Typer, budgets_app: typer.Typer) -> None:
    """Add these commands to the root app and to `finops budgets`."""
    app.command("check")(check)
    budgets_app.command("status")(status)
    app.add_typer(alerts_app, name="alerts")
