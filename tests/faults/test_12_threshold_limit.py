"""Issue 10, item 12 (thresholds): a budget has at most 10 thresholds, so it cannot queue thousands
of alerts. A file with more is broken like any other: refused at validation, nothing queued."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from finops.config.budget_files import parse_budget_text
from finops.config.budget_spec import parse_budget
from finops.daemon.cycle import Daemon
from finops.domain.budgets import MAX_THRESHOLDS
from finops.settings import Settings
from finops.storage.tables import alert_outbox, budget_breaches
from finops.usecases.ingest import ingest_objects


def budget_text(count: int) -> str:
    thresholds = ", ".join(f"0.{i:04d}" for i in range(1, count + 1))
    return (
        "budgets:\n  - flow: support-gpt-en\n    owner: '@dana'\n    daily_cap_usd: 0.000001\n"
        f"    thresholds: [{thresholds}]\n"
    )


def test_ten_thresholds_are_allowed_and_eleven_are_not() -> None:
    assert MAX_THRESHOLDS == 10
    budgets, problems = parse_budget_text(budget_text(10), file="f.yaml")
    assert len(budgets[0].budget.thresholds) == 10 and problems == []
    budgets, problems = parse_budget_text(budget_text(11), file="f.yaml")
    assert budgets == [] and [str(p) for p in problems] == [
        "f.yaml:5: thresholds: at most 10 per budget, got 11"
    ]


def test_two_thousand_thresholds_are_one_problem_not_two_thousand() -> None:
    budgets, problems = parse_budget_text(budget_text(2_000), file="f.yaml")
    assert budgets == [] and [str(p) for p in problems] == [
        "f.yaml:5: thresholds: at most 10 per budget, got 2000"
    ]
    bad = budget_text(2_000).replace("0.0001,", "lots,")  # even with a bad one among them
    assert [str(p) for p in parse_budget_text(bad, file="f.yaml")[1]] == [
        "f.yaml:5: thresholds: at most 10 per budget, got 2000"
    ]


def test_the_model_refuses_them_too() -> None:
    with pytest.raises(ValidationError, match="at most 10 per budget"):
        parse_budget(flow="f", owner="@o", daily_cap_usd=1, thresholds=[i / 1000 for i in range(1, 2001)])


def test_a_file_with_2000_thresholds_queues_no_alert(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "budgets"
    folder.mkdir()
    (folder / "support.yaml").write_text(budget_text(2_000))
    daemon = Daemon(Settings(database_url=db_url, budgets_dir=folder, cycle_s=3600), create=True)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        record = {"id": "r1", "ts": now.isoformat(), "model": "gpt-4o-mini", "flow": "support-gpt-en"}
        summary = ingest_objects(daemon.ledger, [record | {"output_tokens": 1_000_000}], source="t")
        assert summary.rejected == 0
        report = daemon.cycle(now)
        assert report.errors == [] and report.budgets == 0 and report.new_alerts == 0
        with daemon.ledger.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(budget_breaches)) == 0
            queued = [row.dedupe_key for row in conn.execute(select(alert_outbox.c.dedupe_key))]
        assert len(queued) == 1 and queued[0].startswith("budget-file:support.yaml:")  # the owner's notice
    finally:
        daemon.shutdown()
