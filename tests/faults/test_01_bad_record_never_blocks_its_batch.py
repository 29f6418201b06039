"""Item 1: one bad record (NUL, over-long, out of range) is refused alone, with its reason, and its
batch-mates are stored, on SQLite and PostgreSQL, through every ingest path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from finops.domain.usage import parse_usage
from finops.storage.db import create_engine_for, write_transaction
from finops.storage.ledger import PricedRecord, usage_row, write_rows_isolating
from finops.storage.tables import dead_letters, usage_records
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, usage, write_jsonl
from tests.daemon_proc import DaemonProcess
from tests.faults._hostile import HOSTILE_USAGE
from tests.test_litellm_logs import payload
from tests.test_otlp import EXPORT


def _count(url: str, table: Any = usage_records) -> int:
    engine = create_engine_for(url)
    with engine.connect() as conn:
        n = int(conn.scalar(select(func.count()).select_from(table)) or 0)
    engine.dispose()
    return n


@pytest.mark.parametrize("case", list(HOSTILE_USAGE))
def test_499_good_records_are_stored_beside_one_bad_one(ledger: Ledger, case: str) -> None:
    fields, reason = HOSTILE_USAGE[case]
    batch = [usage(i) for i in range(499)]
    batch.insert(250, usage(999, **fields))
    summary = ingest_objects(ledger, batch, source="gw")
    assert (summary.stored, summary.rejected) == (499, 1)
    with ledger.engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(usage_records))
        letters = list(conn.execute(select(dead_letters.c.reason, dead_letters.c.record_id)))
    assert stored == 499 and len(letters) == 1 and reason in letters[0].reason
    assert "\x00" not in (letters[0].record_id or "")  # a dead letter can always be stored


def test_a_value_the_database_refuses_is_isolated_and_the_rest_stored(ledger: Ledger) -> None:
    """The last guard, below validation: a row the database cannot hold (a count past 64 bits
    here, built without the validation) is found by halving, refused alone, and the rest stored."""
    records = [parse_usage(usage(i)) for i in range(64)]
    records[37].latency_ms = 2**70
    rows = [usage_row(PricedRecord(r, 1000, None, "test", i), "gw", 1) for i, r in enumerate(records)]
    where = [("test", i) for i in range(64)]
    with write_transaction(ledger.engine) as conn:
        outcome, refused = write_rows_isolating(conn, source="gw", rows=rows, where=where, now_us=1)
    assert outcome.stored == 63 and [r.line for r in refused] == [37]
    assert "the database refused this record" in refused[0].reason
    with ledger.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(usage_records)) == 63
        assert conn.scalar(select(func.sum(usage_records.c.cost_nanos))) == 63_000


def test_finops_ingest_of_a_file_with_bad_lines_stores_every_good_one(db_url: str, tmp_path: Path) -> None:
    make_ledger(db_url).close()
    lines: list[dict[str, Any] | str] = [usage(i) for i in range(200)]
    for n, (fields, _) in enumerate(HOSTILE_USAGE.values()):
        bad = _huge_line(1000 + n, fields) if _huge(fields) else json.dumps(usage(1000 + n, **fields))
        lines.insert(n * 9, bad)
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    done = subprocess.run(
        [sys.executable, "-m", "finops", "ingest", "--db", db_url, "--source", "gw", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert _count(db_url) == 200
    assert _count(db_url, dead_letters) == len(HOSTILE_USAGE)


def _huge(fields: dict[str, Any]) -> bool:
    return any(isinstance(v, int) and v.bit_length() > 4000 for v in fields.values())


def _huge_line(i: int, fields: dict[str, Any]) -> str:
    """json.dumps refuses a 5,000-digit int; a sender's encoder may not."""
    ((name, _),) = fields.items()
    return json.dumps(usage(i))[:-1] + f', "{name}": 1' + "0" * 4999 + "}"


def _outcome(oid: str, **more: Any) -> dict[str, Any]:
    return {"id": oid, "ts": "2026-11-03T10:00:00Z", "flow": "f", "status": "success", **more}


def test_every_http_ingest_path_stores_the_good_records_beside_a_bad_one(tmp_path: Path, db_url: str) -> None:
    daemon = DaemonProcess(tmp_path, db_url).start()
    try:
        with daemon.client() as client:
            batch = [usage(i) for i in range(499)] + [usage(999, flow="bad\x00flow")]
            answer = client.post("/v1/usage", json=batch)
            assert answer.status_code == 200, answer.text
            assert (answer.json()["stored"], answer.json()["rejected"]) == (499, 1)

            outcomes = [
                {"id": f"o-{i}", "ts": "2026-11-03T10:00:00Z", "flow": "f", "status": "success"}
                for i in range(5)
            ]
            outcomes += [
                {"id": "o-\x00", "ts": "2026-11-03T10:00:00Z", "flow": "f", "status": "success"},
                {
                    "id": "o-x",
                    "ts": "2026-11-03T10:00:00Z",
                    "flow": "f",
                    "status": "success",
                    "event": "e" * 200,
                },
                {"id": "o" * 300, "ts": "2026-11-03T10:00:00Z", "flow": "f", "status": "success"},
            ]
            answer = client.post("/v1/outcomes", json=outcomes)
            assert answer.status_code == 200, answer.text
            assert (answer.json()["stored"], answer.json()["rejected"]) == (5, 3)

            logs = [payload(id=f"chatcmpl-{i}") for i in range(3)] + [payload(id="x" * 300)]
            answer = client.post("/v1/litellm", json=logs)
            assert answer.status_code == 200, answer.text
            assert (answer.json()["stored"], answer.json()["rejected"]) == (3, 1)

            export = json.loads(json.dumps(EXPORT))
            spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
            spans.append({**spans[0], "spanId": "f" * 300})
            answer = client.post("/v1/traces", json=export)
            assert answer.status_code == 200, answer.text
    finally:
        assert daemon.stop() == 0
    assert _count(db_url) == 499 + 3 + 2
