"""PostgreSQL's bulk write path (COPY into a per-transaction staging table, then one INSERT ..
SELECT and one rollup upsert per table): duplicates, conflicts, several writes and savepoint
rollbacks in one transaction, concurrent writers, and values the database refuses, each counted
exactly as the row-by-row path counted them. Rollups always equal a rebuild from the raw rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text

from finops.domain.usage import parse_usage
from finops.storage.db import write_transaction
from finops.storage.ledger import (
    BatchOutcome,
    PricedRecord,
    Rejection,
    add_to_rollups,
    rebuild_rollups,
    usage_row,
    write_rows,
    write_rows_isolating,
)
from finops.storage.tables import (
    dead_letters,
    prompt_rollups_daily,
    rollups_daily,
    rollups_hourly,
    usage_records,
)
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, usage

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Ledger]:
    led = make_ledger(postgres_url)
    yield led
    led.close()


def _rows(ids: range | list[int], *, source: str = "gw", **overrides: Any) -> list[tuple[Any, ...]]:
    return [
        usage_row(PricedRecord(parse_usage(usage(i, **overrides)), 1000 + i, None, "test", i), source, 1)
        for i in ids
    ]


def _where(rows: list[tuple[Any, ...]]) -> list[tuple[str, int | None]]:
    return [("test", i) for i in range(len(rows))]


def _write(conn: Connection, rows: list[tuple[Any, ...]]) -> BatchOutcome:
    return write_rows(conn, source="gw", rows=rows, where=_where(rows), now_us=1)


def _rollups(conn: Connection) -> list[list[tuple[Any, ...]]]:
    out = []
    for table in (rollups_hourly, rollups_daily, prompt_rollups_daily):
        cols = [c for c in table.c if c.name != "id"]
        out.append([tuple(r) for r in conn.execute(select(*cols).order_by(*cols[:8]))])
    return out


def _assert_rollups_match_raw(ledger: Ledger) -> None:
    """The incremental rollups equal the ones rebuilt from the stored raw rows, table by table."""
    with ledger.engine.connect() as conn, conn.begin() as transaction:
        incremental = _rollups(conn)
        rebuild_rollups(conn)
        rebuilt = _rollups(conn)
        transaction.rollback()
    assert incremental == rebuilt


def _stored(ledger: Ledger) -> tuple[int, int, int]:
    u = usage_records.c
    with ledger.engine.connect() as conn:
        row = conn.execute(
            select(func.count(), func.count(func.distinct(u.record_id)), func.sum(u.cost_nanos))
        ).one()
    return int(row[0]), int(row[1]), int(row[2] or 0)


def test_duplicates_and_conflicts_inside_and_across_batches(pg: Ledger) -> None:
    first = _rows(range(10))
    first += [first[3], first[3]]  # copies inside the batch
    first += _rows([4], output_tokens=7)  # same id, other content, same batch: a conflict
    with write_transaction(pg.engine) as conn:
        one = _write(conn, first)
    assert (one.stored, one.duplicates, len(one.conflicts)) == (10, 2, 1)
    second = _rows(range(5, 15)) + _rows([6], output_tokens=9)  # 5..9 stored already; 6 again, changed
    with write_transaction(pg.engine) as conn:
        two = _write(conn, second)
    assert (two.stored, two.duplicates, len(two.conflicts)) == (5, 5, 1)
    assert sorted(two.inserted) == sorted(f"req-{i}" for i in range(10, 15))
    assert _stored(pg) == (15, 15, sum(1000 + i for i in range(15)))
    _assert_rollups_match_raw(pg)


def test_several_batches_in_one_transaction_each_count_as_if_alone(pg: Ledger) -> None:
    with write_transaction(pg.engine) as conn:
        a = _write(conn, _rows(range(0, 100)))
        b = _write(conn, _rows(range(50, 150)))  # half of it written by the call before
        c = _write(conn, _rows(range(140, 160)))
        d = _write(conn, _rows(range(0, 10)))  # all stored: nothing staged earlier comes back
    assert [(o.stored, o.duplicates) for o in (a, b, c, d)] == [(100, 0), (50, 50), (10, 10), (0, 10)]
    assert _stored(pg) == (160, 160, sum(1000 + i for i in range(160)))
    _assert_rollups_match_raw(pg)


def test_a_savepoint_rolled_back_then_another_write_in_the_same_transaction(pg: Ledger) -> None:
    with write_transaction(pg.engine) as conn:
        savepoint = conn.begin_nested()  # the staging table is first created inside it
        assert _write(conn, _rows(range(0, 30))).stored == 30
        savepoint.rollback()
        again = _write(conn, _rows(range(20, 40)))
        savepoint = conn.begin_nested()
        _write(conn, _rows(range(100, 110)))
        savepoint.rollback()
        last = _write(conn, _rows(range(35, 45)))
        add_to_rollups(conn, _rows(range(20, 25)), sign=-1)  # as reprice does: out, then back in
        add_to_rollups(conn, _rows(range(20, 25)))
    assert (again.stored, again.duplicates, last.stored, last.duplicates) == (20, 0, 5, 5)
    assert _stored(pg) == (25, 25, sum(1000 + i for i in range(20, 45)))
    _assert_rollups_match_raw(pg)


def test_the_staging_tables_do_not_outlive_the_transaction(pg: Ledger) -> None:
    """Behind a pooler in transaction mode the next transaction may run on another session:
    nothing staged may be left behind in this one."""
    with pg.engine.connect() as conn:
        with conn.begin():
            _write(conn, _rows(range(5)))
            staged = conn.scalar(text("SELECT count(*) FROM pg_class WHERE relpersistence = 't'"))
            assert staged and staged > 0
        assert conn.scalar(text("SELECT count(*) FROM pg_class WHERE relpersistence = 't'")) == 0
        conn.rollback()


def test_copy_keeps_tabs_newlines_and_backslashes_exactly(pg: Ledger) -> None:
    """COPY's text format escapes these itself; a stored value must read back byte for byte, so a
    re-sent record is a duplicate, not a conflict."""
    odd = "a\tb\\nc\\\\d\ne\r\\."
    rows = _rows(range(3))
    rows = [
        (*row[:6], f"flow{odd}", f'{{"k":"{odd}"}}', *row[8:19], f"prompt{odd}", *row[20:]) for row in rows
    ]
    with write_transaction(pg.engine) as conn:
        assert _write(conn, rows).stored == 3
    with write_transaction(pg.engine) as conn:
        again = _write(conn, rows)
    assert (again.stored, again.duplicates, again.conflicts) == (0, 3, [])
    with pg.engine.connect() as conn:
        flows = set(conn.scalars(select(usage_records.c.flow)))
        prompts = set(conn.scalars(select(prompt_rollups_daily.c.prompt_id)))
    assert flows == {f"flow{odd}"} and prompts == {f"prompt{odd}"}
    _assert_rollups_match_raw(pg)


#: values the validation would refuse, forced into a row: each must be refused by the database
#: (COPY, or the insert after it) alone, with its batch-mates stored
POISON: dict[str, tuple[int, Any]] = {
    "flow longer than varchar(128)": (6, "f" * 129),
    "source longer than varchar(128)": (0, "s" * 129),
    "NUL byte in flow": (6, "bad\x00flow"),
    "NUL byte in tags": (7, '{"team":"a\x00b"}'),
    "latency past bigint": (23, 2**70),
    "tokens past bigint": (11, 2**63),
    "negative past bigint": (17, -(2**63) - 1),
    "model longer than the rollup's varchar(200)": (5, "m" * 201),
}


@pytest.mark.parametrize("case", list(POISON))
def test_a_value_copy_refuses_is_rejected_alone_and_its_batch_mates_stored(pg: Ledger, case: str) -> None:
    column, value = POISON[case]
    rows = _rows(range(64))
    rows[37] = (*rows[37][:column], value, *rows[37][column + 1 :])
    where = _where(rows)
    with write_transaction(pg.engine) as conn:
        outcome, refused = write_rows_isolating(conn, source="gw", rows=rows, where=where, now_us=1)
    assert outcome.stored == 63 and [r.line for r in refused] == [37]
    assert isinstance(refused[0], Rejection) and "the database refused this record" in refused[0].reason
    assert "SQLSTATE" in refused[0].reason or "DataError" in refused[0].reason
    assert _stored(pg) == (63, 63, sum(1000 + i for i in range(64) if i != 37))
    _assert_rollups_match_raw(pg)
    with pg.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(dead_letters)) == 0  # the caller writes them


def test_two_writers_with_overlapping_batches_store_each_record_once(postgres_url: str) -> None:
    """Two replicas, each its own connection, writing overlapping batches (in opposite orders, so
    without key-ordered locking they would deadlock): every record once, rollups equal the raw
    rows, and every record counted stored by exactly one writer."""
    ledgers = [make_ledger(postgres_url), make_ledger(postgres_url)]
    ids = list(range(3000))
    plans = [
        [ids[i : i + 400] for i in range(0, 3000, 300)],
        [ids[i : i + 400][::-1] for i in range(2700, -1, -300)],
    ]
    results: list[list[BatchOutcome]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(n: int) -> None:
        try:
            start.wait()
            for batch in plans[n]:
                rows = _rows(batch)
                with write_transaction(ledgers[n].engine) as conn:
                    results[n].append(_write(conn, rows))
        except BaseException as exc:  # reported below, with the thread's name
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    stored = [rid for outcomes in results for o in outcomes for rid in o.inserted]
    assert sorted(stored) == sorted(f"req-{i}" for i in ids)  # each stored once, by one writer
    assert all(not o.conflicts for outcomes in results for o in outcomes)
    assert _stored(ledgers[0]) == (3000, 3000, sum(1000 + i for i in ids))
    _assert_rollups_match_raw(ledgers[0])
    for led in ledgers:
        led.close()


def _mixed_rows(ids: range) -> list[tuple[Any, ...]]:
    """Rows that exercise every rollup column: unpriced records (no cost), requests > 1, no
    prompt and two prompts, cache writes, errors, another tier, two sources, both sides of a
    UTC day."""
    rows = []
    for i in ids:
        record = usage(
            i,
            ts=f"2026-11-0{1 + i % 2}T{23 if i % 4 < 2 else 0:02d}:{i % 60:02d}:00Z",
            requests=1 + i % 3,
            cache_write_tokens=i % 4 * 10,
            status="error" if i % 5 == 0 else "ok",
            service_tier="batch" if i % 6 == 0 else "standard",
            **({"prompt_id": f"p-{i % 2}"} if i % 3 else {}),
        )
        cost = None if i % 4 == 0 else 1000 + i
        rows.append(usage_row(PricedRecord(parse_usage(record), cost, None, "test", i), "gw", 10**15 + i))
    return rows


def test_the_databases_rollups_equal_the_python_ones_on_sqlite(pg: Ledger, tmp_path: Any) -> None:
    """PostgreSQL adds a batch to the rollups in SQL (PG_STAGE_TO_LEDGER), SQLite in Python
    (add_to_rollups): the same batches, some of them stored already (the careful path), give the
    same rollup rows, the same source freshness and the same outcomes, to the nano-dollar."""
    lite = make_ledger(f"sqlite:///{tmp_path / 'finops.db'}")
    batches = [_mixed_rows(range(0, 300)), _mixed_rows(range(200, 500)), _mixed_rows(range(0, 50))]
    tables = []
    for ledger in (pg, lite):
        outcomes = []
        for rows in batches:
            with write_transaction(ledger.engine) as conn:
                o = _write(conn, rows)
            outcomes.append((o.stored, o.duplicates, o.unpriced, o.cost_nanos, sorted(o.inserted.items())))
        with ledger.engine.connect() as conn:
            activity = conn.execute(text("SELECT * FROM source_activity ORDER BY source")).all()
            tables.append((outcomes, _rollups(conn), [tuple(r) for r in activity]))
    lite.close()
    assert tables[0] == tables[1]
    outcomes, rollups, _ = tables[0]
    assert [o[:2] for o in outcomes] == [(300, 0), (200, 100), (0, 50)]
    hourly = rollups[0]
    assert sum(r[7] for r in hourly) == 500 and any(r[16] for r in hourly)  # records; unpriced_records
    _assert_rollups_match_raw(pg)


def test_a_batch_sharing_one_id_with_the_ledger_takes_the_careful_path_whole(pg: Ledger) -> None:
    """The cheap path claims keys with a plain insert and fails at the first one taken; nothing of
    that attempt may remain (rows, keys, rollups), and the careful path stores the rest."""
    with write_transaction(pg.engine) as conn:
        assert _write(conn, _rows([777])).stored == 1
    with write_transaction(pg.engine) as conn:
        outcome = _write(conn, _rows(range(1000)))
    assert (outcome.stored, outcome.duplicates) == (999, 1)
    assert "req-777" not in outcome.inserted and len(outcome.inserted) == 999
    assert _stored(pg) == (1000, 1000, sum(1000 + i for i in range(1000)))
    with pg.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM usage_record_keys")) == 1000
    _assert_rollups_match_raw(pg)
