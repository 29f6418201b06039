"""What the daemon's HTTP API does, without HTTP: ingest batches, check budgets, answer spend.

Thread-safe: request handlers call these from a thread pool. Every write goes through one
writer thread (daemon/group_commit.py), which commits what is waiting together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from anyio import to_thread
from sqlalchemy import Connection

from finops.daemon.budget_watch import BudgetWatch
from finops.daemon.database_outage import DatabaseOutage, DatabaseUnavailable, unavailable
from finops.daemon.group_commit import GroupCommit
from finops.daemon.parse_pool import BodyProblem, ParsePool
from finops.storage.ledger import Rejection
from finops.usecases.admission import ReserveRequest, ReserveResult, prepare, release, replayed
from finops.usecases.budgets import CheckResult, check_ledger, ledger_flows
from finops.usecases.ingest import (
    IngestSummary,
    Prepared,
    RowBatch,
    count_written,
    prepare_mapped,
    prepare_objects,
    stage,
)
from finops.usecases.ledger import Ledger
from finops.usecases.outcomes import ingest_outcome_objects
from finops.usecases.spend import SpendQuery, SpendResult, run_spend

__all__ = ["BatchResult", "IngestService"]

#: Usage bodies up to this size are parsed on the event loop (a few records: well under a
#: millisecond); larger ones in a worker thread or the parser process.
_INLINE_BYTES = 4 * 1024
#: How long the set of flows with usage (``known_flow`` of a check) is trusted before a flow
#: missing from it makes it be read again.
_FLOWS_FRESH_S = 1.0


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
    ``read_outage`` follows the read database (FINOPS_READ_DATABASE_URL) when reads are split off;
    otherwise it is ``outage`` itself.
    """

    def __init__(
        self,
        ledger: Ledger,
        budgets: BudgetWatch,
        on_ingest: Callable[[], None] = lambda: None,
        outage: DatabaseOutage | None = None,
        read_outage: DatabaseOutage | None = None,
    ):
        self.ledger = ledger
        self.budgets = budgets
        self._on_ingest = on_ingest
        self.outage = outage or DatabaseOutage()
        self.read_outage = read_outage or (
            DatabaseOutage(what="read database") if ledger.split else self.outage
        )
        self._writer = GroupCommit(
            ledger, lambda: self.budgets.budgets, max_records=ledger.settings.max_batch_records
        )
        self._parsers = ParsePool(ledger.settings.ingest_workers)
        self._known_flows: tuple[frozenset[str], float] = (frozenset(), -_FLOWS_FRESH_S)

    @contextmanager
    def _database(self, *, writing: bool, outage: DatabaseOutage | None = None) -> Iterator[None]:
        """Database work: an outage is told to ``outage`` (one log line) and raised as
        ``DatabaseUnavailable``; anything else propagates as it is."""
        outage = outage or self.outage
        try:
            yield
        except Exception as exc:
            if not unavailable(exc):
                raise
            outage.failed(exc, writing=writing)
            raise DatabaseUnavailable(str(exc)) from None
        outage.succeeded(writing=writing)

    def reading(self) -> AbstractContextManager[None]:
        """Around work on ``ledger.read_engine`` (what is only shown): its outage is the read
        database's, which leaves the primary, and with it ingest and budget checks, up."""
        return self._database(writing=False, outage=self.read_outage)

    def _summary(self) -> IngestSummary:
        return IngestSummary(example_limit=self.ledger.settings.max_batch_records)

    def _write(self, source: str, batch: Prepared | RowBatch, summary: IngestSummary) -> None:
        staged = stage(self.ledger, source, batch, summary)
        if staged is None:  # nothing to write: says nothing about the database
            return
        with self._database(writing=True):
            count_written(summary, self._writer.usage(staged))
        if summary.stored:
            self._on_ingest()

    def usage(self, objects: Sequence[Any], *, source: str) -> BatchResult:
        """Usage records (docs/design.md §2); ``index`` of a rejection is its place in the batch."""
        summary = self._summary()
        batch = prepare_objects(self.ledger.book, self.ledger.user_key, objects, "http")
        self._write(source, batch, summary)
        return BatchResult.of(summary)

    def _parse(self, body: bytes, *, ndjson: bool, source: str) -> RowBatch | BodyProblem:
        return self._parsers.parse(
            self.ledger.book,
            self.ledger.user_key,
            body,
            ndjson=ndjson,
            limit=self.ledger.settings.max_batch_records,
            source=source,
        )

    def usage_body(self, body: bytes, *, ndjson: bool, source: str) -> BatchResult | BodyProblem:
        """A posted body of usage, parsed in the parser process when it is large."""
        rows = self._parse(body, ndjson=ndjson, source=source)
        if isinstance(rows, BodyProblem):
            return rows
        summary = self._summary()
        self._write(source, rows, summary)
        return BatchResult.of(summary)

    async def usage_body_async(self, body: bytes, *, ndjson: bool, source: str) -> BatchResult | BodyProblem:
        """:meth:`usage_body` for the event loop: a small body without prompts (the common case,
        a call's usage and its settlement) is parsed here and awaits the writer without a
        thread of its own; anything slower (a large body, prompt texts to count) goes to a
        worker thread."""
        if len(body) > _INLINE_BYTES:
            return await to_thread.run_sync(lambda: self.usage_body(body, ndjson=ndjson, source=source))
        rows = self._parse(body, ndjson=ndjson, source=source)  # small: parsed here, not in the pool
        if isinstance(rows, BodyProblem):
            return rows
        summary = self._summary()
        if rows.prompts:  # counting prompt tokens is slow: not on the event loop
            await to_thread.run_sync(lambda: self._write(source, rows, summary))
            return BatchResult.of(summary)
        staged = stage(self.ledger, source, rows, summary)
        if staged is not None:
            with self._database(writing=True):
                count_written(summary, await self._writer.usage_async(staged))
            if summary.stored:
                self._on_ingest()
        return BatchResult.of(summary)

    async def reserve_async(self, req: ReserveRequest, *, source: str) -> ReserveResult:
        """:meth:`reserve` for the event loop; a prompt to count goes to a worker thread. A
        retried request_id is answered by the writer, from the database, like a new one."""
        if req.prompt is not None:
            return await to_thread.run_sync(lambda: self.reserve(req, source=source))
        ask = prepare(self.ledger, req, source=source, now=datetime.now(UTC))
        with self._database(writing=True):
            return await self._writer.reserve_async(ask)

    def start(self) -> None:
        """Load the price book and start the parser process before the first request."""
        self._parsers.start(self.ledger.book, self.ledger.user_key)

    def close(self) -> None:
        self._writer.close()
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
        with self._database(writing=True):
            self._writer.call(
                lambda: ingest_outcome_objects(
                    self.ledger, objects, source=source, location="http", summary=summary
                )
            )
        return BatchResult.of(summary)

    def check(
        self, flow: str, *, tags: Mapping[str, str], estimate_usd: Decimal, now: datetime
    ) -> CheckResult:
        with self._database(writing=False):
            return check_ledger(
                self.ledger,
                self.budgets.budgets,
                flow=flow,
                tags=tags,
                now=now,
                estimate_usd=estimate_usd,
                flow_seen=self._flow_seen,
            )

    def _flow_seen(self, conn: Connection, flow: str) -> bool:
        """``known_flow`` for flows no budget covers (a gateway may check every call of one): from
        the set of flows with usage, re-read at most every few seconds, not a query per check."""
        flows, read_at = self._known_flows
        if flow in flows:
            return True
        if time.monotonic() - read_at < _FLOWS_FRESH_S:
            return False
        flows = ledger_flows(conn)
        self._known_flows = (flows, time.monotonic())
        return flow in flows

    def reserve(self, req: ReserveRequest, *, source: str) -> ReserveResult:
        """Hold money for a call in flight, or deny (usecases/admission.py): a retried request_id
        is answered from the database; a new one is estimated here and decided by the writer."""
        with self._database(writing=True):
            earlier = replayed(self.ledger, req, source=source)
            if earlier is not None:
                return earlier
            ask = prepare(self.ledger, req, source=source, now=datetime.now(UTC))
            return self._writer.reserve(ask)

    def release(self, reservation_id: str) -> str:
        with self._database(writing=True):
            return self._writer.call(lambda: release(self.ledger, reservation_id))

    def spend(self, query: SpendQuery) -> SpendResult:
        with self.reading(), self.ledger.read_engine.connect() as conn:
            return run_spend(conn, query)
