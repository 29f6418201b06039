"""``/outcomes`` (executive): what a successful outcome costs per flow, against last week and the
budgets' targets, and its eight-week trend.

Unit costs read as the report writes them (:func:`report_data.usd_unit`: four decimals below a
dollar) inside a ``<data value>`` holding the exact nano-dollar amount, as :func:`layout.money`
does for totals. A flow over a target says so in words ("over target"), not only in red.
The annotations of the trend's window are listed under each chart (``<ul data-annotations>``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from finops.domain.dashboard import Annotation
from finops.domain.money import format_usd
from finops.domain.words import plural
from finops.render.charts import Marker, line_chart
from finops.render.dashboard.layout import esc, flow_href, money, page, table
from finops.render.report_data import (
    DASH,
    change_ratio,
    count,
    month_name,
    percent,
    percent_change,
    usd_unit,
    value_per_dollar_nanos,
)
from finops.usecases.dashboard.outcomes import FlowRow, OutcomesView, Target

__all__ = ["MAX_CHARTS", "render_outcomes", "unit"]

#: Trend charts drawn (the flows first in the table: the costliest per success).
MAX_CHARTS = 8
_MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def unit(nanos: int | None, *, missing: str = "no successes") -> str:
    """A unit cost: ``$0.0431`` visible, the exact nanos in ``<data value>``; ``None`` in words."""
    if nanos is None:
        return f'<span class="unknown">{esc(missing)}</span>'
    return f'<data class="usd" value="{format_usd(nanos)}">{esc(usd_unit(nanos))}</data>'


def _days(start: datetime, end: datetime) -> str:
    """``23–29 Nov 2026`` (``30 Nov – 6 Dec 2026`` across months)."""
    first, last = start.date(), (end - timedelta(seconds=1)).date()
    if first.month == last.month:
        return f"{first.day}–{last.day} {_MON[last.month - 1]} {last.year}"
    return f"{first.day} {_MON[first.month - 1]} – {last.day} {_MON[last.month - 1]} {last.year}"


def _period(v: OutcomesView) -> tuple[str, str, str]:
    """(what the page shows, what it compares with, the comparison column's name)."""
    if v.mode == "week":
        return (
            f"the last complete week, {_days(v.start, v.end)} (Monday to Sunday, UTC)",
            f"the week before ({_days(v.prev_start, v.prev_end)})",
            "vs last week",
        )
    head = month_name(v.label) + (", partial (so far)" if v.partial else "")
    prev = month_name(v.prev_start.strftime("%Y-%m"))
    return f"{head} (UTC)", prev, "vs last month"


def _change(row: FlowRow) -> str:
    """The change in cost per success on the period before (up is worse)."""
    now, prev = row.line.cost_per_success_nanos, row.line.prev_cost_per_success_nanos
    if prev is None:
        return DASH if now is None else "new"
    if now is None:
        return f"no successes <span class='sub'>(was {unit(prev)})</span>"
    ratio = change_ratio(now, prev)
    word = "" if not ratio else (" worse" if ratio > 0 else " better")
    return f"{esc(percent_change(ratio))}{word} <span class='sub'>from {unit(prev)}</span>"


def _target(t: Target) -> str:
    return f"{esc(t.budget)}: {unit(t.max_nanos)}"


def _status(row: FlowRow) -> str:
    if not row.targets:
        return '<span class="status none" data-status="none">no target</span>'
    if row.line.cost_per_success_nanos is None:
        return '<span class="status none" data-status="unknown">no successes to compare</span>'
    over = [t for t in row.targets if t.over]
    if not over:
        return '<span class="status ok" data-status="within">within target</span>'
    by = percent_change(change_ratio(row.line.cost_per_success_nanos, over[0].max_nanos))  # the strictest
    return f'<strong class="status over" data-status="over">over target ({esc(by)})</strong>'


def _value(row: FlowRow) -> str:
    vpd = value_per_dollar_nanos(row.line.value_nanos, row.line.cost_nanos)
    if vpd is None:
        return DASH
    return f'<data value="{format_usd(vpd)}">{esc(format_usd(vpd, cents=True))}</data>'


def _row(row: FlowRow) -> list[str]:
    o = row.line
    targets = "<br>".join(_target(t) for t in row.targets) or DASH
    return [
        f'<a href="{esc(flow_href(o.flow))}" data-flow="{esc(o.flow)}">{esc(o.flow)}</a>',
        unit(o.cost_per_success_nanos),
        _status(row),
        targets,
        _change(row),
        esc(percent(o.success_rate)),
        f"{esc(count(o.successes))} of {esc(count(o.outcomes))}",
        money(o.cost_nanos),
        _value(row),
    ]


def _annotations(notes: list[Annotation]) -> str:
    if not notes:
        return ""
    items = "".join(
        f'<li data-kind="{esc(a.kind)}"><time datetime="{esc(a.at.isoformat())}">'
        f"{a.at:%Y-%m-%d %H:%M} UTC</time> {esc(a.kind)}: {esc(a.text)}</li>"
        for a in notes
    )
    return f'<ul class="annotations" data-annotations>{items}</ul>'


def _chart(row: FlowRow, v: OutcomesView) -> str:
    """One flow's weekly cost per success on an axis of every week: a week without a success has
    no point (and is named), and the events of the window are markers on the chart."""
    flow = row.line.flow
    known = [(p.start.isoformat(), p.cost_per_success_nanos) for p in row.trend]
    points = [(label, n) for label, n in known if n is not None]
    slots = [float(i) for i, (_, n) in enumerate(known) if n is not None]
    empty = [label for label, n in known if n is None]
    mine = [a for a in v.annotations if a.flow is None or a.flow == flow]
    first = datetime.combine(row.trend[0].start, time(0), UTC) if row.trend else None
    markers: list[Marker] = []
    if first is not None:
        for a in mine:
            slot = (a.at.astimezone(UTC) - first).total_seconds() / (7 * 86400)
            if 0 <= slot <= len(known) - 1 + 6 / 7:
                markers.append(
                    (min(slot, len(known) - 1), a.kind, f"{a.at:%Y-%m-%d %H:%M} UTC {a.kind}: {a.text}")
                )
    notes = []
    if points:
        svg = line_chart(
            points,
            title=f"{flow}: cost per success by week",
            axis=[label for label, _ in known],
            positions=slots,
            markers=markers,
        )
        if empty:
            notes.append(
                f"No successes in {len(empty)} of the {len(known)} weeks ({', '.join(empty)}): no point."
            )
    else:
        svg = f'<p class="notice">{esc(flow)}: no successful outcome in the last {len(known)} weeks.</p>'
    if row.targets:
        notes.append("Target: " + "; ".join(f"{t.budget} {usd_unit(t.max_nanos)}" for t in row.targets) + ".")
    text = "".join(f'<p class="muted">{esc(n)}</p>' for n in notes)
    return f'<figure class="trend" data-trend="{esc(flow)}">{svg}{text}{_annotations(mine)}</figure>'


def _weeks(v: OutcomesView) -> str:
    first: date = v.weeks[0]
    last = v.weeks[-1] + timedelta(days=6)
    return f"{first.isoformat()} to {last.isoformat()}"


def render_outcomes(v: OutcomesView) -> str:
    shown, compared, column = _period(v)
    form = (
        '<form class="filters" method="get" action="/outcomes" aria-label="Choose the period">'
        '<label for="o-month">Month (UTC; empty: the last complete week)'
        f'<input id="o-month" name="month" type="month" value="{esc(v.label if v.mode == "month" else "")}">'
        '</label><button type="submit">Show</button></form>'
    )
    intro = (
        f'<p data-period="{esc(v.label)}" data-mode="{esc(v.mode)}">Cost per successful outcome is all '
        f"of a flow's spend (failed calls too) divided by its successful outcomes, for "
        f"<strong>{esc(shown)}</strong>, compared with {esc(compared)} (up is worse). "
        f"Targets are the <code>max_cost_per_success_usd</code> of the budgets covering each flow.</p>"
    )
    if not v.rows:
        body = (
            f'<p class="notice">No outcomes in {esc(shown)}. Send them to <code>/v1/outcomes</code> or run '
            "<code>finops ingest FILE --kind outcomes</code>.</p>"
        )
        return page(title="Outcomes", active="outcomes", body=form + intro + body, generated=_stamp(v))
    over = [r.line.flow for r in v.rows if r.over_target]
    if over:
        summary = (
            f'<p class="error" data-over="{len(over)}"><strong>{esc(plural(len(over), "flow"))} over '
            f"target:</strong> {', '.join(esc(f) for f in over)}.</p>"
        )
    else:
        summary = '<p class="notice" data-over="0">No flow is over its cost-per-success target.</p>'
    header = ["Flow", "Cost per success", "Status", "Target", column, "Success rate", "Successes",
              "Spend", "Value per $"]  # fmt: skip
    body = table(
        header,
        [_row(r) for r in v.rows],
        caption="Cost per successful outcome by flow (costliest first)",
        numeric=(1, 5, 6, 7, 8),
        name="outcomes",
    )
    charts = "".join(_chart(r, v) for r in v.rows[:MAX_CHARTS])
    more = len(v.rows) - MAX_CHARTS
    extra = f'<p class="muted">{esc(plural(more, "more flow"))} in the table above.</p>' if more > 0 else ""
    trend = (
        '<section aria-labelledby="trend"><h2 id="trend">Cost per success, last eight weeks</h2>'
        f'<p class="muted">Weeks from Monday to Sunday (UTC), {esc(_weeks(v))}; each point is the '
        f"week's spend divided by its successes.</p>"
        f'<div class="grid2">{charts}</div>{extra}</section>'
    )
    return page(
        title="Outcomes", active="outcomes", body=form + intro + summary + body + trend, generated=_stamp(v)
    )


def _stamp(v: OutcomesView) -> str:
    return f"{v.now:%Y-%m-%d %H:%M:%S} UTC"
