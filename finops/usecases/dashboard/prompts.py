"""``/prompts``: the month's costliest prompts and their flags, exactly as ``finops prompts top``.

The same steps as the command (the month's period from :func:`report_period`, the total from the
spend query, :func:`previous_is_base`, :func:`top_prompts`), plus the flows with spend that month
for the page's filter, read from the daily rollups by their ``day`` index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from finops.storage.tables import rollups_daily
from finops.usecases.audit.monthly import last_complete_month, report_period
from finops.usecases.audit.prompts import PromptAuditOptions, previous_is_base, top_prompts
from finops.usecases.audit.report_model import PromptLine
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, run_spend

__all__ = ["MAX_TOP", "PromptsView", "UnknownFlow", "default_month", "prompts_view"]

#: The command's bounds for ``--top``.
MAX_TOP = 1000
_UTC = ZoneInfo("UTC")


class UnknownFlow(ValueError):
    """A flow filter naming a flow finops has never seen spend for."""


@dataclass(frozen=True)
class PromptsView:
    month: str
    partial: str | None  # "1–29 Nov" for a month still running
    compared_days: str | None
    flows: tuple[str, ...]  # the filter (empty: every flow)
    top: int
    total_nanos: int  # the month's spend (of the filtered flows): the shares' whole
    base: bool  # the previous month is a base worth comparing with (else no GROWING)
    lines: tuple[PromptLine, ...]
    month_flows: tuple[str, ...]  # flows with spend in the month, for the filter


def default_month(now: datetime) -> str:
    """What ``finops prompts top`` reads without ``--month``: the last complete UTC month."""
    return last_complete_month(now, _UTC)


def _flows_in(conn: Connection, start: datetime, end: datetime) -> tuple[str, ...]:
    r = rollups_daily.c
    lo, hi = int(start.timestamp()) // 86400 * 86400, int(end.timestamp())
    rows = conn.execute(select(r.flow).distinct().where(r.day >= lo, r.day < hi))
    return tuple(sorted(str(f) for (f,) in rows))


def _known(conn: Connection, flow: str) -> bool:
    r = rollups_daily.c
    return conn.execute(select(r.id).where(r.flow == flow).limit(1)).first() is not None


def prompts_view(
    ledger: Ledger, now: datetime, *, month: str | None = None, flows: Sequence[str] = (), top: int = 20
) -> PromptsView:
    """The top ``top`` prompts of ``month`` (default: the last complete one) for ``flows``.

    Raises ValueError for a month that is not YYYY-MM, UnknownFlow for a flow never seen."""
    label = month or default_month(now)
    period = report_period(label, _UTC, now.astimezone(UTC))  # ValueError for a bad month
    chosen = tuple(dict.fromkeys(flows))
    with ledger.read_engine.connect() as conn:
        month_flows = _flows_in(conn, period.start, period.end)
        for flow in chosen:
            if flow not in month_flows and not _known(conn, flow):
                raise UnknownFlow(f"no usage was ever recorded for flow {flow!r}")
        total = run_spend(conn, SpendQuery(start=period.start, end=period.end, flows=chosen)).total[
            "cost_nanos"
        ]
        base = previous_is_base(conn, period.start, period.end, period.prev_start, period.prev_end)
        lines = top_prompts(
            conn,
            start=period.start,
            end=period.end,
            prev_start=period.prev_start,
            prev_end=period.prev_end,
            total_nanos=total,
            options=PromptAuditOptions(top=top, flows=chosen, prev_is_base=base),
        )
    return PromptsView(
        month=label,
        partial=period.partial,
        compared_days=period.compared_days,
        flows=chosen,
        top=top,
        total_nanos=total,
        base=base,
        lines=tuple(lines),
        month_flows=month_flows,
    )
