"""What an ingest did, and the dead letters, for people and machines."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from finops.domain.money import format_usd
from finops.usecases.dead_letters import DeadLetter
from finops.usecases.ingest import IngestSummary

__all__ = ["print_dead_letters", "print_ingest_summary"]


def print_ingest_summary(
    summary: IngestSummary, *, files: int, console: Console, what: str = "usage"
) -> None:
    """One line of counts, then what needs attention: rejections and unpriced models."""
    where = f" from {files} file{'s' * (files != 1)}" if files else ""
    if what == "outcomes":
        console.print(
            f"read {summary.read:,} outcomes{where}: stored {summary.stored:,}, duplicates "
            f"{summary.duplicates:,}, rejected {summary.rejected:,}; {summary.linked:,} usage records linked",
            markup=False,
        )
        _rejections(summary, console)
        return
    console.print(
        f"read {summary.read:,}{where}: stored {summary.stored:,}, duplicates {summary.duplicates:,}, "
        f"rejected {summary.rejected:,}, unpriced {summary.unpriced:,}; "
        f"cost added ${format_usd(summary.cost_nanos)}",
        markup=False,
    )
    _rejections(summary, console)
    for note in sorted(summary.notes):
        console.print(f"note: {note}", markup=False)
    if summary.unpriced_models:
        models = ", ".join(f"{m} ({n:,})" for m, n in summary.unpriced_models.most_common(5))
        console.print(
            f"no price for: {models}. These records are stored unpriced (not $0); add a price "
            "(FINOPS_PRICE_OVERRIDES or `finops prices import`), then `finops reprice --since DATE`.",
            markup=False,
        )


def _rejections(summary: IngestSummary, console: Console) -> None:
    if not summary.rejected:
        return
    console.print(
        f"rejected lines are in the dead-letter table (`finops dead-letters`); "
        f"{summary.conflicts:,} were conflicts (same id, different content):",
        markup=False,
    )
    for reason, count in summary.reasons.most_common(5):
        console.print(f"  {count:>8,}  {reason}", markup=False)
    for ex in summary.examples[:3]:
        line = f":{ex.line}" if ex.line is not None else ""
        console.print(f"  e.g. {ex.location}{line}: {ex.reason}", markup=False)


def print_dead_letters(total: int, letters: list[DeadLetter], *, as_json: bool, console: Console) -> None:
    items = [
        {
            "source": r.source,
            "location": r.location,
            "line": r.line,
            "record_id": r.record_id,
            "reason": r.reason,
            "digest": r.digest,
            "at": r.at.isoformat(timespec="seconds"),
        }
        for r in letters
    ]
    if as_json:
        console.print_json(json.dumps({"total": total, "dead_letters": items}))
        return
    if not items:
        console.print("No dead letters: every line ingested so far was stored.")
        return
    table = Table(box=None, pad_edge=False)
    for name in ("where", "id", "reason"):
        table.add_column(name, overflow="fold")
    for item in items:
        where = f"{item['location']}:{item['line']}" if item["line"] is not None else str(item["location"])
        table.add_row(where, str(item["record_id"] or ""), str(item["reason"]))
    console.print(table)
    console.print(f"{len(items)} of {total:,} dead letters shown (newest first).", markup=False)
