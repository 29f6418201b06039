"""The daemon's writer: one thread takes the writes waiting (usage batches, reserves, anything
else that writes) and commits them together, then answers each caller.

Why one thread: SQLite has one writer, and 32 request threads taking turns at its lock spend
more time handing it over than writing. The writer takes whatever has queued while the last
transaction ran (up to a group's worth of records), writes it in one transaction
(usecases/group_write.py), and sets each caller's answer only after the commit: a crash loses
nothing that was acknowledged. If a group fails for any reason other than the database being
away, each of its requests is tried again alone, so a bad request never fails its group-mates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from finops.daemon.database_outage import lost_a_lock_race, unavailable
from finops.domain.budgets import Budget
from finops.usecases.admission import Ask, ReserveResult
from finops.usecases.group_write import write_group
from finops.usecases.ingest import StagedWrite, Written
from finops.usecases.ledger import Ledger

__all__ = ["GroupCommit"]

log = logging.getLogger("finops.daemon")
T = TypeVar("T")


@dataclass(eq=False)
class _Job:
    write: StagedWrite | None = None
    ask: Ask | None = None
    call: Callable[[], Any] | None = None  # a write of its own (release, outcomes): run alone
    future: Future[Any] = field(default_factory=Future)
    waiter: asyncio.Future[Any] | None = None  # an event loop's caller (``*_async``)

    @property
    def size(self) -> int:
        return len(self.write.batch.rows) if self.write else 1


_STOP = _Job()
#: Times a lone job is written again after PostgreSQL aborted it to break a deadlock.
_LOCK_RACES = 3


class GroupCommit:
    """``usage``, ``reserve`` and ``call`` block their caller until the write committed (or
    failed: the caller gets the exception). ``budgets`` gives the budgets in force now."""

    def __init__(
        self, ledger: Ledger, budgets: Callable[[], Sequence[Budget]], *, max_records: int = 5000
    ) -> None:
        self.ledger = ledger
        self._budgets = budgets
        self._max_records = max_records
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- callers: ``submit_*`` hand a job over and return at once (the event loop awaits the
    # future); the plain methods wait for the answer (thread-pool callers).

    def submit_usage(self, write: StagedWrite) -> Future[Written]:
        return self._submit(_Job(write=write))

    def submit_reserve(self, ask: Ask) -> Future[ReserveResult]:
        return self._submit(_Job(ask=ask))

    async def usage_async(self, write: StagedWrite) -> Written:
        result: Written = await self._await(_Job(write=write))
        return result

    async def reserve_async(self, ask: Ask) -> ReserveResult:
        result: ReserveResult = await self._await(_Job(ask=ask))
        return result

    async def _await(self, job: _Job) -> Any:
        """The answer comes back to the loop with its group-mates' in one wake-up, not one each."""
        job.waiter = asyncio.get_running_loop().create_future()
        self._submit(job)
        try:
            return await job.waiter
        except asyncio.CancelledError:
            job.future.cancel()  # not started yet: never written (started: it commits, unanswered)
            raise

    def usage(self, write: StagedWrite) -> Written:
        return self.submit_usage(write).result()

    def reserve(self, ask: Ask) -> ReserveResult:
        return self.submit_reserve(ask).result()

    def call(self, work: Callable[[], T]) -> T:
        result: T = self._submit(_Job(call=work)).result()
        return result

    def _submit(self, job: _Job) -> Future[Any]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the daemon is stopping: no new writes")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="finops-writer", daemon=True)
                self._thread.start()
            self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join()

    # -- the writer thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group = [self._queue.get()]
            size = group[0].size
            while size < self._max_records:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(job)
                size += job.size
            if any(job is _STOP for job in group):
                stopping = True
                group = [job for job in group if job is not _STOP]
                while True:  # callers that queued before close() still get their answer
                    try:
                        group.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            # a caller that gave up before its job started (a cancelled await) is not written
            group = [job for job in group if job.future.set_running_or_notify_cancel()]
            answers: list[_Answer] = []
            for job in group:
                if job.call is not None:
                    answers.append(self._alone(job))
            batched = [job for job in group if job.call is None]
            if batched:
                answers.extend(self._write(batched))
            _deliver(answers)

    def _write(self, group: list[_Job], races: int = 0) -> list[_Answer]:
        writes = [job for job in group if job.write is not None]
        asks = [job for job in group if job.ask is not None]
        try:
            written, results = write_group(
                self.ledger,
                self._budgets(),
                [job.write for job in writes if job.write is not None],
                [job.ask for job in asks if job.ask is not None],
                now=datetime.now(UTC),
            )
        except Exception as exc:
            # A deadlock with another replica comes from groups (a group's runs lock rows in
            # several passes, each in key order): the group is written one job at a time, and a
            # lone job that lost the race to another replica's group is written again.
            if lost_a_lock_race(exc) and races < _LOCK_RACES:
                if len(group) == 1:
                    return self._write(group, races + 1)
            elif len(group) == 1 or unavailable(exc):  # the database is away: every job would fail
                return [(job, None, exc) for job in group]
            log.warning(
                "a group write failed (%s); writing its %d requests one by one",
                type(exc).__name__,
                len(group),
            )
            return [answer for job in group for answer in self._write([job])]
        return [
            (job, answer, None) for job, answer in zip([*writes, *asks], [*written, *results], strict=True)
        ]

    @staticmethod
    def _alone(job: _Job) -> _Answer:
        assert job.call is not None
        try:
            return (job, job.call(), None)
        except Exception as exc:
            return (job, None, exc)


_Answer = tuple[_Job, Any, BaseException | None]


def _deliver(answers: list[_Answer]) -> None:
    """Answer each caller: threads through their futures, event loops with one call each."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
    for job, value, exc in answers:
        if exc is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(exc)
        if job.waiter is not None:
            by_loop.setdefault(job.waiter.get_loop(), []).append((job, value, exc))
    for loop, mine in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, mine)


def _resolve(answers: list[_Answer]) -> None:
    for job, value, exc in answers:
        waiter = job.waiter
        if waiter is None or waiter.done():  # its caller gave up
            continue
        if exc is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(exc)
