"""The dashboard's traffic lights: when a budget or a health signal is green, yellow or red.

One rule per tile, pure, so the page, people's scripts (``data-state``) and the tests agree:

- a **budget** is red over its cap (day or month) or when a blocking budget would deny a call now
  (spend plus held at the cap); green when no threshold is crossed, the day is projected to end
  under its first threshold and every call it covers today has a price; yellow otherwise (a
  threshold crossed, or heading for one, or the cap, or calls of unknown cost);
- **freshness** of a source is green within an hour, yellow within a day, red after;
- **unpriced** usage today is green at none, yellow below 1% of today's records, red from 1%;
- the **Slack outbox** is red with a failed message, yellow with an ambiguous one (sent or not is
  being checked), green otherwise;
- **reconciliation drift** of the last closed day is green within the operator's threshold
  (``FINOPS_RECONCILE_THRESHOLD_PCT``), yellow up to twice it, red beyond.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from finops.domain.budgets import BudgetState

__all__ = [
    "FRESH_S",
    "STALE_S",
    "Annotation",
    "AnnotationKind",
    "Light",
    "budget_light",
    "drift_light",
    "freshness_light",
    "outbox_light",
    "unpriced_light",
    "worst",
]

Light = Literal["green", "yellow", "red"]
AnnotationKind = Literal["price", "budget", "breach", "deploy", "note"]

#: A source that sent within this many seconds is fresh; within ``STALE_S`` it is late.
FRESH_S = 3600
STALE_S = 86400
_ORDER: dict[Light, int] = {"green": 0, "yellow": 1, "red": 2}


def worst(*lights: Light) -> Light:
    """The most severe of ``lights`` (green when none)."""
    return max(lights, key=_ORDER.__getitem__, default="green")


def budget_light(state: BudgetState, held_nanos: int = 0, unpriced_records: int = 0) -> Light:
    """Red over the cap or blocking now; green clear of the first threshold all day; else yellow.

    ``unpriced_records``: calls the budget covers today that have no price. Their cost is unknown,
    so the day cannot be called on track: never green (fail closed), red only on what is known.
    """
    budget = state.budget
    if state.state == "breached":
        return "red"
    if budget.on_breach == "block" and state.spend_nanos + held_nanos >= state.cap_nanos:
        return "red"
    month_cap, month_spend = state.month_cap_nanos, state.month_spend_nanos
    if budget.on_breach == "block" and month_cap is not None and (month_spend or 0) + held_nanos >= month_cap:
        return "red"  # check and reserve deny on the month as on the day
    if state.crossed or state.month_crossed or state.projection.cap_hit_at is not None:
        return "yellow"
    if unpriced_records > 0:
        return "yellow"
    first = min(budget.thresholds, default=Decimal(1))
    if Decimal(state.projection.end_of_period_nanos) >= first * state.cap_nanos:
        return "yellow"
    return "green"


def freshness_light(age_s: float | None) -> Light:
    """``age_s``: seconds since the source's newest record (``None``: it never sent)."""
    if age_s is None or age_s > STALE_S:
        return "red"
    return "green" if age_s <= FRESH_S else "yellow"


def unpriced_light(unpriced_records: int, records: int) -> Light:
    if unpriced_records <= 0:
        return "green"
    return "red" if unpriced_records * 100 >= max(records, 1) else "yellow"


def outbox_light(failed: int, ambiguous: int) -> Light:
    if failed:
        return "red"
    return "yellow" if ambiguous else "green"


def drift_light(drift_pct: Decimal | None, threshold_pct: Decimal) -> Light:
    """``drift_pct``: how far finops's cost is from the provider's, in percent (``None``: no report)."""
    if drift_pct is None:
        return "green"
    drift = abs(drift_pct)
    if drift <= threshold_pct:
        return "green"
    return "yellow" if drift <= 2 * threshold_pct else "red"


@dataclass(frozen=True)
class Annotation:
    """An event drawn on a time chart: what happened, when, and to which flow (``None``: all)."""

    at: datetime  # UTC
    kind: AnnotationKind
    text: str
    flow: str | None = None
