"""Retention: raw records deleted, totals kept, the watermark closed and honoured by every writer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from finops.daemon.budget_watch import BudgetWatch
from finops.daemon.service import IngestService
from finops.errors import UsageError
from finops.storage.db import write_transaction
from finops.storage.ledger import rebuild_rollups
from finops.storage.retention import apply_retention, final_before_us
from finops.storage.tables import usage_records
from finops.usecases.audit.monthly import build_monthly_report
from finops.usecases.export_focus import focus_export
from finops.usecases.ledger import Ledger
from finops.usecases.retention import prepare_partitions, run_retention
from finops.usecases.spend import SpendQuery, run_spend
from tests.conftest import fresh_postgres_database, make_ledger, usage
from tests.racing import after_statement, in_sqlite_write

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
OLD = [usage(i, ts=f"2026-07-{10 + i:02d}T18:45:00Z") for i in range(5)]  # 00:15 the next day in Kolkata
NEW = [usage(100 + i, ts="2026-11-20T10:00:00Z") for i in range(3)]


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[IngestService]:
    ledger = make_ledger(db_url, retention_days=40)
    yield IngestService(ledger, BudgetWatch(ledger, tmp_path))
    ledger.close()


def _spend(ledger: Ledger, by: tuple[str, ...], tz: str = "UTC") -> list[tuple[tuple[str, ...], int, int]]:
    query = SpendQuery(group_by=by, start=datetime(2026, 6, 1, tzinfo=UTC), end=NOW, tz=ZoneInfo(tz))
    with ledger.engine.connect() as conn:
        result = run_spend(conn, query)
    return sorted((tuple(r.keys.values()), r.sums["records"], r.sums["cost_nanos"]) for r in result.rows)


def _raw(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(usage_records)) or 0)


def test_totals_survive_retention_by_flow_by_day_and_in_a_half_hour_zone(service: IngestService) -> None:
    ledger = service.ledger
    assert service.usage([*OLD, *NEW], source="app").stored == 8
    views = [
        (("flow",), "UTC"),
        (("day",), "UTC"),
        (("month", "flow"), "Europe/Berlin"),
        (("month",), "Asia/Kolkata"),
    ]
    before = [_spend(ledger, by, tz) for by, tz in views]
    result = run_retention(ledger, now=NOW)
    assert result.usage_deleted == 5 and _raw(ledger) == 3
    assert [_spend(ledger, by, tz) for by, tz in views] == before
    with write_transaction(ledger.engine) as conn:  # a repair must not wipe what only the rollups hold
        rebuild_rollups(conn)
    assert [_spend(ledger, by, tz) for by, tz in views] == before


def test_the_watermark_moves_only_past_days_that_had_records(service: IngestService) -> None:
    ledger = service.ledger
    assert run_retention(ledger, now=NOW).final_before_us == 0  # a new database closes nothing
    assert service.usage(OLD[:1], source="app").stored == 1  # so history can still be loaded
    final = run_retention(ledger, now=NOW).final_before_us
    if ledger.engine.dialect.name == "postgresql":
        # Partitioned by month: the whole month of the newest old record closes, and is dropped.
        assert final == int(datetime(2026, 8, 1, tzinfo=UTC).timestamp()) * 1_000_000
        late = service.usage(OLD[1:2], source="app")  # 2026-07-11: in the closed month, refused
        assert late.stored == 0 and "too old" in late.rejections[0]["reason"]
        august = service.usage([usage(50, ts="2026-08-01T00:00:00Z")], source="app")
        assert august.stored == 1  # the first instant after the watermark is open
    else:
        assert final == int(datetime(2026, 7, 11, tzinfo=UTC).timestamp()) * 1_000_000  # the day after it
        late = service.usage(OLD[1:2], source="app")  # 2026-07-11: after the watermark, still accepted
        assert late.stored == 1
    refused = service.usage(OLD[:1], source="app")  # 2026-07-10: closed, and deleted: refused
    assert refused.stored == 0 and "too old" in refused.rejections[0]["reason"]


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_batch_waits_for_retention_and_then_sees_its_watermark(service: IngestService) -> None:
    """PostgreSQL runs writers concurrently: without a lock, a record retention is deleting
    could be stored again under the old watermark and counted twice."""
    ledger = service.ledger
    assert service.usage(OLD[:1], source="app").stored == 1
    answers: list[object] = []
    with write_transaction(ledger.engine) as conn:
        apply_retention(
            conn,
            usage_before_us=int(NOW.timestamp()) * 1_000_000,
            preview_before_day=0,
            dead_letters_before_us=0,
        )
        retry = threading.Thread(target=lambda: answers.append(service.usage(OLD[:1], source="app")))
        retry.start()
        retry.join(1.0)
        assert retry.is_alive(), "the retried batch must wait for retention to commit"
    retry.join(30)
    (answer,) = answers
    assert answer.stored == 0 and "too old" in answer.rejections[0]["reason"]  # type: ignore[attr-defined]
    with ledger.engine.connect() as conn:
        assert final_before_us(conn) > 0
    assert _spend(ledger, ("flow",))[0][1] == 1  # counted once


def test_closed_reservations_go_with_the_raw_records_and_open_holds_stay(db_url: str, tmp_path: Path) -> None:
    from finops.storage.tables import reservation_budgets, reservations
    from finops.usecases.admission import ReserveRequest, release, reserve
    from tests.test_admission import budgets

    ledger = make_ledger(db_url, retention_days=40)
    found = budgets(tmp_path, "100")
    july = datetime(2026, 7, 10, tzinfo=UTC)
    old = [
        reserve(
            ledger, found, ReserveRequest("admit", estimate_usd=Decimal(1), ttl_s=60), source="a", now=july
        )
    ]
    old.append(
        reserve(
            ledger, found, ReserveRequest("admit", estimate_usd=Decimal(1), ttl_s=60), source="a", now=july
        )
    )
    release(ledger, old[0].reservation_id or "")  # released; old[1] lapses unmarked: still "open"
    fresh = reserve(ledger, found, ReserveRequest("admit", estimate_usd=Decimal(1)), source="a", now=NOW)
    result = run_retention(ledger, now=NOW)
    with ledger.engine.connect() as conn:
        left = dict(conn.execute(select(reservations.c.id, reservations.c.status)).all())
        links = {rid for (rid,) in conn.execute(select(reservation_budgets.c.reservation_id))}
    ledger.close()
    assert result.reservations_deleted == 1 and old[0].reservation_id not in left
    assert left == {old[1].reservation_id: "open", fresh.reservation_id: "open"}  # never an open one
    assert links == set(left)


@contextmanager
def _fresh_ledger(db_url: str, path: Path) -> Iterator[Ledger]:
    """A new, empty ledger of the same kind as ``db_url`` (retention as in ``service``)."""
    with (
        nullcontext(f"sqlite:///{path}") if db_url.startswith("sqlite") else fresh_postgres_database() as url
    ):
        led = make_ledger(url, retention_days=40)
        try:
            yield led
        finally:
            led.close()


def test_a_report_racing_retention_never_loses_the_closed_days(db_url: str, tmp_path: Path) -> None:
    """A local-day report in a half-hour zone reads the watermark, then the hourly rollups before
    it and the raw records after it. Retention moves the watermark and deletes the raw records it
    closes in one commit: whichever statement of the report it lands after, the report must count
    each record once (from the raw rows or from the rollups), never in neither place. Retention is
    run from inside the report, after its k-th statement, on a new ledger each time."""
    query = SpendQuery(
        group_by=("day",), start=datetime(2026, 6, 1, tzinfo=UTC), end=NOW, tz=ZoneInfo("Asia/Kolkata")
    )

    def report(ledger: Ledger, retain_after: int | None) -> tuple[int, int]:
        """The report's total and how many statements it ran."""

        def retain() -> None:
            assert run_retention(ledger, now=NOW).usage_deleted == 5

        with ledger.engine.connect() as conn, after_statement(conn, retain_after, retain) as race:
            result = run_spend(conn, query)
        return result.total["cost_nanos"], race.statements

    with _fresh_ledger(db_url, tmp_path / "first.db") as ledger:
        IngestService(ledger, BudgetWatch(ledger, tmp_path)).usage([*OLD, *NEW], source="app")
        expected, counted = report(ledger, None)
    assert expected > 0 and counted >= 1
    for k in range(1, counted + 1):
        with _fresh_ledger(db_url, tmp_path / f"k{k}.db") as ledger:
            assert (
                IngestService(ledger, BudgetWatch(ledger, tmp_path)).usage([*OLD, *NEW], source="app").stored
                == 8
            )
            during, _ = report(ledger, k)
            assert _raw(ledger) == 3  # retention ran and deleted the old raw records
            assert during == expected, (
                f"retention after statement {k} of the report hid {expected - during} nanos"
            )


@pytest.mark.usefixtures("short_partition_lock_timeout")
def test_a_focus_export_racing_retention_is_whole_or_refused(db_url: str, tmp_path: Path) -> None:
    """The FOCUS export refuses a month retention has deleted raw records of (it needs each call).
    It reads the watermark and the month's raw records in separate statements: retention landing
    after any of its statements must leave the export whole or refused, never short."""

    def export(ledger: Ledger, retain_after: int | None) -> tuple[int | None, int]:
        """The export's billed total (``None``: refused) and how many statements it ran."""

        def retain() -> None:
            try:
                assert run_retention(ledger, now=NOW).usage_deleted == 5
            except OperationalError as exc:  # PostgreSQL: the export reads the month's partition,
                assert "lock timeout" in str(exc)  # which retention then waits for and gives up on

        with after_statement(ledger.read_engine, retain_after, retain) as race:
            try:
                return focus_export(ledger, "2026-07", tz=ZoneInfo("UTC")).billed_nanos, race.statements
            except UsageError as exc:
                assert "deleted by retention" in str(exc)
                return None, race.statements

    with _fresh_ledger(db_url, tmp_path / "first.db") as ledger:
        IngestService(ledger, BudgetWatch(ledger, tmp_path)).usage([*OLD, *NEW], source="app")
        expected, counted = export(ledger, None)
    assert expected is not None and expected > 0 and counted >= 2
    for k in range(1, counted + 1):
        with _fresh_ledger(db_url, tmp_path / f"k{k}.db") as ledger:
            service = IngestService(ledger, BudgetWatch(ledger, tmp_path))
            assert service.usage([*OLD, *NEW], source="app").stored == 8
            prepare_partitions(ledger, now=NOW)  # PostgreSQL: July in a partition of its own, dropped whole
            during, _ = export(ledger, k)
            assert _raw(ledger) in (3, 8)  # retention ran and deleted the old raw records, or gave up
            assert during in (None, expected), f"retention after statement {k} of the export: {during} billed"


@pytest.mark.usefixtures("short_partition_lock_timeout")
def test_a_monthly_report_racing_retention_never_loses_the_month(db_url: str, tmp_path: Path) -> None:
    """The monthly report reads in one snapshot. In a zone whose days start mid-hour its days come
    from raw records after the retention watermark; on PostgreSQL retention drops a closed month's
    partition whole, and a dropped table is gone even for a snapshot older than the drop. Whichever
    statement of the report retention lands after, the report must count the month whole."""

    def report(ledger: Ledger, retain_after: int | None) -> tuple[tuple[int, ...], int, bool]:
        """The report's totals, its statements, and whether retention gave up on its lock."""
        gave_up = False

        def retain() -> None:
            nonlocal gave_up
            try:
                run_retention(ledger, now=NOW)
            except OperationalError as exc:  # it waits for the report's read of the partition
                assert "lock timeout" in str(exc)
                gave_up = True

        # (SQLite: not inside the report's relink, which holds the one write lock)
        with after_statement(ledger.read_engine, retain_after, retain, skip=in_sqlite_write) as race:
            built = build_monthly_report(ledger, month="2026-07", tz=ZoneInfo("Asia/Kolkata"), now=NOW)
        days = sum(cost for _, cost in built.daily)
        totals = (built.total_nanos, days, sum(line.cost_nanos for line in built.by_flow))
        return totals, race.statements, gave_up

    with _fresh_ledger(db_url, tmp_path / "first.db") as ledger:
        IngestService(ledger, BudgetWatch(ledger, tmp_path)).usage([*OLD, *NEW], source="app")
        expected, counted, _ = report(ledger, None)
    assert expected[0] > 0 and len(set(expected)) == 1 and counted >= 2
    for k in range(1, counted + 1):
        with _fresh_ledger(db_url, tmp_path / f"r{k}.db") as ledger:
            service = IngestService(ledger, BudgetWatch(ledger, tmp_path))
            assert service.usage([*OLD, *NEW], source="app").stored == 8
            prepare_partitions(ledger, now=NOW)  # PostgreSQL: July in a partition of its own, dropped whole
            during, _, gave_up = report(ledger, k)
        assert during == expected, f"retention after statement {k} of the report: {during}"
        if gave_up:  # the report's snapshot holds the month's partition from here to its end
            break
