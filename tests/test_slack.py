"""Slack delivery with the real slack-sdk against a fake Slack over HTTP, and Block Kit rendering."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
from decimal import Decimal
from typing import Any

import pytest

from finops.errors import ConfigError, NotifyError
from finops.notify.messages import AlertMessage, SlackMessage, render_alert, render_digest
from finops.notify.slack import Delivery, SlackSender
from tests.slack_fake import (
    WEBHOOK_PATH,
    FakeSlack,
    error,
    ok,
    ratelimit,
    server_error,
    slow,
    validate_message,
)
from tests.slack_fake import slack as slack_fixture  # noqa: F401 - provides the `slack` fixture

CHANNEL = "#support-ai-costs"
USD = 1_000_000_000


def alert(**changes: Any) -> AlertMessage:
    base = AlertMessage(
        kind="threshold",
        budget_key="support-gpt-en",
        flow="support-gpt-en",
        owner="U0123ABC",
        channel=CHANNEL,
        period="2026-11-03 (Europe/Berlin)",
        spend_nanos=205_123_456_789,
        cap_nanos=250 * USD,
        threshold=Decimal("0.8"),
        projected_nanos=310_404_000_000,
        cap_hit_at_local="16:40 Europe/Berlin",
        top_models=(("gpt-4o-2024-08-06", 150 * USD), ("gpt-4o-mini", 55 * USD)),
        top_prompts=(("support/answer@v3", 120 * USD),),
    )
    return dataclasses.replace(base, **changes)


def sender(slack: FakeSlack, **kw: Any) -> SlackSender:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("max_retries", 2)
    return SlackSender(token=kw.pop("token", slack.token), base_url=slack.base_url, **kw)


def one(message: AlertMessage) -> SlackMessage:
    (part,) = render_alert(message)
    return part


def all_text(message: SlackMessage) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


def assert_no_secret(delivery: Delivery, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in delivery.detail
        assert secret.rsplit("/", 1)[-1] not in delivery.detail


# ---------------------------------------------------------------- delivery


def test_alert_is_delivered_with_owner_mentioned(slack: FakeSlack) -> None:
    result = sender(slack).send(CHANNEL, one(alert()))

    assert result.status == "sent"
    assert result.slack_ts is not None
    (post,) = slack.posts(CHANNEL)
    assert post.accepted
    assert post.headers["Authorization"] == f"Bearer {slack.token}"
    assert post.text is not None and "<@U0123ABC>" in post.text
    assert post.blocks is not None and post.blocks[0]["type"] == "header"
    assert "<@U0123ABC>" in json.dumps(post.blocks)


def test_default_channel_is_used_when_the_budget_names_none(slack: FakeSlack) -> None:
    result = sender(slack, default_channel="#finops").send(None, one(alert(channel=None)))

    assert result.status == "sent"
    assert [p.channel for p in slack.posts()] == ["#finops"]


def test_no_channel_and_no_default_fails_clearly(slack: FakeSlack) -> None:
    result = sender(slack).send(None, one(alert(channel=None)))

    assert result.status == "failed"
    assert "FINOPS_SLACK_DEFAULT_CHANNEL" in result.detail
    assert slack.posts() == []


def test_neither_token_nor_webhook_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"FINOPS_SLACK_BOT_TOKEN.*FINOPS_SLACK_WEBHOOK_URL"):
        SlackSender(token="  ", webhook_url=None)


def test_rate_limited_post_is_sent_after_retry_after(slack: FakeSlack) -> None:
    slack.script(ratelimit(retry_after=2), ok(), channel=CHANNEL)

    result = sender(slack).send(CHANNEL, one(alert()))

    assert result.status == "sent"
    first, second = slack.posts(CHANNEL)
    assert first.status == 429 and second.accepted
    assert second.received_at - first.received_at >= 2.0


def test_rate_limit_longer_than_worth_waiting_is_handed_back(slack: FakeSlack) -> None:
    slack.always(ratelimit(retry_after=90))

    result = sender(slack, max_retries=3).send(CHANNEL, one(alert()))

    assert result.status == "retry"
    assert result.retry_after_s == 90
    assert len(slack.posts()) == 1  # not slept through, not re-sent


def test_server_error_then_ok_is_delivered(slack: FakeSlack) -> None:
    slack.script(server_error(500), ok())

    result = sender(slack).send(CHANNEL, one(alert()))

    assert result.status == "sent"
    assert [p.status for p in slack.posts()] == [500, 200]


def test_server_errors_that_persist_mean_retry_later(slack: FakeSlack) -> None:
    slack.always(server_error(503))

    result = sender(slack, max_retries=1).send(CHANNEL, one(alert()))

    assert result.status == "retry"
    assert "503" in result.detail
    assert len(slack.posts()) == 2


def test_channel_not_found_fails_with_what_to_do(slack: FakeSlack) -> None:
    slack.script(error("channel_not_found"), channel="#no-such-channel")

    result = sender(slack).send("#no-such-channel", one(alert()))

    assert result.status == "failed"
    assert result.detail.startswith("channel_not_found: ")
    assert "#no-such-channel" in result.detail and "invite" in result.detail
    assert_no_secret(result, slack.token)
    assert len(slack.posts()) == 1


def test_not_in_channel_says_to_invite_the_app(slack: FakeSlack) -> None:
    slack.script(error("not_in_channel"), channel=CHANNEL)

    result = sender(slack).send(CHANNEL, one(alert()))

    assert result.status == "failed"
    assert "invite it (/invite @finops in the channel)" in result.detail
    assert CHANNEL in result.detail


def test_rejected_token_fails_and_is_never_echoed(slack: FakeSlack) -> None:
    wrong = "xoxb-9999-8888-revokedTokenValue42"

    result = sender(slack, token=wrong).send(CHANNEL, one(alert()))

    assert result.status == "failed"
    assert result.detail.startswith("invalid_auth: ") and "FINOPS_SLACK_BOT_TOKEN" in result.detail
    assert_no_secret(result, wrong)


def test_read_timeout_after_sending_is_ambiguous_and_not_resent(slack: FakeSlack) -> None:
    slack.script(slow(3), channel=CHANNEL)

    started = time.monotonic()
    result = sender(slack, timeout_s=1, max_retries=3).send(CHANNEL, one(alert()))

    assert result.status == "ambiguous"
    assert "may have been posted" in result.detail and CHANNEL in result.detail
    assert time.monotonic() - started < 2.5
    assert len(slack.posts()) == 1


def test_connection_refused_is_retry_because_nothing_was_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = SlackSender(token="xoxb-1-2-abcdefgh", base_url=f"http://127.0.0.1:{port}/api/", timeout_s=1)

    result = closed.send(CHANNEL, one(alert()))

    assert result.status == "retry"
    assert "nothing was sent" in result.detail


def test_webhook_delivery(slack: FakeSlack) -> None:
    hook = SlackSender(webhook_url=slack.webhook_url, timeout_s=2)

    result = hook.send(None, one(alert()))

    assert result.status == "sent"
    (post,) = slack.posts(slack.webhook_channel)
    assert post.accepted and post.method == "webhook"
    assert post.text is not None and "<@U0123ABC>" in post.text


def test_removed_webhook_fails_and_is_never_echoed(slack: FakeSlack) -> None:
    revoked = slack.url("/services/T0FAKE000/B0FAKE000/revokedWebhookSecret987")

    result = SlackSender(webhook_url=revoked, timeout_s=2).send(None, one(alert()))

    assert result.status == "failed"
    assert "404 no_service" in result.detail and "FINOPS_SLACK_WEBHOOK_URL" in result.detail
    assert_no_secret(result, revoked)


def test_webhook_rate_limit_exhausted_is_retry(slack: FakeSlack) -> None:
    slack.always(ratelimit(retry_after=45))

    result = SlackSender(webhook_url=slack.webhook_url, timeout_s=2).send(None, one(alert()))

    assert result.status == "retry" and result.retry_after_s == 45


def test_no_secret_in_any_detail_or_log(slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bot = sender(slack, timeout_s=1, max_retries=0)
    hook = SlackSender(webhook_url=slack.webhook_url, timeout_s=1, max_retries=0)
    slack.script(
        error("channel_not_found"),
        error("invalid_blocks"),
        error("internal_error"),
        ratelimit(5),
        server_error(502),
        slow(2),
        ok(),
    )
    results = [bot.send(CHANNEL, one(alert())) for _ in range(7)]
    slack.script(
        error("no_service"),
        error("channel_is_archived"),
        ratelimit(5),
        server_error(500),
        slow(2),
        ok(),
        channel=slack.webhook_channel,
    )
    results += [hook.send(None, one(alert())) for _ in range(6)]

    assert {r.status for r in results} == {"sent", "failed", "retry", "ambiguous"}
    for result in results:
        assert_no_secret(result, slack.token, slack.webhook_url, WEBHOOK_PATH)
    assert "url: [redacted]" in caplog.text  # slack-sdk logs the webhook URL at debug: scrubbed
    for secret in (slack.token, WEBHOOK_PATH.rsplit("/", 1)[-1]):
        assert secret not in caplog.text
    assert "hooks" not in repr(hook) and slack.token not in repr(bot)


def test_find_sent_looks_up_an_interrupted_send_by_its_metadata(slack: FakeSlack) -> None:
    since_us = time.time_ns() // 1000 - 1_000_000
    tagged = dataclasses.replace(
        one(alert()), metadata={"event_type": "finops_alert", "event_payload": {"dedupe_key": "breach:7"}}
    )
    sent = sender(slack).send(CHANNEL, tagged)
    fresh = sender(slack)  # another process: knows the channel by name only

    assert fresh.find_sent(CHANNEL, "breach:7", since_us) == sent.slack_ts
    assert fresh.find_sent(CHANNEL, "breach:8", since_us) is None
    with pytest.raises(NotifyError, match="bot token"):
        SlackSender(webhook_url=slack.webhook_url).find_sent(None, "breach:7", since_us)


# ---------------------------------------------------------------- payloads Slack accepts


def test_four_thousand_character_flow_is_accepted(slack: FakeSlack) -> None:
    flow = ("support-<gpt>&" * 300)[:4000]
    long = alert(
        flow=flow,
        detail="x" * 5000,
        kind="fanout",
        threshold=None,
        top_models=tuple((f"model-{i}-" + "m" * 500, USD) for i in range(40)),
    )
    bot = sender(slack)

    results = [
        bot.send(CHANNEL, part)
        for kind in ("threshold", "resolved", "fanout", "cost_per_success")
        for part in render_alert(dataclasses.replace(long, kind=kind))
    ]

    assert [r.status for r in results] == ["sent"] * 4
    assert all(p.accepted for p in slack.posts())
    header = slack.posts()[0].blocks[0]["text"]["text"]  # type: ignore[index]
    assert len(header) <= 150 and header.endswith("of its daily budget")


def test_eighty_breached_budgets_fit_in_one_digest_message(slack: FakeSlack) -> None:
    alerts = [
        alert(budget_key=f"flow-{i:02d}", spend_nanos=(200 + i) * USD, owner=f"U{i:04d}ABC")
        for i in range(80)
    ]

    messages = render_digest(alerts, title="Budget alerts, 2026-11-03")

    assert len(messages) == 1
    assert sender(slack).send(CHANNEL, messages[0]).status == "sent"
    body = json.dumps(messages[0].blocks)
    assert all(f"flow-{i:02d}" in body for i in range(80))
    assert body.index("flow-79") < body.index("flow-00")  # worst first


def test_huge_digest_splits_into_valid_messages(slack: FakeSlack) -> None:
    alerts = [
        alert(flow=f"{i}-" + "f" * 4000, kind="fanout", detail="d&<>" * 2000, owner="@dana")
        for i in range(400)
    ]

    messages = render_digest(alerts, title="t" * 500)

    assert 1 < len(messages) < 10
    bot = sender(slack)
    assert [bot.send(CHANNEL, m).status for m in messages] == ["sent"] * len(messages)
    assert all(len(m.blocks) <= 50 and len(m.text) <= 3000 for m in messages)
    shown = sum(json.dumps(m.blocks).count(":twisted_rightwards_arrows:") for m in messages)
    assert shown == 400


def test_user_strings_are_escaped(slack: FakeSlack) -> None:
    message = one(alert(flow="a<b>&c", owner="<!channel>", top_models=(("<!here>", USD),), budget_key="k&<>"))

    text = all_text(message)
    assert "<!channel>" not in text and "<!here>" not in text and "a<b>" not in text
    assert "a&lt;b&gt;&amp;c" in text and "&lt;!here&gt;" in text and "&lt;!channel&gt;" in text
    assert sender(slack).send(CHANNEL, message).status == "sent"


def test_validation_of_the_fake_rejects_what_slack_rejects() -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}
    fields = {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}

    assert validate_message({"text": "x" * 40_001}) == ("msg_too_long", [])
    assert validate_message({"channel": "C1"}) == ("no_text", [])
    for block in (header, section, fields):
        assert validate_message({"text": "t", "blocks": [block]})[0] == "invalid_blocks"  # type: ignore[index]
    too_many = [{"type": "divider"}] * 51
    assert validate_message({"text": "t", "blocks": too_many})[0] == "invalid_blocks"  # type: ignore[index]


# ---------------------------------------------------------------- what the message says


def test_threshold_message_has_what_a_person_needs() -> None:
    text = all_text(one(alert(on_breach="block", threshold=Decimal("1.0"), spend_nanos=251 * USD)))

    assert ":no_entry: Blocked: support-gpt-en passed 100% of its daily budget" in text
    assert "`▓▓▓▓▓▓▓▓▓▓ 100%`" in text and "*$251.00* of $250.00" in text
    assert "*$310.40* by the end of the day" in text
    assert "gpt-4o-2024-08-06  $150.00" in text and "support/answer@v3  $120.00" in text
    assert "`finops spend --flow support-gpt-en --today --tz Europe/Berlin --by model`" in text
    assert "gateways calling `finops check` are now denied" in text
    assert "<@U0123ABC>" in text


def test_warning_bar_and_cap_time() -> None:
    message = one(alert())

    headline = message.blocks[0]["text"]["text"]
    assert headline == ":warning: Warning: support-gpt-en passed 80% of its daily budget"
    text = all_text(message)
    assert "`▓▓▓▓▓▓▓▓░░ 82%`" in text and "*$205.12*" in text
    assert "the cap is hit around *16:40 Europe/Berlin*" in text


def test_resolved_says_it_dropped_back() -> None:
    message = one(alert(kind="resolved", owner="@dana", on_breach="block", threshold=Decimal("1.0")))

    assert "dropped back below 100% of its daily budget" in message.text
    text = all_text(message)
    assert "@dana" in text and "<@dana>" not in text
    assert "allowed again" in text and "At this rate" not in text


def test_monthly_period_suggests_the_month() -> None:
    text = all_text(one(alert(period="2026-11 (month)")))

    assert "of its monthly budget" in text and "--month 2026-11" in text


def test_no_alerts_no_digest() -> None:
    assert render_digest([], title="nothing") == []
