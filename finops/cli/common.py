"""What the command modules share: options, settings, the ledger, periods and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finops.errors import UsageError

if TYPE_CHECKING:  # imported where used: every command pays only for what it runs
    from zoneinfo import ZoneInfo

    from rich.console import Console

    from finops.domain.budgets import Budget
    from finops.settings import Settings
    from finops.usecases.ledger import Ledger

__all__ = [
    "DbOpt",
    "Format",
    "TzOpt",
    "budgets_for",
    "date_arg",
    "err_console",
    "ledger_for",
    "out",
    "period",
    "settings_for",
    "tag_pair",
    "zone",
]


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


def out() -> Console:
    """stdout; when piped, wide enough that tables are not cut at 80 columns."""
    from rich.console import Console

    probe = Console()
    return Console(highlight=False, soft_wrap=False, width=None if probe.is_terminal else 200)


def err_console() -> Console:
    """stderr, never wrapped: an error or warning stays one line whatever the terminal's width, so
    ``file:line: ...`` can be grepped in CI logs."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def settings_for(db: str | None) -> Settings:
    """FINOPS_* settings (a bad value is a ConfigError, one line per setting), with ``--db``."""
    from finops.settings import load_settings

    settings = load_settings()
    if db:  # --db is the one database of the command, reads included
        url = db if "://" in db else f"sqlite:///{Path(db).expanduser()}"
        settings = settings.model_copy(update={"database_url": url, "read_database_url": None})
    return settings


def ledger_for(db: str | None, *, create: bool = False) -> Ledger:
    """The ledger of ``--db`` or FINOPS_DATABASE_URL; only commands that load data ``create`` one.
    Its reads go to FINOPS_READ_DATABASE_URL when set and ``--db`` is not given."""
    from finops.env import database_url, read_database_url
    from finops.usecases.ledger import Ledger

    return Ledger.open_url(
        database_url(db), lambda: settings_for(db), create=create, read_url=read_database_url(db)
    )


def zone(name: str) -> ZoneInfo:
    from finops.usecases.spend_request import resolve_zone

    try:
        return resolve_zone(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def period(
    *, since: str | None, until: str | None, month: str | None, today: bool, tz: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    from finops.usecases.spend_request import resolve_period

    try:
        return resolve_period(
            since=since, until=until, month=month, today=today, tz=tz, now=datetime.now(UTC)
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def date_arg(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} takes a date like 2026-11-01, got {text!r}") from None


def budgets_for(ledger: Ledger, directory: Path | None, err: Console | None = None) -> list[Budget]:
    """The budgets in force; file problems go to stderr (a broken file keeps its last good version)."""
    from finops.env import budgets_dir
    from finops.usecases.budgets import budgets_in_force

    found = budgets_in_force(ledger, directory or budgets_dir())
    for message in found.messages:
        if err is None:
            typer.echo(message, err=True)
        else:
            err.print(message, markup=False)
    return list(found.budgets)


def tag_pair(text: str) -> tuple[str, str]:
    """``--tag KEY=VALUE`` as a pair."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--tag takes KEY=VALUE, got {text!r}")
    return key, value
