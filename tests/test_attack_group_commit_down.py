"""Attack on the group commit's lock-race retry (daemon/group_commit.py): with the database
truly gone, every request must still be answered at once as unavailable (a 503), never retried
in a loop as if it had lost a lock race."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from finops.daemon.database_outage import lost_a_lock_race, unavailable
from finops.daemon.group_commit import GroupCommit
from finops.usecases.admission import ReserveRequest, prepare
from tests.conftest import fresh_postgres_database, make_ledger, usage
from tests.test_admission import CENT, budgets
from tests.test_group_write import _stage_all

pytestmark = pytest.mark.postgres


def test_a_group_is_answered_unavailable_at_once_when_the_database_is_gone(tmp_path: Path) -> None:
    found = budgets(tmp_path)
    with fresh_postgres_database(direct=True) as url:
        name = make_url(url).database
        admin = create_engine(os.environ["FINOPS_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
        ledger = make_ledger(url)
        writer = GroupCommit(ledger, lambda: found)
        try:
            staged = _stage_all(ledger, [[usage(i)] for i in range(6)])
            ask = prepare(
                ledger, ReserveRequest("admit", estimate_usd=CENT), source="app", now=datetime.now(UTC)
            )
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                conn.exec_driver_sql(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                )
            start = time.monotonic()
            futures: list[Future[Any]] = [writer.submit_usage(w) for w, _ in staged]
            futures.append(writer.submit_reserve(ask))
            errors = [f.exception(30) for f in futures]
            assert time.monotonic() - start < 10
            assert all(e is not None and unavailable(e) and not lost_a_lock_race(e) for e in errors), errors
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            writer.close()
            ledger.close()
            admin.dispose()
