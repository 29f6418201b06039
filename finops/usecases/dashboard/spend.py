"""``/spend``: the ``finops spend`` question as a form, and the form as that question.

The page, its downloads and the CLI must answer the same question with the same numbers, so the
form's values go through :mod:`finops.usecases.spend_request` exactly as ``GET /v1/spend`` does;
this module only adds the form's ``period`` choice (today, a month, or since/until) and says
the question back as the ``finops spend`` command that prints the same CSV or JSON.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from finops.domain.budgets import Budget
from finops.domain.dashboard import Annotation
from finops.usecases.dashboard.annotations import annotations_between
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery
from finops.usecases.spend_request import resolve_period, resolve_zone, spend_query

__all__ = ["PERIODS", "SpendForm", "read_form", "resolve_form"]

#: The form's period choices: since local midnight, a calendar month, or since/until (both
#: optional: neither is all time).
PERIODS = ("today", "month", "range")


@dataclass(frozen=True)
class SpendForm:
    """What the form holds, as typed (strings), so the page shows it back unchanged."""

    by: str = "flow"
    period: str = "month"
    month: str = ""
    since: str = ""
    until: str = ""
    tz: str = "UTC"
    flows: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    top: str = ""

    def params(self) -> list[tuple[str, str]]:
        """The query string of this question (``by`` even when empty: no grouping); only the
        period fields the chosen period reads."""
        out = [("by", self.by), ("period", self.period)]
        if self.period == "month":
            out.append(("month", self.month))
        elif self.period == "range":
            out += [(k, v) for k, v in (("since", self.since), ("until", self.until)) if v]
        out.append(("tz", self.tz))
        for name, values in (
            ("flow", self.flows),
            ("model", self.models),
            ("provider", self.providers),
            ("tag", self.tags),
        ):
            out += [(name, v) for v in values]
        if self.top:
            out.append(("top", self.top))
        return out

    def command(self, fmt: str) -> str:
        """The ``finops spend`` command that prints this question's answer as ``fmt``."""
        args = ["finops", "spend", "--by", self.by]
        if self.period == "today":
            args.append("--today")
        elif self.period == "month":
            args += ["--month", self.month]
        else:
            args += [a for k, v in (("--since", self.since), ("--until", self.until)) if v for a in (k, v)]
        args += ["--tz", self.tz]
        for option, values in (
            ("--flow", self.flows),
            ("--model", self.models),
            ("--provider", self.providers),
            ("--tag", self.tags),
        ):
            args += [a for v in values for a in (option, v)]
        if self.top:
            args += ["--top", self.top]
        args += ["--format", fmt]
        return shlex.join(args)


def _yes(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def read_form(get: Callable[[str], str | None], getlist: Callable[[str], Sequence[str]]) -> SpendForm:
    """The form from query parameters (empty repeated fields dropped). Without ``period``, the
    API's words choose it: ``month``, ``today``, ``since``/``until``; with none, this month."""
    period = (get("period") or "").strip()
    if not period:
        if get("month"):
            period = "month"
        elif _yes(get("today")):
            period = "today"
        elif get("since") or get("until"):
            period = "range"
        else:
            period = "month"
    by = get("by")
    return SpendForm(
        by="flow" if by is None else by.strip(),
        period=period,
        month=(get("month") or "").strip(),
        since=(get("since") or "").strip(),
        until=(get("until") or "").strip(),
        tz=(get("tz") or "").strip() or "UTC",
        flows=tuple(v for v in getlist("flow") if v),
        models=tuple(v for v in getlist("model") if v),
        providers=tuple(v for v in getlist("provider") if v),
        tags=tuple(v for v in getlist("tag") if v),
        top=(get("top") or "").strip(),
    )


def _top(text: str) -> int | None:
    """As ``GET /v1/spend`` reads ``top`` (and the CLI's ``--top``, ``min=1``)."""
    if not text:
        return None
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"top takes a whole number, got {text!r}") from None
    if number < 1:
        raise ValueError("top must be at least 1")
    return number


def resolve_form(form: SpendForm, now: datetime) -> tuple[SpendForm, SpendQuery]:
    """The form completed (this month filled in when none is given) and its query.

    Raises ``ValueError`` with a one-line message naming the field to fix.
    """
    if form.period not in PERIODS:
        raise ValueError(f"period takes {', '.join(PERIODS)}, got {form.period!r}")
    tz = resolve_zone(form.tz)
    if form.period == "month" and not form.month:
        form = replace(form, month=f"{now.astimezone(tz):%Y-%m}")
    start, end = resolve_period(
        since=form.since if form.period == "range" else None,
        until=form.until if form.period == "range" else None,
        month=form.month if form.period == "month" else None,
        today=form.period == "today",
        tz=tz,
        now=now,
        dash="",
    )
    query = spend_query(
        by=form.by,
        start=start,
        end=end,
        tz=tz,
        flows=form.flows,
        models=form.models,
        providers=form.providers,
        tags=form.tags,
        top=_top(form.top),
        dash="",
    )
    return form, query


#: Group-bys that make the answer a time series (a line chart with its events marked).
TIME_GRAINS = ("hour", "day", "month")


def spend_annotations(ledger: Ledger, query: SpendQuery, budgets: Sequence[Budget]) -> list[Annotation]:
    """The events of the question's period, when its answer is a time series over a bounded period
    (one flow asked: that flow's events and those of every flow)."""
    if len(query.group_by) != 1 or query.group_by[0] not in TIME_GRAINS or not (query.start and query.end):
        return []
    flow = query.flows[0] if len(query.flows) == 1 and not any(c in query.flows[0] for c in "*?") else None
    with ledger.read_engine.connect() as conn:
        return annotations_between(conn, query.start, query.end, flow=flow, budgets=budgets)
