"""``finops export focus``: a month of LLM spend as a FOCUS file for finance's FinOps tools."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from finops.cli.common import DbOpt, err_console, ledger_for
from finops.errors import UsageError

__all__ = ["focus", "register"]

export_app = typer.Typer(help="Export the ledger in standard formats.", no_args_is_help=True)


class FocusFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


class Grain(StrEnum):
    day = "day"
    hour = "hour"


@export_app.command("focus")
def focus(
    month: Annotated[str, typer.Option("--month", help="The month to export, e.g. 2026-11.")],
    out_path: Annotated[Path, typer.Option("--out", help="The file to write.", dir_okay=False)],
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the month and its days (IANA name).")] = "UTC",
    grain: Annotated[Grain, typer.Option("--grain", help="One row per day or per hour.")] = Grain.day,
    fmt: Annotated[FocusFormat, typer.Option("--format", help="csv, or parquet (needs finops[parquet]).")] = (
        FocusFormat.csv
    ),
    db: DbOpt = None,
) -> None:
    """Write MONTH's priced usage as FOCUS 1.2 cost and usage rows (docs/focus.md).

    The sum of BilledCost equals `finops spend --month MONTH --tz TZ` to the nano-dollar.
    Unpriced usage has no cost to export: it is left out and counted on stderr.
    """
    from finops.domain.money import format_usd
    from finops.domain.words import plural
    from finops.usecases.export_focus import focus_export
    from finops.usecases.spend_request import resolve_zone

    try:
        zone = resolve_zone(tz)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not out_path.parent.is_dir():
        raise UsageError(f"--out {out_path}: the folder {out_path.parent} does not exist")
    ledger = ledger_for(db)
    try:
        export = focus_export(ledger, month, tz=zone, grain=grain.value)
    finally:
        ledger.close()
    try:
        _write(export.rows, out_path, parquet=fmt is FocusFormat.parquet)
    except OSError as exc:
        raise UsageError(f"--out {out_path}: cannot write it ({exc.strerror or exc})") from None
    err = err_console()
    err.print(
        f"wrote {plural(len(export.rows), 'row')} to {out_path}: {plural(export.records, 'priced record')}, "
        f"BilledCost ${format_usd(export.billed_nanos)} ({export.month}, {zone.key}, by {grain.value})",
        markup=False,
    )
    if not export.rows:
        err.print(
            f"{export.month} has no priced usage in {zone.key}: the file is its header alone, with nothing "
            "to load (the FOCUS validator fails a file without rows; check --month and --tz)",
            markup=False,
        )
    if export.unpriced_records:
        models = ", ".join(f"{m} ({n:,})" for m, n in sorted(export.unpriced_models.items())[:5])
        err.print(
            f"left out {plural(export.unpriced_records, 'unpriced record')} "
            f"({export.unpriced_tokens:,} tokens): "
            f"no price, so no cost to export, never $0: {models}; `finops prices unpriced` says which to add",
            markup=False,
        )


def _write(rows: list[dict[str, str]], out_path: Path, *, parquet: bool) -> None:
    """Write to a temporary file of its own beside ``out_path``, then rename it: a reader never sees
    half a file, two exports to one path never write into each other's file, and a user's own
    ``FILE.partial`` is never touched."""
    import os
    import tempfile

    from finops.render.focus import write_csv, write_parquet

    fd, name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".partial", dir=out_path.parent)
    os.close(fd)
    partial = Path(name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        partial.chmod(0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
        if parquet:
            write_parquet(rows, partial)
        else:
            write_csv(rows, partial)
        partial.replace(out_path)
    finally:
        partial.unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
