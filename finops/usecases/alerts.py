"""Budget alerts: evaluate budgets into breach records + outbox rows, then deliver the outbox.

Evaluation and delivery are separate on purpose. Evaluation commits a breach
and its alert together (exactly once, by a unique constraint), so several
replicas may evaluate at once.

Delivery claims a row before sending it, with the time of the claim and a lease
that outlives the longest send Slack's answers allow (every attempt timing out,
every Retry-After we honour) plus ``LEASE_MARGIN``; it is renewed before each
further Slack call of the row, and the sender starts no attempt that could end
after it. A row whose lease ended (its deliverer died) is looked up in the
channel, by the dedupe key each message carries in its metadata, before it is
sent again: delivered once, even across a crash mid-send. So is a send that got
no answer (``ambiguous``): with a bot token it is looked up once Slack has had
``LEASE_MARGIN`` to show it, and sent again only if it is not there; a webhook
cannot read the channel, so a person decides (``resend``, ``dismiss``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from finops.config.budget_files import BudgetProblem, BudgetSet
from finops.domain.budgets import Budget, BudgetState, project
from finops.domain.money import format_usd, usd_to_nanos
from finops.errors import NotifyError, UsageError
from finops.notify.messages import AlertMessage, SlackMessage, owner_user_id, render_alert
from finops.notify.slack import Delivery, OwnerLookup
from finops.storage import alerts as outbox
from finops.storage.db import write_transaction
from finops.usecases.budgets import budget_state, drivers, fanout_count, successes
from finops.usecases.ledger import Ledger

__all__ = [
    "LEASE_MARGIN",
    "DeliveryReport",
    "EvaluationReport",
    "Outgoing",
    "Sender",
    "deliver",
    "dismiss",
    "evaluate_alerts",
    "failpoint",
    "owner_problems",
    "resend",
    "would_send",
]

#: Added to every lease beyond the longest send: replicas' clocks may disagree this much, and
#: Slack may take this long to show a post it accepted. An unanswered send is looked up after it.
LEASE_MARGIN = timedelta(minutes=2)
_MARGIN_US = int(LEASE_MARGIN.total_seconds() * 1_000_000)
#: Slack calls a report's file upload may make (channel id, upload URL, the bytes, completion).
_UPLOAD_CALLS = 4
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


def evaluate_alerts(
    ledger: Ledger, budgets: Iterable[Budget], *, now: datetime, dry_run: bool = False
) -> EvaluationReport:
    """Record every threshold crossed (and dropped back) by each budget at ``now``; queue alerts.

    One alert per budget and period for the highest threshold newly crossed: a jump from 2% to
    106% says "passed 100%" once, and records 50% and 80% as crossed silently (never sent, by
    this or any other replica, now or later). Dropping back is one message for the highest
    threshold dropped below. ``dry_run`` records and queues nothing: ``new_alerts`` and
    ``resolved`` are what a real run at ``now`` would queue.
    """
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
        writing = ledger.engine.connect() if dry_run else write_transaction(ledger.engine)
        with writing as conn:
            # Another replica may have recorded a breach since we read: lock the open breaches,
            # then read the spend again, so a breach is never "resolved" on stale numbers.
            still_open = outbox.open_breaches(conn, budget_key=budget.key, kind="threshold", period=period)
            state = budget_state(conn, budget, now)
            crossing = _Crossing(conn, budget, report, dry_run=dry_run, now_us=now_us)
            top = max(state.crossed, default=None)
            crossing.thresholds(
                state.crossed,
                None if top is None else _message(state, "threshold", top, **extra),
                kind="threshold",
                period=period,
                spend_nanos=state.spend_nanos,
                cap_nanos=state.cap_nanos,
            )
            dropped = sorted(
                ((Decimal(recorded), breach_id) for recorded, breach_id in still_open.items()),
                reverse=True,
            )
            dropped = [(t, i) for t, i in dropped if t not in state.crossed]  # e.g. after a re-price
            for n, (threshold, breach_id) in enumerate(dropped):
                message = _message(state, "resolved", threshold)
                if dry_run:
                    if n == 0:
                        report.resolved.append(message)
                    continue
                if (
                    outbox.resolve_breach(
                        conn,
                        breach_id=breach_id,
                        channel=budget.slack_channel,
                        payload=_payload(message) if n == 0 else None,  # one message: the highest
                        now_us=now_us,
                    )
                    and n == 0
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
                top = max(state.month_crossed, default=None)
                crossing.thresholds(
                    state.month_crossed,
                    None
                    if top is None
                    else dataclasses.replace(
                        _message(month_state, "threshold", top), period=f"{state.month_label} (month)"
                    ),
                    kind="monthly",
                    period=state.month_label,
                    spend_nanos=month_state.spend_nanos,
                    cap_nanos=month_state.cap_nanos,
                )
            if fanout and budget.max_tool_calls_per_request is not None:
                detail = (
                    f"{fanout:,} request(s) made more than {budget.max_tool_calls_per_request} "
                    "tool calls (max_tool_calls_per_request)"
                )
                crossing.one(
                    _message(state, "fanout", None, detail=detail, **extra),
                    kind="fanout",
                    period=period,
                    threshold=str(budget.max_tool_calls_per_request),
                    spend_nanos=state.spend_nanos,
                    cap_nanos=state.cap_nanos,
                )
            _cost_per_success(crossing, conn, budget, now)
        if not dry_run:
            failpoint("after-breach-commit")
    return report


@dataclass
class _Crossing:
    """Records breaches of one budget in one transaction (or, in a dry run, says which it would)."""

    conn: Any
    budget: Budget
    report: EvaluationReport
    dry_run: bool
    now_us: int

    def thresholds(
        self,
        crossed: Sequence[Decimal],
        message: AlertMessage | None,
        *,
        kind: str,
        period: str,
        spend_nanos: int,
        cap_nanos: int,
    ) -> None:
        """Every crossed threshold is recorded; only the highest (``message``'s) can alert, once."""
        for threshold in sorted(crossed, reverse=True):
            self.one(
                message if threshold == max(crossed) else None,
                kind=kind,
                period=period,
                threshold=str(threshold),
                spend_nanos=spend_nanos,
                cap_nanos=cap_nanos,
            )

    def one(
        self,
        message: AlertMessage | None,
        *,
        kind: str,
        period: str,
        threshold: str,
        spend_nanos: int,
        cap_nanos: int,
    ) -> None:
        """Record a breach once (whoever else evaluates too) and queue its alert with it; without
        a message, record it silently."""
        key = {"budget_key": self.budget.key, "kind": kind, "period": period, "threshold": threshold}
        if self.dry_run:
            if message is not None and not outbox.breach_recorded(self.conn, **key):
                self.report.new_alerts.append(message)
            return
        if (
            outbox.record_breach(
                self.conn,
                **key,
                spend_nanos=spend_nanos,
                cap_nanos=cap_nanos,
                channel=self.budget.slack_channel,
                payload=None if message is None else _payload(message),
                now_us=self.now_us,
            )
            and message is not None
        ):
            self.report.new_alerts.append(message)


def _cost_per_success(crossing: _Crossing, conn: Any, budget: Budget, now: datetime) -> None:
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
    crossing.one(
        message,
        kind="cost_per_success",
        period=day.isoformat(),
        threshold=str(budget.max_cost_per_success_usd),
        spend_nanos=yesterday.spend_nanos,
        cap_nanos=limit * wins,
    )


class Sender(Protocol):
    """What delivery needs from Slack (finops.notify.slack.SlackSender fits)."""

    @property
    def max_call_s(self) -> float: ...

    @property
    def can_look_up(self) -> bool: ...

    def send(
        self, channel: str | None, message: SlackMessage, *, deadline: float | None = None
    ) -> Delivery: ...

    def find_sent(self, channel: str | None, dedupe_key: str, since_us: int) -> str | None: ...

    def look_up_owner(self, owner: str) -> OwnerLookup: ...

    def upload(
        self, channel: str | None, *, filename: str, content: str, title: str, deadline: float | None = None
    ) -> Delivery: ...


@dataclass
class DeliveryReport:
    """What one delivery run did; ``recovered`` counts rows a lookup in Slack settled."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0
    ambiguous: int = 0
    recovered: int = 0
    problems: list[str] = field(default_factory=list)


def _clock_us() -> int:
    return time.time_ns() // 1000


def _label(row: outbox.OutboxRow) -> str:
    """How problems name a row: ``alert 3 (breach:3)``; a report by its title (its key is internal)."""
    if row.payload.get("type") == "report":
        return f"report {row.id} ({row.payload.get('title') or row.payload.get('filename')})"
    return f"alert {row.id} ({row.dedupe_key})"


def _where(row: outbox.OutboxRow) -> str:
    return row.channel or "the alert's channel"


def _ask_a_person(row_id: int) -> str:
    return (
        f"a webhook cannot read the channel, so a person decides: `finops alerts resend {row_id}` "
        f"if it is not there, `finops alerts dismiss {row_id}` if it is"
    )


@dataclass
class _Claim:
    """One deliverer's hold on one row: claim number ``attempts``, leased until ``until_us``."""

    engine: Engine
    row_id: int
    attempts: int
    until_us: int

    def deadline(self, seconds: float) -> float | None:
        """When a Slack call that may take ``seconds`` must be over (epoch seconds), the lease
        renewed first if it would not cover the call; None when the claim expired or was taken
        over, and nothing more may be sent."""
        now_us = _clock_us()
        needed = now_us + int(seconds * 1_000_000) + _MARGIN_US
        if needed > self.until_us:
            with write_transaction(self.engine) as conn:
                if not outbox.renew(
                    conn, self.row_id, attempts=self.attempts, now_us=now_us, lease_until_us=needed
                ):
                    return None
            self.until_us = needed
        return (self.until_us - _MARGIN_US) / 1_000_000


_LOST = Delivery("retry", "the claim on this alert expired before it was sent; nothing was sent")
#: A claim covers its first Slack call if that call starts within this of the claim.
_FIRST_CALL_US = 5_000_000


def _claim(ledger: Ledger, row: outbox.OutboxRow, sender: Sender) -> _Claim | None:
    """Claim ``row`` at this moment (not when the run began) for as long as one send may take."""
    now_us = _clock_us()
    until_us = now_us + _FIRST_CALL_US + int(sender.max_call_s * 1_000_000) + _MARGIN_US
    with write_transaction(ledger.engine) as conn:
        if not outbox.claim(conn, row, now_us=now_us, lease_until_us=until_us):
            return None  # another deliverer has it
    return _Claim(ledger.engine, row.id, row.attempts + 1, until_us)


def _look_up(
    ledger: Ledger, sender: Sender, now_us: int, report: DeliveryReport, only: Collection[int] | None
) -> None:
    """Rows whose delivery is in doubt are checked in Slack before anything is sent again:
    claims whose lease expired (their deliverer died) and, with a bot token, unanswered sends
    once Slack has had ``LEASE_MARGIN`` to show them."""
    with ledger.engine.connect() as conn:
        rows = outbox.expired_claims(conn, now_us=now_us, ids=only)
        if sender.can_look_up:
            rows += outbox.due_lookups(conn, now_us=now_us, ids=only)
    for row in rows:
        _settle(ledger, sender, row, now_us, report)


def _settle(
    ledger: Ledger, sender: Sender, row: outbox.OutboxRow, now_us: int, report: DeliveryReport
) -> None:
    """Found in the channel: sent. Not found: pending again, sent once more (tagged as before)."""
    what = "an interrupted send" if row.status == "sending" else "an unanswered send"
    if not sender.can_look_up:  # an expired claim, with a webhook
        if _record(ledger, row, status="ambiguous", now_us=now_us, error=f"{what}: {_ask_a_person(row.id)}"):
            report.ambiguous += 1
            report.problems.append(f"{_label(row)}: {what} may have been posted; {_ask_a_person(row.id)}")
        return
    try:
        ts = sender.find_sent(row.channel, row.dedupe_key, row.created_us - 60_000_000)
    except NotifyError as exc:  # Slack could not be asked: we cannot know yet
        retry_s = _RETRY_BACKOFF_S[2]
        error = (
            f"{what}, and Slack could not be checked: {exc}; checked again in {retry_s // 60} minutes, "
            f"or decide yourself: `finops alerts resend {row.id}` or `finops alerts dismiss {row.id}`"
        )
        if _record(
            ledger,
            row,
            status="ambiguous",
            now_us=now_us,
            error=error,
            next_attempt_us=now_us + retry_s * 1_000_000,
        ):
            report.ambiguous += 1 if row.status == "sending" else 0
            report.problems.append(f"{_label(row)}: {error}")
        return
    if ts is not None and row.payload.get("type") == "report":  # the summary went; the file may not
        settled = _record(
            ledger,
            row,
            status="pending",
            now_us=now_us,
            slack_ts=ts,
            next_attempt_us=now_us,
            error=f"summary found in {_where(row)} after {what}; attaching the report again",
        )
    elif ts is not None:
        settled = _record(
            ledger,
            row,
            status="sent",
            now_us=now_us,
            slack_ts=ts,
            error=f"found in {_where(row)} after {what}",
        )
    else:
        settled = _record(
            ledger,
            row,
            status="pending",
            now_us=now_us,
            next_attempt_us=now_us,
            error=f"not found in {_where(row)} after {what}; sent again, tagged so a later check finds it",
        )
    report.recovered += 1 if settled else 0


def _record(ledger: Ledger, row: outbox.OutboxRow, **outcome: Any) -> bool:
    with write_transaction(ledger.engine) as conn:
        return outbox.settle(conn, row, **outcome)


def deliver(
    ledger: Ledger,
    sender: Sender,
    *,
    now: datetime | None = None,
    limit: int = 200,
    stop: Callable[[], bool] = lambda: False,
    only: Collection[int] | None = None,
) -> DeliveryReport:
    """Send every due outbox row once; failures are recorded and never block the others.

    ``now`` is when this run looks at the outbox (what is due, which leases have ended); each
    row is claimed with the time it is claimed, for as long as its send may take, so a long
    run never hands out claims that already look expired. ``stop`` is asked before each row:
    a daemon shutting down leaves the rest pending (they are in the database; the next start
    sends them) instead of waiting on a slow Slack. ``only`` limits the run to those rows.
    """
    report = DeliveryReport()
    now_us = _clock_us() if now is None else _us(now)
    _look_up(ledger, sender, now_us, report, only)
    with ledger.engine.connect() as conn:
        rows = outbox.due_rows(conn, now_us=now_us, limit=limit, ids=only)
    for row in rows:
        if stop():
            break
        # rendered (owners looked up in Slack) before the claim: the lease is for the send alone
        parts = (
            None
            if row.payload.get("type") == "report"
            else _render_row(row, sender, ledger.settings.public_url)
        )
        claim = _claim(ledger, row, sender)
        if claim is None:
            continue
        failpoint("after-claim")
        _finish(ledger, sender, row, claim, _send_all(sender, row, claim, parts), report)
    return report


def _finish(
    ledger: Ledger,
    sender: Sender,
    row: outbox.OutboxRow,
    claim: _Claim,
    result: Delivery,
    report: DeliveryReport,
) -> None:
    done_us = _clock_us()
    outcome: dict[str, Any] = {"status": result.status, "slack_ts": result.slack_ts}
    if result.status == "retry":
        wait = result.retry_after_s or _RETRY_BACKOFF_S[min(row.attempts, len(_RETRY_BACKOFF_S) - 1)]
        # a report's summary that went (slack_ts) is not posted again
        outcome.update(status="pending", error=result.detail, next_attempt_us=done_us + int(wait * 1_000_000))
    elif result.status == "ambiguous":
        then = (
            f"finops looks for it in {_where(row)} in {LEASE_MARGIN.seconds // 60} minutes "
            "and sends it again only if it is not there"
            if sender.can_look_up
            else _ask_a_person(row.id)
        )
        outcome.update(error=f"{result.detail}; {then}", next_attempt_us=done_us + _MARGIN_US)
    else:
        outcome.update(error=None if result.status == "sent" else result.detail)
    with write_transaction(ledger.engine) as conn:
        finished = outbox.finish(conn, row.id, attempts=claim.attempts, now_us=done_us, **outcome)
    if not finished:
        report.problems.append(
            f"{_label(row)}: its claim expired before the send ended ({result.detail}); "
            "the deliverer that took it over checks Slack before sending"
        )
    elif result.status == "sent":
        report.sent += 1
    elif result.status == "failed":
        report.failed += 1
        report.problems.append(f"{_label(row)} to {row.channel or 'the default channel'}: {result.detail}")
    elif result.status == "ambiguous":
        report.ambiguous += 1
        report.problems.append(f"{_label(row)}: {outcome['error']}")
    else:
        report.retrying += 1


def _decidable(conn: Connection, row_id: int) -> outbox.OutboxRow:
    row = outbox.outbox_row(conn, row_id)
    if row is None:
        raise UsageError(f"no alert {row_id} in the outbox: see `finops alerts list`")
    if row.status not in outbox.DECIDABLE:
        raise UsageError(
            f"alert {row_id} is {row.status}: only an ambiguous or failed alert can be re-sent or "
            "dismissed (see `finops alerts list --status ambiguous`)"
        )
    return row


def resend(ledger: Ledger, sender: Sender, row_id: int) -> DeliveryReport:
    """A person checked the channel and did not find an ambiguous (or failed) alert: send it
    again now, tagged as before.

    Raises:
        UsageError: no such alert, or it is not ambiguous or failed.
    """
    with write_transaction(ledger.engine) as conn:
        _decidable(conn, row_id)
        if not outbox.decide(
            conn, row_id, status="pending", now_us=_clock_us(), note="sent again by `finops alerts resend`"
        ):
            raise UsageError(f"alert {row_id} changed meanwhile: see `finops alerts list`")
    return deliver(ledger, sender, only=[row_id])


def dismiss(ledger: Ledger, row_id: int) -> None:
    """A person found an ambiguous alert in the channel (or gave up on a failed one): never send it.

    Raises:
        UsageError: no such alert, or it is not ambiguous or failed.
    """
    with write_transaction(ledger.engine) as conn:
        row = _decidable(conn, row_id)
        if not outbox.decide(
            conn,
            row_id,
            status="dismissed",
            now_us=_clock_us(),
            note=f"dismissed by `finops alerts dismiss` (was {row.status}: {row.last_error})",
        ):
            raise UsageError(f"alert {row_id} changed meanwhile: see `finops alerts list`")


def _send_report(sender: Sender, row: outbox.OutboxRow, claim: _Claim) -> Delivery:
    """A report: its summary message, then the full report as a file."""
    p = row.payload
    summary_ts = row.slack_ts  # set once the summary went: a retry only attaches the file
    if summary_ts is None:
        deadline = claim.deadline(sender.max_call_s)
        if deadline is None:
            return _LOST
        summary = SlackMessage(text=p["summary"]["text"], blocks=tuple(p["summary"]["blocks"]))
        sent = sender.send(row.channel, _tagged(summary, row.dedupe_key), deadline=deadline)
        if sent.status != "sent":
            return sent
        summary_ts = sent.slack_ts or "sent"
    deadline = claim.deadline(sender.max_call_s * _UPLOAD_CALLS)
    if deadline is None:
        return dataclasses.replace(_LOST, slack_ts=summary_ts)
    uploaded = sender.upload(
        row.channel, filename=p["filename"], content=p["content"], title=p["title"], deadline=deadline
    )
    return dataclasses.replace(uploaded, slack_ts=summary_ts)


def _send_all(
    sender: Sender, row: outbox.OutboxRow, claim: _Claim, parts: list[SlackMessage] | None
) -> Delivery:
    """A long alert may be several Slack messages (``parts``); the row is sent when all of them are."""
    if parts is None:  # a report
        return _send_report(sender, row, claim)
    last: Delivery | None = None
    for part in parts:
        deadline = claim.deadline(sender.max_call_s)
        if deadline is None:
            return _LOST
        last = sender.send(row.channel, _tagged(part, row.dedupe_key), deadline=deadline)
        if last.status != "sent":
            return last
    assert last is not None
    return last


def _tagged(message: SlackMessage, dedupe_key: str) -> SlackMessage:
    """Carry the outbox key in the message, so an interrupted send can be found in Slack later."""
    return dataclasses.replace(
        message, metadata={"event_type": "finops_alert", "event_payload": {"dedupe_key": dedupe_key}}
    )


def _owner_ids(sender: Sender | None, owners: Iterable[str]) -> dict[str, str]:
    """Owners as written -> the Slack user ids they name (those found; see SlackSender.look_up_owner)."""
    if sender is None:
        return {}
    found = {owner: sender.look_up_owner(owner).user_id for owner in set(owners)}
    return {owner: user_id for owner, user_id in found.items() if user_id is not None}


def _render_alert(message: AlertMessage, sender: Sender | None, public_url: str | None) -> list[SlackMessage]:
    return render_alert(message, _owner_ids(sender, [message.owner]), public_url=public_url)


def _render_row(row: outbox.OutboxRow, sender: Sender | None, public_url: str | None) -> list[SlackMessage]:
    """The messages an outbox row (not a report) is sent as: what delivery sends, and dry runs print."""
    if row.payload.get("type") == "message":  # a digest: one ready-made message
        return [SlackMessage(row.payload["text"], tuple(row.payload["blocks"]))]
    return _render_alert(message_from_payload(row.payload), sender, public_url)


@dataclass(frozen=True)
class Outgoing:
    """One Slack message a run would send: where, what, and the file attached after it (reports)."""

    channel: str | None
    message: SlackMessage | None
    file: str | None = None


def would_send(
    ledger: Ledger, budgets: Iterable[Budget], sender: Sender | None, *, now: datetime
) -> list[Outgoing]:
    """What ``finops alerts run`` would send at ``now``, rendered as it would send it (owners
    looked up with ``sender``, when there is one), recording and sending nothing: the outbox rows
    already due, then the alerts evaluation would queue. Nothing already sent is in it."""
    out: list[Outgoing] = []
    public_url = ledger.settings.public_url
    with ledger.engine.connect() as conn:
        rows = outbox.due_rows(conn, now_us=_us(now), limit=1000)
    for row in rows:
        if row.payload.get("type") == "report":
            p = row.payload
            if row.slack_ts is None:
                summary = SlackMessage(p["summary"]["text"], tuple(p["summary"]["blocks"]))
                out.append(Outgoing(row.channel, summary))
            out.append(Outgoing(row.channel, None, file=p["filename"]))
            continue
        out += [Outgoing(row.channel, part) for part in _render_row(row, sender, public_url)]
    report = evaluate_alerts(ledger, budgets, now=now, dry_run=True)
    for message in [*report.new_alerts, *report.resolved]:
        out += [Outgoing(message.channel, part) for part in _render_alert(message, sender, public_url)]
    return out


def owner_problems(found: BudgetSet, sender: Sender | None) -> list[BudgetProblem]:
    """A warning (``file:line``) for each budget whose owner an alert could not notify: not a
    Slack user id, and no bot token to look it up (``sender`` None: Slack is not configured, or
    an incoming webhook), or Slack knows no such member. Each owner is looked up once."""
    problems: list[BudgetProblem] = []
    for located in found.budgets:
        owner = located.budget.owner.strip()
        if owner_user_id(owner) is not None:
            continue
        problem: str | None
        if sender is None:
            problem = (
                "no Slack bot token to look it up (set FINOPS_SLACK_BOT_TOKEN, scope users:read, "
                "or write a user id like U0123ABC)"
            )
        else:
            problem = sender.look_up_owner(owner).problem
        if problem is not None:
            message = f"owner {owner!r} notifies nobody: {problem}"
            problems.append(BudgetProblem(located.file, located.line, message, "warning"))
    return problems
