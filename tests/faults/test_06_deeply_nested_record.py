"""Item 6: a record nested 1,000 levels deep is refused alone, with a reason, through the use
case, `finops ingest` and HTTP; never a 500, a traceback or a lost batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from finops.storage.db import create_engine_for
from finops.storage.tables import dead_letters, usage_records
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, usage, write_jsonl
from tests.daemon_proc import DaemonProcess

DEPTH = 1_000


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def deep_line(i: int, field: str, depth: int = DEPTH) -> str:
    """Written by hand: json.dumps itself gives up past Python's recursion limit."""
    return json.dumps(usage(i))[:-1] + f', "{field}": ' + "[" * depth + '"x"' + "]" * depth + "}"


def _stored(url: str) -> tuple[int, int]:
    engine = create_engine_for(url)
    with engine.connect() as conn:
        counts = tuple(
            int(conn.scalar(select(func.count()).select_from(t)) or 0) for t in (usage_records, dead_letters)
        )
    engine.dispose()
    return counts[0], counts[1]


def test_deep_fields_are_refused_alone_in_a_batch(ledger: Ledger) -> None:
    batch: list[Any] = [usage(i) for i in range(20)]
    native = {"id": "n", "ts": "2026-11-03T10:00:00Z", "model": "gpt-4o", "usage": nested(DEPTH)}
    batch += [usage(100, tags=nested(DEPTH)), usage(101, user=nested(DEPTH)), native]
    batch.append({"id": "deep-id", "ts": "2026-11-03T10:00:00Z", "model": nested(DEPTH)})
    summary = ingest_objects(ledger, batch, source="gw")
    assert (summary.stored, summary.rejected) == (20, 4)
    assert _stored(ledger.settings.database_url) == (20, 4)


def test_finops_ingest_of_deep_lines_stores_the_rest(db_url: str, tmp_path: Path) -> None:
    make_ledger(db_url).close()
    lines: list[dict[str, Any] | str] = [usage(i) for i in range(50)]
    lines += [deep_line(100, "tags"), deep_line(101, "user"), "[" * 20_000, "{" * 5_000]
    path = write_jsonl(tmp_path / "deep.jsonl", lines)
    done = subprocess.run(
        [sys.executable, "-m", "finops", "ingest", "--db", db_url, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert _stored(db_url) == (50, 4)


def test_http_answers_each_deep_record_with_a_reason(tmp_path: Path, sqlite_url: str) -> None:
    daemon = DaemonProcess(tmp_path, sqlite_url).start()
    try:
        with daemon.client() as client:
            body = "\n".join([json.dumps(usage(1)), deep_line(2, "tags"), "[" * 20_000, json.dumps(usage(3))])
            answer = client.post("/v1/usage", content=body, headers={"Content-Type": "application/x-ndjson"})
            assert answer.status_code == 200, answer.text
            assert (answer.json()["stored"], answer.json()["rejected"]) == (2, 2)
            array = "[" + json.dumps(usage(4)) + "," + deep_line(5, "tags", 900) + "]"
            answer = client.post("/v1/usage", content=array, headers={"Content-Type": "application/json"})
            assert answer.status_code == 200, answer.text
            assert (answer.json()["stored"], answer.json()["rejected"]) == (1, 1)
            outcome = {"id": "o1", "ts": "2026-11-03T10:00:00Z", "flow": "f", "status": nested(900)}
            answer = client.post("/v1/outcomes", json=[outcome])
            assert answer.status_code == 422 and answer.json()["rejected"] == 1
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.log.read_text()
