"""finops behind PgBouncer in transaction pooling mode: consecutive transactions of one connection
may run on different server connections, and one server connection serves many clients.

Each test here starts its own small PgBouncer (2 server connections), whatever
FINOPS_TEST_PGBOUNCER says, so that clients really share server connections.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from finops.storage.db import create_engine_for
from finops.storage.tables import rollups_hourly, usage_records
from finops.usecases.ingest import ingest_objects
from finops.usecases.spend import SpendQuery, run_spend
from tests.conftest import fresh_postgres_database, make_ledger, usage
from tests.pgbouncer import PgBouncer, pgbouncer_binary

REPO = Path(__file__).resolve().parents[1]
#: SQL that leaves state on a server connection after its transaction, which a transaction pooler
#: then hands to another client (or loses): session advisory locks, session settings, LISTEN,
#: cursors WITH HOLD, temporary tables without ON COMMIT DROP, prepared statements turned back on.
SESSION_STATE = {
    "session advisory lock (use pg_advisory_xact_lock)": re.compile(
        r"pg_(try_)?advisory_lock(_shared)?\b", re.I
    ),
    "SET for the session (use SET LOCAL)": re.compile(
        r"[\"'\s]SET\s+(SESSION\s+)?(search_path|statement_timeout|lock_timeout|role|time\s+zone|"
        r"application_name|work_mem|idle_in_transaction_session_timeout)\b",
        re.I,
    ),
    "set_config(..., false)": re.compile(r"set_config\([^)]*false\s*\)", re.I),
    "LISTEN/NOTIFY": re.compile(r"[\"']\s*(LISTEN|NOTIFY|UNLISTEN)\s+\w|pg_notify\("),
    "cursor WITH HOLD": re.compile(r"CURSOR\s+WITH\s+HOLD|withhold\s*=\s*True", re.I),
    "PREPARE statement": re.compile(r"[\"']\s*PREPARE\s+\w+\s*(\(|AS)", re.I),
    "prepare_threshold other than None": re.compile(r"prepare_threshold[\"']?\s*[:=]\s*(?!None)\w", re.I),
}
TEMP_TABLE = re.compile(r"CREATE\s+TEMP(ORARY)?\s+TABLE[^;\"']*", re.I)


def test_finops_keeps_no_session_state_between_transactions() -> None:
    """A grep, so that new code (partitions, staging tables, locks) cannot bring session state in."""
    found = []
    for path in sorted([*(REPO / "finops").rglob("*.py"), *(REPO / "alembic").rglob("*.py")]):
        source = path.read_text()
        for what, pattern in SESSION_STATE.items():
            found += [f"{path.relative_to(REPO)}: {what}: {m.group(0)!r}" for m in pattern.finditer(source)]
        for m in TEMP_TABLE.finditer(source):
            tail = source[m.start() : m.start() + 400]
            if not re.search(r"ON\s+COMMIT\s+DROP", tail, re.I):
                found.append(
                    f"{path.relative_to(REPO)}: temporary table without ON COMMIT DROP: {m.group(0)!r}"
                )
    assert found == []


@pytest.fixture
def bouncer() -> Iterator[PgBouncer]:
    if pgbouncer_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but pgbouncer is not installed: .ci/run installs it")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer): pooler tests skipped")
    with PgBouncer(pool_size=2) as running:
        yield running


@pytest.fixture
def pooled_url(bouncer: PgBouncer) -> Iterator[str]:
    with fresh_postgres_database(direct=True) as url:
        yield bouncer.url(url)


@pytest.mark.postgres
def test_the_harness_pools_by_transaction(bouncer: PgBouncer, pooled_url: str) -> None:
    """Six client connections share two server connections: only transaction pooling does that."""
    engine = create_engine(pooled_url, pool_size=6, connect_args={"prepare_threshold": None})
    try:
        conns = [engine.connect() for _ in range(6)]
        pids = set()
        for conn in conns:
            pids.add(conn.scalar(text("SELECT pg_backend_pid()")))
            conn.commit()
        assert len(pids) <= 2
        for conn in conns:
            conn.close()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_finops_engine_repeats_statements_across_pooled_connections(pooled_url: str) -> None:
    """psycopg prepares a statement on its 5th run; under transaction pooling the next transaction
    may land on a server connection that lacks it ("prepared statement _pg3_0 does not exist") or
    where another client already prepared that name ("... already exists")."""
    engine = create_engine_for(pooled_url)
    errors: list[str] = []

    def client(k: int) -> None:
        try:
            for i in range(30):
                with engine.begin() as conn:
                    conn.execute(text("SELECT :a + 1"), {"a": i}).scalar()
                    conn.execute(text("SELECT count(*) FROM pg_class WHERE relname = :n"), {"n": str(k)})
        except Exception as exc:
            errors.append(str(exc).splitlines()[0])

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        engine.dispose()
    assert errors == []


@pytest.mark.postgres
def test_concurrent_ingest_and_spend_through_the_pooler(pooled_url: str) -> None:
    """Four writers (overlapping batches: every record sent twice) and a reader, all repeating the
    same statements many times over two server connections: each record stored once, rollups equal raw."""
    ledger = make_ledger(pooled_url)
    errors: list[str] = []
    batches = [[usage(i) for i in range(start, start + 20)] for start in range(0, 400, 20)]

    def writer(k: int) -> None:
        try:
            for n, batch in enumerate(batches):
                if n % 2 == k % 2:  # writers 0 and 2 send the even batches, 1 and 3 the odd ones
                    ingest_objects(ledger, batch, source="http")
        except Exception as exc:
            errors.append(str(exc).splitlines()[0])

    def reader() -> None:
        try:
            for _ in range(20):
                with ledger.engine.connect() as conn:
                    run_spend(conn, SpendQuery(group_by=("flow",), end=datetime(2027, 1, 1, tzinfo=UTC)))
        except Exception as exc:
            errors.append(str(exc).splitlines()[0])

    try:
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        threads.append(threading.Thread(target=reader))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with ledger.engine.connect() as conn:
            raw = conn.execute(select(func.count(), func.sum(usage_records.c.cost_nanos))).one()
            roll = conn.execute(
                select(func.sum(rollups_hourly.c.records), func.sum(rollups_hourly.c.cost_nanos))
            ).one()
        assert raw[0] == 400
        assert (int(roll[0]), int(roll[1])) == (raw[0], int(raw[1]))
    finally:
        ledger.close()
