"""Budget evaluation (pure): local days in the budget's zone, thresholds, projection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from finops.config.budget_spec import parse_budget
from finops.domain.budgets import Budget, evaluate, project

USD = 1_000_000_000


def budget(**kw: object) -> Budget:
    base: dict[str, object] = {"flow": "support-gpt-en", "owner": "@dana", "daily_cap_usd": 250}
    base.update(kw)
    return parse_budget(base)


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Berlin", date(2026, 3, 29), 23),
        ("Europe/Berlin", date(2026, 10, 25), 25),
        ("America/New_York", date(2026, 3, 8), 23),
        ("America/New_York", date(2026, 11, 1), 25),
        ("Europe/Berlin", date(2026, 11, 3), 24),
    ],
)
def test_a_budget_day_is_the_local_day_including_daylight_saving_changes(
    zone: str, day: date, hours: int
) -> None:
    b = budget(timezone=zone)
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(zone))
    local, start, end = b.day(noon)
    assert local == day
    assert end - start == timedelta(hours=hours)
    assert start.astimezone(ZoneInfo(zone)).hour == 0 and end.astimezone(ZoneInfo(zone)).hour == 0


def test_23_59_59_local_belongs_to_that_day_and_midnight_to_the_next() -> None:
    b = budget(timezone="Europe/Berlin")
    late = datetime(2026, 11, 3, 23, 59, 59, tzinfo=ZoneInfo("Europe/Berlin"))
    assert b.day(late)[0] == date(2026, 11, 3)
    assert b.day(late + timedelta(seconds=1))[0] == date(2026, 11, 4)
    assert b.day(late)[2] == datetime(2026, 11, 3, 23, tzinfo=UTC)  # Berlin midnight is 23:00 UTC in winter


def test_thresholds_crossed_and_state() -> None:
    b = budget(thresholds=[0.5, 0.8, 1.0])
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)
    assert evaluate(b, now=now, spend_nanos=124 * USD).crossed == ()
    assert evaluate(b, now=now, spend_nanos=125 * USD).crossed == (Decimal("0.5"),)
    s = evaluate(b, now=now, spend_nanos=200 * USD)
    assert s.crossed == (Decimal("0.5"), Decimal("0.8")) and s.state == "warning"
    s = evaluate(b, now=now, spend_nanos=250 * USD)
    assert s.state == "breached" and s.remaining_nanos == 0


def test_projection_from_the_burn_rate() -> None:
    start = datetime(2026, 11, 3, tzinfo=UTC)
    p = project(
        spend_nanos=100 * USD,
        cap_nanos=250 * USD,
        start=start,
        end=start + timedelta(days=1),
        now=start + timedelta(hours=8),
    )
    assert p.end_of_period_nanos == 300 * USD  # $12.50/h for 24 h
    assert p.cap_hit_at == start + timedelta(hours=20)  # 150 more at 12.5/h
    slow = project(
        spend_nanos=10 * USD,
        cap_nanos=250 * USD,
        start=start,
        end=start + timedelta(days=1),
        now=start + timedelta(hours=12),
    )
    assert slow.cap_hit_at is None and slow.end_of_period_nanos == 20 * USD
    early = project(
        spend_nanos=1 * USD,
        cap_nanos=250 * USD,
        start=start,
        end=start + timedelta(days=1),
        now=start + timedelta(minutes=1),
    )
    assert early.end_of_period_nanos == USD + 1439 * USD // 15  # the rate is over 15 minutes, not 1


def test_monthly_cap_in_the_local_month() -> None:
    b = budget(monthly_cap_usd=6000, timezone="Europe/Berlin")
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # already December 1st in Berlin
    s = evaluate(b, now=now, spend_nanos=0, month_spend_nanos=6000 * USD)
    assert s.month_label == "2026-12" and s.month_crossed == (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))
    assert s.state == "breached"


def test_match_by_flow_glob_and_tags() -> None:
    b = parse_budget(
        {"match": {"flow": "support-*", "tags": {"locale": "en"}}, "owner": "@d", "daily_cap_usd": 10}
    )
    assert b.matches("support-gpt-en", {"locale": "en", "team": "x"})
    assert not b.matches("support-gpt-en", {"locale": "de"})
    assert not b.matches("search", {"locale": "en"})
    assert b.key == "support-*[locale=en]"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"daily_cap_usd": "250$"}, "must be a positive number"),
        ({"daily_cap_usd": 0}, "greater than 0"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"thresholds": [0, 0.5]}, "fraction of the cap"),
        ({"match": {"flow": "x*"}}, "exactly one of"),
        ({"on_breach": "explode"}, "alert"),
    ],
)
def test_invalid_budgets_say_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        budget(**fields)


def test_a_trickle_of_spend_never_projects_past_the_calendar() -> None:
    start = datetime(2026, 11, 3, tzinfo=UTC)
    p = project(
        spend_nanos=1,
        cap_nanos=10**18,
        start=start,
        end=start + timedelta(days=1),
        now=start + timedelta(hours=23),
    )
    assert p.cap_hit_at is None
