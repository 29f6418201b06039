"""``finops run``: the daemon (HTTP API, budget cycle, schedules, provider polls)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from finops.domain.words import plural
from finops.errors import ConfigError

__all__ = ["register"]


def run(
    host: Annotated[str | None, typer.Option(help="Listen address (default FINOPS_HOST, 127.0.0.1).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default FINOPS_PORT, 8787; 0: any free port).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One cycle (poll, budgets, alerts, schedules), then exit.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar="FINOPS_CONFIG", help="TOML file of settings (FINOPS_* variables win)."
        ),
    ] = None,
    budgets: Annotated[Path | None, typer.Option(help="Budget folder (default FINOPS_BUDGETS_DIR).")] = None,
    db: Annotated[str | None, typer.Option("--db", help="SQLite file or database URL.")] = None,
    log_format: Annotated[str | None, typer.Option(help="json (default) or text.")] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every HTTP request.")] = False,
    init: Annotated[
        bool,
        typer.Option(
            "--init",
            help="Create the database (migrated to the newest schema) if it is missing or empty. "
            "Without it a missing database is an error: a daemon on the wrong database would "
            "answer every budget check from an empty ledger.",
        ),
    ] = False,
) -> None:
    """Run the daemon: HTTP ingest and checks, budget alerts, digests and reports, provider polls."""
    from pydantic import ValidationError

    from finops.daemon.cycle import Daemon
    from finops.daemon.logs import configure_logging
    from finops.daemon.pollers_wiring import configured_pollers, reconcile_job
    from finops.daemon.serve import run_once, serve
    from finops.settings import Settings, describe_settings_error, load_settings

    settings = load_settings(config)
    # a folder named on purpose must exist; the default one may come later (no budgets until then)
    budgets_named = budgets is not None or "budgets_dir" in settings.model_fields_set
    update: dict[str, Any] = {}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    if budgets is not None:
        update["budgets_dir"] = budgets
    if log_format is not None:
        if log_format not in ("json", "text"):
            raise ConfigError(f"--log-format takes json or text, got {log_format!r}")
        update["log_format"] = log_format
    if db:  # --db is the one database of the daemon, reads included
        update["database_url"] = db if "://" in db else f"sqlite:///{Path(db).expanduser()}"
        update["read_database_url"] = None
    try:  # validated like the variables: a bad --db is an error, not a crash later
        settings = Settings.model_validate({**settings.model_dump(), **update})
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc)) from None
    if budgets_named and not settings.budgets_dir.is_dir():
        from_file = config is not None and "FINOPS_BUDGETS_DIR" not in {k.upper() for k in os.environ}
        what = "is not a folder" if settings.budgets_dir.exists() else "does not exist"
        if budgets is not None:
            where, fix = f"--budgets {settings.budgets_dir}", "pass --budgets"
        elif from_file:
            where = f"budgets_dir {settings.budgets_dir} (in {config})"
            fix = f"set budgets_dir in {config} to"
        else:
            where, fix = f"FINOPS_BUDGETS_DIR {settings.budgets_dir}", "point FINOPS_BUDGETS_DIR at"
        raise ConfigError(f"{where} {what}: create it, or {fix} the folder of budget files")
    configure_logging(settings.log_format)
    reconcile = reconcile_job(settings)
    daemon = Daemon(
        settings,
        pollers=configured_pollers(settings),
        extra_jobs=(reconcile,) if reconcile else (),
        create=init,
        budgets_optional=not budgets_named,
    )
    if once:
        polled, report = run_once(daemon)
        for line in polled:
            typer.echo(f"poll {line}")
        typer.echo(
            f"{plural(report.budgets, 'budget')}: {plural(report.new_alerts, 'new alert')}, "
            f"{report.resolved} resolved; "
            f"delivered {report.sent}, failed {report.failed}"
            + "".join(f"; {job} {period}: {result}" for job, period, result in report.jobs)
        )
        for error in report.errors:
            typer.echo(f"error: {error}", err=True)
        if report.errors:
            raise typer.Exit(1)
        return
    logging.getLogger("finops.daemon").info("starting", extra={"version": _version()})
    raise typer.Exit(serve(daemon, access_log=access_log))


def _version() -> str:
    from finops import __version__

    return __version__


def register(app: typer.Typer) -> None:
    app.command()(run)
