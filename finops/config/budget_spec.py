"""The rules of a budget as written in ``budgets/*.yaml``: pydantic models that validate a file's
values and turn them into the domain's ``Budget``.

Kept out of ``finops.domain`` so the domain stays plain dataclasses and so that reading a
budget finops already validated (``finops check`` reads the database's copy) never loads
pydantic. The class names are the ones the JSON Schema shows (``#/$defs/Budget``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from finops.domain import budgets as domain
from finops.domain.budgets import DEFAULT_THRESHOLDS, MAX_THRESHOLDS, MAX_USD, MIN_USD, WILDCARDS

__all__ = ["Budget", "BudgetMatch", "parse_budget"]


#: Tag limits of the usage record (``domain/usage.py``): a longer one could never match.
TagKey = Annotated[str, StringConstraints(max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]


class BudgetMatch(BaseModel):
    """Which usage a budget covers: a flow glob (``*`` and ``?``) and tags that must all be equal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: str = Field(default="*", min_length=1, max_length=256)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=64)

    @field_validator("flow")
    @classmethod
    def _only_star_and_question_mark(cls, value: str) -> str:
        if "[" in value:
            instead = re.sub(r"\[[^\]]*\]?", "?", value)
            raise ValueError(
                f"only * and ? are wildcards; [...] is not supported (got {value!r}): "
                f"use {instead} or one budget per flow"
            )
        return value


class Budget(BaseModel):
    """One budget, as written in ``budgets/*.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Stable id breaches are recorded under; default: the flow, or the match",
    )
    flow: str | None = Field(default=None, min_length=1, max_length=256, description="Exact flow name")
    match: BudgetMatch | None = Field(default=None, description="Or: flow glob and tags")
    owner: str = Field(
        min_length=1, max_length=200, description="Slack user id (U123), email, or handle (@dana) to mention"
    )
    slack_channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Channel for alerts (#name or id); default FINOPS_SLACK_DEFAULT_CHANNEL",
    )
    daily_cap_usd: Decimal = Field(gt=0, lt=MAX_USD, description="USD per local day")
    monthly_cap_usd: Decimal | None = Field(default=None, gt=0, lt=MAX_USD, description="USD per local month")
    thresholds: tuple[Decimal, ...] = Field(
        default=DEFAULT_THRESHOLDS,
        max_length=MAX_THRESHOLDS,
        description="Fractions of the cap that alert once a day each",
    )
    timezone: str = Field(
        default="UTC", max_length=64, description="IANA zone; the day resets at local midnight"
    )
    on_breach: Literal["alert", "block"] = Field(
        default="alert", description="block: `finops check` denies once the cap is reached"
    )
    max_cost_per_success_usd: Decimal | None = Field(
        default=None, gt=0, lt=MAX_USD, description="Alert when cost per successful outcome is above"
    )
    max_tool_calls_per_request: int | None = Field(
        default=None, gt=0, le=100_000, description="Fan-out guardrail: alert on requests above this"
    )

    @field_validator("daily_cap_usd", "monthly_cap_usd", "max_cost_per_success_usd", mode="before")
    @classmethod
    def _money(cls, value: object) -> object:
        if isinstance(value, bool) or (value is not None and not isinstance(value, int | Decimal | str)):
            raise ValueError(f"must be a positive number, got {value!r}")
        if isinstance(value, str):
            try:
                return Decimal(value.strip())
            except ArithmeticError:
                raise ValueError(f"must be a positive number, got {value!r}") from None
        return value

    @field_validator("daily_cap_usd", "monthly_cap_usd", "max_cost_per_success_usd")
    @classmethod
    def _at_least_a_nano(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < MIN_USD:
            raise ValueError(f"must be at least one nano-dollar (0.000000001 USD), got {value}")
        return value

    @field_validator("flow")
    @classmethod
    def _exact(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in WILDCARDS):
            raise ValueError(
                f"flow {value!r} has a wildcard, but flow: is one exact flow name; "
                f'to budget every matching flow write match: {{flow: "{value}"}}'
            )
        return value

    @field_validator("thresholds", mode="before")
    @classmethod
    def _few_thresholds(cls, value: object) -> object:
        """Counted as written, before any is parsed: 2,000 of them are one problem, not 2,000."""
        if isinstance(value, list | tuple) and len(value) > MAX_THRESHOLDS:
            raise ValueError(f"at most {MAX_THRESHOLDS} per budget, got {len(value)}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if not value:
            raise ValueError("needs at least one threshold, e.g. [0.5, 0.8, 1.0]")
        for t in value:
            if not Decimal(0) < t <= Decimal(10):
                raise ValueError(f"each threshold is a fraction of the cap in (0, 10], got {t}")
        return tuple(sorted(set(value)))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> Budget:
        if (self.flow is None) == (self.match is None):
            raise ValueError("give exactly one of `flow` (a flow name) or `match` (flow glob and tags)")
        return self

    def to_budget(self) -> domain.Budget:
        """The validated budget as the domain's dataclass."""
        return domain.Budget(
            owner=self.owner,
            daily_cap_usd=self.daily_cap_usd,
            name=self.name,
            flow=self.flow,
            match=None
            if self.match is None
            else domain.BudgetMatch(flow=self.match.flow, tags=dict(self.match.tags)),
            slack_channel=self.slack_channel,
            monthly_cap_usd=self.monthly_cap_usd,
            thresholds=self.thresholds,
            timezone=self.timezone,
            on_breach=self.on_breach,
            max_cost_per_success_usd=self.max_cost_per_success_usd,
            max_tool_calls_per_request=self.max_tool_calls_per_request,
        )


def parse_budget(data: Any = None, /, **fields: Any) -> domain.Budget:
    """A budget from a mapping (or keywords) as a file would hold it: validated, or ValidationError."""
    return Budget.model_validate(data if data is not None else fields).to_budget()
