"""The ``finops`` command: parse, call ``app/`` and ``reports/``, print. Errors become exit codes here.

Exit codes: 0 success; 1 a finops error (message on stderr); 2 bad arguments;
3 ``ingest --strict`` rejected something.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from finops import __version__
from finops.cli.common import (
    DbOpt,
    Format,
    TzOpt,
    err_console,
    ledger_for,
    out,
    period,
    settings_for,
    zone,
)
from finops.errors import FinopsError, UsageError

__all__ = ["app", "main"]  # noqa: F822  (app: see __getattr__)


class _FinopsGroup(TyperGroup):
    """The root command: the one place where a finops error becomes a message and an exit code.

    From the console script its sub-commands are built when first asked for (``_lazy``): typer
    turns every function signature into a click command, and doing that for all forty of
    them cost a fifth of `finops spend`'s start-up. ``--help`` still lists them all.
    """

    _lazy: typer.Typer | None = None

    def _built(self, name: str) -> Any:
        import typer.main as typer_main

        app_ = self._lazy
        assert app_ is not None
        _load(name)
        for info in app_.registered_commands:
            assert info.callback is not None
            if (info.name or typer_main.get_command_name(info.callback.__name__)) == name:
                return typer_main.get_command_from_info(
                    info,
                    pretty_exceptions_short=app_.pretty_exceptions_short,
                    rich_markup_mode=app_.rich_markup_mode,
                )
        for group in app_.registered_groups:
            if group.name == name:
                return typer_main.get_group_from_info(
                    group,
                    pretty_exceptions_short=app_.pretty_exceptions_short,
                    rich_markup_mode=app_.rich_markup_mode,
                    suggest_commands=app_.suggest_commands,
                )
        return None

    def list_commands(self, ctx: Any) -> list[str]:
        if self._lazy is None:
            return super().list_commands(ctx)
        import typer.main as typer_main

        _load_all()
        names = [
            info.name or typer_main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]
            for info in self._lazy.registered_commands
        ]
        return names + [g.name for g in self._lazy.registered_groups if g.name]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self._lazy is not None and cmd_name not in self.commands:
            built = self._built(cmd_name)
            if built is None:
                return None
            self.commands[cmd_name] = built
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FinopsError as exc:
            _say(f"error: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            from sqlalchemy.exc import SQLAlchemyError

            from finops.storage.db import describe_db_error

            if not isinstance(exc, SQLAlchemyError):
                raise
            why = describe_db_error(exc)
            _say(
                f"error: the database failed ({why}); check FINOPS_DATABASE_URL or --db and that "
                "the database is up"
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _say(
                "interrupted: every batch committed before this point is stored; run the "
                "same command again to finish (nothing is stored twice)"
            )
            raise typer.Exit(130) from None


def _say(message: str) -> None:
    """One line on stderr, never wrapped (plain: no rich needed to print an error)."""
    typer.echo(message, err=True)


_app = typer.Typer(
    cls=_FinopsGroup,
    name="finops",
    help="Cost governance for LLM usage: an exact ledger of every call, and what it cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="The database: upgrade, current revision, rebuild rollups.", no_args_is_help=True)
_app.add_typer(db_app, name="db")


# The other command modules register on `_app` when one of their commands is asked for: the
# console script imports only the module of the command it runs. `app` as imported by others
# (`from finops.cli.main import app`, the tests) has every command: see __getattr__ below.
def _load_prices() -> None:
    from finops.cli.prices import prices_app, reprice

    _app.add_typer(prices_app, name="prices")
    _app.command()(reprice)


def _load_budgets_and_alerts() -> None:
    from finops.cli.alerts import register
    from finops.cli.budgets import budgets_app

    _app.add_typer(budgets_app, name="budgets")
    register(_app, budgets_app)  # check, alerts, and `budgets status`


def _load_admission() -> None:
    from finops.cli.admission import register

    register(_app)


def _load_audit() -> None:
    from finops.cli.audit import register

    register(_app)


def _load_reconcile() -> None:
    from finops.cli.reconcile import register

    register(_app)


def _load_export() -> None:
    from finops.cli.export import register

    register(_app)


def _load_run() -> None:
    from finops.cli.run import register

    register(_app)


#: Which loader registers which top-level names (tests/test_cli_startup.py runs each one alone).
_LOADERS: dict[str, Callable[[], None]] = {
    "prices": _load_prices,
    "reprice": _load_prices,
    "budgets": _load_budgets_and_alerts,
    "check": _load_budgets_and_alerts,
    "alerts": _load_budgets_and_alerts,
    "reserve": _load_admission,
    "release": _load_admission,
    "outcomes": _load_audit,
    "prompts": _load_audit,
    "report": _load_audit,
    "digest": _load_audit,
    "poll": _load_reconcile,
    "reconcile": _load_reconcile,
    "run": _load_run,
    "export": _load_export,
}
_LOADED: set[Callable[[], None]] = set()


def _load(name: str) -> None:
    loader = _LOADERS.get(name)
    if loader is not None and loader not in _LOADED:
        _LOADED.add(loader)
        loader()


def _load_all() -> None:
    for name in _LOADERS:
        _load(name)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"finops {__version__}")
        raise typer.Exit()


@_app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Cost governance for LLM usage."""


class Kind(StrEnum):
    usage = "usage"
    outcomes = "outcomes"
    otlp = "otlp"
    litellm = "litellm"
    litellm_spendlogs = "litellm-spendlogs"


# --------------------------------------------------------------------------- ingest
@_app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="JSONL files or directories (.jsonl, .jsonl.gz).")],
    source: Annotated[
        str, typer.Option(help="Dedupe namespace: the same id from the same source counts once.")
    ] = "default",
    strict: Annotated[bool, typer.Option("--strict", help="Exit 3 if any line was rejected.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Records per transaction.", min=1)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    kind: Annotated[
        Kind,
        typer.Option(
            "--kind",
            help="usage records (default), outcomes (docs/design.md §5), otlp trace exports, litellm "
            "(StandardLoggingPayload objects or arrays) or litellm-spendlogs (LiteLLM_SpendLogs rows).",
        ),
    ] = Kind.usage,
    db: DbOpt = None,
) -> None:
    """Store usage records (or outcomes) from JSONL files, once each; bad lines go to the dead letters."""
    from finops.render.ingest_summary import print_ingest_summary
    from finops.sources.jsonl import expand_paths
    from finops.usecases.ingest import ingest_paths

    ledger = ledger_for(db, create=True)  # loading data into a new database is how one starts
    err = err_console()
    files = expand_paths(paths)
    if kind in (Kind.otlp, Kind.litellm, Kind.litellm_spendlogs):
        from finops.usecases.ingest import ingest_litellm_paths, ingest_otlp_paths

        if kind is Kind.otlp:
            summary = ingest_otlp_paths(ledger, files, source=source, batch_size=batch_size)
            skipped = "spans were not LLM calls (no gen_ai.usage attributes)"
        else:
            log_kind = "standard" if kind is Kind.litellm else "spendlogs"
            summary = ingest_litellm_paths(ledger, files, kind=log_kind, source=source, batch_size=batch_size)
            skipped = "log entries were not billed LLM calls (LiteLLM cache hits, other call types)"
        print_ingest_summary(summary, files=len(files), console=out())
        out().print(f"{summary.skipped:,} {skipped}", markup=False)
        ledger.close()
        if strict and summary.rejected:
            raise typer.Exit(3)
        return
    if kind is Kind.outcomes:
        from finops.usecases.outcomes import ingest_outcome_paths

        summary = ingest_outcome_paths(ledger, files, source=source)
        print_ingest_summary(summary, files=len(files), console=out(), what="outcomes")
        ledger.close()
        if strict and summary.rejected:
            raise typer.Exit(3)
        return
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
    print_ingest_summary(summary, files=len(files), console=out())
    ledger.close()
    if strict and summary.rejected:
        raise typer.Exit(3)


# --------------------------------------------------------------------------- spend
@_app.command()
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
    from finops.render.spend import render_csv, render_json, render_table
    from finops.usecases.spend import run_spend
    from finops.usecases.spend_request import spend_query

    tzinfo = zone(tz)
    start, end = period(since=since, until=until, month=month, today=today, tz=tzinfo)
    try:
        query = spend_query(
            by=by,
            start=start,
            end=end,
            tz=tzinfo,
            flows=flow or (),
            models=model or (),
            providers=provider or (),
            tags=tag or (),
            top=top,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ledger = ledger_for(db)
    with ledger.read_engine.connect() as conn:
        result = run_spend(conn, query)
    ledger.close()
    if fmt is Format.json:
        typer.echo(render_json(result))
    elif fmt is Format.csv:
        typer.echo(render_csv(result), nl=False)
    else:
        typer.echo(render_table(result))


# --------------------------------------------------------------------------- dead letters
@_app.command("dead-letters")
def dead_letters_cmd(
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 20,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    db: DbOpt = None,
) -> None:
    """Rejected lines and records: where they came from and why."""
    from finops.render.ingest_summary import print_dead_letters
    from finops.usecases.dead_letters import newest_dead_letters

    ledger = ledger_for(db)
    total, letters = newest_dead_letters(ledger.engine, limit=limit)
    print_dead_letters(total, letters, as_json=fmt is Format.json, console=out())
    ledger.close()


# --------------------------------------------------------------------------- demo
@_app.command()
def demo(
    db: DbOpt = None,
    days: Annotated[
        int | None,
        typer.Option(min=1, max=366, help="Only the last N days (default: two full months and this one)."),
    ] = None,
    scale: Annotated[float, typer.Option(min=0.01, max=100.0, help="Multiply the call volume.")] = 1.0,
) -> None:
    """Load two months of sample usage, outcomes and today's incidents, and show what finops tells you."""
    from finops.render.ingest_summary import print_ingest_summary
    from finops.render.spend import render_table
    from finops.usecases.demo import demo_months, load_demo
    from finops.usecases.spend import SpendQuery, run_spend

    ledger = ledger_for(db, create=True)
    console = out()
    before, last, this = demo_months(datetime.now(UTC))
    span = (
        f"the last {days} day{'s' * (days != 1)}" if days else f"{before} and {last} in full, {this} so far"
    )
    where = ledger.engine.url.render_as_string(hide_password=True)
    console.print(f"Loading sample usage ({span}) into {where} ...", markup=False)
    loaded = load_demo(ledger, days=days, scale=scale)
    print_ingest_summary(loaded.usage, files=0, console=console)
    print_ingest_summary(loaded.outcomes, files=0, console=console, what="outcomes")
    for incident, result in loaded.incidents:
        console.print(f"today: {incident.what} ({result})", markup=False)
    with ledger.engine.connect() as conn:
        console.print(f"\n[bold]Spend by flow, {last}[/bold]  (finops spend --by flow --month {last})")
        flows = SpendQuery(group_by=("flow",), start=_month_start(last), end=_month_start(this))
        console.print(render_table(run_spend(conn, flows)), markup=False)
        console.print(f"\n[bold]Spend by month[/bold]  (finops spend --by month --since {before}-01)")
        months = SpendQuery(group_by=("month",), start=_month_start(before))
        console.print(render_table(run_spend(conn, months)), markup=False)
    budgets_dir = ledger.settings.budgets_dir
    if budgets_dir.is_dir():
        from finops.cli.alerts import status

        console.print(f"\n[bold]Budgets today[/bold]  (finops budgets status; files in {budgets_dir})")
        ledger.close()
        status(budgets=None, fmt="table", db=ledger.engine.url.render_as_string(hide_password=False))
    else:
        console.print(
            f"\nNo budget folder at {budgets_dir}: run the demo from the repository's top folder "
            "(or set FINOPS_BUDGETS_DIR to its budgets/) to see today's incidents against their budgets.",
            markup=False,
        )
    console.print(
        "\n[bold]Try[/bold]\n"
        "  finops budgets status               search-prod past 80% of its cap today (a retry loop),\n"
        "                                      code-review past its blocking cap (a huge PR)\n"
        "  finops check code-review            deny, exit 4: code-review's budget has on_breach: block\n"
        "  finops alerts run --dry-run         the Slack messages these would send\n"
        f"  finops outcomes --month {last}     success rate and cost per successful outcome per flow\n"
        f"  finops prompts top --month {last}  NEW support/escalate@v1, GROWING support/answer-de@v3\n"
        "                                      (more traffic), BLOATED code-review/review@v1 (a longer\n"
        "                                      system prompt, and the cache no longer hits)\n"
        f"  finops report monthly --month {last} --format html --out report.html\n"
        "  finops spend --by tag:team, finops prices unpriced",
        markup=True,
        highlight=False,
    )
    ledger.close()


def _month_start(label: str) -> datetime:
    year, month = (int(x) for x in label.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    db: DbOpt = None,
) -> None:
    """Create or migrate the schema (safe to run again)."""
    from finops.storage.db import create_engine_for, current_revision, upgrade

    settings = settings_for(db)
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

    engine = create_engine_for(settings_for(db).database_url)
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

    ledger = ledger_for(db)
    with write_transaction(ledger.engine) as conn:
        rows = rebuild_rollups(conn)
    typer.echo(f"rebuilt {rows:,} hourly rollup rows from the raw records")
    ledger.close()


# --------------------------------------------------------------------------- entry point
def _lazy_root() -> _FinopsGroup:
    """The root group, its callback built now and its commands on first use."""
    import typer.main as typer_main

    shell = typer.Typer(
        cls=_FinopsGroup,
        name=_app.info.name,
        help=_app.info.help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    shell.registered_callback = _app.registered_callback
    root = typer_main.get_group(shell)
    assert isinstance(root, _FinopsGroup)
    root._lazy = _app
    return root


def __getattr__(name: str) -> Any:
    """``finops.cli.main.app`` for other modules: every command registered (PEP 562)."""
    if name == "app":
        _load_all()
        return _app
    raise AttributeError(name)


def main() -> None:
    """The console script."""
    _lazy_root()(prog_name="finops")
