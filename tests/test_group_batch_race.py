"""A batch written alone (a file ingest, a poller) while the daemon's group commit writes a
group of batches of several sources into the same rollup rows (PostgreSQL: SQLite's single writer
already runs them one after the other).

A group writes its runs (one per source) one after the other in one transaction, each taking its
source's freshness row, then the rollup rows; a batch alone takes the same rows once. The batch
runs after each of the group's statements in turn: neither may fail, and every record is
counted once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from finops.usecases.group_write import write_group
from finops.usecases.ingest import IngestSummary, ingest_objects, prepare_objects, stage
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger
from tests.racing import Racer, after_statement, rollups_match_records, same_hour_record

pytestmark = pytest.mark.postgres


def _group(ledger: Ledger, tag: str) -> list[Any]:
    writes = []
    for source in ("app", "batch"):
        batch = [same_hour_record(f"{tag}-{source}-{i}", i) for i in range(3)]
        found = stage(
            ledger, source, prepare_objects(ledger.book, ledger.user_key, batch, "http"), IngestSummary()
        )
        assert found is not None
        writes.append(found)
    return writes


def test_a_batch_alone_racing_a_group_of_two_sources_neither_fails_nor_miscounts(postgres_url: str) -> None:
    ledger = make_ledger(postgres_url)
    try:
        ingest_objects(ledger, [same_hour_record("seed", 59)], source="app")
        with after_statement(ledger.engine, None, lambda: None) as counted:
            write_group(ledger, [], _group(ledger, "count"), [], now=datetime.now(UTC))
        statements = counted.statements
        stored = 7
        for k in range(1, statements + 1):
            batch = [same_hour_record(f"k{k}-{i}", 30 + i) for i in range(5)]
            racer = Racer(ledger.engine, partial(ingest_objects, ledger, batch, source="batch"))
            writes = _group(ledger, f"g{k}")
            with after_statement(ledger.engine, k, racer) as seen:
                try:
                    write_group(ledger, [], writes, [], now=datetime.now(UTC))
                except BaseException as exc:
                    raise AssertionError(f"after statement {k}: the group failed: {exc!r}") from exc
            assert seen.ran
            assert racer.outcome(f"after statement {k}: the batch").stored == 5, k
            stored += 11
            raced = rollups_match_records(ledger.engine, f"after statement {k}")
        assert raced["usage"][0] == stored
    finally:
        ledger.close()
