"""The price book: which entry prices a record.

Matching a record's model name, most specific first:
1. the name as sent, lower-cased (``gpt-4o-2024-08-06``, ``azure/gpt-4o``);
2. without a provider prefix (``openai/``, ``models/``, ``bedrock/``...);
3. a cloud's spelling made plain: Bedrock ``us.anthropic.claude-...-v1:0``,
   Vertex ``claude-...@20250929``;
4. without a date or ``-latest`` suffix (a dated snapshot falls back to its family).
Entries of the record's own provider are tried first through every step, then
the model's maker's (an Azure ``gpt-4o`` priced as OpenAI's when the book has no
Azure price). A name that is an alias brings its family along (an override of
``gpt-4o`` prices ``gpt-4o-2024-08-06`` too). Among the candidates the entry in
effect at the record's time wins: an operator override first, then the latest
``effective_from`` not after it, then the higher layer (import > catalog).
A step with no entry in effect falls through to the next; none at all means
unpriced, never $0.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from finops.domain.pricing.rates import LAYERS, PriceEntry
from finops.domain.providers import canonical_provider, origin_provider

__all__ = ["Discount", "PriceBook", "PriceMatch", "model_variants"]

_MISSING = object()

_PREFIX = re.compile(r"^(?:[a-z0-9_.\-]+/)+")
_BEDROCK = re.compile(
    r"^(?:(?:us|eu|apac|ap|global|us-gov|jp|au)\.)?"
    r"(?:anthropic|amazon|meta|cohere|ai21|mistral|deepseek|openai|qwen|writer)\.(.+?)(?:-v\d+(?::\d+)?)?$"
)
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)$")


def model_variants(model: str) -> list[str]:
    """The names to try for ``model``, most specific first, without repeats."""
    seen: list[str] = []

    def add(name: str) -> None:
        if name and name not in seen:
            seen.append(name)

    name = model.strip().lower()
    add(name)
    bare = _PREFIX.sub("", name)
    add(bare)
    plain = bare.replace("@", "-")
    match = _BEDROCK.match(plain)
    if match:
        plain = match.group(1)
    add(plain)
    undated = plain
    while True:
        shorter = _DATE_SUFFIX.sub("", undated)
        if shorter == undated:
            break
        undated = shorter
        add(undated)
    return seen


@dataclass(frozen=True, slots=True)
class Discount:
    """A fraction off every price matching ``pattern`` (``provider/model`` glob) in a period."""

    pattern: str
    fraction: Decimal
    effective_from: date
    until: date | None = None
    note: str = ""

    def applies(self, provider: str, model: str, day: date) -> bool:
        if day < self.effective_from or (self.until is not None and day >= self.until):
            return False
        return fnmatch.fnmatchcase(f"{provider}/{model}", self.pattern)


@dataclass(frozen=True, slots=True)
class PriceMatch:
    """The entry that prices a record, and the discount applied on top, if any."""

    entry: PriceEntry
    discount: Discount | None

    @property
    def version(self) -> str:
        """The price version stored with the record: entry key, plus the discount if any."""
        if self.discount is None:
            return self.entry.key
        basis_points = self.discount.fraction * 10000
        if basis_points == basis_points.to_integral_value():
            return f"{self.entry.key}-{int(basis_points):04d}"
        # finer than a basis point: 12.34% and 12.345% must not share a version (the truncated
        # basis points did, and the ledger then explained a 12.345% cost with 12.34%)
        exact = f"{self.discount.fraction.normalize():f}".encode()
        return f"{self.entry.key}-d{hashlib.sha256(exact).hexdigest()[:12]}"


def _normalise_pattern(pattern: str) -> str:
    if "/" not in pattern:
        return pattern.lower()
    provider, model = pattern.split("/", 1)
    if provider != "*":
        provider = canonical_provider(provider)
    return f"{provider}/{model.lower()}"


class PriceBook:
    """All known entries and discounts; answers "what priced this record?"."""

    def __init__(self, entries: Iterable[PriceEntry], discounts: Sequence[Discount] = ()) -> None:
        self.entries: list[PriceEntry] = list(entries)
        self.discounts = [
            Discount(_normalise_pattern(d.pattern), d.fraction, d.effective_from, d.until, d.note)
            for d in discounts
        ]
        self._by_name: dict[str, list[PriceEntry]] = {}
        for entry in self.entries:
            names = [entry.model, *entry.aliases]
            stripped = _PREFIX.sub("", entry.model)
            if stripped != entry.model:
                names.append(stripped)
            for name in dict.fromkeys(names):
                self._by_name.setdefault(name, []).append(entry)
        self._cache: dict[tuple[str, str, date], PriceMatch | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, provider: str, model: str, ts: datetime | date) -> PriceMatch | None:
        """The price in effect for this provider/model at ``ts``; ``None`` means unpriced."""
        day = ts.date() if isinstance(ts, datetime) else ts
        key = (provider, model, day)
        found = self._cache.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        found = self._match(provider, model, day)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _match(self, provider: str, model: str, day: date) -> PriceMatch | None:
        variants = model_variants(model)
        # The record's own provider first, through every spelling of the name; then the maker's.
        for wanted in dict.fromkeys((provider, *(origin_provider(v) for v in variants))):
            if wanted is None:
                continue
            for name in variants:
                entry = _in_effect(self._family(name, wanted), day, name)
                if entry is not None:
                    return PriceMatch(entry, self._discount(entry, provider, model, day))
        return None

    def _family(self, name: str, provider: str) -> list[PriceEntry]:
        """Entries named ``name`` for ``provider``, and when the name is an alias, the whole
        family it belongs to: an override of ``gpt-4o`` also prices ``gpt-4o-2024-08-06``."""
        found = [e for e in self._by_name.get(name, ()) if e.provider == provider]
        for entry in list(found):
            if name in entry.aliases:
                found.extend(
                    e for e in self._by_name.get(entry.model, ()) if e.provider == provider and e not in found
                )
        return found

    def _discount(self, entry: PriceEntry, provider: str, model: str, day: date) -> Discount | None:
        """Discounts match the record's provider (an Anthropic contract is not a Bedrock one)."""
        for discount in reversed(self.discounts):  # the last one listed wins
            if discount.applies(provider, entry.model, day) or discount.applies(provider, model.lower(), day):
                return discount
        return None

    def history(self, model: str, provider: str | None = None) -> list[PriceEntry]:
        """Every entry a record of ``model`` could be priced with, oldest first."""
        found: list[PriceEntry] = []
        for name in model_variants(model):
            for entry in self._by_name.get(name, ()):
                if provider and entry.provider != provider:
                    continue
                if entry not in found:
                    found.append(entry)
            if found:
                break
        return sorted(found, key=lambda e: (e.effective_from, LAYERS.index(e.layer)))


def _in_effect(entries: list[PriceEntry], day: date, name: str) -> PriceEntry | None:
    """An operator's override in effect always wins (a contract beats a list price); otherwise
    the latest ``effective_from``, then the higher layer, then the exact name."""
    live = [e for e in entries if e.effective_from <= day]
    if not live:
        return None
    return max(
        live,
        key=lambda e: (e.layer == "override", e.effective_from, LAYERS.index(e.layer), e.model == name),
    )
