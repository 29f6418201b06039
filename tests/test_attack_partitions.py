"""Attacks on PostgreSQL's monthly partitions: creating, filling and dropping months while other
connections write, read and prune at the same time (real PostgreSQL, real threads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from finops.daemon.budget_watch import BudgetWatch
from finops.daemon.service import BatchResult, IngestService
from finops.storage.db import write_transaction
from finops.storage.partitions import create_month_partition, ensure_partitions, month_start_us
from tests.conftest import make_ledger, usage

pytestmark = pytest.mark.postgres


@pytest.fixture
def service(postgres_url: str, tmp_path: Path) -> Iterator[IngestService]:
    ledger = make_ledger(postgres_url, retention_days=40)
    yield IngestService(ledger, BudgetWatch(ledger, tmp_path))
    ledger.close()


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text(sql)) or 0)


def _wait_for_lock_waiter(engine: Engine, *, timeout: float = 20.0) -> None:
    """Until another session of this database waits for a lock (the attack's writer is blocked)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = _count(
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("no session ever waited for a lock")


class _Thread(threading.Thread):
    """A thread that keeps what its target returned or raised."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_fn()
        except BaseException as exc:  # handed to the test
            self.error = exc


def test_a_record_posted_while_its_month_is_attached_is_stored(service: IngestService) -> None:
    """A writer routes its row to the default partition while another session attaches that
    month's partition: PostgreSQL refuses the row (the default partition's constraint changed
    under the statement). That is no fault of the record: it must be stored, not dead-lettered."""
    engine = service.ledger.engine
    march = month_start_us(2031, 3)
    with engine.connect() as creator:
        creator.begin()
        assert create_month_partition(creator, march)  # holds the default partition until commit
        writer = _Thread(lambda: service.usage([usage(1, ts="2031-03-04T05:06:07Z")], source="app"))
        writer.start()
        _wait_for_lock_waiter(engine)
        creator.commit()
    writer.join(60)
    assert writer.error is None, writer.error
    result: BatchResult = writer.result
    assert (result.stored, result.rejected) == (1, 0), result.rejections
    assert _count(engine, "SELECT count(*) FROM usage_records_p203103") == 1
    assert _count(engine, "SELECT count(*) FROM dead_letters") == 0


def test_two_sessions_making_the_same_partitions_at_once_both_succeed(service: IngestService) -> None:
    """Two replicas (or the migration and the daily job) ensuring the same months at once: the
    second finds them made, it does not fail on "relation already exists"."""
    engine = service.ledger.engine
    when = datetime(2031, 2, 10, tzinfo=UTC)
    with engine.connect() as first:
        first.begin()
        assert ensure_partitions(first, when)
        second = _Thread(lambda: _ensure(engine, when))
        second.start()
        _wait_for_lock_waiter(engine)
        first.commit()
    second.join(60)
    assert second.error is None, second.error
    assert second.result == []


def _ensure(engine: Engine, when: datetime) -> list[str]:
    with write_transaction(engine) as conn:
        return ensure_partitions(conn, when)
