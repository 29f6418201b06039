"""Attacks on the binary COPY staging of PostgreSQL writes (storage/ledger.py ``_pg_stage``):
values at the exact edges of their columns are stored as they are, and every value the client
cannot encode is refused alone, whichever psycopg implementation encodes it (the C one raises
OverflowError past 64 bits; the pure Python one, used where no binary wheel exists, raises
struct.error)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import func, select

from finops.domain.usage import parse_usage
from finops.storage.db import write_transaction
from finops.storage.ledger import USAGE_COLUMNS, PricedRecord, usage_row, write_rows_isolating
from finops.storage.tables import usage_records
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, usage

pytestmark = pytest.mark.postgres

_COL = {name: i for i, name in enumerate(USAGE_COLUMNS)}


def _rows(n: int) -> list[tuple[Any, ...]]:
    return [usage_row(PricedRecord(parse_usage(usage(i)), 1000 + i, None, "t", i), "gw", 1) for i in range(n)]


def _put(row: tuple[Any, ...], column: str, value: Any) -> tuple[Any, ...]:
    i = _COL[column]
    return (*row[:i], value, *row[i + 1 :])


def _write(ledger: Ledger, rows: list[tuple[Any, ...]]) -> tuple[int, list[int | None]]:
    with write_transaction(ledger.engine) as conn:
        outcome, refused = write_rows_isolating(
            conn, source="gw", rows=rows, where=[("t", i) for i in range(len(rows))], now_us=1
        )
    return outcome.stored, [r.line for r in refused]


#: values exactly at a column's edge: stored as they are, to the last bit
EDGES: dict[str, tuple[str, Any]] = {
    "latency at the largest bigint": ("latency_ms", 2**63 - 1),
    "latency at the smallest bigint": ("latency_ms", -(2**63)),
    "flow at varchar(128) exactly": ("flow", "é" * 128),
    "empty service tier": ("service_tier", ""),
    "astral characters in flow": ("flow", "\U0001f600" * 128),
}


@pytest.mark.parametrize("case", list(EDGES))
def test_values_at_a_columns_edge_are_stored_exactly(postgres_url: str, case: str) -> None:
    column, value = EDGES[case]
    ledger = make_ledger(postgres_url)
    try:
        rows = _rows(8)
        rows[3] = _put(rows[3], column, value)
        assert _write(ledger, rows) == (8, [])
        with ledger.engine.connect() as conn:
            stored = conn.scalar(select(usage_records.c[column]).where(usage_records.c.record_id == "req-3"))
        assert stored == value and type(stored) is type(value)
    finally:
        ledger.close()


#: values the client cannot encode: refused alone, the batch-mates stored
UNENCODABLE: dict[str, tuple[str, Any]] = {
    "a lone surrogate in flow": ("flow", "a\ud800b"),
    "a lone surrogate in tags": ("tags", '{"team":"\udfff"}'),
    "tokens past bigint": ("input_tokens", 2**63),
}


@pytest.mark.parametrize("case", list(UNENCODABLE))
def test_a_value_the_client_cannot_encode_is_refused_alone(postgres_url: str, case: str) -> None:
    column, value = UNENCODABLE[case]
    ledger = make_ledger(postgres_url)
    try:
        rows = _rows(16)
        rows[9] = _put(rows[9], column, value)
        assert _write(ledger, rows) == (15, [9])
        with ledger.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(usage_records)) == 15
    finally:
        ledger.close()


_PURE_PYTHON = """
import sys
import psycopg
assert psycopg.pq.__impl__ == "python", psycopg.pq.__impl__
from tests.conftest import make_ledger
from tests.test_attack_copy_edges import _put, _rows, _write
ledger = make_ledger(sys.argv[1])
try:
    for value in (2**63, -(2**63) - 1, 2**70):
        rows = _rows(16)
        rows[9] = _put(rows[9], "output_tokens", value)
        print(_write(ledger, rows))
finally:
    ledger.close()
"""


def test_past_bigint_is_refused_alone_with_the_pure_python_psycopg(postgres_url: str) -> None:
    env = {**os.environ, "PSYCOPG_IMPL": "python"}
    done = subprocess.run(
        [sys.executable, "-c", _PURE_PYTHON, postgres_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the first write stores the 15 others; the later ones find them stored already
    assert done.stdout.split("\n")[:3] == ["(15, [9])", "(0, [9])", "(0, [9])"]
