"""``finops prices ...`` and ``finops reprice``: the price book for people."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from finops.cli.common import DbOpt, Format, TzOpt, date_arg, ledger_for, out, period, zone

__all__ = ["prices_app", "reprice"]

prices_app = typer.Typer(help="The price book: show, list, import, unpriced.", no_args_is_help=True)


@prices_app.command("show")
def prices_show(
    model: Annotated[str, typer.Argument(help="Model name as records carry it, e.g. gpt-4o-2024-08-06.")],
    provider: Annotated[str | None, typer.Option(help="Provider (default: inferred from the model).")] = None,
    at: Annotated[
        str | None, typer.Option(help="Date the price should be in effect (default: today).")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    db: DbOpt = None,
) -> None:
    """The prices in effect for a model, where they came from, and their history."""
    from finops.render.prices import show_prices

    day = date_arg(at, "--at") if at else datetime.now(UTC).date()
    ledger = ledger_for(db)
    show_prices(
        ledger.book, model=model, provider=provider, day=day, as_json=fmt is Format.json, console=out()
    )
    ledger.close()


@prices_app.command("list")
def prices_list(
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    search: Annotated[str | None, typer.Option(help="Only models whose name contains this.")] = None,
    layer: Annotated[str | None, typer.Option(help="catalog, import or override.")] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    db: DbOpt = None,
) -> None:
    """Every price entry in the book (per million tokens)."""
    from finops.render.prices import list_prices

    ledger = ledger_for(db)
    list_prices(ledger.book, provider=provider, search=search, layer=layer, fmt=fmt.value, console=out())
    ledger.close()


@prices_app.command("import")
def prices_import(
    file: Annotated[Path, typer.Argument(help="LiteLLM's model_prices_and_context_window.json.")],
    effective_from: Annotated[
        str | None, typer.Option(help="Date the prices apply from (default: today).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Import LiteLLM's price catalog, in effect from --effective-from; `finops reprice` for the past."""
    from finops.domain.words import plural
    from finops.usecases.prices import import_litellm

    day = date_arg(effective_from, "--effective-from") if effective_from else datetime.now(UTC).date()
    ledger = ledger_for(db, create=True)  # loading prices into a new database is a start
    report = import_litellm(ledger, file, effective_from=day)
    out().print(
        f"Imported {plural(report.added, 'new price entry', 'new price entries')} from {file} "
        f"(effective {report.effective_from}); {report.unchanged:,} already known; "
        f"{plural(len(report.skipped), 'entry', 'entries')} skipped "
        "(no per-token input and output prices: images, audio, embeddings...)."
    )
    ledger.close()


@prices_app.command("unpriced")
def prices_unpriced(
    since: Annotated[str | None, typer.Option(help="Only usage since (7d, 2026-11-01...).")] = None,
    month: Annotated[str | None, typer.Option(help="Only this month.")] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    db: DbOpt = None,
) -> None:
    """Models stored without a price (never counted as $0), and whether a price exists now."""
    from finops.render.prices import print_unpriced
    from finops.usecases.prices import unpriced_models

    start, end = period(since=since, until=None, month=month, today=False, tz=ZoneInfo("UTC"))
    ledger = ledger_for(db)
    print_unpriced(unpriced_models(ledger, start=start, end=end), as_json=fmt is Format.json, console=out())
    ledger.close()


def reprice(
    since: Annotated[str, typer.Option(help="Re-price records from this date or time.")],
    until: Annotated[str | None, typer.Option(help="Up to this date (exclusive).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report the difference, change nothing.")
    ] = False,
    tz: TzOpt = "UTC",
    db: DbOpt = None,
) -> None:
    """Recompute past costs with the current price book and report what changed."""
    from finops.render.prices import print_reprice
    from finops.usecases.reprice import reprice as run_reprice

    start, end = period(since=since, until=until, month=None, today=False, tz=zone(tz))
    assert start is not None
    ledger = ledger_for(db)
    report = run_reprice(ledger, since=start, until=end, dry_run=dry_run)
    print_reprice(report, dry_run=dry_run, console=out())
    ledger.close()
