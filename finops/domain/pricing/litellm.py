"""LiteLLM's model price catalog (``model_prices_and_context_window.json``) as price entries.

LiteLLM gives USD per token per key, with suffixes for long context
(``_above_200k_tokens``) and service tier (``_batches``, ``_flex``, ``_priority``).
Parse the JSON with ``parse_float=Decimal`` so prices keep their exact text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from finops.domain.pricing.rates import PriceEntry, entry_from_mapping

__all__ = ["LITELLM_FIELDS", "entries_from_litellm", "parse_litellm_key"]

#: LiteLLM base key -> finops rate field; longest first so prefixes do not steal matches.
LITELLM_FIELDS: tuple[tuple[str, str], ...] = (
    ("cache_creation_input_token_cost_above_1hr", "cache_write_1h"),
    ("cache_creation_input_token_cost", "cache_write"),
    ("cache_read_input_token_cost", "cache_read"),
    ("input_cost_per_token_cache_hit", "cache_read_hit"),
    ("output_cost_per_reasoning_token", "reasoning"),
    ("input_cost_per_token", "input"),
    ("output_cost_per_token", "output"),
)
_TIER = {None: "standard", "batches": "batch", "flex": "flex", "priority": "priority"}
_KEY = re.compile(
    "^(" + "|".join(re.escape(base) for base, _ in LITELLM_FIELDS) + r")"
    r"(?:_above_(\d+)k_tokens)?(?:_(batches|flex|priority))?$"
)
_FIELD = dict(LITELLM_FIELDS)


def parse_litellm_key(key: str) -> tuple[str, int, str] | None:
    """``input_cost_per_token_above_200k_tokens_priority`` -> (input, 200000, priority)."""
    match = _KEY.match(key)
    if match is None:
        return None
    base, above, tier = match.groups()
    return _FIELD[base], int(above) * 1000 if above else 0, _TIER[tier]


def _is_number(value: object) -> bool:
    return isinstance(value, Decimal | int | float) and not isinstance(value, bool)


def entries_from_litellm(
    data: Mapping[str, Any], *, effective_from: date, source: str
) -> tuple[list[PriceEntry], list[tuple[str, str]]]:
    """Entries for every key with per-token input and output prices; the rest with a reason."""
    entries: list[PriceEntry] = []
    skipped: list[tuple[str, str]] = []
    for key, spec in data.items():
        if key == "sample_spec" or not isinstance(spec, Mapping):
            continue
        if not (
            _is_number(spec.get("input_cost_per_token")) and _is_number(spec.get("output_cost_per_token"))
        ):
            skipped.append((key, f"no per-token input and output prices (mode {spec.get('mode')})"))
            continue
        provider = spec.get("litellm_provider")
        if not isinstance(provider, str) or not provider:
            skipped.append((key, "no litellm_provider"))
            continue
        tiers: dict[int, dict[str, dict[str, Decimal]]] = {}
        hits: dict[tuple[int, str], Decimal] = {}
        for name, value in spec.items():
            parsed = parse_litellm_key(name)
            if parsed is None or not _is_number(value):
                continue
            field, above, tier = parsed
            per_million = Decimal(repr(value) if isinstance(value, float) else value).scaleb(6)
            if field == "cache_read_hit":
                hits[(above, tier)] = per_million
                continue
            tiers.setdefault(above, {}).setdefault(tier, {})[field] = per_million
        for (above, tier), value in hits.items():
            tiers.setdefault(above, {}).setdefault(tier, {}).setdefault("cache_read", value)
        mapping: dict[str, Any] = {
            "provider": provider,
            "model": key,
            "effective_from": effective_from,
            "source": f"{source}" + (f" ({spec['source']})" if isinstance(spec.get("source"), str) else ""),
            **tiers.pop(0, {}),
        }
        if tiers:
            mapping["long_context"] = [{"above": above, **cards} for above, cards in sorted(tiers.items())]
        try:
            entries.append(entry_from_mapping(mapping, layer="import", where=key))
        except ValueError as exc:
            skipped.append((key, str(exc)))
    return entries, skipped
