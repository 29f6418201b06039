"""Issue 12, "alerts people act on": one message per jump with a severity per level, one rounding
rule for every percentage of a cap, the budget's name in the header, owners that are mentioned,
a dry run that prints what would be sent, a readable outbox, and a report that needs a channel."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.config.budget_spec import parse_budget
from finops.domain.budgets import percent_of, severity
from finops.notify.messages import SEVERITY_STYLE, AlertMessage, render_alert
from finops.render.digest_slack import digest_message
from finops.render.report_text import render_markdown
from finops.storage.tables import alert_outbox, budget_breaches
from finops.usecases.alerts import deliver, evaluate_alerts, would_send
from finops.usecases.audit.monthly import build_monthly_report
from finops.usecases.digests import digest_for
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger
from tests.slack_fake import FakeSlack, error
from tests.slack_fake import slack as slack_fixture  # noqa: F401 - the `slack` fixture
from tests.test_alerts import NOW, budgets_dir, sender, spend

USD = 1_000_000_000
BUDGET = parse_budget(flow="support", owner="U0DANA123", slack_channel="#costs", daily_cap_usd=100)


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
    raised = dataclasses.replace(BUDGET, **{"daily_cap_usd": Decimal(1000)})  # 10%: below every threshold
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
    budget = parse_budget(
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


# ------------------------------------------------------------------ owners who are notified


def _slack_env(url: str, folder: Path, slack: FakeSlack, **more: str) -> dict[str, str]:
    return {
        "FINOPS_DATABASE_URL": url,
        "FINOPS_BUDGETS_DIR": str(folder),
        "FINOPS_SLACK_BOT_TOKEN": slack.token,
        "FINOPS_SLACK_BASE_URL": slack.base_url,
        "FINOPS_USER_HASH_SECRET": "test-secret",
        **more,
    }


def _members(slack: FakeSlack, n: int = 250) -> None:
    """A workspace of ``n`` members (more than one users.list page), Dana last."""
    for i in range(n - 1):
        slack.add_user(f"U{i:05d}XX", f"user{i}", display_name=f"User {i}", email=f"user{i}@example.com")
    slack.add_user(
        "U0DANA123", "dana.s", display_name="dana", real_name="Dana Scully", email="dana@example.com"
    )


@pytest.mark.parametrize(
    "owner", ["@dana", "dana", "Dana Scully", "@dana.s", "dana@example.com", "U0DANA123"]
)
def test_an_owner_is_mentioned_by_user_id_however_it_is_written(
    sqlite_ledger: Ledger, slack: FakeSlack, owner: str
) -> None:
    _members(slack)
    budget = dataclasses.replace(BUDGET, **{"owner": owner})
    spend(sqlite_ledger, "support", 60, prefix="a")
    evaluate_alerts(sqlite_ledger, [budget], now=NOW)
    bot = sender(slack)
    assert deliver(sqlite_ledger, bot, now=NOW).sent == 1
    spend(sqlite_ledger, "support", 30, prefix="b")  # a second alert: the lookup is cached
    evaluate_alerts(sqlite_ledger, [budget], now=NOW)
    assert deliver(sqlite_ledger, bot, now=NOW).sent == 1

    posts = slack.posts("#costs")
    assert all(p.text and p.text.endswith(". <@U0DANA123>") for p in posts)
    assert all("owner <@U0DANA123>" in json.dumps(p.blocks) for p in posts)
    users_list = slack.calls("users.list")
    if owner.startswith("U0"):
        assert users_list == [] and slack.calls("users.lookupByEmail") == []
    elif "@example.com" in owner:
        assert users_list == [] and len(slack.calls("users.lookupByEmail")) == 1
    else:
        assert len(users_list) == 2  # two pages of 200, once: the second alert used the cache
        assert users_list[1].body.get("cursor") == "200"


@pytest.mark.parametrize(
    ("owner", "why"),
    [("@nobody", "users.list"), ("nobody@example.com", "users.lookupByEmail")],
)
def test_an_owner_slack_does_not_know_still_gets_the_message_saying_so(
    sqlite_ledger: Ledger, slack: FakeSlack, owner: str, why: str
) -> None:
    _members(slack, 3)
    budget = dataclasses.replace(BUDGET, **{"owner": owner})
    spend(sqlite_ledger, "support", 60, prefix="a")
    evaluate_alerts(sqlite_ledger, [budget], now=NOW)
    assert deliver(sqlite_ledger, sender(slack), now=NOW).sent == 1
    (post,) = slack.posts("#costs")
    assert post.text is not None
    assert post.text.endswith(f". {owner} (not found in Slack: nobody was notified)")
    assert f"owner {owner} (not found in Slack: nobody was notified)" in json.dumps(post.blocks)
    assert len(slack.calls(why)) == 1
    if why == "users.lookupByEmail":
        assert slack.calls(why)[0].error == "users_not_found"


def test_with_a_webhook_a_handle_cannot_be_looked_up(sqlite_ledger: Ledger, slack: FakeSlack) -> None:
    from finops.notify.slack import SlackSender

    budget = dataclasses.replace(BUDGET, **{"owner": "@dana"})
    spend(sqlite_ledger, "support", 60, prefix="a")
    evaluate_alerts(sqlite_ledger, [budget], now=NOW)
    assert deliver(sqlite_ledger, SlackSender(webhook_url=slack.webhook_url), now=NOW).sent == 1
    (post,) = slack.posts()
    assert post.text is not None and post.text.endswith(". @dana (not found in Slack: nobody was notified)")


def test_budgets_validate_warns_about_owners_that_notify_nobody(
    sqlite_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    _members(slack, 3)
    folder = budgets_dir(
        tmp_path,
        "budgets:\n"
        '  - {flow: a, owner: "@dana", daily_cap_usd: 1}\n'
        '  - {flow: b, owner: "@nobody", daily_cap_usd: 1}\n'
        '  - {flow: c, owner: "U0DANA123", daily_cap_usd: 1}\n'
        '  - {flow: d, owner: "dana@example.com", daily_cap_usd: 1}\n',
    )
    runner = CliRunner()
    with_token = runner.invoke(
        app, ["budgets", "validate", str(folder)], env=_slack_env(sqlite_url, folder, slack)
    )
    assert with_token.exit_code == 0, with_token.output
    assert with_token.stderr.splitlines() == [
        f"{folder}/team.yaml:3: warning: owner '@nobody' notifies nobody: no Slack member is called "
        "@nobody: write the owner's user id or email"
    ]
    assert with_token.stdout == "1 file, 4 budgets: 0 errors, 1 warning\n"

    no_token = runner.invoke(
        app,
        ["budgets", "validate", str(folder)],
        env={"FINOPS_SLACK_BOT_TOKEN": "", "FINOPS_SLACK_WEBHOOK_URL": slack.webhook_url},
    )
    assert no_token.exit_code == 0, no_token.output
    lines = no_token.stderr.splitlines()
    assert [line.split(": warning: ")[0] for line in lines] == [f"{folder}/team.yaml:{n}" for n in (2, 3, 5)]
    assert lines[0].endswith(
        "owner '@dana' notifies nobody: no Slack bot token to look it up (set FINOPS_SLACK_BOT_TOKEN, "
        "scope users:read, or write a user id like U0123ABC)"
    )


# ------------------------------------------------------------------ dry run and outbox


def test_dry_run_prints_exactly_what_the_run_then_sends_and_nothing_already_sent(
    sqlite_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    _members(slack, 3)
    folder = budgets_dir(
        tmp_path,
        'budgets:\n  - flow: support\n    owner: "@dana"\n    slack_channel: "#costs"\n'
        "    daily_cap_usd: 100\n",
    )
    env = _slack_env(sqlite_url, folder, slack)
    runner = CliRunner()
    ledger = make_ledger(sqlite_url)
    spend(ledger, "support", 55, prefix="a")
    assert runner.invoke(app, ["alerts", "run"], env=env).exit_code == 0  # 50% sent
    spend(ledger, "support", 40, prefix="b")  # 95%: 80% is due

    dry = runner.invoke(app, ["alerts", "run", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    (line,) = dry.stdout.splitlines()
    printed = json.loads(line)
    assert slack.posts("#costs")[1:] == []  # the dry run sent nothing
    assert count(ledger, alert_outbox) == 1  # and recorded nothing

    assert runner.invoke(app, ["alerts", "run"], env=env).exit_code == 0
    sent = slack.posts("#costs")[1]
    # the projection is of the moment each was rendered (cents apart); all else is the same message
    assert _unprojected(printed) == _unprojected(
        {"channel": "#costs", "text": sent.text, "blocks": sent.blocks}
    )
    assert "*Top models*" in line and "*Top prompts*" in line and "<@U0DANA123>" in line
    assert runner.invoke(app, ["alerts", "run", "--dry-run"], env=env).stdout == "nothing due\n"
    ledger.close()


def _unprojected(doc: dict[str, Any]) -> str:
    return re.sub(r"At this rate \*\$[\d,.]+\*", "At this rate *$…*", json.dumps(doc, ensure_ascii=False))


def test_at_the_same_moment_the_dry_run_is_the_message_sent(sqlite_ledger: Ledger, slack: FakeSlack) -> None:
    _members(slack, 3)
    budget = dataclasses.replace(BUDGET, **{"owner": "@dana"})
    spend(sqlite_ledger, "support", 95, prefix="a")
    bot = sender(slack)
    (would,) = would_send(sqlite_ledger, [budget], bot, now=NOW)
    evaluate_alerts(sqlite_ledger, [budget], now=NOW)
    deliver(sqlite_ledger, bot, now=NOW)
    (sent,) = slack.posts("#costs")
    assert would.message is not None and would.channel == "#costs"
    assert (would.message.text, list(would.message.blocks)) == (sent.text, sent.blocks)
    assert would_send(sqlite_ledger, [budget], bot, now=NOW) == []


def test_dry_run_prints_alerts_queued_but_not_yet_sent(
    sqlite_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    folder = budgets_dir(tmp_path, 'budgets:\n  - {flow: support, owner: "U0DANA123", daily_cap_usd: 100}\n')
    ledger = make_ledger(sqlite_url)
    spend(ledger, "support", 55, prefix="a")
    evaluate_alerts(ledger, [BUDGET], now=NOW)  # queued (say, Slack was down), not delivered
    runner = CliRunner()
    dry = runner.invoke(app, ["alerts", "run", "--dry-run"], env=_slack_env(sqlite_url, folder, slack))
    (line,) = dry.stdout.splitlines()
    assert json.loads(line)["text"].startswith(":information_source: Info: support passed 50%")
    ledger.close()


def test_dry_run_with_nothing_due_says_so(sqlite_url: str, tmp_path: Path) -> None:
    folder = budgets_dir(tmp_path, 'budgets:\n  - {flow: support, owner: "U0DANA123", daily_cap_usd: 100}\n')
    make_ledger(sqlite_url).close()
    env = {"FINOPS_DATABASE_URL": sqlite_url, "FINOPS_BUDGETS_DIR": str(folder), "FINOPS_SLACK_BOT_TOKEN": ""}
    dry = CliRunner().invoke(app, ["alerts", "run", "--dry-run"], env=env)
    assert (dry.exit_code, dry.stdout) == (0, "nothing due\n")


def test_alerts_list_is_a_table_and_says_when_the_outbox_is_empty(
    sqlite_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    runner = CliRunner()
    env = {"FINOPS_DATABASE_URL": sqlite_url}
    ledger = make_ledger(sqlite_url)
    empty = runner.invoke(app, ["alerts", "list"], env=env)
    assert (empty.exit_code, empty.stdout) == (0, "outbox empty\n")

    spend(ledger, "support", 106, prefix="a")
    evaluate_alerts(ledger, [dataclasses.replace(BUDGET, **{"slack_channel": "#gone"})], now=NOW)
    slack.script(error("channel_not_found"), channel="#gone")
    deliver(ledger, sender(slack), now=NOW)
    with ledger.engine.connect() as conn:
        created_us, last_error = conn.execute(
            select(alert_outbox.c.created_us, alert_outbox.c.last_error)
        ).one()
    when = f"{datetime.fromtimestamp(created_us / 1e6, UTC):%Y-%m-%d %H:%M} UTC"

    listed = runner.invoke(app, ["alerts", "list"], env=env)
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == [
        "id  key       budget   threshold  state   " + "when".ljust(len(when)) + "  error",
        f" 1  breach:1  support  100%       failed  {when}  {last_error}",
    ]
    assert "None" not in listed.stdout
    ledger.close()


# ------------------------------------------------------------------ the monthly report needs a channel


def test_report_post_slack_without_a_channel_is_an_error(sqlite_url: str, slack: FakeSlack) -> None:
    make_ledger(sqlite_url).close()
    env = {
        "FINOPS_DATABASE_URL": sqlite_url,
        "FINOPS_SLACK_BOT_TOKEN": slack.token,
        "FINOPS_SLACK_BASE_URL": slack.base_url,
        "FINOPS_DIGEST_CHANNEL": "",
        "FINOPS_SLACK_DEFAULT_CHANNEL": "",
    }
    args = ["report", "monthly", "--month", "2026-10", "--post-slack"]
    result = CliRunner().invoke(app, args, env=env)
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        "error: set FINOPS_DIGEST_CHANNEL or pass --channel\n",
    )
    assert slack.requests == []


def test_report_post_slack_says_report_whether_it_went_or_not(
    sqlite_url: str, slack: FakeSlack, tmp_path: Path
) -> None:
    make_ledger(sqlite_url).close()
    env = {
        "FINOPS_DATABASE_URL": sqlite_url,
        "FINOPS_SLACK_BOT_TOKEN": slack.token,
        "FINOPS_SLACK_BASE_URL": slack.base_url,
        "FINOPS_DIGEST_CHANNEL": "#finance",
    }
    args = ["report", "monthly", "--month", "2026-10", "--out", str(tmp_path / "r.md"), "--post-slack"]
    posted = CliRunner().invoke(app, args, env=env)
    assert posted.exit_code == 0, posted.output
    assert posted.stdout.splitlines()[-1] == "posted the 2026-10 report to Slack"
    assert [p.accepted for p in slack.posts("#finance")] == [True]
    json_then_posted = CliRunner().invoke(
        app, ["report", "monthly", "--month", "2026-10", "--format", "json", "--post-slack"], env=env
    )
    assert json_then_posted.stdout.endswith("}\nposted the 2026-10 report to Slack\n")

    slack.script(error("channel_not_found"), channel="#gone")
    failed = CliRunner().invoke(app, [*args, "--channel", "#gone"], env=env)
    last = failed.stdout.splitlines()[-1]
    assert last.startswith("the 2026-10 report was not posted yet: report ")
    assert "(finops token audit 2026-10) to #gone: channel_not_found" in last
    assert "alert" not in last and "report:2026-10" not in last


def test_a_monthly_cap_jump_is_one_message_too(sqlite_ledger: Ledger) -> None:
    budget = dataclasses.replace(BUDGET, **{"daily_cap_usd": Decimal(1000), "monthly_cap_usd": Decimal(100)})
    spend(sqlite_ledger, "support", 106, prefix="a")  # 10% of the day, 105% of the month
    report = evaluate_alerts(sqlite_ledger, [budget], now=NOW)
    assert [(m.period.endswith("(month)"), str(m.threshold)) for m in report.new_alerts] == [(True, "1.0")]
    assert count(sqlite_ledger, budget_breaches) == 3 and count(sqlite_ledger, alert_outbox) == 1
    assert evaluate_alerts(sqlite_ledger, [budget], now=NOW).new_alerts == []
