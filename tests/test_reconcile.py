"""Reconciliation: metered cost per provider day against the providers' reports, causes, alerts, CLI."""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.domain.reconcile import (
    MISSING_USAGE,
    NO_REPORT,
    UNPRICED,
    UNREPORTED_USAGE,
    WRONG_PRICES,
    MeteredDay,
    ReportedDay,
    past_threshold,
    reconcile_day,
)
from finops.sources.providers import Bucket, CostRow, UsageRow
from finops.storage.alerts import outbox_rows
from finops.storage.db import write_transaction
from finops.storage.provider_reports import replace_costs, replace_usage, write_cursor
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.reconcile import alert_drift, reconcile_month
from tests.conftest import fresh_postgres_database, make_ledger
from tests.provider_fakes import OPENAI_KEY, FakeProvider, openai_fake
from tests.racing import after_statement, in_sqlite_write

__all__ = ["openai_fake"]  # fixture used by name

USD = 1_000_000_000
DAY = date(2026, 11, 3)
runner = CliRunner()


def _names(causes: Any) -> list[str]:
    return [c.name for c in causes]


# ---------------------------------------------------------------- the pure rules


def test_provider_counting_more_tokens_is_missing_usage() -> None:
    drift = reconcile_day("openai", DAY, MeteredDay(80 * USD, 700, 100, 8), ReportedDay(100 * USD, 900, 100))
    assert (drift.drift_nanos, drift.drift_pct) == (20 * USD, Decimal("20.00"))
    assert _names(drift.causes) == [MISSING_USAGE]
    assert "200 more tokens" in drift.causes[0].detail


def test_finops_counting_more_tokens_is_usage_the_provider_does_not_have() -> None:
    drift = reconcile_day("openai", DAY, MeteredDay(10 * USD, 2000, 0), ReportedDay(5 * USD, 1000, 0))
    assert (drift.drift_nanos, drift.drift_pct) == (-5 * USD, Decimal("-100.00"))
    assert _names(drift.causes) == [UNREPORTED_USAGE]


def test_agreeing_tokens_with_different_money_is_wrong_prices() -> None:
    drift = reconcile_day("openai", DAY, MeteredDay(3 * USD, 1000, 10), ReportedDay(4 * USD, 1005, 10))
    assert _names(drift.causes) == [WRONG_PRICES]  # 5 of 1015 tokens is within 1%
    assert "$1.00" in drift.causes[0].detail


def test_unpriced_records_are_named_and_not_blamed_on_prices() -> None:
    drift = reconcile_day("anthropic", DAY, MeteredDay(3 * USD, 1000, 0, 4, 1), ReportedDay(4 * USD, 1000, 0))
    assert _names(drift.causes) == [UNPRICED]
    assert "1 record(s) have no price" in drift.causes[0].detail


def test_a_day_without_a_report_has_no_drift_and_says_why() -> None:
    drift = reconcile_day("openai", DAY, MeteredDay(3 * USD, 10, 1), ReportedDay())
    assert (drift.drift_nanos, drift.drift_pct, _names(drift.causes)) == (None, None, [NO_REPORT])
    assert not past_threshold(drift, threshold_pct=Decimal(0), min_nanos=0)


def test_matching_days_have_no_causes() -> None:
    drift = reconcile_day("openai", DAY, MeteredDay(3 * USD, 1000, 10), ReportedDay(3 * USD, 1000, 10))
    assert (drift.drift_nanos, drift.drift_pct, drift.causes) == (0, Decimal("0.00"), ())


def test_an_alert_needs_both_the_percentage_and_the_dollars() -> None:
    def past(metered: int, reported: int) -> bool:
        d = reconcile_day("openai", DAY, MeteredDay(metered), ReportedDay(reported, 0, 0))
        return past_threshold(d, threshold_pct=Decimal(5), min_nanos=1 * USD)

    assert past(90 * USD, 100 * USD)  # 10%, $10
    assert not past(96 * USD, 100 * USD)  # 4%: below the percentage
    assert not past(95 * USD, 100 * USD)  # exactly 5%: not more than
    assert not past(USD // 2, USD)  # 50%, but only $0.50
    assert not past(0, USD)  # exactly $1: not more than
    assert past(2 * USD, 0)  # the provider billed nothing: any percentage


# ---------------------------------------------------------------- against a ledger


def _record(i: int, day: int, model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "id": f"r-{i}",
        "ts": f"2026-11-{day:02d}T12:00:00Z",
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }


def _us(day: int) -> int:
    return int(datetime(2026, 11, day, tzinfo=UTC).timestamp()) * 1_000_000


def _report(
    ledger: Ledger,
    provider: str,
    day: int,
    cost_nanos: int,
    input_tokens: int,
    output_tokens: int,
    *,
    final_until: int | None = None,
) -> None:
    """A provider day's report; ``final_until``: and the poller's cursor moved to that day, in the
    same transaction (as a poll stores a page)."""
    bucket = Bucket(_us(day), _us(day + 1))
    with write_transaction(ledger.engine) as conn:
        if final_until is not None:
            write_cursor(conn, f"{provider}.costs", {"next_start_us": _us(final_until)}, now_us=_us(20))
        replace_costs(
            conn,
            provider=provider,
            buckets=[bucket],
            rows=[
                CostRow(
                    provider,
                    bucket.start_us,
                    bucket.end_us,
                    "line_item=x",
                    "x",
                    None,
                    None,
                    cost_nanos,
                    "USD",
                )
            ],
            now_us=_us(20),
        )
        replace_usage(
            conn,
            provider=provider,
            buckets=[bucket],
            rows=[
                UsageRow(
                    provider,
                    bucket.start_us,
                    bucket.end_us,
                    "model=m",
                    "m",
                    None,
                    None,
                    1,
                    input_tokens,
                    0,
                    0,
                    0,
                    output_tokens,
                )
            ],
            now_us=_us(20),
        )


def _final_until(ledger: Ledger, provider: str, day: int) -> None:
    with write_transaction(ledger.engine) as conn:
        write_cursor(conn, f"{provider}.costs", {"next_start_us": _us(day)}, now_us=_us(day))


def _month(ledger: Ledger) -> None:
    """Known answers, by hand: gpt-4o at $2.50/M in, $10/M out, so 1M in + 100k out costs $3.50."""
    records = [_record(d, d, "gpt-4o-2024-08-06", 1_000_000, 100_000) for d in range(3, 8)]
    records.append(_record(100, 5, "gpt-mystery-1", 1_000, 0))  # openai, no price: $0 metered, unpriced
    records.append(_record(101, 3, "claude-sonnet-4-5", 1_000_000, 0))  # $3.00
    records.append(_record(102, 3, "gemini-2.0-flash", 1_000, 0))  # no Google report: not reconciled
    assert ingest_objects(ledger, records, source="test").stored == 8
    _report(ledger, "openai", 3, 3_500_000_000, 1_000_000, 100_000)  # agrees
    _report(ledger, "openai", 4, 7_000_000_000, 2_000_000, 200_000)  # missing usage, +$3.50, 50%
    _report(ledger, "openai", 5, 3_600_000_000, 1_001_000, 100_000)  # unpriced, +$0.10, 2.78%
    _report(ledger, "openai", 6, 5_000_000_000, 1_000_000, 100_000)  # wrong prices, +$1.50, 30%
    _report(ledger, "openai", 7, 1_750_000_000, 500_000, 50_000)  # finops has more, -$1.75, -100%
    _report(ledger, "anthropic", 3, 3_000_000_000, 1_000_000, 0)  # agrees


def test_a_month_reconciles_to_known_answers_with_each_cause(db_url: str) -> None:
    ledger = make_ledger(db_url)
    _month(ledger)
    report = reconcile_month(ledger, "2026-11")
    by_day = {(r.provider, r.day.day): r for r in report.rows}
    assert sorted(by_day) == [("anthropic", 3)] + [("openai", d) for d in range(3, 8)]
    expected = {
        3: (3_500_000_000, 0, Decimal("0.00"), []),
        4: (3_500_000_000, 3_500_000_000, Decimal("50.00"), [MISSING_USAGE]),
        5: (3_500_000_000, 100_000_000, Decimal("2.78"), [UNPRICED]),
        6: (3_500_000_000, 1_500_000_000, Decimal("30.00"), [WRONG_PRICES]),
        7: (3_500_000_000, -1_750_000_000, Decimal("-100.00"), [UNREPORTED_USAGE]),
    }
    for day, (metered, drift, pct, causes) in expected.items():
        row = by_day[("openai", day)]
        assert (row.metered.cost_nanos, row.drift_nanos, row.drift_pct, _names(row.causes)) == (
            metered, drift, pct, causes,
        ), day  # fmt: skip
    assert by_day[("anthropic", 3)].drift_nanos == 0
    totals = report.totals()
    assert (totals["openai"].metered_nanos, totals["openai"].reported_nanos) == (
        17_500_000_000,
        20_850_000_000,
    )
    assert totals["openai"].drift_nanos == 3_350_000_000
    assert [r.provider for r in reconcile_month(ledger, "2026-11", provider="anthropic").rows] == [
        "anthropic"
    ]
    ledger.close()


def test_drift_alerts_once_per_final_day_past_both_thresholds(db_url: str) -> None:
    ledger = make_ledger(db_url, reconcile_channel="#finops-recon", slack_default_channel="#other")
    _month(ledger)
    _final_until(ledger, "openai", 7)  # Nov 3..6 final; Nov 7 may still be revised
    now = datetime(2026, 11, 9, 6, 0, tzinfo=UTC)
    queued = alert_drift(ledger, "2026-11", now=now)
    assert [(d.provider, d.day.day) for d in queued] == [("openai", 4), ("openai", 6)]
    assert alert_drift(ledger, "2026-11", now=now) == []  # once
    _final_until(ledger, "openai", 9)
    assert [(d.provider, d.day.day) for d in alert_drift(ledger, now=now)] == [("openai", 7)]

    with ledger.engine.connect() as conn:
        rows = sorted(outbox_rows(conn, status="pending", limit=50), key=lambda r: r.dedupe_key)
    assert [r.dedupe_key for r in rows] == [f"reconcile:openai:2026-11-0{d}" for d in (4, 6, 7)]
    assert {r.channel for r in rows} == {"#finops-recon"}
    payload = rows[0].payload
    assert payload["type"] == "message"
    assert payload["text"] == (
        "OpenAI billed $7.00 on 2026-11-04, finops metered $3.50: drift +$3.50 (+50.00%)"
    )
    assert payload["blocks"][0]["type"] == "header" and "missing usage" in json.dumps(payload["blocks"])
    ledger.close()


def test_a_drift_alert_racing_a_poll_never_alerts_a_revision_the_poll_replaced(
    db_url: str, tmp_path: Path
) -> None:
    """Nov 7 is not final yet and its report says finops metered $1.75 too much. A poll then
    stores the day's final revision (it agrees) and moves the cursor past it, in one commit.
    Whichever statement of the drift check the poll lands after, the check must alert the day
    from its final revision (no drift: nothing) or leave it for later, never alert the replaced
    revision as final: that alert is false, and its dedupe key keeps it from ever being corrected.
    The poll runs after the check's k-th statement (on SQLite, not inside its write transaction,
    which holds the one write lock the poll would wait for)."""
    now = datetime(2026, 11, 9, 6, 0, tzinfo=UTC)

    def alerted(poll_after: int | None, name: str) -> tuple[list[int], int, bool]:
        """The days alerted, the statements the check ran, and whether the poll ran inside it."""
        with (
            nullcontext(f"sqlite:///{tmp_path / name}")
            if db_url.startswith("sqlite")
            else (fresh_postgres_database()) as url
        ):
            ledger = make_ledger(url)
            try:
                _month(ledger)
                _final_until(ledger, "openai", 7)

                def poll() -> None:
                    _report(ledger, "openai", 7, 3_500_000_000, 1_000_000, 100_000, final_until=9)

                with after_statement(ledger.engine, poll_after, poll, skip=in_sqlite_write) as race:
                    queued = alert_drift(ledger, "2026-11", now=now)
                return [d.day.day for d in queued if d.provider == "openai"], race.statements, race.ran
            finally:
                ledger.close()

    days, counted, _ = alerted(None, "first.db")
    assert days == [4, 6] and counted >= 2
    exercised = 0
    for k in range(1, counted + 1):
        days, _, polled = alerted(k, f"k{k}.db")
        exercised += polled
        assert days == [4, 6], f"a poll after statement {k} of the drift check: days {days} alerted"
    assert exercised >= 2


# ---------------------------------------------------------------- the commands


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "recon.db"
    monkeypatch.setenv("FINOPS_DATABASE_URL", f"sqlite:///{path}")
    for name in ("OPENAI_ADMIN_KEY", "ANTHROPIC_ADMIN_KEY", "OPENAI_BASE_URL", "PRICE_OVERRIDES"):
        monkeypatch.delenv(f"FINOPS_{name}", raising=False)
    return path


def test_reconcile_command_prints_drift_causes_and_totals(env: Path) -> None:
    ledger = make_ledger(f"sqlite:///{env}")
    _month(ledger)
    ledger.close()
    result = runner.invoke(app, ["reconcile", "--month", "2026-11", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["totals"]["openai"] == {
        "metered_usd": "17.500000000",
        "reported_usd": "20.850000000",
        "drift_usd": "3.350000000",
    }
    nov4 = next(r for r in doc["rows"] if r["provider"] == "openai" and r["day"] == "2026-11-04")
    assert (nov4["drift_usd"], nov4["drift_pct"], nov4["past_threshold"]) == ("3.500000000", "50.00", True)
    assert [c["cause"] for c in nov4["causes"]] == [MISSING_USAGE]

    result = runner.invoke(app, ["reconcile", "--month", "2026-11", "--provider", "openai"])
    assert result.exit_code == 0, result.output
    assert "openai total" in result.stdout and "anthropic" not in result.stdout
    assert "3 day(s) marked ! drift more than 5%" in result.stdout
    assert "openai 2026-11-04: missing usage:" in result.stdout

    bad = runner.invoke(app, ["reconcile", "--month", "2026-13"])
    assert bad.exit_code == 2 and "month must look like 2026-11" in bad.stderr


def test_poll_command_runs_the_pollers_once(
    env: Path, openai_fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["poll"])
    assert result.exit_code == 1 and "no admin key is set" in result.stderr

    today = datetime.now(UTC).date()
    openai_fake.add_cost(today, "0.42", line_item="gpt-4o, input")
    monkeypatch.setenv("FINOPS_OPENAI_ADMIN_KEY", OPENAI_KEY)
    monkeypatch.setenv("FINOPS_OPENAI_BASE_URL", openai_fake.base_url)
    result = runner.invoke(app, ["poll", "--provider", "openai"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("openai: ") and "1 row(s)" in result.stdout
    assert OPENAI_KEY not in result.output

    monkeypatch.setenv("FINOPS_OPENAI_ADMIN_KEY", "sk-admin-revokedKey000000000000")
    failed = runner.invoke(app, ["poll"])
    assert failed.exit_code == 1
    assert "anthropic: skipped" in failed.stdout
    assert "stopped: OpenAI refused the admin key (HTTP 401)" in failed.stderr
    assert "FINOPS_OPENAI_ADMIN_KEY" in failed.stderr and "revokedKey" not in failed.output
