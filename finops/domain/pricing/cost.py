"""The cost of one record (DESIGN.md §3), exact.

cost = uncached_input × input + cached × cache_read + writes_5m × cache_write
     + writes_1h × cache_write_1h + (output − reasoning) × output + reasoning × reasoning
where uncached_input = input − cached − writes, with the rates of the request's
service tier and long-context threshold (the whole request moves to the tier),
then less any discount.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from finops.domain.money import EXACT, usd_to_nanos
from finops.domain.pricing.rates import PriceEntry, RateCard

__all__ = ["Cost", "compute_cost", "cost_with_rates"]


@dataclass(frozen=True, slots=True)
class Cost:
    """An exact cost and the integer nano-dollars it is stored as."""

    usd: Decimal
    nanos: int


def cost_with_rates(
    rates: RateCard,
    *,
    input_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    output_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> Decimal:
    """The formula on a complete card (every rate set); exact, never rounded."""
    assert rates.input is not None and rates.output is not None
    assert rates.cache_read is not None and rates.cache_write is not None
    assert rates.cache_write_1h is not None and rates.reasoning is not None
    uncached = input_tokens - cached_input_tokens - cache_write_tokens - cache_write_1h_tokens
    mul, add = EXACT.multiply, EXACT.add
    total = mul(rates.input, uncached)
    if cached_input_tokens:
        total = add(total, mul(rates.cache_read, cached_input_tokens))
    if cache_write_tokens:
        total = add(total, mul(rates.cache_write, cache_write_tokens))
    if cache_write_1h_tokens:
        total = add(total, mul(rates.cache_write_1h, cache_write_1h_tokens))
    total = add(total, mul(rates.output, output_tokens - reasoning_tokens))
    if reasoning_tokens:
        total = add(total, mul(rates.reasoning, reasoning_tokens))
    return total


def compute_cost(
    entry: PriceEntry,
    *,
    service_tier: str,
    input_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    output_tokens: int = 0,
    reasoning_tokens: int = 0,
    discount: Decimal | None = None,
) -> Cost:
    """Price one request with ``entry``; ``discount`` is a fraction off (0.2 = 20 % off)."""
    rates = entry.rates(service_tier, entry.threshold_for(input_tokens))
    usd = cost_with_rates(
        rates,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        cache_write_1h_tokens=cache_write_1h_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning_tokens,
    )
    if discount:
        usd = EXACT.multiply(usd, EXACT.subtract(Decimal(1), discount))
    return Cost(usd=usd, nanos=usd_to_nanos(usd))
