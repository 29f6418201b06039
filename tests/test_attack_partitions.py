"""Attacks on PostgreSQL's monthly partitions: creating, filling and dropping months while other
connections write, read and prune at the same time (real PostgreSQL, real threads)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text

from finops.daemon.budget_watch import BudgetWatch
from finops.daemon.schedules import STALE_US, default_jobs, run_due
from finops.daemon.service import BatchResult, IngestService
from finops.domain.outcomes import Outcome
from finops.storage.db import create_engine_for, downgrade, upgrade, write_transaction
from finops.storage.ledger import rebuild_rollups, record_prompts
from finops.storage.outcomes import write_outcomes
from finops.storage.partitions import create_month_partition, ensure_partitions, month_start_us
from finops.storage.retention import final_before_us
from finops.storage.tables import outcome_links, usage_records
from finops.usecases.retention import run_retention
from tests.conftest import make_ledger, usage

pytestmark = pytest.mark.postgres


@pytest.fixture
def service(postgres_url: str, tmp_path: Path) -> Iterator[IngestService]:
    ledger = make_ledger(postgres_url, retention_days=40)
    yield IngestService(ledger, BudgetWatch(ledger, tmp_path))
    ledger.close()


def _us(when: str) -> int:
    return int(datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()) * 1_000_000


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


NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def test_an_outcome_linked_while_retention_drops_its_usage_leaves_no_dangling_link(
    service: IngestService,
) -> None:
    """An outcome stored (and linked to July's usage) in a transaction still open when retention
    closes July: once both commit, no link may point at a usage record that no longer exists."""
    engine = service.ledger.engine
    assert service.usage([usage(1, ts="2026-07-10T10:00:00Z")], source="app").stored == 1
    with write_transaction(engine) as conn:
        ensure_partitions(conn, NOW)  # July gets its partition, as the daily job does
    outcome = Outcome(
        "o-1", _us("2026-07-10T10:05:00"), "support", "success", ("req-1",), None, None, None, None
    )
    with engine.connect() as writer:
        writer.begin()
        assert write_outcomes(writer, source="app", items=[(outcome, "http", 0)], now_us=0).linked == 1
        retention = _Thread(lambda: run_retention(service.ledger, now=NOW))
        retention.start()
        _wait_for_lock_waiter(engine)
        writer.commit()
    retention.join(60)
    assert retention.error is None, retention.error
    assert retention.result.usage_deleted == 1
    dangling = (
        "SELECT count(*) FROM outcome_links l "
        "WHERE NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.id = l.usage)"
    )
    assert _count(engine, dangling) == 0


def test_a_month_made_by_another_session_while_waiting_for_the_lock_is_not_made_twice(
    service: IngestService,
) -> None:
    """Two sessions make the same month at once (two replicas' daily jobs, a stale claim, the
    migration): the second does not see the first's table until it commits, so it finds the
    month missing and waits for the lock. Once it has the lock, the month is there: it must not
    fail on "relation already exists"."""
    engine = service.ledger.engine
    march = month_start_us(2031, 3)
    with engine.connect() as first:
        first.begin()
        assert create_month_partition(first, march)
        second = _Thread(lambda: _create(engine, march))
        second.start()
        _wait_for_lock_waiter(engine)  # second saw no partition and waits for the lock
        first.commit()
    second.join(60)
    assert second.error is None, second.error
    assert second.result is False


def _create(engine: Engine, start_us: int) -> bool:
    with write_transaction(engine) as conn:
        return create_month_partition(conn, start_us)


def test_making_a_month_while_retention_detaches_one_does_not_deadlock(service: IngestService) -> None:
    """Retention's DETACH locks the parent table, then the default partition; making a month
    must take them in the same order, or each waits for the other and PostgreSQL kills one
    (a deadlock: the daily job fails until its claim goes stale)."""
    engine = service.ledger.engine
    with engine.connect() as retention:
        retention.begin()
        retention.execute(text("LOCK TABLE ONLY usage_records IN ACCESS EXCLUSIVE MODE"))  # DETACH's first
        creator = _Thread(lambda: _create(engine, month_start_us(2031, 3)))
        creator.start()
        _wait_for_lock_waiter(engine)
        time.sleep(0.2)  # the creator may take what it can before it waits
        retention.execute(text("LOCK TABLE usage_records_default IN ACCESS EXCLUSIVE MODE"))  # DETACH's next
        retention.commit()
    creator.join(60)
    assert creator.error is None, creator.error
    assert creator.result is True


def test_the_migration_keeps_odd_rows_exactly_up_down_and_up(postgres_url: str) -> None:
    """0007 -> 0008 -> 0007 -> 0008 on rows at the edges: 1970, a microsecond before a month,
    exactly at a month's start, far future, the same id under two sources, every optional column
    NULL, unicode and escapes in tags: every row, id, link and total the same each time."""
    from tests.test_partitions import _ROWS, _row, _snapshot

    engine = create_engine_for(postgres_url)
    upgrade(engine, "0007_dashboard")
    nov = _us("2026-11-01T00:00:00")
    hour = 3_600_000_000
    empty = dict.fromkeys(
        ("cost_nanos", "price_version", "trace_id", "prompt_id", "user_hash", "session_id", "latency_ms")
    )
    odd = [
        _row(300, "1970-01-01T00:00:00+00:00"),
        _row(0, "2026-10-31T00:00:00+00:00", record_id="edge", ts_us=nov - 1, hour=(nov - 1) // hour * 3600),
        _row(
            0,
            "2026-11-01T00:00:00+00:00",
            record_id="edge",
            source="other",
            ts_us=nov,
            hour=nov // hour * 3600,
        ),
        _row(301, "2027-10-31T23:59:59+00:00"),
        _row(
            302, "2026-11-15T00:00:00+00:00", tags='{"é":"☃\\t\\\\N","z":"\\"q\\""}', tool_calls=None, **empty
        ),
    ]
    with write_transaction(engine) as conn:
        conn.execute(insert(usage_records), [*_ROWS, *odd])
        ids = [i for (i,) in conn.execute(select(usage_records.c.id).order_by(usage_records.c.id))]
        conn.execute(insert(outcome_links), [{"outcome": 1, "usage": i} for i in ids[-6:]])
        rebuild_rollups(conn)
    before = _snapshot(engine)
    upgrade(engine)
    assert _snapshot(engine) == before
    with engine.connect() as conn:
        where = dict(
            conn.execute(
                text("SELECT source || '/' || record_id, tableoid::regclass::text FROM usage_records")
            ).all()
        )
        keys = conn.scalar(text("SELECT count(*) FROM usage_record_keys"))
    assert where["app/edge"] == "usage_records_p202610" and where["other/edge"] == "usage_records_p202611"
    assert where["app/r-300"] == "usage_records_default"
    assert keys == len(_ROWS) + len(odd)
    downgrade(engine, "0007_dashboard")
    assert _snapshot(engine) == before
    upgrade(engine)
    assert _snapshot(engine) == before
    engine.dispose()


def test_one_id_in_two_months_from_two_connections_is_stored_once(postgres_url: str, tmp_path: Path) -> None:
    """Two replicas receive the same record ids at the same moment, one with a far time (a
    month in the default partition), the other with this month's (its own partition): each id is
    stored once, in one month, and the other copy is a conflict, never a second row."""
    ledgers = [make_ledger(postgres_url), make_ledger(postgres_url)]
    services = [IngestService(led, BudgetWatch(led, tmp_path / str(n))) for n, led in enumerate(ledgers)]
    this_month = datetime.now(UTC).strftime("%Y-%m-01T00:00:00Z")  # made by the migration
    months = ("2031-10-05T10:00:00Z", this_month)
    ids = list(range(200))
    start = threading.Barrier(2)

    def send(n: int) -> BatchResult:
        batch = [usage(i, ts=months[n]) for i in (ids if n == 0 else ids[::-1])]
        start.wait()
        return services[n].usage(batch, source="app")

    threads = [_Thread(lambda n=n: send(n)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(t.error is None for t in threads), [t.error for t in threads]
    results: list[BatchResult] = [t.result for t in threads]
    assert sum(r.stored for r in results) == len(ids)
    assert sum(r.rejected for r in results) == len(ids)  # the other copy of each: a conflict
    engine = ledgers[0].engine
    assert _count(engine, "SELECT count(*) FROM usage_records") == len(ids)
    assert _count(engine, "SELECT count(DISTINCT record_id) FROM usage_records") == len(ids)
    assert _count(engine, "SELECT count(*) FROM usage_record_keys") == len(ids)
    raw = _count(engine, "SELECT coalesce(sum(cost_nanos), 0) FROM usage_records")
    assert _count(engine, "SELECT coalesce(sum(cost_nanos), 0) FROM rollups_hourly") == raw
    for led in ledgers:
        led.close()


def test_retention_at_a_month_edge_closes_the_last_microsecond_and_keeps_the_first(
    service: IngestService,
) -> None:
    """The horizon falls exactly on 1 October: the record at 23:59:59.999999 on 30 September is
    closed and dropped with its month (sent again: refused, not counted twice); the one at
    00:00:00 on 1 October stays (sent again: a duplicate)."""
    last = usage(1, ts="2026-09-30T23:59:59.999999Z")
    first = usage(2, ts="2026-10-01T00:00:00Z")
    assert service.usage([last, first], source="app").stored == 2
    engine = service.ledger.engine
    with write_transaction(engine) as conn:
        ensure_partitions(conn, NOW)
    raw_cost = _count(engine, "SELECT sum(cost_nanos) FROM usage_records")
    result = run_retention(service.ledger, now=datetime(2026, 11, 10, 12, tzinfo=UTC))  # 40 days: 1 Oct
    assert result.final_before_us == _us("2026-10-01T00:00:00")
    assert (result.usage_deleted, result.keys_pruned) == (1, 1)
    assert _count(engine, "SELECT count(*) FROM usage_records") == 1
    assert _count(engine, "SELECT sum(cost_nanos) FROM rollups_daily") == raw_cost  # September's total kept
    again = service.usage([last, first], source="app")
    assert (again.stored, again.duplicates, again.rejected) == (0, 1, 1)
    assert "too old" in again.rejections[0]["reason"]
    assert _count(engine, "SELECT sum(cost_nanos) FROM rollups_daily") == raw_cost


@pytest.mark.usefixtures("short_partition_lock_timeout")
def test_retention_behind_a_long_read_gives_up_in_one_line_and_runs_again(
    service: IngestService, caplog: pytest.LogCaptureFixture
) -> None:
    """A report reading usage holds the table while the daily retention wants to detach July:
    retention gives up at its lock timeout (writers never queue behind it for long), says so in
    one log line, not a traceback, commits nothing, and runs again once its claim is stale."""
    ledger = service.ledger
    assert (
        service.usage(
            [usage(1, ts="2026-07-10T10:00:00Z"), usage(2, ts="2026-11-20T10:00:00Z")], source="app"
        ).stored
        == 2
    )
    with write_transaction(ledger.engine) as conn:
        ensure_partitions(conn, NOW)
    jobs = [job for job in default_jobs(ledger) if job.name == "retention"]
    with ledger.engine.connect() as report:
        report.begin()
        report.execute(text("SELECT count(*) FROM usage_records"))  # holds it until the report ends
        with caplog.at_level(logging.WARNING, logger="finops.schedules"):
            [(_, _, failed)] = run_due(ledger, jobs, now=NOW, owner="replica-a")
        report.rollback()
    assert failed.startswith("failed:")
    [line] = [r for r in caplog.records if r.name == "finops.schedules"]
    assert line.levelno == logging.WARNING and line.exc_info is None
    with ledger.engine.connect() as conn:
        assert final_before_us(conn) == 0  # nothing of the failed run committed
    assert _count(ledger.engine, "SELECT count(*) FROM usage_records") == 2
    with write_transaction(ledger.engine) as conn:  # 15 minutes later: the claim is stale
        conn.execute(
            text("UPDATE schedule_runs SET claimed_us = claimed_us - :stale"), {"stale": STALE_US + 1}
        )
    [(_, _, done)] = run_due(ledger, jobs, now=NOW, owner="replica-b")
    assert "1 raw records deleted" in done
    assert _count(ledger.engine, "SELECT count(*) FROM usage_records") == 1


def _prompt(prompt_id: str) -> dict[str, Any]:
    return {
        "prompt_id": prompt_id,
        "first_seen_us": 1,
        "preview": None,
        "prompt_tokens": 3,
        "tokens_estimated": 0,
    }


def test_two_replicas_seeing_the_same_new_prompts_in_opposite_orders_do_not_deadlock(
    postgres_url: str,
) -> None:
    """Replica A's batch brings new prompts p1, p0, p2; replica B's p2, p0, p1, at the same moment
    (a third session holds p0 until both wait for it). Inserted in the order they came, A holds
    p1 and wants p2 while B holds p2 and wants p1: PostgreSQL kills one (a 503 and an outage
    logged for nothing). In key order, as the rollups are, both simply queue."""
    ledger = make_ledger(postgres_url)
    engine = ledger.engine
    try:
        with engine.connect() as third:
            third.begin()
            record_prompts(third, [_prompt("p0")])
            a = _Thread(lambda: _prompts(engine, ["p1", "p0", "p2"]))
            b = _Thread(lambda: _prompts(engine, ["p2", "p0", "p1"]))
            a.start()
            b.start()
            deadline = time.monotonic() + 20
            while _waiting(engine) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            third.rollback()
        a.join(60)
        b.join(60)
        assert a.error is None and b.error is None, (a.error, b.error)
        assert _count(engine, "SELECT count(*) FROM prompts") == 3
    finally:
        ledger.close()


def _prompts(engine: Engine, ids: list[str]) -> None:
    with write_transaction(engine) as conn:
        record_prompts(conn, [_prompt(p) for p in ids])


def _waiting(engine: Engine) -> int:
    return _count(
        engine,
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
