"""Attacks on PostgreSQL's one-statement store (PG_STAGE_NEW_TO_LEDGER / PG_STAGE_TO_LEDGER):
concurrent writers with identical and overlapping batches through the cheap path, poison values
next to duplicate ids, rollup sums past bigint, odd characters in rollup keys (real PostgreSQL,
real threads)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text

from finops.domain.usage import parse_usage
from finops.storage.db import write_transaction
from finops.storage.ledger import (
    BatchOutcome,
    PricedRecord,
    Rejection,
    usage_row,
    write_rows_isolating,
)
from finops.storage.tables import prompt_rollups_daily, rollups_hourly, usage_records
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, usage
from tests.test_pg_copy_ingest import _assert_rollups_match_raw

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Ledger]:
    led = make_ledger(postgres_url)
    yield led
    led.close()


def _rows(
    ids: range | list[int], *, source: str = "gw", cost: int | None = None, **overrides: Any
) -> list[tuple[Any, ...]]:
    return [
        usage_row(
            PricedRecord(
                parse_usage(usage(i, **overrides)), 1000 + i if cost is None else cost, None, "t", i
            ),
            source,
            1,
        )
        for i in ids
    ]


def _isolating(
    conn: Connection, rows: list[tuple[Any, ...]], source: str = "gw"
) -> tuple[BatchOutcome, list[Rejection]]:
    where = [("t", i) for i in range(len(rows))]
    return write_rows_isolating(conn, source=source, rows=rows, where=where, now_us=1)


def _stored(ledger: Ledger, source: str | None = None) -> tuple[int, int, int]:
    u = usage_records.c
    query = select(func.count(), func.count(func.distinct(u.record_id)), func.sum(u.cost_nanos))
    if source is not None:
        query = query.where(u.source == source)
    with ledger.engine.connect() as conn:
        row = conn.execute(query).one()
    return int(row[0]), int(row[1]), int(row[2] or 0)


def _keys(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM usage_record_keys")) or 0)


def _run_writers(url: str, plans: list[list[list[int]]]) -> list[list[tuple[BatchOutcome, list[Rejection]]]]:
    """One thread and one Ledger (engine) a plan; each batch in its own transaction, through
    write_rows_isolating as the daemon writes (so an IntegrityError would come back refused)."""
    ledgers = [make_ledger(url) for _ in plans]
    results: list[list[tuple[BatchOutcome, list[Rejection]]]] = [[] for _ in plans]
    errors: list[BaseException] = []
    start = threading.Barrier(len(plans))

    def run(n: int) -> None:
        try:
            start.wait()
            for batch in plans[n]:
                with write_transaction(ledgers[n].engine) as conn:
                    results[n].append(_isolating(conn, _rows(batch)))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(len(plans))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    for led in ledgers:
        led.close()
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert not errors, errors
    return results


@pytest.mark.parametrize("round_", range(3))
def test_three_writers_identical_and_overlapping_batches_store_each_record_once(
    postgres_url: str, round_: int
) -> None:
    """Writers 0 and 1 send the very same batches in the same order (each key is raced by the
    cheap path on both sides); writer 2 sends overlapping batches in reverse. Nothing refused,
    nothing in conflict, each record stored by exactly one writer, rollups equal the raw rows."""
    n = 2000
    ids = list(range(n))
    same = [ids[i : i + 50] for i in range(0, n, 50)]
    other = [ids[i : i + 130][::-1] for i in range(n - 100, -1, -90)]
    results = _run_writers(postgres_url, [same, same, other])
    refused = [r for writer in results for _, rs in writer for r in rs]
    assert refused == []
    outcomes = [o for writer in results for o, _ in writer]
    assert all(not o.conflicts for o in outcomes)
    stored = sorted(rid for o in outcomes for rid in o.inserted)
    assert stored == sorted(f"req-{i}" for i in ids)
    sent = sum(len(b) for plan in (same, same, other) for b in plan)
    assert sum(o.stored for o in outcomes) + sum(o.duplicates for o in outcomes) == sent
    led = make_ledger(postgres_url)
    try:
        assert _stored(led) == (n, n, sum(1000 + i for i in ids))
        assert _keys(led) == n
        _assert_rollups_match_raw(led)
    finally:
        led.close()


def test_the_same_ids_in_two_sources_are_two_records(pg: Ledger) -> None:
    """A key is (source, record id): the cheap path of source b must not lose to source a's keys."""
    with write_transaction(pg.engine) as conn:
        a, ra = _isolating(conn, _rows(range(100), source="a"), "a")
    with write_transaction(pg.engine) as conn:
        b, rb = _isolating(conn, _rows(range(50, 150), source="b"), "b")
    assert (a.stored, b.stored, b.duplicates, ra, rb) == (100, 100, 0, [], [])
    assert _stored(pg, "b") == (100, 100, sum(1000 + i for i in range(50, 150)))
    assert _keys(pg) == 200
    _assert_rollups_match_raw(pg)


def test_a_poison_row_next_to_copies_conflicts_and_stored_ids(pg: Ledger) -> None:
    """One batch: a value the database refuses (a NUL in the flow), copies of a fresh row, a
    changed copy (a conflict) and ids stored already (the careful path). The poison alone is
    refused; everything else counts as it would without it."""
    with write_transaction(pg.engine) as conn:
        assert _isolating(conn, _rows(range(0, 10)))[0].stored == 10
    rows = _rows(range(5, 70))
    rows[40] = (*rows[40][:6], "bad\x00flow", *rows[40][7:])  # req-45
    rows += [rows[20], rows[20]]  # copies of req-25
    rows += _rows([30], output_tokens=999)  # req-30 again, other content: a conflict
    rows += [rows[40]]  # the poison's own copy
    with write_transaction(pg.engine) as conn:
        outcome, refused = _isolating(conn, rows)
    assert [r.record_id for r in refused] == ["req-45", "req-45"] or [r.record_id for r in refused] == [
        "req-45"
    ]
    assert outcome.stored == 70 - 10 - 1
    assert [c.record_id for c in outcome.conflicts] == ["req-30"]
    assert _stored(pg) == (69, 69, sum(1000 + i for i in range(70) if i != 45))
    _assert_rollups_match_raw(pg)


def test_a_poison_row_that_is_the_first_copy_of_a_sound_one(pg: Ledger) -> None:
    """The refused row comes first and a sound row with its id later: the sound one must not be
    lost as a 'conflict' with a row that was never stored."""
    rows = _rows(range(20))
    sound = rows[7]
    rows[7] = (*rows[7][:6], "bad\x00flow", *rows[7][7:])
    rows.append(sound)
    with write_transaction(pg.engine) as conn:
        outcome, refused = _isolating(conn, rows)
    stored_ids = set(outcome.inserted)
    lost = {c.record_id for c in outcome.conflicts} | {r.record_id for r in refused}
    assert "req-7" in stored_ids or "req-7" in lost
    assert _stored(pg)[0] == len(stored_ids)
    _assert_rollups_match_raw(pg)


@pytest.mark.parametrize("path", ["cheap", "careful"])
def test_rollup_sums_past_bigint_fail_cleanly(pg: Ledger, path: str) -> None:
    """Two records whose costs each fit in 64 bits but whose hourly bucket's sum does not: the
    one-statement store fails on the rollup upsert, inside the cheap path's savepoint. The batch
    is still isolated (its other rows stored) and nothing is half-stored: a record is in the
    ledger, its key and its rollups, or in none of them."""
    big = 2**62 + 1
    same = {
        "ts": "2026-11-02T01:01:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "flow": "f",
        "tags": {},
    }
    rows = _rows([1, 2], cost=big, **same) + _rows(range(10, 20))
    assert rows[0][3] == rows[1][3] and rows[0][6:9] == rows[1][6:9]
    before = 0
    if path == "careful":  # one id stored already: the cheap path fails on it, the careful one on the sum
        with write_transaction(pg.engine) as conn:
            assert _isolating(conn, rows[5:6])[0].stored == 1
        before = 1
    with write_transaction(pg.engine) as conn:  # the statement fails, not the COPY: isolated all the same
        outcome, refused = _isolating(conn, rows)
    count, _, _ = _stored(pg)
    assert count == outcome.stored + before == 11 and len(refused) == 1
    assert outcome.duplicates == before
    assert _keys(pg) == 11
    _assert_rollups_match_raw(pg)


@pytest.mark.parametrize(
    "odd",
    ["\\N", "\\.", "éü😀", "a,b;c|d", "q\"uo'te", "x" + "\\" * 5],
)
def test_odd_characters_in_rollup_keys_round_trip(pg: Ledger, odd: str) -> None:
    rows = _rows(range(6), flow=f"f{odd}", tags={"k": odd, odd: "v"}, prompt_id=f"p{odd}")
    with write_transaction(pg.engine) as conn:
        assert _isolating(conn, rows)[0].stored == 6
    with write_transaction(pg.engine) as conn:
        again, refused = _isolating(conn, rows)
    assert (again.stored, again.duplicates, again.conflicts, refused) == (0, 6, [], [])
    with pg.engine.connect() as conn:
        assert set(conn.scalars(select(rollups_hourly.c.flow))) == {f"f{odd}"}
        assert set(conn.scalars(select(prompt_rollups_daily.c.prompt_id))) == {f"p{odd}"}
    _assert_rollups_match_raw(pg)


def test_a_writer_whose_statement_fails_after_claiming_keys_releases_them_to_a_waiting_one(
    postgres_url: str,
) -> None:
    """Writer a's batch shares ids with writer b's and holds two rows whose hourly sum passes
    bigint: its statement claims keys, then fails on the rollup upsert, and is isolated (halved,
    retried) while b waits on, then wins or loses, the same keys. Every sound record stored once,
    by exactly one writer; the refused one nowhere."""
    same = {"provider": "openai", "model": "gpt-4o-mini", "flow": "f", "tags": {}}
    results: list[tuple[BatchOutcome, list[Rejection]]] = []
    errors: list[BaseException] = []
    ledgers = [make_ledger(postgres_url) for _ in range(2)]
    for round_ in range(5):
        base = round_ * 1000
        plans = [
            _rows([base + 1, base + 2], cost=2**62 + 1, ts=f"2026-11-0{2 + round_}T01:01:00Z", **same)
            + _rows(range(base + 10, base + 400)),
            _rows(range(base + 200, base + 600)),
        ]
        start = threading.Barrier(2)

        def run(n: int, plan: list[tuple[Any, ...]], start: threading.Barrier = start) -> None:
            try:
                start.wait()
                with write_transaction(ledgers[n].engine) as conn:
                    results.append(_isolating(conn, plan))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n, plans[n]), daemon=True) for n in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
    for led in ledgers:
        led.close()
    refused = sorted(str(r.record_id) for _, rs in results for r in rs)
    assert len(refused) == 5  # one of each round's pair of big records
    stored = sorted(rid for o, _ in results for rid in o.inserted)
    assert len(stored) == len(set(stored))
    expected = {f"req-{r * 1000 + i}" for r in range(5) for i in [1, 2, *range(10, 600)]} - set(refused)
    assert set(stored) == expected
    assert all(not o.conflicts for o, _ in results)
    led = make_ledger(postgres_url)
    try:
        assert _stored(led)[0] == len(expected) == _keys(led)
        _assert_rollups_match_raw(led)
    finally:
        led.close()


def test_replicas_group_committing_overlapping_batches_in_other_orders(postgres_url: str) -> None:
    """The daemon's group commit (write_staged: several batches in one transaction; a batch sharing
    ids with the one before starts a new statement) on three replicas at once, each with the same
    overlapping batches in another order. Two statements in one transaction can deadlock against
    another replica's (each holds a key the other's next statement wants): PostgreSQL kills one,
    and it is written again, as here (the daemon does it itself: daemon/group_commit.py). In the
    end: each record stored once, by one replica, nothing refused or in conflict, rollups exact."""
    from finops.daemon.database_outage import unavailable
    from finops.usecases.ingest import IngestSummary, prepare_objects, stage, write_staged

    ledgers = [make_ledger(postgres_url) for _ in range(3)]
    batches = [[usage(i) for i in range(lo, lo + 60)] for lo in range(0, 600, 40)]  # each overlaps the next
    orders = [
        list(range(len(batches))),
        list(reversed(range(len(batches)))),
        [*range(1, len(batches), 2), *range(0, len(batches), 2)],
    ]
    written: list[Any] = []
    errors: list[BaseException] = []
    deadlocks = [0]
    start = threading.Barrier(3)

    def run(n: int) -> None:
        try:
            led = ledgers[n]
            order = orders[n]
            start.wait()
            for g in range(0, len(order), 3):  # groups of three batches
                group = [batches[b] for b in order[g : g + 3]]
                for _attempt in range(20):
                    staged = [
                        stage(led, "app", prepare_objects(led.book, led.user_key, b, "http"), IngestSummary())
                        for b in group
                    ]
                    try:
                        with write_transaction(led.engine) as conn:
                            out = write_staged(conn, [s for s in staged if s is not None], now_us=1)
                    except Exception as exc:
                        if not unavailable(exc):
                            raise
                        deadlocks[0] += 1
                        continue
                    written.extend(out)
                    break
                else:
                    raise AssertionError("a group never got through")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for led in ledgers:
        led.close()
    assert not errors, errors
    assert all(not w.refused and not w.outcome.conflicts for w in written)
    stored = sorted(rid for w in written for rid in w.outcome.inserted)
    all_ids = sorted({r["id"] for b in batches for r in b})
    assert stored == all_ids
    led = make_ledger(postgres_url)
    try:
        assert _stored(led)[0] == len(all_ids) == _keys(led)
        _assert_rollups_match_raw(led)
    finally:
        led.close()
    print(f"deadlocks retried: {deadlocks[0]}")


def test_two_writers_spanning_months_attached_meanwhile_store_everything_once(
    postgres_url: str, tmp_path: Any
) -> None:
    """Two replicas write overlapping batches whose rows span two far months and this one, while
    another session attaches both far months' partitions under their statements (the cheap path
    fails with 23514 on the default partition, or loses a key and the careful path does). Every
    record stored once, in its month's partition; nothing refused, nothing dead-lettered."""
    from datetime import UTC, datetime

    from finops.daemon.budget_watch import BudgetWatch
    from finops.daemon.service import IngestService
    from finops.storage.partitions import create_month_partition, month_start_us
    from tests.test_attack_partitions import _count, _Thread, _wait_for_lock_waiter

    ledgers = [make_ledger(postgres_url) for _ in range(2)]
    services = [IngestService(led, BudgetWatch(led, tmp_path / str(n))) for n, led in enumerate(ledgers)]
    engine = ledgers[0].engine
    this_month = datetime.now(UTC).strftime("%Y-%m-02T00:00:00Z")
    months = ("2031-03-04T05:06:07Z", "2031-04-04T05:06:07Z", this_month)
    with write_transaction(engine) as conn:  # some ids stored already: one writer takes the careful path
        _isolating(
            conn, _rows([i for i in range(0, 300, 37) if i % 3 == 2], source="app", ts=this_month), "app"
        )

    def batch(ids: list[int]) -> list[dict[str, Any]]:
        return [usage(i, ts=months[i % 3]) for i in ids]

    with engine.connect() as creator:
        creator.begin()
        assert create_month_partition(creator, month_start_us(2031, 3))
        assert create_month_partition(creator, month_start_us(2031, 4))
        writers = [
            _Thread(lambda: services[0].usage(batch(list(range(0, 200))), source="app")),
            _Thread(lambda: services[1].usage(batch(list(range(300, 99, -1))), source="app")),
        ]
        for w in writers:
            w.start()
        _wait_for_lock_waiter(engine)
        creator.commit()
    for w in writers:
        w.join(120)
    for led in ledgers[1:]:
        led.close()
    assert all(w.error is None for w in writers), [w.error for w in writers]
    results = [w.result for w in writers]
    assert all(r.rejected == 0 for r in results), [r.rejections for r in results]
    assert _count(engine, "SELECT count(*) FROM dead_letters") == 0
    ids = set(range(301))
    already = {i for i in range(0, 300, 37) if i % 3 == 2}
    assert sum(r.stored for r in results) == len(ids - already)
    assert _count(engine, "SELECT count(*) FROM usage_records") == len(ids)
    assert _count(engine, "SELECT count(*) FROM usage_record_keys") == len(ids)
    assert _count(engine, "SELECT count(*) FROM usage_records_default") == 0
    assert _count(engine, "SELECT count(*) FROM usage_records_p203103") == len(
        [i for i in ids - already if i % 3 == 0]
    )
    _assert_rollups_match_raw(ledgers[0])
    ledgers[0].close()


@pytest.mark.parametrize(
    "odd", ["\\N", "\\.", "a\\tb", "éü😀", "q\"uo'te", "x" + "\\" * 5, " lead", "trail "]
)
def test_odd_record_ids_lost_and_won_are_named_exactly(pg: Ledger, odd: str) -> None:
    """The careful path names the ids it lost from what the database returns: an id that COPY or
    the driver changed by a byte would be counted stored (and settled) by a writer that lost it."""
    ids = [f"{odd}{i}" for i in range(10)]

    def rows(which: list[int]) -> list[tuple[Any, ...]]:
        return [
            usage_row(PricedRecord(parse_usage(usage(i, id=ids[i])), 1000 + i, None, "t", i), "gw", 1)
            for i in which
        ]

    with write_transaction(pg.engine) as conn:
        first, refused = _isolating(conn, rows([1, 3, 5]))
    assert (first.stored, refused) == (3, [])
    with write_transaction(pg.engine) as conn:
        second, refused = _isolating(conn, rows(list(range(10))))
    assert (second.stored, second.duplicates, second.conflicts, refused) == (7, 3, [], [])
    assert sorted(second.inserted) == sorted(ids[i] for i in range(10) if i not in (1, 3, 5))
    with pg.engine.connect() as conn:
        assert sorted(conn.scalars(select(usage_records.c.record_id))) == sorted(ids)
    _assert_rollups_match_raw(pg)
