"""Pricing a record with the book in force."""

from __future__ import annotations

from finops.domain.pricing import PriceBook, PriceMatch
from finops.domain.pricing.cost import cost_nanos
from finops.domain.usage import UsageRecord

__all__ = ["price_record"]


def price_record(book: PriceBook, record: UsageRecord) -> tuple[int | None, PriceMatch | None]:
    """(cost in nano-dollars, the match that priced it); ``(None, None)`` when unpriced."""
    match = book.match(record.provider, record.model, record.ts)
    if match is None:
        return None, None
    r = record
    nanos = cost_nanos(
        match.entry,
        r.service_tier,
        r.input_tokens,
        r.cached_input_tokens,
        r.cache_write_tokens,
        r.cache_write_1h_tokens,
        r.output_tokens,
        r.reasoning_tokens,
        match.discount.fraction if match.discount else None,
    )
    return nanos, match
