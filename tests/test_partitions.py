"""PostgreSQL's monthly partitions: the migration converts a populated ledger and back, retention
drops whole months and keeps their totals, a record counts once across months, and partitions
made ahead take over rows the default partition held."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from finops.daemon.budget_watch import BudgetWatch
from finops.daemon.service import IngestService
from finops.storage.db import create_engine_for, downgrade, upgrade, write_transaction
from finops.storage.ledger import rebuild_rollups
from finops.storage.partitions import ensure_partitions, partitions, prune_keys
from finops.storage.retention import final_before_us
from finops.storage.tables import USAGE_COLUMNS, outcome_links, usage_records
from finops.usecases.retention import run_retention
from finops.usecases.spend import SpendQuery, run_spend
from tests.conftest import make_ledger, usage

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
_US = 1_000_000


@pytest.fixture
def pg(postgres_url: str) -> str:
    return postgres_url


def _us(when: str) -> int:
    return int(datetime.fromisoformat(when).timestamp()) * _US


def _row(i: int, when: str, **over: Any) -> dict[str, Any]:
    ts = _us(when) + i
    row: dict[str, Any] = dict.fromkeys(USAGE_COLUMNS)
    row.update(
        source="app",
        record_id=f"r-{i}",
        ts_us=ts,
        hour=ts // 3_600_000_000 * 3600,
        provider="openai",
        model="gpt-4o-mini",
        flow=("support", "search")[i % 2],
        tags='{"env":"prod"}',
        service_tier="standard",
        status="ok",
        requests=1,
        input_tokens=1000 + i,
        cached_input_tokens=0,
        cache_write_tokens=0,
        cache_write_1h_tokens=0,
        output_tokens=100,
        reasoning_tokens=0,
        cost_nanos=None if i % 7 == 0 else 1_000 + i,
        price_version=None if i % 7 == 0 else "v1",
        trace_id=f"t-{i}" if i % 3 == 0 else None,
        ingested_us=ts,
    )
    row.update(over)
    return row


#: Months with records, and two outliers the migration leaves to the default partition.
_WHEN = ["2026-06-15T10:00:00+00:00", "2026-07-31T23:59:59+00:00", "2026-08-01T00:00:00+00:00",
         "2026-11-20T12:00:00+00:00"]  # fmt: skip
_ROWS = [_row(i, _WHEN[i % 4]) for i in range(40)] + [
    _row(100, "1990-01-01T00:00:00+00:00"),
    _row(101, "2099-12-31T00:00:00+00:00"),
]


def _snapshot(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(usage_records).order_by(usage_records.c.id))]
        links = [tuple(r) for r in conn.execute(select(outcome_links).order_by(outcome_links.c.usage))]
        query = SpendQuery(group_by=("day", "flow"), start=datetime(1989, 1, 1, tzinfo=UTC),
                           end=datetime(2100, 1, 1, tzinfo=UTC), tz=UTC)  # fmt: skip
        spend = sorted((tuple(r.keys.values()), tuple(r.sums.items())) for r in run_spend(conn, query).rows)
    return rows, links, spend


def _partition_of(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT record_id, tableoid::regclass::text FROM usage_records")).all())


def test_the_migration_converts_a_populated_ledger_and_back(pg: str) -> None:
    engine = create_engine_for(pg)
    upgrade(engine, "0007_dashboard")
    with write_transaction(engine) as conn:
        conn.execute(insert(usage_records), _ROWS)
        ids = [i for (i,) in conn.execute(select(usage_records.c.id).order_by(usage_records.c.id).limit(5))]
        conn.execute(insert(outcome_links), [{"outcome": 1, "usage": i} for i in ids])
        rebuild_rollups(conn)
    before = _snapshot(engine)

    upgrade(engine)
    assert _snapshot(engine) == before  # every row, id, link and total as it was
    where = _partition_of(engine)
    assert where["r-0"] == "usage_records_p202606" and where["r-1"] == "usage_records_p202607"
    assert where["r-2"] == "usage_records_p202608" and where["r-3"] == "usage_records_p202611"
    assert where["r-100"] == where["r-101"] == "usage_records_default"
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM usage_record_keys")) == len(_ROWS)
        assert conn.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'usage_records'")) == "p"
    # New rows take ids after the old ones: the sequence came along.
    with write_transaction(engine) as conn:
        conn.execute(
            text("INSERT INTO usage_record_keys VALUES ('app', 'r-200', :ts)"), {"ts": _us(_WHEN[3])}
        )
        conn.execute(insert(usage_records), [_row(200, _WHEN[3])])
        assert conn.scalar(select(func.max(usage_records.c.id))) == len(_ROWS) + 1
        conn.execute(text("DELETE FROM usage_records WHERE record_id = 'r-200'"))
        conn.execute(text("DELETE FROM usage_record_keys WHERE record_id = 'r-200'"))

    downgrade(engine, "0007_dashboard")
    assert _snapshot(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'usage_records'")) == "r"
        assert conn.scalar(text("SELECT to_regclass('usage_record_keys')")) is None
        assert conn.scalar(text("SELECT count(*) FROM pg_class WHERE relname LIKE 'usage_records_p%'")) == 0
    # the old constraint is back
    with (
        pytest.raises(Exception, match="uq_usage_records_source_record_id"),
        write_transaction(engine) as conn,
    ):
        conn.execute(insert(usage_records), [_row(0, _WHEN[0])])
    upgrade(engine)
    assert _snapshot(engine) == before
    engine.dispose()


@pytest.fixture
def service(pg: str, tmp_path: Path) -> Iterator[IngestService]:
    ledger = make_ledger(pg, retention_days=40)
    yield IngestService(ledger, BudgetWatch(ledger, tmp_path))
    ledger.close()


def _totals(service: IngestService) -> list[tuple[Any, ...]]:
    query = SpendQuery(group_by=("day", "flow"), start=datetime(2026, 1, 1, tzinfo=UTC), end=NOW, tz=UTC)
    with service.ledger.engine.connect() as conn:
        return sorted((tuple(r.keys.values()), tuple(r.sums.items())) for r in run_spend(conn, query).rows)


def _count(service: IngestService, table: str) -> int:
    with service.ledger.engine.connect() as conn:
        return int(conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


def test_retention_drops_whole_months_and_keeps_their_totals(service: IngestService) -> None:
    july = [usage(i, ts=f"2026-07-{10 + i:02d}T18:45:00Z") for i in range(5)]
    august = [usage(10 + i, ts=f"2026-08-{1 + i:02d}T00:00:00Z") for i in range(3)]
    november = [usage(20 + i, ts="2026-11-20T10:00:00Z") for i in range(4)]
    assert service.usage([*july, *august, *november], source="app").stored == 12
    ledger = service.ledger
    with write_transaction(ledger.engine) as conn:  # the daemon's daily job: backfilled months get partitions
        made = ensure_partitions(conn, NOW)
    assert made == ["usage_records_p202607", "usage_records_p202608", "usage_records_p202610"]
    assert _count(service, "usage_records_default") == 0
    with ledger.engine.connect() as conn:
        first = conn.scalar(select(func.min(usage_records.c.id)))
    with write_transaction(ledger.engine) as conn:
        conn.execute(insert(outcome_links), [{"outcome": 7, "usage": first}])
    before = _totals(service)

    result = run_retention(ledger, now=NOW)  # 40 days: up to 2026-10-13, so July and August close
    assert result.final_before_us == _us("2026-09-01T00:00:00+00:00")
    assert result.usage_deleted == 8 and result.links_deleted == 1
    assert result.keys_pruned == 8  # their idempotency keys go after the commit
    with ledger.engine.connect() as conn:
        names = {p.name for p in partitions(conn)}
        assert final_before_us(conn) == result.final_before_us
    assert "usage_records_p202607" not in names and "usage_records_p202608" not in names
    assert "usage_records_p202611" in names
    assert _count(service, "usage_records") == 4 and _count(service, "usage_record_keys") == 4
    assert _totals(service) == before  # the rollups hold the closed months, to the nano-dollar
    with write_transaction(ledger.engine) as conn:  # a repair must not wipe what only the rollups hold
        rebuild_rollups(conn)
    assert _totals(service) == before
    again = service.usage(july[:1], source="app")  # closed and dropped: refused, never counted twice
    assert again.stored == 0 and "too old" in again.rejections[0]["reason"]
    assert run_retention(ledger, now=NOW).usage_deleted == 0  # a second run has nothing to do


def test_a_record_id_counts_once_across_months(service: IngestService) -> None:
    first = service.usage([usage(1, ts="2026-10-05T10:00:00Z")], source="app")
    assert first.stored == 1
    moved = service.usage([usage(1, ts="2026-11-05T10:00:00Z")], source="app")  # same id, other month
    assert moved.stored == 0 and "conflict" in moved.rejections[0]["reason"]
    same = service.usage([usage(1, ts="2026-10-05T10:00:00Z")], source="app")
    assert same.stored == 0 and same.duplicates == 1
    other_source = service.usage([usage(1, ts="2026-11-05T10:00:00Z")], source="other")
    assert other_source.stored == 1  # ids are per source, as on SQLite
    assert _count(service, "usage_records") == 2 == _count(service, "usage_record_keys")


def test_partitions_made_ahead_take_over_rows_the_default_partition_held(service: IngestService) -> None:
    ledger = service.ledger
    with ledger.engine.connect() as conn:
        months = {p.name for p in partitions(conn)}
    far = "2031-03-04T05:06:07Z"
    assert "usage_records_p203103" not in months
    assert service.usage([usage(1, ts=far), usage(2, ts=far)], source="app").stored == 2
    assert set(_partition_of(ledger.engine).values()) == {"usage_records_default"}
    before = _totals_for(service, "2031-03-01", "2031-04-01")
    with write_transaction(ledger.engine) as conn:
        made = ensure_partitions(conn, datetime(2031, 2, 10, tzinfo=UTC))
    assert made == [
        "usage_records_p203101",
        "usage_records_p203102",
        "usage_records_p203103",
        "usage_records_p203104",
    ]
    assert set(_partition_of(ledger.engine).values()) == {"usage_records_p203103"}
    assert _count(service, "usage_records_default") == 0
    assert _totals_for(service, "2031-03-01", "2031-04-01") == before
    again = service.usage([usage(1, ts=far)], source="app")
    assert again.duplicates == 1 and _count(service, "usage_records") == 2
    with write_transaction(ledger.engine) as conn:
        assert ensure_partitions(conn, datetime(2031, 2, 10, tzinfo=UTC)) == []  # idempotent


def _totals_for(service: IngestService, start: str, end: str) -> list[tuple[Any, ...]]:
    query = SpendQuery(group_by=("flow",), start=datetime.fromisoformat(start).replace(tzinfo=UTC),
                       end=datetime.fromisoformat(end).replace(tzinfo=UTC), tz=UTC)  # fmt: skip
    with service.ledger.engine.connect() as conn:
        return sorted((tuple(r.keys.values()), tuple(r.sums.items())) for r in run_spend(conn, query).rows)


def test_key_pruning_is_bounded_and_leaves_open_months(service: IngestService) -> None:
    records = [usage(i, ts=f"2026-07-{1 + i % 28:02d}T00:00:00Z") for i in range(30)]
    assert service.usage([*records, usage(99, ts="2026-11-20T00:00:00Z")], source="app").stored == 31
    with write_transaction(service.ledger.engine) as conn:
        assert prune_keys(conn, _us("2026-08-01T00:00:00+00:00"), limit=10) == 10
        assert prune_keys(conn, _us("2026-08-01T00:00:00+00:00"), limit=100) == 20
        assert prune_keys(conn, _us("2026-08-01T00:00:00+00:00")) == 0
    assert _count(service, "usage_record_keys") == 1
