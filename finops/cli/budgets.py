"""``finops budgets``: check budget files before they are deployed, and give editors their schema.

Thin on purpose: the rules live in ``finops.config.budget_files``. Registered on the
root ``finops`` app, whose group turns a ``FinopsError`` into ``error: ...`` and an exit code.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finops.errors import UsageError

if TYPE_CHECKING:
    from finops.config.budget_files import BudgetSet

__all__ = ["budgets_app"]

budgets_app = typer.Typer(
    help="Budget files: validate them (file:line: what is wrong), print their JSON Schema.",
    no_args_is_help=True,
)


@budgets_app.command()
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[PATH]...",
            help="Budget files and folders of *.yaml budget files (default: FINOPS_BUDGETS_DIR).",
        ),
    ] = None,
    budgets: Annotated[Path | None, typer.Option("--budgets", help="A budget folder, same as PATH.")] = None,
) -> None:
    """Check budget files (one, several, or folders of them, as one set); exit 1 if any has an error
    (a broken file would not be used)."""
    from finops.config.budget_files import load_budget_dir, load_budget_paths
    from finops.settings import load_settings

    if paths and budgets is not None and paths != [budgets]:
        raise UsageError("give the budget files or folder once: as PATH or as --budgets")
    named = paths or ([budgets] if budgets is not None else [])
    found = load_budget_paths(named) if named else load_budget_dir(load_settings().budgets_dir)
    result = _with_owner_warnings(found)
    for problem in result.problems:
        typer.echo(str(problem), err=True)
    typer.echo(result.summary())
    if result.errors:
        raise typer.Exit(1)


def _with_owner_warnings(result: BudgetSet) -> BudgetSet:
    """Warn (never fail) about owners an alert could not notify, looked up in Slack with a bot token."""
    from finops.errors import ConfigError
    from finops.notify.slack import sender_for
    from finops.settings import Settings
    from finops.usecases.alerts import owner_problems

    try:
        settings = Settings()
        sender = sender_for(settings) if settings.slack_bot_token else None
    except (ConfigError, ValueError):  # Slack settings are `finops run`'s to report
        sender = None
    extra = owner_problems(result, sender)
    if not extra:
        return result
    problems = sorted([*result.problems, *extra], key=lambda p: (p.file, p.line or 0))
    return dataclasses.replace(result, problems=problems)


@budgets_app.command()
def schema() -> None:
    """Print the JSON Schema of a budget file, for editor completion and checks."""
    from finops.config.budget_files import budget_json_schema

    typer.echo(json.dumps(budget_json_schema(), indent=2))
