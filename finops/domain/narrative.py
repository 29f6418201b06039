"""The overview's week in five sentences, built from numbers only. Pure: no clock, no I/O.

1. the last 7 closed days against the 7 before (total and change);
2. the flow whose spend changed most;
3. its driver: the model or prompt whose spend moved most within that flow;
4. what is at risk now (budgets yellow or red today, or heading for their cap);
5. one health note (Slack failures, stale sources or provider reports, unpriced records, broken
   budget files, a reconciliation far off; or nothing needs attention).

Money is integer nano-dollars; ``usd`` (the presenters' ``report_data.usd``) turns it into text,
so every amount reads exactly as on the rest of the page. Ties are broken by name, so the same
numbers always make the same sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from finops.domain.words import plural, verb

__all__ = ["Change", "Health", "Risk", "WeekNumbers", "biggest", "weekly_narrative"]

Usd = Callable[[int], str]
#: Names longer than this are cut in a sentence (prompt ids can be 512 characters).
_NAME_CHARS = 60
#: At most this many budgets are named; the rest are counted.
_RISKS_NAMED = 3


@dataclass(frozen=True)
class Change:
    """Spend of one thing (a flow, a model, a prompt) this week and the week before, in nanos."""

    name: str
    this_week: int
    last_week: int

    @property
    def delta(self) -> int:
        return self.this_week - self.last_week


@dataclass(frozen=True)
class Risk:
    """A budget that is yellow or red today, and why."""

    budget: str
    light: Literal["yellow", "red"]
    over_cap: bool = False  # spend at or over the daily or monthly cap
    blocking: bool = False  # a blocking budget denying calls now
    cap_hit_at: datetime | None = None  # projected to reach the cap then (UTC)
    timezone: str = "UTC"
    percent: int = 0  # of today's cap, floored


@dataclass(frozen=True)
class Health:
    unpriced_records: int = 0  # today
    stale_sources: tuple[str, ...] = ()  # sources that have not sent for a day or more
    slack_failed: int = 0
    slack_ambiguous: int = 0
    broken_budget_files: int = 0  # budget files that cannot be read (the overview's red or yellow tile)
    stale_reports: tuple[str, ...] = ()  # provider usage reports not fetched for a day or more
    drift_off: bool = False  # reconciliation drift of the last closed day beyond twice the threshold


@dataclass(frozen=True)
class WeekNumbers:
    """What the sentences are made of: ``first``..``last`` is the week (UTC days, inclusive)."""

    first: date
    last: date
    flows: tuple[Change, ...]
    #: the models and prompts of the flow that changed most (``drivers[i][0]`` is "model"/"prompt")
    drivers: tuple[tuple[Literal["model", "prompt"], Change], ...]
    risks: tuple[Risk, ...]
    budgets: int  # budgets in force
    health: Health

    @property
    def this_week(self) -> int:
        return sum(f.this_week for f in self.flows)

    @property
    def last_week(self) -> int:
        return sum(f.last_week for f in self.flows)


def biggest(changes: Sequence[Change]) -> Change | None:
    """The change largest in size (up or down), ties to the first name; ``None`` when nothing moved."""
    moved = [c for c in changes if c.delta != 0]
    if not moved:
        return None
    return min(moved, key=lambda c: (-abs(c.delta), c.name))


def _name(text: str) -> str:
    return text if len(text) <= _NAME_CHARS else text[: _NAME_CHARS - 1] + "…"


def _percent(delta: int, base: int) -> str:
    """``+12.5%`` of ``base`` (positive), half to even."""
    q = (Decimal(delta) * 100 / Decimal(base)).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    return f"{'+' if q > 0 else ''}{q}%"


def _span(first: date, last: date) -> str:
    if first.year != last.year:
        return f"{first:%-d %b %Y}–{last:%-d %b %Y}"
    if first.month != last.month:
        return f"{first:%-d %b}–{last:%-d %b}"
    return f"{first.day}–{last:%-d %b}"


def _total(n: WeekNumbers, usd: Usd) -> str:
    now, before = n.this_week, n.last_week
    span = f"{_span(n.first, n.last)} (UTC)"
    if now == 0 and before == 0:
        return f"No spend was recorded in the 7 days {span} or the 7 before."
    if before == 0:
        return f"Spend for the 7 days {span} was {usd(now)}; nothing was spent the 7 days before."
    delta = now - before
    if delta == 0:
        return f"Spend for the 7 days {span} was {usd(now)}, unchanged from the 7 days before."
    way = "up" if delta > 0 else "down"
    return (
        f"Spend for the 7 days {span} was {usd(now)}, {way} {usd(abs(delta))} "
        f"({_percent(delta, before)}) from {usd(before)} the 7 days before."
    )


def _tied(top: Change, changes: Sequence[Change]) -> str:
    others = [c.name for c in changes if c is not top and abs(c.delta) == abs(top.delta) and c.delta]
    if not others:
        return ""
    if len(others) == 1:
        return f" (tied with {_name(others[0])})"
    return f" (tied with {plural(len(others), 'other flow')})"


def _flow(n: WeekNumbers, top: Change | None, usd: Usd) -> str:
    if top is None:
        if not n.flows:
            return "No flow has spend to compare."
        return "No flow's spend changed from the week before."
    name = _name(top.name)
    tie = _tied(top, n.flows)
    if top.last_week == 0:
        return f"The biggest change was {name}{tie}, new this week at {usd(top.this_week)}."
    if top.this_week == 0:
        return (
            f"The biggest change was {name}{tie}, down {usd(abs(top.delta))} "
            f"to nothing this week from {usd(top.last_week)}."
        )
    way = "up" if top.delta > 0 else "down"
    return (
        f"The biggest change was {name}{tie}, {way} {usd(abs(top.delta))} "
        f"({_percent(top.delta, top.last_week)}) to {usd(top.this_week)}."
    )


def _driver(n: WeekNumbers, top: Change | None, usd: Usd) -> str:
    if top is None:
        return "With no change in any flow, no model or prompt drove one."
    flow = _name(top.name)
    moved = [(kind, c) for kind, c in n.drivers if c.delta != 0]
    if not moved:
        return f"Within {flow}, no single model or prompt accounts for the change."
    order = {"model": 0, "prompt": 1}
    kind, c = min(moved, key=lambda kc: (-abs(kc[1].delta), order[kc[0]], kc[1].name))
    way = "up" if c.delta > 0 else "down"
    what = f"{kind} {_name(c.name)}"
    if c.last_week == 0:
        return f"Within {flow}, {what} moved most: new at {usd(c.this_week)}."
    return (
        f"Within {flow}, {what} moved most: {way} {usd(abs(c.delta))}, "
        f"from {usd(c.last_week)} to {usd(c.this_week)}."
    )


def _why(r: Risk) -> str:
    if r.blocking:
        return "blocking calls"
    if r.over_cap:
        return "over its cap"
    if r.cap_hit_at is not None:
        return f"heading for its cap at {r.cap_hit_at.astimezone(ZoneInfo(r.timezone)):%H:%M} {r.timezone}"
    return f"at {r.percent}% of its cap"


def _risks(n: WeekNumbers) -> str:
    if not n.budgets:
        return "No budgets are set, so nothing is at risk."
    if not n.risks:
        return f"No budget is at risk today ({plural(n.budgets, 'budget')} green)."
    ordered = sorted(n.risks, key=lambda r: (r.light != "red", r.budget))
    named = [f"{_name(r.budget)} ({_why(r)})" for r in ordered[:_RISKS_NAMED]]
    rest = len(ordered) - len(named)
    if rest:
        named.append(f"{plural(rest, 'more budget')}")
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return f"At risk today: {listed}."


def _health(h: Health) -> str:
    notes = []
    if h.slack_failed:
        notes.append(f"{plural(h.slack_failed, 'Slack message')} failed to deliver")
    if h.slack_ambiguous:
        notes.append(f"{plural(h.slack_ambiguous, 'Slack message')} may not have been delivered")
    if h.stale_sources:
        names = ", ".join(_name(s) for s in h.stale_sources[:_RISKS_NAMED])
        more = len(h.stale_sources) - _RISKS_NAMED
        if more > 0:
            names += f" and {more} more"
        notes.append(f"{'source' if len(h.stale_sources) == 1 else 'sources'} {names} sent nothing for a day")
    if h.unpriced_records:
        notes.append(
            f"{plural(h.unpriced_records, 'record')} today {verb(h.unpriced_records, 'has', 'have')} no price"
        )
    if h.broken_budget_files:
        notes.append(f"{plural(h.broken_budget_files, 'budget file')} cannot be read")
    if h.stale_reports:
        names = ", ".join(_name(s) for s in h.stale_reports[:_RISKS_NAMED])
        notes.append(f"the usage report of {names} was not fetched for a day")
    if h.drift_off:
        notes.append("the last closed day is far off the provider's cost report")
    if not notes:
        return "Nothing needs attention: every source is fresh, every record is priced and Slack delivers."
    text = "; ".join(notes)
    return f"Needs attention: {text}."


def weekly_narrative(n: WeekNumbers, *, usd: Usd) -> tuple[str, str, str, str, str]:
    """Five sentences: total, biggest flow change, its driver, what is at risk, one health note."""
    top = biggest(n.flows)
    return (_total(n, usd), _flow(n, top, usd), _driver(n, top, usd), _risks(n), _health(n.health))
