"""A realistic, hand-made ``MonthlyReport`` for renderer tests (and anyone who needs one).

October 2026 for a company with six flows on three providers. The numbers add up the way
the real report's do: flows, models and providers each sum to the total, the ``env`` tag
covers all usage while ``team`` leaves two flows untagged, the daily series sums to the
total, and every ``prev`` figure is September's. It also carries what renderers get wrong:
a flow named ``<script>alert(1)</script> & co``, a prompt id with ``|`` and ``*``, a flow
with outcomes but no success, a new flow without a previous month, unpriced models, and
prompts with every flag (NEW, GROWING, BLOATED).
"""

from __future__ import annotations

from finops.usecases.audit.report_model import (
    Breach,
    Finding,
    FlowOutcomes,
    MonthlyReport,
    PromptLine,
    SpendLine,
    UnpricedLine,
)

__all__ = ["HOSTILE_FLOW", "HOSTILE_PROMPT", "sample_report"]

HOSTILE_FLOW = "<script>alert(1)</script> & co"
HOSTILE_PROMPT = "exp/a|b *test* <i>"

_TOTAL = 6_993_631_790_023
_PREV_TOTAL = 5_778_580_000_000

_GPT4O = "openai/gpt-4o-2024-08-06"
_MINI = "openai/gpt-4o-mini-2024-07-18"
_SONNET = "anthropic/claude-sonnet-4-5"
_FLASH = "google/gemini-2.5-flash"


def _line(key: str, cost: int, prev: int | None, requests: int, inp: int, out: int, cached: int) -> SpendLine:
    return SpendLine(
        key=key,
        cost_nanos=cost,
        prev_cost_nanos=prev,
        requests=requests,
        input_tokens=inp,
        output_tokens=out,
        cached_input_tokens=cached,
    )


def _prompt(
    prompt: str,
    cost: int,
    prev: int | None,
    calls: int,
    avg_in_out: tuple[int, int],
    cache_hit: float,
    success: float | None,
    flows: tuple[str, ...],
    models: tuple[str, ...],
    flags: tuple[str, ...] = (),
    preview: str | None = None,
) -> PromptLine:
    return PromptLine(
        prompt=prompt,
        cost_nanos=cost,
        share=cost / _TOTAL,
        calls=calls,
        avg_input_tokens=avg_in_out[0],
        avg_output_tokens=avg_in_out[1],
        cache_hit_ratio=cache_hit,
        success_rate=success,
        flows=flows,
        models=models,
        prev_cost_nanos=prev,
        flags=flags,
        preview=preview,
    )


_BY_FLOW = (
    _line(
        "support-gpt-en",
        4_812_345_678_912,
        3_950_120_000_000,
        182_340,
        2_730_960_000,
        268_200_000,
        1_380_576_000,
    ),
    _line("search-rerank", 1_204_500_000_001, 1_310_750_000_000, 960_112, 6_912_806_400, 288_033_600, 0),
    _line("docs-summarizer", 642_987_654_321, 401_200_000_000, 12_880, 103_040_000, 6_440_000, 51_520_000),
    _line("agent-triage", 233_330_000_000, 96_500_000_000, 4_410, 52_920_000, 3_528_000, 17_640_000),
    _line(HOSTILE_FLOW, 88_123_456_789, None, 2_003, 184_276_000, 16_024_000, 0),
    _line("unassigned", 12_345_000_000, 20_010_000_000, 950, 24_700_000, 1_995_000, 0),
)

_BY_MODEL = (
    _line(_GPT4O, 4_512_345_678_912, 3_700_120_000_000, 150_100, 1_440_960_000, 205_200_000, 864_576_000),
    _line(_MINI, 1_504_500_000_001, 1_560_750_000_000, 992_352, 8_202_806_400, 351_033_600, 516_000_000),
    _line(_SONNET, 876_317_654_321, 497_700_000_000, 17_290, 155_960_000, 9_968_000, 69_160_000),
    _line(_FLASH, 100_468_456_789, 20_010_000_000, 2_953, 208_976_000, 18_019_000, 0),
)

_BY_PROVIDER = (
    _line(
        "openai", 6_016_845_678_913, 5_260_870_000_000, 1_142_452, 9_643_766_400, 556_233_600, 1_380_576_000
    ),
    _line("anthropic", 876_317_654_321, 497_700_000_000, 17_290, 155_960_000, 9_968_000, 69_160_000),
    _line("google", 100_468_456_789, 20_010_000_000, 2_953, 208_976_000, 18_019_000, 0),
)

_BY_TAG = {
    # HOSTILE_FLOW and unassigned send no team tag: $100.47 of the month is untagged.
    "team": (
        _line(
            "support",
            4_812_345_678_912,
            3_950_120_000_000,
            182_340,
            2_730_960_000,
            268_200_000,
            1_380_576_000,
        ),
        _line("search", 1_204_500_000_001, 1_310_750_000_000, 960_112, 6_912_806_400, 288_033_600, 0),
        _line("knowledge", 876_317_654_321, 497_700_000_000, 17_290, 155_960_000, 9_968_000, 69_160_000),
    ),
    "env": (
        _line(
            "prod", 6_760_301_790_023, 5_682_080_000_000, 1_158_285, 9_955_782_400, 580_692_600, 1_432_096_000
        ),
        _line("staging", 233_330_000_000, 96_500_000_000, 4_410, 52_920_000, 3_528_000, 17_640_000),
    ),
}

# Weekdays cost about twice a weekend day; 14 October had a retry storm in support-gpt-en.
_DAILY = (
    ("2026-10-01", 215_578_008_000), ("2026-10-02", 218_134_269_000), ("2026-10-03", 121_379_791_000),
    ("2026-10-04", 122_785_735_000), ("2026-10-05", 225_803_052_000), ("2026-10-06", 228_359_313_000),
    ("2026-10-07", 230_915_574_000), ("2026-10-08", 233_471_835_000), ("2026-10-09", 236_028_096_000),
    ("2026-10-10", 131_221_396_000), ("2026-10-11", 132_627_340_000), ("2026-10-12", 243_696_879_000),
    ("2026-10-13", 246_253_140_000), ("2026-10-14", 398_095_042_000), ("2026-10-15", 251_365_662_000),
    ("2026-10-16", 253_921_923_000), ("2026-10-17", 141_063_001_000), ("2026-10-18", 142_468_944_000),
    ("2026-10-19", 261_590_706_000), ("2026-10-20", 264_146_967_000), ("2026-10-21", 266_703_228_000),
    ("2026-10-22", 269_259_489_000), ("2026-10-23", 271_815_750_000), ("2026-10-24", 150_904_606_000),
    ("2026-10-25", 152_310_549_000), ("2026-10-26", 279_484_532_000), ("2026-10-27", 282_040_793_000),
    ("2026-10-28", 284_597_054_000), ("2026-10-29", 287_153_315_000), ("2026-10-30", 289_709_576_000),
    ("2026-10-31", 160_746_225_023),
)  # fmt: skip

_BREACHES = (
    Breach(
        "support-gpt-en", "2026-10-14 (Europe/Berlin)", "threshold", "0.8", 201_400_000_000, 250_000_000_000
    ),
    Breach(
        "support-gpt-en", "2026-10-14 (Europe/Berlin)", "threshold", "1.0", 262_950_000_000, 250_000_000_000
    ),
    Breach("support-gpt-en", "2026-10", "monthly", "1.0", 4_812_345_678_912, 4_500_000_000_000),
    Breach(
        "agent-triage",
        "2026-10-21 (Europe/Berlin)",
        "fanout",
        "14 tool calls > 8",
        9_870_000_000,
        25_000_000_000,
    ),
    Breach("docs-summarizer", "2026-10", "cost_per_success", "0.05", 57_002_452, 50_000_000),
)

_OUTCOMES = (
    FlowOutcomes(
        flow="support-gpt-en", cost_nanos=4_812_345_678_912, outcomes=41_200, successes=35_020,
        failures=4_120, partials=2_060, value_nanos=437_750_000_000_000,
        cost_per_success_nanos=137_417_067, cost_per_attempt_nanos=116_804_507,
        prev_cost_per_success_nanos=127_013_505,
    ),
    FlowOutcomes(
        flow="docs-summarizer", cost_nanos=642_987_654_321, outcomes=12_000, successes=11_280,
        failures=600, partials=120, value_nanos=None,
        cost_per_success_nanos=57_002_452, cost_per_attempt_nanos=53_582_305,
        prev_cost_per_success_nanos=42_680_851,
    ),
    FlowOutcomes(
        flow="agent-triage", cost_nanos=233_330_000_000, outcomes=310, successes=0,
        failures=290, partials=20, value_nanos=None,
        cost_per_success_nanos=None, cost_per_attempt_nanos=752_677_419,
        prev_cost_per_success_nanos=2_412_500_000,
    ),
    FlowOutcomes(
        flow=HOSTILE_FLOW, cost_nanos=88_123_456_789, outcomes=50, successes=45,
        failures=5, partials=0, value_nanos=90_000_000_000,
        cost_per_success_nanos=1_958_299_040, cost_per_attempt_nanos=1_762_469_136,
        prev_cost_per_success_nanos=None,
    ),
)  # fmt: skip

_SUPPORT, _DOCS, _AGENT = ("support-gpt-en",), ("docs-summarizer",), ("agent-triage",)

_TOP_PROMPTS = (
    _prompt("support/answer@v3", 2_104_220_000_000, 1_650_400_000_000, 64_200, (9_412, 1_120), 0.62, 0.86,
            _SUPPORT, (_GPT4O,), ("GROWING", "BLOATED"),
            preview="You are a support assistant for [COMPANY]. Follow the refund policy <b>exactly</b>: …"),
    _prompt("support/answer@v4", 1_380_000_000_000, None, 51_000, (6_100, 1_080), 0.71, 0.88,
            _SUPPORT, (_GPT4O,), ("NEW",)),
    _prompt("search/rerank@v2", 1_150_100_000_000, 1_290_000_000_000, 930_000, (7_400, 300), 0.0, None,
            ("search-rerank",), (_MINI,)),
    _prompt("docs/summarize@v7", 512_300_000_000, 301_000_000_000, 9_800, (8_020, 510), 0.50, 0.94,
            _DOCS, (_SONNET,), ("GROWING",)),
    _prompt("fp:3f9a1c0e7b2d", 402_110_000_000, 398_000_000_000, 15_300, (14_950, 240), 0.05, 0.81,
            ("support-gpt-en", "docs-summarizer"), (_GPT4O, _SONNET), ("BLOATED",),
            preview="Summarise the conversation below for a [ROLE]. Conversation: …"),
    _prompt("support/classify@v1", 290_500_000_000, 240_100_000_000, 31_900, (1_310, 60), 0.40, 0.85,
            _SUPPORT, (_MINI,)),
    _prompt("agent/triage-plan@v2", 160_220_000_000, 61_000_000_000, 3_100, (12_400, 820), 0.33, 0.0,
            _AGENT, (_SONNET,), ("GROWING", "BLOATED")),
    _prompt("docs/title@v1", 98_400_000_000, 95_100_000_000, 2_900, (3_050, 25), 0.48, 0.97,
            _DOCS, (_SONNET,)),
    _prompt("agent/triage-act@v2", 73_110_000_000, 35_500_000_000, 1_310, (8_900, 700), 0.29, 0.0,
            _AGENT, (_SONNET,), ("GROWING",)),
    _prompt(HOSTILE_PROMPT, 61_000_000_000, None, 1_400, (2_000, 400), 0.0, 0.9,
            (HOSTILE_FLOW,), (_FLASH,), ("NEW",)),
    _prompt("fp:9c0d55ab12e4", 11_900_000_000, None, 900, (25_700, 2_100), 0.0, None,
            ("unassigned",), (_FLASH,), ("NEW", "BLOATED")),
    _prompt("support/translate@v2", 9_490_000_000, 10_000_000_000, 340, (2_480, 610), 0.12, 0.79,
            _SUPPORT, (_MINI,)),
)  # fmt: skip

_UNPRICED = (
    UnpricedLine(
        model="mistral/mistral-large-2511", records=1_204, input_tokens=3_010_000, output_tokens=240_800
    ),
    UnpricedLine(model="acme/internal-llm-v0", records=87, input_tokens=174_000, output_tokens=9_570),
)

_FINDINGS = (
    Finding(
        title="support/answer@v3 resends a 9,400-token prompt on every call",
        detail="64,200 calls averaged 9,412 input tokens; 38% of them were not cache hits. "
        "The refund policy text is repeated in full in each request.",
        suggestion="Move the static policy to the start of the prompt so it is cached, "
        "or retrieve only the relevant section.",
        saving_nanos=610_000_000_000,
    ),
    Finding(
        title="agent-triage spent $233.33 without a single successful outcome",
        detail="310 outcomes were reported: 290 failures and 20 partials. "
        "In September one success cost $2.41.",
        suggestion="Check that the flow still reports success outcomes; otherwise pause it until fixed.",
    ),
    Finding(
        title="search-rerank could use the batch tier",
        detail="960,112 requests, none interactive (all from the nightly re-index job).",
        suggestion="Send the re-index job through the Batch API: batch costs half of standard.",
        saving_nanos=602_250_000_000,
    ),
)


def sample_report() -> MonthlyReport:
    """October 2026, previous month September; every section filled, every edge case present."""
    return MonthlyReport(
        month="2026-10",
        previous_month="2026-09",
        timezone="Europe/Berlin",
        generated_at="2026-11-01T06:00:03+01:00",
        total_nanos=_TOTAL,
        prev_total_nanos=_PREV_TOTAL,
        requests=1_162_695,
        input_tokens=10_008_702_400,
        output_tokens=584_220_600,
        cached_input_tokens=1_449_736_000,
        by_flow=_BY_FLOW,
        by_model=_BY_MODEL,
        by_provider=_BY_PROVIDER,
        by_tag=dict(_BY_TAG),
        daily=_DAILY,
        breaches=_BREACHES,
        outcomes=_OUTCOMES,
        top_prompts=_TOP_PROMPTS,
        unpriced=_UNPRICED,
        findings=_FINDINGS,
        token_counts_estimated=True,
        notes=("Prices: default price book, with the 20% anthropic/* discount in effect since 2026-09-01.",),
    )
