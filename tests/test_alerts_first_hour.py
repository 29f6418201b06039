"""Issue 12, "alerts people act on": one message per jump with a severity per level, one rounding
rule for every percentage of a cap, the budget's name in the header, owners that are mentioned,
a dry run that prints what would be sent, a readable outbox, and a report that needs a channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.domain.budgets import Budget, percent_of, severity
from finops.notify.messages import SEVERITY_STYLE, AlertMessage, render_alert
from finops.render.digest_slack import digest_message
from finops.render.report_text import render_markdown
from finops.storage.tables import alert_outbox, budget_breaches
from finops.usecases.alerts import deliver, evaluate_alerts
from finops.usecases.audit.monthly import build_monthly_report
from finops.usecases.digests import digest_for
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger
from tests.slack_fake import FakeSlack
from tests.slack_fake import slack as slack_fixture  # noqa: F401 - the `slack` fixture
from tests.test_alerts import NOW, budgets_dir, sender, spend

USD = 1_000_000_000
BUDGET = Budget(flow="support", owner="U0DANA123", slack_channel="#costs", daily_cap_usd=100)


def spend_exactly(ledger: Ledger, flow: str, nanos: int, *, prefix: str, at: datetime | None = None) -> None:
    """One record on ``flow`` costing exactly ``nanos`` (gpt-4o-mini output: 600 nano-dollars a token)."""
    assert nanos % 600 == 0
    record = {
        "id": prefix,
        "ts": (at or NOW).isoformat(),
        "model": "gpt-4o-mini",
        "flow": flow,
        "output_tokens": nanos // 600,
        "requests": nanos // 600 // 9_000_000 + 1,
        "prompt_id": "p/answer@v1",
    }
    assert ingest_objects(ledger, [record], source="test").rejected == 0


def header(message: Any) -> str:
    return str(message.blocks[0]["text"]["text"])


def count(ledger: Ledger, table: Any) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


# ------------------------------------------------------------------ one message per jump


def test_a_jump_from_2_to_106_percent_sends_one_breach_message_and_no_replica_sends_more(
    db_url: str, slack: FakeSlack
) -> None:
    ledger = make_ledger(db_url)
    spend_exactly(ledger, "support", 1_800_000_000, prefix="a")
    assert evaluate_alerts(ledger, [BUDGET], now=NOW).new_alerts == []
    spend_exactly(ledger, "support", 103_800_000_000, prefix="b")  # $105.60: 105% (floored)

    report = evaluate_alerts(ledger, [BUDGET], now=NOW)
    assert [str(m.threshold) for m in report.new_alerts] == ["1.0"]
    assert deliver(ledger, sender(slack), now=NOW).sent == 1

    replica = make_ledger(db_url)  # a second replica, and later cycles of both
    for each in (replica, ledger, replica):
        assert evaluate_alerts(each, [BUDGET], now=NOW).new_alerts == []
        assert deliver(each, sender(slack), now=NOW).sent == 0
    replica.close()

    (post,) = slack.posts("#costs")
    assert post.text == (
        ":rotating_light: Over budget: support passed 100% of its daily budget: "
        "$105.60 of $100.00 (105%). <@U0DANA123>"
    )
    assert count(ledger, budget_breaches) == 3  # 50% and 80% are recorded as crossed, silently
    assert count(ledger, alert_outbox) == 1
    ledger.close()


def test_the_silent_thresholds_are_never_sent_later(sqlite_ledger: Ledger, slack: FakeSlack) -> None:
    spend(sqlite_ledger, "support", 90, prefix="a")  # 50% and 80% at once: one warning
    assert [str(m.threshold) for m in evaluate_alerts(sqlite_ledger, [BUDGET], now=NOW).new_alerts] == ["0.8"]
    deliver(sqlite_ledger, sender(slack), now=NOW)
    spend(sqlite_ledger, "support", 20, prefix="b")
    assert [str(m.threshold) for m in evaluate_alerts(sqlite_ledger, [BUDGET], now=NOW).new_alerts] == ["1.0"]
    deliver(sqlite_ledger, sender(slack), now=NOW)
    assert [header(p) for p in slack.posts("#costs")] == [
        ":warning: Warning: support passed 80% of its daily budget",
        ":rotating_light: Over budget: support passed 100% of its daily budget",
    ]


def test_dropping_back_is_one_message_for_the_highest_threshold(sqlite_ledger: Ledger) -> None:
    spend(sqlite_ledger, "support", 106, prefix="a")
    evaluate_alerts(sqlite_ledger, [BUDGET], now=NOW)
    raised = BUDGET.model_copy(update={"daily_cap_usd": Decimal(1000)})  # 10%: below every threshold
    report = evaluate_alerts(sqlite_ledger, [raised], now=NOW)
    assert [str(m.threshold) for m in report.resolved] == ["1.0"]
    assert count(sqlite_ledger, alert_outbox) == 2


@pytest.mark.parametrize(
    ("level", "on_breach", "expected"),
    [
        ("0.5", "alert", "info"),
        ("0.79", "block", "info"),
        ("0.8", "alert", "warning"),
        ("0.99", "block", "warning"),
        ("1.0", "alert", "breach"),
        ("1.5", "alert", "breach"),
        ("1.0", "block", "blocked"),
    ],
)
def test_severity_by_level(level: str, on_breach: Any, expected: str) -> None:
    assert severity(Decimal(level), on_breach=on_breach) == expected


def _alert(threshold: str, spend_usd: int, on_breach: Any = "alert", **changes: Any) -> AlertMessage:
    return AlertMessage(
        kind="threshold",
        budget_key=changes.pop("budget_key", "support"),
        flow=changes.pop("flow", "support"),
        owner="U0DANA123",
        channel="#costs",
        period="2026-11-03 (UTC)",
        spend_nanos=spend_usd * USD,
        cap_nanos=100 * USD,
        threshold=Decimal(threshold),
        on_breach=on_breach,
        **changes,
    )


def test_each_level_looks_different() -> None:
    headers = [
        header(render_alert(_alert("0.5", 55))[0]),
        header(render_alert(_alert("0.8", 85))[0]),
        header(render_alert(_alert("1.0", 105))[0]),
        header(render_alert(_alert("1.0", 105, on_breach="block"))[0]),
    ]
    assert headers == [
        ":information_source: Info: support passed 50% of its daily budget",
        ":warning: Warning: support passed 80% of its daily budget",
        ":rotating_light: Over budget: support passed 100% of its daily budget",
        ":no_entry: Blocked: support passed 100% of its daily budget",
    ]
    assert len({emoji for emoji, _ in SEVERITY_STYLE.values()}) == 4
    # spend over the cap is a breach even when the highest threshold is lower
    assert header(render_alert(_alert("0.5", 120))[0]).startswith(":rotating_light: Over budget:")


# ------------------------------------------------------------------ the budget's name


def test_a_match_budget_is_named_by_its_name_not_its_pattern(sqlite_ledger: Ledger) -> None:
    budget = Budget.model_validate(
        {"name": "search", "match": {"flow": "search-*"}, "owner": "U0DANA123", "daily_cap_usd": 10}
    )
    spend(sqlite_ledger, "search-web", 11, prefix="a")
    (message,) = evaluate_alerts(sqlite_ledger, [budget], now=NOW).new_alerts
    (part,) = render_alert(message)
    assert header(part) == ":rotating_light: Over budget: search passed 100% of its daily budget"
    assert part.text.startswith(":rotating_light: Over budget: search passed 100%")


# ------------------------------------------------------------------ one rounding rule


def test_percent_of_floors() -> None:
    assert [percent_of(s, 100) for s in (0, 79, 80, 99, 100, 105, -5)] == [0, 79, 80, 99, 100, 105, 0]
    assert percent_of(105_999_999_800, 100 * USD) == 105
    assert percent_of(79_999_999_999, 100 * USD) == 79
    with pytest.raises(ValueError, match="positive cap"):
        percent_of(1, 0)


def test_the_same_spend_shows_the_same_percentage_everywhere(sqlite_url: str, tmp_path: Path) -> None:
    """$105.60 of $100: status, JSON, the Slack alert, the digest and the report all say 105%
    (rounded to the nearest, as `budgets status` did, it read 106%)."""
    folder = budgets_dir(
        tmp_path,
        'budgets:\n  - flow: support\n    owner: "U0DANA123"\n    slack_channel: "#costs"\n'
        "    daily_cap_usd: 100\n",
    )
    ledger = make_ledger(sqlite_url, budgets_dir=folder)
    day = datetime(2026, 10, 14, 12, tzinfo=UTC)
    spend_exactly(ledger, "support", 105_600_000_000, prefix="a", at=day)

    (message,) = evaluate_alerts(ledger, [BUDGET], now=day).new_alerts
    (alert,) = render_alert(message)
    assert "`▓▓▓▓▓▓▓▓▓▓ 105%`" in json.dumps(alert.blocks, ensure_ascii=False)
    assert alert.text.endswith("(105%). <@U0DANA123>")

    _, lines = digest_for(ledger, period="daily", today=day.date() + timedelta(days=1), tz=UTC)
    digest = json.dumps(digest_message("daily", "2026-10-14", lines).blocks)
    assert "*support*: $105.60 of $100.00 (105%)" in digest

    markdown = render_markdown(build_monthly_report(ledger, month="2026-10", tz=UTC, top=5))
    row = next(line for line in markdown.splitlines() if "support" in line and "100%" in line)
    assert row.rstrip(" |").endswith("105%")
    ledger.close()

    runner = CliRunner()
    env = {"FINOPS_DATABASE_URL": sqlite_url, "FINOPS_BUDGETS_DIR": str(folder), "COLUMNS": "200"}
    spend_today = make_ledger(sqlite_url)
    spend_exactly(spend_today, "support", 105_600_000_000, prefix="c")
    spend_today.close()
    status = runner.invoke(app, ["budgets", "status", "--format", "json"], env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)[0]["percent"] == 105
    table = runner.invoke(app, ["budgets", "status"], env=env)
    assert table.exit_code == 0, table.output
    assert " 105% " in table.stdout and "106%" not in table.stdout
