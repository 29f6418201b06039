"""What an ingest did, and the dead letters, for people and machines."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from finops.domain.money import format_usd
from finops.usecases.dead_letters import DeadLetter
from finops.usecases.ingest import IngestSummary

__all__ = ["print_dead_letters", "print_ingest_summary", "rejection_lines"]


def print_ingest_summary(
    summary: IngestSummary, *, files: int, console: Console, what: str = "usage"
) -> None:
    """One line of counts, then what needs attention: rejections and unpriced models. Lines are
    never wrapped at the terminal's width (a note or a reason stays greppable)."""
    where = f" from {files} file{'s' * (files != 1)}" if files else ""
    if what == "outcomes":
        console.print(
            f"read {summary.read:,} outcomes{where}: stored {summary.stored:,}, duplicates "
            f"{summary.duplicates:,}, rejected {summary.rejected:,}; {summary.linked:,} usage records linked",
            markup=False,
            soft_wrap=True,
        )
        _rejections(summary, console)
        return
    console.print(
        f"read {summary.read:,}{where}: stored {summary.stored:,}, duplicates {summary.duplicates:,}, "
        f"rejected {summary.rejected:,}, unpriced {summary.unpriced:,}; "
        f"cost added ${format_usd(summary.cost_nanos)}",
        markup=False,
        soft_wrap=True,
    )
    _rejections(summary, console)
    for note in sorted(summary.notes):
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    if summary.unpriced_models:
        models = ", ".join(f"{m} ({n:,})" for m, n in summary.unpriced_models.most_common(5))
        console.print(
            f"no price for: {models}. These records are stored unpriced (not $0); add a price "
            "(FINOPS_PRICE_OVERRIDES or `finops prices import`), then `finops reprice --since DATE`.",
            markup=False,
            soft_wrap=True,
        )


#: Reasons listed after an ingest; the rest are counted on one line that points at the dead letters.
SHOWN_REASONS = 5


def rejection_lines(summary: IngestSummary) -> list[str]:
    """Why lines were rejected, as written, with a count per reason, most frequent first (at most
    SHOWN_REASONS lines), then ``+N more`` for the rest: the counts add up to ``rejected``."""
    if not summary.rejected:
        return []
    conflicts = summary.conflicts
    of_them = (
        f"; {conflicts:,} of them {'is a conflict' if conflicts == 1 else 'are conflicts'} "
        "(same id, different content)"
        if conflicts
        else ""
    )
    lines = [f"rejected {summary.rejected:,}, each in the dead letters with its file and line{of_them}:"]
    shown = 0
    for reason, count in summary.reasons.most_common(SHOWN_REASONS):
        first = summary.first_at[reason]
        where = f"{first.location}:{first.line}" if first.line is not None else first.location
        lines.append(f"  {count:>8,}  {reason}  (first: {where})")
        shown += count
    rest = summary.rejected - shown
    if rest:
        reasons = len(summary.reasons) - SHOWN_REASONS
        plus = "+" if summary.other_reasons else ""
        kinds = f" ({reasons:,}{plus} other reason{'s' * (reasons != 1)})" if reasons > 0 else ""
        lines.append(f"  {'+' + format(rest, ','):>8}  more{kinds}: finops dead-letters")
    return lines


def _rejections(summary: IngestSummary, console: Console) -> None:
    for line in rejection_lines(summary):
        console.print(line, markup=False, soft_wrap=True)  # one line each, however long


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
