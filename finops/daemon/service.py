"""What the daemon's HTTP API does, without HTTP: ingest batches, check budgets, answer spend.

Thread-safe: request handlers call these from a thread pool. On SQLite one batch writes at a
time (the database has one writer anyway); PostgreSQL takes a few at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from finops.daemon.budget_watch import BudgetWatch
from finops.daemon.database_outage import DatabaseOutage, DatabaseUnavailable, unavailable
from finops.daemon.parse_pool import BodyProblem, ParsePool
from finops.storage.ledger import Rejection
from finops.usecases.admission import ReserveRequest, ReserveResult, release, reserve
from finops.usecases.budgets import CheckResult, check_flow
from finops.usecases.ingest import (
    IngestSummary,
    Prepared,
    RowBatch,
    prepare_mapped,
    prepare_objects,
    write_prepared,
)
from finops.usecases.ledger import Ledger
from finops.usecases.outcomes import ingest_outcome_objects
from finops.usecases.spend import SpendQuery, SpendResult, run_spend

__all__ = ["BatchResult", "IngestService"]


@dataclass
class BatchResult:
    """The answer to one posted batch: counts, and each rejected record with its reason."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    unpriced: int = 0
    skipped: int = 0  # OTLP spans that are not LLM calls
    notes: list[str] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, summary: IngestSummary, *, skipped: int = 0) -> BatchResult:
        return cls(
            received=summary.read,
            stored=summary.stored,
            duplicates=summary.duplicates,
            rejected=summary.rejected,
            unpriced=summary.unpriced,
            skipped=skipped,
            notes=sorted(summary.notes),
            rejections=[_rejection(r) for r in summary.examples],
        )

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "unpriced": self.unpriced,
        }
        if self.skipped:
            doc["skipped"] = self.skipped
        if self.notes:
            doc["notes"] = self.notes
        doc["rejections"] = self.rejections
        return doc


def _rejection(r: Rejection) -> dict[str, Any]:
    return {"index": r.line, "id": r.record_id, "reason": r.reason}


class IngestService:
    """The operations behind the HTTP API; ``on_ingest`` wakes the daemon loop to check budgets.

    Raises :class:`DatabaseUnavailable` when the database cannot serve now (the API answers 503).
    """

    def __init__(
        self,
        ledger: Ledger,
        budgets: BudgetWatch,
        on_ingest: Callable[[], None] = lambda: None,
        outage: DatabaseOutage | None = None,
    ):
        self.ledger = ledger
        self.budgets = budgets
        self._on_ingest = on_ingest
        self.outage = outage or DatabaseOutage()
        sqlite = ledger.engine.dialect.name == "sqlite"
        # SQLite has one writer at a time: a plain lock, whose wait is in C (a semaphore waits on
        # a Condition in Python: a fifth of the daemon's time under 32 reserve+settle clients).
        self._writers: AbstractContextManager[Any] = (
            threading.Lock() if sqlite else threading.BoundedSemaphore(4)
        )
        self._parsers = ParsePool(ledger.settings.ingest_workers)

    @contextmanager
    def _database(self, *, writing: bool) -> Iterator[None]:
        """Database work: an outage is told to ``outage`` (one log line) and raised as
        ``DatabaseUnavailable``; anything else propagates as it is."""
        try:
            yield
        except Exception as exc:
            if not unavailable(exc):
                raise
            self.outage.failed(exc, writing=writing)
            raise DatabaseUnavailable(str(exc)) from None
        self.outage.succeeded(writing=writing)

    def _summary(self) -> IngestSummary:
        return IngestSummary(example_limit=self.ledger.settings.max_batch_records)

    def _write(self, source: str, batch: Prepared | RowBatch, summary: IngestSummary) -> None:
        rows = batch.rows if isinstance(batch, RowBatch) else batch.items
        if not rows and not batch.rejections:  # nothing to write: says nothing about the database
            write_prepared(self.ledger, source, batch, summary)
            return
        with self._writers, self._database(writing=True):
            write_prepared(self.ledger, source, batch, summary)
        if summary.stored:
            self._on_ingest()

    def usage(self, objects: Sequence[Any], *, source: str) -> BatchResult:
        """Usage records (docs/design.md §2); ``index`` of a rejection is its place in the batch."""
        summary = self._summary()
        batch = prepare_objects(self.ledger.book, self.ledger.user_key, objects, "http")
        self._write(source, batch, summary)
        return BatchResult.of(summary)

    def usage_body(self, body: bytes, *, ndjson: bool, source: str) -> BatchResult | BodyProblem:
        """A posted body of usage, parsed in the parser process when it is large."""
        rows = self._parsers.parse(
            self.ledger.book,
            self.ledger.user_key,
            body,
            ndjson=ndjson,
            limit=self.ledger.settings.max_batch_records,
            source=source,
        )
        if isinstance(rows, BodyProblem):
            return rows
        summary = self._summary()
        self._write(source, rows, summary)
        return BatchResult.of(summary)

    def start(self) -> None:
        """Load the price book and start the parser process before the first request."""
        self._parsers.start(self.ledger.book, self.ledger.user_key)

    def close(self) -> None:
        self._parsers.close()

    def mapped(
        self, items: Sequence[tuple[str, Any]], *, source: str, rejections: Sequence[Rejection] = ()
    ) -> BatchResult:
        """Records mapped from another format (OTLP spans, LiteLLM logs): ``None`` items are skipped;
        ``rejections``: parts of the body that could not even be decoded (kept as dead letters)."""
        summary = self._summary()
        batch, skipped = prepare_mapped(self.ledger.book, self.ledger.user_key, items)
        batch.read += len(rejections)
        batch.rejections.extend(rejections)
        self._write(source, batch, summary)
        return BatchResult.of(summary, skipped=skipped)

    def outcomes(self, objects: Sequence[Any], *, source: str) -> BatchResult:
        summary = self._summary()
        with self._writers, self._database(writing=True):
            ingest_outcome_objects(self.ledger, objects, source=source, location="http", summary=summary)
        return BatchResult.of(summary)

    def check(
        self, flow: str, *, tags: Mapping[str, str], estimate_usd: Decimal, now: datetime
    ) -> CheckResult:
        with self._database(writing=False), self.ledger.engine.connect() as conn:
            return check_flow(
                conn, self.budgets.budgets, flow=flow, tags=tags, now=now, estimate_usd=estimate_usd
            )

    def reserve(self, req: ReserveRequest, *, source: str) -> ReserveResult:
        """Hold money for a call in flight, or deny (usecases/admission.py)."""
        with self._writers, self._database(writing=True):
            return reserve(self.ledger, self.budgets.budgets, req, source=source)

    def release(self, reservation_id: str) -> str:
        with self._writers, self._database(writing=True):
            return release(self.ledger, reservation_id)

    def spend(self, query: SpendQuery) -> SpendResult:
        with self._database(writing=False), self.ledger.engine.connect() as conn:
            return run_spend(conn, query)
