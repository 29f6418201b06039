"""Issue 11 (bench): the reserve path's spend is one pre-built query, and it must agree exactly.

A reserve computes each covering budget's spend while it holds the budget lock, so that sum was
moved from ``run_spend`` (a query composed per call, several statements) to ``cost_total`` (one
statement built once). These tests pin that the two agree to the nano-dollar on SQLite and
PostgreSQL for any range (whole days, months, ranges inside one hour, half-hour zones) and any
flow glob, and that budgets and reserve decisions are unchanged by it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from finops.config.budget_spec import parse_budget
from finops.usecases.admission import ReserveRequest, reserve
from finops.usecases.budgets import budget_state
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, cost_total, run_spend

START = datetime(2026, 10, 20, tzinfo=UTC)
FLOWS = ("support-en", "support-de", "search", "a_b", "a%b")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu")


def _records(n: int) -> list[dict[str, object]]:
    """Records spread over 40 days at any second, so ranges cut hours and days anywhere."""
    rng = random.Random(11)
    return [
        {
            "id": f"r{i}",
            "ts": (START + timedelta(seconds=rng.randrange(40 * 86400))).isoformat(),
            "provider": "openai",
            "model": "gpt-4o-2024-08-06",
            "flow": rng.choice(FLOWS),
            "input_tokens": rng.randrange(1, 5000),
            "output_tokens": rng.randrange(1, 3000),
        }
        for i in range(n)
    ]


def _ranges(rng: random.Random) -> list[tuple[datetime, datetime]]:
    """Whole local days and months in every zone, and ranges starting and ending anywhere."""
    found = []
    for zone in ZONES:
        budget = parse_budget(flow="search", owner="@o", daily_cap_usd=1, timezone=zone)
        for day in range(0, 40, 3):
            now = START + timedelta(days=day, hours=rng.randrange(24))
            found += [budget.day(now)[1:], budget.month(now)[1:]]
    for _ in range(40):
        a = START + timedelta(seconds=rng.randrange(-86400, 41 * 86400))
        found.append((a, a + timedelta(seconds=rng.randrange(1, 9 * 86400))))
        found.append((a, a + timedelta(seconds=rng.randrange(1, 3600))))  # within an hour or two
    return found


def test_cost_total_is_run_spend_total_for_any_range_and_glob(ledger: Ledger) -> None:
    assert ingest_objects(ledger, _records(3000), source="t").rejected == 0
    rng = random.Random(1)
    checked = 0
    with ledger.engine.connect() as conn:
        for start, end in _ranges(rng):
            for flow in ("search", "support-*", "a_b", "a%b", "*", "nothing"):
                query = SpendQuery(start=start, end=end, tz=ZoneInfo("UTC"), flows=(flow,))
                expected = run_spend(conn, query).total["cost_nanos"]
                assert cost_total(conn, flow=flow, start=start, end=end) == expected, (flow, start, end)
                checked += expected > 0
    assert checked > 500  # the ranges did hold spend


def test_budget_state_and_reserve_decide_on_the_same_spend(ledger: Ledger) -> None:
    """A $0.05 blocking cap with $0.04 spent today: a $0.01 hold fits exactly, the next does not."""
    now = datetime.now(UTC)
    records = [
        {"id": f"u{i}", "ts": now.isoformat(), "model": "gpt-4o-2024-08-06", "flow": "search"}
        | {"input_tokens": 0, "output_tokens": 1000}
        for i in range(4)
    ]
    assert ingest_objects(ledger, records, source="t").stored == 4
    budget = parse_budget(flow="search", owner="@o", daily_cap_usd=Decimal("0.05"), on_breach="block")
    with ledger.engine.connect() as conn:
        assert budget_state(conn, budget, now).spend_nanos == 40_000_000
    req = ReserveRequest(flow="search", estimate_usd=Decimal("0.01"))
    first = reserve(ledger, [budget], req, source="t", now=now)
    second = reserve(ledger, [budget], req, source="t", now=now)
    assert (first.decision, second.decision) == ("allow", "deny")
    assert first.held == {"search": 10_000_000} and second.held == {"search": 10_000_000}
