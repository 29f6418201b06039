"""Build the monthly token audit report from the ledger (renderers live in render_*.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from finops.domain.budgets import Budget
from finops.domain.money import format_usd
from finops.domain.periods import day_range, month_range
from finops.domain.words import plural
from finops.errors import FinopsError
from finops.storage.db import one_snapshot, write_transaction
from finops.storage.outcomes import relink_unlinked
from finops.storage.tables import budget_breaches, prompts, rollups_daily
from finops.usecases.audit.outcomes import flow_outcomes
from finops.usecases.audit.prompts import PromptAuditOptions, top_prompts
from finops.usecases.audit.report_model import (
    Breach,
    BudgetLine,
    Finding,
    FlowOutcomes,
    MonthlyReport,
    PromptLine,
    SpendLine,
    UnpricedLine,
    cost_known,
    is_breach,
    prev_is_base,
)
from finops.usecases.budgets import budgets_in_force
from finops.usecases.ledger import Ledger
from finops.usecases.prices import unpriced_models
from finops.usecases.spend import SpendQuery, SpendResult, run_spend

__all__ = ["ReportPeriod", "build_monthly_report", "last_complete_month", "previous_month", "report_period"]

#: A prompt this long (average input tokens) with this few cache hits is worth caching.
CACHE_MIN_TOKENS = 2000
CACHE_MAX_HIT = 0.2
#: A flow whose cost per success is this many times its peers' median stands out.
OUTLIER_FACTOR = 3


def previous_month(month: str) -> str:
    year, mon = (int(x) for x in month.split("-"))
    return f"{year - (mon == 1)}-{12 if mon == 1 else mon - 1:02d}"


_MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def last_complete_month(now: datetime, tz: ZoneInfo) -> str:
    """The month before the one ``now`` falls in, in ``tz`` (the default month of the report)."""
    return previous_month(now.astimezone(tz).strftime("%Y-%m"))


@dataclass(frozen=True)
class ReportPeriod:
    """The report's [start, end) and the previous period's; ``partial`` labels a current month."""

    start: datetime
    end: datetime
    prev_start: datetime
    prev_end: datetime
    days: int  # local days covered (a partial month: the whole days so far)
    partial: str | None = None  # "1–29 Nov"
    compared_days: str | None = None  # "1–29 Oct"


def _days_label(first: date, last: date) -> str:
    mon = _MON[first.month - 1]
    return f"{first.day} {mon}" if first == last else f"{first.day}–{last.day} {mon}"


def report_period(month: str, tz: ZoneInfo, now: datetime) -> ReportPeriod:
    """A whole month against the whole previous one; the current month (partial) against the same days.

    A partial month covers its whole local days before today (1–29 Nov on 30 Nov), compared with the
    same days of the previous month (1–29 Oct, fewer when that month is shorter). On the 1st, with no
    whole day yet, it covers today so far, against the same hours of the previous month's 1st.
    """
    start, end = month_range(month, tz)
    p_start, p_end = month_range(previous_month(month), tz)
    if not start <= now < end:
        return ReportPeriod(start, end, p_start, p_end, days=round((end - start).total_seconds() / 86400))
    today = now.astimezone(tz).date()
    first = today.replace(day=1)
    p_first = p_start.astimezone(tz).date()
    p_last_day = (p_end.astimezone(tz).date() - timedelta(days=1)).day
    if today.day == 1:
        cut, _ = day_range(today, tz)
        elapsed = now - cut
        return ReportPeriod(
            start,
            now,
            p_start,
            min(p_start + elapsed, p_end),
            days=1,
            partial=f"{_days_label(first, today)}, so far",
            compared_days=f"{_days_label(p_first, p_first)}, to the same time",
        )
    last = today - timedelta(days=1)
    p_last = p_first.replace(day=min(last.day, p_last_day))
    cut, _ = day_range(today, tz)
    _, p_cut = day_range(p_last, tz)
    return ReportPeriod(
        start,
        cut,
        p_start,
        p_cut,
        days=last.day,
        partial=_days_label(first, last),
        compared_days=_days_label(p_first, p_last),
    )


def _lines(current: SpendResult, previous: SpendResult, key: str) -> tuple[SpendLine, ...]:
    prev = {r.keys[key]: r.sums["cost_nanos"] for r in previous.rows}
    prev_known = {
        r.keys[key]: cost_known(r.sums["records"], r.sums["unpriced_records"]) for r in previous.rows
    }
    return tuple(
        SpendLine(
            key=r.keys[key],
            cost_nanos=r.sums["cost_nanos"],
            prev_cost_nanos=prev.get(r.keys[key]),
            requests=r.sums["requests"],
            input_tokens=r.sums["input_tokens"],
            output_tokens=r.sums["output_tokens"],
            cached_input_tokens=r.sums["cached_input_tokens"],
            records=r.sums["records"],
            unpriced_records=r.sums["unpriced_records"],
            prev_cost_known=prev_known.get(r.keys[key], True),
        )
        for r in current.rows
    )


def _spend(conn: Connection, by: str, start: datetime, end: datetime, tz: ZoneInfo) -> SpendResult:
    return run_spend(conn, SpendQuery(group_by=(by,), start=start, end=end, tz=tz))


def _tag_keys(conn: Connection, start: datetime, end: datetime) -> list[str]:
    r = rollups_daily.c
    keys: set[str] = set()
    day_lo, day_hi = int(start.timestamp()) // 86400 * 86400, int(end.timestamp())
    for (text,) in conn.execute(select(r.tags).distinct().where(r.day >= day_lo, r.day < day_hi)):
        keys.update(json.loads(text))
    return sorted(keys)


def _breaches(conn: Connection, month: str) -> tuple[Breach, ...]:
    b = budget_breaches.c
    rows = conn.execute(
        select(b.budget_key, b.period, b.kind, b.threshold, b.spend_nanos, b.cap_nanos)
        .where(b.period.like(f"{month}%"))
        .order_by(b.period, b.budget_key, b.threshold)
    )
    return tuple(Breach(*row) for row in rows)


def _cache_finding(found: Sequence[PromptLine]) -> Finding:
    """One finding for every prompt that re-sends a long prompt without caching (they share a fix)."""
    cost = sum(p.cost_nanos for p in found)
    each = "; ".join(
        f"{p.prompt}: {p.calls:,} calls, {p.avg_input_tokens:,} input tokens on average, "
        f"{p.cache_hit_ratio:.0%} cache hits, ${format_usd(p.cost_nanos, cents=True)}"
        for p in found
    )
    what = "prompt re-sends a long prompt" if len(found) == 1 else "prompts re-send long prompts"
    return Finding(
        title=f"{len(found)} {what} without caching (${format_usd(cost, cents=True)} this month)",
        detail=each + ".",
        suggestion="Put the static part first and enable prompt caching (cache reads cost 10-50% "
        "of input); check that nothing variable precedes it.",
    )


def _named(names: Sequence[str], limit: int = 5) -> str:
    """``a, b, c`` or, beyond ``limit``, ``a, b, c, d, e and 2 more``: every count matches what is named."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _outlier_finding(o: FlowOutcomes, typical: float, model: str) -> Finding:
    per_success = o.cost_per_success_nanos or 0
    return Finding(
        title=f"{o.flow} pays {per_success / typical:.1f}x its peers per success",
        detail=f"${format_usd(per_success, cents=True)} per successful outcome vs a median of "
        f"${format_usd(int(typical), cents=True)}; most of its spend is on {model}.",
        suggestion=f"Try a smaller model than {model} on this flow, or fix what makes attempts fail "
        f"({o.failures:,} failures of {o.outcomes:,}).",
    )


def _findings(
    outcomes: Sequence[FlowOutcomes],
    top: Sequence[PromptLine],
    unpriced: Sequence[UnpricedLine],
    breaches: Sequence[Breach],
    by_flow_model: SpendResult,
) -> tuple[Finding, ...]:
    """What a reader should do, each with the numbers that justify it."""
    uncached = [
        p
        for p in top
        if p.avg_input_tokens >= CACHE_MIN_TOKENS and p.cache_hit_ratio < CACHE_MAX_HIT and p.calls >= 100
    ]
    found = [_cache_finding(uncached)] if uncached else []
    costs = [o.cost_per_success_nanos for o in outcomes if o.cost_per_success_nanos]
    if len(costs) >= 3:
        typical = median(costs)
        for o in outcomes:
            if o.cost_per_success_nanos and o.cost_per_success_nanos > OUTLIER_FACTOR * typical:
                mine = [r for r in by_flow_model.rows if r.keys["flow"] == o.flow]
                model = max(mine, key=lambda r: r.sums["cost_nanos"]).keys["model"] if mine else "its model"
                found.append(_outlier_finding(o, typical, model))
    if unpriced:
        found.append(
            Finding(
                title="Usage without a price",
                detail=_named([f"{u.model} ({plural(u.records, 'record')})" for u in unpriced]),
                suggestion="Add prices (FINOPS_PRICE_OVERRIDES), then `finops reprice`; "
                "this spend is not in the totals.",
            )
        )
    growing = [p for p in top if "GROWING" in p.flags]
    if growing:
        found.append(
            Finding(
                title=f"{len(growing)} of the top {plural(len(top), 'prompt')} grew by more than a quarter",
                detail=_named([p.prompt for p in growing]),
                suggestion="Check with the prompts' owners that the growth was expected "
                "(traffic, context, retries).",
            )
        )
    capped = sorted({b.budget for b in breaches if b.kind in ("threshold", "monthly") and is_breach(b)})
    if capped:
        found.append(
            Finding(
                title=f"{plural(len(capped), 'budget')} reached {'its' if len(capped) == 1 else 'their'} cap",
                detail=_named(capped, 10),
                suggestion="Raise the cap if the spend was expected, or set on_breach: block.",
            )
        )
    return tuple(found)


def _budget_lines(
    conn: Connection, budgets: Sequence[Budget], flows: Sequence[str], period: ReportPeriod, tz: ZoneInfo
) -> tuple[BudgetLine, ...]:
    """Each flow against each budget that covers it: the daily cap × the report's days, and the
    flow's actual spend (with the budget's tags, for a tag-matching budget) over the same period."""
    out = []
    for flow in flows:
        for budget in budgets:
            if not budget.matches(flow, budget.tag_filter):
                continue
            query = SpendQuery(
                start=period.start, end=period.end, tz=tz, flows=(flow,), tags=dict(budget.tag_filter)
            )
            # SpendQuery's flow filter is a glob: an exact name with * or ? would match others too.
            rows = run_spend(conn, dataclasses.replace(query, group_by=("flow",))).rows
            mine = [r for r in rows if r.keys["flow"] == flow]
            actual = sum(r.sums["cost_nanos"] for r in mine)
            unpriced = sum(r.sums["unpriced_records"] for r in mine)
            out.append(BudgetLine(flow, budget.key, budget.daily_cap_nanos, period.days, actual, unpriced))
    return tuple(out)


def _budgets(ledger: Ledger) -> tuple[list[Budget], str | None]:
    """The budgets in force, or none and a note saying why (the report never fails for want of them)."""
    try:
        found = budgets_in_force(ledger, ledger.settings.budgets_dir)
    except FinopsError as exc:
        return [], str(exc)
    return list(found.budgets), None


def build_monthly_report(
    ledger: Ledger, *, month: str, tz: ZoneInfo | None = None, top: int = 20, now: datetime | None = None
) -> MonthlyReport:
    """Every figure of the month and the previous one, from rollups (prompts: UTC days).

    The current month (``now`` inside it) is partial: it covers its whole days so far and is
    compared with the same days of the previous month (:func:`report_period`).
    """
    tz = tz or ZoneInfo("UTC")
    period = report_period(month, tz, now or datetime.now(UTC))
    start, end, p_start, p_end = period.start, period.end, period.prev_start, period.prev_end
    prev = previous_month(month)
    budgets, budget_note = _budgets(ledger)
    with write_transaction(ledger.engine) as conn:  # usage may have arrived after its outcomes
        relink_unlinked(conn, since_us=int(p_start.timestamp() * 1e6), until_us=int(end.timestamp() * 1e6))
    # One snapshot for every section: a late batch stored meanwhile is in all of them or in none.
    with ledger.read_engine.connect() as conn:  # a replica may not show that relink yet: it follows
        one_snapshot(conn)
        cur = {k: _spend(conn, k, start, end, tz) for k in ("flow", "model", "provider")}
        old = {k: _spend(conn, k, p_start, p_end, tz) for k in ("flow", "model", "provider")}
        total = cur["flow"].total
        prev_total = old["flow"].total["cost_nanos"] if old["flow"].rows else None
        by_tag = {
            key: _lines(
                _spend(conn, f"tag:{key}", start, end, tz),
                _spend(conn, f"tag:{key}", p_start, p_end, tz),
                f"tag:{key}",
            )
            for key in _tag_keys(conn, start, end)
        }
        daily = run_spend(conn, SpendQuery(group_by=("day",), start=start, end=end, tz=tz))
        prev_daily = run_spend(conn, SpendQuery(group_by=("day",), start=p_start, end=p_end, tz=tz))
        base = prev_is_base(len(daily.rows), len(prev_daily.rows))
        by_flow_model = run_spend(conn, SpendQuery(group_by=("flow", "model"), start=start, end=end, tz=tz))
        breaches = _breaches(conn, month)
        outcomes = flow_outcomes(conn, start=start, end=end, prev_start=p_start, prev_end=p_end)
        top_lines = top_prompts(
            conn,
            start=start,
            end=end,
            prev_start=p_start,
            prev_end=p_end,
            total_nanos=total["cost_nanos"],
            options=PromptAuditOptions(top=top, prev_is_base=base),
        )
        budget_lines = _budget_lines(conn, budgets, [r.keys["flow"] for r in cur["flow"].rows], period, tz)
        estimated = bool(conn.scalar(select(func.count()).where(prompts.c.tokens_estimated == 1)))
    unpriced = tuple(
        UnpricedLine(f"{u.provider}/{u.model}", u.records, u.input_tokens, u.output_tokens)
        for u in unpriced_models(ledger, start=start, end=end)
    )
    notes = ["Prompt figures are by UTC day."] if str(tz) != "UTC" else []
    if not base:
        notes.append(
            f"{month_name_short(prev)} has usage on {plural(len(prev_daily.rows), 'day')} against "
            f'{len(daily.rows)} this month: too few to compare with, so changes read "new", not a percentage.'
        )
    return MonthlyReport(
        month=month,
        previous_month=prev,
        timezone=str(tz),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        total_nanos=total["cost_nanos"],
        prev_total_nanos=prev_total,
        requests=total["requests"],
        input_tokens=total["input_tokens"],
        output_tokens=total["output_tokens"],
        cached_input_tokens=total["cached_input_tokens"],
        by_flow=_lines(cur["flow"], old["flow"], "flow"),
        by_model=_lines(cur["model"], old["model"], "model"),
        by_provider=_lines(cur["provider"], old["provider"], "provider"),
        by_tag=by_tag,
        daily=tuple((r.keys["day"], r.sums["cost_nanos"]) for r in daily.rows),
        breaches=breaches,
        outcomes=tuple(outcomes),
        top_prompts=tuple(top_lines),
        unpriced=unpriced,
        findings=_findings(outcomes, top_lines, unpriced, breaches, by_flow_model),
        token_counts_estimated=estimated,
        notes=tuple(notes),
        partial=period.partial,
        compared_days=period.compared_days,
        prev_base=base,
        budgets=budget_lines,
        budgets_problem=budget_note,
        daily_unpriced=tuple(
            (r.keys["day"], r.sums["unpriced_records"]) for r in daily.rows if r.sums["unpriced_records"]
        ),
        records=total["records"],
        unpriced_records=total["unpriced_records"],
    )


def month_name_short(month: str) -> str:
    year, mon = month.split("-")
    return f"{_MON[int(mon) - 1]} {year}"
