"""Attacks on a file ingest that writes two batches at once on PostgreSQL (usecases/ingest.py,
PG_WRITES_IN_FLIGHT): two transactions whose locks may cross, a batch that fails in the
database while the next is in flight."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from finops.config.budget_files import load_budget_dir
from finops.errors import IngestError
from finops.sources.jsonl import Line
from finops.storage.ledger import rebuild_rollups
from finops.storage.tables import dead_letters, reservations, rollups_hourly, usage_records
from finops.usecases.admission import ReserveRequest, reserve
from finops.usecases.ingest import ingest_lines, ingest_paths
from tests.conftest import fresh_postgres_database, make_ledger, usage, write_jsonl
from tests.test_admission import CENT, budget_folder

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


def _settled(url: str, path: Path, holds: int, tmp: Path, workers: int) -> tuple[Any, ...]:
    """Reserve ``holds`` holds, ingest ``path`` (its records name them), and say who settled what."""
    found = [located.budget for located in load_budget_dir(budget_folder(tmp, "1000000.00")).budgets]
    ledger = make_ledger(url)
    try:
        ids = [
            reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app").reservation_id
            for _ in range(holds)
        ]
        text = path.read_text()
        for n, rid in enumerate(ids):
            text = text.replace(f"@HOLD{n}@", str(rid))
        (tmp / "named.jsonl").write_text(text)
        summary = ingest_paths(ledger, [tmp / "named.jsonl"], source="app", batch_size=BATCH, workers=workers)
        r = reservations.c
        with ledger.engine.connect() as conn:
            settled = sorted(
                (ids.index(rid), record, cost)
                for rid, record, cost in conn.execute(
                    select(r.id, r.record_id, r.cost_nanos).where(r.status == "settled")
                )
            )
        return (summary.stored, summary.cost_nanos), settled
    finally:
        ledger.close()


def test_reservations_named_by_records_in_adjacent_batches_settle_as_in_order(
    postgres_url: str, tmp_path: Path
) -> None:
    """Each hold is named by a record at the end of one batch and by another at the start of the
    next (and some twice in one batch): the first in the file settles it, whatever is in flight."""
    holds = 60
    records = []
    for n in range(holds):
        for k in range(BATCH):
            record = {**usage(n * BATCH + k), "flow": "admit"}
            if k == BATCH - 1:
                record["reservation_id"] = f"@HOLD{n}@"
            if k == 0 and n > 0:
                record["reservation_id"] = f"@HOLD{n - 1}@"
            if k == 4 and n % 3 == 0:
                record["reservation_id"] = f"@HOLD{n}@"  # an earlier one in the same batch
            records.append(record)
    path = write_jsonl(tmp_path / "usage.jsonl", records)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    overlapped = _settled(postgres_url, path, holds, tmp_path / "a", workers=1)
    with fresh_postgres_database() as other:
        in_order = _settled(other, path, holds, tmp_path / "b", workers=0)
    assert overlapped == in_order
    assert len(overlapped[1]) == holds


_FAIL_AFTER_SLOW = """
CREATE FUNCTION finops_test_late() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.record_id = 'req-50' THEN
    PERFORM pg_sleep(1);  -- batch 5 is slow, and goes through
  ELSIF NEW.record_id = 'req-60' THEN
    RAISE EXCEPTION 'boom' USING ERRCODE = 'XX000';  -- batch 6 fails at once
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER finops_test_late BEFORE INSERT ON usage_record_keys
  FOR EACH ROW EXECUTE FUNCTION finops_test_late();
"""


def test_nothing_is_handed_out_after_a_failed_write(postgres_url: str, tmp_path: Path) -> None:
    """Batch 6 fails while batch 5, before it, is still being written: no batch after 6 may be
    handed to a writer once 6 has failed (ingest_lines: "nothing is handed out after it")."""
    path = write_jsonl(tmp_path / "usage.jsonl", [usage(i) for i in range(300)])
    ledger = make_ledger(postgres_url)
    try:
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(_FAIL_AFTER_SLOW)
        with pytest.raises(Exception, match="boom"):
            ingest_paths(ledger, [path], batch_size=BATCH, workers=1)
        with ledger.engine.connect() as conn:
            ids = {int(r.removeprefix("req-")) for r in conn.scalars(select(usage_records.c.record_id))}
        assert ids == set(range(60))  # batches 0 to 5: none after the failed one
    finally:
        ledger.close()


_FAIL_15 = """
CREATE FUNCTION finops_test_15() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.record_id = 'req-150' THEN
    PERFORM pg_sleep(1.5);
    RAISE EXCEPTION 'boom' USING ERRCODE = 'XX000';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER finops_test_15 BEFORE INSERT ON usage_record_keys
  FOR EACH ROW EXECUTE FUNCTION finops_test_15();
"""


def test_a_parser_dying_while_a_write_fails_never_says_every_batch_before_it_is_stored(
    postgres_url: str,
) -> None:
    """The parser dies while batch 15's write is in flight, and that write fails: the ingest
    must not say that every batch before the parser died is stored (batch 15 is not); it must
    say what failed."""
    blocked, go = threading.Event(), threading.Event()

    def lines() -> Iterator[Line]:
        for i in range(180):  # batches 0..17: 14 and 15 are in flight when the reading stops
            yield Line("usage.jsonl", i + 1, orjson.dumps(usage(i)).decode())
        blocked.set()
        assert go.wait(30)
        for i in range(180, 300):
            yield Line("usage.jsonl", i + 1, orjson.dumps(usage(i)).decode())

    def kill_the_parser() -> None:
        assert blocked.wait(30)
        time.sleep(0.3)
        for child in multiprocessing.active_children():
            os.kill(child.pid or 0, signal.SIGKILL)  # the parser this test's ingest started
        time.sleep(0.5)
        go.set()

    ledger = make_ledger(postgres_url)
    try:
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(_FAIL_15)
        killer = threading.Thread(target=kill_the_parser)
        killer.start()
        try:
            with pytest.raises(Exception) as raised:
                ingest_lines(ledger, lines(), batch_size=BATCH, workers=1)
        finally:
            go.set()
            killer.join()
        with ledger.engine.connect() as conn:
            ids = {int(r.removeprefix("req-")) for r in conn.scalars(select(usage_records.c.record_id))}
        assert 150 not in ids
        assert "every batch before it is stored" not in str(raised.value)
        assert "boom" in str(raised.value)
    finally:
        ledger.close()


_SLOW_BATCH_3 = """
CREATE FUNCTION finops_test_slow3() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.record_id = 'req-20' THEN
    PERFORM pg_sleep(0.5);  -- batch 2 commits after batch 3
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER finops_test_slow3 BEFORE INSERT ON usage_record_keys
  FOR EACH ROW EXECUTE FUNCTION finops_test_slow3();
"""


def test_the_summary_names_the_first_line_of_each_reason(postgres_url: str, tmp_path: Path) -> None:
    """Batches 2 and 3 each hold a record the database refuses for the same reason (its bucket
    is full), and batch 2 commits after batch 3: the summary must still name batch 2's line as
    where the reason was first met, and list the rejections in the file's order."""
    records = []
    for i in range(80):
        record = _at(i, 5 + i % 3)
        if i % BATCH == 9:  # the last of each batch: 2 fit the bucket, the later ones are refused
            record = _at(i, 0, **_BIG)
        records.append(record)
    path = write_jsonl(tmp_path / "usage.jsonl", records)
    ledger = make_ledger(postgres_url)
    try:
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(_SLOW_BATCH_3)
        summary = ingest_paths(ledger, [path], batch_size=BATCH, workers=1)
    finally:
        ledger.close()
    assert summary.rejected == 6
    [(reason, first)] = summary.first_at.items()
    assert first.line == 30, reason  # line 30 is record 29, the last of batch 2
    assert [r.line for r in summary.examples] == [30, 40, 50, 60, 70, 80]
