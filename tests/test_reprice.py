"""Re-pricing after a correction: costs, rollups and the report of what changed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select

from finops.config.budget_files import load_budget_dir
from finops.domain.pricing import entry_from_mapping
from finops.storage.prices import save_imported
from finops.storage.tables import price_entries, price_versions, rollups_hourly, usage_records
from finops.usecases.budgets import CheckResult, check_flow
from finops.usecases.export_focus import focus_export
from finops.usecases.ingest import ingest_paths
from finops.usecases.ledger import Ledger
from finops.usecases.reprice import reprice
from tests.conftest import write_jsonl
from tests.racing import after_statement


def _totals(ledger: Ledger) -> tuple[int, int]:
    with ledger.engine.connect() as conn:
        raw = conn.scalar(select(func.coalesce(func.sum(usage_records.c.cost_nanos), 0)))
        roll = conn.scalar(select(func.coalesce(func.sum(rollups_hourly.c.cost_nanos), 0)))
    return int(raw or 0), int(roll or 0)


def test_a_price_correction_is_applied_by_reprice_and_reported(ledger: Ledger, tmp_path: Path) -> None:
    records = [
        {
            "id": f"r{i}",
            "ts": f"2026-11-{10 + i % 5:02d}T12:00:00Z",
            "model": "gpt-4o-mini",
            "input_tokens": 1_000_000,
            "output_tokens": 1_000_000,
        }
        for i in range(10)
    ]
    ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", records)])
    assert _totals(ledger) == (7_500_000_000, 7_500_000_000)  # 10 × ($0.15 + $0.60)
    correction = entry_from_mapping(
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "effective_from": "2026-11-12",
            "source": "correction",
            "standard": {"input": "0.20", "output": "0.80"},
        },
        layer="import",
    )
    with ledger.engine.begin() as conn:
        save_imported(conn, [correction], now_us=0)
    ledger.reload_prices()

    dry = reprice(ledger, since=datetime(2026, 11, 1, tzinfo=UTC), dry_run=True)
    assert (dry.examined, dry.changed, dry.delta_nanos) == (10, 6, 6 * 250_000_000)
    assert _totals(ledger) == (7_500_000_000, 7_500_000_000)  # dry run changed nothing

    report = reprice(ledger, since=datetime(2026, 11, 1, tzinfo=UTC))
    assert (report.changed, report.old_nanos, report.new_nanos) == (6, 7_500_000_000, 9_000_000_000)
    assert report.by_model["openai/gpt-4o-mini"].records == 6
    assert _totals(ledger) == (9_000_000_000, 9_000_000_000)
    with ledger.engine.connect() as conn:
        versions = {v for (v,) in conn.execute(select(usage_records.c.price_version).distinct())}
        known = {v for (v,) in conn.execute(select(price_versions.c.version))}
    assert len(versions) == 2 and versions <= known  # every cost names the prices that made it
    assert reprice(ledger, since=datetime(2026, 11, 1, tzinfo=UTC)).changed == 0  # idempotent


def test_catalog_effective_dates_price_old_records_with_old_prices(ledger: Ledger, tmp_path: Path) -> None:
    old = entry_from_mapping(
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "effective_from": date(2026, 11, 1).isoformat(),
            "source": "old",
            "standard": {"input": "1", "output": "1"},
        },
        layer="import",
    )
    new = entry_from_mapping(
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "effective_from": "2026-11-15",
            "source": "new",
            "standard": {"input": "2", "output": "2"},
        },
        layer="import",
    )
    with ledger.engine.begin() as conn:
        save_imported(conn, [old, new], now_us=0)
    ledger.reload_prices()
    records = [
        {"id": "a", "ts": "2026-11-14T23:59:59Z", "model": "gpt-4o-mini", "input_tokens": 1_000_000},
        {"id": "b", "ts": "2026-11-15T00:00:00Z", "model": "gpt-4o-mini", "input_tokens": 1_000_000},
    ]
    ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", records)])
    with ledger.engine.connect() as conn:
        costs = dict(conn.execute(select(usage_records.c.record_id, usage_records.c.cost_nanos)).all())
    assert costs == {"a": 1_000_000_000, "b": 2_000_000_000}


def test_a_tagged_budget_check_racing_a_reprice_sees_the_books_before_or_after(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A reprice moves costs in one commit, here one up (a call at 00:10 in Kolkata, read from the
    raw records: the local day starts at 18:30 UTC, mid-hour) and one down (a call at 16:30 there,
    read from the hourly rollups). A check must see the ledger before the reprice or after it,
    never the old cost of one call with the new cost of the other: that total is below both, and
    would allow past the cap that both sides of the reprice block. The reprice runs after the
    check's k-th statement."""
    now = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
    folder = tmp_path / "budgets"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        "budgets:\n  - name: admit-a\n    match: {flow: admit, tags: {team: a}}\n    owner: '@dana'\n"
        "    slack_channel: '#costs'\n    timezone: Asia/Kolkata\n"
        "    daily_cap_usd: 2.60\n    on_breach: block\n"
    )
    found = [located.budget for located in load_budget_dir(folder).budgets]
    calls = [("c-raised", "19T18:40", "gpt-4o"), ("c-lowered", "20T11:00", "gpt-4o-mini")]
    records = [
        {"id": i, "ts": f"2026-11-{t}:00Z", "model": m, "flow": "admit", "tags": {"team": "a"},
         "input_tokens": 1_000_000, "output_tokens": 0}
        for i, t, m in calls
    ]  # fmt: skip
    ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", records)])
    with ledger.engine.connect() as conn:
        before = check_flow(
            conn, found, flow="admit", tags={"team": "a"}, now=now, estimate_usd=Decimal("0.01")
        )
    assert before.decision == "deny" and before.states[0].spend_nanos == 2_650_000_000  # $0.15 + $2.50
    corrections = [
        entry_from_mapping(
            {"provider": "openai", "model": model, "effective_from": "2026-11-19", "source": "correction",
             "standard": {"input": usd, "output": "1"}},
            layer="import",
        )
        for model, usd in (("gpt-4o-mini", "0.05"), ("gpt-4o", "3.50"))
    ]  # fmt: skip

    def correct(prices: bool) -> None:
        """Put the corrections in force (or take them out), and reprice to them when asked."""
        with ledger.engine.begin() as conn:
            conn.execute(delete(price_entries))
            if prices:
                save_imported(conn, corrections, now_us=0)
        ledger.reload_prices()

    correct(True)
    with ledger.engine.connect() as conn, after_statement(conn, None, lambda: None) as counting:
        check_flow(conn, found, flow="admit", tags={"team": "a"}, now=now, estimate_usd=Decimal("0.01"))
    counted = counting.statements

    def check_repriced_after(k: int) -> CheckResult:
        """The check, with the reprice run after its k-th statement."""
        repriced: list[int] = []

        def run_reprice() -> None:
            repriced.append(reprice(ledger, since=datetime(2026, 11, 1, tzinfo=UTC)).new_nanos)

        with ledger.engine.connect() as conn, after_statement(conn, k, run_reprice):
            result = check_flow(
                conn, found, flow="admit", tags={"team": "a"}, now=now, estimate_usd=Decimal("0.01")
            )
        assert repriced == [3_550_000_000]  # $0.05 + $3.50: the reprice ran, inside the check
        return result

    for k in range(1, counted + 1):
        correct(False)  # back to the costs before the correction
        assert reprice(ledger, since=datetime(2026, 11, 1, tzinfo=UTC)).new_nanos == 2_650_000_000
        correct(True)
        during = check_repriced_after(k)
        seen = during.states[0].spend_nanos
        assert seen in (2_650_000_000, 3_550_000_000), f"a reprice after statement {k}: spend {seen}"
        assert during.decision == "deny"


def test_a_focus_export_racing_a_reprice_is_the_month_before_or_after_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The FOCUS export reads the month's price versions, then its calls grouped by version, in
    separate statements. A reprice committing between them gives calls a version the export has
    not read. Whichever statement of the export the reprice lands after, the export must be the
    month before the reprice or after it, whole: never an error, never a mix."""
    records = [
        {"id": f"r{i}", "ts": f"2026-11-{10 + i:02d}T12:00:00Z", "model": "gpt-4o-mini", "flow": "f",
         "input_tokens": 1_000_000, "output_tokens": 1_000_000}
        for i in range(2)
    ]  # fmt: skip
    ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", records)])
    correction = entry_from_mapping(
        {"provider": "openai", "model": "gpt-4o-mini", "effective_from": "2026-11-01", "source": "correction",
         "standard": {"input": "0.20", "output": "0.80"}},
        layer="import",
    )  # fmt: skip

    def correct(prices: bool) -> None:
        with ledger.engine.begin() as conn:
            conn.execute(delete(price_entries))
            if prices:
                save_imported(conn, [correction], now_us=0)
        ledger.reload_prices()

    def exported(reprice_after: int | None) -> tuple[int, int]:
        """The export's billed total and how many statements it ran."""

        def run_reprice() -> None:
            assert reprice(ledger, since=datetime(2026, 11, 1, tzinfo=UTC)).changed == 2

        with after_statement(ledger.read_engine, reprice_after, run_reprice) as race:
            billed = focus_export(ledger, "2026-11", tz=ZoneInfo("UTC")).billed_nanos
        return billed, race.statements

    before, counted = exported(None)
    assert before == 1_500_000_000 and counted >= 2  # 2 × ($0.15 + $0.60)
    for k in range(1, counted + 1):
        correct(False)
        reprice(ledger, since=datetime(2026, 11, 1, tzinfo=UTC))  # back to the costs before
        correct(True)
        billed, _ = exported(k)
        assert billed in (before, 2_000_000_000), f"a reprice after statement {k} of the export: {billed}"
