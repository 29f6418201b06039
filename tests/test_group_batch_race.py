"""A batch written alone (a file ingest, a poller) while the daemon's group commit writes a
group of batches of several sources into the same rollup rows (PostgreSQL: SQLite's single writer
already runs them one after the other).

A group writes its runs (one per source) one after the other in one transaction, each taking its
source's freshness row, then the rollup rows; a batch alone takes the same rows once. The batch
runs after each of the group's statements in turn: neither may fail, and every record is
counted once.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text

from finops.storage.ledger import rebuild_rollups
from finops.storage.tables import rollups_daily, rollups_hourly, usage_records
from finops.usecases.group_write import write_group
from finops.usecases.ingest import IngestSummary, ingest_objects, prepare_objects, stage
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger
from tests.racing import after_statement

pytestmark = pytest.mark.postgres


def _record(rid: str, minute: int) -> dict[str, Any]:
    return {
        "id": rid,
        "ts": f"2026-11-20T12:{minute:02d}:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "flow": "support",
        "tags": {"team": "a"},
        "prompt_id": "p-1",
        "input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
    }


def _rollups(ledger: Ledger) -> dict[str, Any]:
    with ledger.engine.connect() as conn:
        rows: dict[str, Any] = {
            t.name: sorted(conn.execute(select(*(c for c in t.c if c.name != "id"))).all())
            for t in (rollups_hourly, rollups_daily)
        }
        rows["usage"] = conn.execute(
            select(func.count(), func.coalesce(func.sum(usage_records.c.cost_nanos), 0))
        ).one()
    return rows


def _waiting_or_done(ledger: Ledger, worker: threading.Thread) -> None:
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


def _group(ledger: Ledger, tag: str) -> list[Any]:
    writes = []
    for source in ("app", "batch"):
        batch = [_record(f"{tag}-{source}-{i}", i) for i in range(3)]
        found = stage(
            ledger, source, prepare_objects(ledger.book, ledger.user_key, batch, "http"), IngestSummary()
        )
        assert found is not None
        writes.append(found)
    return writes


def test_a_batch_alone_racing_a_group_of_two_sources_neither_fails_nor_miscounts(postgres_url: str) -> None:
    ledger = make_ledger(postgres_url)
    try:
        ingest_objects(ledger, [_record("seed", 59)], source="app")
        with after_statement(ledger.engine, None, lambda: None) as counted:
            write_group(ledger, [], _group(ledger, "count"), [], now=datetime.now(UTC))
        statements = counted.statements
        stored = 7
        for k in range(1, statements + 1):
            batch = [_record(f"k{k}-{i}", 30 + i) for i in range(5)]
            errors: list[BaseException] = []
            results: list[IngestSummary] = []

            def ingest(
                batch: list[dict[str, Any]] = batch,
                results: list[IngestSummary] = results,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    results.append(ingest_objects(ledger, batch, source="batch"))
                except BaseException as exc:  # reported by the assertion below
                    errors.append(exc)

            worker = threading.Thread(target=ingest)

            def race(worker: threading.Thread = worker) -> None:
                worker.start()
                _waiting_or_done(ledger, worker)

            failed: BaseException | None = None
            writes = _group(ledger, f"g{k}")
            with after_statement(ledger.engine, k, race) as seen:
                try:
                    write_group(ledger, [], writes, [], now=datetime.now(UTC))
                except BaseException as exc:  # reported by the assertion below
                    failed = exc
            worker.join(30)
            assert seen.ran and not worker.is_alive()
            assert errors == [], f"after statement {k}: the batch failed: {errors[0]!r}"
            assert failed is None, f"after statement {k}: the group failed: {failed!r}"
            assert results[0].stored == 5, k
            stored += 11
            raced = _rollups(ledger)
            with ledger.engine.connect() as conn, conn.begin():
                rebuild_rollups(conn)
            assert _rollups(ledger) == raced, f"after statement {k}, the rollups disagree with the records"
        assert raced["usage"][0] == stored
    finally:
        ledger.close()
