"""Usage bodies decoded, validated and priced in a parser process, so the daemon's two jobs (parse a
batch, write a batch) run on two cores, as `finops ingest` does for large files.

A body goes in as bytes and comes back as rows ready to write (or as the HTTP error it deserves);
the database is written only by the daemon process, in the order requests commit. A crashed
parser is replaced and its request parsed in the daemon; a new price book restarts the parser.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import orjson

from finops.domain.pricing import PriceBook
from finops.sources.jsonl import Line, ndjson_lines
from finops.usecases.ingest import RowBatch, prepare_lines, prepare_objects, to_rows
from finops.usecases.process_pool import process_pool

__all__ = ["BodyProblem", "ParsePool", "parse_usage_body"]

log = logging.getLogger("finops.ingest")

#: Smaller bodies are parsed in the daemon: sending them to a process costs more than it saves.
_MIN_POOL_BYTES = 32 * 1024


@dataclass(frozen=True)
class BodyProblem:
    """A body refused as a whole: the HTTP status and what the sender should do."""

    status: int
    message: str


def parse_usage_body(
    book: PriceBook, user_key: bytes, body: bytes, *, ndjson: bool, limit: int, source: str
) -> RowBatch | BodyProblem:
    """A JSON record, a JSON array of records, or NDJSON lines (each rejected alone when broken)."""
    if ndjson:
        lines = [Line("http", n, t) for n, t in enumerate(ndjson_lines(body), 1) if t]
        if len(lines) > limit:
            return BodyProblem(413, f"{len(lines):,} lines in one request; at most {limit:,}")
        return to_rows(prepare_lines(book, user_key, lines), source)
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return BodyProblem(400, f"the body is not JSON ({exc}): send a usage record or a JSON array of them")
    items = payload if isinstance(payload, list) else [payload]
    if len(items) > limit:
        return BodyProblem(
            413, f"{len(items):,} records in one request; at most {limit:,} (FINOPS_MAX_BATCH_RECORDS)"
        )
    return to_rows(prepare_objects(book, user_key, items, "http"), source)


_STATE: tuple[PriceBook, bytes] | None = None


def _init(book: PriceBook, user_key: bytes) -> None:
    global _STATE
    _STATE = (book, user_key)


def _parse(body: bytes, ndjson: bool, limit: int, source: str) -> RowBatch | BodyProblem:
    assert _STATE is not None
    return parse_usage_body(*_STATE, body, ndjson=ndjson, limit=limit, source=source)


class ParsePool:
    """One parser process (``workers``), started on first use; ``workers=0``: parse in the caller."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._book: PriceBook | None = None
        self._lock = threading.Lock()

    def _executor(self, book: PriceBook, user_key: bytes) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None or self._book is not book:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._pool = process_pool(self._workers, _init, (book, user_key))  # dies with the daemon
                self._book = book
            return self._pool

    def start(self, book: PriceBook, user_key: bytes) -> None:
        """Start the parser now (the daemon's start-up), not on the first large request."""
        if self._workers > 0:
            self._executor(book, user_key).submit(int).result()

    def parse(
        self, book: PriceBook, user_key: bytes, body: bytes, *, ndjson: bool, limit: int, source: str
    ) -> RowBatch | BodyProblem:
        if self._workers <= 0 or len(body) < _MIN_POOL_BYTES:
            return parse_usage_body(book, user_key, body, ndjson=ndjson, limit=limit, source=source)
        pool = self._executor(book, user_key)
        try:
            return pool.submit(_parse, body, ndjson, limit, source).result()
        except BrokenProcessPool:
            log.warning("the parser process died; it is restarted and this batch parsed in the daemon")
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            return parse_usage_body(book, user_key, body, ndjson=ndjson, limit=limit, source=source)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
