"""Build the monthly token audit report from the ledger (renderers live in render_*.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from statistics import median
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from finops.domain.money import format_usd
from finops.domain.periods import month_range
from finops.storage.db import write_transaction
from finops.storage.outcomes import relink_unlinked
from finops.storage.tables import budget_breaches, prompts, rollups_daily
from finops.usecases.audit.outcomes import flow_outcomes
from finops.usecases.audit.prompts import PromptAuditOptions, top_prompts
from finops.usecases.audit.report_model import (
    Breach,
    Finding,
    FlowOutcomes,
    MonthlyReport,
    PromptLine,
    SpendLine,
    UnpricedLine,
)
from finops.usecases.ledger import Ledger
from finops.usecases.prices import unpriced_models
from finops.usecases.spend import SpendQuery, SpendResult, run_spend

__all__ = ["build_monthly_report", "previous_month"]

#: A prompt this long (average input tokens) with this few cache hits is worth caching.
CACHE_MIN_TOKENS = 2000
CACHE_MAX_HIT = 0.2
#: A flow whose cost per success is this many times its peers' median stands out.
OUTLIER_FACTOR = 3


def previous_month(month: str) -> str:
    year, mon = (int(x) for x in month.split("-"))
    return f"{year - (mon == 1)}-{12 if mon == 1 else mon - 1:02d}"


def _lines(current: SpendResult, previous: SpendResult, key: str) -> tuple[SpendLine, ...]:
    prev = {r.keys[key]: r.sums["cost_nanos"] for r in previous.rows}
    return tuple(
        SpendLine(
            key=r.keys[key],
            cost_nanos=r.sums["cost_nanos"],
            prev_cost_nanos=prev.get(r.keys[key]),
            requests=r.sums["requests"],
            input_tokens=r.sums["input_tokens"],
            output_tokens=r.sums["output_tokens"],
            cached_input_tokens=r.sums["cached_input_tokens"],
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


def _cache_finding(p: PromptLine) -> Finding:
    cost = format_usd(p.cost_nanos, cents=True)
    return Finding(
        title=f"Prompt {p.prompt} re-sends a long prompt without caching",
        detail=f"{p.calls:,} calls averaged {p.avg_input_tokens:,} input tokens with a "
        f"{p.cache_hit_ratio:.0%} cache-hit ratio; it cost ${cost}.",
        suggestion="Put the static part first and enable prompt caching (cache reads cost 10-50% "
        "of input); check that nothing variable precedes it.",
    )


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
    found = [
        _cache_finding(p)
        for p in top
        if p.avg_input_tokens >= CACHE_MIN_TOKENS and p.cache_hit_ratio < CACHE_MAX_HIT and p.calls >= 100
    ]
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
                detail=", ".join(f"{u.model} ({u.records:,} records)" for u in unpriced[:5]),
                suggestion="Add prices (FINOPS_PRICE_OVERRIDES), then `finops reprice`; "
                "this spend is not in the totals.",
            )
        )
    growing = [p for p in top if "GROWING" in p.flags]
    if growing:
        found.append(
            Finding(
                title=f"{len(growing)} of the top prompts grew by more than a quarter",
                detail=", ".join(p.prompt for p in growing[:5]),
                suggestion="Check with the prompts' owners that the growth was expected "
                "(traffic, context, retries).",
            )
        )
    capped = {b.budget for b in breaches if b.kind == "threshold" and b.threshold in ("1", "1.0")}
    if capped:
        found.append(
            Finding(
                title=f"{len(capped)} budget(s) hit their daily cap this month",
                detail=", ".join(sorted(capped)[:10]),
                suggestion="Raise the cap if the spend was expected, or set on_breach: block.",
            )
        )
    return tuple(found)


def build_monthly_report(
    ledger: Ledger, *, month: str, tz: ZoneInfo | None = None, top: int = 20
) -> MonthlyReport:
    """Every figure of the month and the previous one, from rollups (prompts: UTC days)."""
    tz = tz or ZoneInfo("UTC")
    start, end = month_range(month, tz)
    prev = previous_month(month)
    p_start, p_end = month_range(prev, tz)
    with write_transaction(ledger.engine) as conn:  # usage may have arrived after its outcomes
        relink_unlinked(conn, since_us=int(p_start.timestamp() * 1e6), until_us=int(end.timestamp() * 1e6))
    with ledger.engine.connect() as conn:
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
            options=PromptAuditOptions(top=top),
        )
        estimated = bool(conn.scalar(select(func.count()).where(prompts.c.tokens_estimated == 1)))
    unpriced = tuple(
        UnpricedLine(f"{u.provider}/{u.model}", u.records, u.input_tokens, u.output_tokens)
        for u in unpriced_models(ledger, start=start, end=end)
    )
    notes = ["Prompt figures are by UTC day."] if str(tz) != "UTC" else []
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
    )
