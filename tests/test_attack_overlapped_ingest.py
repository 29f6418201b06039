"""Attacks on a file ingest that writes two batches at once on PostgreSQL (usecases/ingest.py,
PG_WRITES_IN_FLIGHT): two transactions whose locks may cross, a batch that fails in the
database while the next is in flight."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from finops.errors import IngestError
from finops.storage.ledger import rebuild_rollups
from finops.storage.tables import dead_letters, rollups_hourly, usage_records
from finops.usecases.ingest import ingest_paths
from tests.conftest import make_ledger, usage, write_jsonl

pytestmark = pytest.mark.postgres

BATCH = 10
#: A validated record that costs 3.3e18 nano-dollars (gpt-5.4-pro, long context): a third
#: such record in one hour's bucket overflows bigint, so the database refuses it alone.
_BIG = {
    "provider": "openai",
    "model": "gpt-5.4-pro",
    "requests": 10**6,
    "input_tokens": 10**13,
    "output_tokens": 10**13,
    "cached_input_tokens": 0,
    "reasoning_tokens": 0,
}
_SAME = {"flow": "f", "tags": {"team": "t"}, "provider": "openai", "model": "gpt-4o-mini"}


def _at(i: int, hour: int, **overrides: Any) -> dict[str, Any]:
    return usage(i, **{**_SAME, "ts": f"2026-11-02T{hour:02d}:{i % 60:02d}:00Z", **overrides})


def _crossing(pairs: int) -> list[dict[str, Any]]:
    """Pairs of batches. The first of a pair holds a record its bucket cannot take, last, so its
    write is halved into several statements, the first locking late hours' rollup rows and a
    later one early hours'; the second batch locks the same rows in key order, early first."""
    out: list[dict[str, Any]] = []
    n = 0
    for _ in range(pairs):
        for hour in (13, 14, 15, 16, 17, 1, 2, 3, 4):
            out.append(_at(n, hour))
            n += 1
        out.append(_at(n, 0, **_BIG))  # its bucket first in key order: the whole batch fails early
        n += 1
        for hour in (1, 2, 3, 4, 5, 13, 14, 15, 16, 17):
            out.append(_at(n, hour))
            n += 1
    return out


def test_a_batch_written_in_several_statements_never_deadlocks_the_ingest(
    postgres_url: str, tmp_path: Path
) -> None:
    pairs = 40
    path = write_jsonl(tmp_path / "usage.jsonl", _crossing(pairs))
    ledger = make_ledger(postgres_url)
    try:
        summary = ingest_paths(ledger, [path], batch_size=BATCH, workers=1)
        # in order: the first two big records fit their bucket, every later one is refused alone
        assert (summary.read, summary.stored, summary.rejected) == (
            20 * pairs,
            20 * pairs - pairs + 2,
            pairs - 2,
        )
        with ledger.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(usage_records)) == summary.stored
            assert conn.scalar(select(func.count()).select_from(dead_letters)) == pairs - 2
    finally:
        ledger.close()


_BOOM = """
CREATE FUNCTION finops_test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.record_id = 'req-55' THEN
    PERFORM pg_sleep(0.5);  -- the next batch is in flight meanwhile
    RAISE EXCEPTION 'boom' USING ERRCODE = 'XX000';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER finops_test_boom BEFORE INSERT ON usage_record_keys
  FOR EACH ROW EXECUTE FUNCTION finops_test_boom();
"""


def test_a_batch_failing_in_the_database_with_the_next_in_flight(postgres_url: str, tmp_path: Path) -> None:
    """Batch 5 fails (not a refused value: the whole batch) while batch 6 is in flight: the
    ingest raises that error, promptly, with every connection back in the pool; what was stored
    is whole batches, each once; running the command again stores exactly the rest."""
    records = [usage(i) for i in range(500)]
    path = write_jsonl(tmp_path / "usage.jsonl", records)
    ledger = make_ledger(postgres_url)
    try:
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(_BOOM)
        with pytest.raises(Exception, match="boom"):
            ingest_paths(ledger, [path], batch_size=BATCH, workers=1)
        assert ledger.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        with ledger.engine.connect() as conn:
            ids = {int(r.removeprefix("req-")) for r in conn.scalars(select(usage_records.c.record_id))}
        assert 55 not in ids and set(range(50)) <= ids
        assert all(
            {b * BATCH + k for k in range(BATCH)} <= ids for b in {i // BATCH for i in ids}
        )  # whole batches
        assert len(ids) <= 70  # at most the batch in flight beside the failed one, and the one after it
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER finops_test_boom ON usage_record_keys")
        again = ingest_paths(ledger, [path], batch_size=BATCH, workers=1)
        assert (again.read, again.stored + again.duplicates, again.duplicates) == (500, 500, len(ids))
        with ledger.engine.connect() as conn, conn.begin() as transaction:
            assert conn.scalar(select(func.count()).select_from(usage_records)) == 500
            sums = select(*(c for c in rollups_hourly.c if c.name != "id"))
            before = sorted(conn.execute(sums).all())
            rebuild_rollups(conn)
            assert sorted(conn.execute(sums).all()) == before
            transaction.rollback()
    finally:
        ledger.close()


_SLOW = """
CREATE FUNCTION finops_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(0.05);  -- each batch's write takes a while: two are in flight most of the time
  RETURN NULL;
END $$;
CREATE TRIGGER finops_test_slow AFTER INSERT ON usage_record_keys
  FOR EACH STATEMENT EXECUTE FUNCTION finops_test_slow();
"""


def test_a_parser_killed_with_two_writes_in_flight(postgres_url: str, tmp_path: Path) -> None:
    """The parser process dies while two writes are in flight: the ingest says a parser died and
    that every batch before it is stored, which must be true (the stored batches are the first
    ones, whole, with no gap), and running it again stores exactly the rest."""
    records = [usage(i) for i in range(3000)]
    path = write_jsonl(tmp_path / "usage.jsonl", records)
    ledger = make_ledger(postgres_url)
    stop = threading.Event()

    def kill_the_parser() -> None:
        while not stop.is_set():
            with ledger.engine.connect() as conn:
                if (conn.scalar(select(func.count()).select_from(usage_records)) or 0) >= 200:
                    break
            time.sleep(0.01)
        for child in multiprocessing.active_children():
            os.kill(child.pid or 0, signal.SIGKILL)  # the parser this test's ingest started

    try:
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(_SLOW)
        killer = threading.Thread(target=kill_the_parser)
        killer.start()
        try:
            with pytest.raises(IngestError, match="every batch before it is stored"):
                ingest_paths(ledger, [path], batch_size=BATCH, workers=1)
        finally:
            stop.set()
            killer.join()
        assert ledger.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        with ledger.engine.connect() as conn:
            ids = sorted(int(r.removeprefix("req-")) for r in conn.scalars(select(usage_records.c.record_id)))
        assert ids == list(range(len(ids))) and len(ids) % BATCH == 0 and 200 <= len(ids) < 3000
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER finops_test_slow ON usage_record_keys")
        again = ingest_paths(ledger, [path], batch_size=BATCH, workers=1)
        assert (again.read, again.stored, again.duplicates) == (3000, 3000 - len(ids), len(ids))
    finally:
        ledger.close()
