"""A reprice while batches of the same hours, keys and source are ingested (PostgreSQL: SQLite's
single writer already runs them one after the other).

A reprice chunk moves costs in the hourly, daily and per-prompt rollups and its source's
freshness row; a batch adds to the same rows. Taken in different orders, each would hold a row
the other waits for and PostgreSQL would kill one of them as a deadlock. The batch runs after
each of the reprice's statements in turn; every record must be counted once, at its new price.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text

from finops.domain.pricing import entry_from_mapping
from finops.storage.ledger import rebuild_rollups
from finops.storage.prices import save_imported
from finops.storage.tables import price_entries, rollups_daily, rollups_hourly, usage_records
from finops.usecases.ingest import IngestSummary, ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.reprice import reprice
from tests.conftest import make_ledger
from tests.racing import after_statement

pytestmark = pytest.mark.postgres

_SINCE = datetime(2026, 11, 1, tzinfo=UTC)


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
    """Until the batch has committed, or waits on a lock (no sleep-and-hope)."""
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


def _prices(ledger: Ledger, corrected: bool, *, cents: int = 0) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(delete(price_entries))
        if corrected:
            correction = entry_from_mapping(
                {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "effective_from": "2026-11-01",
                    "source": "correction",
                    "standard": {"input": f"0.{20 + cents}", "output": "0.80"},
                },
                layer="import",
            )
            save_imported(conn, [correction], now_us=0)
    ledger.reload_prices()


def test_a_batch_of_the_same_keys_racing_a_reprice_neither_deadlocks_nor_miscounts(postgres_url: str) -> None:
    ledger = make_ledger(postgres_url)
    try:
        ingest_objects(ledger, [_record(f"r-{i}", i) for i in range(10)], source="app")
        _prices(ledger, True)
        with after_statement(ledger.engine, None, lambda: None) as counted:
            assert reprice(ledger, since=_SINCE).changed == 10
        statements = counted.statements
        assert statements >= 6
        stored = 10
        for k in range(1, statements + 1):
            _prices(ledger, False)
            reprice(ledger, since=_SINCE)  # back to the old prices, then the correction again
            _prices(ledger, True)
            batch = [_record(f"k{k}-{i}", 30 + i) for i in range(5)]
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

            failed: BaseException | None = None
            with after_statement(ledger.engine, k, race) as seen:
                try:
                    reprice(ledger, since=_SINCE)
                except BaseException as exc:  # reported by the assertion below
                    failed = exc
            worker.join(30)
            assert seen.ran and not worker.is_alive()
            assert failed is None, f"after statement {k}: the reprice failed: {failed!r}"
            assert errors == [], f"after statement {k}: the batch failed: {errors[0]!r}"
            assert results[0].stored == 5, k
            stored += 5
            raced = _rollups(ledger)
            with ledger.engine.connect() as conn, conn.begin():
                rebuild_rollups(conn)
            assert _rollups(ledger) == raced, f"after statement {k}, the rollups disagree with the records"
        assert raced["usage"][0] == stored
    finally:
        ledger.close()


def test_a_reprice_started_during_a_batch_of_newly_used_prices_neither_deadlocks_nor_miscounts(
    postgres_url: str,
) -> None:
    """The other way round: the reprice starts after each of the batch's statements, and both
    record a price version used for the first time (a correction): the batch must not hold that
    row while it waits for the lock the reprice holds alone."""
    ledger = make_ledger(postgres_url)
    try:
        ingest_objects(ledger, [_record(f"r-{i}", i) for i in range(10)], source="app")
        with after_statement(ledger.engine, None, lambda: None) as counted:
            ingest_objects(ledger, [_record("c-0", 30)], source="app")
        statements = counted.statements
        assert statements >= 4
        stored = 11
        for k in range(1, statements + 1):
            _prices(ledger, True, cents=k)  # a price version no record has used yet
            batch = [_record(f"k{k}-{i}", 30 + i) for i in range(5)]
            errors: list[BaseException] = []
            repriced: list[int] = []

            def run_reprice(repriced: list[int] = repriced, errors: list[BaseException] = errors) -> None:
                try:
                    repriced.append(reprice(ledger, since=_SINCE).changed)
                except BaseException as exc:  # reported by the assertion below
                    errors.append(exc)

            worker = threading.Thread(target=run_reprice)

            def race(worker: threading.Thread = worker) -> None:
                worker.start()
                _waiting_or_done(ledger, worker)

            failed: BaseException | None = None
            summary: IngestSummary | None = None
            with after_statement(ledger.engine, k, race) as seen:
                try:
                    summary = ingest_objects(ledger, batch, source="app")
                except BaseException as exc:  # reported by the assertion below
                    failed = exc
            worker.join(30)
            assert seen.ran and not worker.is_alive()
            assert failed is None, f"after statement {k}: the batch failed: {failed!r}"
            assert errors == [], f"after statement {k}: the reprice failed: {errors[0]!r}"
            assert summary is not None and summary.stored == 5, k
            stored += 5
            assert reprice(ledger, since=_SINCE).changed == 0, k  # every record at the new price
            raced = _rollups(ledger)
            with ledger.engine.connect() as conn, conn.begin():
                rebuild_rollups(conn)
            assert _rollups(ledger) == raced, f"after statement {k}, the rollups disagree with the records"
        assert raced["usage"][0] == stored
    finally:
        ledger.close()
