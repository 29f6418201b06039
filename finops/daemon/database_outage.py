"""The database going away and coming back, as the daemon sees it.

While the database cannot serve (PostgreSQL down or unreachable, a disk full, SQLite locked past
its busy timeout), every request that needs it answers 503 with ``Retry-After``: the client backs
off and sends again, and nothing acknowledged is lost, because a 2xx is sent only after the
commit. The log gets one line when the outage starts and one when it ends, never a traceback per
request or per cycle; nothing needs a restart.

An outage ends at the first write that commits, or, when writes were not failing (or none came
for a minute), at the first read that answers: a disk that is full still answers reads, and its
outage must not end at every read in between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import exc as sa

from finops.storage.db import lost_a_lock_race

__all__ = [
    "RETRY_AFTER_S",
    "DatabaseOutage",
    "DatabaseUnavailable",
    "describe",
    "lost_a_lock_race",
    "unavailable",
]

log = logging.getLogger("finops.database")

#: Seconds a client is told to wait before sending again.
RETRY_AFTER_S = 5
#: After the last failure, how long a read stands in for a write that never came.
_QUIET_S = 60.0
#: A write failed this recently: /healthz says unhealthy even though a read answers.
_RECENT_S = 2 * RETRY_AFTER_S

# SQLite primary result codes that say "not now" rather than "wrong statement": BUSY, LOCKED,
# NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, PERM, NOTADB.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 3, 26})
# PostgreSQL SQLSTATE classes and codes of the same kind: connection exception, insufficient
# resources (disk full, too many connections), operator intervention (shutdown, recovery), system
# error (I/O), serialization failure, deadlock, lock not available, read-only (a fail-over).
_PG_CLASSES = ("08", "53", "57P", "58")
_PG_CODES = frozenset({"40001", "40P01", "55P03", "25006"})


class DatabaseUnavailable(Exception):
    """The database cannot serve now; the request should be sent again later (503)."""


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot serve now, so that a retry later can succeed (as
    opposed to a bug or a statement it refuses, which a retry repeats)."""
    if isinstance(exc, DatabaseUnavailable | sa.TimeoutError):  # TimeoutError: the pool is exhausted
        return True
    if not isinstance(exc, sa.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_UNAVAILABLE
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_PG_CLASSES) or state in _PG_CODES
    return isinstance(exc, sa.OperationalError | sa.InterfaceError)  # no code: the connection failed


def describe(exc: BaseException) -> str:
    """The driver's first line, for the log: no SQL, no parameters (records stay out of logs)."""
    cause = exc.orig if isinstance(exc, sa.DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:300]}" if lines else type(cause).__name__


class DatabaseOutage:
    """Whether the database is out, from what requests, the cycle and /healthz report; logs the
    start and the end of each outage once. Thread-safe."""

    def __init__(
        self,
        on_change: Callable[[bool], None] = lambda up: None,
        clock: Callable[[], float] = time.monotonic,
        what: str = "database",
    ) -> None:
        self.what = what  # "read database": FINOPS_READ_DATABASE_URL's own outage, logged as such
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._last_failure = 0.0
        self._last_write_failure: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._started is not None

    def writes_failing(self) -> bool:
        """A write failed for unavailability a moment ago."""
        last = self._last_write_failure
        return self._started is not None and last is not None and self._clock() - last < _RECENT_S

    def failed(self, exc: BaseException, *, writing: bool) -> None:
        now = self._clock()
        with self._lock:
            self._last_failure = now
            self._failures += 1
            if writing:
                self._last_write_failure = now
            if self._started is not None:
                return
            self._started = now
        log.error(
            f"{self.what} unavailable: requests that need it answer 503 (Retry-After: {RETRY_AFTER_S} s) "
            "until it is back",
            extra={"cause": describe(exc)},
        )
        self._on_change(False)

    def succeeded(self, *, writing: bool) -> None:
        if self._started is None:  # the common case, without the lock
            return
        now = self._clock()
        with self._lock:
            started = self._started
            if started is None:
                return
            waiting_for_a_write = self._last_write_failure is not None and now - self._last_failure < _QUIET_S
            if waiting_for_a_write and not writing:
                return
            failures, self._failures = self._failures, 0
            self._started = self._last_write_failure = None
        log.info(
            f"{self.what} available again",
            extra={"outage_s": round(now - started, 1), "operations_refused": failures},
        )
        self._on_change(True)
