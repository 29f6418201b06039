"""Group commit: many requests' writes in one transaction must count exactly as if each request
had come alone, one after the other, on SQLite and PostgreSQL; and the daemon's writer thread
must answer every caller, isolate a bad request from its group-mates, and drain on close.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from finops.daemon.group_commit import GroupCommit
from finops.domain.budgets import Budget
from finops.storage.db import write_transaction
from finops.storage.tables import reservations, rollups_daily, usage_records
from finops.usecases.admission import Ask, Estimate, ReserveRequest, decide, prepare, reserve
from finops.usecases.group_write import write_group
from finops.usecases.ingest import IngestSummary, count_written, prepare_objects, stage, write_staged
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, quick_deadlock_detection, usage
from tests.test_admission import budgets, call_usage

CENT = Decimal("0.01")


def _batches(ledger: Ledger) -> list[list[dict[str, Any]]]:
    """Batches as concurrent senders would post them: fresh records, a copy inside a batch, a
    retry of an earlier batch's record, a conflicting id, a record already stored, a bad one."""
    changed = {**usage(2), "output_tokens": 7}  # id req-2, other content: a conflict
    return [
        [usage(1), usage(2)],
        [usage(3), usage(3), usage(4)],  # a copy inside one batch
        [usage(5)],
        [usage(1)],  # a retry of the first batch's record: shares an id, so written after it
        [changed, usage(6)],
        [usage(100)],  # stored before the group: a duplicate
        [{"id": "bad", "model": "gpt-4o"}, usage(7)],  # rejected before the database, alone
        [usage(8, model="no-such-model")],  # unpriced: stored, flagged
    ]


def _stage_all(ledger: Ledger, batches: list[list[dict[str, Any]]]) -> list[tuple[Any, IngestSummary]]:
    staged = []
    for batch in batches:
        summary = IngestSummary()
        found = stage(ledger, "app", prepare_objects(ledger.book, ledger.user_key, batch, "http"), summary)
        assert found is not None
        staged.append((found, summary))
    return staged


def _ledger_rows(ledger: Ledger) -> tuple[list[Any], list[Any]]:
    u, d = usage_records.c, rollups_daily.c
    with ledger.engine.connect() as conn:
        records = conn.execute(select(u.record_id, u.cost_nanos, u.output_tokens).order_by(u.record_id)).all()
        daily = conn.execute(
            select(d.day, d.flow, d.model, d.records, d.output_tokens, d.cost_nanos).order_by(
                d.day, d.flow, d.model
            )
        ).all()
    return [tuple(r) for r in records], [tuple(r) for r in daily]


def _summary(s: IngestSummary) -> dict[str, Any]:
    doc = asdict(s)
    doc["examples"] = [(e.location, e.line, e.record_id, e.reason) for e in s.examples]
    return doc


@pytest.fixture
def two_ledgers(db_url: str, tmp_path: Path) -> Iterator[tuple[Ledger, Ledger]]:
    if db_url.startswith("sqlite"):
        other = f"sqlite:///{tmp_path / 'other.db'}"
        pair = (make_ledger(db_url), make_ledger(other))
        yield pair
        for led in pair:
            led.close()
        return
    from tests.conftest import fresh_postgres_database

    with fresh_postgres_database() as other:
        pair = (make_ledger(db_url), make_ledger(other))
        yield pair
        for led in pair:
            led.close()


def test_batches_written_together_count_as_if_each_came_alone(two_ledgers: tuple[Ledger, Ledger]) -> None:
    grouped, alone = two_ledgers
    for led in (grouped, alone):  # the same history before the group
        [(first, summary)] = _stage_all(led, [[usage(100)]])
        with write_transaction(led.engine) as conn:
            count_written(summary, write_staged(conn, [first], now_us=1)[0])
    batches = _batches(grouped)

    staged = _stage_all(grouped, batches)
    with write_transaction(grouped.engine) as conn:
        written = write_staged(conn, [s for s, _ in staged], now_us=2)
    assert len(written) == len(batches)
    for (_, summary), result in zip(staged, written, strict=True):
        count_written(summary, result)

    one_by_one = _stage_all(alone, batches)
    for s, summary in one_by_one:
        with write_transaction(alone.engine) as conn:
            count_written(summary, write_staged(conn, [s], now_us=2)[0])

    assert [_summary(s) for _, s in staged] == [_summary(s) for _, s in one_by_one]
    assert _ledger_rows(grouped) == _ledger_rows(alone)
    counts = [(s.stored, s.duplicates, s.rejected, s.conflicts, s.unpriced) for _, s in staged]
    assert counts == [
        (2, 0, 0, 0, 0),
        (2, 1, 0, 0, 0),
        (1, 0, 0, 0, 0),
        (0, 1, 0, 0, 0),
        (1, 0, 1, 1, 0),
        (0, 1, 0, 0, 0),
        (1, 0, 1, 0, 0),
        (1, 0, 0, 0, 1),
    ]


def _ask(flow: str = "admit", *, request_id: str | None = None, nanos: int = 10_000_000) -> Ask:
    return Ask(ReserveRequest(flow, request_id=request_id), "app", Estimate(nanos, "explicit"))


def test_a_group_of_reserves_holds_exactly_up_to_the_cap(ledger: Ledger, tmp_path: Path) -> None:
    found = budgets(tmp_path, "1.00")
    asks = [_ask(request_id="twice" if i in (3, 140) else None) for i in range(150)]
    with write_transaction(ledger.engine) as conn:
        results = decide(conn, found, asks, now=datetime.now(UTC), admit_unpriced=False)
    assert [r.allow for r in results] == [True] * 100 + [False] * 40 + [True] + [False] * 9
    assert results[140].replayed and results[140].reservation_id == results[3].reservation_id
    assert results[99].held == {"admit": 1_000_000_000}  # reaching the cap exactly is allowed
    assert "would be exceeded" in results[-1].reason
    # the next request, alone, sees the group's holds; a retry of "twice" gets the same answer
    later = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app")
    again = reserve(
        ledger, found, ReserveRequest("admit", estimate_usd=CENT, request_id="twice"), source="app"
    )
    assert not later.allow and again.reservation_id == results[3].reservation_id
    with ledger.engine.connect() as conn:
        statuses = [s for (s,) in conn.execute(select(reservations.c.status))]
    assert statuses.count("open") == 100 and statuses.count("denied") == 50  # a replay stores nothing


def test_settling_and_reserving_in_one_group(ledger: Ledger, tmp_path: Path) -> None:
    """Usage that settles holds is written before the group's reserves decide: a hold replaced by
    a smaller actual cost leaves room that a reserve in the same group can take."""
    found = budgets(tmp_path, "0.05")
    holds = [
        reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app") for _ in range(5)
    ]
    cheap = [call_usage(h.reservation_id, output_tokens=500) for h in holds[:2]]  # $0.005 each
    [(write, summary)] = _stage_all(ledger, [cheap])
    written, results = write_group(ledger, found, [write], [_ask(), _ask()], now=datetime.now(UTC))
    count_written(summary, written[0])
    assert summary.stored == 2 and [r.decision for r in results] == ["allow", "deny"]
    assert results[0].held == {"admit": 40_000_000}  # three holds left and the new one; $0.01 spent


# ------------------------------------------------------------------------ the writer thread
def _blocked_writer(writer: GroupCommit) -> tuple[threading.Event, Future[None]]:
    """Keep the writer busy until the event is set, so what is submitted meanwhile forms a group."""
    gate, started = threading.Event(), threading.Event()

    def wait() -> None:
        started.set()
        gate.wait(10)

    busy: Future[None] = Future()
    threading.Thread(target=lambda: busy.set_result(writer.call(wait)), daemon=True).start()
    assert started.wait(10)
    return gate, busy


def test_a_bad_request_fails_alone_and_its_group_mates_are_answered(ledger: Ledger, tmp_path: Path) -> None:
    found = budgets(tmp_path, "1.00")
    writer = GroupCommit(ledger, lambda: found)
    try:
        gate, busy = _blocked_writer(writer)
        good = [
            writer.submit_reserve(
                prepare(
                    ledger, ReserveRequest("admit", estimate_usd=CENT), source="app", now=datetime.now(UTC)
                )
            )
            for _ in range(3)
        ]
        bad = writer.submit_reserve(_ask(nanos=2**80))  # no database column holds it
        [(write, summary)] = _stage_all(ledger, [[call_usage(None)]])
        stored = writer.submit_usage(write)
        gate.set()
        busy.result(10)
        assert [f.result(10).decision for f in good] == ["allow"] * 3
        assert bad.exception(10) is not None
        count_written(summary, stored.result(10))
        assert summary.stored == 1
    finally:
        writer.close()
    with ledger.engine.connect() as conn:
        assert conn.scalar(select(reservations.c.id).where(reservations.c.estimate_nanos > 10**12)) is None


def test_close_answers_what_was_queued_and_refuses_more(ledger: Ledger, tmp_path: Path) -> None:
    found = budgets(tmp_path, "1.00")
    writer = GroupCommit(ledger, lambda: found)
    gate, busy = _blocked_writer(writer)
    queued = [writer.submit_reserve(_ask()) for _ in range(5)]
    cancelled = writer.submit_reserve(_ask())
    assert cancelled.cancel()  # its caller gave up before it started: never written
    closing = threading.Thread(target=writer.close)
    closing.start()
    gate.set()
    closing.join(10)
    assert not closing.is_alive() and busy.result(10) is None
    assert [f.result(0).decision for f in queued] == ["allow"] * 5
    with pytest.raises(RuntimeError, match="stopping"):
        writer.submit_reserve(_ask())
    with ledger.engine.connect() as conn:
        assert len(conn.execute(select(reservations.c.id)).all()) == 5


def test_budgets_are_read_when_the_group_is_written(ledger: Ledger, tmp_path: Path) -> None:
    """The writer asks for the budgets in force at each group, not at start."""
    current: list[Budget] = []
    writer = GroupCommit(ledger, lambda: current)
    try:
        assert writer.reserve(_ask()).reason == "no budget covers this flow"
        current.extend(budgets(tmp_path, "0.01"))
        assert writer.reserve(_ask()).allow and not writer.reserve(_ask()).allow
    finally:
        writer.close()


def test_event_loop_callers_are_answered_together_and_a_cancelled_one_is_skipped(
    ledger: Ledger, tmp_path: Path
) -> None:
    import asyncio

    found = budgets(tmp_path, "0.05")
    writer = GroupCommit(ledger, lambda: found)

    async def main() -> list[str]:
        gate, busy = _blocked_writer(writer)
        tasks = [asyncio.ensure_future(writer.reserve_async(_ask())) for _ in range(7)]
        await asyncio.sleep(0.05)  # all seven are queued behind the busy writer
        tasks[0].cancel()  # its caller went away; the others still get their answers
        await asyncio.wait([tasks[0]])  # the cancellation reaches its job before the writer runs
        gate.set()
        done = await asyncio.gather(*tasks[1:])
        assert busy.result(10) is None and tasks[0].cancelled()
        return [r.decision for r in done]

    try:
        assert asyncio.run(main()) == ["allow"] * 5 + ["deny"]  # the cancelled one held nothing
    finally:
        writer.close()


@pytest.mark.postgres
def test_replicas_whose_groups_deadlock_answer_every_request(postgres_url: str, tmp_path: Path) -> None:
    """Two replicas' groups of overlapping batches in opposite orders: a group writes its runs one
    after the other in one transaction, so two can deadlock, and PostgreSQL aborts one. That
    group is then written one request at a time: every caller gets its answer, none a 503."""
    found = budgets(tmp_path, "1000.00")
    make_ledger(postgres_url).close()
    quick_deadlock_detection(postgres_url)  # each round's deadlock is found in 50 ms, not 1 s
    ledgers = [make_ledger(postgres_url), make_ledger(postgres_url)]
    writers = [GroupCommit(led, lambda: found) for led in ledgers]
    try:
        for round_ in range(6):
            base = round_ * 1000
            batches = [[usage(base + i) for i in range(lo, lo + 90)] for lo in range(0, 480, 60)]
            futures: list[Future[Any]] = []
            gates = []
            for n, writer in enumerate(writers):
                gate, busy = _blocked_writer(writer)
                gates.append((gate, busy))
                order = batches if n == 0 else batches[::-1]
                futures += [writer.submit_usage(w) for w, _ in _stage_all(ledgers[n], order)]
            for gate, _ in gates:
                gate.set()
            for _, busy in gates:
                busy.result(30)
            failed = [f.exception(60) for f in futures if f.exception(60) is not None]
            assert not failed, failed
    finally:
        for writer in writers:
            writer.close()
    u = usage_records.c
    with ledgers[0].engine.connect() as conn:
        ids = conn.scalars(select(u.record_id)).all()
    assert len(ids) == len(set(ids)) == 6 * 510
    for led in ledgers:
        led.close()
