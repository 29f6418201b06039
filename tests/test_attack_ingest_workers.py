"""Attacks on what the parser process is sent (usecases/ingest.py ``_for_worker``: a file's path
once and its lines as two lists) and on the collection thresholds an ingest raises."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from finops.sources.jsonl import Line
from finops.storage.tables import dead_letters
from finops.usecases.ingest import ingest_lines, ingest_paths
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, usage, write_jsonl


def test_batches_spanning_files_keep_each_lines_file_and_number(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    """Batches of 7 over files of 3, 1, 0 and 5 lines (an empty one between): every bad line's
    dead letter names its own file and line, with a parser process as without one."""
    files = [
        write_jsonl(tmp_path / "a.jsonl", [usage(1), "{bad", usage(2)]),
        write_jsonl(tmp_path / "b.jsonl", ["nope"]),
        write_jsonl(tmp_path / "c.jsonl", []),
        write_jsonl(tmp_path / "d.jsonl", [usage(3), usage(4), "[1", usage(5), "x"]),
    ]
    summary = ingest_paths(sqlite_ledger, files, batch_size=7, workers=1)
    assert (summary.read, summary.stored, summary.rejected) == (9, 5, 4)
    with sqlite_ledger.engine.connect() as conn:
        letters = sorted(
            (Path(loc).name, line)
            for loc, line in conn.execute(select(dead_letters.c.location, dead_letters.c.line))
        )
    assert letters == [("a.jsonl", 2), ("b.jsonl", 1), ("d.jsonl", 3), ("d.jsonl", 5)]


def test_the_collection_thresholds_come_back_after_a_failed_ingest(sqlite_ledger: Ledger) -> None:
    before = gc.get_threshold()

    def lines():  # type: ignore[no-untyped-def]
        yield from ()
        raise OSError("the disk went away")

    with pytest.raises(OSError):
        ingest_lines(sqlite_ledger, lines(), workers=1)
    assert gc.get_threshold() == before
    with pytest.raises(OSError):
        ingest_lines(sqlite_ledger, lines(), workers=0)
    assert gc.get_threshold() == before


def test_the_collection_thresholds_come_back_after_two_ingests_in_threads(tmp_path: Path) -> None:
    """A library user ingests in two threads; the first to start ends first. The thresholds
    must come back to what they were before either started, not stay raised."""
    before = gc.get_threshold()
    a_started, b_started, a_done = threading.Event(), threading.Event(), threading.Event()

    def lines(started: threading.Event, wait: threading.Event) -> Iterator[Line]:
        started.set()
        assert wait.wait(10)
        yield Line("x.jsonl", 1, "{bad")

    ledgers = [make_ledger(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db")]
    try:
        a = threading.Thread(target=lambda: ingest_lines(ledgers[0], lines(a_started, b_started)))
        b = threading.Thread(target=lambda: ingest_lines(ledgers[1], lines(b_started, a_done)))
        a.start()
        assert a_started.wait(10)
        b.start()
        a.join(10)
        a_done.set()
        b.join(10)
    finally:
        for led in ledgers:
            led.close()
    assert gc.get_threshold() == before
