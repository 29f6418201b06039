"""Ingest: lines -> validated, priced records -> the ledger, in batched transactions.

Each batch commits alone, so a crash loses at most the batch in flight, and
re-running the same input afterwards stores only what was missing. A bad line
becomes a dead letter with file, line and reason and never stops the others.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from finops.domain.digest import input_digest
from finops.domain.pricing import PriceBook, PriceMatch
from finops.domain.prompts import prompt_fingerprint, redacted_preview
from finops.domain.usage import RecordError, parse_usage
from finops.errors import IngestError
from finops.sources.jsonl import Line, UnreadableInput, expand_paths, read_lines
from finops.storage.db import lost_a_lock_race, write_transaction
from finops.storage.ledger import (
    BatchOutcome,
    PricedRecord,
    Rejection,
    record_price_versions,
    record_prompts,
    usage_row,
    write_dead_letters,
    write_rows_isolating,
)
from finops.storage.reservations import settle_reservations
from finops.storage.retention import hold_retention_lock
from finops.storage.tables import USAGE_COLUMNS
from finops.usecases.ledger import Ledger
from finops.usecases.pricing import price_record
from finops.usecases.process_pool import process_pool

__all__ = [
    "FileLines",
    "IngestSummary",
    "Prepared",
    "StagedWrite",
    "Written",
    "chunked",
    "count_written",
    "ingest_lines",
    "ingest_litellm_paths",
    "ingest_objects",
    "ingest_otlp_paths",
    "ingest_paths",
    "line_digest",
    "object_digest",
    "prepare_lines",
    "prepare_mapped",
    "prepare_objects",
    "stage",
    "write_prepared",
    "write_staged",
]

DEFAULT_SOURCE = "default"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: Distinct rejection reasons an ingest counts one by one (the rest are counted together).
MAX_REASONS = 1000


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
    linked: int = 0  # outcomes: usage records linked
    notes: set[str] = field(default_factory=set)  # e.g. token counts are estimates
    skipped: int = 0  # OTLP spans that are not LLM calls
    unpriced_models: Counter[str] = field(default_factory=Counter)
    #: rejections per reason as written (reasons never quote a sent text: see domain.text.shown)
    reasons: Counter[str] = field(default_factory=Counter)
    #: where each counted reason was first met
    first_at: dict[str, Rejection] = field(default_factory=dict)
    #: rejections whose reason was not counted: more than MAX_REASONS distinct ones
    other_reasons: int = 0
    examples: list[Rejection] = field(default_factory=list)
    example_limit: int = 10  # the HTTP API keeps them all: each rejected record gets its reason

    def add_rejection(self, rejection: Rejection) -> None:
        self.rejected += 1
        reason = rejection.reason
        if reason in self.reasons or len(self.reasons) < MAX_REASONS:
            self.reasons[reason] += 1
            self.first_at.setdefault(reason, rejection)
        else:  # memory stays bounded whatever the input: the rest are in the dead letters
            self.other_reasons += 1
        if len(self.examples) < self.example_limit:
            self.examples.append(rejection)


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Prepared:
    """One batch, decoded, validated and priced, ready to be written in one transaction."""

    read: int = 0
    items: list[PricedRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    matches: dict[str, PriceMatch] = field(default_factory=dict)
    #: prompts seen in this batch: key -> (first ts, text, model); counted and stored once each
    prompts: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    #: record id -> the reservation its cost settles (admission control)
    reservations: dict[str, str] = field(default_factory=dict)


def _accept(
    out: Prepared,
    book: PriceBook,
    user_key: bytes,
    obj: Any,
    location: str,
    line: int | None,
    text: str | None,
) -> None:
    """Validate and price one decoded record (``text``: its line, when it came as one)."""
    out.read += 1
    try:
        record = parse_usage(obj, user_key=user_key)
    except RecordError as exc:
        rid = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
        digest = line_digest(text, user_key) if text is not None else object_digest(obj, user_key)
        out.rejections.append(Rejection(location, line, exc.reason, digest, rid))
        return
    text = record.prompt_text
    if text is not None:
        if record.prompt_id is None:
            record.prompt_id = prompt_fingerprint(text)
        if record.prompt_id not in out.prompts:
            ts_us = (record.ts - _EPOCH) // _MICROSECOND
            out.prompts[record.prompt_id] = (ts_us, text, record.model)
        record.prompt_text = None  # the text goes no further
    if record.reservation_id is not None:
        out.reservations[record.id] = record.reservation_id
    cost, match = price_record(book, record)
    version = None
    if match is not None:
        version = match.version
        if version not in out.matches:
            out.matches[version] = match
    out.items.append(PricedRecord(record, cost, version, location, line))


def line_digest(text: str, key: bytes) -> str:
    """What the dead letters keep of a refused line: a keyed hash, never its words."""
    return input_digest(text, key)


def object_digest(obj: Any, key: bytes) -> str:
    """What the dead letters keep of a refused decoded record: a keyed hash of its canonical JSON
    (of a marker where it has none, e.g. nested deeper than JSON encoders go)."""
    try:
        data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        data = b"(a record with no canonical JSON: nested too deep, or not JSON)"
    return input_digest(data, key)


def prepare_lines(book: PriceBook, user_key: bytes, lines: Sequence[Line]) -> Prepared:
    """Decode, validate and price JSONL lines: pure CPU, no database (runs in a worker too)."""
    out = Prepared()
    loads = orjson.loads
    for line in lines:
        try:
            obj = loads(line.text)
        except orjson.JSONDecodeError as exc:
            out.read += 1
            out.rejections.append(
                Rejection(line.path, line.number, f"invalid JSON: {exc}", line_digest(line.text, user_key))
            )
            continue
        _accept(out, book, user_key, obj, line.path, line.number, line.text)
    return out


def prepare_objects(book: PriceBook, user_key: bytes, objects: Sequence[Any], location: str) -> Prepared:
    """Validate and price already-decoded records (an HTTP batch, a provider report)."""
    out = Prepared()
    for index, obj in enumerate(objects):
        _accept(out, book, user_key, obj, location, index, None)
    return out


def prepare_mapped(
    book: PriceBook, user_key: bytes, items: Iterable[tuple[str, Any]]
) -> tuple[Prepared, int]:
    """Records mapped from another format (OTLP spans, LiteLLM logs) as ``(where, record)``;
    ``None`` records are not LLM calls and are skipped. Returns the batch and the number skipped."""
    out = Prepared()
    skipped = 0
    for where, record in items:
        if record is None:
            skipped += 1
            continue
        _accept(out, book, user_key, record, where, out.read, None)
    return out, skipped


def _prompt_rows(ledger: Ledger, seen: dict[str, tuple[int, str, str]]) -> list[dict[str, Any]]:
    """Each new prompt's token count (tiktoken, or an estimate) and, if opted in, a redacted preview."""
    if not seen:
        return []
    counter = ledger.token_counter
    rows = []
    for key, (ts_us, text, model) in seen.items():
        count = counter.count(text, model)
        rows.append(
            {
                "prompt_id": key,
                "first_seen_us": ts_us,
                "prompt_tokens": count.tokens,
                "tokens_estimated": int(count.estimated),
                "preview": redacted_preview(text) if ledger.settings.prompt_preview else None,
            }
        )
    return rows


@dataclass
class RowBatch:
    """A prepared batch as plain rows: cheap to send between processes, ready to write."""

    read: int
    rows: list[tuple[Any, ...]]
    where: list[tuple[str, int | None]]
    rejections: list[Rejection]
    matches: dict[str, PriceMatch]
    prompts: dict[str, tuple[int, str, str]]
    reservations: dict[str, str] = field(default_factory=dict)


def to_rows(batch: Prepared, source: str) -> RowBatch:
    now = _now_us()
    return RowBatch(
        batch.read,
        [usage_row(item, source, now) for item in batch.items],
        [(item.location, item.line) for item in batch.items],
        batch.rejections,
        batch.matches,
        batch.prompts,
        batch.reservations,
    )


@dataclass
class StagedWrite:
    """One batch ready for the database, its summary already told what needs no database (lines
    read, records rejected before storage). Several can share a transaction (the daemon's group
    commit, :func:`write_staged`); the summary learns the rest only after the commit."""

    source: str
    batch: RowBatch
    summary: IngestSummary
    prompt_rows: list[dict[str, Any]]


@dataclass
class Written:
    """What the database did with one staged batch."""

    outcome: BatchOutcome
    refused: list[Rejection]  # records the database refused (write_rows_isolating)


def stage(
    ledger: Ledger, source: str, batch: Prepared | RowBatch, summary: IngestSummary
) -> StagedWrite | None:
    """The work before the transaction; ``None`` when the batch has nothing to write."""
    rb = batch if isinstance(batch, RowBatch) else to_rows(batch, source)
    prompt_rows = _prompt_rows(ledger, rb.prompts)
    if prompt_rows and (warning := ledger.token_counter.warning()):
        summary.notes.add(warning)
    summary.read += rb.read
    for rejection in rb.rejections:
        summary.add_rejection(rejection)
    if not rb.rows and not rb.rejections:
        return None
    return StagedWrite(source, rb, summary, prompt_rows)


def write_staged(conn: Connection, writes: Sequence[StagedWrite], *, now_us: int) -> list[Written]:
    """Write staged batches in the caller's transaction, in order; one result per batch.

    Consecutive batches of one source whose record ids are disjoint are written as one (one
    insert, one rollup upsert, one settlement: what makes a group commit cheap) and their
    outcomes split back by record id. A batch that shares an id with the run before it starts a
    new run, so duplicates and conflicts count exactly as if each batch had come alone, in order.
    """
    results: list[Written] = []
    run: list[StagedWrite] = []
    owner: set[str] = set()
    for w in writes:
        ids = {row[1] for row in w.batch.rows}
        if run and (w.source != run[0].source or not owner.isdisjoint(ids)):
            results.extend(_write_batches(conn, run[0].source, run, now_us))
            run, owner = [], set()
        run.append(w)
        owner |= ids
    if run:
        results.extend(_write_batches(conn, run[0].source, run, now_us))
    return results


_RECORD_ID, _FLOW = USAGE_COLUMNS.index("record_id"), USAGE_COLUMNS.index("flow")


def _write_batches(
    conn: Connection, source: str, writes: Sequence[StagedWrite], now_us: int
) -> list[Written]:
    """Batches of one source with disjoint record ids, written together."""
    batches = [w.batch for w in writes]
    rows = [row for b in batches for row in b.rows]
    where = [w for b in batches for w in b.where]
    matches = {version: m for b in batches for version, m in b.matches.items()}
    # Before any row (write_rows takes it too): a reprice holds it alone and records the same new
    # price versions; a batch holding one while it waited for the lock deadlocked with it.
    hold_retention_lock(conn, shared=True)
    if matches:
        record_price_versions(conn, matches.values(), now_us=now_us)
    outcome, refused = write_rows_isolating(conn, source=source, rows=rows, where=where, now_us=now_us)
    write_dead_letters(
        conn, source=source, rejections=[*(r for b in batches for r in b.rejections), *refused], now_us=now_us
    )
    reservations = {record_id: rid for b in batches for record_id, rid in b.reservations.items()}
    if reservations:  # the actual cost replaces the hold, in the transaction that stores it
        # Not an unpriced record's: its cost is unknown, and settling would count the call $0
        # against a blocking cap; its hold keeps counting the estimate until it lapses. Only a
        # record of the hold's own flow settles it (storage/reservations.py).
        flows = {row[_RECORD_ID]: row[_FLOW] for row in rows if row[_RECORD_ID] in reservations}
        settled = {
            rid: (record_id, cost, flows[record_id])
            for record_id, rid in reservations.items()
            if (cost := outcome.inserted.get(record_id)) is not None
        }
        settle_reservations(conn, settled, now_us=now_us)
    prompt_rows = {row["prompt_id"]: row for w in writes for row in w.prompt_rows}
    if prompt_rows:
        record_prompts(conn, list(prompt_rows.values()))
    if len(writes) == 1:
        return [Written(outcome, refused)]
    return _split(outcome, refused, batches)


def _split(outcome: BatchOutcome, refused: list[Rejection], batches: Sequence[RowBatch]) -> list[Written]:
    """One merged outcome back into one per batch, by record id (disjoint between batches).
    Every row ends in exactly one of stored, conflict, too old, refused or duplicate, so a
    batch's duplicates are its rows less the others."""
    owner: dict[str, int] = {}
    for index, b in enumerate(batches):
        owner.update((row[1], index) for row in b.rows)
    rows = {row[1]: row for b in batches for row in b.rows}
    parts = [Written(BatchOutcome(), []) for _ in batches]
    for rid, cost in outcome.inserted.items():
        mine = parts[owner[rid]].outcome
        mine.inserted[rid] = cost
        mine.stored += 1
        if cost is None:
            mine.unpriced += 1
            mine.unpriced_models[f"{rows[rid][4]}/{rows[rid][5]}"] += 1
        else:
            mine.cost_nanos += cost
    for rejection in outcome.conflicts:
        parts[owner[str(rejection.record_id)]].outcome.conflicts.append(rejection)
    for rejection in outcome.too_old:
        parts[owner[str(rejection.record_id)]].outcome.too_old.append(rejection)
    for rejection in refused:
        parts[owner[str(rejection.record_id)]].refused.append(rejection)
    for part, b in zip(parts, batches, strict=True):
        o = part.outcome
        o.duplicates = len(b.rows) - o.stored - len(o.conflicts) - len(o.too_old) - len(part.refused)
    if sum(p.outcome.duplicates for p in parts) != outcome.duplicates:  # the rule above is broken
        raise AssertionError("a merged batch's outcome did not split back into its parts")
    return parts


def count_written(summary: IngestSummary, written: Written) -> None:
    """Tell the summary what the committed transaction stored."""
    outcome = written.outcome
    for rejection in written.refused:
        summary.add_rejection(rejection)
    summary.stored += outcome.stored
    summary.duplicates += outcome.duplicates
    summary.cost_nanos += outcome.cost_nanos
    summary.unpriced += outcome.unpriced
    summary.conflicts += len(outcome.conflicts)
    for rejection in [*outcome.too_old, *outcome.conflicts]:
        summary.add_rejection(rejection)
    summary.unpriced_models.update(outcome.unpriced_models)


def write_prepared(
    ledger: Ledger,
    source: str,
    batch: Prepared | RowBatch,
    summary: IngestSummary,
    *,
    lock: AbstractContextManager[Any] | None = None,
) -> None:
    """Write one prepared batch in one transaction and add what it did to ``summary``
    (``lock``: held while staging, for writers in several threads: the token counter is shared)."""
    with lock or nullcontext():
        staged = stage(ledger, source, batch, summary)
    if staged is None:
        return
    for attempt in range(_LOCK_RACES + 1):
        try:
            with write_transaction(ledger.engine) as conn:
                [written] = write_staged(conn, [staged], now_us=_now_us())
        except DBAPIError as exc:
            if attempt < _LOCK_RACES and lost_a_lock_race(exc):
                continue  # rolled back whole: written again, nothing counted twice
            raise
        count_written(summary, written)
        return


#: Times a batch written alone is written again after PostgreSQL aborted it to break a deadlock:
#: the daemon's group commit takes a source's freshness row and the rollup rows once per source
#: in one transaction, so a batch of the second source can hold the one and wait for the others
#: (tests/test_group_batch_race.py). The daemon writes a group that lost again the same way.
_LOCK_RACES = 3


# A parser process gets the price book and key once; then lines go in and rows come out.
_WORKER: tuple[PriceBook, bytes, str] | None = None


#: Collect young objects every 50,000 allocations instead of 700 while ingesting. A record
#: allocates a handful of containers, none in a cycle; at the default a third of the parser's
#: time went to collections that found nothing (measured: 33 -> 21 us a record).
INGEST_GC_THRESHOLD = (50_000, 20, 100)


#: Ingests inside fewer_collections now (threads), and the thresholds found by the first.
_fewer_depth = 0
_fewer_before: tuple[int, ...] = gc.get_threshold()
_FEWER_LOCK = threading.Lock()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the block with :data:`INGEST_GC_THRESHOLD`, then restore the thresholds found before
    it. Ingests in several threads may end in any order: the thresholds come back when the last
    one ends, to what they were before the first began (not to another's raised ones)."""
    global _fewer_depth, _fewer_before
    with _FEWER_LOCK:
        if _fewer_depth == 0:
            _fewer_before = gc.get_threshold()
            gc.set_threshold(*INGEST_GC_THRESHOLD)
        _fewer_depth += 1
    try:
        yield
    finally:
        with _FEWER_LOCK:
            _fewer_depth -= 1
            if _fewer_depth == 0:
                gc.set_threshold(*_fewer_before)


def _worker_init(book: PriceBook, user_key: bytes, source: str) -> None:
    global _WORKER
    _WORKER = (book, user_key, source)
    gc.freeze()  # the book and the modules: never garbage, never scanned again
    gc.set_threshold(*INGEST_GC_THRESHOLD)  # this process only parses


def _worker_prepare(parts: list[tuple[str, list[int], list[str]]]) -> RowBatch:
    """One batch of lines (see :func:`_for_worker`), decoded and priced."""
    assert _WORKER is not None
    book, key, source = _WORKER
    lines = [line for path, numbers, texts in parts for line in map(Line, repeat(path), numbers, texts)]
    return to_rows(prepare_lines(book, key, lines), source)


def _for_worker(chunk: list[Line]) -> list[tuple[str, list[int], list[str]]]:
    """A chunk as a parser process takes it: per file, the path once and two flat lists (a third
    less to pickle than a tuple a line)."""
    parts = []
    start = 0
    for end in range(1, len(chunk) + 1):
        if end == len(chunk) or chunk[end].path != chunk[start].path:
            part = chunk[start:end]
            parts.append((chunk[start].path, [li.number for li in part], [li.text for li in part]))
            start = end
    return parts


def chunked(lines: Iterable[Line], size: int) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ingest_lines(
    ledger: Ledger,
    lines: Iterable[Line],
    *,
    source: str = DEFAULT_SOURCE,
    batch_size: int | None = None,
    summary: IngestSummary | None = None,
    workers: int = 0,
) -> IngestSummary:
    """Decode, validate, price and store JSONL lines, one transaction per ``batch_size`` lines.

    With ``workers`` > 0, parser processes decode and price the next batches while writer
    threads store the current ones and this thread reads the lines after them. On SQLite one
    batch is written at a time, in order, so a crash keeps exactly the batches before it. On
    PostgreSQL two batches are written at once, each in its own transaction, so the server works
    on one while the other commits or stages (:data:`PG_WRITES_IN_FLIGHT`); two batches that
    share a record id (or a reservation) are never in flight together, so every record ends
    exactly as it would in order (stored, duplicate or conflict). A crash may then keep a batch
    without the one before it: running the same command again stores what is missing, once.
    """
    with fewer_collections():
        return _ingest_lines(ledger, lines, source, batch_size, summary, workers)


#: Batches a file ingest writes at once on PostgreSQL (own transactions, own connections):
#: the server runs one batch's statement while the other stages or commits.
PG_WRITES_IN_FLIGHT = 2


def _claims(batch: RowBatch) -> frozenset[str]:
    """What a batch's write decides for its own: its record ids and the reservations it settles.
    Two batches in flight together must not share one, or which wins would depend on timing."""
    return frozenset([*(row[1] for row in batch.rows), *(f"\0{r}" for r in batch.reservations.values())])


def _write_shared(ledger: Ledger, source: str, batch: RowBatch, lock: threading.Lock) -> IngestSummary:
    """:func:`write_prepared` from one of several writer threads, told to a summary of its own:
    the caller adds it to the ingest's in the file's order (:func:`_add`), so a reason's first
    line and the examples are the file's first, whichever batch committed first."""
    part = IngestSummary(example_limit=sys.maxsize)  # every rejection, in order, for _add
    write_prepared(ledger, source, batch, part, lock=lock)
    return part


def _add(summary: IngestSummary, part: IngestSummary) -> None:
    """Add one batch's summary (:func:`_write_shared`) to the ingest's."""
    summary.read += part.read
    summary.stored += part.stored
    summary.duplicates += part.duplicates
    summary.conflicts += part.conflicts
    summary.unpriced += part.unpriced
    summary.cost_nanos += part.cost_nanos
    summary.linked += part.linked
    summary.skipped += part.skipped
    summary.notes |= part.notes
    summary.unpriced_models.update(part.unpriced_models)
    for rejection in part.examples:  # all of them: counted again, in order
        summary.add_rejection(rejection)


#: Batches parsed in this process at most while the parser process starts (0.4-0.5 s of imports
#: measured), so this core parses while the other starts the parser instead of both waiting:
#: ~3% more records/s on a 300k-record file into PostgreSQL. The first batch always goes to the
#: parser, so its path is always taken, and the writers start when it comes back (file order).
_WHILE_STARTING = 8


def _done(batch: RowBatch) -> Future[RowBatch]:
    """A batch prepared in this process, as the parser's results come: a finished future."""
    future: Future[RowBatch] = Future()
    future.set_result(batch)
    return future


def _ingest_lines(
    ledger: Ledger,
    lines: Iterable[Line],
    source: str,
    batch_size: int | None,
    summary: IngestSummary | None,
    workers: int,
) -> IngestSummary:
    summary = summary if summary is not None else IngestSummary()
    size = batch_size or ledger.settings.ingest_batch_size
    if workers <= 0:
        for chunk in chunked(lines, size):
            write_prepared(ledger, source, prepare_lines(ledger.book, ledger.user_key, chunk), summary)
        return summary
    depth = PG_WRITES_IN_FLIGHT if ledger.engine.dialect.name == "postgresql" else 1
    lock = threading.Lock()
    with (
        process_pool(workers, _worker_init, (ledger.book, ledger.user_key, source)) as pool,
        ThreadPoolExecutor(depth, thread_name_prefix="finops-writer") as writer,
    ):
        pending: deque[Future[RowBatch]] = deque()
        writing: deque[tuple[Future[IngestSummary], frozenset[str]]] = deque()

        def write_next() -> None:
            """Hand the oldest prepared batch to a writer thread once fewer than ``depth`` writes
            are in flight and none of them shares a claim with it (``result`` raises a failed
            write's error, even one behind a write still running: nothing is handed out once a
            write has failed). While the database works, this thread reads and dispatches the
            next lines."""
            batch = pending.popleft().result()
            claims = _claims(batch) if depth > 1 else frozenset()
            while writing and (
                len(writing) >= depth
                or any(not claims.isdisjoint(c) for _, c in writing)
                or any(f.done() and f.exception() is not None for f, _ in writing)  # seen at once
            ):
                _add(summary, writing.popleft()[0].result())
            writing.append((writer.submit(_write_shared, ledger, source, batch, lock), claims))

        started = pool.submit(int)  # done once the parser process has started (~0.4 s: imports)
        try:
            for chunk in chunked(lines, size):
                if not pending or started.done() or len(pending) >= _WHILE_STARTING:
                    pending.append(pool.submit(_worker_prepare, _for_worker(chunk)))
                else:  # the parser is still starting: this thread parses meanwhile, not waits
                    pending.append(_done(to_rows(prepare_lines(ledger.book, ledger.user_key, chunk), source)))
                # bounded: memory stays flat (at most _WHILE_STARTING batches while the parser starts)
                while len(pending) > workers + 1 and (started.done() or len(pending) > _WHILE_STARTING):
                    write_next()
            while pending:
                write_next()
            while writing:
                _add(summary, writing.popleft()[0].result())
        except BrokenProcessPool as exc:
            while writing:  # a write in flight that fails says so: then not every batch is stored
                _add(summary, writing.popleft()[0].result())
            raise IngestError(
                f"a parser process died ({exc}); every batch before it is stored: run the same command "
                "again to finish"
            ) from None
        finally:
            for future in pending:
                future.cancel()
            for write, _ in writing:  # after an error: what the writes in flight stored is counted
                if write.exception() is None:
                    _add(summary, write.result())
    return summary


def ingest_objects(
    ledger: Ledger,
    objects: Sequence[Any],
    *,
    source: str,
    location: str = "api",
    summary: IngestSummary | None = None,
) -> IngestSummary:
    """Store already-decoded records (an HTTP batch, a provider report) in one transaction."""
    summary = summary if summary is not None else IngestSummary()
    write_prepared(ledger, source, prepare_objects(ledger.book, ledger.user_key, objects, location), summary)
    return summary


def ingest_paths(
    ledger: Ledger,
    paths: Sequence[Path],
    *,
    source: str = DEFAULT_SOURCE,
    batch_size: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> IngestSummary:
    """Ingest files and directories (``.jsonl``, ``.jsonl.gz``) as one stream.

    ``workers``: parser processes; by default FINOPS_INGEST_WORKERS (1) for inputs over 32 MiB
    on a machine with two cores or more, else parsing stays in this process.
    """
    files = expand_paths(paths)
    summary = IngestSummary()
    lines = FileLines(files, on_bytes=on_bytes)
    if workers is None:  # a parser process pays for its start-up on inputs of more than a few batches
        big = sum(p.stat().st_size for p in files) > 32 * 1024 * 1024
        workers = ledger.settings.ingest_workers if big and (os.cpu_count() or 1) >= 2 else 0
    ingest_lines(ledger, lines, source=source, batch_size=batch_size, summary=summary, workers=workers)
    lines.raise_if_stopped(summary)
    return summary


class FileLines:
    """The lines of files, in order, up to the first place a file cannot be read further (a
    truncated gzip): the lines before it are still ingested, then :meth:`raise_if_stopped` says
    what was stored, so nobody has to guess what to re-run."""

    def __init__(self, files: Sequence[Path], *, on_bytes: Callable[[int], None] | None = None) -> None:
        self._files = files
        self._on_bytes = on_bytes
        self.stopped: UnreadableInput | None = None
        self.unread_files = 0

    def __iter__(self) -> Iterator[Line]:
        for index, path in enumerate(self._files):
            try:
                yield from read_lines(path, on_bytes=self._on_bytes)
            except UnreadableInput as exc:
                self.stopped, self.unread_files = exc, len(self._files) - index - 1
                return

    def raise_if_stopped(self, summary: IngestSummary, what: str = "records") -> None:
        """Raises IngestError with the true counts of what was stored before the file broke."""
        if self.stopped is None:
            return
        unread = (
            f"; the {self.unread_files} file{'s' if self.unread_files != 1 else ''} after it "
            f"{'were' if self.unread_files != 1 else 'was'} not read"
            if self.unread_files
            else ""
        )
        raise IngestError(
            f"{self.stopped}; the {summary.read:,} {what} before it were ingested: {summary.stored:,} "
            f"stored, {summary.duplicates:,} already stored, {summary.rejected:,} rejected{unread}; fix "
            "the file and run the same command again (nothing is stored twice)"
        )


def ingest_otlp_paths(
    ledger: Ledger, paths: Sequence[Path], *, source: str = DEFAULT_SOURCE, batch_size: int | None = None
) -> IngestSummary:
    """OTLP/JSON trace exports (one ExportTraceServiceRequest a line, as OpenTelemetry's file
    exporter writes them): GenAI spans become usage records; other spans are skipped."""
    from finops.sources.otlp import span_records

    return _ingest_mapped(
        ledger,
        paths,
        source=source,
        batch_size=batch_size,
        records=span_records,
        shapes=(dict,),
        wrong_shape="not an ExportTraceServiceRequest",
    )


def ingest_litellm_paths(
    ledger: Ledger,
    paths: Sequence[Path],
    *,
    kind: str,
    source: str = DEFAULT_SOURCE,
    batch_size: int | None = None,
) -> IngestSummary:
    """LiteLLM's logs, one JSON object or array a line: ``kind`` ``standard`` for
    StandardLoggingPayload (its logging callbacks), ``spendlogs`` for LiteLLM_SpendLogs rows.
    Cache hits and calls that are not token-priced are skipped. Raises ``IngestError`` for
    another kind."""
    from finops.sources.litellm_logs import KINDS, litellm_objects

    if kind not in KINDS:
        raise IngestError(f"unknown LiteLLM log kind {kind!r}: use one of {', '.join(KINDS)}")
    return _ingest_mapped(
        ledger,
        paths,
        source=source,
        batch_size=batch_size,
        records=lambda obj: litellm_objects(obj, kind),
        shapes=(dict, list),
        wrong_shape="not a LiteLLM log object or a JSON array of them",
    )


def _ingest_mapped(
    ledger: Ledger,
    paths: Sequence[Path],
    *,
    source: str,
    batch_size: int | None,
    records: Callable[[Any], Iterable[tuple[str, Any]]],
    shapes: tuple[type, ...],
    wrong_shape: str,
) -> IngestSummary:
    """Lines of another tool's JSON -> ``records`` maps each to canonical records (``None``:
    skipped) -> validated, priced and stored like any usage record, in batches."""
    summary = IngestSummary()
    size = batch_size or ledger.settings.ingest_batch_size
    batch = Prepared()
    lines = FileLines(expand_paths(paths))
    for line in lines:
        try:
            decoded = orjson.loads(line.text)
        except orjson.JSONDecodeError as exc:
            batch.read += 1
            batch.rejections.append(
                Rejection(
                    line.path,
                    line.number,
                    f"invalid JSON: {exc}",
                    line_digest(line.text, ledger.user_key),
                )
            )
            continue
        if not isinstance(decoded, shapes):
            batch.read += 1
            batch.rejections.append(
                Rejection(line.path, line.number, wrong_shape, line_digest(line.text, ledger.user_key))
            )
            continue
        for where, record in records(decoded):
            if record is None:
                summary.skipped += 1
                continue
            _accept(
                batch,
                ledger.book,
                ledger.user_key,
                record,
                f"{line.path}:{line.number} {where}",
                line.number,
                None,
            )
            if len(batch.items) + len(batch.rejections) >= size:
                write_prepared(ledger, source, batch, summary)
                batch = Prepared()
    write_prepared(ledger, source, batch, summary)
    lines.raise_if_stopped(summary)
    return summary
