"""Issue 10, item 3: a send that hangs past the timeout ("ambiguous") does not stay so for ever.

With a bot token the lookup decides (found in the channel: sent; not found: sent again once,
tagged); with an incoming webhook, which cannot read the channel, `finops alerts list --status
ambiguous` shows it and a person runs `finops alerts resend ID` or `finops alerts dismiss ID`.
The fake Slack hangs past the client's timeout, then either posts the message (Slack took it)
or answers 503 (it never reached the channel). Later runs are simulated through ``now``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.notify.slack import SlackSender
from finops.storage import alerts as outbox
from finops.storage.db import write_transaction
from finops.usecases.alerts import LEASE_MARGIN, deliver
from finops.usecases.ledger import Ledger
from tests.faults._outbox import CHANNEL, KEY
from tests.faults._outbox import queue_alert as queue
from tests.slack_fake import TOKEN, FakeSlack, ratelimit, server_error, slow
from tests.slack_fake import slack as slack_fixture  # noqa: F401 - the `slack` fixture

TAG = {"event_type": "finops_alert", "event_payload": {"dedupe_key": KEY}}


def queue_alert(ledger: Ledger) -> int:
    """One breach alert in the outbox, due now; its outbox id."""
    return queue(ledger, now_us=time.time_ns() // 1000)


def bot(slack: FakeSlack) -> SlackSender:
    return SlackSender(token=TOKEN, base_url=slack.base_url, timeout_s=1)


def webhook(slack: FakeSlack) -> SlackSender:
    return SlackSender(webhook_url=slack.webhook_url, timeout_s=1)


def after_the_lookup_window(extra: timedelta = timedelta(seconds=1)) -> datetime:
    return datetime.now(UTC) + LEASE_MARGIN + extra


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def row_of(ledger: Ledger) -> outbox.OutboxRow:
    with ledger.engine.connect() as conn:
        (row,) = outbox.outbox_rows(conn)
    return row


def lookups(slack: FakeSlack) -> int:
    return sum(r.method == "conversations.history" for r in slack.requests)


def test_a_hung_send_that_never_reached_the_channel_is_sent_again_once(
    ledger: Ledger, slack: FakeSlack
) -> None:
    queue_alert(ledger)
    slack.script(slow(2, then=server_error(503)), channel=CHANNEL)  # hangs past 1 s, posts nothing

    first = deliver(ledger, bot(slack))
    soon = deliver(ledger, bot(slack))  # Slack may still be holding it: not looked up yet
    wait_for(lambda: slack.posts(CHANNEL)[0].status == 503)
    later = deliver(ledger, bot(slack), now=after_the_lookup_window())
    again = deliver(ledger, bot(slack), now=after_the_lookup_window(timedelta(days=1)))

    assert first.ambiguous == 1 and "looks for it in #support-ai-costs" in first.problems[0]
    assert (soon.recovered, soon.sent, soon.ambiguous) == (0, 0, 0)
    assert (later.recovered, later.sent) == (1, 1)
    assert (again.recovered, again.sent, again.ambiguous) == (0, 0, 0)
    assert lookups(slack) == 1
    hung, resent = slack.posts(CHANNEL)
    assert (hung.status, resent.accepted) == (503, True)
    assert resent.metadata == TAG  # still tagged: a later lookup finds it
    assert row_of(ledger).status == "sent"


def test_a_hung_send_that_slack_posted_late_is_found_and_not_sent_again(
    ledger: Ledger, slack: FakeSlack
) -> None:
    queue_alert(ledger)
    slack.script(slow(2), channel=CHANNEL)  # hangs past 1 s, then posts it

    first = deliver(ledger, bot(slack))
    wait_for(lambda: slack.posts(CHANNEL)[0].accepted)
    later = deliver(ledger, bot(slack), now=after_the_lookup_window())
    again = deliver(ledger, bot(slack), now=after_the_lookup_window(timedelta(days=1)))

    assert first.ambiguous == 1
    assert (later.recovered, later.sent) == (1, 0)
    assert (again.recovered, again.sent) == (0, 0)
    (post,) = slack.posts(CHANNEL)
    assert post.accepted and post.metadata == TAG
    row = row_of(ledger)
    assert row.status == "sent" and row.slack_ts is not None
    assert "found in #support-ai-costs" in (row.last_error or "")


def test_with_a_webhook_a_person_lists_and_resends_an_ambiguous_alert(
    db_url: str, ledger: Ledger, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    alert_id = queue_alert(ledger)
    slack.script(slow(2, then=server_error(503)), channel=slack.webhook_channel)

    first = deliver(ledger, webhook(slack))
    wait_for(lambda: slack.posts()[0].status == 503)
    later = deliver(ledger, webhook(slack), now=after_the_lookup_window(timedelta(days=1)))

    assert first.ambiguous == 1 and f"`finops alerts resend {alert_id}`" in first.problems[0]
    assert (later.recovered, later.sent, later.ambiguous) == (0, 0, 0)  # nothing to look in: it waits
    assert row_of(ledger).status == "ambiguous" and len(slack.posts()) == 1
    monkeypatch.setenv("FINOPS_DATABASE_URL", db_url)
    monkeypatch.setenv("FINOPS_SLACK_WEBHOOK_URL", slack.webhook_url)
    monkeypatch.setenv("FINOPS_USER_HASH_SECRET", "test-secret")
    runner = CliRunner()
    listed = runner.invoke(app, ["alerts", "list", "--status", "ambiguous"])
    assert listed.exit_code == 0
    head, line = listed.stdout.strip().splitlines()
    assert head.split() == ["id", "key", "budget", "threshold", "state", "when", "error"]
    assert line.split()[0] == str(alert_id) and "ambiguous" in line
    assert f"`finops alerts resend {alert_id}`" in line and f"`finops alerts dismiss {alert_id}`" in line

    resent = runner.invoke(app, ["alerts", "resend", str(alert_id)])
    twice = runner.invoke(app, ["alerts", "resend", str(alert_id)])

    assert resent.exit_code == 0 and resent.stdout.strip() == f"alert {alert_id} sent"
    assert twice.exit_code == 2
    assert twice.stderr.strip().splitlines() == [
        f"error: alert {alert_id} is sent: only an ambiguous or failed alert can be re-sent or dismissed "
        "(see `finops alerts list --status ambiguous`)"
    ]
    hung, sent = slack.posts()
    assert (hung.status, sent.accepted, sent.metadata) == (503, True, TAG)
    assert row_of(ledger).status == "sent"
    assert runner.invoke(app, ["alerts", "list", "--status", "ambiguous"]).stdout == (
        "no ambiguous alerts in the outbox\n"
    )


def test_with_a_webhook_a_person_dismisses_an_alert_they_found_in_the_channel(
    db_url: str, ledger: Ledger, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    alert_id = queue_alert(ledger)
    slack.script(slow(2), channel=slack.webhook_channel)  # Slack posts it after the client gave up
    assert deliver(ledger, webhook(slack)).ambiguous == 1
    wait_for(lambda: slack.posts()[0].accepted)
    monkeypatch.setenv("FINOPS_DATABASE_URL", db_url)
    monkeypatch.setenv("FINOPS_USER_HASH_SECRET", "test-secret")
    runner = CliRunner()

    dismissed = runner.invoke(app, ["alerts", "dismiss", str(alert_id)])
    later = deliver(ledger, webhook(slack), now=after_the_lookup_window(timedelta(days=1)))
    missing = runner.invoke(app, ["alerts", "dismiss", "999"])

    assert dismissed.exit_code == 0 and dismissed.stdout.strip() == f"alert {alert_id} dismissed"
    assert (later.sent, later.ambiguous) == (0, 0)
    assert len(slack.posts()) == 1
    row = row_of(ledger)
    assert row.status == "dismissed" and "dismissed by `finops alerts dismiss`" in (row.last_error or "")
    assert missing.exit_code == 2 and "no alert 999 in the outbox" in missing.stderr


def test_with_a_webhook_a_claim_whose_deliverer_died_is_left_to_a_person(
    ledger: Ledger, slack: FakeSlack
) -> None:
    alert_id = queue_alert(ledger)
    now_us = time.time_ns() // 1000
    with write_transaction(ledger.engine) as conn:  # a deliverer claimed it, then died
        assert outbox.claim(conn, row_of(ledger), now_us=now_us, lease_until_us=now_us + 1_000_000)

    report = deliver(ledger, webhook(slack), now=datetime.now(UTC) + timedelta(seconds=2))

    assert (report.ambiguous, report.sent, report.recovered) == (1, 0, 0)
    assert f"`finops alerts resend {alert_id}`" in report.problems[0]
    assert row_of(ledger).status == "ambiguous" and slack.posts() == []


def test_a_rate_limit_with_a_fractional_retry_after_is_a_retry_not_ambiguous(
    ledger: Ledger, slack: FakeSlack
) -> None:
    """slack-sdk raises on a Retry-After of "1.5" after the 429 arrived, which read as an
    unanswered send: an alert Slack certainly refused was left ambiguous."""
    queue_alert(ledger)
    slack.script(ratelimit(retry_after=1.5), channel=CHANNEL)

    first = deliver(ledger, bot(slack))
    later = deliver(ledger, bot(slack), now=datetime.now(UTC) + timedelta(seconds=2))

    assert (first.retrying, first.ambiguous) == (1, 0)
    assert later.sent == 1
    assert [p.status for p in slack.posts(CHANNEL)] == [429, 200]
