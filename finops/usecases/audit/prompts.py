"""The top-N costly prompts of a period, with what changed since the previous one.

Reads the daily prompt rollups (one row per prompt, flow and model a day), so a
month of 10M calls over 100k prompts is a few hundred thousand rows. Periods are
UTC days. Flags: NEW (no spend the previous period), GROWING (cost up by more
than ``growing_pct``, and the previous cost a base worth comparing with: see
:func:`finops.usecases.audit.report_model.comparable`), BLOATED (average input tokens up by
more than ``bloated_pct``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from finops.storage.tables import outcome_links, outcomes, prompt_rollups_daily, prompts, usage_records
from finops.usecases.audit.report_model import PromptLine, comparable, prev_is_base

__all__ = ["PromptAuditOptions", "previous_is_base", "top_prompts"]

_CHUNK = 900


@dataclass(frozen=True)
class PromptAuditOptions:
    top: int = 20
    growing_pct: int = 25
    bloated_pct: int = 20
    flows: tuple[str, ...] = ()
    prev_is_base: bool = True  # False: the previous period is too thin to compare with (no GROWING)


def _day(t: datetime) -> int:
    return int(t.timestamp()) // 86400 * 86400


def previous_is_base(
    conn: Connection, start: datetime, end: datetime, prev_start: datetime, prev_end: datetime
) -> bool:
    """Whether the previous period has usage on at least half as many UTC days as this one."""
    r = prompt_rollups_daily.c

    def days(lo: datetime, hi: datetime) -> int:
        stmt = select(func.count(func.distinct(r.day))).where(r.day >= _day(lo), r.day < _day(hi))
        return int(conn.scalar(stmt) or 0)

    return prev_is_base(days(start, end), days(prev_start, prev_end))


_Sums = tuple[int, int, int, int, int, int, int]


def _totals(
    conn: Connection, start: datetime, end: datetime, ids: Sequence[str] | None, flows: Sequence[str]
) -> dict[str, _Sums]:
    r = prompt_rollups_daily.c
    stmt = (
        select(
            r.prompt_id,
            func.sum(r.cost_nanos),
            func.sum(r.requests),
            func.sum(r.input_tokens),
            func.sum(r.cached_input_tokens),
            func.sum(r.output_tokens),
            func.sum(r.records),
            func.sum(r.unpriced_records),
        )
        .where(r.day >= _day(start), r.day < _day(end), r.prompt_id != "")
        .group_by(r.prompt_id)
    )
    if flows:
        stmt = stmt.where(r.flow.in_(list(flows)))
    out: dict[str, _Sums] = {}
    if ids is None:
        for pid, *sums in conn.execute(stmt):
            out[pid] = tuple(int(v or 0) for v in sums)  # type: ignore[assignment]
        return out
    for i in range(0, len(ids), _CHUNK):
        for pid, *sums in conn.execute(stmt.where(r.prompt_id.in_(list(ids[i : i + _CHUNK])))):
            out[pid] = tuple(int(v or 0) for v in sums)  # type: ignore[assignment]
    return out


def _where_used(
    conn: Connection, start: datetime, end: datetime, ids: Sequence[str]
) -> dict[str, tuple[set[str], set[str]]]:
    r = prompt_rollups_daily.c
    used: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for i in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(r.prompt_id, r.flow, r.model)
            .distinct()
            .where(r.day >= _day(start), r.day < _day(end), r.prompt_id.in_(list(ids[i : i + _CHUNK])))
        )
        for pid, flow, model in rows:
            used[pid][0].add(flow)
            used[pid][1].add(model)
    return used


def _success_rates(conn: Connection, start: datetime, end: datetime, ids: Sequence[str]) -> dict[str, float]:
    """Successful outcomes / outcomes linked to the prompt's calls in the period."""
    u, o, link = usage_records.c, outcomes.c, outcome_links.c
    rates: dict[str, float] = {}
    lo, hi = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    for i in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(u.prompt_id, o.status, func.count(func.distinct(o.id)))
            .select_from(outcome_links)
            .join(usage_records, u.id == link.usage)
            .join(outcomes, o.id == link.outcome)
            .where(u.prompt_id.in_(list(ids[i : i + _CHUNK])), o.ts_us >= lo, o.ts_us < hi)
            .group_by(u.prompt_id, o.status)
        )
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for pid, status, n in rows:
            counts[pid][1] += int(n)
            if status == "success":
                counts[pid][0] += int(n)
        rates.update({pid: s / n for pid, (s, n) in counts.items() if n})
    return rates


def top_prompts(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    prev_start: datetime,
    prev_end: datetime,
    total_nanos: int,
    options: PromptAuditOptions = PromptAuditOptions(),
) -> list[PromptLine]:
    """The ``options.top`` costliest prompts of [start, end), with flags against the previous period."""
    current = _totals(conn, start, end, None, options.flows)
    ranked = sorted(current.items(), key=lambda kv: (-kv[1][0], kv[0]))[: options.top]
    ids = [pid for pid, _ in ranked]
    previous = _totals(conn, prev_start, prev_end, ids, options.flows)
    used = _where_used(conn, start, end, ids)
    success = _success_rates(conn, start, end, ids)
    previews: dict[str, str | None] = {}
    for i in range(0, len(ids), _CHUNK):
        previews.update(
            dict(
                conn.execute(
                    select(prompts.c.prompt_id, prompts.c.preview).where(
                        prompts.c.prompt_id.in_(ids[i : i + _CHUNK])
                    )
                ).all()
            )
        )
    lines = []
    for pid, (cost, calls, inp, cached, outp, records, unpriced) in ranked:
        prev = previous.get(pid)
        flags = []
        if prev is None or prev[1] == 0:  # no calls before (calls that were unpriced are not new)
            flags.append("NEW")
        elif prev[0] == 0:
            pass  # last month's cost is unknown (unpriced) or zero: nothing to compare with
        else:
            growing = cost * 100 > prev[0] * (100 + options.growing_pct)
            if growing and comparable(cost, prev[0], base=options.prev_is_base):
                flags.append("GROWING")
            if prev[1] and calls and inp * prev[1] * 100 > prev[2] * calls * (100 + options.bloated_pct):
                flags.append("BLOATED")
        flows, models = used.get(pid, (set(), set()))
        lines.append(
            PromptLine(
                prompt=pid,
                cost_nanos=cost,
                share=cost / total_nanos if total_nanos else 0.0,
                calls=calls,
                avg_input_tokens=inp // calls if calls else 0,
                avg_output_tokens=outp // calls if calls else 0,
                cache_hit_ratio=cached / inp if inp else 0.0,
                success_rate=success.get(pid),
                flows=tuple(sorted(flows)),
                models=tuple(sorted(models)),
                prev_cost_nanos=None if prev is None else prev[0],
                flags=tuple(flags),
                preview=previews.get(pid),
                records=records,
                unpriced_records=unpriced,
            )
        )
    return lines
