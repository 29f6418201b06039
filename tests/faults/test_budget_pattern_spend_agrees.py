"""Found in review: a budget must count exactly the spend of the flows it applies to.

``matches()`` decides which budgets apply to a flow; the spend is summed in SQL with LIKE. A
``match`` glob with ``[abc]`` applied to a flow (fnmatch) while LIKE read it literally, so the
spend read $0 and a ``block`` budget never denied. Now only ``*`` and ``?`` are wildcards (``[``
is refused), an exact ``flow:`` has none, and every pattern below is checked against every flow
on SQLite and PostgreSQL: applies ⇔ counted.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from finops.config.budget_files import parse_budget_text
from finops.config.budget_spec import parse_budget
from finops.domain.budgets import Budget
from finops.storage.sql import like_pattern
from finops.usecases.budgets import budget_state, check_flow
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger

NOW = datetime.now(UTC).replace(microsecond=0)
#: Flow names that a careless LIKE or glob would confuse with each other.
FLOWS = (
    "ab",
    "a_b",
    "axb",
    "a%b",
    "a\\b",
    "a\\\\b",
    "a*b",
    "a?b",
    "a[b]",
    "A_B",
    "50%",
    "500",
    "5000",
    "support-a",
    "support-b",
    "support-[ab]",
)
NANOS_PER_TOKEN = 600  # gpt-4o-mini output: $0.60 per million tokens


def record(flow: str, tokens: int, i: int) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "ts": NOW.isoformat(),
        "model": "gpt-4o-mini",
        "flow": flow,
        "output_tokens": tokens,
    }


@pytest.fixture
def flows_ledger(ledger: Ledger) -> Ledger:
    """One record per flow; flow ``i`` costs 2**i units, so a sum says exactly which flows it holds."""
    records = [record(flow, 2**i, i) for i, flow in enumerate(FLOWS)]
    assert ingest_objects(ledger, records, source="t").rejected == 0
    return ledger


def counted(ledger: Ledger, budget: Budget) -> set[str]:
    with ledger.engine.connect() as conn:
        nanos = budget_state(conn, budget, NOW).spend_nanos
    assert nanos % NANOS_PER_TOKEN == 0
    units = nanos // NANOS_PER_TOKEN
    return {flow for i, flow in enumerate(FLOWS) if units >> i & 1}


def accepted(**selector: Any) -> Budget | None:
    """The budget, or None when the validator refuses its selector (then nothing can disagree)."""
    try:
        return parse_budget(owner="@o", daily_cap_usd=1, **selector)
    except ValidationError:
        return None


def test_every_exact_flow_the_validator_accepts_counts_only_itself(flows_ledger: Ledger) -> None:
    refused = []
    for flow in FLOWS:
        budget = accepted(flow=flow)
        if budget is None:
            refused.append(flow)
            continue
        assert {f for f in FLOWS if budget.matches(f, {})} == {flow}
        assert counted(flows_ledger, budget) == {flow}, flow
    assert refused == ["a*b", "a?b"]


PATTERNS = [
    "".join(chars)
    for n in range(1, 4)
    for chars in itertools.product(["a", "b", "_", "%", "\\", "*", "?"], repeat=n)
] + ["a_*", "a%*", "a\\*", "*%", "5?0", "50%", "support-*", "support-?", "?" * 9, "A*", "a*b*"]


def test_every_glob_the_validator_accepts_counts_exactly_the_flows_it_applies_to(
    flows_ledger: Ledger,
) -> None:
    refused = []
    for pattern in [*PATTERNS, "support-[ab]", "a[b]", "a[_]b", "[!a]*"]:
        budget = accepted(match={"flow": pattern})
        if budget is None:
            refused.append(pattern)
            continue
        applies = {f for f in FLOWS if budget.matches(f, {})}
        assert counted(flows_ledger, budget) == applies, pattern
    assert refused == ["support-[ab]", "a[b]", "a[_]b", "[!a]*"]


def test_like_pattern_escapes_what_like_would_read_as_wildcards() -> None:
    assert like_pattern("a_b") == "a\\_b"
    assert like_pattern("50%") == "50\\%"
    assert like_pattern("a\\b") == "a\\\\b"
    assert like_pattern("a*b?[c]") == "a%b_[c]"


# ------------------------------------------------------------------ what the validator accepts


def test_a_character_class_is_refused_with_what_to_write_instead() -> None:
    text = "budgets:\n  - match: {flow: 'support-[ab]'}\n    owner: '@o'\n    daily_cap_usd: 1\n"
    budgets, problems = parse_budget_text(text, file="f.yaml")
    assert budgets == [] and [str(p) for p in problems] == [
        "f.yaml:2: match.flow: only * and ? are wildcards; [...] is not supported "
        "(got 'support-[ab]'): use support-? or one budget per flow"
    ]


def test_an_exact_flow_with_a_wildcard_is_refused() -> None:
    text = "budgets:\n  - flow: 'support-*'\n    owner: '@o'\n    daily_cap_usd: 1\n"
    budgets, problems = parse_budget_text(text, file="f.yaml")
    assert budgets == [] and [str(p) for p in problems] == [
        "f.yaml:2: flow 'support-*' has a wildcard, but flow: is one exact flow name; "
        'to budget every matching flow write match: {flow: "support-*"}'
    ]


# ------------------------------------------------------------------ the fail-open itself


def test_a_blocking_glob_budget_over_its_cap_denies(flows_ledger: Ledger) -> None:
    budget = parse_budget(
        match={"flow": "support-?"}, owner="@o", daily_cap_usd="0.000001", on_breach="block"
    )
    with flows_ledger.engine.connect() as conn:
        for flow in ("support-a", "support-b"):
            result = check_flow(conn, [budget], flow=flow, tags={}, now=NOW)
            assert result.decision == "deny" and result.states[0].spend_nanos > 0
        other = check_flow(conn, [budget], flow="support-[ab]", tags={}, now=NOW)
        assert other.decision == "allow" and other.reason == "no budget covers this flow"


def test_a_blocking_exact_budget_on_a_flow_with_like_characters_denies_only_that_flow(
    flows_ledger: Ledger,
) -> None:
    budget = parse_budget(flow="a_b", owner="@o", daily_cap_usd="0.000001", on_breach="block")
    cheap = parse_budget(flow="axb", owner="@o", daily_cap_usd=1, on_breach="block")  # axb spent 4 units
    with flows_ledger.engine.connect() as conn:
        assert check_flow(conn, [budget, cheap], flow="a_b", tags={}, now=NOW).decision == "deny"
        assert check_flow(conn, [budget, cheap], flow="axb", tags={}, now=NOW).decision == "allow"
