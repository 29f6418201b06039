"""Budget alerts end to end: ledger, budget files, outbox, and the real slack-sdk against a fake Slack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.config.budget_spec import parse_budget
from finops.notify.slack import SlackSender
from finops.storage.tables import alert_outbox, budget_breaches, usage_records
from finops.usecases.alerts import deliver, evaluate_alerts
from finops.usecases.budgets import budgets_in_force
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger, write_jsonl
from tests.slack_fake import TOKEN, FakeSlack, error, ratelimit, server_error, slow_answer
from tests.slack_fake import slack as slack_fixture  # noqa: F401 - the `slack` fixture

NOW = datetime.now(UTC)


def spend(
    ledger: Ledger, flow: str, usd: int, *, prefix: str, at: datetime | None = None, n: int = 1
) -> None:
    """``n`` records on ``flow`` costing ``usd`` dollars in all (gpt-4o-mini output at $0.60/M)."""
    tokens = usd * 1_000_000 * 10 // 6 // n
    records = [
        {
            "id": f"{prefix}-{i}",
            "ts": (at or NOW).isoformat(),
            "model": "gpt-4o-mini",
            "flow": flow,
            "output_tokens": tokens,
            "requests": max(1, tokens // 9_000_000 + 1),
            "prompt_id": "p/answer@v1",
        }
        for i in range(n)
    ]
    summary = ingest_objects(ledger, records, source="test")
    assert summary.rejected == 0, summary.examples


def budgets_dir(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "budgets"
    folder.mkdir(exist_ok=True)
    (folder / "team.yaml").write_text(text)
    return folder


def sender(slack: FakeSlack, **kw: Any) -> SlackSender:
    return SlackSender(token=TOKEN, base_url=slack.base_url, timeout_s=kw.pop("timeout_s", 2.0), **kw)


BUDGET = """
budgets:
  - flow: support-gpt-en
    owner: "U0DANA123"
    slack_channel: "#support-ai-costs"
    daily_cap_usd: 100
    thresholds: [0.5, 0.8, 1.0]
    timezone: Europe/Berlin
    on_breach: block
"""


def test_the_highest_threshold_crossed_alerts_once_however_often_alerts_run(
    sqlite_ledger: Ledger, slack: FakeSlack
) -> None:
    budgets = [
        parse_budget(
            flow="support-gpt-en",
            owner="U0DANA123",
            slack_channel="#support-ai-costs",
            daily_cap_usd=100,
            timezone="Europe/Berlin",
            on_breach="block",
        )
    ]
    spend(sqlite_ledger, "support-gpt-en", 60, prefix="a")
    report = evaluate_alerts(sqlite_ledger, budgets, now=NOW)
    assert [str(m.threshold) for m in report.new_alerts] == ["0.5"]
    spend(sqlite_ledger, "support-gpt-en", 45, prefix="b")
    for _ in range(3):
        evaluate_alerts(sqlite_ledger, budgets, now=NOW)
        deliver(sqlite_ledger, sender(slack), now=NOW)
    posts = slack.posts("#support-ai-costs")
    assert [p.accepted for p in posts] == [True, True]  # 50%, then 100%: 80% was crossed in the jump
    texts = [p.text or "" for p in posts]
    assert "passed 50%" in texts[0] and "passed 100%" in texts[1]
    assert not any("80%" in t for t in texts)
    assert all("<@U0DANA123>" in json.dumps(p.blocks) for p in posts)
    with sqlite_ledger.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(budget_breaches)) == 3  # 80% recorded, silently
        statuses = [s for (s,) in conn.execute(select(alert_outbox.c.status))]
    assert statuses == ["sent"] * 2


def test_a_permanent_slack_error_is_recorded_and_other_alerts_still_go(
    sqlite_ledger: Ledger, slack: FakeSlack
) -> None:
    budgets = [
        parse_budget(flow="a", owner="@a", slack_channel="#gone", daily_cap_usd=10, thresholds=[1]),
        parse_budget(flow="b", owner="@b", slack_channel="#costs", daily_cap_usd=10, thresholds=[1]),
    ]
    spend(sqlite_ledger, "a", 11, prefix="a")
    spend(sqlite_ledger, "b", 11, prefix="b")
    slack.script(error("channel_not_found"), channel="#gone")
    evaluate_alerts(sqlite_ledger, budgets, now=NOW)
    report = deliver(sqlite_ledger, sender(slack), now=NOW)
    assert (report.sent, report.failed) == (1, 1)
    assert "channel_not_found" in report.problems[0] and TOKEN not in report.problems[0]
    assert [p.accepted for p in slack.posts("#costs")] == [True]
    with sqlite_ledger.engine.connect() as conn:
        row = conn.execute(
            select(alert_outbox.c.status, alert_outbox.c.last_error).where(alert_outbox.c.channel == "#gone")
        ).one()
    assert row.status == "failed" and "#gone" in row.last_error
    assert deliver(sqlite_ledger, sender(slack), now=NOW).failed == 0  # a failed alert is not retried forever


def test_rate_limited_alert_is_delivered_after_retry_after(sqlite_ledger: Ledger, slack: FakeSlack) -> None:
    budgets = [parse_budget(flow="a", owner="@a", slack_channel="#costs", daily_cap_usd=10, thresholds=[1])]
    spend(sqlite_ledger, "a", 11, prefix="a")
    slack.script(ratelimit(retry_after=2), channel="#costs")
    evaluate_alerts(sqlite_ledger, budgets, now=NOW)
    assert deliver(sqlite_ledger, sender(slack), now=NOW).sent == 1
    first, second = slack.posts("#costs")
    assert (first.status, second.accepted) == (429, True)
    assert second.received_at - first.received_at >= 2.0


def test_spend_dropping_back_after_a_reprice_sends_one_resolved_message(
    sqlite_ledger: Ledger, slack: FakeSlack
) -> None:
    budgets = [parse_budget(flow="a", owner="@a", slack_channel="#costs", daily_cap_usd=10, thresholds=[1])]
    spend(sqlite_ledger, "a", 11, prefix="a")
    evaluate_alerts(sqlite_ledger, budgets, now=NOW)
    with sqlite_ledger.engine.begin() as conn:  # a correction: the call was cheaper than priced
        conn.execute(usage_records.update().values(cost_nanos=1))
        from finops.storage.ledger import rebuild_rollups

        rebuild_rollups(conn)
    resolved = evaluate_alerts(sqlite_ledger, budgets, now=NOW).resolved
    assert len(resolved) == 1 and evaluate_alerts(sqlite_ledger, budgets, now=NOW).resolved == []
    deliver(sqlite_ledger, sender(slack), now=NOW)
    assert [("back below" in (p.text or "")) for p in slack.posts("#costs")] == [False, True]


def test_fan_out_guardrail_alerts_once_a_day(sqlite_ledger: Ledger) -> None:
    budgets = [parse_budget(flow="agent", owner="@a", daily_cap_usd=1000, max_tool_calls_per_request=8)]
    records = [
        {
            "id": f"t{i}",
            "ts": NOW.isoformat(),
            "model": "gpt-4o-mini",
            "flow": "agent",
            "input_tokens": 10,
            "tool_calls": 5 + i,
        }
        for i in range(6)
    ]
    ingest_objects(sqlite_ledger, records, source="test")
    first = evaluate_alerts(sqlite_ledger, budgets, now=NOW).new_alerts
    assert [m.kind for m in first] == ["fanout"] and "2 request(s) made more than 8" in (
        first[0].detail or ""
    )
    assert evaluate_alerts(sqlite_ledger, budgets, now=NOW).new_alerts == []


def test_eighty_breached_budgets_and_the_longest_flow_give_valid_payloads(
    sqlite_ledger: Ledger, slack: FakeSlack
) -> None:
    """Flows are at most 128 characters in the ledger; 4000-character names are rendered in test_slack."""
    long_flow = "f" * 128
    budgets = [
        parse_budget(flow=long_flow, owner="@o", slack_channel="#costs", daily_cap_usd=1, thresholds=[1])
    ]
    budgets += [
        parse_budget(flow=f"flow-{i}", owner="@o", slack_channel="#costs", daily_cap_usd=1, thresholds=[1])
        for i in range(80)
    ]
    spend(sqlite_ledger, long_flow, 2, prefix="long")
    for i in range(80):
        spend(sqlite_ledger, f"flow-{i}", 2, prefix=f"f{i}")
    assert len(evaluate_alerts(sqlite_ledger, budgets, now=NOW).new_alerts) == 81
    report = deliver(sqlite_ledger, sender(slack), now=NOW)
    assert report.sent == 81 and report.failed == 0
    assert all(p.accepted for p in slack.posts("#costs"))


# ------------------------------------------------------------------ processes, crashes, concurrency


def _env(url: str, folder: Path, slack: FakeSlack, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        FINOPS_DATABASE_URL=url,
        FINOPS_BUDGETS_DIR=str(folder),
        FINOPS_SLACK_BOT_TOKEN=TOKEN,
        FINOPS_SLACK_BASE_URL=slack.base_url,
        FINOPS_USER_HASH_SECRET="s",
        **more,
    )
    return env


def _run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_killed_right_after_the_breach_commit_the_alert_goes_out_after_restart_once(
    sqlite_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    ledger = make_ledger(sqlite_url)
    spend(ledger, "support-gpt-en", 120, prefix="x")
    ledger.close()
    env = _env(sqlite_url, budgets_dir(tmp_path, BUDGET), slack)
    killed = _run({**env, "FINOPS_FAILPOINTS": "after-breach-commit"}, "alerts", "run")
    assert killed.returncode == -9  # SIGKILL
    assert slack.posts() == []
    for _ in range(2):
        assert _run(env, "alerts", "run").returncode == 0
    assert len(slack.posts("#support-ai-costs")) == 1  # 100% once (50% and 80% crossed in the same jump)


def test_killed_mid_send_the_alert_is_found_in_slack_and_not_sent_twice(
    sqlite_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    ledger = make_ledger(sqlite_url)
    spend(ledger, "support-gpt-en", 60, prefix="x")  # one threshold: 50%
    ledger.close()
    env = _env(sqlite_url, budgets_dir(tmp_path, BUDGET), slack, FINOPS_SLACK_TIMEOUT_S="30")
    slack.script(slow_answer(20), channel="#support-ai-costs")  # Slack posts it, but answers late
    proc = subprocess.Popen(
        [sys.executable, "-m", "finops", "alerts", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not slack.posts() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    later = _env(sqlite_url, budgets_dir(tmp_path, BUDGET), slack)
    ledger = make_ledger(sqlite_url)
    # the claim's lease expired: it outlives the longest send with 30 s timeouts (7.5 minutes)
    report = deliver(ledger, sender(slack), now=datetime.now(UTC) + timedelta(minutes=10))
    assert (report.recovered, report.sent) == (1, 0)
    assert _run(later, "alerts", "run").returncode == 0
    with ledger.engine.connect() as conn:
        assert [s for (s,) in conn.execute(select(alert_outbox.c.status))] == ["sent"]
    ledger.close()
    assert len(slack.posts("#support-ai-costs")) == 1


@pytest.mark.postgres
def test_twenty_concurrent_batches_from_two_processes_cross_the_cap_with_one_alert_per_threshold(
    postgres_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    make_ledger(postgres_url).close()
    folder = budgets_dir(tmp_path, BUDGET)
    env = _env(postgres_url, folder, slack)
    script = (
        "import json, subprocess, sys\n"
        "for path in sys.argv[1:]:\n"
        "    for args in (['ingest', '-q', '--source', 'gw', path], ['alerts', 'run']):\n"
        "        cmd = [sys.executable, '-m', 'finops', *args]\n"
        "        done = subprocess.run(cmd, capture_output=True, text=True)\n"
        "        assert done.returncode == 0, done.stderr\n"
    )
    files = []
    for b in range(20):  # 20 batches of $6: $120 against a $100 cap
        path = tmp_path / f"batch{b}.jsonl"
        path.write_text(
            "\n".join(
                json.dumps(
                    {
                        "id": f"b{b}-{i}",
                        "ts": NOW.isoformat(),
                        "model": "gpt-4o-mini",
                        "flow": "support-gpt-en",
                        "output_tokens": 1_000_000,
                    }
                )
                for i in range(10)
            )
            + "\n"
        )
        files.append(str(path))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, *files[i::2]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err.decode()
    ledger = make_ledger(postgres_url)
    with ledger.engine.connect() as conn:
        assert conn.scalar(select(func.sum(usage_records.c.cost_nanos))) == 120_000_000_000
    ledger.close()
    posts = slack.posts("#support-ai-costs")
    assert len(posts) == 3 and all(p.accepted for p in posts)


# ------------------------------------------------------------------ the commands


def test_check_allows_then_denies_a_blocked_flow(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("FINOPS_BUDGETS_DIR", str(budgets_dir(tmp_path, BUDGET)))
    ledger = make_ledger(sqlite_url)
    spend(ledger, "support-gpt-en", 90, prefix="c")
    runner = CliRunner()
    allowed = runner.invoke(app, ["check", "support-gpt-en"])
    doc = json.loads(allowed.stdout)
    assert allowed.exit_code == 0 and doc["decision"] == "allow"
    assert (doc["spend_usd"], doc["cap_usd"], doc["remaining_usd"]) == (
        "90.000000000",
        "100.000000000",
        "10.000000000",
    )
    denied = runner.invoke(app, ["check", "support-gpt-en", "--estimate-usd", "12"])
    assert denied.exit_code == 4 and json.loads(denied.stdout)["decision"] == "deny"
    assert runner.invoke(app, ["check", "unbudgeted-flow"]).exit_code == 0
    spend(ledger, "support-gpt-en", 12, prefix="d")  # 102 of 100: exhausted
    assert runner.invoke(app, ["check", "support-gpt-en"]).exit_code == 4
    ledger.close()


def test_a_broken_budget_edit_keeps_the_last_good_version_in_force(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    folder = budgets_dir(tmp_path, BUDGET)
    assert [b.key for b in budgets_in_force(sqlite_ledger, folder).budgets] == ["support-gpt-en"]
    (folder / "team.yaml").write_text(BUDGET.replace("daily_cap_usd: 100", "daily_cap_usd: 100$"))
    found = budgets_in_force(sqlite_ledger, folder)
    assert [b.daily_cap_usd for b in found.budgets] == [100]
    assert any("team.yaml:6: daily_cap_usd must be a positive number" in m for m in found.messages)
    assert any("last good version" in m for m in found.messages)


def test_budgets_status_json_and_alerts_dry_run(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("FINOPS_BUDGETS_DIR", str(budgets_dir(tmp_path, BUDGET)))
    ledger = make_ledger(sqlite_url)
    spend(ledger, "support-gpt-en", 85, prefix="s")
    ledger.close()
    runner = CliRunner()
    result = runner.invoke(app, ["budgets", "status", "--format", "json"])
    (doc,) = json.loads(result.stdout)
    assert doc["state"] == "warning" and doc["thresholds_crossed"] == ["0.5", "0.8"]
    assert doc["top_models"][0]["model"] == "gpt-4o-mini" and doc["top_prompts"][0]["prompt"] == "p/answer@v1"
    dry = runner.invoke(app, ["alerts", "run", "--dry-run"])
    assert dry.exit_code == 0 and len(dry.stdout.strip().splitlines()) == 1  # 80%, not 50% and 80%
    with make_ledger(sqlite_url).engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(alert_outbox)) == 0  # nothing recorded


def test_cost_per_success_above_the_budgets_limit_alerts_once(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    from finops.usecases.outcomes import ingest_outcome_paths

    yesterday = NOW - timedelta(days=1)
    budgets = [parse_budget(flow="support", owner="@d", daily_cap_usd=1000, max_cost_per_success_usd="0.5")]
    spend(sqlite_ledger, "support", 3, prefix="y", at=yesterday.replace(hour=12, minute=0), n=3)
    wins = [
        {
            "id": f"w{i}",
            "ts": yesterday.replace(hour=13, minute=0).isoformat(),
            "status": "success",
            "request_ids": [f"y-{i}"],
        }
        for i in range(2)
    ]
    ingest_outcome_paths(sqlite_ledger, [write_jsonl(tmp_path / "o.jsonl", wins)])
    first = evaluate_alerts(sqlite_ledger, budgets, now=NOW).new_alerts
    assert [m.kind for m in first] == ["cost_per_success"]
    assert "$1.50 per successful outcome" in (first[0].detail or "")  # $3 / 2 successes > $0.50
    assert evaluate_alerts(sqlite_ledger, budgets, now=NOW).new_alerts == []


def test_a_month_exactly_at_its_cap_denies(sqlite_ledger: Ledger) -> None:
    from finops.usecases.budgets import check_flow

    budget = parse_budget(flow="m", owner="@o", daily_cap_usd=1000, monthly_cap_usd=6, on_breach="block")
    spend(sqlite_ledger, "m", 6, prefix="m")
    with sqlite_ledger.engine.connect() as conn:
        assert check_flow(conn, [budget], flow="m", tags={}, now=NOW).decision == "deny"


def test_a_report_whose_upload_is_retried_does_not_post_its_summary_twice(
    sqlite_ledger: Ledger, slack: FakeSlack
) -> None:
    from pydantic import SecretStr

    from finops.render.report_slack import report_summary_message
    from finops.usecases.reports import post_report
    from tests.report_fixture import sample_report

    sqlite_ledger.settings = sqlite_ledger.settings.model_copy(
        update={"slack_bot_token": SecretStr(TOKEN), "slack_base_url": slack.base_url}
    )
    slack.script_uploads(*[server_error(503)] * 4)  # the summary goes; the upload meets 5xx
    report = sample_report()
    first = post_report(
        sqlite_ledger,
        report.month,
        summary=report_summary_message(report),
        filename="r.md",
        content="# report",
        channel="#finance",
    )
    assert "not posted yet" in first
    with sqlite_ledger.engine.begin() as conn:  # the retry is due now
        conn.execute(alert_outbox.update().values(next_attempt_us=0))
    deliver(sqlite_ledger, sender(slack), now=datetime.now(UTC))
    assert len(slack.posts("#finance")) == 1 and len(slack.uploads) == 1
