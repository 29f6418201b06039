"""The dashboard's traffic-light rules (finops/domain/dashboard.py), every edge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from finops.config.budget_spec import parse_budget
from finops.domain.budgets import evaluate
from finops.domain.dashboard import (
    FRESH_S,
    STALE_S,
    budget_light,
    drift_light,
    freshness_light,
    outbox_light,
    unpriced_light,
    worst,
)

NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CAP = 100_000_000_000  # $100


def _light(spend_usd: str, *, at: datetime = NOON, held: int = 0, **budget: object) -> str:
    b = parse_budget(flow="f", owner="@o", daily_cap_usd="100", **budget)
    state = evaluate(b, now=at, spend_nanos=int(Decimal(spend_usd) * 10**9))
    return budget_light(state, held)


def test_green_when_the_day_is_projected_to_end_under_the_first_threshold() -> None:
    # $20 by noon heads for $40: under the first default threshold, 50% of $100
    assert _light("20") == "green"
    assert _light("30", thresholds=[0.8, 1.0]) == "green"  # heads for $60, under 80%
    assert _light("0") == "green"


def test_yellow_when_projected_past_the_first_threshold_even_before_crossing_it() -> None:
    assert _light("26") == "yellow"  # heads for $52 >= $50: not green, though nothing is crossed yet
    assert _light("45", thresholds=[0.8, 1.0]) == "yellow"  # heads for $90 >= $80


def test_yellow_when_a_threshold_is_crossed_and_red_at_the_cap() -> None:
    late = NOON.replace(hour=23, minute=50)
    assert _light("80", at=late) == "yellow"  # crossed 80%, the day nearly over
    assert _light("99.999999999", at=late) == "yellow"
    assert _light("100", at=late) == "red"
    assert _light("250", at=late) == "red"


def test_yellow_when_the_rate_hits_the_cap_today() -> None:
    assert _light("60") == "yellow"  # heads for $120: the cap is hit this afternoon


def test_first_threshold_is_the_lowest_one_written() -> None:
    assert _light("20", thresholds=[0.9, 0.3]) == "yellow"  # heads for $40 >= 30%
    assert _light("20", thresholds=[0.9, 0.5]) == "green"


def test_a_blocking_budget_is_red_when_spend_and_holds_reach_the_cap() -> None:
    late = NOON.replace(hour=23, minute=50)
    held = 15 * 10**9
    assert _light("85", at=late, held=held, on_breach="block") == "red"
    assert _light("85", at=late, held=held) == "yellow"  # an alerting budget is not blocked by holds
    assert _light("85", at=late, held=held - 1, on_breach="block") == "yellow"


def test_a_monthly_cap_reached_is_red() -> None:
    b = parse_budget(flow="f", owner="@o", daily_cap_usd="100", monthly_cap_usd="1000")
    state = evaluate(b, now=NOON, spend_nanos=0, month_spend_nanos=1000 * 10**9)
    assert budget_light(state) == "red"
    state = evaluate(b, now=NOON, spend_nanos=0, month_spend_nanos=850 * 10**9)
    assert budget_light(state) == "yellow"  # the month's 80% threshold


@pytest.mark.parametrize(
    ("age", "light"),
    [(None, "red"), (0, "green"), (FRESH_S, "green"), (FRESH_S + 1, "yellow"), (STALE_S, "yellow"),
     (STALE_S + 0.5, "red")],
)  # fmt: skip
def test_freshness(age: float | None, light: str) -> None:
    assert freshness_light(age) == light


def test_unpriced_is_red_from_one_percent_of_todays_records() -> None:
    assert unpriced_light(0, 0) == "green"
    assert unpriced_light(0, 500) == "green"
    assert unpriced_light(1, 101) == "yellow"
    assert unpriced_light(1, 100) == "red"
    assert unpriced_light(3, 0) == "red"  # unpriced with no count of records: never quietly green


def test_outbox_failed_beats_ambiguous() -> None:
    assert outbox_light(0, 0) == "green"
    assert outbox_light(0, 2) == "yellow"
    assert outbox_light(1, 0) == "red"
    assert outbox_light(1, 5) == "red"


def test_drift_against_the_operators_threshold_both_signs() -> None:
    five = Decimal(5)
    assert drift_light(None, five) == "green"
    assert drift_light(Decimal("5"), five) == "green"
    assert drift_light(Decimal("-5"), five) == "green"
    assert drift_light(Decimal("5.01"), five) == "yellow"
    assert drift_light(Decimal("-10"), five) == "yellow"
    assert drift_light(Decimal("10.01"), five) == "red"
    assert drift_light(Decimal("0.01"), Decimal(0)) == "red"


def test_worst() -> None:
    assert worst() == "green"
    assert worst("green", "yellow") == "yellow"
    assert worst("yellow", "red", "green") == "red"


def test_light_uses_the_budgets_own_day() -> None:
    # 23:30 UTC is already tomorrow in Berlin: the Berlin day has barely begun, so $1 heads high
    b = parse_budget(flow="f", owner="@o", daily_cap_usd="100", timezone="Europe/Berlin")
    state = evaluate(b, now=NOON.replace(hour=23, minute=30), spend_nanos=10 * 10**9)
    assert state.local_day.isoformat() == "2026-12-01"
    assert budget_light(state) == "yellow"
    assert budget_light(evaluate(b, now=NOON + timedelta(hours=7), spend_nanos=10 * 10**9)) == "green"


def test_versus_last_week_reads_plainly() -> None:
    from finops.render.dashboard.overview import _versus

    cent = 10_000_000
    assert _versus(0, 0) == "nothing this time last week"
    assert _versus(5 * cent, 0) == "new: nothing this time last week"
    assert _versus(100 * cent + 3, 100 * cent).startswith("about the same as this time last week")
    assert "(+50%)" in _versus(150 * cent, 100 * cent)
    assert "(-25%)" in _versus(75 * cent, 100 * cent)
    assert _versus(864 * cent, 1_435) == "new: under a cent this time last week"
    assert _versus(800 * cent, 20 * cent).startswith("40× the ")


def test_calls_without_a_price_are_never_green_and_red_stays_red() -> None:
    b = parse_budget(flow="f", owner="@o", daily_cap_usd="100")
    quiet = evaluate(b, now=NOON, spend_nanos=0)
    assert budget_light(quiet) == "green"
    assert budget_light(quiet, 0, 1) == "yellow"  # cost unknown: not on track
    over = evaluate(b, now=NOON, spend_nanos=CAP)
    assert budget_light(over, 0, 1) == "red"  # what is known already decides


def test_a_blocking_budget_is_red_when_holds_reach_the_monthly_cap() -> None:
    """``finops check`` and reserve deny a blocking budget when the month's spend plus the money
    held reaches the monthly cap, even with the day far under its own: the tile must say blocking."""
    b = parse_budget(flow="f", owner="@o", daily_cap_usd="100", monthly_cap_usd="1000", on_breach="block")
    state = evaluate(b, now=NOON, spend_nanos=0, month_spend_nanos=990 * 10**9)
    assert budget_light(state, 10 * 10**9) == "red"
    assert budget_light(state, 10 * 10**9 - 1) == "yellow"  # the month's thresholds, not blocked yet
    alerting = parse_budget(flow="f", owner="@o", daily_cap_usd="100", monthly_cap_usd="1000")
    state = evaluate(alerting, now=NOON, spend_nanos=0, month_spend_nanos=990 * 10**9)
    assert budget_light(state, 10 * 10**9) == "yellow"  # holds block nothing on an alerting budget
