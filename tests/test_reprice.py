"""Re-pricing after a correction: costs, rollups and the report of what changed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import func, select

from finops.domain.pricing import entry_from_mapping
from finops.storage.prices import save_imported
from finops.storage.tables import price_versions, rollups_hourly, usage_records
from finops.usecases.ingest import ingest_paths
from finops.usecases.ledger import Ledger
from finops.usecases.reprice import reprice
from tests.conftest import write_jsonl


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
