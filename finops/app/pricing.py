"""Pricing a record with the book in force."""

from __future__ import annotations

from finops.domain.pricing import PriceBook, PriceMatch, compute_cost
from finops.domain.usage import UsageRecord

__all__ = ["price_record"]


def price_record(book: PriceBook, record: UsageRecord) -> tuple[int | None, PriceMatch | None]:
    """(cost in nano-dollars, the match that priced it); ``(None, None)`` when unpriced."""
    match = book.match(record.provider, record.model, record.ts)
    if match is None:
        return None, None
    cost = compute_cost(
        match.entry,
        service_tier=record.service_tier,
        input_tokens=record.input_tokens,
        cached_input_tokens=record.cached_input_tokens,
        cache_write_tokens=record.cache_write_tokens,
        cache_write_1h_tokens=record.cache_write_1h_tokens,
        output_tokens=record.output_tokens,
        reasoning_tokens=record.reasoning_tokens,
        discount=match.discount.fraction if match.discount else None,
    )
    return cost.nanos, match
