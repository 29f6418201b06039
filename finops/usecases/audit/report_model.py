"""The monthly token audit report as data: every renderer (Markdown, HTML, JSON, CSV) reads this.

Money is integer nano-dollars (render with ``finops.domain.money.format_usd``); a
``*_prev_nanos`` field is the previous period's figure for deltas (None: no data then).

Unpriced usage (a model without a price in effect) has no cost: a line whose records are all
unpriced has an *unknown* cost (never $0), a line with some unpriced records has a known cost for
the priced part only. :func:`cost_known` says which.

The minimum base (:func:`comparable`): a relative change ("+21%") or a GROWING flag needs a previous
figure worth comparing with. It is not one when the previous period had usage on fewer than half
as many days as this one (a month that started on its last day), or when the line's previous
cost is below :data:`MIN_BASE_PERCENT` percent of its current cost (more than tenfold growth reads
"new", not "+22328.0%").
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "MIN_BASE_PERCENT",
    "Breach",
    "BudgetLine",
    "Finding",
    "FlowOutcomes",
    "MonthlyReport",
    "PromptLine",
    "SpendLine",
    "UnpricedLine",
    "comparable",
    "cost_known",
    "is_breach",
    "prev_is_base",
]

#: A previous cost below this percent of the current one is too small a base for a percentage.
MIN_BASE_PERCENT = 10


def comparable(now: int, prev: int | None, *, base: bool = True) -> bool:
    """Whether ``prev`` is a base for a relative change of ``now`` (see the module docstring)."""
    return base and prev is not None and prev > 0 and prev * 100 >= max(now, 0) * MIN_BASE_PERCENT


def prev_is_base(days_now: int, days_prev: int) -> bool:
    """The previous period is a base when it has usage on at least half as many days as this one."""
    return days_prev * 2 >= days_now


def cost_known(records: int, unpriced_records: int) -> bool:
    """A line's cost is known unless every one of its records is unpriced (no records: known, $0)."""
    return not (records and unpriced_records >= records)


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
    records: int = 0
    unpriced_records: int = 0  # records without a price: their cost is unknown, not in cost_nanos
    prev_cost_known: bool = True  # False: last month's records of this line were all unpriced

    @property
    def cost_known(self) -> bool:
        return cost_known(self.records, self.unpriced_records)


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
    records: int = 0
    unpriced_records: int = 0

    @property
    def cost_known(self) -> bool:
        return cost_known(self.records, self.unpriced_records)


@dataclass(frozen=True)
class Breach:
    budget: str
    period: str  # local day or month
    kind: str  # threshold | monthly | fanout | cost_per_success
    threshold: str
    spend_nanos: int
    cap_nanos: int

    @property
    def over_cap(self) -> bool:
        return is_breach(self)


def is_breach(b: Breach) -> bool:
    """A breach is spend at or over a cap: a daily or monthly threshold of 100% or more, or a cost
    per success over its limit. A lower threshold (50%, 80%) is a crossing, and a fan-out guardrail
    is counted with the crossings (it is not spend over a cap)."""
    if b.kind in ("threshold", "monthly"):
        try:
            return float(b.threshold) >= 1
        except ValueError:
            return False
    return b.kind == "cost_per_success"


@dataclass(frozen=True)
class BudgetLine:
    """One budget against one flow's actual spend over the report's days."""

    flow: str
    budget: str
    daily_cap_nanos: int
    days: int
    actual_nanos: int
    unpriced_records: int = 0

    @property
    def cap_nanos(self) -> int:
        return self.daily_cap_nanos * self.days


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
    #: a partial (current) month: its days ("1–29 Nov"), compared with the same days of the previous one
    partial: str | None = None
    compared_days: str | None = None  # the previous period's days when partial ("1–29 Oct")
    prev_base: bool = True  # the previous period is a base for percentages (see comparable)
    budgets: tuple[BudgetLine, ...] = ()
    budgets_problem: str | None = None  # why no budget could be read (the report never fails for it)
    daily_unpriced: tuple[tuple[str, int], ...] = ()  # (YYYY-MM-DD, unpriced records) on days with any
    records: int = 0
    unpriced_records: int = 0

    @property
    def over_cap(self) -> tuple[Breach, ...]:
        """Breaches proper: spend at or over a cap."""
        return tuple(b for b in self.breaches if is_breach(b))

    @property
    def crossings(self) -> tuple[Breach, ...]:
        """Threshold crossings below the cap (and fan-out guardrails)."""
        return tuple(b for b in self.breaches if not is_breach(b))
