"""What a provider's usage or cost report says, as rows of ``provider_usage``/``provider_costs``.

Pure data, shared by the report parsers (:mod:`finops.sources.providers`) and storage. Token counts
are inclusive (``input_tokens`` includes cache reads and writes); money is integer nano-dollars.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Bucket", "CostRow", "UsageRow"]


@dataclass(frozen=True)
class UsageRow:
    """One bucket and group of a usage report (a ``provider_usage`` row without ``fetched_us``)."""

    provider: str
    bucket_start_us: int
    bucket_end_us: int
    group_key: str
    model: str | None
    project: str | None
    service_tier: str | None
    requests: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class CostRow:
    """One bucket and line item of a cost report (a ``provider_costs`` row without ``fetched_us``)."""

    provider: str
    bucket_start_us: int
    bucket_end_us: int
    group_key: str
    line_item: str | None
    model: str | None
    project: str | None
    amount_nanos: int
    currency: str


@dataclass(frozen=True)
class Bucket:
    """A time bucket the page answered for, with or without results (an empty day is an answer too)."""

    start_us: int
    end_us: int
