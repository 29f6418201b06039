"""The ``finops`` command: parse, call ``app/`` and ``reports/``, print. Errors become exit codes here.

Exit codes: 0 success; 1 a finops error (message on stderr); 2 bad arguments;
3 ``ingest --strict`` rejected something.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from typer.core import TyperGroup

from finops import __version__
from finops.cli_alerts import register as register_alert_commands
from finops.cli_budgets import budgets_app
from finops.errors import FinopsError, UsageError
from finops.settings import Settings

__all__ = ["app", "main"]


class _FinopsGroup(TyperGroup):
    """The root command: the one place where a finops error becomes a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        try:
            return super().invoke(ctx)
        except FinopsError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print(
                "interrupted: every batch committed before this point is stored; run the "
                "same command again to finish (nothing is stored twice)",
                markup=False,
            )
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_FinopsGroup,
    name="finops",
    help="Cost governance for LLM usage: an exact ledger of every call, and what it cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="The database: upgrade, current revision, rebuild rollups.", no_args_is_help=True)
prices_app = typer.Typer(help="The price book: show, list, import, unpriced.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(prices_app, name="prices")
app.add_typer(budgets_app, name="budgets")
register_alert_commands(app, budgets_app)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="SQLite file or database URL (default: FINOPS_DATABASE_URL, else ./finops.db)."
    ),
]
TzOpt = Annotated[str, typer.Option("--tz", help="Time zone for days, months and dates (IANA name).")]


def _out() -> Console:
    """stdout; when piped, wide enough that tables are not cut at 80 columns."""
    probe = Console()
    return Console(highlight=False, soft_wrap=False, width=None if probe.is_terminal else 200)


def _settings(db: str | None) -> Settings:
    settings = Settings()
    if db:
        url = db if "://" in db else f"sqlite:///{Path(db).expanduser()}"
        settings = settings.model_copy(update={"database_url": url})
    return settings


def _ledger(db: str | None, *, create: bool = True):  # type: ignore[no-untyped-def]
    from finops.app.ledger import Ledger

    return Ledger.open(_settings(db), create=create)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"finops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Cost governance for LLM usage."""


# --------------------------------------------------------------------------- ingest
@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="JSONL files or directories (.jsonl, .jsonl.gz).")],
    source: Annotated[
        str, typer.Option(help="Dedupe namespace: the same id from the same source counts once.")
    ] = "default",
    strict: Annotated[bool, typer.Option("--strict", help="Exit 3 if any line was rejected.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Records per transaction.", min=1)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    db: DbOpt = None,
) -> None:
    """Store usage records from JSONL files, once each, priced; bad lines go to the dead letters."""
    from finops.app.ingest import ingest_paths
    from finops.ingest.jsonl import expand_paths

    ledger = _ledger(db)
    err = Console(stderr=True, highlight=False)
    files = expand_paths(paths)
    total_bytes = sum(p.stat().st_size for p in files)
    if quiet or not err.is_terminal:
        summary = ingest_paths(ledger, files, source=source, batch_size=batch_size)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("ingesting", total=total_bytes)
            summary = ingest_paths(
                ledger,
                files,
                source=source,
                batch_size=batch_size,
                on_bytes=lambda n: bar.advance(task, n),
            )
    from finops.reports.summary import print_ingest_summary

    print_ingest_summary(summary, files=len(files), console=_out())
    ledger.close()
    if strict and summary.rejected:
        raise typer.Exit(3)


# --------------------------------------------------------------------------- spend
@app.command()
def spend(
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Group by (comma-separated): flow, model, provider, service_tier, status, "
            "day, month, hour, tag:KEY.",
        ),
    ] = "flow",
    since: Annotated[
        str | None, typer.Option(help="Start: 7d, 24h, today, 2026-11-01, 2026-11-01T10:00.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive), same forms as --since.")] = None,
    month: Annotated[str | None, typer.Option(help="A calendar month, e.g. 2026-11.")] = None,
    today: Annotated[bool, typer.Option("--today", help="Since local midnight.")] = False,
    flow: Annotated[
        list[str] | None, typer.Option("--flow", help="Only these flows (glob: support-*).")
    ] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="Only these models (glob).")] = None,
    provider: Annotated[list[str] | None, typer.Option("--provider", help="Only these providers.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only records with tag KEY=VALUE.")] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Keep the N costliest groups.")] = None,
    fmt: Annotated[
        Format, typer.Option("--format", help="table (cents) or json/csv (exact).")
    ] = Format.table,
    tz: TzOpt = "UTC",
    db: DbOpt = None,
) -> None:
    """How much was spent, grouped as you ask. JSON and CSV are exact; tables round to the cent."""
    from finops.domain.providers import canonical_provider
    from finops.reports.render import render_csv, render_json, render_table
    from finops.reports.spend import SpendQuery, run_spend

    zone = _zone(tz)
    start, end = _period(since=since, until=until, month=month, today=today, tz=zone)
    tags = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag takes KEY=VALUE, got {item!r}")
        tags[key] = value
    try:
        query = SpendQuery(
            group_by=tuple(d.strip() for d in by.split(",") if d.strip()),
            start=start,
            end=end,
            tz=zone,
            flows=tuple(flow or ()),
            models=tuple(m.lower() for m in model or ()),
            providers=tuple(canonical_provider(p) for p in provider or ()),
            tags=tags,
            top=top,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ledger = _ledger(db)
    with ledger.engine.connect() as conn:
        result = run_spend(conn, query)
    ledger.close()
    if fmt is Format.json:
        typer.echo(render_json(result))
    elif fmt is Format.csv:
        typer.echo(render_csv(result), nl=False)
    else:
        render_table(result, _out())


def _period(
    *, since: str | None, until: str | None, month: str | None, today: bool, tz: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    from finops.domain.periods import month_range, parse_instant

    now = datetime.now(UTC)
    if len([given for given in (since, month, today) if given]) > 1:
        raise UsageError("use one of --since, --month, --today")
    try:
        if month:
            if until:
                raise UsageError("--month already ends the period; drop --until")
            return month_range(month, tz)
        start = (
            parse_instant("today", now=now, tz=tz)
            if today
            else (parse_instant(since, now=now, tz=tz) if since else None)
        )
        end = parse_instant(until, now=now, tz=tz) if until else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if start and end and start >= end:
        raise UsageError("--since must be before --until")
    return start, end


# --------------------------------------------------------------------------- prices
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
    from finops.reports.prices import show_prices

    day = _date(at, "--at") if at else datetime.now(UTC).date()
    ledger = _ledger(db)
    show_prices(
        ledger.book, model=model, provider=provider, day=day, as_json=fmt is Format.json, console=_out()
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
    from finops.reports.prices import list_prices

    ledger = _ledger(db)
    list_prices(ledger.book, provider=provider, search=search, layer=layer, fmt=fmt.value, console=_out())
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
    from finops.app.prices import import_litellm

    day = _date(effective_from, "--effective-from") if effective_from else datetime.now(UTC).date()
    ledger = _ledger(db)
    report = import_litellm(ledger, file, effective_from=day)
    out = _out()
    out.print(
        f"Imported {report.added:,} new price entries from {file} (effective {report.effective_from}); "
        f"{report.unchanged:,} already known; {len(report.skipped):,} entries skipped "
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
    from finops.app.prices import unpriced_models
    from finops.reports.prices import print_unpriced

    start, end = _period(since=since, until=None, month=month, today=False, tz=ZoneInfo("UTC"))
    ledger = _ledger(db)
    print_unpriced(unpriced_models(ledger, start=start, end=end), as_json=fmt is Format.json, console=_out())
    ledger.close()


# --------------------------------------------------------------------------- reprice
@app.command()
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
    from finops.app.reprice import reprice as run_reprice
    from finops.reports.prices import print_reprice

    start, end = _period(since=since, until=until, month=None, today=False, tz=_zone(tz))
    assert start is not None
    ledger = _ledger(db)
    report = run_reprice(ledger, since=start, until=end, dry_run=dry_run)
    print_reprice(report, dry_run=dry_run, console=_out())
    ledger.close()


# --------------------------------------------------------------------------- dead letters
@app.command("dead-letters")
def dead_letters_cmd(
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 20,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    db: DbOpt = None,
) -> None:
    """Rejected lines and records: where they came from and why."""
    from finops.reports.summary import print_dead_letters

    ledger = _ledger(db)
    print_dead_letters(ledger.engine, limit=limit, as_json=fmt is Format.json, console=_out())
    ledger.close()


# --------------------------------------------------------------------------- demo
@app.command()
def demo(
    db: DbOpt = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days of usage to generate.")] = 30,
    scale: Annotated[float, typer.Option(min=0.01, max=100.0, help="Multiply the call volume.")] = 1.0,
) -> None:
    """Load a realistic month of sample usage and show what finops tells you about it."""
    from finops.app.demo import load_demo
    from finops.reports.render import render_table
    from finops.reports.spend import SpendQuery, run_spend
    from finops.reports.summary import print_ingest_summary

    ledger = _ledger(db)
    out = _out()
    out.print(
        f"Loading {days} days of sample usage into "
        f"{ledger.engine.url.render_as_string(hide_password=True)} ..."
    )
    summary = load_demo(ledger, days=days, scale=scale)
    print_ingest_summary(summary, files=0, console=out)
    now = datetime.now(UTC)
    from datetime import timedelta

    start = now - timedelta(days=days)
    with ledger.engine.connect() as conn:
        out.print(f"\n[bold]Spend by flow[/bold]  (finops spend --by flow --since {days}d)")
        render_table(run_spend(conn, SpendQuery(group_by=("flow",), start=start)), out)
        out.print(f"\n[bold]Top models[/bold]  (finops spend --by provider,model --top 5 --since {days}d)")
        render_table(run_spend(conn, SpendQuery(group_by=("provider", "model"), start=start, top=5)), out)
        out.print("\n[bold]Last 7 days[/bold]  (finops spend --by day --since 7d)")
        render_table(run_spend(conn, SpendQuery(group_by=("day",), start=now - timedelta(days=7))), out)
    if ledger.settings.budgets_dir.is_dir():
        from finops.cli_alerts import status

        out.print(
            f"\n[bold]Budgets today[/bold]  (finops budgets status; files in {ledger.settings.budgets_dir})"
        )
        ledger.close()
        status(budgets=None, fmt="table", db=ledger.engine.url.render_as_string(hide_password=False))
    out.print(
        "\nNext: `finops spend --by tag:team`, `finops prices show gpt-4o`, `finops prices unpriced`, "
        "`finops check support-gpt-en`, `finops alerts run --dry-run`."
    )
    ledger.close()


# --------------------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    db: DbOpt = None,
) -> None:
    """Create or migrate the schema (safe to run again)."""
    from finops.storage.db import create_engine_for, current_revision, upgrade

    settings = _settings(db)
    engine = create_engine_for(settings.database_url)
    before = current_revision(engine)
    upgrade(engine, revision)
    after = current_revision(engine)
    shown = engine.url.render_as_string(hide_password=True)
    typer.echo(
        f"{shown}: schema {before or 'empty'} -> {after}"
        if before != after
        else f"{shown}: already at {after}"
    )
    engine.dispose()


@db_app.command("current")
def db_current(db: DbOpt = None) -> None:
    """The schema revision of the database, and the newest this finops knows."""
    from finops.storage.db import create_engine_for, current_revision, head_revision

    engine = create_engine_for(_settings(db).database_url)
    current, head = current_revision(engine), head_revision(engine)
    state = "up to date" if current == head else "run `finops db upgrade`"
    typer.echo(
        f"{engine.url.render_as_string(hide_password=True)}: {current or 'empty'} (newest: {head}; {state})"
    )
    engine.dispose()


@db_app.command("rebuild-rollups")
def db_rebuild_rollups(db: DbOpt = None) -> None:
    """Recompute the hourly rollups from the raw records (after a bulk load or to repair)."""
    from finops.storage.db import write_transaction
    from finops.storage.ledger import rebuild_rollups

    ledger = _ledger(db)
    with write_transaction(ledger.engine) as conn:
        rows = rebuild_rollups(conn)
    typer.echo(f"rebuilt {rows:,} hourly rollup rows from the raw records")
    ledger.close()


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} takes a date like 2026-11-01, got {text!r}") from None


# --------------------------------------------------------------------------- entry point
def main() -> None:
    """The console script."""
    app()
