"""Budgets (docs/design.md §4): the model flow owners write, and its evaluation. Pure: the clock is passed in.

A budget caps the spend of the flows it matches per local day (in its own time
zone: a daylight-saving day lasts 23 or 25 hours) and optionally per local month.
Crossing a threshold (a fraction of the cap) is reported once per budget, local
day and threshold; ``on_breach: block`` makes the gateway check deny.

Which flows a budget applies to (``matches``) and which spend it sums (SQL ``LIKE``,
``finops/storage/sql.py:like_pattern``) must agree, or a ``block`` budget reads $0 and
never denies. So a ``match`` glob has exactly two wildcards, ``*`` and ``?`` (what LIKE
can say; ``[abc]`` is refused), and an exact ``flow`` has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from finops.domain.money import usd_to_nanos
from finops.domain.periods import day_range, month_range

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MAX_THRESHOLDS",
    "SEVERITIES",
    "WARNING_AT",
    "Budget",
    "BudgetMatch",
    "BudgetState",
    "Projection",
    "Severity",
    "budget_from_mapping",
    "budget_to_mapping",
    "evaluate",
    "glob_matches",
    "percent_of",
    "project",
    "severity",
]

DEFAULT_THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))
#: Each threshold can queue one alert a day; a handful is all a person reads.
MAX_THRESHOLDS = 10
#: The wildcards of a ``match`` glob: the two SQL LIKE has (as ``%`` and ``_``).
WILDCARDS = "*?"
#: Money a budget can state: at least a nano-dollar, less than a quadrillion dollars.
MIN_USD = Decimal("1e-9")
MAX_USD = Decimal(10) ** 15
#: Below this much elapsed time a burn rate is noise (one call at 00:01 is not a trend).
MIN_ELAPSED = timedelta(minutes=15)


def percent_of(spend_nanos: int, cap_nanos: int) -> int:
    """Spend as a whole percent of its cap, floored: the one rounding rule of every percentage of a
    cap finops shows (``budgets status``, Slack alerts, digests, the monthly report).

    Floored, so a displayed 100% means the cap was reached (99.97% reads 99%, never 100%), and a
    crossed threshold never displays below itself (spend at 80% of the cap reads at least 80%).
    Negative spend (credits) reads 0%. ``cap_nanos`` must be positive.
    """
    if cap_nanos <= 0:
        raise ValueError("a percentage of a cap needs a positive cap")
    return max(spend_nanos, 0) * 100 // cap_nanos


Severity = Literal["info", "warning", "breach", "blocked"]
#: From least to most urgent.
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "breach", "blocked")
#: A threshold at or above this fraction of the cap is a warning; below it, information.
WARNING_AT = Decimal("0.8")


def severity(level: Decimal, *, on_breach: Literal["alert", "block"] = "alert") -> Severity:
    """How urgent crossing ``level`` (a fraction of the cap: a threshold, or the spend) is.

    ======================  ==============================  =========
    level                   on_breach                       severity
    ======================  ==============================  =========
    below 0.8               any                             info
    0.8 up to 1             any                             warning
    1 or more (cap reached) alert                           breach
    1 or more (cap reached) block (gateways are denied)     blocked
    ======================  ==============================  =========
    """
    if level >= 1:
        return "blocked" if on_breach == "block" else "breach"
    return "warning" if level >= WARNING_AT else "info"


def glob_matches(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern``: ``*`` any run of characters, ``?`` one character,
    everything else itself (case counts). Exactly what ``LIKE`` does with ``like_pattern``.

    Greedy with one backtrack point (the last ``*``): at most len(pattern) x len(text) steps,
    where a regex of ``*a*a*a...`` would backtrack exponentially on a hostile pattern.
    """
    p = t = 0
    star, resume = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] != "*" and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume, p = p, t, p + 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    return pattern[p:].strip("*") == ""


@dataclass(frozen=True)
class BudgetMatch:
    """Which usage a budget covers: a flow glob (``*`` and ``?``) and tags that must all be equal."""

    flow: str = "*"
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """One budget, as written in ``budgets/*.yaml`` and validated by ``finops.config.budget_spec``.

    A plain dataclass (the domain stays pure): the YAML's rules and messages live in the
    config layer, so a command that reads budgets it already validated (``finops check``,
    from the database's copy) never loads the validator.
    """

    owner: str
    daily_cap_usd: Decimal
    name: str | None = None
    flow: str | None = None
    match: BudgetMatch | None = None
    slack_channel: str | None = None
    monthly_cap_usd: Decimal | None = None
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS
    timezone: str = "UTC"
    on_breach: Literal["alert", "block"] = "alert"
    max_cost_per_success_usd: Decimal | None = None
    max_tool_calls_per_request: int | None = None

    @property
    def key(self) -> str:
        """The stable id breaches are recorded under (survives cap and threshold edits)."""
        if self.name:
            return self.name
        if self.flow is not None:
            return self.flow
        assert self.match is not None
        tags = ",".join(f"{k}={v}" for k, v in sorted(self.match.tags.items()))
        return f"{self.match.flow}[{tags}]" if tags else self.match.flow

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def flow_pattern(self) -> str:
        return self.flow if self.flow is not None else (self.match.flow if self.match else "*")

    @property
    def tag_filter(self) -> Mapping[str, str]:
        return self.match.tags if self.match is not None else {}

    @property
    def daily_cap_nanos(self) -> int:
        return usd_to_nanos(self.daily_cap_usd)

    @property
    def monthly_cap_nanos(self) -> int | None:
        return usd_to_nanos(self.monthly_cap_usd) if self.monthly_cap_usd is not None else None

    def matches(self, flow: str, tags: Mapping[str, str]) -> bool:
        """Whether a record of ``flow`` with ``tags`` counts against this budget."""
        if self.flow is not None:
            return flow == self.flow
        assert self.match is not None
        return glob_matches(self.match.flow, flow) and all(
            tags.get(k) == v for k, v in self.match.tags.items()
        )

    def day(self, now: datetime) -> tuple[date, datetime, datetime]:
        """The local day containing ``now`` and its [start, end) in UTC."""
        local = now.astimezone(self.zone).date()
        start, end = day_range(local, self.zone)
        return local, start, end

    def month(self, now: datetime) -> tuple[str, datetime, datetime]:
        """The local month containing ``now`` (``2026-11``) and its [start, end) in UTC."""
        label = now.astimezone(self.zone).strftime("%Y-%m")
        start, end = month_range(label, self.zone)
        return label, start, end


def budget_to_mapping(budget: Budget) -> dict[str, Any]:
    """The budget as JSON-able values (money as exact decimal strings), for the database's copy."""
    out: dict[str, Any] = {}
    for name in Budget.__dataclass_fields__:
        value = getattr(budget, name)
        if isinstance(value, Decimal):
            value = str(value)
        elif name == "thresholds":
            value = [str(t) for t in value]
        elif isinstance(value, BudgetMatch):
            value = {"flow": value.flow, "tags": dict(value.tags)}
        out[name] = value
    return out


def budget_from_mapping(data: Mapping[str, Any]) -> Budget:
    """A budget from ``budget_to_mapping``'s output: data finops validated when it wrote it."""

    def money(key: str) -> Decimal | None:
        value = data.get(key)
        return None if value is None else Decimal(str(value))

    match = data.get("match")
    daily = money("daily_cap_usd")
    assert daily is not None
    return Budget(
        owner=str(data["owner"]),
        daily_cap_usd=daily,
        name=data.get("name"),
        flow=data.get("flow"),
        match=None if match is None else BudgetMatch(flow=match["flow"], tags=dict(match.get("tags") or {})),
        slack_channel=data.get("slack_channel"),
        monthly_cap_usd=money("monthly_cap_usd"),
        thresholds=tuple(Decimal(str(t)) for t in data.get("thresholds", DEFAULT_THRESHOLDS)),
        timezone=data.get("timezone", "UTC"),
        on_breach="block" if data.get("on_breach") == "block" else "alert",
        max_cost_per_success_usd=money("max_cost_per_success_usd"),
        max_tool_calls_per_request=data.get("max_tool_calls_per_request"),
    )


@dataclass(frozen=True)
class Projection:
    """Where the day is heading at the current burn rate."""

    end_of_period_nanos: int
    cap_hit_at: datetime | None  # UTC; None when the rate will not reach the cap this period


def project(*, spend_nanos: int, cap_nanos: int, start: datetime, end: datetime, now: datetime) -> Projection:
    """Linear projection from the average burn rate since the period began (at least 15 minutes)."""
    now = min(max(now, start), end)
    elapsed = max(now - start, MIN_ELAPSED)
    remaining = end - now
    rate = Decimal(spend_nanos) / Decimal(elapsed // timedelta(microseconds=1))  # nanos per µs
    projected = spend_nanos + int(rate * (remaining // timedelta(microseconds=1)))
    hit: datetime | None = None
    if spend_nanos >= cap_nanos:
        hit = None  # already hit; the breach record says when
    elif rate > 0:
        wait_us = int((cap_nanos - spend_nanos) / rate)
        if wait_us < (end - now) // timedelta(microseconds=1):
            hit = now + timedelta(microseconds=wait_us)
    return Projection(projected, hit)


@dataclass(frozen=True)
class BudgetState:
    """A budget's day at ``now``: spend against cap, thresholds crossed, where it is heading."""

    budget: Budget
    local_day: date
    start: datetime
    end: datetime
    spend_nanos: int
    cap_nanos: int
    crossed: tuple[Decimal, ...]
    projection: Projection
    month_label: str | None = None
    month_spend_nanos: int | None = None
    month_cap_nanos: int | None = None
    month_crossed: tuple[Decimal, ...] = ()

    @property
    def fraction(self) -> Decimal:
        return Decimal(self.spend_nanos) / Decimal(self.cap_nanos)

    @property
    def percent(self) -> int:
        """Spend as a whole percent of the cap, floored (:func:`percent_of`)."""
        return percent_of(self.spend_nanos, self.cap_nanos)

    @property
    def remaining_nanos(self) -> int:
        return max(self.cap_nanos - self.spend_nanos, 0)

    @property
    def state(self) -> Literal["ok", "warning", "breached"]:
        if self.spend_nanos >= self.cap_nanos or (
            self.month_cap_nanos is not None and (self.month_spend_nanos or 0) >= self.month_cap_nanos
        ):
            return "breached"
        return "warning" if self.crossed or self.month_crossed else "ok"


def _crossed(spend: int, cap: int, thresholds: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
    return tuple(t for t in thresholds if Decimal(spend) >= t * cap)


def evaluate(
    budget: Budget, *, now: datetime, spend_nanos: int, month_spend_nanos: int | None = None
) -> BudgetState:
    """The state of ``budget`` at ``now`` given the spend of its local day (and month)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    local_day, start, end = budget.day(now)
    cap = budget.daily_cap_nanos
    state = BudgetState(
        budget=budget,
        local_day=local_day,
        start=start,
        end=end,
        spend_nanos=spend_nanos,
        cap_nanos=cap,
        crossed=_crossed(spend_nanos, cap, budget.thresholds),
        projection=project(spend_nanos=spend_nanos, cap_nanos=cap, start=start, end=end, now=now),
    )
    month_cap = budget.monthly_cap_nanos
    if month_cap is not None and month_spend_nanos is not None:
        label, _, _ = budget.month(now)
        state = BudgetState(
            **{
                **state.__dict__,
                "month_label": label,
                "month_spend_nanos": month_spend_nanos,
                "month_cap_nanos": month_cap,
                "month_crossed": _crossed(month_spend_nanos, month_cap, budget.thresholds),
            },
        )
    return state
