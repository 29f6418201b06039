"""``finops budgets``: check budget files before they are deployed, and give editors their schema.

Thin on purpose: the rules live in ``finops.config.budget_files``. Registered on the
root ``finops`` app, whose group turns a ``FinopsError`` into ``error: ...`` and an exit code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from finops.config.budget_files import budget_json_schema, load_budget_dir
from finops.errors import UsageError
from finops.settings import load_settings

__all__ = ["budgets_app"]

budgets_app = typer.Typer(
    help="Budget files: validate them (file:line: what is wrong), print their JSON Schema.",
    no_args_is_help=True,
)


@budgets_app.command()
def validate(
    directory: Annotated[
        Path | None, typer.Argument(help="Folder of *.yaml budget files (default: FINOPS_BUDGETS_DIR).")
    ] = None,
    budgets: Annotated[Path | None, typer.Option("--budgets", help="Same as DIR.")] = None,
) -> None:
    """Check every budget file; exit 1 if any has an error (a broken file would not be used)."""
    if directory is not None and budgets is not None and directory != budgets:
        raise UsageError("give the budget folder once: as DIR or as --budgets")
    result = load_budget_dir(directory or budgets or load_settings().budgets_dir)
    for problem in result.problems:
        typer.echo(str(problem), err=True)
    typer.echo(result.summary())
    if result.errors:
        raise typer.Exit(1)


@budgets_app.command()
def schema() -> None:
    """Print the JSON Schema of a budget file, for editor completion and checks."""
    typer.echo(json.dumps(budget_json_schema(), indent=2))
