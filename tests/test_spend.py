"""Spend queries: rollups plus raw edges give exactly what a scan of the raw records gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from finops.domain.periods import day_range, month_range, parse_instant
from finops.usecases.ingest import ingest_paths
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, run_spend
from tests.conftest import usage, write_jsonl

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _scan(records: list[dict], start: datetime | None, end: datetime | None, key) -> dict:
    """The answer by brute force over the records as sent (requests, input tokens)."""
    out: dict = {}
    for r in records:
        ts = datetime.fromisoformat(r["ts"])
        if (start and ts < start) or (end and ts >= end):
            continue
        k = key(r, ts)
        acc = out.setdefault(k, [0, 0])
        acc[0] += 1
        acc[1] += r["input_tokens"]
    return out


def _records(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    base = datetime(2026, 10, 20, tzinfo=UTC)
    out = []
    for i in range(n):
        ts = base + timedelta(seconds=rng.randrange(30 * 86400))
        out.append(usage(i, ts=ts.isoformat().replace("+00:00", "Z")))
    return out


@pytest.fixture
def loaded(ledger: Ledger, tmp_path: Path) -> tuple[Ledger, list[dict]]:
    records = _records(4000)
    ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", records)])
    return ledger, records


def test_rollups_with_raw_edges_equal_a_full_scan_for_any_period(loaded: tuple[Ledger, list[dict]]) -> None:
    ledger, records = loaded
    rng = random.Random(11)
    base = datetime(2026, 10, 20, tzinfo=UTC)
    with ledger.engine.connect() as conn:
        for _ in range(25):
            start = base + timedelta(seconds=rng.randrange(25 * 86400))
            end = start + timedelta(seconds=rng.randrange(1, 6 * 86400))
            result = run_spend(conn, SpendQuery(group_by=("flow",), start=start, end=end))
            got = {r.keys["flow"]: [r.sums["requests"], r.sums["input_tokens"]] for r in result.rows}
            assert got == _scan(records, start, end, lambda r, ts: r["flow"])
        inside_one_hour = run_spend(
            conn, SpendQuery(start=base + timedelta(minutes=61), end=base + timedelta(minutes=119))
        )
        assert inside_one_hour.total["requests"] == sum(
            v[0]
            for v in _scan(
                records, base + timedelta(minutes=61), base + timedelta(minutes=119), lambda r, ts: 1
            ).values()
        )


def test_whole_days_from_daily_rollups_equal_a_full_scan(loaded: tuple[Ledger, list[dict]]) -> None:
    ledger, records = loaded
    cases = [
        (datetime(2026, 10, 20, 13, 17, 5, tzinfo=UTC), datetime(2026, 11, 18, 2, 59, 59, tzinfo=UTC)),
        (datetime(2026, 10, 21, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC)),
        (None, datetime(2026, 11, 2, 7, 30, tzinfo=UTC)),
        (datetime(2026, 11, 2, 7, 30, tzinfo=UTC), None),
        (None, None),
    ]
    with ledger.engine.connect() as conn:
        for start, end in cases:
            for group_by, key in (
                (("model",), lambda r, ts: r["model"]),
                (("day",), lambda r, ts: ts.astimezone(UTC).strftime("%Y-%m-%d")),
            ):
                result = run_spend(conn, SpendQuery(group_by=group_by, start=start, end=end))
                got = {r.keys[group_by[0]]: [r.sums["requests"], r.sums["input_tokens"]] for r in result.rows}
                assert got == _scan(records, start, end, key), (start, end, group_by)


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK, ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC")])
def test_days_are_local_days_including_daylight_saving_changes(
    loaded: tuple[Ledger, list[dict]], zone: ZoneInfo
) -> None:
    ledger, records = loaded
    start, end = datetime(2026, 10, 24, tzinfo=zone), datetime(2026, 11, 4, tzinfo=zone)
    with ledger.engine.connect() as conn:
        result = run_spend(
            conn, SpendQuery(group_by=("day",), start=start.astimezone(UTC), end=end.astimezone(UTC), tz=zone)
        )
    got = {r.keys["day"]: [r.sums["requests"], r.sums["input_tokens"]] for r in result.rows}
    want = _scan(records, start, end, lambda r, ts: ts.astimezone(zone).strftime("%Y-%m-%d"))
    assert got == want
    assert list(got) == sorted(got)  # time order


def test_dst_days_last_23_and_25_hours() -> None:
    spring = day_range(datetime(2026, 3, 29).date(), BERLIN)
    autumn = day_range(datetime(2026, 10, 25).date(), BERLIN)
    ny_autumn = day_range(datetime(2026, 11, 1).date(), NEW_YORK)
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)
    assert ny_autumn[1] - ny_autumn[0] == timedelta(hours=25)
    assert month_range("2026-11", BERLIN) == (
        datetime(2026, 10, 31, 23, tzinfo=UTC),
        datetime(2026, 11, 30, 23, tzinfo=UTC),
    )


def test_periods_people_type() -> None:
    now = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    assert parse_instant("7d", now=now, tz=BERLIN) == now - timedelta(days=7)
    assert parse_instant("today", now=now, tz=BERLIN) == datetime(
        2026, 11, 21, 23, tzinfo=UTC
    )  # already the 22nd there
    assert parse_instant("2026-11-03", now=now, tz=NEW_YORK) == datetime(2026, 11, 3, 5, tzinfo=UTC)
    assert parse_instant("2026-11-03T10:00", now=now, tz=BERLIN) == datetime(2026, 11, 3, 9, tzinfo=UTC)


def test_top_keeps_the_rest_in_others_and_filters_by_glob(loaded: tuple[Ledger, list[dict]]) -> None:
    ledger, _ = loaded
    with ledger.engine.connect() as conn:
        full = run_spend(conn, SpendQuery(group_by=("flow", "model")))
        top = run_spend(conn, SpendQuery(group_by=("flow", "model"), top=3))
        only = run_spend(conn, SpendQuery(group_by=("model",), models=("gpt-4o*",)))
    assert [r.keys for r in top.rows] == [r.keys for r in full.rows[:3]]
    assert top.others is not None and top.others_count == len(full.rows) - 3
    assert sum(r.sums["cost_nanos"] for r in top.rows) + top.others["cost_nanos"] == full.total["cost_nanos"]
    assert {r.keys["model"] for r in only.rows} == {"gpt-4o-2024-08-06", "gpt-4o-mini"}


def test_a_dst_zone_with_utc_offset_at_both_ends_still_groups_by_local_day(
    ledger: Ledger, tmp_path: Path
) -> None:
    london = ZoneInfo("Europe/London")  # GMT in January and December, BST in summer
    records = [usage(1, ts="2026-06-01T23:30:00Z"), usage(2, ts="2026-06-30T23:30:00Z")]
    ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", records)])
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    with ledger.engine.connect() as conn:
        days = run_spend(conn, SpendQuery(group_by=("day",), start=start, end=end, tz=london))
        months = run_spend(conn, SpendQuery(group_by=("month",), start=start, end=end, tz=london))
    assert [r.keys["day"] for r in days.rows] == ["2026-06-02", "2026-07-01"]
    assert [r.keys["month"] for r in months.rows] == ["2026-06", "2026-07"]


def test_spend_csv_never_hands_a_spreadsheet_a_formula(sqlite_ledger: Ledger) -> None:
    """Names come from senders; finance opens the CSV in Excel (as the report's CSV does)."""
    import csv
    import io

    from finops.render.spend import render_csv
    from finops.usecases.ingest import ingest_objects

    flows = ['=HYPERLINK("http://x", "y")', "+1", "-cmd", "@sum", "plain"]
    records = [usage(i, id=f"f{i}", flow=flow) for i, flow in enumerate(flows)]
    assert ingest_objects(sqlite_ledger, records, source="app").stored == len(flows)
    with sqlite_ledger.engine.connect() as conn:
        result = run_spend(conn, SpendQuery(group_by=("flow",)))
    names = sorted(row["flow"] for row in csv.DictReader(io.StringIO(render_csv(result))))
    assert names == sorted(["'" + f for f in flows[:4]] + ["plain"])
