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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from finops.domain.budgets import Budget, BudgetState
from finops.domain.money import usd_to_nanos
from finops.domain.usage import RecordError, UsageRecord, parse_usage
from finops.errors import UsageError
from finops.storage.db import quick_reads, write_transaction
from finops.storage.reservations import (
    close_reservation,
    held_by_budget,
    hold_counts,
    insert_reservations,
    lock_budgets,
    mark_lapsed,
    reservation,
    reservation_for_request,
    reservation_row,
    reservations_for_requests,
)
from finops.usecases.budgets import budget_state
from finops.usecases.ledger import Ledger
from finops.usecases.pricing import price_record

__all__ = [
    "Ask",
    "Estimate",
    "ReserveRequest",
    "ReserveResult",
    "decide",
    "estimate_cost",
    "lapse_holds",
    "prepare",
    "release",
    "replayed",
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


@dataclass(frozen=True)
class Ask:
    """A reserve request with its estimate made (outside the transaction: counting a prompt's
    tokens is slow), ready to be decided with others in one transaction."""

    req: ReserveRequest
    source: str
    estimate: Estimate


def prepare(ledger: Ledger, req: ReserveRequest, *, source: str, now: datetime) -> Ask:
    """Check the request and make its estimate; raises :class:`UsageError` when it is wrong."""
    if not 1 <= req.ttl_s <= MAX_TTL_S:
        raise UsageError(f"ttl_s must be between 1 and {MAX_TTL_S:,} seconds, got {req.ttl_s}")
    return Ask(req, source, estimate_cost(ledger, req, now=now))


def replayed(
    ledger: Ledger, req: ReserveRequest, *, source: str, now: datetime | None = None
) -> ReserveResult | None:
    """The answer given before to this request_id, read without the write lock (a retry).

    An allow whose hold is gone (released, or past its expiry, unsettled) is not given again:
    the caller would make the call with nothing held. It is a deny that says to reserve anew."""
    if req.request_id is None:
        return None
    with quick_reads(ledger.engine) as conn:
        earlier = reservation_for_request(conn, source, req.request_id)
    if earlier is None:
        return None
    answer = _replay(earlier.answer)
    now_us = int((now or datetime.now(UTC)).timestamp() * 1_000_000)
    if answer.allow and earlier.status != "settled":
        gone = "was released" if earlier.status == "released" else None
        if gone is None and earlier.expires_us <= now_us:
            gone = f"expired at {answer.expires_at.isoformat() if answer.expires_at else 'its TTL'}"
        if gone is not None:
            reason = (
                f"request_id {req.request_id!r} was allowed before, but its hold {gone}: "
                "nothing is held for this call; reserve again with a new request_id"
            )
            return replace(answer, decision="deny", reason=reason, reservation_id=None, expires_at=None)
    return answer


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
    if (earlier := replayed(ledger, req, source=source, now=now)) is not None:
        return earlier
    ask = prepare(ledger, req, source=source, now=now)
    with write_transaction(ledger.engine) as conn:
        [result] = decide(conn, budgets, [ask], now=now, admit_unpriced=ledger.settings.admit_unpriced)
    return result


def decide(
    conn: Connection,
    budgets: Sequence[Budget],
    asks: Sequence[Ask],
    *,
    now: datetime,
    admit_unpriced: bool,
) -> list[ReserveResult]:
    """Decide ``asks`` in order in the caller's write transaction, and leave their holds (or
    denials) in it: one answer per ask.

    The budgets of every ask are locked first; spend and open holds are read once, and each
    allowed ask adds its estimate to the holds the next ask sees, exactly as if each had come
    alone one after the other. A ``request_id`` answered before (or earlier in ``asks``) gets
    that answer again, never a second hold.
    """
    covering = [[b for b in budgets if b.matches(a.req.flow, a.req.tags)] for a in asks]
    by_key = {b.key: b for found in covering for b in found}
    lock_budgets(conn, by_key)
    answered = reservations_for_requests(
        conn, [(a.source, a.req.request_id) for a in asks if a.req.request_id is not None]
    )
    now_us = int(now.timestamp() * 1_000_000)
    held = held_by_budget(conn, list(by_key), now_us=now_us)
    states = {key: budget_state(conn, b, now) for key, b in by_key.items()}
    results: list[ReserveResult] = []
    rows: list[dict[str, Any]] = []
    for ask, found in zip(asks, covering, strict=True):
        req, keys = ask.req, [b.key for b in found]
        known = (ask.source, req.request_id) if req.request_id is not None else None
        if known is not None and known in answered:
            results.append(_replay(answered[known]))
            continue
        mine = {k: held[k] for k in keys}
        reason = _decide([states[k] for k in keys], mine, ask.estimate, admit_unpriced)
        allow = reason is None
        nanos = ask.estimate.nanos or 0
        if allow:
            for k in keys:
                held[k] += nanos
            mine = {k: held[k] for k in keys}
        expires = now + timedelta(seconds=req.ttl_s)
        rid = "rsv_" + secrets.token_hex(12)
        result = ReserveResult(
            "allow" if allow else "deny",
            reason or ("within budget" if found else "no budget covers this flow"),
            rid if allow else None,
            expires if allow else None,
            ask.estimate,
            tuple(states[k] for k in keys),
            mine,
        )
        results.append(result)
        if known is not None:
            answered[known] = _answer(result)
        rows.append(
            reservation_row(
                reservation_id=rid,
                source=ask.source,
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
        )
    insert_reservations(conn, rows)
    return results


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


def _replay(answer: Mapping[str, Any]) -> ReserveResult:
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


def lapse_holds(ledger: Ledger, *, now: datetime | None = None, closed: bool = True) -> dict[str, int]:
    """Mark holds past their expiry ``lapsed`` (they stopped counting at expiry already) and
    count reservations by state, for the daemon's metrics (``closed=False``: only the open ones,
    cheap at any table size)."""
    now_us = int((now or datetime.now(UTC)).timestamp() * 1_000_000)
    with write_transaction(ledger.engine) as conn:
        mark_lapsed(conn, now_us=now_us)
        return hold_counts(conn, now_us=now_us, closed=closed)


def release(ledger: Ledger, reservation_id: str) -> str:
    """Release an open hold (the call failed or was not made). Returns what happened:
    ``released``, or the reservation's state when it was not open (``settled``, ``lapsed``...)."""
    now_us = time.time_ns() // 1000
    with write_transaction(ledger.engine) as conn:
        found = reservation(conn, reservation_id)
        if found is None:
            raise UsageError(f"no reservation {reservation_id!r}")
        closing = "lapsed" if found.status == "open" and found.expires_us <= now_us else "released"
        # close_reservation reads the status again, locked: a settle may have committed since.
        before = close_reservation(conn, reservation_id, status=closing, now_us=now_us)
    return closing if before == "open" else str(before)
