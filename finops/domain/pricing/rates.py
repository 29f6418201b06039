"""Price entries and their rate cards, and how a card is completed from its neighbours.

Prices are exact Decimals in USD **per token** inside finops; files and the
database carry USD per million tokens, which people can read.

Resolution of one rate (field ``f``, service tier ``t``, long-context threshold ``h``):
1. standard: the card at ``h``, else the base card (h = 0);
2. another tier: its own card at ``h``, else the standard rate at ``h`` (halved
   for ``batch``: "batch without its own prices costs half"). A tier without a
   long-context card of its own therefore pays the standard long-context rate
   above the threshold, never its cheaper base rate;
3. then field fallbacks: cache_read -> input, cache_write -> input,
   cache_write_1h -> cache_write, reasoning -> output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from finops.domain.money import EXACT
from finops.domain.providers import canonical_provider

__all__ = [
    "LAYERS",
    "RATE_FIELDS",
    "TIERS",
    "PriceEntry",
    "RateCard",
    "ScaledRates",
    "entry_from_mapping",
    "entry_to_mapping",
    "scale_rates",
]

RATE_FIELDS = ("input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning")
TIERS = ("standard", "batch", "flex", "priority")
#: Where an entry came from, lowest rank first; on the same effective date a higher layer wins.
LAYERS = ("catalog", "import", "override")
_HALF = Decimal("0.5")
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class RateCard:
    """USD per token for each kind of token; ``None`` where the source gives no price."""

    input: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    output: Decimal | None = None
    reasoning: Decimal | None = None

    def get(self, name: str) -> Decimal | None:
        value: Decimal | None = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class ScaledRates:
    """A complete card as integers: each rate is ``value × 10**-exp`` USD per token."""

    exp: int
    input: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    output: int
    reasoning: int


def scale_rates(card: RateCard) -> ScaledRates:
    """Scale a complete card (every rate set) to integers sharing one exponent."""
    values = [card.get(name) for name in RATE_FIELDS]
    if any(v is None for v in values):
        raise ValueError("scale_rates needs a complete card")
    decimals = [v for v in values if v is not None]
    exp = max(0, *(-int(v.as_tuple().exponent) for v in decimals))
    return ScaledRates(exp, *(int(v.scaleb(exp, context=EXACT)) for v in decimals))


@dataclass(frozen=True)
class PriceEntry:
    """The prices of one provider/model from one date, from one source.

    ``cards`` maps (service tier, long-context threshold in input tokens) to a
    card; (standard, 0) is required and has input and output prices.
    """

    provider: str
    model: str
    effective_from: date
    source: str
    layer: str
    cards: Mapping[tuple[str, int], RateCard]
    aliases: tuple[str, ...] = ()
    _resolved: dict[tuple[str, int], RateCard] = field(default_factory=dict, compare=False, repr=False)
    _scaled: dict[tuple[str, int], ScaledRates] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def thresholds(self) -> tuple[int, ...]:
        """Long-context thresholds, largest first."""
        return tuple(sorted({h for _, h in self.cards if h > 0}, reverse=True))

    @cached_property
    def key(self) -> str:
        """A short, stable id of exactly these prices from this source (the price version)."""
        import hashlib

        blob = json.dumps(entry_to_mapping(self), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def threshold_for(self, input_tokens: int) -> int:
        """The largest threshold the request's (inclusive) input is above, else 0."""
        for h in self.thresholds:
            if input_tokens > h:
                return h
        return 0

    def rates(self, tier: str, threshold: int) -> RateCard:
        """A complete card for this tier and threshold (see the module docstring)."""
        found = self._resolved.get((tier, threshold))
        if found is None:
            found = self._resolve(tier, threshold)
            self._resolved[(tier, threshold)] = found
        return found

    def scaled_rates(self, tier: str, threshold: int) -> ScaledRates:
        """``rates`` as integers for exact, fast arithmetic."""
        found = self._scaled.get((tier, threshold))
        if found is None:
            found = self._scaled[(tier, threshold)] = scale_rates(self.rates(tier, threshold))
        return found

    def _standard(self, name: str, h: int) -> Decimal | None:
        card = self.cards.get(("standard", h))
        value = card.get(name) if card else None
        if value is None and h:
            value = self.cards[("standard", 0)].get(name)
        return value

    def _raw(self, name: str, tier: str, h: int) -> Decimal | None:
        if tier == "standard":
            return self._standard(name, h)
        card = self.cards.get((tier, h))
        if card is not None and card.get(name) is not None:
            return card.get(name)
        value = self._standard(name, h)
        if value is not None and tier == "batch":
            return EXACT.multiply(value, _HALF)
        return value

    def _resolve(self, tier: str, h: int) -> RateCard:
        raw = {name: self._raw(name, tier, h) for name in RATE_FIELDS}
        if raw["cache_read"] is None:
            raw["cache_read"] = raw["input"]
        if raw["cache_write"] is None:
            raw["cache_write"] = raw["input"]
        if raw["cache_write_1h"] is None:
            raw["cache_write_1h"] = raw["cache_write"]
        if raw["reasoning"] is None:
            raw["reasoning"] = raw["output"]
        return RateCard(**raw)


def _per_token(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise ValueError(f"{where}: a price must be a number, got {value!r}")
    try:
        # floats only reach here from JSON parsed without parse_float; repr keeps their text
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{where}: a price must be a non-negative number, got {value!r}")
    return number.scaleb(-6, context=EXACT)


def _card(obj: object, where: str) -> RateCard:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected a mapping of prices (input, output, ...)")
    unknown = set(obj) - set(RATE_FIELDS)
    if unknown:
        raise ValueError(
            f"{where}: unknown price field(s) {', '.join(sorted(map(str, unknown)))}; "
            f"known: {', '.join(RATE_FIELDS)}"
        )
    return RateCard(**{k: _per_token(v, f"{where}.{k}") for k, v in obj.items()})


def _to_date(value: object, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: effective_from must be a date (YYYY-MM-DD), got {value!r}") from None


def entry_from_mapping(obj: Mapping[str, Any], *, layer: str, where: str = "entry") -> PriceEntry:
    """Build an entry from the file shape (USD per million tokens). Raises ``ValueError``."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}")
    known = {"provider", "model", "aliases", "effective_from", "source", "long_context", *TIERS}
    unknown = set(obj) - known
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    for name in ("provider", "model"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            raise ValueError(f"{where}: {name} is required")
    where = f"{where} ({obj['provider']}/{obj['model']})"
    cards: dict[tuple[str, int], RateCard] = {}
    for tier in TIERS:
        if tier in obj:
            cards[(tier, 0)] = _card(obj[tier], f"{where}.{tier}")
    base = cards.get(("standard", 0))
    if base is None or base.input is None or base.output is None:
        raise ValueError(f"{where}: standard prices need at least input and output")
    for i, tier_obj in enumerate(obj.get("long_context") or ()):
        spot = f"{where}.long_context[{i}]"
        if not isinstance(tier_obj, Mapping) or not isinstance(tier_obj.get("above"), int):
            raise ValueError(f"{spot}: needs `above: <input tokens>` and tier prices")
        above = tier_obj["above"]
        if above <= 0:
            raise ValueError(f"{spot}: above must be a positive token count")
        extra = set(tier_obj) - {"above", *TIERS}
        if extra:
            raise ValueError(f"{spot}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
        for tier in TIERS:
            if tier in tier_obj:
                cards[(tier, above)] = _card(tier_obj[tier], f"{spot}.{tier}")
    aliases = obj.get("aliases") or ()
    if not isinstance(aliases, list | tuple) or not all(isinstance(a, str) for a in aliases):
        raise ValueError(f"{where}: aliases must be a list of model names")
    return PriceEntry(
        provider=canonical_provider(obj["provider"]),
        model=obj["model"].strip().lower(),
        effective_from=_to_date(obj.get("effective_from", "2000-01-01"), where),
        source=str(obj.get("source") or "unspecified"),
        layer=layer,
        cards=cards,
        aliases=tuple(a.strip().lower() for a in aliases),
    )


def _card_mapping(card: RateCard) -> dict[str, str]:
    return {
        f.name: f"{EXACT.multiply(getattr(card, f.name), _MILLION).normalize(EXACT):f}"
        for f in fields(card)
        if getattr(card, f.name) is not None
    }


def entry_to_mapping(entry: PriceEntry) -> dict[str, Any]:
    """The file shape of an entry (USD per million tokens as exact strings)."""
    out: dict[str, Any] = {
        "provider": entry.provider,
        "model": entry.model,
        "effective_from": entry.effective_from.isoformat(),
        "source": entry.source,
    }
    if entry.aliases:
        out["aliases"] = list(entry.aliases)
    for tier in TIERS:
        if (tier, 0) in entry.cards:
            out[tier] = _card_mapping(entry.cards[(tier, 0)])
    long_context = []
    for h in sorted(entry.thresholds):
        item: dict[str, Any] = {"above": h}
        for tier in TIERS:
            if (tier, h) in entry.cards:
                item[tier] = _card_mapping(entry.cards[(tier, h)])
        long_context.append(item)
    if long_context:
        out["long_context"] = long_context
    return out
