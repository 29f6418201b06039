"""Budgets against the ledger: today's spend per budget, what drives it, and the gateway check."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from finops.domain.budgets import (
    Budget,
    BudgetState,
    budget_from_mapping,
    budget_to_mapping,
    evaluate,
    glob_matches,
)
from finops.domain.money import format_usd, usd_to_nanos
from finops.storage.budget_snapshots import load_cached, load_snapshots, save_cached, save_snapshots
from finops.storage.db import quick_reads, write_transaction
from finops.storage.reservations import held_by_budget
from finops.storage.sql import like_pattern
from finops.storage.tables import outcomes, rollups_daily, usage_records
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, cost_total, run_spend

__all__ = [
    "BudgetsInForce",
    "CheckResult",
    "Drivers",
    "budget_state",
    "budgets_in_force",
    "check_flow",
    "check_ledger",
    "drivers",
    "fanout_count",
    "flow_in_ledger",
    "flow_suggestion",
    "ledger_flows",
    "spend_between",
    "successes",
]


def _spend(conn: Connection, budget: Budget, start: datetime, end: datetime) -> int:
    if not budget.tag_filter:  # the common case, in one query (reserve runs it under the budget lock)
        return cost_total(conn, flow=budget.flow_pattern, start=start, end=end)
    query = SpendQuery(
        start=start, end=end, tz=budget.zone, flows=(budget.flow_pattern,), tags=budget.tag_filter
    )
    return run_spend(conn, query).total["cost_nanos"]


def spend_between(conn: Connection, budget: Budget, start: datetime, end: datetime) -> int:
    """Priced spend the budget covers in [start, end) (nano-dollars)."""
    return _spend(conn, budget, start, end)


def budget_state(conn: Connection, budget: Budget, now: datetime) -> BudgetState:
    """The budget's local day (and month, if capped) at ``now``, from rollups."""
    _, start, end = budget.day(now)
    month_spend = None
    if budget.monthly_cap_usd is not None:
        _, m_start, m_end = budget.month(now)
        month_spend = _spend(conn, budget, m_start, m_end)
    return evaluate(
        budget, now=now, spend_nanos=_spend(conn, budget, start, end), month_spend_nanos=month_spend
    )


@dataclass(frozen=True)
class Drivers:
    """What drives a budget's spend in a period: the costliest models and prompts."""

    models: tuple[tuple[str, int], ...]
    prompts: tuple[tuple[str, int], ...]


def _raw_filter(budget: Budget, start: datetime, end: datetime) -> list[object]:
    u = usage_records.c
    conds: list[object] = [
        u.ts_us >= int(start.timestamp() * 1_000_000),
        u.ts_us < int(end.timestamp() * 1_000_000),
        u.flow.like(like_pattern(budget.flow_pattern), escape="\\"),
    ]
    for key, value in budget.tag_filter.items():
        needle = json.dumps({key: value}, ensure_ascii=False, separators=(",", ":"))[1:-1]
        conds.append(u.tags.like("%" + like_pattern(needle) + "%", escape="\\"))
    return conds


def drivers(conn: Connection, budget: Budget, start: datetime, end: datetime, *, top: int = 3) -> Drivers:
    """Top models (from rollups) and prompts (from the period's raw records)."""
    by_model = run_spend(
        conn,
        SpendQuery(
            group_by=("model",),
            start=start,
            end=end,
            tz=budget.zone,
            flows=(budget.flow_pattern,),
            tags=budget.tag_filter,
            top=top,
        ),
    )
    u = usage_records.c
    cost = func.coalesce(func.sum(u.cost_nanos), 0)
    prompts = conn.execute(
        select(func.coalesce(u.prompt_id, "(no prompt_id)"), cost)
        .where(*_raw_filter(budget, start, end))  # type: ignore[arg-type]
        .group_by(u.prompt_id)
        .order_by(cost.desc())
        .limit(top)
    )
    return Drivers(
        models=tuple((r.keys["model"], r.sums["cost_nanos"]) for r in by_model.rows),
        prompts=tuple((str(p), int(c)) for p, c in prompts if c),
    )


def fanout_count(conn: Connection, budget: Budget, start: datetime, end: datetime) -> int:
    """Records in the period that made more tool calls than the budget allows per request."""
    if budget.max_tool_calls_per_request is None:
        return 0
    u = usage_records.c
    stmt = select(func.count()).where(
        *_raw_filter(budget, start, end),  # type: ignore[arg-type]
        u.tool_calls > budget.max_tool_calls_per_request * u.requests,
    )
    return int(conn.scalar(stmt) or 0)


@dataclass(frozen=True)
class CheckResult:
    """The gateway's answer: allow or deny, with the numbers of the tightest budget."""

    decision: str  # allow | deny
    flow: str
    reason: str
    states: tuple[BudgetState, ...]
    estimate_nanos: int
    #: money held by open reservations (admission control), per budget key
    held: Mapping[str, int] = field(default_factory=dict)
    #: a budget or the ledger knows the flow (False: a flow finops has never seen; a typo?)
    known_flow: bool = True

    @property
    def tightest(self) -> BudgetState | None:
        return min(self.states, key=lambda s: s.cap_nanos - s.spend_nanos, default=None)


def _blocked(state: BudgetState, held: int, estimate: int) -> str | None:
    if state.budget.on_breach != "block":
        return None
    if state.spend_nanos >= state.cap_nanos:
        return f"budget {state.budget.key} is exhausted for {state.local_day}"
    if state.spend_nanos + held + estimate > state.cap_nanos:
        in_flight = f" (calls in flight hold ${format_usd(held)})" if held else ""
        return f"budget {state.budget.key} would be exceeded by this request{in_flight}"
    m_cap, m_spend = state.month_cap_nanos, state.month_spend_nanos
    if m_cap is not None and m_spend is not None and (m_spend >= m_cap or m_spend + held + estimate > m_cap):
        return f"budget {state.budget.key} is exhausted for {state.month_label}"
    return None


def flow_in_ledger(conn: Connection, flow: str) -> bool:
    """Whether the ledger has ever stored usage of ``flow`` (the daily rollups outlive retention)."""
    return conn.scalar(select(rollups_daily.c.id).where(rollups_daily.c.flow == flow).limit(1)) is not None


def ledger_flows(conn: Connection) -> frozenset[str]:
    """Every flow the ledger has stored usage of."""
    return frozenset(conn.scalars(select(rollups_daily.c.flow).distinct()))


def _tag_text(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _covered_with_tags(budgets: Sequence[Budget], flow: str) -> list[Budget]:
    """Budgets whose flow pattern takes ``flow`` but that count only calls with certain tags."""
    return [b for b in budgets if b.match is not None and b.match.tags and glob_matches(b.match.flow, flow)]


def check_ledger(
    ledger: Ledger,
    budgets: Sequence[Budget],
    *,
    flow: str,
    tags: Mapping[str, str],
    now: datetime,
    estimate_usd: Decimal = Decimal(0),
    flow_seen: Callable[[Connection, str], bool] = flow_in_ledger,
) -> CheckResult:
    """:func:`check_flow` on the ledger's primary, each read in its own statement without a
    transaction around them (storage.db ``quick_reads``): two round trips fewer a check."""
    with quick_reads(ledger.engine) as conn:
        return check_flow(
            conn, budgets, flow=flow, tags=tags, now=now, estimate_usd=estimate_usd, flow_seen=flow_seen
        )


def check_flow(
    conn: Connection,
    budgets: Sequence[Budget],
    *,
    flow: str,
    tags: Mapping[str, str],
    now: datetime,
    estimate_usd: Decimal = Decimal(0),
    flow_seen: Callable[[Connection, str], bool] = flow_in_ledger,
) -> CheckResult:
    """Allow unless a matching budget with ``on_breach: block`` is (or would be) exhausted.

    A flow no budget covers is allowed; ``known_flow`` then says whether finops knows the flow
    at all (``flow_seen``: the ledger has usage of it), so a typo in a gateway's flow name is
    told apart from a flow that is simply not budgeted.
    """
    estimate = usd_to_nanos(estimate_usd)
    matching = [b for b in budgets if b.matches(flow, tags)]
    # The holds before the spend, as decide() reads them: a settle committing between the two
    # reads (its hold becomes spend) is then seen twice, never in neither, which would allow
    # past a cap (the reads are separate statements, each with its own snapshot).
    held = held_by_budget(conn, [b.key for b in matching], now_us=int(now.timestamp() * 1_000_000))
    states = tuple(budget_state(conn, b, now) for b in matching)
    if not states:
        with_tags = _covered_with_tags(budgets, flow)
        if with_tags:
            reason = "no budget covers this call: " + "; ".join(
                f"budget {b.key!r} covers this flow when called with tags {_tag_text(b.tag_filter)}"
                for b in with_tags
            )
            return CheckResult("allow", flow, reason, states, estimate)
        known = flow_seen(conn, flow)
        return CheckResult("allow", flow, "no budget covers this flow", states, estimate, known_flow=known)
    for state in states:
        why = _blocked(state, held[state.budget.key], estimate)
        if why:
            return CheckResult("deny", flow, why, states, estimate, held)
    return CheckResult("allow", flow, "within budget", states, estimate, held)


@dataclass(frozen=True)
class BudgetsInForce:
    """The budgets to enforce now, and what the operator should hear about the files."""

    budgets: tuple[Budget, ...]
    messages: tuple[str, ...]
    broken: bool
    #: each broken file's errors ("file:line: what is wrong"), to tell its owner
    errors_by_file: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: each broken file's last good budgets still in force (empty: none was ever read)
    kept_by_file: Mapping[str, tuple[Budget, ...]] = field(default_factory=dict)


def budgets_in_force(ledger: Ledger, directory: Path) -> BudgetsInForce:
    """Budgets from ``directory``; a broken file's last good version (kept in the database) stays in force.

    Good files are remembered as they are read, so the next broken edit of one falls back
    to this version instead of switching its budgets off. The whole answer is kept in the
    database under a digest of the folder (names and contents): while no file changes, a
    command reads it back instead of parsing and validating every file again (which is
    what made `finops check` slow to start).
    """
    from finops.config.budget_folder import folder_digest

    digest = folder_digest(directory)
    with ledger.engine.connect() as conn:
        cached = load_cached(conn, digest)
    if cached is not None:
        return _from_document(cached)
    result = _read_folder(ledger, directory)
    if folder_digest(directory) == digest:  # not edited while it was read: the answer is its own
        with write_transaction(ledger.engine) as conn:
            save_cached(conn, digest, _to_document(result))
    return result


def _to_document(found: BudgetsInForce) -> dict[str, object]:
    return {
        "budgets": [budget_to_mapping(b) for b in found.budgets],
        "messages": list(found.messages),
        "broken": found.broken,
        "errors": {name: list(items) for name, items in found.errors_by_file.items()},
        "kept": {name: [budget_to_mapping(b) for b in items] for name, items in found.kept_by_file.items()},
    }


def _from_document(doc: Mapping[str, Any]) -> BudgetsInForce:
    return BudgetsInForce(
        tuple(budget_from_mapping(b) for b in doc["budgets"]),
        tuple(doc["messages"]),
        bool(doc["broken"]),
        {name: tuple(items) for name, items in doc["errors"].items()},
        {name: tuple(budget_from_mapping(b) for b in items) for name, items in doc["kept"].items()},
    )


def _read_folder(ledger: Ledger, directory: Path) -> BudgetsInForce:
    """Parse and validate every file (YAML, pydantic: loaded only here)."""
    from finops.config.budget_files import load_budget_dir

    found = load_budget_dir(directory)
    messages = [str(p) for p in found.problems]
    broken = found.broken_files
    good: dict[str, list[Budget]] = {name: [] for name in found.files if name not in broken}
    for located in found.budgets:
        if located.file in good:
            good[located.file].append(located.budget)
    budgets = [b for items in good.values() for b in items]
    with ledger.engine.connect() as conn:  # read first: most calls change nothing and need no write lock
        known = load_snapshots(conn, sorted({*good, *broken}))
    changed = {name: items for name, items in good.items() if known.get(name, ([], 0))[0] != items}
    if changed:
        with write_transaction(ledger.engine) as conn:
            save_snapshots(conn, changed, now_us=time.time_ns() // 1000)
    kept = {name: known[name] for name in broken if name in known}
    for name in sorted(broken):
        if name in kept:
            items, saved_us = kept[name]
            budgets.extend(items)
            saved = datetime.fromtimestamp(saved_us / 1e6, UTC).isoformat(timespec="seconds")
            messages.append(f"{name}: broken, so its last good version (read {saved}) stays in force")
        else:
            messages.append(f"{name}: broken and never read while valid: its budgets are NOT enforced")
    errors: dict[str, list[str]] = {name: [] for name in broken}
    for problem in found.errors:
        if problem.file in errors:
            errors[problem.file].append(str(problem))
    return BudgetsInForce(
        tuple(budgets),
        tuple(messages),
        bool(broken),
        {name: tuple(items) for name, items in errors.items()},
        {name: tuple(kept[name][0]) if name in kept else () for name in broken},
    )


def flow_suggestion(conn: Connection, budgets: Sequence[Budget], flow: str) -> str | None:
    """The known flow closest to ``flow`` (a budget's exact flow or one with usage), if any is close."""
    import difflib

    names = ledger_flows(conn) | {b.flow for b in budgets if b.flow is not None}
    close = difflib.get_close_matches(flow, sorted(names), n=1, cutoff=0.6)
    return close[0] if close else None


def successes(conn: Connection, budget: Budget, start: datetime, end: datetime) -> int:
    """Successful outcomes of the budget's flows in [start, end)."""
    o = outcomes.c
    flow = func.coalesce(o.flow, o.linked_flow)
    stmt = select(func.count()).where(
        o.status == "success",
        o.ts_us >= int(start.timestamp() * 1_000_000),
        o.ts_us < int(end.timestamp() * 1_000_000),
        flow.like(like_pattern(budget.flow_pattern), escape="\\"),
    )
    return int(conn.scalar(stmt) or 0)
