"""Budget states and check answers as JSON documents: the CLI prints them, the HTTP API returns them."""

from __future__ import annotations

from typing import Any

from finops.domain.budgets import BudgetState
from finops.domain.money import format_usd
from finops.usecases.budgets import CheckResult

__all__ = ["check_document", "state_document"]


def state_document(state: BudgetState) -> dict[str, Any]:
    b = state.budget
    doc: dict[str, Any] = {
        "budget": b.key,
        "owner": b.owner,
        "timezone": b.timezone,
        "day": state.local_day.isoformat(),
        "spend_usd": format_usd(state.spend_nanos),
        "cap_usd": format_usd(state.cap_nanos),
        "remaining_usd": format_usd(state.remaining_nanos),
        "percent": f"{state.fraction * 100:.1f}",
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
        "estimate_usd": format_usd(result.estimate_nanos),
    }
    if tight is not None:
        doc.update(
            spend_usd=format_usd(tight.spend_nanos),
            cap_usd=format_usd(tight.cap_nanos),
            remaining_usd=format_usd(tight.remaining_nanos),
            budget=tight.budget.key,
        )
    doc["budgets"] = [state_document(s) for s in result.states]
    return doc
