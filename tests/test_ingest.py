"""Ingest: every good line stored once, every bad line a dead letter with file, line and reason."""

from __future__ import annotations

import gc
import gzip
import json
from pathlib import Path

from sqlalchemy import func, select

from finops.domain.digest import input_digest
from finops.render.spend import spend_document
from finops.storage.tables import (
    dead_letters,
    prompt_rollups_daily,
    rollups_daily,
    rollups_hourly,
    usage_records,
)
from finops.usecases.ingest import INGEST_GC_THRESHOLD, fewer_collections, ingest_paths
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, run_spend
from tests.conftest import usage, write_jsonl


def _spend_json(ledger: Ledger, *group_by: str) -> dict:
    with ledger.engine.connect() as conn:
        return spend_document(run_spend(conn, SpendQuery(group_by=group_by)))


def _count(ledger: Ledger, table) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _raw_vs_rollup(ledger: Ledger) -> tuple[tuple[int, int], tuple[int, int]]:
    with ledger.engine.connect() as conn:
        raw = conn.execute(select(func.count(), func.coalesce(func.sum(usage_records.c.cost_nanos), 0))).one()
        roll = conn.execute(
            select(func.sum(rollups_hourly.c.records), func.sum(rollups_hourly.c.cost_nanos))
        ).one()
    return (int(raw[0]), int(raw[1])), (int(roll[0] or 0), int(roll[1] or 0))


def test_same_file_twice_gives_identical_spend(ledger: Ledger, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "usage.jsonl", (usage(i) for i in range(3000)))
    first = ingest_paths(ledger, [path])
    before = {by: _spend_json(ledger, *by) for by in [("flow",), ("model", "day"), ("tag:team",)]}
    second = ingest_paths(ledger, [path])
    after = {by: _spend_json(ledger, *by) for by in before}
    assert (first.stored, first.duplicates, first.rejected) == (3000, 0, 0)
    assert (second.stored, second.duplicates, second.rejected) == (0, 3000, 0)
    assert before == after
    assert _count(ledger, usage_records) == 3000
    raw, roll = _raw_vs_rollup(ledger)
    assert raw == roll


def test_overlapping_files_store_each_record_once(ledger: Ledger, tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", (usage(i) for i in range(0, 600)))
    b = write_jsonl(tmp_path / "b.jsonl", (usage(i) for i in range(400, 1000)))
    summary = ingest_paths(ledger, [a, b])
    assert (summary.stored, summary.duplicates) == (1000, 200)
    assert _count(ledger, usage_records) == 1000


def test_same_id_with_other_content_is_a_conflict_and_the_first_is_kept(
    ledger: Ledger, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "a.jsonl", [usage(1)])
    write_jsonl(tmp_path / "b.jsonl", [usage(1, output_tokens=999_999)])
    ingest_paths(ledger, [tmp_path / "a.jsonl"])
    before = _spend_json(ledger)
    summary = ingest_paths(ledger, [tmp_path / "b.jsonl"])
    assert (summary.stored, summary.duplicates, summary.conflicts, summary.rejected) == (0, 0, 1, 1)
    assert _spend_json(ledger) == before
    with ledger.engine.connect() as conn:
        (row,) = conn.execute(select(dead_letters.c.location, dead_letters.c.line, dead_letters.c.reason))
    assert row.location.endswith("b.jsonl") and row.line == 1
    assert row.reason.startswith("conflict: id 'req-1' was already stored with different content")


def test_copies_of_a_conflicting_record_in_one_batch_are_conflicts_too(ledger: Ledger) -> None:
    from finops.usecases.ingest import ingest_objects

    ingest_objects(ledger, [usage(1), usage(2)], source="default")
    changed = {**usage(1), "output_tokens": 7}
    summary = ingest_objects(ledger, [changed, changed, usage(2), usage(2), usage(3)], source="default")
    assert (summary.stored, summary.duplicates, summary.conflicts) == (1, 2, 2)


def test_a_repriced_duplicate_is_not_a_conflict(ledger: Ledger, tmp_path: Path) -> None:
    """Content is what the sender said; the price finops computed is not part of it."""
    record = usage(5, ts="2026-11-05T10:00:00+01:00")
    same_instant = dict(
        record, ts="2026-11-05T09:00:00Z", tags={"env": "prod", "team": record["tags"]["team"]}
    )
    write_jsonl(tmp_path / "a.jsonl", [record])
    write_jsonl(tmp_path / "b.jsonl", [same_instant])
    ingest_paths(ledger, [tmp_path / "a.jsonl"])
    summary = ingest_paths(ledger, [tmp_path / "b.jsonl"])
    assert (summary.duplicates, summary.conflicts) == (1, 0)


def test_one_percent_broken_lines_every_good_line_stored_every_bad_one_explained(
    ledger: Ledger, tmp_path: Path
) -> None:
    bad_kinds = [
        ("{not json", "invalid JSON"),
        (json.dumps({"ts": "2026-11-01T00:00:00Z", "model": "gpt-4o"}), "missing required field id"),
        (json.dumps(usage(0, id="bad-ts", ts="yesterday-ish")), "is not ISO 8601"),
        (json.dumps(usage(0, id="neg", input_tokens=-5)), "input_tokens is negative"),
        (json.dumps(usage(0, id="parts", input_tokens=10, cached_input_tokens=20)), "exceed input_tokens"),
        (json.dumps(usage(0, id="absurd", input_tokens=10**12)), "absurd"),
        (json.dumps(usage(0, id="reason", output_tokens=5, reasoning_tokens=6)), "reasoning_tokens"),
        (json.dumps([1, 2, 3]), "must be a JSON object"),
        (json.dumps(usage(0, id="nomodel", model="")), "missing required field model"),
        (json.dumps(usage(0, id="naive", ts="2026-11-01T10:00:00")), "no UTC offset"),
    ]
    lines: list[str] = []
    expected_bad: dict[int, str] = {}
    good = 0
    for n in range(1, 10_001):
        if n % 100 == 0:
            text, reason = bad_kinds[(n // 100) % len(bad_kinds)]
            lines.append(text)
            expected_bad[n] = reason
        else:
            lines.append(json.dumps(usage(n)))
            good += 1
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    summary = ingest_paths(ledger, [path], batch_size=700)
    assert (summary.read, summary.stored, summary.rejected) == (10_000, good, 100)
    assert _count(ledger, usage_records) == good
    with ledger.engine.connect() as conn:
        rows = {r.line: r for r in conn.execute(select(dead_letters))}
    assert set(rows) == set(expected_bad)
    for line, reason in expected_bad.items():
        assert reason in rows[line].reason, (line, rows[line].reason)
        assert rows[line].location == str(path)
        assert rows[line].raw == input_digest(lines[line - 1], ledger.user_key)  # never the text
    again = ingest_paths(ledger, [path])
    assert again.stored == 0 and _count(ledger, dead_letters) == 100  # a dead letter is kept once


def test_gzip_files_and_directories_are_read_recursively(ledger: Ledger, tmp_path: Path) -> None:
    (tmp_path / "2026" / "11").mkdir(parents=True)
    write_jsonl(tmp_path / "2026" / "a.jsonl", (usage(i) for i in range(50)))
    with gzip.open(tmp_path / "2026" / "11" / "b.jsonl.gz", "wt") as f:
        for i in range(50, 120):
            f.write(json.dumps(usage(i)) + "\n")
    (tmp_path / "2026" / "notes.txt").write_text("not usage")
    summary = ingest_paths(ledger, [tmp_path / "2026"])
    assert (summary.stored, summary.rejected) == (120, 0)


def test_unknown_model_is_stored_unpriced_never_zero(ledger: Ledger, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "u.jsonl", [usage(1), usage(2, id="x", model="acme-llm-9", provider="acme")]
    )
    summary = ingest_paths(ledger, [path])
    assert summary.unpriced == 1 and summary.unpriced_models == {"acme/acme-llm-9": 1}
    with ledger.engine.connect() as conn:
        cost = conn.scalar(select(usage_records.c.cost_nanos).where(usage_records.c.record_id == "x"))
    assert cost is None
    doc = _spend_json(ledger, "model")
    row = next(r for r in doc["rows"] if r["model"] == "acme-llm-9")
    assert row["unpriced_records"] == 1 and doc["unpriced"]["models"] == [
        {"model": "acme/acme-llm-9", "records": 1}
    ]


def test_user_ids_are_pseudonymised_before_storage(ledger: Ledger, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [usage(1, user="alice@example.com", prompt="secret text")])
    ingest_paths(ledger, [path])
    with ledger.engine.connect() as conn:
        stored = conn.execute(select(usage_records)).one()._mapping
    assert "alice" not in json.dumps({k: str(v) for k, v in stored.items()})
    assert "secret text" not in json.dumps({k: str(v) for k, v in stored.items()})
    assert len(stored["user_hash"]) == 32


def test_rebuilt_rollups_equal_the_incremental_ones(ledger: Ledger, tmp_path: Path) -> None:
    from finops.storage.ledger import rebuild_rollups

    records = [usage(i) for i in range(2000)] + [usage(9999, id="unknown", model="acme-1", provider="acme")]
    ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", records)])
    tables = (rollups_hourly, rollups_daily, prompt_rollups_daily)
    with ledger.engine.connect() as conn:
        incremental = [
            sorted(tuple(r) for r in conn.execute(select(*[c for c in t.c if c.name != "id"])))
            for t in tables
        ]
    with ledger.engine.begin() as conn:
        for table in tables:  # rebuilt from nothing but the raw records
            conn.execute(table.delete())
        assert rebuild_rollups(conn) == len(incremental[0])
    with ledger.engine.connect() as conn:
        rebuilt = [
            sorted(tuple(r) for r in conn.execute(select(*[c for c in t.c if c.name != "id"])))
            for t in tables
        ]
    assert rebuilt == incremental
    assert sum(r[7] for r in incremental[1]) == sum(r[7] for r in incremental[0]) == 2001  # records


def test_a_parser_process_stores_exactly_what_in_process_parsing_stores(tmp_path: Path) -> None:
    from tests.conftest import make_ledger

    lines = [json.dumps(usage(i)) for i in range(3000)]
    lines[10] = "{broken"
    lines[20] = json.dumps(usage(20, input_tokens=-1))
    lines.append(json.dumps(usage(5, output_tokens=7)))  # a conflict with line 6
    path = write_jsonl(tmp_path / "u.jsonl", lines)
    results = []
    for workers in (0, 1):
        ledger = make_ledger(f"sqlite:///{tmp_path / f'w{workers}.db'}")
        summary = ingest_paths(ledger, [path], batch_size=400, workers=workers)
        with ledger.engine.connect() as conn:
            letters = sorted(
                (r.line, r.reason) for r in conn.execute(select(dead_letters.c.line, dead_letters.c.reason))
            )
        results.append(
            (
                summary.stored,
                summary.duplicates,
                summary.rejected,
                _spend_json(ledger, "flow", "model"),
                letters,
            )
        )
        ledger.close()
    assert results[0] == results[1]
    assert results[0][:3] == (2998, 0, 3)


def test_a_rejected_record_keeps_no_prompt_text_and_no_raw_user(ledger: Ledger, tmp_path: Path) -> None:
    secret = usage(
        1, user="alice@example.com", prompt="Patient John Doe, SSN 123-45-6789", cached_input_tokens=10**6
    )
    long_broken = '{"id": "x", "prompt": "' + "confidential " * 50
    ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", [secret, long_broken])])
    with ledger.engine.connect() as conn:
        raws = [r for (r,) in conn.execute(select(dead_letters.c.raw))]
    assert len(raws) == 2
    kept = " ".join(raws)
    assert "alice" not in kept and "John Doe" not in kept and "confidential" not in kept
    assert all(raw.startswith("hmac-sha256:") for raw in raws)


def test_flow_filters_are_case_sensitive_on_every_database(ledger: Ledger, tmp_path: Path) -> None:
    ingest_paths(
        ledger, [write_jsonl(tmp_path / "u.jsonl", [usage(1, flow="Search"), usage(2, flow="search")])]
    )
    with ledger.engine.connect() as conn:
        assert run_spend(conn, SpendQuery(flows=("search",))).total["records"] == 1


def test_ingest_collects_garbage_less_often_and_restores_the_thresholds_it_found() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections():
            assert gc.get_threshold() == INGEST_GC_THRESHOLD
            raise RuntimeError("a failed ingest")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before


def test_a_parser_process_keeps_each_lines_file_and_number_across_files(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    """Batches sent to the parser process span files (a batch of 7 over files of 10 lines):
    every rejected line is still named by its own file and line number."""
    first = write_jsonl(tmp_path / "a.jsonl", [usage(i) if i % 4 else "{oops" for i in range(10)])
    (tmp_path / "b.jsonl").write_text(
        "\n".join([json.dumps(usage(100 + i)) if i % 3 else "not json" for i in range(10)]) + "\n\n"
    )
    summary = ingest_paths(sqlite_ledger, [first, tmp_path / "b.jsonl"], batch_size=7, workers=1)
    with sqlite_ledger.engine.connect() as conn:
        letters = sorted(conn.execute(select(dead_letters.c.location, dead_letters.c.line)).all())
    a, b = str(first), str(tmp_path / "b.jsonl")
    assert letters == sorted([(a, 1), (a, 5), (a, 9), (b, 1), (b, 4), (b, 7), (b, 10)])
    assert (summary.read, summary.stored, summary.rejected) == (20, 13, 7)
