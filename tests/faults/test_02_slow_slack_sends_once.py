"""Issue 10, item 2: a slow Slack send is posted once, however many deliverers run.

Two deliverers (threads, each with its own engine and its own slack-sdk client, as two daemons
or two `finops alerts run` would have) share one outbox on SQLite and PostgreSQL; the fake
Slack answers 429 with a Retry-After that keeps the first deliverer sending. Time beyond a few
seconds is simulated through ``deliver(now=...)``, which is how a run sees the clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from finops.notify.messages import AlertMessage, render_alert
from finops.notify.slack import SlackSender
from finops.storage.tables import alert_outbox
from finops.usecases.alerts import LEASE_MARGIN, DeliveryReport, deliver
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger
from tests.faults._outbox import CHANNEL, KEY
from tests.faults._outbox import queue_alert as queue
from tests.slack_fake import TOKEN, FakeSlack, ratelimit
from tests.slack_fake import slack as slack_fixture  # noqa: F401 - the `slack` fixture


@pytest.fixture
def ledgers(db_url: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Two deliverers' own connections to one database."""
    a, b = make_ledger(db_url), make_ledger(db_url)
    yield a, b
    a.close()
    b.close()


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def queue_alert(ledger: Ledger, *, at: datetime) -> None:
    """One breach alert waiting in the outbox since ``at`` (as evaluation queues it)."""
    queue(ledger, now_us=_us(at))


def sender(slack: FakeSlack, **kw: Any) -> SlackSender:
    """A deliverer's own client; the defaults are finops's (10 s timeout, 3 retries)."""
    return SlackSender(token=TOKEN, base_url=slack.base_url, **kw)


def in_thread(run: Callable[[], DeliveryReport]) -> tuple[threading.Thread, list[DeliveryReport]]:
    done: list[DeliveryReport] = []
    thread = threading.Thread(target=lambda: done.append(run()))
    thread.start()
    return thread, done


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def status(ledger: Ledger) -> list[str]:
    with ledger.engine.connect() as conn:
        return [s for (s,) in conn.execute(select(alert_outbox.c.status))]


def test_a_row_claimed_late_in_a_slow_run_is_not_taken_over(
    ledgers: tuple[Ledger, Ledger], slack: FakeSlack
) -> None:
    """The reported bug: the run began two minutes ago (its earlier rows were slow), so a claim
    stamped with the run's start already looked expired to another deliverer."""
    a_ledger, b_ledger = ledgers
    run_started = datetime.now(UTC) - timedelta(seconds=119)
    queue_alert(a_ledger, at=run_started)
    slack.script(ratelimit(retry_after=3), channel=CHANNEL)  # then ok
    a, a_done = in_thread(lambda: deliver(a_ledger, sender(slack), now=run_started))
    wait_for(lambda: len(slack.posts(CHANNEL)) == 1)  # A got the 429 and waits out Retry-After
    time.sleep(1.5)  # more than two minutes after A's run began

    b = deliver(b_ledger, sender(slack))
    a.join(timeout=30)

    assert (b.recovered, b.sent) == (0, 0)
    assert (a_done[0].sent, a_done[0].problems) == (1, [])
    assert [p.status for p in slack.posts(CHANNEL)] == [429, 200]
    assert status(a_ledger) == ["sent"]


def test_a_send_that_outlives_the_old_two_minute_lease_is_not_taken_over(
    ledgers: tuple[Ledger, Ledger], slack: FakeSlack
) -> None:
    """A send may take longer than two minutes (4 attempts of 10 s plus three Retry-After waits of
    up to 30 s): another deliverer looking 121 s after the claim must leave it alone."""
    a_ledger, b_ledger = ledgers
    queue_alert(a_ledger, at=datetime.now(UTC))
    slack.script(ratelimit(retry_after=3), channel=CHANNEL)
    a, a_done = in_thread(lambda: deliver(a_ledger, sender(slack)))
    wait_for(lambda: len(slack.posts(CHANNEL)) == 1)
    with b_ledger.engine.connect() as conn:
        claimed = conn.execute(select(alert_outbox)).one()

    b = deliver(b_ledger, sender(slack), now=datetime.now(UTC) + timedelta(seconds=121))
    a.join(timeout=30)

    assert (b.recovered, b.sent) == (0, 0)
    assert a_done[0].sent == 1
    assert [p.status for p in slack.posts(CHANNEL)] == [429, 200]
    slowest = sender(slack).max_call_s  # the longest one send may take
    assert slowest > 120 and claimed.status == "sending"
    assert claimed.lease_until_us - claimed.claimed_us >= int((slowest + LEASE_MARGIN.total_seconds()) * 1e6)
    assert status(a_ledger) == ["sent"]


def test_a_sender_starts_no_attempt_its_lease_would_not_cover(slack: FakeSlack) -> None:
    """The lease is kept from the sending side too: a Retry-After that would run past the deadline
    is handed back (nothing sent) instead of slept through and sent after the lease ran out."""
    (part,) = render_alert(
        AlertMessage(
            kind="threshold",
            budget_key="b",
            flow="b",
            owner="@o",
            channel=CHANNEL,
            period="2026-11-03 (UTC)",
            spend_nanos=1,
            cap_nanos=2,
            threshold=Decimal("0.5"),
        )
    )
    slack.script(ratelimit(retry_after=3), channel=CHANNEL)
    bot = sender(slack, timeout_s=1)

    late = bot.send(CHANNEL, part, deadline=time.time() + 4)  # 3 s wait + a 2 s attempt: too late
    expired = bot.send(CHANNEL, part, deadline=time.time() - 1)
    in_time = bot.send(CHANNEL, part, deadline=time.time() + 10)

    assert (late.status, late.retry_after_s) == ("retry", 3)
    assert expired.status == "retry" and "nothing was sent" in expired.detail
    assert in_time.status == "sent"
    assert [p.status for p in slack.posts(CHANNEL)] == [429, 200]


def test_a_deliverer_that_died_holding_a_claim_is_looked_up_before_a_resend(
    db_url: str, ledger: Ledger, slack: FakeSlack, tmp_path: Path
) -> None:
    queue_alert(ledger, at=datetime.now(UTC))
    slack.channel_id(CHANNEL)  # the channel exists in the workspace
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        FINOPS_DATABASE_URL=db_url,
        FINOPS_BUDGETS_DIR=str(tmp_path),
        FINOPS_SLACK_BOT_TOKEN=TOKEN,
        FINOPS_SLACK_BASE_URL=slack.base_url,
        FINOPS_USER_HASH_SECRET="test-secret",
        FINOPS_FAILPOINTS="after-claim",
    )
    killed = subprocess.run(
        [sys.executable, "-m", "finops", "alerts", "run"], env=env, capture_output=True, timeout=120
    )
    assert killed.returncode == -9 and status(ledger) == ["sending"]
    with ledger.engine.connect() as conn:
        lease_until_us = conn.execute(select(alert_outbox.c.lease_until_us)).scalar_one()
    lease_end = datetime.fromtimestamp(lease_until_us / 1e6, UTC)

    early = deliver(ledger, sender(slack), now=lease_end - timedelta(seconds=1))
    late = deliver(ledger, sender(slack), now=lease_end + timedelta(seconds=1))
    again = deliver(ledger, sender(slack), now=lease_end + timedelta(hours=1))

    assert (early.recovered, early.sent) == (0, 0)
    assert (late.recovered, late.sent) == (1, 1)  # not in the channel: sent, once
    assert (again.recovered, again.sent) == (0, 0)
    lookups = [r for r in slack.requests if r.method == "conversations.history"]
    assert len(lookups) == 1
    (post,) = slack.posts(CHANNEL)
    assert post.accepted and post.metadata == {
        "event_type": "finops_alert",
        "event_payload": {"dedupe_key": KEY},
    }
    assert status(ledger) == ["sent"]
