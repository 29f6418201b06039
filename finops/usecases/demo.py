"""``finops demo``: two full months of sample usage and this month so far, telling one story.

Everything is relative to the day it runs (the *anchor* month is the current UTC month),
and deterministic for a seed: the same hour of the same flow is generated identically on
every run, so running the demo again stores nothing twice. What a newcomer finds:

- nine flows with their own models, daily rhythm, weekday dips, cache use, batch and flex
  tiers, long-context calls, a few failed calls, and one internal model with no price;
- business outcomes linked to the calls they judge (by request ids), with a different
  success rate per flow: cost per successful outcome has something to divide;
- prompts that changed last month, each for a reason the prompt audit flags
  (``finops prompts top --month LAST``): a NEW prompt, a GROWING one (more traffic),
  a BLOATED one (a huge system prompt that defeats the cache);
- two incidents today: a retry loop that takes the search budget past 80% of its daily
  cap (a warning), and a review bot that takes code-review past its blocking cap, so
  ``finops check code-review`` denies. Their size is computed from what the budget's
  local day has already spent, so the percentages hold at any time of day.

The incidents' budgets are those of ``budgets/search.yaml`` and ``budgets/platform.yaml``
(tests/test_demo.py checks that they agree). Each incident is stored once per local day.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from finops.domain.budgets import Budget, BudgetMatch
from finops.domain.usage import parse_usage
from finops.errors import UsageError
from finops.storage.tables import usage_records
from finops.usecases.budgets import budget_state
from finops.usecases.ingest import IngestSummary, ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.outcomes import ingest_outcome_objects
from finops.usecases.pricing import price_record

__all__ = [
    "DEMO_SOURCE",
    "FLOWS",
    "INCIDENTS",
    "DemoLoad",
    "Incident",
    "demo_months",
    "demo_records",
    "load_demo",
]

DEMO_SOURCE = "demo"
_BATCH = 5000
#: a weekday's weight of business hours (08-19 local, 11 h) and of the other 13 h at 15%
_DAY_WEIGHT = 11 * 1.0 + 13 * 0.15


@dataclass(frozen=True)
class _Flow:
    name: str
    team: str
    model: str
    provider: str
    prompt: str
    sessions: float  # sessions (conversations, reviews, tasks) on a weekday
    calls: int  # at most this many calls per session
    input_tokens: int
    output_tokens: int
    cache_share: float = 0.0  # share of input read from cache
    write_share: float = 0.0  # share of input written to cache
    reasoning_share: float = 0.0
    tier: str = "standard"
    long_context_rate: float = 0.0
    max_tool_calls: int = 0
    #: outcomes: success and partial rates (None: this flow reports none), event, value
    success: float | None = None
    partial: float = 0.0
    event: str | None = None
    value_usd: str | None = None
    #: how the flow changed on the 1st of last month (the reason for a GROWING or BLOATED flag)
    since_last_month: tuple[tuple[str, Any], ...] = ()
    #: a prompt launched on this day of last month (NEW), its share of sessions and its size
    new_prompt: tuple[str, int, float, int, int] | None = None
    tags: tuple[tuple[str, str], ...] = ()


FLOWS: tuple[_Flow, ...] = (
    _Flow(
        "support-gpt-en",
        "support",
        "gpt-4o-2024-08-06",
        "openai",
        "support/answer@v3",
        sessions=20,
        calls=3,
        input_tokens=2400,
        output_tokens=350,
        cache_share=0.6,
        success=0.82,
        partial=0.06,
        event="ticket_resolved",
        value_usd="4.00",
        new_prompt=("support/escalate@v1", 10, 0.25, 5200, 500),
        tags=(("locale", "en"),),
    ),
    _Flow(
        "support-gpt-de",
        "support",
        "gpt-4o-mini",
        "openai",
        "support/answer-de@v3",
        sessions=8,
        calls=3,
        input_tokens=2200,
        output_tokens=320,
        cache_share=0.5,
        success=0.71,
        partial=0.08,
        event="ticket_resolved",
        value_usd="4.00",
        # Austria and Switzerland joined on the 1st of last month: 1.7 times the conversations
        since_last_month=(("sessions", 13.6),),
        tags=(("locale", "de"),),
    ),
    _Flow(
        "search-rerank",
        "search",
        "gemini-2.5-flash",
        "gcp.gemini",
        "search/rerank@v2",
        sessions=25,
        calls=1,
        input_tokens=900,
        output_tokens=40,
    ),
    _Flow(
        "search-summarize",
        "search",
        "gpt-4.1",
        "openai",
        "search/summarize@v1",
        sessions=16,
        calls=2,
        input_tokens=6000,
        output_tokens=450,
        cache_share=0.3,
        success=0.61,
        event="answer_accepted",
    ),
    _Flow(
        "code-review",
        "platform",
        "claude-sonnet-4-5-20250929",
        "anthropic",
        "code-review/review@v1",
        sessions=9,
        calls=2,
        input_tokens=18000,
        output_tokens=1400,
        cache_share=0.55,
        write_share=0.15,
        success=0.55,
        partial=0.15,
        event="suggestions_applied",
        # the style guide went into the system prompt, after the PR number: 1.7 times the input,
        # and a prefix that differs on every call, so the cache no longer hits
        since_last_month=(("input_tokens", 30600), ("cache_share", 0.04), ("write_share", 0.0)),
    ),
    _Flow(
        "doc-qa",
        "legal",
        "gemini-2.5-pro",
        "gcp.gemini",
        "legal/doc-qa@v2",
        sessions=5,
        calls=2,
        input_tokens=60000,
        output_tokens=900,
        long_context_rate=0.1,
        success=0.9,
        event="answer_accepted",
        value_usd="25.00",
    ),
    _Flow(
        "nightly-summaries",
        "data",
        "gpt-4.1-mini",
        "openai",
        "data/summary@v1",
        sessions=12,
        calls=1,
        input_tokens=5000,
        output_tokens=600,
        tier="batch",
    ),
    _Flow(
        "agent-planner",
        "platform",
        "o4-mini",
        "openai",
        "agent/plan@v3",
        sessions=6,
        calls=4,
        input_tokens=7000,
        output_tokens=2500,
        reasoning_share=0.7,
        tier="flex",
        max_tool_calls=4,
        success=0.45,
        partial=0.2,
        event="task_completed",
    ),
    _Flow(
        "intranet-bot",
        "it",
        "acme-llama-70b-internal",
        "self_hosted",
        "it/helpdesk@v1",
        sessions=8,
        calls=1,
        input_tokens=1500,
        output_tokens=300,
    ),
)


@dataclass(frozen=True)
class Incident:
    """Today's incident on a flow: calls until the budget's local day reaches ``target`` of its cap."""

    budget: Budget
    flow: str
    target: Decimal
    prompt: str
    input_tokens: tuple[int, int]  # each call's input, from .. to (the context grows)
    output_tokens: int
    what: str


INCIDENTS: tuple[Incident, ...] = (
    Incident(
        Budget(
            name="search-prod",
            match=BudgetMatch(flow="search-*", tags={"env": "prod", "team": "search"}),
            owner="U04SEARCH01",
            daily_cap_usd=Decimal(10),
            monthly_cap_usd=Decimal(300),
            thresholds=(Decimal("0.8"), Decimal("1.0")),
            on_breach="block",
        ),
        "search-summarize",
        Decimal("0.86"),
        "search/summarize@v1",
        (20_000, 60_000),
        400,
        "search-summarize retried empty answers in a loop, re-sending the whole conversation",
    ),
    Incident(
        Budget(
            flow="code-review",
            owner="@lee",
            daily_cap_usd=Decimal("20.50"),
            timezone="America/New_York",
            on_breach="block",
        ),
        "code-review",
        Decimal("1.3"),
        "code-review/review@v1",
        (90_000, 150_000),
        2000,
        "the review bot re-reviewed a 2,400-file refactoring PR on every push",
    ),
)


def demo_months(now: datetime) -> tuple[str, str, str]:
    """The month before last, last month and this month (UTC) of the demo loaded at ``now``."""
    this = now.astimezone(UTC).date().replace(day=1)
    last = (this - timedelta(days=1)).replace(day=1)
    before = (last - timedelta(days=1)).replace(day=1)
    return before.strftime("%Y-%m"), last.strftime("%Y-%m"), this.strftime("%Y-%m")


def _month_start(label: str) -> datetime:
    year, month = (int(x) for x in label.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


def _weight(flow: _Flow, hour: datetime) -> float:
    """The share of a weekday's sessions that start in ``hour`` (UTC; the day is European)."""
    local_hour = (hour.hour + 1) % 24
    if flow.tier == "batch":  # a nightly job, every night
        return 1 / 6 if local_hour < 6 else 0.0
    weight = (1.0 if 8 <= local_hour < 19 else 0.15) / _DAY_WEIGHT
    return weight * 0.35 if hour.weekday() >= 5 else weight


def _scaled(draw: float, mean: int) -> int:
    """Around ``mean``: from half of it to twice it, skewed like token counts are."""
    return max(1, int(mean * (0.5 + 1.5 * draw * draw)))


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


@dataclass
class _Batch:
    records: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)


def _hour(
    out: _Batch,
    rng: random.Random,
    flow: _Flow,
    hour: datetime,
    *,
    scale: float,
    anchor: str,
    launch: datetime,
) -> None:
    """The sessions of one flow in one hour, their calls, and the outcomes of the sessions.
    Timestamps are epoch seconds, as senders may send them."""
    weight = _weight(flow, hour)
    if not weight:
        return
    draw = rng.random
    expected = flow.sessions * weight * scale
    sessions = int(expected * (0.7 + 0.6 * draw()) + draw())
    tags = {"team": flow.team, "env": "prod", **dict(flow.tags)}
    stem = f"d{anchor}-{flow.name}-{hour:%m%d%H}"
    epoch = int(hour.timestamp())
    for s in range(sessions):
        calls = 1 + int(draw() * flow.calls)
        ts = epoch + int(draw() * (3600 - calls * 90))
        prompt, inp_mean, out_mean = flow.prompt, flow.input_tokens, flow.output_tokens
        if flow.new_prompt is not None and hour >= launch and draw() < flow.new_prompt[2]:
            prompt, _, _, inp_mean, out_mean = flow.new_prompt
        user, session = f"user-{int(draw() * 500)}", f"{stem}-s{s}"
        ids = []
        for c in range(calls):
            inp = _scaled(draw(), inp_mean)
            if flow.long_context_rate and draw() < flow.long_context_rate:
                inp = 200_001 + int(draw() * 200_000)
            outp = _scaled(draw(), out_mean)
            cached = int(inp * flow.cache_share * (0.6 + 0.4 * draw()))
            written = min(int(inp * flow.write_share * (0.5 + 0.5 * draw())), inp - cached)
            rid = f"{session}-{c}"
            ids.append(rid)
            out.records.append(
                {
                    "id": rid,
                    "ts": ts,
                    "provider": flow.provider,
                    "model": flow.model,
                    "flow": flow.name,
                    "tags": tags,
                    "input_tokens": inp,
                    "cached_input_tokens": cached,
                    "cache_write_tokens": written,
                    "output_tokens": outp,
                    "reasoning_tokens": int(outp * flow.reasoning_share),
                    "service_tier": flow.tier,
                    "status": "ok" if draw() > 0.02 else "error",
                    "prompt_id": prompt,
                    "user": user,
                    "session_id": session,
                    "latency_ms": 200 + int(draw() * 8800),
                    "tool_calls": int(draw() * (flow.max_tool_calls + 1)),
                }
            )
            ts += 20 + int(draw() * 70)
        if flow.success is not None:
            x = draw()
            status = (
                "success" if x < flow.success else "partial" if x < flow.success + flow.partial else "failure"
            )
            outcome: dict[str, Any] = {
                "id": f"{session}-outcome",
                "ts": ts + 60 + int(draw() * 1800),
                "flow": flow.name,
                "status": status,
                "request_ids": ids,
                "event": flow.event,
            }
            if flow.value_usd is not None and status == "success":
                outcome["value_usd"] = flow.value_usd
            out.outcomes.append(outcome)


def demo_records(
    *, now: datetime, start: datetime | None = None, seed: int = 7, scale: float = 1.0
) -> Iterator[_Batch]:
    """Per hour from ``start`` (default: the 1st of the month before last) to the last whole
    hour before ``now``: the usage records and outcomes senders would post (outcomes not
    after ``now``: they arrive after their calls)."""
    before, last, this = demo_months(now)
    start = start or _month_start(before)
    changed_from = _month_start(last)
    launch = [changed_from + timedelta(days=(f.new_prompt[1] if f.new_prompt else 1) - 1) for f in FLOWS]
    changed = [replace(f, **dict(f.since_last_month)) for f in FLOWS]
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    stamp = int(now.timestamp())
    anchor = this.replace("-", "")
    while hour < end:
        batch = _Batch()
        # one generator per hour: a later run regenerates the same hours identically
        rng = random.Random(f"{seed}/{hour.isoformat()}")  # noqa: S311 - sample data
        for flow, since, first in zip(FLOWS, changed, launch, strict=True):
            flow = since if hour >= changed_from else flow
            _hour(batch, rng, flow, hour, scale=scale, anchor=anchor, launch=first)
        batch.outcomes = [o for o in batch.outcomes if o["ts"] <= stamp]
        yield batch
        hour += timedelta(hours=1)


@dataclass
class DemoLoad:
    """What ``load_demo`` stored."""

    usage: IngestSummary
    outcomes: IngestSummary
    months: tuple[str, str, str]
    #: incident -> "stored" (today's calls added), "stored before" (an earlier run did), or why not
    incidents: list[tuple[Incident, str]]


def _refuse_other_demo(ledger: Ledger, anchor: str) -> None:
    u = usage_records.c
    with ledger.engine.connect() as conn:
        other = conn.scalar(
            select(u.record_id)
            .where(u.source == DEMO_SOURCE, ~u.record_id.startswith(f"d{anchor}-", autoescape=True))
            .limit(1)
        )
    if other is not None:
        url = ledger.engine.url.render_as_string(hide_password=True)
        raise UsageError(
            f"{url} already holds a demo loaded in another month (its story is told relative to the "
            "day it ran): load this one into a new database (--db demo.db) or delete that one"
        )


def _incident(
    ledger: Ledger, incident: Incident, now: datetime, *, seed: int, anchor: str
) -> tuple[list[dict[str, Any]], str]:
    """Today's calls of ``incident``: evenly spread over the last 90 minutes of its local day
    (and of the UTC day), until the day's spend reaches the target."""
    budget = incident.budget
    local_day, day_start, _ = budget.day(now)
    prefix = f"d{anchor}-{incident.flow}-incident-{local_day:%m%d}-"
    u = usage_records.c
    with ledger.engine.connect() as conn:
        if conn.scalar(
            select(u.id)
            .where(u.source == DEMO_SOURCE, u.record_id.startswith(prefix, autoescape=True))
            .limit(1)
        ):
            return [], "stored before"
        spent = budget_state(conn, budget, now).spend_nanos
    need = int(budget.daily_cap_nanos * incident.target) - spent
    if need <= 0:
        return [], "not needed: the budget was past its target already"
    flow = next(f for f in FLOWS if f.name == incident.flow)
    rng = random.Random(f"{seed}/{incident.flow}/incident/{local_day.isoformat()}")  # noqa: S311
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    begin = max(day_start, midnight, now - timedelta(minutes=90))
    lo, hi = incident.input_tokens
    records: list[dict[str, Any]] = []
    total = 0
    while total < need:
        n = len(records)
        record = {
            "id": f"{prefix}{n}",
            "ts": _iso(now),  # spread below, once the number of calls is known
            "provider": flow.provider,
            "model": flow.model,
            "flow": flow.name,
            "tags": {"team": flow.team, "env": "prod", **dict(flow.tags)},
            "input_tokens": lo + (hi - lo) * (n % 10) // 9,
            "output_tokens": _scaled(rng.random(), incident.output_tokens),
            "service_tier": flow.tier,
            "status": "ok",
            "prompt_id": incident.prompt,
            "session_id": f"{prefix}s{n // 10}",
            "latency_ms": rng.randrange(2000, 30000),
        }
        cost, _ = price_record(ledger.book, parse_usage(record, user_key=ledger.user_key))
        if cost is None:
            return [], f"not possible: {flow.model} has no price"
        total += cost
        records.append(record)
    step = (now - begin) / len(records)
    for n, record in enumerate(records):
        record["ts"] = _iso(begin + step * n)
    return records, "stored"


def load_demo(
    ledger: Ledger,
    *,
    now: datetime | None = None,
    days: int | None = None,
    scale: float = 1.0,
    seed: int = 7,
    incidents: Sequence[Incident] = INCIDENTS,
) -> DemoLoad:
    """Ingest the demo through the same paths as real usage and outcomes, in batches.

    ``days``: only the last N days instead of the two full months before this one.
    Raises ``UsageError`` when the database holds the demo of another month.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    months = demo_months(now)
    anchor = months[2].replace("-", "")
    _refuse_other_demo(ledger, anchor)
    start = None if days is None else now - timedelta(days=days)
    usage, outcomes = IngestSummary(), IngestSummary()
    records: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for batch in demo_records(now=now, start=start, seed=seed, scale=scale):
        records.extend(batch.records)
        pending.extend(batch.outcomes)
        if len(records) >= _BATCH:
            ingest_objects(ledger, records, source=DEMO_SOURCE, location="demo", summary=usage)
            records = []
    if records:
        ingest_objects(ledger, records, source=DEMO_SOURCE, location="demo", summary=usage)
    for i in range(0, len(pending), _BATCH):  # after the usage they link to
        ingest_outcome_objects(
            ledger, pending[i : i + _BATCH], source=DEMO_SOURCE, location="demo", summary=outcomes
        )
    done: list[tuple[Incident, str]] = []
    for incident in incidents:
        calls, result = _incident(ledger, incident, now, seed=seed, anchor=anchor)
        if calls:
            ingest_objects(ledger, calls, source=DEMO_SOURCE, location="demo", summary=usage)
        done.append((incident, result))
    return DemoLoad(usage, outcomes, months, done)
