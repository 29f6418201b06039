"""Admission control: reserve before an LLM call, settle after it, so a blocking cap holds under
any concurrency.

``reserve`` decides in one write transaction that first locks every covering budget
(storage/reservations.py): spend so far + open holds + this estimate must not pass a blocking
cap (daily or monthly; reaching it exactly is allowed). An allowed reserve leaves a hold that
counts against every covering budget until the call's usage settles it (the actual cost
replaces it), the client releases it, or it lapses at its expiry. A decision that cannot be
made (no estimate for an unpriced model on a blocking budget, a database error) is never allow.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from finops.domain.budgets import Budget, BudgetState
from finops.domain.money import usd_to_nanos
from finops.domain.usage import RecordError, UsageRecord, parse_usage
from finops.errors import UsageError
from finops.storage.db import write_transaction
from finops.storage.reservations import (
    close_reservation,
    held_by_budget,
    hold_counts,
    insert_reservation,
    lock_budgets,
    mark_lapsed,
    reservation,
    reservation_for_request,
)
from finops.usecases.budgets import budget_state
from finops.usecases.ledger import Ledger
from finops.usecases.pricing import price_record

__all__ = [
    "Estimate",
    "ReserveRequest",
    "ReserveResult",
    "estimate_cost",
    "lapse_holds",
    "release",
    "reserve",
]

DEFAULT_TTL_S = 120
MAX_TTL_S = 24 * 3600


@dataclass(frozen=True)
class ReserveRequest:
    """What a caller asks to hold: an explicit estimate, or the call's worst case to price."""

    flow: str
    tags: Mapping[str, str] = field(default_factory=dict)
    estimate_usd: Decimal | None = None
    model: str | None = None
    provider: str | None = None
    input_tokens: int | None = None
    prompt: str | None = None
    max_output_tokens: int | None = None
    service_tier: str = "standard"
    ttl_s: int = DEFAULT_TTL_S
    request_id: str | None = None


@dataclass(frozen=True)
class Estimate:
    """The money to hold; ``None`` nanos when the model has no price (``why`` says so)."""

    nanos: int | None
    how: str  # explicit | priced | unpriced


@dataclass(frozen=True)
class ReserveResult:
    decision: str  # allow | deny
    reason: str
    reservation_id: str | None
    expires_at: datetime | None
    estimate: Estimate
    states: tuple[BudgetState, ...]
    held: Mapping[str, int]  # per budget key, this hold included when allowed
    replayed: bool = False  # the same request_id was answered before: this is that answer

    @property
    def allow(self) -> bool:
        return self.decision == "allow"


def estimate_cost(ledger: Ledger, req: ReserveRequest, *, now: datetime) -> Estimate:
    """An explicit estimate as given; else the worst case of the call at the price in force:
    ``input_tokens`` (or the prompt counted with tiktoken) uncached, ``max_output_tokens`` all
    billed at the dearer of the output and reasoning prices."""
    if req.estimate_usd is not None:
        if not req.estimate_usd.is_finite() or req.estimate_usd < 0 or req.estimate_usd > 10**6:
            raise UsageError("estimate_usd must be an amount of dollars between 0 and 1,000,000")
        return Estimate(usd_to_nanos(req.estimate_usd), "explicit")
    if not req.model or req.max_output_tokens is None or (req.input_tokens is None and req.prompt is None):
        raise UsageError(
            "say what to hold: estimate_usd, or model with input_tokens (or prompt) and max_output_tokens"
        )
    inputs = req.input_tokens
    if inputs is None:
        assert req.prompt is not None
        inputs = ledger.token_counter.count(req.prompt, req.model).tokens
    worst = None
    for reasoning in (0, req.max_output_tokens):
        record = _record(req, inputs, reasoning, now)
        cost, _ = price_record(ledger.book, record)
        if cost is None:
            return Estimate(None, "unpriced")
        worst = cost if worst is None else max(worst, cost)
    assert worst is not None
    return Estimate(worst, "priced")


def _record(req: ReserveRequest, inputs: int, reasoning: int, now: datetime) -> UsageRecord:
    try:
        return parse_usage(
            {
                "id": "estimate",
                "ts": now.isoformat(),
                "model": req.model,
                "provider": req.provider,
                "input_tokens": inputs,
                "output_tokens": req.max_output_tokens,
                "reasoning_tokens": reasoning,
                "service_tier": req.service_tier,
            }
        )
    except RecordError as exc:
        raise UsageError(exc.reason) from None


def _blocked(state: BudgetState, held: int, estimate: int) -> str | None:
    """Why this budget refuses the hold, or ``None``; reaching a cap exactly is allowed."""
    b = state.budget
    if b.on_breach != "block":
        return None
    if state.spend_nanos + held + estimate > state.cap_nanos:
        if state.spend_nanos >= state.cap_nanos:
            return f"budget {b.key} is exhausted for {state.local_day}"
        return f"budget {b.key} would be exceeded: spend + held + this estimate pass the daily cap"
    m_cap, m_spend = state.month_cap_nanos, state.month_spend_nanos
    if m_cap is not None and m_spend is not None and m_spend + held + estimate > m_cap:
        return f"budget {b.key} would be exceeded for {state.month_label}"
    return None


def reserve(
    ledger: Ledger,
    budgets: Sequence[Budget],
    req: ReserveRequest,
    *,
    source: str,
    now: datetime | None = None,
) -> ReserveResult:
    """Hold money for one call, or deny; atomic across replicas (see the module docstring)."""
    now = now or datetime.now(UTC)
    ttl = req.ttl_s
    if not 1 <= ttl <= MAX_TTL_S:
        raise UsageError(f"ttl_s must be between 1 and {MAX_TTL_S:,} seconds, got {ttl}")
    covering = [b for b in budgets if b.matches(req.flow, req.tags)]
    keys = [b.key for b in covering]
    now_us = int(now.timestamp() * 1_000_000)
    if req.request_id is not None:
        with ledger.engine.connect() as conn:
            earlier = reservation_for_request(conn, source, req.request_id)
        if earlier is not None:
            return _replay(earlier.answer, covering, now)
    estimate = estimate_cost(ledger, req, now=now)
    with write_transaction(ledger.engine) as conn:
        lock_budgets(conn, keys)
        if req.request_id is not None and (earlier := reservation_for_request(conn, source, req.request_id)):
            return _replay(earlier.answer, covering, now)  # a replica answered it while we waited
        held = held_by_budget(conn, keys, now_us=now_us)
        states = tuple(budget_state(conn, b, now) for b in covering)
        reason = _decide(states, held, estimate, ledger.settings.admit_unpriced)
        rid = "rsv_" + secrets.token_hex(12)
        expires = now + timedelta(seconds=ttl)
        allow = reason is None
        nanos = estimate.nanos or 0
        if allow:
            held = {k: v + nanos for k, v in held.items()}
        result = ReserveResult(
            "allow" if allow else "deny",
            reason or ("within budget" if covering else "no budget covers this flow"),
            rid if allow else None,
            expires if allow else None,
            estimate,
            states,
            held,
        )
        insert_reservation(
            conn,
            reservation_id=rid,
            source=source,
            request_id=req.request_id,
            flow=req.flow,
            tags=req.tags,
            estimate_nanos=nanos,
            status="open" if allow else "denied",
            answer=_answer(result),
            budget_keys=keys,
            now_us=now_us,
            expires_us=int(expires.timestamp() * 1_000_000),
        )
    return result


def _decide(
    states: Sequence[BudgetState], held: Mapping[str, int], estimate: Estimate, admit_unpriced: bool
) -> str | None:
    blocking = [s for s in states if s.budget.on_breach == "block"]
    if estimate.nanos is None:
        if blocking and not admit_unpriced:
            return (
                "the model has no price, so the call's cost cannot be bounded: send estimate_usd, "
                "or set FINOPS_ADMIT_UNPRICED=true to allow unpriced models"
            )
        return None
    for state in blocking:
        why = _blocked(state, held.get(state.budget.key, 0), estimate.nanos)
        if why:
            return why
    return None


def _answer(result: ReserveResult) -> dict[str, Any]:
    """What a retry of the same request_id gets back (the decision, never a second hold)."""
    return {
        "decision": result.decision,
        "reason": result.reason,
        "reservation_id": result.reservation_id,
        "expires_at": result.expires_at.isoformat() if result.expires_at else None,
        "estimate_nanos": result.estimate.nanos,
        "estimate_how": result.estimate.how,
    }


def _replay(answer: Mapping[str, Any], covering: Sequence[Budget], now: datetime) -> ReserveResult:
    expires = answer.get("expires_at")
    return ReserveResult(
        str(answer["decision"]),
        str(answer["reason"]),
        answer.get("reservation_id"),
        datetime.fromisoformat(expires) if expires else None,
        Estimate(answer.get("estimate_nanos"), str(answer.get("estimate_how", "explicit"))),
        (),
        {},
        replayed=True,
    )


def lapse_holds(ledger: Ledger, *, now: datetime | None = None) -> dict[str, int]:
    """Mark holds past their expiry ``lapsed`` (they stopped counting at expiry already) and
    count reservations by state, for the daemon's metrics."""
    now_us = int((now or datetime.now(UTC)).timestamp() * 1_000_000)
    with write_transaction(ledger.engine) as conn:
        mark_lapsed(conn, now_us=now_us)
        return hold_counts(conn, now_us=now_us)


def release(ledger: Ledger, reservation_id: str) -> str:
    """Release an open hold (the call failed or was not made). Returns what happened:
    ``released``, or the reservation's state when it was not open (``settled``, ``lapsed``...)."""
    now_us = time.time_ns() // 1000
    with write_transaction(ledger.engine) as conn:
        found = reservation(conn, reservation_id)
        if found is None:
            raise UsageError(f"no reservation {reservation_id!r}")
        if found.status == "open" and found.expires_us <= now_us:
            close_reservation(conn, reservation_id, status="lapsed", now_us=now_us)
            return "lapsed"
        before = close_reservation(conn, reservation_id, status="released", now_us=now_us)
    return "released" if before == "open" else str(before)
