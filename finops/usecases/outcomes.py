"""Ingest outcomes (JSONL): validated, stored once per (source, id), linked to their usage."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from finops.domain.outcomes import Outcome, parse_outcome
from finops.domain.usage import RecordError
from finops.sources.jsonl import Line, expand_paths
from finops.storage.db import write_transaction
from finops.storage.ledger import Rejection, write_dead_letters
from finops.storage.outcomes import write_outcomes
from finops.usecases.ingest import FileLines, IngestSummary, chunked, line_digest, object_digest
from finops.usecases.ledger import Ledger

__all__ = ["ingest_outcome_objects", "ingest_outcome_paths"]


def _store(
    ledger: Ledger,
    source: str,
    items: list[tuple[Outcome, str, int | None]],
    rejections: list[Rejection],
    summary: IngestSummary,
) -> None:
    now = time.time_ns() // 1000
    with write_transaction(ledger.engine) as conn:
        batch = write_outcomes(conn, source=source, items=items, now_us=now)
        write_dead_letters(
            conn, source=f"{source}:outcomes", rejections=[*rejections, *batch.conflicts], now_us=now
        )
    summary.stored += batch.stored
    summary.duplicates += batch.duplicates
    summary.conflicts += len(batch.conflicts)
    summary.linked += batch.linked
    for rejection in [*rejections, *batch.conflicts]:
        summary.add_rejection(rejection)


def _write(ledger: Ledger, source: str, lines: Sequence[Line], summary: IngestSummary) -> None:
    items: list[tuple[Outcome, str, int | None]] = []
    rejections: list[Rejection] = []
    for line in lines:
        summary.read += 1
        try:
            items.append((parse_outcome(orjson.loads(line.text)), line.path, line.number))
        except orjson.JSONDecodeError as exc:
            rejections.append(
                Rejection(
                    line.path, line.number, f"invalid JSON: {exc}", line_digest(line.text, ledger.user_key)
                )
            )
        except RecordError as exc:
            rejections.append(
                Rejection(line.path, line.number, exc.reason, line_digest(line.text, ledger.user_key))
            )
    _store(ledger, source, items, rejections, summary)


def ingest_outcome_objects(
    ledger: Ledger, objects: Sequence[Any], *, source: str, location: str, summary: IngestSummary
) -> IngestSummary:
    """Already-decoded outcomes (an HTTP batch) in one transaction; ``line`` is the index in the batch."""
    items: list[tuple[Outcome, str, int | None]] = []
    rejections: list[Rejection] = []
    for index, obj in enumerate(objects):
        summary.read += 1
        try:
            items.append((parse_outcome(obj), location, index))
        except RecordError as exc:
            rid = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
            digest = object_digest(obj, ledger.user_key)
            rejections.append(Rejection(location, index, exc.reason, digest, rid))
    _store(ledger, source, items, rejections, summary)
    return summary


def ingest_outcome_lines(
    ledger: Ledger, lines: Iterable[Line], *, source: str, batch_size: int = 2000
) -> IngestSummary:
    summary = IngestSummary()
    for chunk in chunked(lines, batch_size):
        _write(ledger, source, chunk, summary)
    return summary


def ingest_outcome_paths(ledger: Ledger, paths: Sequence[Path], *, source: str = "default") -> IngestSummary:
    """Outcomes from JSONL files or directories; bad lines become dead letters with line and reason."""
    lines = FileLines(expand_paths(paths))
    summary = ingest_outcome_lines(ledger, lines, source=source)
    lines.raise_if_stopped(summary, "outcomes")
    return summary
