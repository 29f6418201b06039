"""`finops demo` and what it relies on: outcomes stored and linked in bulk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from finops.domain.outcomes import parse_outcome
from finops.storage.db import write_transaction
from finops.storage.outcomes import write_outcomes
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger


# --------------------------------------------------------------------------- outcomes in bulk
def _call(rid: str, flow: str, session: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"id": rid, "ts": "2026-11-03T10:00:00Z", "model": "gpt-4o", "flow": flow}
    record.update(input_tokens=100, output_tokens=10)
    if session:
        record["session_id"] = session
    return record


@pytest.fixture
def linked_ledger(ledger: Ledger) -> Iterator[Ledger]:
    calls = [_call(f"a{i}", "alpha") for i in range(3)] + [_call("b0", "beta"), _call("s0", "beta", "sess-1")]
    ingest_objects(ledger, calls, source="app")
    ingest_objects(ledger, [_call("a0", "alpha")], source="other")  # the same request id, another source
    yield ledger


def test_a_batch_of_outcomes_is_stored_and_linked_like_one_at_a_time(linked_ledger: Ledger) -> None:
    """Duplicates, conflicts, links by request id (every source), by session, and none."""
    ts = "2026-11-03T11:00:00Z"
    sent = [
        {"id": "o1", "ts": ts, "status": "success", "request_ids": ["a0", "a1", "b0"]},
        {"id": "o2", "ts": ts, "status": "failure", "session_id": "sess-1"},
        {"id": "o3", "ts": ts, "status": "success", "flow": "gamma", "request_ids": ["nope"]},
        {"id": "o1", "ts": ts, "status": "success", "request_ids": ["a0", "a1", "b0"]},  # duplicate
        {"id": "o2", "ts": ts, "status": "success", "session_id": "sess-1"},  # conflict
    ]
    items = [(parse_outcome(o), "batch", i) for i, o in enumerate(sent)]
    with write_transaction(linked_ledger.engine) as conn:
        first = write_outcomes(conn, source="app", items=items, now_us=1)
        second = write_outcomes(conn, source="app", items=items[:3], now_us=2)
        rows = conn.exec_driver_sql(
            "SELECT outcome_id, linked, linked_flow FROM outcomes ORDER BY outcome_id"
        ).all()
    assert (first.stored, first.duplicates, len(first.conflicts), first.linked) == (3, 1, 1, 5)
    assert "status 'failure' -> 'success'" in first.conflicts[0].reason
    assert (second.stored, second.duplicates, second.linked) == (0, 3, 0)
    assert [tuple(r) for r in rows] == [("o1", 4, "alpha"), ("o2", 1, "beta"), ("o3", 0, None)]
