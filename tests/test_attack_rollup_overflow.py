"""Attack: rollup sums past 64 bits, on both databases. A record's cost fits in 64 bits (a
validated record can cost ~6e18 nano-dollars: a million requests of ten million tokens at $600
per million), but an hour's bucket of two of them does not. Money must stay exact: the bucket
never becomes a float, and the record that would overflow it is isolated as PostgreSQL isolates
it (refused alone, its batch-mates stored), the same on SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text

from finops.domain.usage import parse_usage
from finops.storage.db import write_transaction
from finops.storage.ledger import PricedRecord, usage_row, write_rows_isolating
from finops.storage.tables import rollups_daily, rollups_hourly, usage_records
from finops.usecases.ledger import Ledger
from tests.conftest import usage

_BIG = 2**62 + 1
_SAME = {"ts": "2026-11-02T01:01:00Z", "provider": "openai", "model": "gpt-4o-mini", "flow": "f", "tags": {}}


def _row(i: int, cost: int, **overrides: Any) -> tuple[Any, ...]:
    return usage_row(PricedRecord(parse_usage(usage(i, **overrides)), cost, None, "t", i), "gw", 1)


def _write(ledger: Ledger, rows: list[tuple[Any, ...]]) -> tuple[int, list[str]]:
    with write_transaction(ledger.engine) as conn:
        outcome, refused = write_rows_isolating(
            conn, source="gw", rows=rows, where=[("t", i) for i in range(len(rows))], now_us=1
        )
    return outcome.stored, [str(r.record_id) for r in refused]


def _exact(ledger: Ledger) -> None:
    """Every rollup cost is an integer and equals the stored records' costs, to the nano-dollar."""
    with ledger.engine.connect() as conn:
        raw = [int(c) for c in conn.scalars(select(usage_records.c.cost_nanos))]
        for table in (rollups_hourly, rollups_daily):
            costs = list(conn.scalars(select(table.c.cost_nanos)))
            assert all(type(c) is int for c in costs), costs  # never a float
            assert sum(costs) == sum(raw)
        if ledger.engine.dialect.name == "sqlite":
            kinds = conn.scalars(text("SELECT DISTINCT typeof(cost_nanos) FROM rollups_hourly")).all()
            assert kinds == ["integer"]


def test_a_bucket_past_64_bits_across_batches_stays_exact(ledger: Ledger) -> None:
    assert _write(ledger, [_row(1, _BIG, **_SAME)]) == (1, [])
    stored, refused = _write(ledger, [_row(2, _BIG, **_SAME), _row(3, 7)])
    assert (stored, refused) == (1, ["req-2"])
    _exact(ledger)
    with ledger.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(usage_records)) == 2


def test_a_bucket_past_64_bits_inside_one_batch_stays_exact(ledger: Ledger) -> None:
    stored, refused = _write(ledger, [_row(1, _BIG, **_SAME), _row(2, _BIG, **_SAME), _row(3, 7)])
    assert stored == 2 and len(refused) == 1
    _exact(ledger)
