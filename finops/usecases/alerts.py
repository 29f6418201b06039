"""Budget alerts: evaluate budgets into breach records + outbox rows, then deliver the outbox.

Evaluation and delivery are separate on purpose. Evaluation commits a breach
and its alert together (exactly once, by a unique constraint), so several
replicas may evaluate at once. Delivery claims a row before sending it, and a
row a dead process left claimed ("sending") is looked up in Slack before it is
sent again: delivered once, even across a crash mid-send.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from finops.domain.budgets import Budget, BudgetState, project
from finops.domain.money import format_usd, usd_to_nanos
from finops.errors import NotifyError
from finops.notify.messages import AlertMessage, SlackMessage, render_alert
from finops.notify.slack import Delivery
from finops.storage import alerts as outbox
from finops.storage.db import write_transaction
from finops.usecases.budgets import budget_state, drivers, fanout_count, successes
from finops.usecases.ledger import Ledger

__all__ = ["DeliveryReport", "EvaluationReport", "Sender", "deliver", "evaluate_alerts", "failpoint"]

#: A claim older than this belongs to a process that died mid-send.
CLAIM_LEASE = timedelta(minutes=2)
_RETRY_BACKOFF_S = (30, 120, 600, 1800, 3600)


def failpoint(name: str) -> None:
    """Die here, like ``kill -9``, when FINOPS_FAILPOINTS names this point (crash tests only)."""
    if name in os.environ.get("FINOPS_FAILPOINTS", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _local(t: datetime | None, budget: Budget) -> str | None:
    return None if t is None else f"{t.astimezone(budget.zone):%H:%M} {budget.timezone}"


def _message(state: BudgetState, kind: str, threshold: Decimal | None, **more: Any) -> AlertMessage:
    b = state.budget
    return AlertMessage(
        kind=kind,  # type: ignore[arg-type]
        budget_key=b.key,
        flow=b.flow or b.flow_pattern,
        owner=b.owner,
        channel=b.slack_channel,
        period=f"{state.local_day} ({b.timezone})",
        spend_nanos=state.spend_nanos,
        cap_nanos=state.cap_nanos,
        threshold=threshold,
        projected_nanos=state.projection.end_of_period_nanos,
        cap_hit_at_local=_local(state.projection.cap_hit_at, b),
        on_breach=b.on_breach,
        **more,
    )


def _payload(message: AlertMessage) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in dataclasses.asdict(message).items()}


def message_from_payload(payload: dict[str, Any]) -> AlertMessage:
    """The AlertMessage an outbox row carries."""
    data = dict(payload)
    if data.get("threshold") is not None:
        data["threshold"] = Decimal(data["threshold"])
    for name in ("top_models", "top_prompts"):
        data[name] = tuple((str(a), int(b)) for a, b in data.get(name) or ())
    return AlertMessage(**data)


@dataclass
class EvaluationReport:
    """What one evaluation pass recorded."""

    states: list[BudgetState] = field(default_factory=list)
    new_alerts: list[AlertMessage] = field(default_factory=list)
    resolved: list[AlertMessage] = field(default_factory=list)


def evaluate_alerts(ledger: Ledger, budgets: Iterable[Budget], *, now: datetime) -> EvaluationReport:
    """Record every threshold crossed (and dropped back) by each budget at ``now``; queue alerts."""
    report = EvaluationReport()
    now_us = _us(now)
    for budget in budgets:
        with ledger.engine.connect() as conn:
            state = budget_state(conn, budget, now)
            fanout = fanout_count(conn, budget, state.start, state.end)
            found = drivers(conn, budget, state.start, state.end) if state.crossed or fanout else None
        report.states.append(state)
        extra: dict[str, Any] = {}
        if found is not None:
            extra = {"top_models": found.models, "top_prompts": found.prompts}
        period = state.local_day.isoformat()
        with write_transaction(ledger.engine) as conn:
            # Another replica may have recorded a breach since we read: lock the open breaches,
            # then read the spend again, so a breach is never "resolved" on stale numbers.
            still_open = outbox.open_breaches(conn, budget_key=budget.key, kind="threshold", period=period)
            state = budget_state(conn, budget, now)
            for threshold in state.crossed:
                message = _message(state, "threshold", threshold, **extra)
                _breach(
                    conn,
                    budget,
                    message,
                    report,
                    kind="threshold",
                    period=period,
                    threshold=str(threshold),
                    spend_nanos=state.spend_nanos,
                    cap_nanos=state.cap_nanos,
                    now_us=now_us,
                )
            for recorded, breach_id in still_open.items():
                if Decimal(recorded) not in state.crossed:  # dropped back, e.g. after a re-price
                    message = _message(state, "resolved", Decimal(recorded))
                    if outbox.resolve_breach(
                        conn,
                        breach_id=breach_id,
                        channel=budget.slack_channel,
                        payload=_payload(message),
                        now_us=now_us,
                    ):
                        report.resolved.append(message)
            if state.month_label is not None and state.month_cap_nanos is not None:
                _, m_start, m_end = budget.month(now)
                month_state = dataclasses.replace(
                    state,
                    spend_nanos=state.month_spend_nanos or 0,
                    cap_nanos=state.month_cap_nanos,
                    projection=project(
                        spend_nanos=state.month_spend_nanos or 0,
                        cap_nanos=state.month_cap_nanos,
                        start=m_start,
                        end=m_end,
                        now=now,
                    ),
                )
                for threshold in state.month_crossed:
                    message = dataclasses.replace(
                        _message(month_state, "threshold", threshold), period=f"{state.month_label} (month)"
                    )
                    _breach(
                        conn,
                        budget,
                        message,
                        report,
                        kind="monthly",
                        period=state.month_label,
                        threshold=str(threshold),
                        spend_nanos=month_state.spend_nanos,
                        cap_nanos=month_state.cap_nanos,
                        now_us=now_us,
                    )
            if fanout and budget.max_tool_calls_per_request is not None:
                detail = (
                    f"{fanout:,} request(s) made more than {budget.max_tool_calls_per_request} "
                    "tool calls (max_tool_calls_per_request)"
                )
                message = _message(state, "fanout", None, detail=detail, **extra)
                _breach(
                    conn,
                    budget,
                    message,
                    report,
                    kind="fanout",
                    period=period,
                    threshold=str(budget.max_tool_calls_per_request),
                    spend_nanos=state.spend_nanos,
                    cap_nanos=state.cap_nanos,
                    now_us=now_us,
                )
            _cost_per_success(ledger, conn, budget, now, report)
        failpoint("after-breach-commit")
    return report


def _breach(
    conn: Any,
    budget: Budget,
    message: AlertMessage,
    report: EvaluationReport,
    *,
    kind: str,
    period: str,
    threshold: str,
    spend_nanos: int,
    cap_nanos: int,
    now_us: int,
) -> None:
    """Record a breach once (whoever else evaluates too) and queue its alert with it."""
    if outbox.record_breach(
        conn,
        budget_key=budget.key,
        kind=kind,
        period=period,
        threshold=threshold,
        spend_nanos=spend_nanos,
        cap_nanos=cap_nanos,
        channel=budget.slack_channel,
        payload=_payload(message),
        now_us=now_us,
    ):
        report.new_alerts.append(message)


def _cost_per_success(
    ledger: Ledger, conn: Any, budget: Budget, now: datetime, report: EvaluationReport
) -> None:
    """Yesterday (a whole local day) against ``max_cost_per_success_usd``; alerted once per day."""
    if budget.max_cost_per_success_usd is None:
        return
    day, _, _ = budget.day(now - timedelta(days=1))
    yesterday = budget_state(
        conn, budget, datetime.combine(day, datetime.min.time(), budget.zone) + timedelta(hours=12)
    )
    wins = successes(conn, budget, yesterday.start, yesterday.end)
    if not wins:
        return
    per_success = yesterday.spend_nanos // wins
    limit = usd_to_nanos(budget.max_cost_per_success_usd)
    if per_success <= limit:
        return
    detail = (
        f"${format_usd(per_success, cents=True)} per successful outcome on {day} "
        f"({wins:,} successes for ${format_usd(yesterday.spend_nanos, cents=True)}); "
        f"the limit is ${format_usd(limit, cents=True)} (max_cost_per_success_usd)"
    )
    message = dataclasses.replace(_message(yesterday, "cost_per_success", None), detail=detail)
    _breach(
        conn,
        budget,
        message,
        report,
        kind="cost_per_success",
        period=day.isoformat(),
        threshold=str(budget.max_cost_per_success_usd),
        spend_nanos=yesterday.spend_nanos,
        cap_nanos=limit * wins,
        now_us=_us(now),
    )


class Sender(Protocol):
    """What delivery needs from Slack (finops.notify.slack.SlackSender fits)."""

    def send(self, channel: str | None, message: SlackMessage) -> Delivery: ...

    def find_sent(self, channel: str | None, dedupe_key: str, since_us: int) -> str | None: ...

    def upload(self, channel: str | None, *, filename: str, content: str, title: str) -> Delivery: ...


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    ambiguous: int = 0
    recovered: int = 0
    problems: list[str] = field(default_factory=list)


def _recover(ledger: Ledger, sender: Sender, now_us: int, report: DeliveryReport) -> None:
    """Rows a dead deliverer left claimed: sent after all (found in Slack), or pending again."""
    with ledger.engine.connect() as conn:
        stale = outbox.stale_claims(conn, older_than_us=now_us - int(CLAIM_LEASE.total_seconds() * 1e6))
    for row in stale:
        since = (row.claimed_us or row.created_us) - 60_000_000
        try:
            ts = sender.find_sent(row.channel, row.dedupe_key, since)
        except NotifyError as exc:  # Slack could not be asked: we cannot know
            with write_transaction(ledger.engine) as conn:
                outbox.finish(
                    conn,
                    row.id,
                    status="ambiguous",
                    now_us=now_us,
                    claimed_us=row.claimed_us,
                    error=f"interrupted mid-send and Slack could not be checked: {exc}",
                )
            report.ambiguous += 1
            continue
        with write_transaction(ledger.engine) as conn:
            if ts is not None and row.payload.get("type") == "report":  # the summary went; the file may not
                outbox.finish(
                    conn,
                    row.id,
                    status="pending",
                    now_us=now_us,
                    slack_ts=ts,
                    next_attempt_us=now_us,
                    claimed_us=row.claimed_us,
                    error="summary found in Slack after an interrupted send; attaching the report again",
                )
            elif ts is not None:
                outbox.finish(
                    conn,
                    row.id,
                    status="sent",
                    now_us=now_us,
                    slack_ts=ts,
                    claimed_us=row.claimed_us,
                    error="found in Slack after an interrupted send",
                )
            else:
                outbox.finish(
                    conn,
                    row.id,
                    status="pending",
                    now_us=now_us,
                    next_attempt_us=now_us,
                    claimed_us=row.claimed_us,
                    error="interrupted before Slack posted it; sending again",
                )
        report.recovered += 1


def deliver(
    ledger: Ledger,
    sender: Sender,
    *,
    now: datetime | None = None,
    limit: int = 200,
    stop: Callable[[], bool] = lambda: False,
) -> DeliveryReport:
    """Send every due outbox row once; failures are recorded and never block the others.

    ``stop`` is asked before each row: a daemon shutting down leaves the rest pending (they are
    in the database; the next start sends them) instead of waiting on a slow Slack.
    """
    report = DeliveryReport()
    now_us = _us(now or datetime.now(UTC))
    _recover(ledger, sender, now_us, report)
    with ledger.engine.connect() as conn:
        rows = outbox.due_rows(conn, now_us=now_us, limit=limit)
    for row in rows:
        if stop():
            break
        with write_transaction(ledger.engine) as conn:
            if not outbox.claim(conn, row.id, now_us=now_us):
                continue  # another deliverer has it
        failpoint("after-claim")
        result = _send_all(sender, row)
        done_us = time.time_ns() // 1000
        with write_transaction(ledger.engine) as conn:
            if result.status == "retry":
                wait = result.retry_after_s or _RETRY_BACKOFF_S[min(row.attempts, len(_RETRY_BACKOFF_S) - 1)]
                outbox.finish(
                    conn,
                    row.id,
                    status="pending",
                    now_us=done_us,
                    error=result.detail,
                    slack_ts=result.slack_ts,  # a report's summary that went: not posted again
                    next_attempt_us=done_us + int(wait * 1_000_000),
                    claimed_us=now_us,
                )
            else:
                outbox.finish(
                    conn,
                    row.id,
                    status=result.status,
                    now_us=done_us,
                    error=None if result.status == "sent" else result.detail,
                    slack_ts=result.slack_ts,
                    claimed_us=now_us,
                )
        if result.status == "sent":
            report.sent += 1
        elif result.status == "failed":
            report.failed += 1
            report.problems.append(
                f"{row.dedupe_key} to {row.channel or '(default channel)'}: {result.detail}"
            )
        elif result.status == "ambiguous":
            report.ambiguous += 1
            report.problems.append(f"{row.dedupe_key}: {result.detail}")
        else:
            report.retrying += 1
    return report


def _send_report(sender: Sender, row: outbox.OutboxRow) -> Delivery:
    """A report: its summary message, then the full report as a file."""
    p = row.payload
    summary_ts = row.slack_ts  # set once the summary went: a retry only attaches the file
    if summary_ts is None:
        summary = SlackMessage(text=p["summary"]["text"], blocks=tuple(p["summary"]["blocks"]))
        sent = sender.send(row.channel, _tagged(summary, row.dedupe_key))
        if sent.status != "sent":
            return sent
        summary_ts = sent.slack_ts or "sent"
    uploaded = sender.upload(row.channel, filename=p["filename"], content=p["content"], title=p["title"])
    return dataclasses.replace(uploaded, slack_ts=summary_ts)


def _send_all(sender: Sender, row: outbox.OutboxRow) -> Delivery:
    """A long alert may be several Slack messages; the row is sent when all of them are."""
    if row.payload.get("type") == "report":
        return _send_report(sender, row)
    if row.payload.get("type") == "message":  # a digest: one ready-made message
        p = row.payload
        return sender.send(row.channel, _tagged(SlackMessage(p["text"], tuple(p["blocks"])), row.dedupe_key))
    message = message_from_payload(row.payload)
    last: Delivery | None = None
    for part in render_alert(message):
        last = sender.send(row.channel, _tagged(part, row.dedupe_key))
        if last.status != "sent":
            return last
    assert last is not None
    return last


def _tagged(message: SlackMessage, dedupe_key: str) -> SlackMessage:
    """Carry the outbox key in the message, so an interrupted send can be found in Slack later."""
    return dataclasses.replace(
        message, metadata={"event_type": "finops_alert", "event_payload": {"dedupe_key": dedupe_key}}
    )


def render_outbox(
    ledger: Ledger, *, statuses: Sequence[str] = ("pending",)
) -> list[tuple[outbox.OutboxRow, list[SlackMessage]]]:
    """The messages delivery would send (for --dry-run)."""
    with ledger.engine.connect() as conn:
        rows = [r for s in statuses for r in outbox.outbox_rows(conn, status=s, limit=1000)]
    return [
        (row, render_alert(message_from_payload(row.payload)))
        for row in rows
        if row.payload.get("type") not in ("report", "message")
    ]
