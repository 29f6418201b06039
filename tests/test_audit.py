"""The token audit with answers worked out by hand: cost per success, the top prompts and their flags."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.storage.tables import dead_letters, outcomes, prompts
from finops.usecases.audit.monthly import build_monthly_report
from finops.usecases.audit.report_model import MonthlyReport
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.outcomes import ingest_outcome_paths
from tests.conftest import needs_tiktoken, write_jsonl
from tests.racing import after_statement, in_sqlite_write
from tests.slack_fake import TOKEN, FakeSlack
from tests.slack_fake import slack as slack_fixture  # noqa: F401 - the `slack` fixture

# gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens
IN, OUT = Decimal("0.15") / 10**6, Decimal("0.60") / 10**6


def call(rid: str, day: str, prompt: str, flow: str, *, inp: int, **more: object) -> dict[str, object]:
    return {
        "id": rid,
        "ts": f"{day}T12:00:00Z",
        "model": "gpt-4o-mini",
        "flow": flow,
        "prompt_id": prompt,
        "input_tokens": inp,
        "output_tokens": 1_000_000,
        **more,
    }


def nanos(usd: Decimal) -> int:
    return int(usd * 10**9)


@pytest.fixture
def month(sqlite_ledger: Ledger, tmp_path: Path) -> Ledger:
    september = [call(f"s-a{i}", "2026-09-15", "support/answer@v1", "support", inp=1000) for i in range(5)]
    september += [call("s-r0", "2026-09-15", "search/rank@v2", "search", inp=1000)]
    october = [call(f"o-a{i}", "2026-10-15", "support/answer@v1", "support", inp=2000) for i in range(6)]
    october += [call(f"o-t{i}", "2026-10-15", "support/triage@v1", "support", inp=1000) for i in range(4)]
    october += [
        call(f"o-r{i}", "2026-10-15", "search/rank@v2", "search", inp=1000, trace_id="t-rank")
        for i in range(3)
    ]
    assert ingest_objects(sqlite_ledger, september + october, source="app").stored == 19
    lines = [
        *(
            {"id": f"so{i}", "ts": "2026-09-16T00:00:00Z", "status": "success", "request_ids": [f"s-a{i}"]}
            for i in range(2)
        ),
        *(
            {"id": f"oo{i}", "ts": "2026-10-16T00:00:00Z", "status": "success", "request_ids": [f"o-a{i}"]}
            for i in range(4)
        ),
        {"id": "oo-fail", "ts": "2026-10-16T00:00:00Z", "status": "failure", "request_ids": ["o-t0"]},
        *(
            {"id": f"or{i}", "ts": "2026-10-16T00:00:00Z", "status": "failed", "trace_id": "t-rank"}
            for i in range(2)
        ),
    ]
    summary = ingest_outcome_paths(sqlite_ledger, [write_jsonl(tmp_path / "outcomes.jsonl", lines)])
    assert (summary.stored, summary.rejected) == (9, 0)
    return sqlite_ledger


def test_cost_per_successful_outcome_worked_by_hand(month: Ledger) -> None:
    report = build_monthly_report(month, month="2026-10", tz=ZoneInfo("UTC"))
    support = next(o for o in report.outcomes if o.flow == "support")
    cost = 6 * (2000 * IN + 1_000_000 * OUT) + 4 * (1000 * IN + 1_000_000 * OUT)  # 6.0024
    assert support.cost_nanos == nanos(cost) == 6_002_400_000
    assert (support.outcomes, support.successes, support.failures) == (5, 4, 1)
    assert support.cost_per_success_nanos == nanos(cost / 4) == 1_500_600_000
    assert support.cost_per_attempt_nanos == nanos(cost / 5)
    assert support.success_rate == 0.8
    september = 5 * (1000 * IN + 1_000_000 * OUT)
    assert support.prev_cost_per_success_nanos == nanos(september / 2)
    search = next(o for o in report.outcomes if o.flow == "search")  # linked by trace id, no flow sent
    assert (search.outcomes, search.successes, search.cost_per_success_nanos) == (2, 0, None)


def test_top_prompts_and_their_flags_worked_by_hand(month: Ledger) -> None:
    report = build_monthly_report(month, month="2026-10", tz=ZoneInfo("UTC"), top=10)
    by = {p.prompt: p for p in report.top_prompts}
    assert [p.prompt for p in report.top_prompts] == [
        "support/answer@v1",
        "support/triage@v1",
        "search/rank@v2",
    ]
    answer, triage, rank = by["support/answer@v1"], by["support/triage@v1"], by["search/rank@v2"]
    # answer: $3.6018 vs $3.00075 (+20%: not GROWING), average input 2000 vs 1000: BLOATED
    assert answer.cost_nanos == nanos(6 * (2000 * IN + 1_000_000 * OUT)) and answer.flags == ("BLOATED",)
    assert answer.prev_cost_nanos == nanos(5 * (1000 * IN + 1_000_000 * OUT))
    assert (answer.calls, answer.avg_input_tokens, answer.avg_output_tokens) == (6, 2000, 1_000_000)
    assert answer.success_rate == 1.0 and answer.flows == ("support",) and answer.models == ("gpt-4o-mini",)
    assert triage.flags == ("NEW",) and triage.prev_cost_nanos is None and triage.success_rate == 0.0
    assert rank.flags == ("GROWING",) and rank.success_rate == 0.0  # $1.80045 vs $0.60015
    total = sum(p.cost_nanos for p in report.top_prompts)
    assert total == report.total_nanos and abs(answer.share - answer.cost_nanos / total) < 1e-12


def test_outcomes_arriving_before_their_usage_are_linked_later(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    early = [{"id": "late-1", "ts": "2026-10-20T00:00:00Z", "status": "success", "session_id": "s-9"}]
    assert ingest_outcome_paths(sqlite_ledger, [write_jsonl(tmp_path / "o.jsonl", early)]).linked == 0
    ingest_objects(
        sqlite_ledger, [call("u1", "2026-10-19", "p", "chat", inp=10, session_id="s-9")], source="a"
    )
    report = build_monthly_report(sqlite_ledger, month="2026-10")
    assert [(o.flow, o.successes) for o in report.outcomes] == [("chat", 1)]


def test_an_outcome_linked_in_part_gains_the_rest_of_its_usage_later(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    ingest_objects(sqlite_ledger, [call("r1", "2026-10-19", "p", "chat", inp=10)], source="a")
    both = [{"id": "o-2", "ts": "2026-10-20T00:00:00Z", "status": "success", "request_ids": ["r1", "r2"]}]
    assert ingest_outcome_paths(sqlite_ledger, [write_jsonl(tmp_path / "o.jsonl", both)]).linked == 1
    ingest_objects(sqlite_ledger, [call("r2", "2026-10-19", "p", "chat", inp=10)], source="a")
    build_monthly_report(sqlite_ledger, month="2026-10")  # links what arrived since
    with sqlite_ledger.engine.connect() as conn:
        assert conn.scalar(select(outcomes.c.linked)) == 2
    build_monthly_report(sqlite_ledger, month="2026-10")  # and does not link twice
    with sqlite_ledger.engine.connect() as conn:
        assert conn.scalar(select(outcomes.c.linked)) == 2


def test_the_same_outcome_twice_counts_once_and_a_changed_status_is_a_conflict(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    first = {"id": "x", "ts": "2026-10-20T00:00:00Z", "status": "success", "flow": "f"}
    ingest_outcome_paths(sqlite_ledger, [write_jsonl(tmp_path / "a.jsonl", [first, first])])
    again = ingest_outcome_paths(
        sqlite_ledger, [write_jsonl(tmp_path / "b.jsonl", [{**first, "status": "failure"}])]
    )
    assert again.conflicts == 1
    with sqlite_ledger.engine.connect() as conn:
        assert [s for (s,) in conn.execute(select(outcomes.c.status))] == ["success"]
        (reason,) = conn.execute(select(dead_letters.c.reason)).one()
    assert "status 'success' -> 'failure'" in reason


@needs_tiktoken
def test_prompt_text_is_fingerprinted_counted_and_not_stored(sqlite_ledger: Ledger) -> None:
    texts = ["Summarise ticket #4411 for alice@example.com", "Summarise ticket #98 for bob@example.org"]
    records = [
        {"id": f"p{i}", "ts": "2026-10-03T10:00:00Z", "model": "gpt-4o", "input_tokens": 50, "prompt": t}
        for i, t in enumerate(texts)
    ]
    ingest_objects(sqlite_ledger, records, source="a")
    with sqlite_ledger.engine.connect() as conn:
        rows = list(conn.execute(select(prompts)))
    assert len(rows) == 1 and rows[0].prompt_id.startswith("fp:")  # one template, one prompt
    import tiktoken

    assert rows[0].prompt_tokens == len(tiktoken.get_encoding("o200k_base").encode_ordinary(texts[0]))
    assert rows[0].tokens_estimated == 0 and rows[0].preview is None


def test_commands(month: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", month.settings.database_url)
    runner = CliRunner()
    doc = json.loads(
        runner.invoke(app, ["outcomes", "--by", "flow", "--month", "2026-10", "--format", "json"]).stdout
    )
    support = next(r for r in doc["rows"] if r["flow"] == "support")
    assert support["cost_per_success_usd"] == "1.500600000"
    top = runner.invoke(app, ["prompts", "top", "-n", "2", "--month", "2026-10", "--format", "csv"]).stdout
    assert top.splitlines()[1].startswith("support/answer@v1,3.601800000,")
    result = runner.invoke(
        app,
        ["report", "monthly", "--month", "2026-10", "--format", "json", "--out", str(tmp_path / "r.json")],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["month"] == "2026-10"


def test_monthly_report_posted_to_slack_with_the_file(
    month: Ledger, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", month.settings.database_url)
    monkeypatch.setenv("FINOPS_SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("FINOPS_SLACK_BASE_URL", slack.base_url)
    result = CliRunner().invoke(
        app,
        [
            "report",
            "monthly",
            "--month",
            "2026-10",
            "--format",
            "html",
            "--out",
            str(tmp_path / "r.html"),
            "--post-slack",
            "--channel",
            "#finance",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "posted the 2026-10 report to Slack" in result.stdout
    (post,) = slack.posts("#finance")
    assert post.accepted and "October 2026" in (post.text or "")
    (upload,) = slack.uploads
    assert upload["filename"] == "finops-report-2026-10.html"
    assert upload["content"] == (tmp_path / "r.html").read_bytes()


def test_daily_digest_top_five_flows_posted_once(
    sqlite_ledger: Ledger, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    records = [call(f"d{f}-{i}", yesterday, "p", f"flow-{f}", inp=0) for f in range(7) for i in range(f + 1)]
    ingest_objects(sqlite_ledger, records, source="a")
    monkeypatch.setenv("FINOPS_DATABASE_URL", sqlite_ledger.settings.database_url)
    monkeypatch.setenv("FINOPS_SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("FINOPS_SLACK_BASE_URL", slack.base_url)
    monkeypatch.setenv("FINOPS_BUDGETS_DIR", str(Path(__file__).resolve().parents[1] / "budgets"))
    runner = CliRunner()
    shown = json.loads(runner.invoke(app, ["digest", "--period", "daily", "--format", "blocks"]).stdout)
    text = json.dumps(shown["blocks"])
    assert "flow-6" in text and "flow-2" in text and "flow-1" not in text  # the top 5 of 7
    for _ in range(2):
        assert runner.invoke(app, ["digest", "--post-slack", "--channel", "#costs"]).exit_code == 0
    assert len(slack.posts("#costs")) == 1  # once per period


def test_without_any_tiktoken_encoding_ingest_runs_and_says_counts_are_estimates(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = write_jsonl(
        tmp_path / "u.jsonl",
        [
            {
                "id": "a",
                "ts": "2026-10-03T10:00:00Z",
                "model": "gpt-4o",
                "input_tokens": 5,
                "prompt": "Hello there, how are you?",
            }
        ],
    )
    env = {k: v for k, v in os.environ.items() if k.upper() not in ("NO_PROXY", "ALL_PROXY")}
    env.update(
        TIKTOKEN_CACHE_DIR=str(tmp_path / "empty"),
        HTTPS_PROXY="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        FINOPS_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
    )
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "finops", "ingest", "-q", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "stored 1," in done.stdout and "estimates" in done.stdout and "TIKTOKEN_CACHE_DIR" in done.stdout


def test_a_monthly_report_racing_an_ingest_adds_up(ledger: Ledger) -> None:
    """The monthly report reads its total, its flows, models, providers and days in separate
    statements. Usage arriving for the month while it is built (a late batch) must be in all of
    them or in none: a report whose flows add up to another total than its models, or than its
    days, is one a reader cannot trust. The late call is stored after the report's k-th statement."""
    october = [
        call(f"o-{i}", f"2026-10-{10 + i}", "p", ("support", "search")[i % 2], inp=1000) for i in range(4)
    ]
    assert ingest_objects(ledger, october, source="app").stored == 4
    now = datetime(2026, 11, 20, tzinfo=UTC)

    def sums(report: MonthlyReport) -> tuple[int, ...]:
        return (
            report.total_nanos,
            sum(line.cost_nanos for line in report.by_flow),
            sum(line.cost_nanos for line in report.by_model),
            sum(line.cost_nanos for line in report.by_provider),
            sum(cost for _, cost in report.daily),
        )

    def built(late_after: int | None, late_id: str) -> tuple[MonthlyReport, int]:
        def store_late() -> None:
            late = call(late_id, "2026-10-20", "p", "billing", inp=1000, model="gpt-4o")
            assert ingest_objects(ledger, [late], source="app").stored == 1

        # not from inside the report's relink (SQLite: it holds the write lock)
        with after_statement(ledger.read_engine, late_after, store_late, skip=in_sqlite_write) as race:
            report = build_monthly_report(ledger, month="2026-10", tz=ZoneInfo("UTC"), now=now)
        return report, race.statements

    report, counted = built(None, "unused")
    assert len(set(sums(report))) == 1 and counted >= 5
    for k in range(1, counted + 1):
        report, _ = built(k, f"late-{k}")
        assert len(set(sums(report))) == 1, f"a late call after statement {k}: {sums(report)}"
