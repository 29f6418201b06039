"""Slack alerts and digests link to the dashboard when FINOPS_PUBLIC_URL is set, through the real
slack-sdk against the fake Slack; nothing changes without it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from finops.config.budget_spec import parse_budget
from finops.errors import ConfigError
from finops.notify.messages import dashboard_url
from finops.render.dashboard.layout import flow_href
from finops.render.digest_slack import digest_message
from finops.settings import load_settings
from finops.usecases.alerts import deliver, evaluate_alerts
from finops.usecases.digests import digest_for, queue_digest
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger
from tests.slack_fake import FakeSlack
from tests.slack_fake import slack as slack_fixture  # noqa: F401 - the `slack` fixture
from tests.test_alerts import sender, spend

NOW = datetime.now(UTC)
PUBLIC = "https://finops.example.com"
FLOW = "support bot été|<b>"
QUOTED = "support%20bot%20%C3%A9t%C3%A9%7C%3Cb%3E"


@pytest.fixture
def linked(sqlite_url: str) -> Iterator[Ledger]:
    ledger = make_ledger(sqlite_url, public_url=PUBLIC + "/")
    yield ledger
    ledger.close()


def _alert_posts(ledger: Ledger, slack: FakeSlack, flow: str) -> list[Any]:
    budgets = [parse_budget(flow=flow, owner="U0DANA123", slack_channel="#costs", daily_cap_usd=10)]
    spend(ledger, flow, 6, prefix="a")
    assert evaluate_alerts(ledger, budgets, now=NOW).new_alerts
    assert deliver(ledger, sender(slack), now=NOW).sent == 1
    posts = slack.posts("#costs")
    assert [p.accepted for p in posts] == [True]
    return posts


def _links(blocks: Any) -> list[tuple[str, str]]:
    """(url, text) of every mrkdwn link ``<url|text>`` in the blocks."""
    import re

    return re.findall(r"<(https?://[^|>]+)\|([^>]*)>", json.dumps(blocks, ensure_ascii=False))


def test_an_alert_links_to_the_flow_page_quoted(linked: Ledger, slack: FakeSlack) -> None:
    (post,) = _alert_posts(linked, slack, FLOW)
    assert _links(post.blocks) == [
        (f"{PUBLIC}/flows/{QUOTED}", "Open support bot été|&lt;b&gt; on the finops dashboard")
    ]
    assert urlsplit(_links(post.blocks)[0][0]).path == flow_href(FLOW)  # the page's own address


def test_without_a_public_url_an_alert_has_no_link(sqlite_ledger: Ledger, slack: FakeSlack) -> None:
    (post,) = _alert_posts(sqlite_ledger, slack, FLOW)
    assert _links(post.blocks) == []
    assert "dashboard" not in json.dumps(post.blocks)


def test_a_glob_budget_links_to_the_overview(linked: Ledger, slack: FakeSlack) -> None:
    budgets = [
        parse_budget(match={"flow": "search-*"}, owner="U0DANA123", slack_channel="#costs", daily_cap_usd=10)
    ]
    spend(linked, "search-eu", 6, prefix="g")
    evaluate_alerts(linked, budgets, now=NOW)
    deliver(linked, sender(slack), now=NOW)
    (post,) = slack.posts("#costs")
    assert _links(post.blocks) == [(f"{PUBLIC}/", "Open the finops dashboard")]


def _digest_post(ledger: Ledger, slack: FakeSlack, flow: str) -> Any:
    spend(ledger, flow, 3, prefix="d", at=NOW)
    tomorrow = NOW.date() + timedelta(days=1)  # the weekly digest on it covers today
    label, lines = digest_for(ledger, period="weekly", today=tomorrow, tz=ZoneInfo("UTC"))
    assert [line.flow for line in lines] == [flow]
    message = digest_message("weekly", label, lines, public_url=ledger.settings.public_url)
    assert queue_digest(ledger, period="weekly", label=label, message=message, channel="#digest")
    assert deliver(ledger, sender(slack)).sent == 1
    (post,) = slack.posts("#digest")
    assert post.accepted
    return post


def test_a_digest_links_each_flow_and_the_overview(linked: Ledger, slack: FakeSlack) -> None:
    post = _digest_post(linked, slack, FLOW)
    assert _links(post.blocks) == [
        (f"{PUBLIC}/flows/{QUOTED}", "support bot été|&lt;b&gt;"),
        (f"{PUBLIC}/", "Open the finops dashboard"),
    ]


def test_without_a_public_url_a_digest_has_no_link(sqlite_ledger: Ledger, slack: FakeSlack) -> None:
    post = _digest_post(sqlite_ledger, slack, "support")
    assert _links(post.blocks) == []
    assert "*support*: $3.00" in json.dumps(post.blocks)


def test_the_url_is_the_dashboards_own_path() -> None:
    for flow in ("plain", "a/b", "100%", "?x=1#y", "日本語 flow", "<script>alert(1)</script>"):
        url = dashboard_url(PUBLIC, flow)
        assert url == PUBLIC + flow_href(flow)
        assert not any(c in url for c in "<>| ")
    assert dashboard_url(PUBLIC + "/") == PUBLIC + "/"
    assert dashboard_url("https://example.com/finops/", "x") == "https://example.com/finops/flows/x"


@pytest.mark.parametrize(
    "value",
    [
        "ftp://finops.example.com",
        "finops.example.com",
        "https://",
        "https://a b.example",
        "javascript:alert(1)",
    ],
)
def test_a_public_url_that_is_not_http_is_a_one_line_settings_error(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FINOPS_PUBLIC_URL", value)
    with pytest.raises(ConfigError) as found:
        load_settings()
    message = str(found.value)
    assert message.startswith("FINOPS_PUBLIC_URL=") and "\n" not in message


def test_finops_run_refuses_a_bad_public_url_at_start(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "FINOPS_PUBLIC_URL": "ftp://finops.example.com", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "finops", "run", "--port", "0", "--db", f"sqlite:///{tmp_path / 'f.db'}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "FINOPS_PUBLIC_URL" in lines[0] and "http://" in lines[0], done.stderr
