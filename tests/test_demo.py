"""`finops demo` tells one true story relative to today, in a temporary SQLite file:
two full months and this one so far, outcomes with a success rate per flow, prompts flagged
NEW, GROWING and BLOATED for a reason, one budget past 80% today and one past its blocking cap,
against the budget files at the top of the repository."""

from __future__ import annotations

import calendar
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.config.budget_files import load_budget_dir
from finops.domain.budgets import budget_to_mapping
from finops.domain.outcomes import parse_outcome
from finops.errors import UsageError
from finops.storage.db import write_transaction
from finops.storage.outcomes import write_outcomes
from finops.usecases.budgets import budget_state
from finops.usecases.demo import FLOWS, INCIDENTS, demo_months, load_demo
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger

BUDGETS = Path(__file__).resolve().parents[1] / "budgets"
ZONES = ("UTC", "Europe/Berlin", "America/New_York")


def _days() -> tuple[str, ...]:
    """Today in every time zone the story's budgets use."""
    now = datetime.now(UTC)
    return tuple(now.astimezone(ZoneInfo(z)).date().isoformat() for z in ZONES)


@dataclass
class Run:
    """Every command's output after one `finops demo`, all taken within the same local days."""

    before: str
    last: str
    this: str
    out: dict[str, tuple[int, str]]

    def json(self, name: str) -> Any:
        code, text = self.out[name]
        assert code in (0, 4), text
        return json.loads(text)


def _run_all(tmp: Path) -> Run:
    env = {
        "FINOPS_DATABASE_URL": f"sqlite:///{tmp / 'demo.db'}",
        "FINOPS_BUDGETS_DIR": str(BUDGETS),
        "FINOPS_PRICE_OVERRIDES": None,
        "FINOPS_SLACK_BOT_TOKEN": None,
        "FINOPS_SLACK_WEBHOOK_URL": None,
    }
    runner = CliRunner(env=env)
    before, last, this = demo_months(datetime.now(UTC))
    commands = {
        "demo": ["demo"],
        "status": ["budgets", "status", "--format", "json"],
        "check-blocked": ["check", "code-review"],
        "check-warning": ["check", "search-summarize", "--tag", "env=prod", "--tag", "team=search"],
        "alerts": ["alerts", "run", "--dry-run"],
        "outcomes": ["outcomes", "--month", last, "--format", "json"],
        "prompts": ["prompts", "top", "--month", last, "--format", "json"],
        "report": ["report", "monthly", "--month", last, "--format", "json"],
        "days-before": ["spend", "--by", "day", "--month", before, "--format", "json"],
        "days-last": ["spend", "--by", "day", "--month", last, "--format", "json"],
        "today": ["spend", "--by", "flow", "--today", "--format", "json"],
        "again": ["demo"],
        "status-again": ["budgets", "status", "--format", "json"],
    }
    out = {}
    for name, args in commands.items():
        result = runner.invoke(app, args)
        out[name] = (result.exit_code, result.stdout)
    return Run(before, last, this, out)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    for _ in range(2):  # once more if a local midnight passed while the commands ran
        days = _days()
        done = _run_all(tmp_path_factory.mktemp("demo"))
        if _days() == days:
            return done
    raise AssertionError("two local midnights in two runs of the demo")


def _status(run: Run, name: str = "status") -> dict[str, dict[str, Any]]:
    return {b["budget"]: b for b in run.json(name)}


def test_the_demo_loads_usage_outcomes_and_todays_incidents(run: Run) -> None:
    code, out = run.out["demo"]
    assert code == 0, out
    assert out.startswith(
        f"Loading sample usage ({run.before} and {run.last} in full, {run.this} so far) into sqlite:///"
    )
    assert "duplicates 0, rejected 0" in out and "outcomes: stored" in out and "usage records linked" in out
    assert "today: search-summarize retried empty answers in a loop" in out and "(stored)" in out
    assert "Budgets today" in out and f"finops prompts top --month {run.last}" in out


def test_two_full_months_and_today(run: Run) -> None:
    for label, name in ((run.before, "days-before"), (run.last, "days-last")):
        year, month = (int(x) for x in label.split("-"))
        days = [r["day"] for r in run.json(name)["rows"]]
        assert days == [f"{label}-{d:02d}" for d in range(1, calendar.monthrange(year, month)[1] + 1)]
    flows = {r["flow"] for r in run.json("today")["rows"]}
    assert {"search-summarize", "code-review"} <= flows  # today's incidents, whatever the hour


def test_one_budget_past_80_percent_today_and_one_past_its_blocking_cap(run: Run) -> None:
    status = _status(run)
    warning, blocked = status["search-prod"], status["code-review"]
    fraction = Decimal(warning["spend_usd"]) / Decimal(warning["cap_usd"])
    assert Decimal("0.8") <= fraction < 1 and warning["state"] == "warning"
    assert Decimal(blocked["spend_usd"]) > Decimal(blocked["cap_usd"]) and blocked["state"] == "breached"
    assert blocked["on_breach"] == "block"
    assert {status[k]["state"] for k in ("support-gpt-en", "platform-agents")} == {"ok"}
    code, text = run.out["check-blocked"]
    assert code == 4 and json.loads(text)["decision"] == "deny"
    assert json.loads(text)["reason"].startswith("budget code-review is exhausted for ")
    code, text = run.out["check-warning"]
    assert code == 0 and json.loads(text)["decision"] == "allow"  # close to the cap, not past it


def test_alerts_dry_run_shows_the_two_incidents_and_nothing_else(run: Run) -> None:
    code, out = run.out["alerts"]
    assert code == 0
    assert "code-review" in out and "#platform-costs" in out and "#search-costs" in out
    assert "support" not in out and "agent" not in out


def test_outcomes_have_a_success_rate_per_flow(run: Run) -> None:
    rows = {r["flow"]: r for r in run.json("outcomes")["rows"]}
    expected = {f.name: f.success for f in FLOWS if f.success is not None}
    assert set(rows) == set(expected)
    for flow, rate in expected.items():
        assert abs(rows[flow]["success_rate"] - rate) < 0.12, (flow, rows[flow]["success_rate"])
        assert rows[flow]["outcomes"] > 50 and Decimal(rows[flow]["cost_per_success_usd"]) > 0
    rates = [rows[f]["success_rate"] for f in expected]
    assert max(rates) - min(rates) > 0.3
    linked = {p["prompt"]: p["success_rate"] for p in run.json("prompts")["rows"]}
    assert linked["support/answer@v3"] is not None and linked["search/rerank@v2"] is None  # by request id


def _flags(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {
        p["prompt"]: list(p["flags"].split() if isinstance(p["flags"], str) else p["flags"]) for p in rows
    }


def test_prompts_new_growing_and_bloated_for_a_reason(run: Run) -> None:
    prompts = {p["prompt"]: p for p in run.json("prompts")["rows"]}
    flags = _flags(run.json("prompts")["rows"])
    assert flags["support/escalate@v1"] == ["NEW"]  # launched on the 10th of last month
    assert flags["support/answer-de@v3"] == ["GROWING"]  # more conversations, each the same size
    assert flags["code-review/review@v1"] == ["GROWING", "BLOATED"]  # a longer system prompt
    assert float(prompts["code-review/review@v1"]["cache_hit"]) < 0.1  # ... that defeats the cache
    for steady in ("support/answer@v3", "legal/doc-qa@v2", "search/summarize@v1", "agent/plan@v3"):
        assert flags[steady] == [], steady
    report = run.json("report")
    assert report["month"] == run.last and report["previous_month"] == run.before
    in_report = _flags(report["top_prompts"])
    for prompt in ("support/escalate@v1", "support/answer-de@v3", "code-review/review@v1"):
        assert in_report[prompt] == flags[prompt], prompt
    assert {o["flow"] for o in report["outcomes"]} == {f.name for f in FLOWS if f.success is not None}


def test_running_the_demo_again_stores_nothing_twice(run: Run) -> None:
    code, out = run.out["again"]
    assert code == 0 and "stored 0," in out and "outcomes: stored 0," in out
    assert out.count("(stored before)") == len(INCIDENTS)
    again = _status(run, "status-again")["search-prod"]
    assert Decimal(again["spend_usd"]) / Decimal(again["cap_usd"]) < 1


def test_without_a_budget_folder_the_demo_says_where_the_budgets_are(tmp_path: Path) -> None:
    env = {
        "FINOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}",
        "FINOPS_BUDGETS_DIR": str(tmp_path / "no"),
    }
    result = CliRunner(env=env).invoke(app, ["demo", "--days", "1"])
    assert result.exit_code == 0 and result.stdout.startswith("Loading sample usage (the last 1 day) into ")
    assert (
        f"No budget folder at {tmp_path / 'no'}: run the demo from the repository's top folder"
        in result.stdout
    )


def test_every_example_budget_covers_a_demo_flow_and_the_incidents_use_them() -> None:
    found = load_budget_dir(BUDGETS)
    assert found.problems == []
    budgets = {b.budget.key: b.budget for b in found.budgets}
    for key, budget in budgets.items():
        covered = [
            f.name for f in FLOWS if budget.matches(f.name, {"team": f.team, "env": "prod", **dict(f.tags)})
        ]
        assert covered, f"budget {key} covers no flow of the demo"
    story = {"flow", "match", "daily_cap_usd", "monthly_cap_usd", "thresholds", "timezone", "on_breach"}
    for incident in INCIDENTS:
        written = budget_to_mapping(budgets[incident.budget.key])
        told = budget_to_mapping(incident.budget)
        assert {k: written[k] for k in story} == {k: told[k] for k in story}


@pytest.mark.parametrize(
    ("now", "twenty_minutes_later"),
    [
        # 30 s into a month and a UTC day; New York's day began 19 hours before
        (datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC), ["stored before", "stored before"]),
        # a minute before New York's midnight (summer time): code-review's next day has its own incident
        (datetime(2026, 7, 15, 3, 59, tzinfo=UTC), ["stored before", "stored"]),
        # the last second of a UTC day (and the 25-hour day New York leaves summer time)
        (datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC), ["stored", "stored before"]),
    ],
)
def test_the_incidents_reach_their_targets_at_any_time_of_day(
    tmp_path: Path, now: datetime, twenty_minutes_later: list[str]
) -> None:
    ledger = make_ledger(f"sqlite:///{tmp_path / 'd.db'}")
    loaded = load_demo(ledger, now=now, days=1)
    assert [result for _, result in loaded.incidents] == ["stored"] * len(INCIDENTS)
    with ledger.engine.connect() as conn:
        for incident in INCIDENTS:
            state = budget_state(conn, incident.budget, now)
            if incident.target < 1:
                assert Decimal("0.8") <= state.fraction < 1
            else:
                assert state.fraction >= incident.target
    again = load_demo(ledger, now=now + timedelta(minutes=20), days=1)
    assert [result for _, result in again.incidents] == twenty_minutes_later
    ledger.close()


def test_a_database_with_the_demo_of_another_month_is_refused(tmp_path: Path) -> None:
    ledger = make_ledger(f"sqlite:///{tmp_path / 'd.db'}")
    load_demo(ledger, now=datetime(2026, 11, 20, 12, tzinfo=UTC), days=1)
    with pytest.raises(UsageError, match="already holds a demo loaded in another month"):
        load_demo(ledger, now=datetime(2026, 12, 2, 12, tzinfo=UTC), days=1)
    ledger.close()


# --------------------------------------------------------------------------- outcomes in bulk
def _call(rid: str, flow: str, session: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"id": rid, "ts": "2026-11-03T10:00:00Z", "model": "gpt-4o", "flow": flow}
    record.update(input_tokens=100, output_tokens=10)
    if session:
        record["session_id"] = session
    return record


@pytest.fixture
def linked_ledger(ledger: Ledger) -> Iterator[Ledger]:
    calls = [_call(f"a{i}", "alpha") for i in range(3)] + [_call("b0", "beta"), _call("s0", "beta", "sess-1")]
    ingest_objects(ledger, calls, source="app")
    ingest_objects(ledger, [_call("a0", "alpha")], source="other")  # the same request id, another source
    yield ledger


def test_a_batch_of_outcomes_is_stored_and_linked_like_one_at_a_time(linked_ledger: Ledger) -> None:
    """Duplicates, conflicts, links by request id (every source), by session, and none."""
    ts = "2026-11-03T11:00:00Z"
    sent = [
        {"id": "o1", "ts": ts, "status": "success", "request_ids": ["a0", "a1", "b0"]},
        {"id": "o2", "ts": ts, "status": "failure", "session_id": "sess-1"},
        {"id": "o3", "ts": ts, "status": "success", "flow": "gamma", "request_ids": ["nope"]},
        {"id": "o1", "ts": ts, "status": "success", "request_ids": ["a0", "a1", "b0"]},  # duplicate
        {"id": "o2", "ts": ts, "status": "success", "session_id": "sess-1"},  # conflict
    ]
    items = [(parse_outcome(o), "batch", i) for i, o in enumerate(sent)]
    with write_transaction(linked_ledger.engine) as conn:
        first = write_outcomes(conn, source="app", items=items, now_us=1)
        second = write_outcomes(conn, source="app", items=items[:3], now_us=2)
        rows = conn.exec_driver_sql(
            "SELECT outcome_id, linked, linked_flow FROM outcomes ORDER BY outcome_id"
        ).all()
    assert (first.stored, first.duplicates, len(first.conflicts), first.linked) == (3, 1, 1, 5)
    assert "status 'failure' -> 'success'" in first.conflicts[0].reason
    assert (second.stored, second.duplicates, second.linked) == (0, 3, 0)
    assert [tuple(r) for r in rows] == [("o1", 4, "alpha"), ("o2", 1, "beta"), ("o3", 0, None)]
