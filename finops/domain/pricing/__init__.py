"""Prices and costs (docs/design.md §3): where a price is found and a cost computed.

- ``rates``: a price entry, its rate cards by service tier and long-context threshold;
- ``book``: which entry prices a record (model-name matching, effective dates, discounts);
- ``cost``: the cost formula, exact;
- ``litellm``: LiteLLM's catalog format converted to entries.
"""

from finops.domain.pricing.book import Discount, PriceBook, PriceMatch
from finops.domain.pricing.cost import Cost, compute_cost
from finops.domain.pricing.rates import (
    LAYERS,
    RATE_FIELDS,
    PriceEntry,
    RateCard,
    entry_from_mapping,
    entry_to_mapping,
)

__all__ = [
    "LAYERS",
    "RATE_FIELDS",
    "Cost",
    "Discount",
    "PriceBook",
    "PriceEntry",
    "PriceMatch",
    "RateCard",
    "compute_cost",
    "entry_from_mapping",
    "entry_to_mapping",
]
