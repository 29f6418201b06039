"""The monthly token audit report as data: every renderer (Markdown, HTML, JSON, CSV) reads this.

Money is integer nano-dollars (render with ``finops.domain.money.format_usd``); a
``*_prev_nanos`` field is the previous period's figure for deltas (None: no data then).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Breach",
    "Finding",
    "FlowOutcomes",
    "MonthlyReport",
    "PromptLine",
    "SpendLine",
    "UnpricedLine",
]


@dataclass(frozen=True)
class SpendLine:
    """Spend of one group (a flow, a model, a provider or a tag value) this month and last."""

    key: str
    cost_nanos: int
    prev_cost_nanos: int | None
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int


@dataclass(frozen=True)
class FlowOutcomes:
    """Cost per successful outcome of one flow: all its spend (failed calls too) / successes."""

    flow: str
    cost_nanos: int
    outcomes: int
    successes: int
    failures: int
    partials: int
    value_nanos: int | None  # sum of value_usd of successes, when senders give it
    cost_per_success_nanos: int | None  # None when there were no successes
    cost_per_attempt_nanos: int | None  # cost / outcomes
    prev_cost_per_success_nanos: int | None

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.outcomes if self.outcomes else None


@dataclass(frozen=True)
class PromptLine:
    """One prompt (sender's prompt_id, or a fingerprint ``fp:...`` of its normalised text)."""

    prompt: str
    cost_nanos: int
    share: float  # fraction of the month's total, 0..1 (a ratio of two exact sums)
    calls: int
    avg_input_tokens: int
    avg_output_tokens: int
    cache_hit_ratio: float  # cached input / input, 0..1
    success_rate: float | None  # of the outcomes linked to its calls; None without outcomes
    flows: tuple[str, ...]
    models: tuple[str, ...]
    prev_cost_nanos: int | None  # None: not seen in the previous period
    flags: tuple[str, ...]  # NEW, GROWING, BLOATED
    preview: str | None = None  # redacted preview, only when the operator opted in


@dataclass(frozen=True)
class Breach:
    budget: str
    period: str  # local day or month
    kind: str  # threshold | monthly | fanout | cost_per_success
    threshold: str
    spend_nanos: int
    cap_nanos: int


@dataclass(frozen=True)
class UnpricedLine:
    model: str  # provider/model
    records: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Finding:
    """Something worth doing, with the numbers that justify it."""

    title: str
    detail: str
    suggestion: str
    saving_nanos: int | None = None  # an estimate, when one can be made


@dataclass(frozen=True)
class MonthlyReport:
    month: str  # 2026-10
    previous_month: str  # 2026-09
    timezone: str
    generated_at: str  # ISO 8601
    total_nanos: int
    prev_total_nanos: int | None
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    by_flow: tuple[SpendLine, ...]
    by_model: tuple[SpendLine, ...]
    by_provider: tuple[SpendLine, ...]
    by_tag: dict[str, tuple[SpendLine, ...]]  # tag key -> lines
    daily: tuple[tuple[str, int], ...]  # (YYYY-MM-DD, cost nanos) for the spend-over-time chart
    breaches: tuple[Breach, ...]
    outcomes: tuple[FlowOutcomes, ...]
    top_prompts: tuple[PromptLine, ...]
    unpriced: tuple[UnpricedLine, ...]
    findings: tuple[Finding, ...]
    token_counts_estimated: bool = False  # some prompt token counts are estimates (no tiktoken encoding)
    notes: tuple[str, ...] = field(default_factory=tuple)
