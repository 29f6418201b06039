"""Reconciliation: finops's metered cost of a provider day against what the provider billed. Pure.

The drift is ``reported - metered`` (positive: the provider billed more than finops
counted). Each day gets the causes its numbers point at, so a person knows where
to look:

- **missing usage**: the provider counted more tokens than finops metered (calls
  that never reached finops);
- **usage finops has but the provider does not**: the reverse (another organization's
  or key's records, test data, or the same calls sent twice under different ids);
- **unpriced models**: finops has records without a price that day, which count $0
  in the metered cost until they are priced;
- **wrong prices**: the tokens agree but the money does not (a stale price, a missed
  discount, a tier priced as another);
- **no provider report**: nothing to compare against yet (poller off or lagging).

Token counts agree when they differ by at most ``tolerance_pct`` percent of the larger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from finops.domain.money import format_usd

__all__ = [
    "MISSING_USAGE",
    "NO_REPORT",
    "TOKEN_TOLERANCE_PCT",
    "UNPRICED",
    "UNREPORTED_USAGE",
    "WRONG_PRICES",
    "Cause",
    "Drift",
    "MeteredDay",
    "ReportedDay",
    "past_threshold",
    "reconcile_day",
]

MISSING_USAGE = "missing usage"
UNREPORTED_USAGE = "usage finops has but the provider does not"
UNPRICED = "unpriced models"
WRONG_PRICES = "wrong prices"
NO_REPORT = "no provider report"
TOKEN_TOLERANCE_PCT = Decimal("1")


@dataclass(frozen=True)
class MeteredDay:
    """What finops metered for one provider and UTC day (from the daily rollups)."""

    cost_nanos: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    records: int = 0
    unpriced_records: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ReportedDay:
    """What the provider reported for the day; ``None`` where it sent no report of that kind."""

    cost_nanos: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def tokens(self) -> int | None:
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Cause:
    """A likely cause: its name (one of the constants above) and what the numbers say."""

    name: str
    detail: str


@dataclass(frozen=True)
class Drift:
    provider: str
    day: date
    metered: MeteredDay
    reported: ReportedDay
    drift_nanos: int | None  # reported - metered; None without a cost report
    drift_pct: Decimal | None  # of the reported cost, 2 places; None without one (or when it is $0)
    causes: tuple[Cause, ...]


def _differs(a: int, b: int, tolerance_pct: Decimal) -> bool:
    return Decimal(abs(a - b)) * 100 > tolerance_pct * max(a, b)


def _usd(nanos: int) -> str:
    return ("-$" if nanos < 0 else "$") + format_usd(abs(nanos), cents=True)


def reconcile_day(
    provider: str,
    day: date,
    metered: MeteredDay,
    reported: ReportedDay,
    *,
    tolerance_pct: Decimal = TOKEN_TOLERANCE_PCT,
) -> Drift:
    """The drift of one provider day and its likely causes."""
    drift = None if reported.cost_nanos is None else reported.cost_nanos - metered.cost_nanos
    pct = None
    if drift is not None and reported.cost_nanos:
        pct = (Decimal(drift) * 100 / reported.cost_nanos).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    causes: list[Cause] = []
    if reported.cost_nanos is None:
        causes.append(Cause(NO_REPORT, f"no {provider} cost report for {day}: run `finops poll` (or wait)"))
    if metered.unpriced_records:
        causes.append(
            Cause(
                UNPRICED,
                f"{metered.unpriced_records:,} record(s) have no price and count $0 here: add their "
                "prices (`finops prices`), then `finops reprice`",
            )
        )
    tokens = reported.tokens
    tokens_agree = False
    if tokens is not None:
        gap = tokens - metered.tokens
        if _differs(tokens, metered.tokens, tolerance_pct) and gap > 0:
            causes.append(
                Cause(
                    MISSING_USAGE,
                    f"{provider} counted {gap:,} more tokens than finops metered ({tokens:,} vs "
                    f"{metered.tokens:,}): some calls never reached finops",
                )
            )
        elif _differs(tokens, metered.tokens, tolerance_pct):
            causes.append(
                Cause(
                    UNREPORTED_USAGE,
                    f"finops metered {-gap:,} more tokens than {provider} reported ({metered.tokens:,} vs "
                    f"{tokens:,}): another organization's keys, test data, or calls sent twice",
                )
            )
        else:
            tokens_agree = True
    if (
        tokens_agree
        and drift is not None
        and reported.cost_nanos is not None
        and not metered.unpriced_records
        and _differs(reported.cost_nanos, metered.cost_nanos, tolerance_pct)
    ):
        causes.append(
            Cause(
                WRONG_PRICES,
                f"tokens agree within {tolerance_pct}% but the cost is off by {_usd(drift)}: check the "
                "prices in force (`finops prices show MODEL`) and discounts (FINOPS_PRICE_OVERRIDES)",
            )
        )
    return Drift(provider, day, metered, reported, drift, pct, tuple(causes))


def past_threshold(drift: Drift, *, threshold_pct: Decimal, min_nanos: int) -> bool:
    """Whether a day drifts by more than ``threshold_pct`` percent AND more than ``min_nanos``.

    A day the provider billed $0 for but finops metered money is past any percentage.
    """
    if drift.drift_nanos is None or abs(drift.drift_nanos) <= min_nanos:
        return False
    return drift.drift_pct is None or abs(drift.drift_pct) > threshold_pct
