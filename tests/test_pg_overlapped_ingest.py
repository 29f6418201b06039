"""A file ingest into PostgreSQL writes two batches at once (usecases/ingest.py,
PG_WRITES_IN_FLIGHT). Batches that share a record id are never in flight together, so every
record must end exactly as in a one-at-a-time ingest: the same rows stored (the first of a
conflicting pair kept), the same duplicates, conflicts and dead letters, the same totals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from finops.storage.ledger import rebuild_rollups
from finops.storage.tables import dead_letters, rollups_hourly, usage_records
from finops.usecases.ingest import IngestSummary, ingest_paths
from finops.usecases.ledger import Ledger
from tests.conftest import fresh_postgres_database, make_ledger, usage, write_jsonl

pytestmark = pytest.mark.postgres

BATCH = 40


def _records(n: int) -> list[dict[str, Any]]:
    """Records whose ids come back in the next batch: the same (a duplicate) or changed (a
    conflict: the first one stays), and a few changed copies in the same batch."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append(usage(i))
        if i >= BATCH and i % BATCH == 5:
            out.append(usage(i - BATCH))
        if i >= BATCH and i % BATCH == 7:
            out.append(usage(i - BATCH - 1, input_tokens=6000))
        if i % BATCH == 20:
            out.append(usage(i, input_tokens=7000))
    return out


def _state(ledger: Ledger, summary: IngestSummary) -> dict[str, Any]:
    u = usage_records.c
    with ledger.engine.connect() as conn:
        rows = sorted(conn.execute(select(u.record_id, u.output_tokens, u.cost_nanos)).all())
        letters = sorted(conn.execute(select(dead_letters.c.record_id, dead_letters.c.line)).all())
        hourly = conn.execute(select(rollups_hourly.c.records, rollups_hourly.c.cost_nanos)).all()
    return {
        "counts": (summary.read, summary.stored, summary.duplicates, summary.conflicts, summary.rejected),
        "cost": summary.cost_nanos,
        "rows": [tuple(r) for r in rows],
        "dead letters": [tuple(r) for r in letters],
        "rollup records": sum(r[0] for r in hourly),
        "rollup cost": sum(r[1] for r in hourly),
    }


def _ingest(url: str, path: Path, workers: int) -> tuple[dict[str, Any], int]:
    ledger = make_ledger(url)
    try:
        summary = ingest_paths(ledger, [path], batch_size=BATCH, workers=workers)
        state = _state(ledger, summary)
        with ledger.engine.connect() as conn, conn.begin() as transaction:
            sums = select(*(c for c in rollups_hourly.c if c.name != "id"))
            before = sorted(conn.execute(sums).all())
            rebuild_rollups(conn)
            assert sorted(conn.execute(sums).all()) == before  # the rollups equal the raw rows
            transaction.rollback()
        return state, ledger.engine.pool.checkedin()  # type: ignore[attr-defined]
    finally:
        ledger.close()


def test_two_batches_in_flight_end_exactly_as_one_at_a_time(postgres_url: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "usage.jsonl", _records(1200))
    overlapped, connections = _ingest(postgres_url, path, workers=1)
    with fresh_postgres_database() as other:
        in_order, _ = _ingest(other, path, workers=0)
    lite, _ = _ingest(f"sqlite:///{tmp_path / 'finops.db'}", path, workers=1)
    assert overlapped == in_order == lite
    read, stored, duplicates, conflicts, rejected = overlapped["counts"]
    assert (read, stored, duplicates) == (1288, 1200, 29) and conflicts == rejected == 29 + 30
    assert len(overlapped["dead letters"]) == 59
    assert overlapped["rollup records"] == 1200 and overlapped["rollup cost"] == overlapped["cost"]
    assert connections >= 2  # two writes were in flight at once, on two connections
