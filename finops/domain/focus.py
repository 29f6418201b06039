"""LLM usage as FOCUS (the FinOps Foundation's cost and usage format) rows. Pure.

One row per charge period × provider × model × token class × service tier × long-context tier
× price × flow × tags. A group of calls (all but the class) carries its exact stored cost, the
sum of its records' ``cost_nanos``; that cost is split across the group's token classes in
proportion to their exact prices, with the nano-dollars left by rounding given to the largest
remainders, so the rows of a group add up to the group, and the file to the ledger, to the last
nano-dollar. ``ListCost`` is the undiscounted price of the row's tokens; ``BilledCost``,
``EffectiveCost`` and ``ContractedCost`` are the ledger's (discounted, where a discount priced
the calls): they differ from ``ListCost`` only under a discount.

Token classes (``SkuId`` = ``<model>/<class>``):

=====================  =====================  ================  ==========================
class                  SkuMeter               TokenDirection    TokenCacheAction
=====================  =====================  ================  ==========================
input                  Input Tokens           Input             Uncached
input-cached           Cached Input Tokens    Input             Read
input-cache-write      Cache Write Tokens     Input             Write
input-cache-write-1h   Cache Write Tokens     Input             Write (1 hour)
output                 Output Tokens          Output            Uncached
output-reasoning       Output Tokens          Output            Uncached (reasoning)
=====================  =====================  ================  ==========================
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from finops.domain.money import EXACT, format_usd
from finops.domain.pricing.rates import PriceEntry

__all__ = [
    "ASCII_COLUMNS",
    "CLASSES",
    "COLUMNS",
    "CallGroup",
    "TokenClass",
    "allocate",
    "ascii_text",
    "focus_rows",
    "provider_names",
]

_MILLION = 1_000_000


@dataclass(frozen=True)
class TokenClass:
    name: str  # the SkuId suffix
    rate: str  # the RateCard field that prices it
    meter: str
    direction: str
    cache_action: str


CLASSES = (
    TokenClass("input", "input", "Input Tokens", "Input", "Uncached"),
    TokenClass("input-cached", "cache_read", "Cached Input Tokens", "Input", "Read"),
    TokenClass("input-cache-write", "cache_write", "Cache Write Tokens", "Input", "Write"),
    TokenClass("input-cache-write-1h", "cache_write_1h", "Cache Write Tokens", "Input", "Write"),
    TokenClass("output", "output", "Output Tokens", "Output", "Uncached"),
    TokenClass("output-reasoning", "reasoning", "Output Tokens", "Output", "Uncached"),
)

#: FOCUS 1.2 Cost and Usage columns finops fills, then 1.3's provider columns, then finops's own.
COLUMNS = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
    "ContractedUnitPrice", "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice",
    "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName",
    "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails",
    "SkuPriceId", "Tags",
    "ServiceProviderName", "HostProviderName",
    "x_Flow", "x_PriceBookVersion", "x_Requests", "x_SuccessfulOutcomes", "x_UnpricedRecords",
)  # fmt: skip

#: canonical provider -> (the company that runs the service, the service's name)
_SERVICES: dict[str, tuple[str, str]] = {
    "openai": ("OpenAI", "OpenAI API"),
    "anthropic": ("Anthropic", "Anthropic API"),
    "aws.bedrock": ("Amazon Web Services", "Amazon Bedrock"),
    "azure.ai.openai": ("Microsoft", "Azure OpenAI Service"),
    "azure.ai.inference": ("Microsoft", "Azure AI Foundry Models"),
    "gcp.gemini": ("Google", "Gemini API"),
    "gcp.vertex_ai": ("Google Cloud", "Vertex AI"),
    "gcp.gen_ai": ("Google Cloud", "Vertex AI"),
    "mistral_ai": ("Mistral AI", "Mistral AI API"),
    "deepseek": ("DeepSeek", "DeepSeek API"),
    "x_ai": ("xAI", "xAI API"),
    "cohere": ("Cohere", "Cohere API"),
    "groq": ("Groq", "GroqCloud"),
    "perplexity": ("Perplexity", "Perplexity API"),
    "ibm.watsonx.ai": ("IBM", "IBM watsonx.ai"),
}
#: who made a model, for PublisherName when a cloud hosts another company's model
_MAKERS: dict[str, str] = {
    "openai": "OpenAI", "anthropic": "Anthropic", "gcp.gemini": "Google", "mistral_ai": "Mistral AI",
    "deepseek": "DeepSeek", "x_ai": "xAI", "cohere": "Cohere",
}  # fmt: skip


def provider_names(provider: str, maker: str | None) -> dict[str, str]:
    """ProviderName, PublisherName, InvoiceIssuerName, ServiceName and the 1.3 provider columns.

    ``maker``: the canonical provider that made the model (a Claude model on Bedrock: anthropic).
    """
    company, service = _SERVICES.get(provider, (provider.title(), f"{provider.title()} API"))
    publisher = _MAKERS.get(maker or provider, company)
    return {
        "ProviderName": company,
        "PublisherName": publisher,
        "InvoiceIssuerName": company,
        "ServiceName": service,
        "ServiceProviderName": company,
        "HostProviderName": company,
    }


@dataclass(frozen=True)
class CallGroup:
    """The calls of one charge period, provider, model, tier, context tier, price, flow and tags."""

    period_start: datetime  # UTC
    period_end: datetime
    provider: str
    maker: str | None
    model: str
    service_tier: str
    context_tier: int  # the long-context threshold the calls crossed (0: none)
    flow: str
    tags: Mapping[str, str]
    version: str  # the price version (entry key, plus a discount suffix)
    entry: PriceEntry
    discount: Decimal | None  # a fraction off (0.2 = 20% off), or None
    records: int
    requests: int
    input_tokens: int  # inclusive of cached and cache writes, as stored
    cached_input_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int  # inclusive of reasoning, as stored
    reasoning_tokens: int
    cost_nanos: int  # the sum of the records' stored costs
    successful_outcomes: int = 0
    unpriced_records: int = 0  # unpriced calls of the same period, provider, model, flow and tags

    def tokens(self) -> dict[str, int]:
        """Tokens per class (the stored counts are inclusive: cached and writes are part of input)."""
        return {
            "input": self.input_tokens
            - self.cached_input_tokens
            - self.cache_write_tokens
            - self.cache_write_1h_tokens,
            "input-cached": self.cached_input_tokens,
            "input-cache-write": self.cache_write_tokens,
            "input-cache-write-1h": self.cache_write_1h_tokens,
            "output": self.output_tokens - self.reasoning_tokens,
            "output-reasoning": self.reasoning_tokens,
        }


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (non-negative integers), summing to ``total``
    exactly: each share floored, the units left given to the largest remainders (first on ties).
    All weights zero: everything to the first."""
    whole = sum(weights)
    if not weights:
        return []
    if whole <= 0:
        return [total, *([0] * (len(weights) - 1))]
    shares, remainders = [], []
    for i, w in enumerate(weights):
        q, r = divmod(total * w, whole)
        shares.append(q)
        remainders.append((r, -i))
    left = total - sum(shares)
    for _, neg in sorted(remainders, reverse=True)[:left]:
        shares[-neg] += 1
    return shares


def _round_half_even(value: Decimal) -> int:
    return int(value.to_integral_value(rounding="ROUND_HALF_EVEN"))


def _decimal_text(value: Decimal) -> str:
    """An exact decimal without exponent or trailing zeros (``0.0000025`` -> ``0.0000025``)."""
    text = f"{value.normalize():f}"
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


#: The columns FOCUS holds to ASCII (the validator's FormatString rules); names from usage data in
#: them are escaped, the exact names stay in ``x_Flow``, ``Tags`` and ``SkuPriceDetails``.
ASCII_COLUMNS = (
    "BillingAccountId", "BillingAccountName", "ChargeDescription", "InvoiceIssuerName", "ProviderName",
    "PublisherName", "ServiceName", "SkuId", "SkuPriceId",
)  # fmt: skip


def ascii_text(text: str) -> str:
    """``text`` in ASCII, one-to-one: a backslash doubled, anything non-ASCII as a Python escape
    (``café`` -> ``caf\\xe9``), so two names never become one SkuId."""
    if text.isascii() and "\\" not in text:
        return text
    return text.replace("\\", "\\\\").encode("ascii", "backslashreplace").decode("ascii")


#: what a finance reader needs to tell a group's rows apart (two classes share each meter)
_KINDS = {
    "input": "Input Tokens",
    "input-cached": "Cached Input Tokens",
    "input-cache-write": "Cache Write Tokens (5 minutes)",
    "input-cache-write-1h": "Cache Write Tokens (1 hour)",
    "output": "Output Tokens",
    "output-reasoning": "Reasoning Output Tokens",
}


def _description(c: TokenClass, group: CallGroup) -> str:
    """``Reasoning Output Tokens of o4-mini (flex, above 200000 input tokens) for support``."""
    terms = group.service_tier + (f", above {group.context_tier} input tokens" if group.context_tier else "")
    return f"{_KINDS[c.name]} of {group.model} ({terms}) for {group.flow}"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_rows(group: CallGroup, *, billing_start: datetime, billing_end: datetime) -> list[dict[str, str]]:
    """The group's rows (classes with tokens), their costs adding up to ``group.cost_nanos``."""
    rates = group.entry.rates(group.service_tier, group.context_tier)
    tokens = group.tokens()
    classes = [c for c in CLASSES if tokens[c.name] > 0]
    list_rates = {c.name: rates.get(c.rate) or Decimal(0) for c in classes}
    factor = Decimal(1) - group.discount if group.discount else Decimal(1)
    # exact list and contracted costs per class, in USD, every digit kept
    exact_list = {c.name: EXACT.multiply(Decimal(tokens[c.name]), list_rates[c.name]) for c in classes}
    exact_contracted = {n: EXACT.multiply(v, factor) for n, v in exact_list.items()}
    scale = max((-int(v.as_tuple().exponent) for v in exact_contracted.values()), default=0)
    weights = [int(exact_contracted[c.name].scaleb(scale, context=EXACT)) for c in classes]
    billed = allocate(group.cost_nanos, weights)
    names = provider_names(group.provider, group.maker)
    # the call's flow, never a record tag that is also called "flow" (it took the flow's place)
    own = {k: v for k, v in sorted(group.tags.items()) if k != "flow"}
    tags = json.dumps({"flow": group.flow, **own}, ensure_ascii=False)
    rows = []
    for c, billed_nanos in zip(classes, billed, strict=True):
        sku = f"{group.model}/{c.name}"
        per_million = list_rates[c.name] * _MILLION
        contracted_per_million = EXACT.multiply(per_million, factor)
        details = {
            "ModelId": group.model,
            "TokenDirection": c.direction,
            "TokenCacheAction": c.cache_action,
            "x_TokenClass": c.name,
            "x_ServiceTier": group.service_tier,
            "x_ContextTier": f"above {group.context_tier} input tokens" if group.context_tier else "standard",
        }
        if group.discount:
            details["x_Discount"] = _decimal_text(group.discount)
        rows.append({
            "BilledCost": format_usd(billed_nanos),
            "BillingAccountId": group.provider,
            "BillingAccountName": names["ProviderName"],
            "BillingCurrency": "USD",
            "BillingPeriodEnd": _iso(billing_end),
            "BillingPeriodStart": _iso(billing_start),
            "ChargeCategory": "Usage",
            "ChargeClass": "",
            "ChargeDescription": _description(c, group),
            "ChargeFrequency": "Usage-Based",
            "ChargePeriodEnd": _iso(group.period_end),
            "ChargePeriodStart": _iso(group.period_start),
            "ConsumedQuantity": str(tokens[c.name]),
            "ConsumedUnit": "Tokens",
            "ContractedCost": format_usd(billed_nanos),
            "ContractedUnitPrice": _decimal_text(contracted_per_million),
            "EffectiveCost": format_usd(billed_nanos),
            "InvoiceId": "",  # metered by finops, not from an invoice: null
            "InvoiceIssuerName": names["InvoiceIssuerName"],
            "ListCost": format_usd(_round_half_even(exact_list[c.name].scaleb(9, context=EXACT))),
            "ListUnitPrice": _decimal_text(per_million),
            "PricingCategory": "Standard",
            "PricingQuantity": _decimal_text(Decimal(tokens[c.name]) / _MILLION),
            "PricingUnit": "1000000 Tokens",
            "ProviderName": names["ProviderName"],
            "PublisherName": names["PublisherName"],
            "ServiceCategory": "AI and Machine Learning",
            "ServiceName": names["ServiceName"],
            "ServiceSubcategory": "Generative AI",
            "SkuId": sku,
            "SkuMeter": c.meter,
            "SkuPriceDetails": json.dumps(details, ensure_ascii=False),
            "SkuPriceId": f"{sku}/{group.service_tier}/{group.context_tier}@{group.entry.key}",
            "Tags": tags,
            "ServiceProviderName": names["ServiceProviderName"],
            "HostProviderName": names["HostProviderName"],
            "x_Flow": group.flow,
            "x_PriceBookVersion": group.version,
            "x_Requests": str(group.requests),
            "x_SuccessfulOutcomes": str(group.successful_outcomes),
            "x_UnpricedRecords": str(group.unpriced_records),
        })  # fmt: skip
        row = rows[-1]
        for name in ASCII_COLUMNS:
            row[name] = ascii_text(row[name])
    return rows
