"""`finops db rebuild-rollups` while batches are being ingested (PostgreSQL: SQLite's single
writer already runs them one after the other).

Before the rebuild took the retention lock, a batch that committed between its statements either
failed the rebuild on a rollup key the batch had just added, or deadlocked with it; each batch
now waits for the rebuild, or the rebuild for it, and every record is counted exactly once.
"""

from __future__ import annotations

from functools import partial

import pytest

from finops.storage.ledger import rebuild_rollups
from finops.usecases.ingest import ingest_objects
from tests.conftest import make_ledger, usage
from tests.racing import Racer, after_statement, rollups_match_records, write_once

pytestmark = pytest.mark.postgres


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
            racer = Racer(ledger.engine, partial(write_once, ledger, batch, source="app"))
            with ledger.engine.connect() as conn, conn.begin(), after_statement(conn, k, racer) as seen:
                rebuild_rollups(conn)
            assert seen.ran
            assert racer.outcome(f"after statement {k}: the batch") == 25, k
            raced = rollups_match_records(ledger.engine, f"after statement {k}")
        assert raced["usage"][0] == 60 + 25 * statements
    finally:
        ledger.close()
