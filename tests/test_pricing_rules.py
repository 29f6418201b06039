"""Cost (docs/design.md §3): the formula, rate fallbacks, tiers, rounding; the price book; price files."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from finops.catalog import load_default_catalog, load_overrides, parse_price_yaml
from finops.domain.money import format_usd, nanos_to_usd, usd_to_nanos
from finops.domain.pricing import (
    Discount,
    PriceBook,
    PriceEntry,
    PriceMatch,
    RateCard,
    compute_cost,
    entry_from_mapping,
)
from finops.errors import PriceFileError

M = Decimal(1_000_000)


class Cost(NamedTuple):
    """A cost as the tests state it: the exact USD and the stored nano-dollars."""

    usd: Decimal
    nanos: int


def _exact(c: Cost) -> tuple[Decimal, int]:
    return c.usd, c.nanos


def pt(per_million: str) -> Decimal:
    """USD per token from USD per million, exactly."""
    return Decimal(per_million) / M


def entry(
    standard: dict[str, Any] | None = None,
    *,
    provider: str = "openai",
    model: str = "m",
    effective_from: str = "2024-01-01",
    layer: str = "catalog",
    **more: Any,
) -> PriceEntry:
    obj = {
        "provider": provider,
        "model": model,
        "effective_from": effective_from,
        "standard": standard or {"input": "1", "output": "2"},
        **more,
    }
    return entry_from_mapping(obj, layer=layer)


FULL = {
    "input": "2.50",
    "cache_read": "1.25",
    "cache_write": "3.125",
    "cache_write_1h": "5",
    "output": "10",
    "reasoning": "12",
}
GPT4O = {"input": "2.50", "cache_read": Decimal("1.25"), "output": "10.00"}
DESIGN_USAGE = {
    "input_tokens": 1200,
    "cached_input_tokens": 800,
    "output_tokens": 300,
    "reasoning_tokens": 120,
}
EVERY_KIND = {**DESIGN_USAGE, "cache_write_tokens": 100, "cache_write_1h_tokens": 50}


def cost(e: PriceEntry, tier: str = "standard", **counts: Any) -> Cost:
    found = compute_cost(e, service_tier=tier, **counts)
    return Cost(found.usd, found.nanos)


# --- the formula ---------------------------------------------------------------------------------


def test_design_formula_worked_by_hand_with_every_token_kind() -> None:
    uncached = 1200 - 800 - 100 - 50  # 250
    by_hand = (
        uncached * Decimal("2.50")
        + 800 * Decimal("1.25")
        + 100 * Decimal("3.125")
        + 50 * Decimal("5")
        + (300 - 120) * Decimal("10")
        + 120 * Decimal("12")
    ) / M
    assert by_hand == Decimal("0.0054275")  # (625 + 1000 + 312.5 + 250 + 1800 + 1440) / 1e6
    assert _exact(cost(entry(FULL), **EVERY_KIND)) == (Decimal("0.0054275"), 5_427_500)
    assert entry(FULL).rates("standard", 0) == RateCard(  # USD per token
        input=Decimal("0.0000025"),
        cache_read=Decimal("0.00000125"),
        cache_write=Decimal("0.000003125"),
        cache_write_1h=Decimal("0.000005"),
        output=Decimal("0.00001"),
        reasoning=Decimal("0.000012"),
    )


def test_1200_token_prompt_with_800_cached_and_reasoning_priced_as_output() -> None:
    # 400 × 2.50 + 800 × 1.25 + (180 + 120) × 10.00 = 1000 + 1000 + 3000 per million
    assert _exact(cost(entry(GPT4O), **DESIGN_USAGE)) == (Decimal("0.005"), 5_000_000)


def test_missing_cache_and_reasoning_prices_fall_back_to_input_and_output() -> None:
    assert entry({"input": "3", "output": "15"}).rates("standard", 0) == RateCard(
        input=pt("3"),
        cache_read=pt("3"),
        cache_write=pt("3"),
        cache_write_1h=pt("3"),
        output=pt("15"),
        reasoning=pt("15"),
    )


def test_1h_cache_write_falls_back_to_5m_write_not_input() -> None:
    e = entry({"input": "3", "cache_read": "0.30", "cache_write": "3.75", "output": "15"})
    assert e.rates("standard", 0).cache_write_1h == pt("3.75")
    assert cost(e, input_tokens=10_000, cache_write_1h_tokens=2_000, output_tokens=100) == Cost(
        Decimal("0.033"), 33_000_000
    )  # (8000 × 3 + 2000 × 3.75 + 100 × 15) / 1e6


# --- long context --------------------------------------------------------------------------------

LONG = entry(
    {"input": "1.25", "cache_read": "0.125", "output": "10"},
    long_context=[{"above": 200_000, "standard": {"input": "2.50", "cache_read": "0.25", "output": "15"}}],
)


@pytest.mark.parametrize(
    ("input_tokens", "usd"),
    [
        (200_000, Decimal("0.20375")),  # at the threshold: 150000 × 1.25 + 50000 × 0.125 + 1000 × 10
        (200_001, Decimal("0.4025025")),  # above: 150001 × 2.50 + 50000 × 0.25 + 1000 × 15
    ],
)
def test_long_context_replaces_all_rates_only_strictly_above_the_threshold(
    input_tokens: int, usd: Decimal
) -> None:
    found = cost(LONG, input_tokens=input_tokens, cached_input_tokens=50_000, output_tokens=1_000)
    assert _exact(found) == (usd, usd_to_nanos(usd))
    assert LONG.threshold_for(input_tokens) == (0 if input_tokens == 200_000 else 200_000)


def test_largest_threshold_passed_wins() -> None:
    e = entry(
        {"input": "1", "output": "10"},
        long_context=[
            {"above": 200_000, "standard": {"input": "4", "output": "20"}},
            {"above": 128_000, "standard": {"input": "2", "output": "12"}},
        ],
    )
    assert e.thresholds == (200_000, 128_000)
    assert [e.threshold_for(n) for n in (128_000, 128_001, 200_000, 200_001)] == [
        0,
        128_000,
        128_000,
        200_000,
    ]
    assert cost(e, input_tokens=150_000, output_tokens=100) == Cost(Decimal("0.3012"), 301_200_000)
    assert cost(e, input_tokens=250_000, output_tokens=100) == Cost(Decimal("1.002"), 1_002_000_000)


# --- service tiers -------------------------------------------------------------------------------


def test_batch_without_own_prices_is_half_of_standard_including_long_context() -> None:
    assert LONG.rates("batch", 0) == RateCard(
        pt("0.625"), pt("0.0625"), pt("0.625"), pt("0.625"), pt("5"), pt("5")
    )
    assert LONG.rates("batch", 200_000) == RateCard(
        pt("1.25"), pt("0.125"), pt("1.25"), pt("1.25"), pt("7.5"), pt("7.5")
    )
    found = cost(LONG, "batch", input_tokens=300_000, cached_input_tokens=100_000, output_tokens=2_000)
    assert found == Cost(Decimal("0.2775"), 277_500_000)  # 200000 × 1.25 + 100000 × 0.125 + 2000 × 7.5


TIERED = entry(
    GPT4O,
    batch={"input": "1.30", "output": "5.20"},
    flex={"input": "1.25", "cache_read": "0.50", "output": "5"},
    priority={"input": "4.25", "cache_read": "2.125", "output": "17"},
)


@pytest.mark.parametrize(
    ("tier", "own", "without_own"),
    [
        ("standard", Decimal("0.005"), Decimal("0.005")),  # 400 × 2.50 + 800 × 1.25 + 300 × 10
        # own: 400 × 1.30 + 800 × 0.625 (half the standard cache read) + 300 × 5.20; without: half of standard
        ("batch", Decimal("0.00258"), Decimal("0.0025")),
        ("flex", Decimal("0.0024"), Decimal("0.005")),  # 400 × 1.25 + 800 × 0.50 + 300 × 5; without: standard
        ("priority", Decimal("0.0085"), Decimal("0.005")),  # 400 × 4.25 + 800 × 2.125 + 300 × 17
    ],
)
def test_tiers_use_own_prices_else_standard_and_batch_half(
    tier: str, own: Decimal, without_own: Decimal
) -> None:
    assert cost(TIERED, tier, **DESIGN_USAGE) == Cost(own, usd_to_nanos(own))
    assert cost(entry(GPT4O), tier, **DESIGN_USAGE) == Cost(without_own, usd_to_nanos(without_own))


def test_tier_without_own_long_context_card_pays_standard_long_context_rate() -> None:
    e = entry(
        {"input": "1.25", "output": "10"},
        batch={"input": "0.50", "output": "4"},
        priority={"input": "2.50", "output": "20"},
        long_context=[
            {
                "above": 200_000,
                "standard": {"input": "2.50", "output": "15"},
                "flex": {"input": "1.75", "output": "11"},
            }
        ],
    )
    assert (e.rates("batch", 200_000).input, e.rates("batch", 200_000).output) == (pt("1.25"), pt("7.5"))
    assert (e.rates("priority", 200_000).input, e.rates("priority", 200_000).output) == (pt("2.50"), pt("15"))
    assert (e.rates("flex", 200_000).input, e.rates("flex", 200_000).output) == (pt("1.75"), pt("11"))
    assert cost(e, "batch", input_tokens=200_000, output_tokens=1000) == Cost(
        Decimal("0.104"), 104_000_000
    )  # at the threshold: the batch card, 200000 × 0.50 + 1000 × 4
    assert cost(e, "batch", input_tokens=200_001, output_tokens=1000) == Cost(
        Decimal("0.25750125"), 257_501_250
    )  # 200001 × 1.25 + 1000 × 7.5


# --- discounts and rounding ----------------------------------------------------------------------


def test_discount_20_percent_off() -> None:
    assert cost(entry(FULL), discount=Decimal("0.2"), **EVERY_KIND) == Cost(
        Decimal("0.004342"), 4_342_000
    )  # 0.0054275 × 0.8
    assert cost(entry(GPT4O), discount=Decimal("0"), **DESIGN_USAGE) == Cost(Decimal("0.005"), 5_000_000)


@pytest.mark.parametrize(
    ("price", "tokens", "discount", "usd", "nanos"),
    [
        ("0.0005", 1, None, Decimal("0.0000000005"), 0),  # 0.5 nano -> 0 (down to even)
        ("0.0005", 3, None, Decimal("0.0000000015"), 2),  # 1.5 nano -> 2 (up to even)
        ("0.0005", 5, None, Decimal("0.0000000025"), 2),  # 2.5 nano -> 2 (down to even)
        ("0.0005", 7, None, Decimal("0.0000000035"), 4),  # 3.5 nano -> 4 (up to even)
        ("0.00025", 3, None, Decimal("0.00000000075"), 1),  # 0.75 nano -> 1
        ("0.00025", 1, None, Decimal("0.00000000025"), 0),  # 0.25 nano -> 0
        ("0.001", 3, Decimal("0.5"), Decimal("0.0000000015"), 2),  # half off 3 nanos: 1.5 -> 2
        ("0.001", 5, Decimal("0.5"), Decimal("0.0000000025"), 2),  # half off 5 nanos: 2.5 -> 2
        ("2.5", 1, None, Decimal("0.0000025"), 2_500),
    ],
)
def test_cost_rounds_half_to_even_to_the_nano_dollar(
    price: str, tokens: int, discount: Decimal | None, usd: Decimal, nanos: int
) -> None:
    found = cost(entry({"input": price, "output": "1"}), input_tokens=tokens, discount=discount)
    assert _exact(found) == (usd, nanos)
    assert usd_to_nanos(found.usd) == found.nanos


def test_cost_usd_is_exact_beyond_28_significant_digits() -> None:
    # LiteLLM float prices (repr of 3.3333333333333335e-07), a 100-request report bucket, 12.5% off
    e = entry({"input": "0.33333333333333335", "output": "1.6666666666666667"}, layer="import")
    found = cost(e, input_tokens=987_654_321, output_tokens=12_345_679, discount=Decimal("0.125"))
    assert found.nanos == 306_069_958_833
    assert found.usd == Decimal("306.06995883333334809670781875")


def test_money_helpers() -> None:
    assert usd_to_nanos(Decimal("1.23")) == 1_230_000_000
    assert [usd_to_nanos(Decimal(v)) for v in ("0.0000000025", "0.0000000035", "-0.0000000005")] == [2, 4, 0]
    assert nanos_to_usd(1) == Decimal("0.000000001")
    assert format_usd(12_345_678_901) == "12.345678901"
    assert format_usd(0) == "0.000000000"
    assert format_usd(-1) == "-0.000000001"
    assert format_usd(1_234_567_890_000_000, cents=True) == "1,234,567.89"
    cents = [format_usd(n, cents=True) for n in (5_000_000, 15_000_000, 25_000_001)]
    assert cents == ["0.00", "0.02", "0.03"]  # half to even at the cent


# --- the price book ------------------------------------------------------------------------------

DAY = date(2026, 11, 3)


def book(*entries: PriceEntry, discounts: tuple[Discount, ...] = ()) -> PriceBook:
    return PriceBook(entries, discounts)


def priced(b: PriceBook, provider: str, model: str, day: date | datetime = DAY) -> PriceMatch:
    found = b.match(provider, model, day)
    assert found is not None, f"{provider}/{model} unpriced on {day}"
    return found


def test_dated_snapshot_falls_back_to_its_family_and_exact_entry_wins() -> None:
    family = entry(GPT4O, model="gpt-4o")
    assert priced(book(family), "openai", "gpt-4o-2024-08-06").entry is family
    exact = entry({"input": "5", "output": "15"}, model="gpt-4o-2024-05-13")
    b = book(family, exact)
    assert priced(b, "openai", "gpt-4o-2024-05-13").entry is exact
    assert priced(b, "openai", "gpt-4o-2024-08-06").entry is family


def test_exact_entry_not_yet_in_effect_falls_through_to_the_family() -> None:
    family = entry(GPT4O, model="gpt-4o", effective_from="2024-05-13")
    exact = entry({"input": "5", "output": "15"}, model="gpt-4o-2024-08-06", effective_from="2024-08-06")
    b = book(family, exact)
    assert priced(b, "openai", "gpt-4o-2024-08-06", date(2024, 8, 5)).entry is family
    assert priced(b, "openai", "gpt-4o-2024-08-06", date(2024, 8, 6)).entry is exact


SONNET = entry({"input": "3", "output": "15"}, provider="anthropic", model="claude-sonnet-4-5")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("anthropic", "anthropic/claude-sonnet-4-5"),
        ("anthropic", "Claude-Sonnet-4-5"),
        ("aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("aws.bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("aws.bedrock", "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("gcp.vertex_ai", "claude-sonnet-4-5@20250929"),
        ("gcp.vertex_ai", "vertex_ai/claude-sonnet-4-5@20250929"),
    ],
)
def test_cloud_and_prefixed_names_find_the_makers_entry(provider: str, model: str) -> None:
    assert priced(book(SONNET), provider, model).entry is SONNET


def test_provider_prefix_and_alias_match() -> None:
    e = entry(GPT4O, model="gpt-4o", aliases=["support-default"])
    assert priced(book(e), "openai", "openai/gpt-4o").entry is e
    assert priced(book(e), "openai", "support-default").entry is e


def test_azure_record_falls_back_to_openai_and_an_azure_entry_wins_when_present() -> None:
    openai = entry(GPT4O, model="gpt-4o")
    azure = entry({"input": "2.75", "output": "11"}, provider="azure", model="gpt-4o")
    assert azure.provider == "azure.ai.openai"
    assert priced(book(openai), "azure.ai.openai", "gpt-4o").entry is openai
    b = book(openai, azure)
    assert priced(b, "azure.ai.openai", "azure/gpt-4o").entry is azure
    assert priced(b, "openai", "gpt-4o").entry is openai


def test_a_cloud_only_price_never_prices_the_makers_own_api() -> None:
    bedrock = entry({"input": "3.3", "output": "16.5"}, provider="bedrock", model="claude-sonnet-4-5")
    assert book(bedrock).match("anthropic", "claude-sonnet-4-5", DAY) is None


def test_price_in_effect_at_ts() -> None:
    v1 = entry({"input": "1", "output": "2"}, effective_from="2025-01-01")
    v2 = entry({"input": "3", "output": "4"}, effective_from="2025-06-01")
    b = book(v2, v1)
    assert b.match("openai", "m", date(2024, 12, 31)) is None  # the day before: unpriced
    days = (date(2025, 1, 1), date(2025, 5, 31), date(2025, 6, 1), date(2027, 1, 1))
    assert [priced(b, "openai", "m", d).entry for d in days] == [v1, v1, v2, v2]
    assert priced(b, "openai", "m", datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC)).entry is v1


def test_override_beats_every_list_price_import_beats_catalog_on_the_same_date() -> None:
    cat, imp, ovr = (
        entry({"input": p, "output": "9"}, effective_from="2025-01-01", layer=layer)
        for p, layer in (("1", "catalog"), ("2", "import"), ("3", "override"))
    )
    assert priced(book(cat, imp, ovr), "openai", "m").entry is ovr
    assert priced(book(ovr, imp, cat), "openai", "m").entry is ovr
    assert priced(book(cat, imp), "openai", "m").entry is imp
    newer = entry({"input": "4", "output": "9"}, effective_from="2025-02-01")
    assert priced(book(ovr, newer), "openai", "m").entry is ovr  # a contract beats a later list price
    assert priced(book(cat, newer), "openai", "m").entry is newer  # among list prices the later wins


def test_unknown_model_is_unpriced_never_zero() -> None:
    b = book(entry(GPT4O, model="gpt-4o"))
    assert b.match("openai", "gpt-9-turbo", DAY) is None
    assert b.match("mistral_ai", "mistral-large-latest", DAY) is None


def test_discount_by_glob_in_its_window() -> None:
    opus = entry({"input": "5", "output": "25"}, provider="anthropic", model="claude-opus-4-5")
    off = Discount("Anthropic/*", Decimal("0.2"), date(2026, 1, 1), until=date(2026, 7, 1))
    b = book(opus, entry(GPT4O, model="gpt-4o"), discounts=(off,))
    assert b.discounts[0].pattern == "anthropic/*"
    days = (date(2025, 12, 31), date(2026, 1, 1), date(2026, 6, 30), date(2026, 7, 1))
    assert [priced(b, "anthropic", "claude-opus-4-5", d).discount for d in days] == [
        None,
        b.discounts[0],
        b.discounts[0],
        None,
    ]
    assert priced(b, "openai", "gpt-4o", date(2026, 3, 1)).discount is None
    found = priced(b, "anthropic", "claude-opus-4-5-20251101", date(2026, 3, 1))
    assert found.discount is not None and found.version == f"{opus.key}-2000"
    assert cost(found.entry, input_tokens=1000, output_tokens=100, discount=found.discount.fraction) == Cost(
        Decimal("0.006"), 6_000_000
    )  # (1000 × 5 + 100 × 25) / 1e6 × 0.8


def test_discount_on_the_records_provider_and_last_listed_wins() -> None:
    first = Discount("bedrock/*", Decimal("0.1"), date(2026, 1, 1))
    second = Discount("aws.bedrock/us.anthropic.*", Decimal("0.15"), date(2026, 1, 1))
    b = book(SONNET, discounts=(first, second))
    found = priced(b, "aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert found.entry is SONNET and found.discount is not None
    assert found.discount == Discount("aws.bedrock/us.anthropic.*", Decimal("0.15"), date(2026, 1, 1))
    assert priced(b, "anthropic", "claude-sonnet-4-5").discount is None


# --- price files ---------------------------------------------------------------------------------


def test_default_catalog_loads_and_prices_every_entry() -> None:
    entries = load_default_catalog()
    assert len(entries) > 50
    providers = {e.provider for e in entries}
    assert {"openai", "anthropic", "gcp.gemini", "mistral_ai", "deepseek", "x_ai"} <= providers
    for e in entries:
        base = e.cards[("standard", 0)]
        assert isinstance(base.input, Decimal) and isinstance(base.output, Decimal), e.model
        assert e.layer == "catalog"
    found = priced(PriceBook(entries), "openai", "gpt-4o-2024-08-06")
    assert found.entry.model == "gpt-4o"
    assert cost(found.entry, **DESIGN_USAGE) == Cost(Decimal("0.005"), 5_000_000)


def test_yaml_float_is_read_exactly() -> None:
    text = "provider: openai\nmodel: m\nstandard: {input: 0.1, output: 0.30}\n"
    data = parse_price_yaml(text, name="t.yaml")
    assert data["standard"] == {"input": Decimal("0.1"), "output": Decimal("0.30")}
    e = entry_from_mapping(data, layer="catalog")
    assert e.rates("standard", 0).input == Decimal("0.0000001")
    assert cost(e, input_tokens=10, output_tokens=10) == Cost(Decimal("0.000004"), 4_000)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return path


OVERRIDE = """prices:
  - provider: openai
    model: gpt-4o
    effective_from: 2026-01-01
    standard: {%s}
discounts:
  - {match: "anthropic/*", percent_off: 20, effective_from: 2026-01-01}
"""


def test_override_file_gives_exact_prices_and_discounts(tmp_path: Path) -> None:
    path = write(tmp_path, OVERRIDE % "input: 0.1, cache_read: 0.05, output: 0.4")
    entries, discounts = load_overrides(path)
    assert [(e.layer, e.effective_from, e.rates("standard", 0).input) for e in entries] == [
        ("override", date(2026, 1, 1), Decimal("0.0000001"))
    ]
    assert discounts == [
        Discount("anthropic/*", Decimal("0.2"), date(2026, 1, 1), None, "20% off anthropic/*")
    ]


@pytest.mark.parametrize(
    ("card", "fragment"),
    [
        ("input: 1, inptu: 2, output: 3", "standard: unknown price field(s) inptu; known: input, cache_read"),
        (
            "input: -1.0, output: 3",
            "standard.input: a price must be a non-negative number, got Decimal('-1.0')",
        ),
        ("input: lots, output: 3", "standard.input: 'lots' is not a number"),
        ("output: 3", "standard prices need at least input and output"),
    ],
)
def test_override_price_errors_name_the_file_and_field(tmp_path: Path, card: str, fragment: str) -> None:
    path = write(tmp_path, OVERRIDE % card)
    with pytest.raises(PriceFileError) as info:
        load_overrides(path)
    assert str(info.value).startswith(f"{path}: entry 1 (openai/gpt-4o)")
    assert fragment in str(info.value)


def test_override_file_structure_errors(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match=r"unknown top-level key\(s\) price$"):
        load_overrides(write(tmp_path, "price: []\n"))
    with pytest.raises(PriceFileError, match=r"discount 1: percent_off must be a number in \(0, 100\]"):
        load_overrides(write(tmp_path, "discounts:\n  - {match: 'openai/*', percent_off: 120}\n"))
    with pytest.raises(PriceFileError, match=r"prices\.yaml:2: not valid YAML"):
        load_overrides(write(tmp_path, "prices:\n\t- {provider: openai}\n"))
    with pytest.raises(PriceFileError, match="cannot read the price override file"):
        load_overrides(tmp_path / "missing.yaml")


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_infinite_price_is_a_price_file_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(PriceFileError):
        load_overrides(write(tmp_path, OVERRIDE % f"input: {value}, output: 3"))


def test_override_of_a_family_prices_the_family_name(tmp_path: Path) -> None:
    entries, _ = load_overrides(write(tmp_path, OVERRIDE % "input: 2, output: 8"))
    b = PriceBook([*load_default_catalog(), *entries])
    assert priced(b, "openai", "gpt-4o", date(2026, 2, 1)).entry.layer == "override"
    assert priced(b, "openai", "gpt-4o", date(2025, 12, 31)).entry.layer == "catalog"


def test_override_of_a_family_also_prices_its_catalog_aliases(tmp_path: Path) -> None:
    entries, _ = load_overrides(write(tmp_path, OVERRIDE % "input: 2, output: 8"))
    b = PriceBook([*load_default_catalog(), *entries])
    found = priced(b, "openai", "gpt-4o-2024-08-06", date(2026, 2, 1))
    assert found.entry.layer == "override"
    assert found.entry.rates("standard", 0).input == Decimal("0.000002")
