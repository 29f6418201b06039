"""Budget states and check answers as JSON documents: the CLI prints them, the HTTP API returns them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from finops.domain.money import format_usd

if TYPE_CHECKING:  # types only: `finops check` should not load the reservation machinery
    from finops.domain.budgets import BudgetState
    from finops.usecases.admission import ReserveResult
    from finops.usecases.budgets import CheckResult

__all__ = ["check_document", "reserve_document", "state_document"]


def state_document(state: BudgetState, held_nanos: int | None = None) -> dict[str, Any]:
    """One budget today; with ``held_nanos`` (open reservations), what is held and what remains
    once it is spent."""
    b = state.budget
    remaining = state.remaining_nanos if held_nanos is None else max(0, state.remaining_nanos - held_nanos)
    doc: dict[str, Any] = {
        "budget": b.key,
        "owner": b.owner,
        "timezone": b.timezone,
        "day": state.local_day.isoformat(),
        "spend_usd": format_usd(state.spend_nanos),
        "cap_usd": format_usd(state.cap_nanos),
        "remaining_usd": format_usd(remaining),
        **({} if held_nanos is None else {"held_usd": format_usd(held_nanos)}),
        "percent": state.percent,
        "state": state.state,
        "on_breach": b.on_breach,
        "projected_end_of_day_usd": format_usd(state.projection.end_of_period_nanos),
        "cap_hit_at": state.projection.cap_hit_at.astimezone(b.zone).isoformat()
        if state.projection.cap_hit_at
        else None,
        "thresholds_crossed": [str(t) for t in state.crossed],
    }
    if state.month_cap_nanos is not None:
        doc["month"] = {
            "month": state.month_label,
            "spend_usd": format_usd(state.month_spend_nanos or 0),
            "cap_usd": format_usd(state.month_cap_nanos),
        }
    return doc


def check_document(result: CheckResult) -> dict[str, Any]:
    """allow/deny, why, and the numbers of the tightest budget, then every matching budget."""
    tight = result.tightest
    doc: dict[str, Any] = {
        "decision": result.decision,
        "allow": result.decision == "allow",
        "flow": result.flow,
        "reason": result.reason,
        "known_flow": result.known_flow,
        "estimate_usd": format_usd(result.estimate_nanos),
    }
    if tight is not None:
        held = result.held.get(tight.budget.key, 0)
        doc.update(
            spend_usd=format_usd(tight.spend_nanos),
            held_usd=format_usd(held),
            cap_usd=format_usd(tight.cap_nanos),
            remaining_usd=format_usd(max(0, tight.remaining_nanos - held)),
            budget=tight.budget.key,
        )
    doc["budgets"] = [state_document(s, result.held.get(s.budget.key, 0)) for s in result.states]
    return doc


def reserve_document(result: ReserveResult) -> dict[str, Any]:
    """The reserve answer: allow with a reservation to settle or release, or deny and why."""
    doc: dict[str, Any] = {
        "allow": result.allow,
        "decision": result.decision,
        "reason": result.reason,
        "estimate_usd": None if result.estimate.nanos is None else format_usd(result.estimate.nanos),
        "estimate": result.estimate.how,
    }
    if result.allow:
        assert result.expires_at is not None
        doc["reservation_id"] = result.reservation_id
        doc["expires_at"] = result.expires_at.isoformat()
    if result.replayed:
        doc["replayed"] = True  # the same request_id was answered before: this is that answer
    states = result.states
    if states:
        tight = min(states, key=lambda s: s.cap_nanos - s.spend_nanos - result.held.get(s.budget.key, 0))
        doc["remaining_usd"] = format_usd(
            max(0, tight.remaining_nanos - result.held.get(tight.budget.key, 0))
        )
        doc["budget"] = tight.budget.key
    doc["budgets"] = [state_document(s, result.held.get(s.budget.key, 0)) for s in states]
    return doc
