"""A reprice while batches of the same hours, keys and source are ingested (PostgreSQL: SQLite's
single writer already runs them one after the other).

A reprice chunk moves costs in the hourly, daily and per-prompt rollups and its source's
freshness row; a batch adds to the same rows. Taken in different orders, each would hold a row
the other waits for and PostgreSQL would kill one of them as a deadlock. The batch runs after
each of the reprice's statements in turn; every record must be counted once, at its new price.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pytest
from sqlalchemy import delete

from finops.domain.pricing import entry_from_mapping
from finops.storage.prices import save_imported
from finops.storage.tables import price_entries
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.reprice import reprice
from tests.conftest import make_ledger
from tests.racing import Racer, after_statement, rollups_match_records, same_hour_record, write_once

pytestmark = pytest.mark.postgres

_SINCE = datetime(2026, 11, 1, tzinfo=UTC)


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
        ingest_objects(ledger, [same_hour_record(f"r-{i}", i) for i in range(10)], source="app")
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
            batch = [same_hour_record(f"k{k}-{i}", 30 + i) for i in range(5)]
            racer = Racer(ledger.engine, partial(write_once, ledger, batch, source="app"))
            with after_statement(ledger.engine, k, racer) as seen:
                try:
                    reprice(ledger, since=_SINCE)
                except BaseException as exc:
                    raise AssertionError(f"after statement {k}: the reprice failed: {exc!r}") from exc
            assert seen.ran
            assert racer.outcome(f"after statement {k}: the batch") == 5, k
            stored += 5
            raced = rollups_match_records(ledger.engine, f"after statement {k}")
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
        ingest_objects(ledger, [same_hour_record(f"r-{i}", i) for i in range(10)], source="app")
        with after_statement(ledger.engine, None, lambda: None) as counted:
            write_once(ledger, [same_hour_record("c-0", 30)], source="app")
        statements = counted.statements
        assert statements >= 4
        stored = 11
        for k in range(1, statements + 1):
            _prices(ledger, True, cents=k)  # a price version no record has used yet
            batch = [same_hour_record(f"k{k}-{i}", 30 + i) for i in range(5)]
            racer = Racer(ledger.engine, lambda: reprice(ledger, since=_SINCE).changed)
            with after_statement(ledger.engine, k, racer) as seen:
                try:
                    stored_now = write_once(ledger, batch, source="app")
                except BaseException as exc:
                    raise AssertionError(f"after statement {k}: the batch failed: {exc!r}") from exc
            assert seen.ran
            racer.outcome(f"after statement {k}: the reprice")
            assert stored_now == 5, k
            stored += 5
            assert reprice(ledger, since=_SINCE).changed == 0, k  # every record at the new price
            raced = rollups_match_records(ledger.engine, f"after statement {k}")
        assert raced["usage"][0] == stored
    finally:
        ledger.close()
