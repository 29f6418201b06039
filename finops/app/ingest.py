"""Ingest: lines -> validated, priced records -> the ledger, in batched transactions.

Each batch commits alone, so a crash loses at most the batch in flight, and
re-running the same input afterwards stores only what was missing. A bad line
becomes a dead letter with file, line and reason and never stops the others.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from finops.app.ledger import Ledger
from finops.app.pricing import price_record
from finops.domain.pricing import PriceMatch
from finops.domain.usage import RecordError, parse_usage
from finops.ingest.jsonl import Line, expand_paths, read_lines
from finops.storage.ledger import PricedRecord, Rejection, record_price_versions, write_batch

__all__ = ["IngestSummary", "ingest_lines", "ingest_objects", "ingest_paths"]

DEFAULT_SOURCE = "default"


@dataclass
class IngestSummary:
    """What an ingest did; printed at the end and returned to callers."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    unpriced: int = 0
    cost_nanos: int = 0
    unpriced_models: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[Rejection] = field(default_factory=list)

    def add_rejection(self, rejection: Rejection) -> None:
        self.rejected += 1
        self.reasons[rejection.reason.split(":")[0]] += 1
        if len(self.examples) < 10:
            self.examples.append(rejection)


def _now_us() -> int:
    return time.time_ns() // 1000


class _Batcher:
    """Collects priced records and rejections; writes a batch in one transaction when full."""

    def __init__(self, ledger: Ledger, source: str, summary: IngestSummary, size: int) -> None:
        self.ledger, self.source, self.summary, self.size = ledger, source, summary, size
        self.items: list[PricedRecord] = []
        self.rejections: list[Rejection] = []
        self.matches: dict[str, PriceMatch] = {}
        self.known_versions: set[str] = set()

    def accept(self, obj: Any, *, location: str, line: int | None, raw: str | Callable[[], str]) -> None:
        self.summary.read += 1
        try:
            record = parse_usage(obj, user_key=self.ledger.user_key)
        except RecordError as exc:
            rid = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
            self.reject(Rejection(location, line, exc.reason, raw if isinstance(raw, str) else raw(), rid))
            return
        cost, match = price_record(self.ledger.book, record)
        version = None
        if match is not None:
            version = match.version
            if version not in self.known_versions:
                self.matches[version] = match
        self.items.append(PricedRecord(record, cost, version, location, line))
        if len(self.items) >= self.size:
            self.flush()

    def reject(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)
        self.summary.add_rejection(rejection)
        if len(self.rejections) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.items and not self.rejections:
            return
        now = _now_us()
        with self.ledger.engine.begin() as conn:
            if self.matches:
                record_price_versions(conn, self.matches.values(), now_us=now)
            outcome = write_batch(
                conn, source=self.source, items=self.items, rejections=self.rejections, now_us=now
            )
        self.known_versions.update(self.matches)
        s = self.summary
        s.stored += outcome.stored
        s.duplicates += outcome.duplicates
        s.cost_nanos += outcome.cost_nanos
        s.unpriced += outcome.unpriced
        s.conflicts += len(outcome.conflicts)
        for conflict in outcome.conflicts:
            s.add_rejection(conflict)
        if outcome.unpriced:
            stored_unpriced = Counter(
                f"{i.record.provider}/{i.record.model}" for i in self.items if i.cost_nanos is None
            )
            s.unpriced_models.update(stored_unpriced)
        self.items, self.rejections, self.matches = [], [], {}


def ingest_lines(
    ledger: Ledger,
    lines: Iterable[Line],
    *,
    source: str = DEFAULT_SOURCE,
    batch_size: int | None = None,
    summary: IngestSummary | None = None,
) -> IngestSummary:
    """Decode, validate, price and store JSONL lines."""
    summary = summary if summary is not None else IngestSummary()
    batcher = _Batcher(ledger, source, summary, batch_size or ledger.settings.ingest_batch_size)
    loads = orjson.loads
    for line in lines:
        try:
            obj = loads(line.text)
        except orjson.JSONDecodeError as exc:
            summary.read += 1
            batcher.reject(Rejection(line.path, line.number, f"invalid JSON: {exc}", line.text))
            continue
        batcher.accept(obj, location=line.path, line=line.number, raw=line.text)
    batcher.flush()
    return summary


def ingest_objects(
    ledger: Ledger, objects: Sequence[Any], *, source: str, location: str = "api"
) -> IngestSummary:
    """Store already-decoded records (an HTTP batch, a provider report)."""
    summary = IngestSummary()
    batcher = _Batcher(ledger, source, summary, max(len(objects), 1))
    for index, obj in enumerate(objects):
        batcher.accept(obj, location=location, line=index, raw=lambda o=obj: json.dumps(o, default=str))
    batcher.flush()
    return summary


def ingest_paths(
    ledger: Ledger,
    paths: Sequence[Path],
    *,
    source: str = DEFAULT_SOURCE,
    batch_size: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest files and directories (``.jsonl``, ``.jsonl.gz``) as one stream."""
    files = expand_paths(paths)
    summary = IngestSummary()

    def lines() -> Iterable[Line]:
        for path in files:
            yield from read_lines(path, on_bytes=on_bytes)

    return ingest_lines(ledger, lines(), source=source, batch_size=batch_size, summary=summary)
