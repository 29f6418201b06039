"""Races made deterministic: run a competing commit right after the k-th SQL statement of a reader.

A reader that assembles one answer from several statements (a check, a report, an export) sees,
on PostgreSQL's read committed, each statement's own snapshot. The race tests run the competing
write (a settle, a reprice, retention, a late batch) after each statement in turn, with a
SQLAlchemy event on the reader's engine or connection: no sleeps, no mocks of finops's code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, event, func, select, text

from finops.storage.db import write_transaction
from finops.storage.ledger import rebuild_rollups
from finops.storage.tables import rollups_daily, rollups_hourly, usage_records
from finops.usecases.ingest import IngestSummary, prepare_objects, stage, write_staged
from finops.usecases.ledger import Ledger

__all__ = [
    "AfterStatement",
    "Racer",
    "after_statement",
    "in_sqlite_write",
    "rollups_match_records",
    "same_hour_record",
    "wait_done_or_blocked",
    "write_once",
]

T = TypeVar("T")


@dataclass
class AfterStatement:
    """What happened in the block: statements run on the target, and whether the action ran."""

    statements: int = 0
    ran: bool = False


@contextmanager
def after_statement(
    target: Engine | Connection,
    k: int | None,
    action: Callable[[], object],
    *,
    skip: Callable[[Connection], bool] | None = None,
) -> Iterator[AfterStatement]:
    """Count the statements ``target`` runs inside the block and run ``action`` once, right after
    the ``k``-th (``None``: never, only count). A ``k``-th statement for which ``skip(conn)`` is
    true does not run it (see :func:`in_sqlite_write`)."""
    seen = AfterStatement()

    def after(conn: Connection, *_: Any) -> None:
        seen.statements += 1
        if seen.statements == k and not seen.ran and not (skip is not None and skip(conn)):
            seen.ran = True
            action()

    event.listen(target, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(target, "after_cursor_execute", after)


def in_sqlite_write(conn: Connection) -> bool:
    """A statement inside a SQLite write transaction: a write run from there would wait for the
    one write lock that transaction holds, for ever."""
    return conn.dialect.name == "sqlite" and bool(conn.get_execution_options().get("finops_write"))


def wait_done_or_blocked(engine: Engine, worker: threading.Thread) -> None:
    """Until ``worker`` has finished, or one of the database's sessions waits on a lock
    (PostgreSQL: held by the transaction the race runs inside). No sleep-and-hope."""
    deadline = time.monotonic() + 30
    while worker.is_alive() and time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        worker.join(0.01)
    assert not worker.is_alive(), "the racing work neither finished nor waited on a lock"


class Racer(Generic[T]):
    """``work`` run in a thread as the racing action of :func:`after_statement`: it starts,
    and the statement after which it was started waits until it has finished or waits on a lock
    that statement's transaction holds. :meth:`outcome` then gives its result, or fails the test
    with what the work raised."""

    def __init__(self, engine: Engine, work: Callable[[], T]) -> None:
        self._engine = engine
        self._work = work
        self._result: list[T] = []
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            self._result.append(self._work())
        except BaseException as exc:  # reported by outcome()
            self._error.append(exc)

    def __call__(self) -> None:
        self._thread.start()
        wait_done_or_blocked(self._engine, self._thread)

    def outcome(self, what: str) -> T:
        self._thread.join(30)
        assert not self._thread.is_alive(), f"{what} did not finish"
        assert not self._error, f"{what} failed: {self._error[0]!r}"
        return self._result[0]


def rollups_match_records(engine: Engine, where: str) -> dict[str, Any]:
    """The hourly and daily rollups, the records' count and cost, and the hourly sums; asserted
    equal to what a rebuild from the raw records gives (rolled back), and the sums to the
    records'. Returns them."""

    def now() -> dict[str, Any]:
        with engine.connect() as conn:
            rows: dict[str, Any] = {
                t.name: sorted(conn.execute(select(*(c for c in t.c if c.name != "id"))).all())
                for t in (rollups_hourly, rollups_daily)
            }
            rows["usage"] = tuple(
                conn.execute(
                    select(func.count(), func.coalesce(func.sum(usage_records.c.cost_nanos), 0))
                ).one()
            )
            rows["hourly sums"] = tuple(
                conn.execute(
                    select(
                        func.coalesce(func.sum(rollups_hourly.c.records), 0),
                        func.coalesce(func.sum(rollups_hourly.c.cost_nanos), 0),
                    )
                ).one()
            )
        return rows

    before = now()
    with engine.begin() as conn:
        rebuild_rollups(conn)
    assert now() == before, f"{where}, the rollups disagree with the records"
    assert before["hourly sums"] == before["usage"], f"{where}, the hourly rollups do not sum to the records"
    return before


def same_hour_record(rid: str, minute: int) -> dict[str, Any]:
    """A usage record whose rollup rows (hour, flow, model, tags, prompt) and source row every
    record of this shape shares: what makes two writers of them wait on each other."""
    return {
        "id": rid,
        "ts": f"2026-11-20T12:{minute:02d}:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "flow": "support",
        "tags": {"team": "a"},
        "prompt_id": "p-1",
        "input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
    }


def write_once(ledger: Ledger, records: list[dict[str, Any]], *, source: str) -> int:
    """Store ``records`` as one batch in one transaction, as ``ingest_objects`` does but never
    written again: a batch that PostgreSQL aborts to break a deadlock fails here, where
    ``write_prepared`` would retry it and hide the deadlock a race test looks for. Returns the
    records stored."""
    staged = stage(
        ledger, source, prepare_objects(ledger.book, ledger.user_key, records, "test"), IngestSummary()
    )
    assert staged is not None
    with write_transaction(ledger.engine) as conn:
        [written] = write_staged(conn, [staged], now_us=time.time_ns() // 1000)
    return written.outcome.stored
