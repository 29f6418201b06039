"""One flow's engineering page: today against its cap, the burn line, 30 days, and what drives it.

Read from the rollups (``rollups_hourly``, ``rollups_daily``, ``prompt_rollups_daily``) with the
flow compared by equality (a flow name may hold ``*`` or ``%``; it is never a pattern here). Raw
usage is read only over today, through the ``ts_us`` index: the partial hours at either end of a
local day that does not start on a UTC hour, and the tool calls (fan-out), which no rollup sums.
So the page costs the same on a ledger of ten million records as on one of ten thousand.

Days are local to the flow's budget (its first covering budget's time zone), UTC without one.
Today is exact in any zone. For a zone whose offset is not whole hours (Asia/Kolkata), the 30
days and last week count each UTC hour for the local day it starts in: the rollups hold hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, case, func, select

from finops.domain.budgets import Budget, BudgetState, Projection, glob_matches, project
from finops.domain.dashboard import Annotation
from finops.domain.money import usd_to_nanos
from finops.domain.periods import day_range
from finops.storage.reservations import held_by_budget
from finops.storage.tables import prompt_rollups_daily, rollups_daily, rollups_hourly, usage_records
from finops.usecases.budgets import budget_state, flow_in_ledger, successes
from finops.usecases.dashboard.annotations import annotations_between
from finops.usecases.dashboard.overview import budget_unpriced
from finops.usecases.ledger import Ledger

__all__ = [
    "DAYS",
    "BurnPoint",
    "CostPerSuccess",
    "DayPoint",
    "Fanout",
    "FlowBudget",
    "FlowPage",
    "LastWeek",
    "Share",
    "Totals",
    "flow_page",
]

#: How many local days the history chart shows (today included).
DAYS = 30
#: Rows the model and prompt tables keep (the rest is summed into "others").
TOP = 10
_HOUR = 3600
_NO_CAP = 1 << 62


@dataclass
class Totals:
    """Sums of one period (or one model, prompt, hour): cost is exact nano-dollars."""

    cost_nanos: int = 0
    records: int = 0
    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    unpriced_records: int = 0
    failed_cost_nanos: int = 0  # usage with status "error" (the usage record's failed calls)
    failed_records: int = 0

    def add(self, other: Totals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def sub(self, other: Totals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) - getattr(other, name))

    @property
    def cache_hit(self) -> Decimal | None:
        """Cached input tokens as a fraction of input tokens (``None``: no input tokens)."""
        return Decimal(self.cached_input_tokens) / self.input_tokens if self.input_tokens else None


@dataclass(frozen=True)
class FlowBudget:
    """A budget covering the flow, and whether its spend is this flow's alone."""

    state: BudgetState
    only_this_flow: bool  # False: its pattern takes other flows too, or it counts certain tags only
    held_nanos: int = 0  # held now by open reservations against this budget (calls in flight)
    unpriced_records: int = 0  # calls it covers today without a price: its light is not green

    @property
    def budget(self) -> Budget:
        return self.state.budget


@dataclass(frozen=True)
class BurnPoint:
    at: datetime  # UTC
    cumulative_nanos: int


@dataclass(frozen=True)
class DayPoint:
    day: date  # local
    cost_nanos: int
    unpriced_records: int


@dataclass(frozen=True)
class Share:
    """One model's or prompt's spend today and over the 30 days."""

    name: str
    today: Totals
    days: Totals


@dataclass(frozen=True)
class Fanout:
    """Tool calls per request today (records that report ``tool_calls``)."""

    records: int
    requests: int
    tool_calls: int
    most_in_a_record: int
    limit: int | None  # the tightest covering budget's max_tool_calls_per_request
    over_limit: int  # records with more tool calls than ``limit`` per request

    @property
    def per_request(self) -> Decimal | None:
        return Decimal(self.tool_calls) / self.requests if self.requests else None


@dataclass(frozen=True)
class LastWeek:
    """Today until ``until`` against the same weekday a week earlier until the same hour."""

    until: datetime  # UTC, a whole hour (the rollups' grain); today's part is [start, until)
    today_nanos: int
    last_week_nanos: int
    last_week_day_nanos: int  # that whole day

    @property
    def change(self) -> Decimal | None:
        if not self.last_week_nanos:
            return None
        return Decimal(self.today_nanos - self.last_week_nanos) / self.last_week_nanos


@dataclass(frozen=True)
class CostPerSuccess:
    """The budget's spend per successful outcome (``max_cost_per_success_usd`` is the target)."""

    budget_key: str
    limit_nanos: int
    today_spend_nanos: int
    today_successes: int
    yesterday_spend_nanos: int
    yesterday_successes: int

    @staticmethod
    def per(spend: int, wins: int) -> int | None:
        return spend // wins if wins else None


@dataclass(frozen=True)
class FlowPage:
    flow: str
    now: datetime  # UTC
    timezone: str  # the days' zone: the first budget's, else UTC
    day: date  # today, local
    start: datetime  # today's [start, end) in UTC
    end: datetime
    budgets: tuple[FlowBudget, ...]
    today: Totals
    burn: tuple[BurnPoint, ...]  # cumulative spend at each hour boundary up to now, then at now
    projection: Projection  # of this flow's spend to the end of the day, against the cap line
    cap_nanos: int | None  # the cap line: the first budget's daily cap
    daily: tuple[DayPoint, ...]  # DAYS local days, oldest first, today last
    days_total: Totals
    models: tuple[Share, ...]  # by 30-day cost, the costliest first; today's models all kept
    prompts: tuple[Share, ...]  # UTC days: today's UTC day and the 30 UTC days ending today
    prompts_others: int  # prompts left out of ``prompts``
    fanout: Fanout
    last_week: LastWeek
    cost_per_success: tuple[CostPerSuccess, ...]
    annotations_today: tuple[Annotation, ...]
    annotations_days: tuple[Annotation, ...]

    @property
    def budget(self) -> FlowBudget | None:
        """The budget the page measures today against (the first: this flow's own when it has one)."""
        return self.budgets[0] if self.budgets else None


# --------------------------------------------------------------------------- which budgets


def _literal(pattern: str) -> bool:
    return not any(c in pattern for c in "*?")


def covering(budgets: Iterable[Budget], flow: str) -> list[Budget]:
    """Budgets whose flow (or match glob) takes ``flow``: its own first, then the narrowest."""
    found = [b for b in budgets if b.flow == flow or (b.flow is None and glob_matches(b.flow_pattern, flow))]
    return sorted(
        found,
        key=lambda b: (
            b.flow != flow and not (_literal(b.flow_pattern) and b.flow_pattern == flow),
            bool(b.tag_filter),
            -len(b.flow_pattern),
            b.key,
        ),
    )


def names_flow(budget: Budget, flow: str) -> bool:
    """The budget names exactly this flow (a glob that only matches it does not count as naming it)."""
    return budget.flow_pattern == flow and _literal(flow)


# --------------------------------------------------------------------------- queries


def _measures(table: Table) -> list[Any]:
    c = table.c
    failed = c.status != "ok"
    return [
        func.sum(c.cost_nanos),
        func.sum(c.records),
        func.sum(c.requests),
        func.sum(c.input_tokens),
        func.sum(c.cached_input_tokens),
        func.sum(c.unpriced_records),
        func.sum(case((failed, c.cost_nanos), else_=0)),
        func.sum(case((failed, c.records), else_=0)),
    ]


def _raw_measures() -> list[Any]:
    u = usage_records.c
    failed = u.status != "ok"
    priced = u.cost_nanos.is_not(None)
    return [
        func.coalesce(func.sum(u.cost_nanos), 0),
        func.count(),
        func.sum(u.requests),
        func.sum(u.input_tokens),
        func.sum(u.cached_input_tokens),
        func.sum(case((priced, 0), else_=1)),
        func.coalesce(func.sum(case((failed, u.cost_nanos), else_=0)), 0),
        func.sum(case((failed, 1), else_=0)),
    ]


def _totals(values: Sequence[Any]) -> Totals:
    return Totals(*(int(v or 0) for v in values))


def _bucketed(conn: Connection, table: Table, bucket: str, flow: str, lo: int, hi: int) -> list[Any]:
    """(bucket, model, provider, *sums) of ``flow`` for buckets in [lo, hi) (epoch seconds)."""
    c = table.c
    keys = [c[bucket], c.model, c.provider]
    stmt = (
        select(*keys, *_measures(table))
        .where(c[bucket] >= lo, c[bucket] < hi, c.flow == flow)
        .group_by(*keys)
    )
    return list(conn.execute(stmt))


def _raw(conn: Connection, flow: str, lo: datetime, hi: datetime) -> list[Any]:
    """(model, provider, *sums) of ``flow``'s raw records in [lo, hi): a part of an hour of today."""
    u = usage_records.c
    stmt = (
        select(u.model, u.provider, *_raw_measures())
        .where(
            u.ts_us >= int(lo.timestamp() * 1_000_000),
            u.ts_us < int(hi.timestamp() * 1_000_000),
            u.flow == flow,
        )
        .group_by(u.model, u.provider)
    )
    return list(conn.execute(stmt))


def _hour_floor(t: datetime) -> int:
    return int(t.timestamp()) // _HOUR * _HOUR


def _hour_ceil(t: datetime) -> int:
    return -(-int(t.timestamp()) // _HOUR) * _HOUR


def _model_name(provider: str, model: str) -> str:
    return f"{provider}/{model}"


@dataclass
class _Today:
    total: Totals
    by_hour: dict[int, int]  # bucket start (epoch s; a partial first hour: today's start) -> cost
    by_model: dict[str, Totals]


def _today(conn: Connection, flow: str, start: datetime, end: datetime) -> _Today:
    """Today exactly: hourly rollups for whole hours, raw records for partial hours at the ends."""
    h_lo, h_hi = _hour_ceil(start), _hour_floor(end)
    pieces: list[tuple[int, list[Any]]] = []  # (bucket, rows of (model, provider, *sums))
    if h_lo > h_hi:
        pieces.append((int(start.timestamp()), _raw(conn, flow, start, end)))
    else:
        if int(start.timestamp()) < h_lo:
            pieces.append(
                (int(start.timestamp()), _raw(conn, flow, start, datetime.fromtimestamp(h_lo, UTC)))
            )
        if h_hi < int(end.timestamp()):
            pieces.append((h_hi, _raw(conn, flow, datetime.fromtimestamp(h_hi, UTC), end)))
        for row in _bucketed(conn, rollups_hourly, "hour", flow, h_lo, h_hi):
            pieces.append((int(row[0]), [row[1:]]))
    out = _Today(Totals(), {}, {})
    for bucket, rows in pieces:
        for model, provider, *sums in rows:
            t = _totals(sums)
            if not t.records:
                continue
            out.total.add(t)
            out.by_hour[bucket] = out.by_hour.get(bucket, 0) + t.cost_nanos
            out.by_model.setdefault(_model_name(provider, model), Totals()).add(t)
    return out


def _hours_in(conn: Connection, flow: str, hours: Sequence[int]) -> list[Any]:
    """(hour, model, provider, *sums) of ``flow`` for the listed hour buckets (index seeks)."""
    if not hours:
        return []
    c = rollups_hourly.c
    keys = [c.hour, c.model, c.provider]
    stmt = (
        select(*keys, *_measures(rollups_hourly))
        .where(c.hour.in_(sorted(hours)), c.flow == flow)
        .group_by(*keys)
    )
    return list(conn.execute(stmt))


def _history(
    conn: Connection, flow: str, zone: ZoneInfo, first: datetime, today_start: datetime
) -> tuple[dict[date, Totals], dict[str, Totals]]:
    """The local days in [first, today_start) by day and by model.

    Whole UTC days come from the daily rollups; the hours of a UTC day that fall on another local
    date (Berlin's 23:00Z, New York's 00:00-04:59Z) and the partial UTC days at either end come
    from the hourly rollups, each hour moved to the local day it starts in. So Berlin reads 30
    daily buckets and about 80 hourly ones where reading every hour would take 720 per key.
    """
    lo, hi = _hour_floor(first), _hour_floor(today_start)  # a straddling last hour is today's
    d_lo, d_hi = -(-lo // 86400) * 86400, hi // 86400 * 86400
    if d_lo >= d_hi:
        d_lo = d_hi = hi  # under a day of whole UTC days: hours only
    local_of: dict[int, date] = {}
    edge = [*range(lo, d_lo, _HOUR), *range(d_hi, hi, _HOUR)]
    moved = []
    for day in range(d_lo, d_hi, 86400):
        utc_date = datetime.fromtimestamp(day, UTC).date()
        for hour in range(day, day + 86400, _HOUR):
            local_of[hour] = datetime.fromtimestamp(hour, UTC).astimezone(zone).date()
            if local_of[hour] != utc_date:
                moved.append(hour)
    for hour in edge:
        local_of[hour] = datetime.fromtimestamp(hour, UTC).astimezone(zone).date()
    oldest = first.astimezone(zone).date()
    by_day: dict[date, Totals] = {}
    by_model: dict[str, Totals] = {}

    def put(day: date, model: str, t: Totals, sign: int = 1) -> None:
        if day < oldest:
            return
        for acc in (by_day.setdefault(day, Totals()), by_model.setdefault(model, Totals())):
            acc.add(t) if sign > 0 else acc.sub(t)

    if d_lo < d_hi:
        for row in _bucketed(conn, rollups_daily, "day", flow, d_lo, d_hi):
            put(
                datetime.fromtimestamp(int(row[0]), UTC).date(), _model_name(row[2], row[1]), _totals(row[3:])
            )
    moved_set = set(moved)
    for row in _hours_in(conn, flow, [*edge, *moved]):
        hour, model, t = int(row[0]), _model_name(row[2], row[1]), _totals(row[3:])
        if hour in moved_set:  # counted in its UTC day's daily bucket: take it out of there
            put(datetime.fromtimestamp(hour // 86400 * 86400, UTC).date(), model, t, -1)
        put(local_of[hour], model, t)
    return by_day, by_model


def _hours_sum(conn: Connection, flow: str, lo: int, hi: int) -> int:
    r = rollups_hourly.c
    stmt = select(func.coalesce(func.sum(r.cost_nanos), 0)).where(r.hour >= lo, r.hour < hi, r.flow == flow)
    return int(conn.scalar(stmt) or 0)


def _prompts(conn: Connection, flow: str, now: datetime) -> tuple[list[Share], int]:
    """Spend per prompt over the 30 UTC days ending today, and today's UTC day."""
    p = prompt_rollups_daily.c
    today = _hour_floor(now) // 86400 * 86400
    lo = today - (DAYS - 1) * 86400
    is_today = p.day == today
    stmt = (
        select(
            p.prompt_id,
            func.sum(p.cost_nanos),
            func.sum(p.records),
            func.sum(p.requests),
            func.sum(p.input_tokens),
            func.sum(p.cached_input_tokens),
            func.sum(p.unpriced_records),
            func.sum(case((is_today, p.cost_nanos), else_=0)),
            func.sum(case((is_today, p.records), else_=0)),
            func.sum(case((is_today, p.requests), else_=0)),
            func.sum(case((is_today, p.input_tokens), else_=0)),
            func.sum(case((is_today, p.cached_input_tokens), else_=0)),
            func.sum(case((is_today, p.unpriced_records), else_=0)),
        )
        .where(p.day >= lo, p.day <= today, p.flow == flow)
        .group_by(p.prompt_id)
    )
    shares = []
    for prompt, *v in conn.execute(stmt):
        days = Totals(*(int(x or 0) for x in v[0:6]))
        today_t = Totals(*(int(x or 0) for x in v[6:12]))
        shares.append(Share(str(prompt) or "(no prompt_id)", today_t, days))
    shares.sort(key=lambda s: (-s.days.cost_nanos, -s.today.cost_nanos, s.name))
    return shares[:TOP], max(len(shares) - TOP, 0)


def _fanout(conn: Connection, flow: str, start: datetime, end: datetime, limit: int | None) -> Fanout:
    """Today's records of ``flow`` that report tool calls: one pass over today's ``ts_us`` range."""
    u = usage_records.c
    over = case((u.tool_calls > (limit if limit is not None else 0) * u.requests, 1), else_=0)
    stmt = select(
        func.count(), func.sum(u.requests), func.sum(u.tool_calls), func.max(u.tool_calls), func.sum(over)
    ).where(
        u.ts_us >= int(start.timestamp() * 1_000_000),
        u.ts_us < int(end.timestamp() * 1_000_000),
        u.flow == flow,
        u.tool_calls.is_not(None),
    )
    records, requests, calls, most, over_n = conn.execute(stmt).one()
    return Fanout(
        records=int(records or 0),
        requests=int(requests or 0),
        tool_calls=int(calls or 0),
        most_in_a_record=int(most or 0),
        limit=limit,
        over_limit=int(over_n or 0) if limit is not None else 0,
    )


def _cost_per_success(conn: Connection, fb: FlowBudget, now: datetime) -> CostPerSuccess | None:
    budget = fb.budget
    if budget.max_cost_per_success_usd is None:
        return None
    day, _, _ = budget.day(now - timedelta(days=1))
    noon = datetime.combine(day, datetime.min.time(), budget.zone) + timedelta(hours=12)
    yesterday = budget_state(conn, budget, noon)
    return CostPerSuccess(
        budget_key=budget.key,
        limit_nanos=usd_to_nanos(budget.max_cost_per_success_usd),
        today_spend_nanos=fb.state.spend_nanos,
        today_successes=successes(conn, budget, fb.state.start, now),
        yesterday_spend_nanos=yesterday.spend_nanos,
        yesterday_successes=successes(conn, budget, yesterday.start, yesterday.end),
    )


# --------------------------------------------------------------------------- the page


def _burn(today: _Today, start: datetime, end: datetime, now: datetime) -> tuple[BurnPoint, ...]:
    """Cumulative spend at today's start, each UTC hour boundary passed, and now."""
    stop = min(max(now, start), end)
    marks = [start]
    hour = _hour_ceil(start) if _hour_ceil(start) > int(start.timestamp()) else int(start.timestamp()) + _HOUR
    while hour <= int(stop.timestamp()):
        marks.append(datetime.fromtimestamp(hour, UTC))
        hour += _HOUR
    points = []
    for mark in marks:
        upto = int(mark.timestamp())
        points.append(BurnPoint(mark, sum(v for b, v in today.by_hour.items() if b < upto)))
    if stop > marks[-1]:
        points.append(BurnPoint(stop, today.total.cost_nanos))
    else:  # now is on a boundary: spend stamped in the hour now begins counts too
        points[-1] = BurnPoint(stop, today.total.cost_nanos)
    return tuple(points)


def _last_week(
    conn: Connection,
    flow: str,
    zone: ZoneInfo,
    local: date,
    start: datetime,
    now: datetime,
    today: _Today,
    by_day: dict[date, Totals],
) -> LastWeek:
    """Today's whole hours against the same hours of the same local weekday a week earlier."""
    until = max(_hour_floor(now), int(start.timestamp()))
    lw_start, _ = day_range(local - timedelta(days=7), zone)
    lw_until = int(lw_start.timestamp()) + until - int(start.timestamp())
    # nothing before the first whole hour yet (a +05:30 day starts mid-hour): 0 against 0
    before = _hours_sum(conn, flow, _hour_floor(lw_start), lw_until) if until > int(start.timestamp()) else 0
    return LastWeek(
        until=datetime.fromtimestamp(until, UTC),
        today_nanos=sum(v for b, v in today.by_hour.items() if b < until),
        last_week_nanos=before,
        last_week_day_nanos=by_day.get(local - timedelta(days=7), Totals()).cost_nanos,
    )


def flow_page(ledger: Ledger, budgets: Sequence[Budget], flow: str, now: datetime) -> FlowPage | None:
    """The flow's page at ``now`` (UTC-aware); ``None`` when neither the ledger nor a budget names it."""
    now = now.astimezone(UTC)
    mine = covering(budgets, flow)
    with ledger.read_engine.connect() as conn:
        if not flow_in_ledger(conn, flow) and not any(names_flow(b, flow) for b in mine):
            return None
        # The holds before the spend (as check_flow and decide): a settle committing between the
        # two reads is then shown twice, never in neither (a budget looking further from its cap).
        held = held_by_budget(conn, [b.key for b in mine], now_us=int(now.timestamp() * 1_000_000))
        states = [budget_state(conn, b, now) for b in mine]
        fbs = tuple(
            FlowBudget(
                s,
                names_flow(s.budget, flow) and not s.budget.tag_filter,
                held.get(s.budget.key, 0),
                budget_unpriced(conn, s.budget, s.start, s.end),
            )
            for s in states
        )
        zone = mine[0].zone if mine else ZoneInfo("UTC")
        local = now.astimezone(zone).date()
        start, end = day_range(local, zone)
        today = _today(conn, flow, start, end)
        first, _ = day_range(local - timedelta(days=DAYS - 1), zone)
        by_day, by_model = _history(conn, flow, zone, first, start)
        last_week = _last_week(conn, flow, zone, local, start, now, today, by_day)
        prompts, prompts_others = _prompts(conn, flow, now)
        limits = [b.max_tool_calls_per_request for b in mine if b.max_tool_calls_per_request is not None]
        fanout = _fanout(conn, flow, start, end, min(limits) if limits else None)
        cps = tuple(c for c in (_cost_per_success(conn, fb, now) for fb in fbs) if c is not None)
        notes_today = annotations_between(conn, start, end, flow=flow, budgets=budgets)
        notes_days = annotations_between(conn, first, end, flow=flow, budgets=budgets)
    by_day[local] = today.total
    daily = []
    days_total = Totals()
    for i in range(DAYS):
        d = local - timedelta(days=DAYS - 1 - i)
        t = by_day.get(d, Totals())
        days_total.add(t)
        daily.append(DayPoint(d, t.cost_nanos, t.unpriced_records))
    models = []
    for name in set(by_model) | set(today.by_model):
        days = Totals()
        days.add(by_model.get(name, Totals()))
        days.add(today.by_model.get(name, Totals()))
        models.append(Share(name, today.by_model.get(name, Totals()), days))
    models.sort(key=lambda s: (-s.days.cost_nanos, -s.today.cost_nanos, s.name))
    cap = fbs[0].state.cap_nanos if fbs else None
    projection = project(
        spend_nanos=today.total.cost_nanos, cap_nanos=cap or _NO_CAP, start=start, end=end, now=now
    )
    return FlowPage(
        flow=flow,
        now=now,
        timezone=str(zone),
        day=local,
        start=start,
        end=end,
        budgets=fbs,
        today=today.total,
        burn=_burn(today, start, end, now),
        projection=projection,
        cap_nanos=cap,
        daily=tuple(daily),
        days_total=days_total,
        models=tuple(models),
        prompts=tuple(prompts),
        prompts_others=prompts_others,
        fanout=fanout,
        last_week=last_week,
        cost_per_success=cps,
        annotations_today=tuple(notes_today),
        annotations_days=tuple(notes_days),
    )
