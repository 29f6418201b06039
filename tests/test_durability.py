"""Nothing lost, nothing twice: concurrent writers, killed processes, a million records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from finops.render.spend import spend_document
from finops.storage.tables import rollups_hourly, usage_records
from finops.usecases.ingest import ingest_paths
from finops.usecases.spend import SpendQuery, run_spend
from tests.conftest import make_ledger, usage, write_jsonl


def _finops(url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FINOPS_DATABASE_URL": url, "FINOPS_USER_HASH_SECRET": "s"}
    return subprocess.Popen(
        [sys.executable, "-m", "finops", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _ledger_state(url: str) -> tuple[int, int, int, int, int]:
    ledger = make_ledger(url)
    with ledger.engine.connect() as conn:
        raw = conn.execute(
            select(
                func.count(),
                func.count(func.distinct(usage_records.c.record_id)),
                func.coalesce(func.sum(usage_records.c.cost_nanos), 0),
            )
        ).one()
        roll = conn.execute(
            select(func.sum(rollups_hourly.c.records), func.sum(rollups_hourly.c.cost_nanos))
        ).one()
    ledger.close()
    return int(raw[0]), int(raw[1]), int(raw[2]), int(roll[0] or 0), int(roll[1] or 0)


def test_two_processes_ingesting_overlapping_files_count_each_record_once(
    db_url: str, tmp_path: Path
) -> None:
    make_ledger(db_url).close()  # migrate first, as `finops db upgrade` would
    a = write_jsonl(tmp_path / "a.jsonl", (usage(i) for i in range(0, 6000)))
    b = write_jsonl(tmp_path / "b.jsonl", (usage(i) for i in range(2000, 8000)))
    procs = [_finops(db_url, "ingest", "--batch-size", "250", "-q", str(p)) for p in (a, b, a)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    count, distinct, raw_cost, roll_count, roll_cost = _ledger_state(db_url)
    assert count == distinct == roll_count == 8000
    assert raw_cost == roll_cost


def test_killed_ingest_loses_nothing_committed_and_a_rerun_completes_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    make_ledger(sqlite_url).close()
    path = write_jsonl(tmp_path / "big.jsonl", (usage(i) for i in range(60_000)))
    proc = _finops(sqlite_url, "ingest", "--batch-size", "500", "-q", str(path))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some batches are committed, then kill -9
        time.sleep(0.2)
        if _ledger_state(sqlite_url)[0] >= 5000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    count, _, raw_cost, roll_count, roll_cost = _ledger_state(sqlite_url)
    assert 0 < count < 60_000 and count % 500 == 0  # whole batches only
    assert (roll_count, roll_cost) == (count, raw_cost)
    rerun = _finops(sqlite_url, "ingest", "-q", str(path))
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    assert f"stored {60_000 - count:,}, duplicates {count:,}" in out.decode()
    count, distinct, raw_cost, roll_count, roll_cost = _ledger_state(sqlite_url)
    assert count == distinct == roll_count == 60_000 and raw_cost == roll_cost


@pytest.mark.slow
def test_totals_by_flow_by_model_and_grand_total_agree_on_a_million_records(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "million.jsonl"
    with path.open("w") as f:
        for i in range(1_000_000):
            f.write(
                f'{{"id":"m{i}","ts":"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",'
                f'"model":"{("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "o3")[i % 5]}",'
                f'"flow":"flow-{i % 17}","input_tokens":{1000 + i % 9000},"cached_input_tokens":{i % 700},'
                f'"output_tokens":{50 + i % 3000},"reasoning_tokens":{i % 40}}}\n'
            )
    ledger = make_ledger(sqlite_url)
    summary = ingest_paths(ledger, [path])
    assert summary.stored == 1_000_000 and summary.unpriced == 0
    with ledger.engine.connect() as conn:
        by_flow = spend_document(run_spend(conn, SpendQuery(group_by=("flow",))))
        by_model = spend_document(run_spend(conn, SpendQuery(group_by=("model",))))
        by_day = run_spend(conn, SpendQuery(group_by=("day", "flow")))
        raw_total = conn.scalar(select(func.sum(usage_records.c.cost_nanos)))
    ledger.close()
    nanos = lambda doc: sum(int(r["cost_usd"].replace(".", "")) for r in doc["rows"])  # noqa: E731
    assert nanos(by_flow) == nanos(by_model) == by_day.total["cost_nanos"] == raw_total == summary.cost_nanos
    assert by_flow["total_usd"] == by_model["total_usd"]
    assert sum(r["requests"] for r in by_flow["rows"]) == 1_000_000
