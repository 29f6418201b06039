"""`finops db rebuild-rollups` while batches are being ingested (PostgreSQL: SQLite's single
writer already runs them one after the other).

Before the rebuild took the retention lock, a batch that committed between its statements either
failed the rebuild on a rollup key the batch had just added, or deadlocked with it; each batch
now waits for the rebuild, or the rebuild for it, and every record is counted exactly once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text

from finops.storage.ledger import rebuild_rollups
from finops.storage.tables import rollups_daily, rollups_hourly, usage_records
from finops.usecases.ingest import IngestSummary, ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, usage
from tests.racing import after_statement

pytestmark = pytest.mark.postgres


def _rollups(ledger: Ledger) -> dict[str, Any]:
    with ledger.engine.connect() as conn:
        rows: dict[str, Any] = {
            t.name: sorted(conn.execute(select(*(c for c in t.c if c.name != "id"))).all())
            for t in (rollups_hourly, rollups_daily)
        }
        rows["usage"] = conn.execute(
            select(func.count(), func.coalesce(func.sum(usage_records.c.cost_nanos), 0))
        ).one()
        rows["hourly sums"] = conn.execute(
            select(func.sum(rollups_hourly.c.records), func.sum(rollups_hourly.c.cost_nanos))
        ).one()
    return rows


def _waiting_or_done(ledger: Ledger, worker: threading.Thread) -> None:
    """Until the batch has committed, or waits on a lock the rebuild holds (no sleep-and-hope)."""
    deadline = time.monotonic() + 30
    while worker.is_alive() and time.monotonic() < deadline:
        with ledger.engine.connect() as conn:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        time.sleep(0.01)
    assert not worker.is_alive(), "the racing batch neither committed nor waited on a lock"


def test_a_batch_committed_between_the_rebuilds_statements_is_counted_once(postgres_url: str) -> None:
    ledger = make_ledger(postgres_url)
    try:
        ingest_objects(ledger, [usage(i) for i in range(60)], source="app")
        with (
            ledger.engine.connect() as conn,
            conn.begin(),
            after_statement(conn, None, lambda: None) as counted,
        ):
            rebuild_rollups(conn)
        statements = counted.statements
        assert statements >= 8
        next_id = 1000
        for k in range(1, statements + 1):
            # same hours and keys as stored rows (their rollup rows are being replaced), and a new
            # hour (a rollup row the rebuild is about to insert too)
            batch = [usage(next_id + i) for i in range(20)]
            batch += [usage(next_id + 20 + i, ts=f"2026-11-29T23:{i:02d}:00Z") for i in range(5)]
            next_id += 100
            errors: list[BaseException] = []
            results: list[IngestSummary] = []

            def ingest(
                batch: list[dict[str, Any]] = batch,
                results: list[IngestSummary] = results,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    results.append(ingest_objects(ledger, batch, source="app"))
                except BaseException as exc:  # reported by the assertion below
                    errors.append(exc)

            worker = threading.Thread(target=ingest)

            def race(worker: threading.Thread = worker) -> None:
                worker.start()
                _waiting_or_done(ledger, worker)

            with ledger.engine.connect() as conn, conn.begin(), after_statement(conn, k, race) as seen:
                rebuild_rollups(conn)
            worker.join(30)
            assert seen.ran and not worker.is_alive()
            assert errors == [], f"after statement {k}: {errors[0]!r}"
            assert results[0].stored == 25, k
            raced = _rollups(ledger)
            with ledger.engine.connect() as conn, conn.begin():
                rebuild_rollups(conn)
            assert _rollups(ledger) == raced, f"after statement {k}, the rollups disagree with the records"
            records, cost = raced["usage"]
            assert raced["hourly sums"] == (records, cost)
        assert raced["usage"][0] == 60 + 25 * statements
    finally:
        ledger.close()
