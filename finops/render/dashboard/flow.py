"""``/flows/{flow}``: one flow for its engineers, today against its cap and what drives the spend.

Key numbers carry ``data-metric`` (``spend-today``, ``cap``, ``projection``, ``spend-30d``,
``last-week``, ``cache-hit-today``, ``failed-today``, ``fanout-per-request``, ...) on the element
holding them, so tests and people's scripts read them without parsing prose.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from finops.domain.dashboard import Annotation, Light, budget_light
from finops.domain.words import plural
from finops.render.charts import Marker, line_chart
from finops.render.dashboard.layout import esc, money, page, query_href, table, tile
from finops.render.report_data import DASH, of_cap, percent, percent_change, usd_unit
from finops.usecases.dashboard.flow import (
    CostPerSuccess,
    FlowBudget,
    FlowPage,
    Share,
    Totals,
)

__all__ = ["render_flow"]

_REFRESH_S = 60


def _metric(name: str, inner: str) -> str:
    return f'<span data-metric="{esc(name)}">{inner}</span>'


def _stat(key: str, title: str, body: str) -> str:
    """A tile with no target to be judged against: no light, only the numbers."""
    return (
        f'<article class="tile stat" data-tile="{esc(key)}"><h3>{esc(title)}</h3>'
        f'<p class="light">for reference</p>{body}</article>'
    )


def _clock(at: datetime, zone: str) -> str:
    return f"{at.astimezone(ZoneInfo(zone)):%H:%M}"


def _cost(t: Totals) -> str:
    """Money of a group; all of it unpriced is a dash, part of it is noted."""
    if t.records and t.unpriced_records == t.records:
        return money(None)
    extra = f' <span class="sub">+ {t.unpriced_records:,} unpriced</span>' if t.unpriced_records else ""
    return money(t.cost_nanos) + extra


def _today_tile(p: FlowPage) -> str:
    spend = _metric("spend-today", money(p.today.cost_nanos))
    projected = _metric("projection", money(p.projection.end_of_period_nanos))
    heading = f'<p class="sub">heading for {projected} by {_clock(p.end, p.timezone)}</p>'
    fb = p.budget
    if fb is None:
        body = f'<p class="big">{spend}</p>{heading}<p class="sub">no budget covers this flow: spend only</p>'
        return _stat("flow:today", f"Today · {p.day.isoformat()} UTC", body)
    s = fb.state
    lines = [
        f'<p class="big">{spend} <span class="sub">of {_metric("cap", money(s.cap_nanos))}</span></p>',
    ]
    if not fb.only_this_flow:
        lines.append(
            f'<p class="sub">budget {esc(fb.budget.key)} counts {money(s.spend_nanos)} '
            f"({esc(of_cap(s.spend_nanos, s.cap_nanos))} of its cap): it covers more than this flow</p>"
        )
    else:
        lines.append(f'<p class="sub">{esc(of_cap(s.spend_nanos, s.cap_nanos))} of the daily cap</p>')
    if s.spend_nanos >= s.cap_nanos:
        lines.append('<p class="sub">over the cap today</p>')
    elif s.projection.cap_hit_at is not None:
        lines.append(
            f'<p class="sub">cap at {esc(_clock(s.projection.cap_hit_at, p.timezone))} {esc(p.timezone)}</p>'
        )
    lines.append(heading)
    if fb.held_nanos:
        lines.append(f'<p class="sub">held {_metric("held", money(fb.held_nanos))} by calls in flight</p>')
    if fb.unpriced_records:
        lines.append(
            f'<p class="sub">{_metric("unpriced", esc(f"{fb.unpriced_records:,}"))} calls today without '
            "a price: cost unknown</p>"
        )
    light = budget_light(s, fb.held_nanos, fb.unpriced_records)
    label = {"red": "blocking" if fb.budget.on_breach == "block" else "over the cap"}.get(light)
    return tile(
        key="flow:today",
        light=light,
        title=f"Today · {p.day.isoformat()} {p.timezone}",
        body="".join(lines),
        label=label,
    )


def _change_words(change: Decimal | None, today_nanos: int) -> str:
    """A relative change; with nothing a week ago, "new" when there is spend now (never a bare dash)."""
    if change is None:
        return "new" if today_nanos > 0 else "no spend either day"
    return percent_change(change)


def _last_week_tile(p: FlowPage) -> str:
    w = p.last_week
    until = _clock(w.until, p.timezone)
    if w.until <= p.start:  # not one whole hour of today yet: nothing to set against last week
        body = (
            '<p class="big">too early</p>'
            '<p class="sub">compared by whole hours: the first of today ends in under an hour</p>'
            f'<p class="sub">that day last week: {money(w.last_week_day_nanos)}</p>'
        )
        return _stat("flow:last-week", "vs same day last week", body)
    body = (
        f'<p class="big">{_metric("last-week-change", esc(_change_words(w.change, w.today_nanos)))}</p>'
        f'<p class="sub">until {esc(until)}: today {_metric("last-week-today", money(w.today_nanos))}, '
        f"a week ago {_metric('last-week', money(w.last_week_nanos))}</p>"
        f'<p class="sub">that whole day: {money(w.last_week_day_nanos)}</p>'
    )
    return _stat("flow:last-week", "vs same day last week", body)


def _days_tile(p: FlowPage) -> str:
    t = p.days_total
    avg = t.cost_nanos // len(p.daily) if p.daily else 0
    body = (
        f'<p class="big">{_metric("spend-30d", _cost(t))}</p>'
        f'<p class="sub">{len(p.daily)} days in {esc(p.timezone)}, today included; '
        f"{money(avg)} a day on average</p>"
    )
    return _stat("flow:30d", f"Last {len(p.daily)} days", body)


def _cache_tile(p: FlowPage) -> str:
    body = (
        f'<p class="big">{_metric("cache-hit-today", esc(percent(p.today.cache_hit)))}</p>'
        f'<p class="sub">of input tokens read from cache today ({p.today.cached_input_tokens:,} of '
        f"{p.today.input_tokens:,}); {len(p.daily)} days: "
        f"{_metric('cache-hit-30d', esc(percent(p.days_total.cache_hit)))}</p>"
    )
    return _stat("flow:cache", "Cache hits", body)


def _failed_tile(p: FlowPage) -> str:
    t, d = p.today, p.days_total
    body = (
        f'<p class="big">{_metric("failed-today", money(t.failed_cost_nanos))}</p>'
        f'<p class="sub">{esc(plural(t.failed_records, "failed call record"))} today '
        f"(status error); {len(p.daily)} days: {_metric('failed-30d', money(d.failed_cost_nanos))}</p>"
    )
    light: Light = "green" if not t.failed_records else "yellow"
    return tile(
        key="flow:failed",
        light=light,
        title="Failed calls",
        body=body,
        label="none today" if light == "green" else "paid for failures",
    )


def _fanout_tile(p: FlowPage) -> str:
    f = p.fanout
    per = DASH if f.per_request is None else f"{f.per_request.quantize(Decimal('0.01'))}"
    lines = [
        f'<p class="big">{_metric("fanout-per-request", esc(per))} '
        '<span class="sub">tool calls a request</span></p>',
        f'<p class="sub">{f.tool_calls:,} tool calls in {esc(plural(f.requests, "request"))} today; '
        f"at most {f.most_in_a_record:,} in one record</p>",
    ]
    if f.limit is None:
        lines.append('<p class="sub">no budget sets max_tool_calls_per_request</p>')
        return _stat("flow:fanout", "Fan-out", "".join(lines))
    if not f.records:  # nothing to judge by: "within the limit" would be a guess
        lines.append(
            f'<p class="sub">no record today reports tool_calls: the limit of {f.limit} a request '
            "cannot be judged</p>"
        )
        return _stat("flow:fanout", "Fan-out", "".join(lines))
    lines.append(
        f'<p class="sub">{_metric("fanout-over", f"{f.over_limit:,}")} '
        f"{'record' if f.over_limit == 1 else 'records'} over the limit of {f.limit} a request</p>"
    )
    light: Light = "red" if f.over_limit else "green"
    return tile(
        key="flow:fanout",
        light=light,
        title="Fan-out",
        body="".join(lines),
        label="over the limit" if f.over_limit else "within the limit",
    )


def _cps_tile(c: CostPerSuccess) -> str:
    yesterday = CostPerSuccess.per(c.yesterday_spend_nanos, c.yesterday_successes)
    today = CostPerSuccess.per(c.today_spend_nanos, c.today_successes)

    def shown(v: int | None) -> str:
        return DASH if v is None else f'<data class="usd" value="{v}">{esc(usd_unit(v))}</data>'

    light: Light = "green"
    if yesterday is not None and yesterday > c.limit_nanos:
        light = "red"
    elif today is not None and today > c.limit_nanos:
        light = "yellow"
    elif yesterday is None and c.yesterday_spend_nanos > 0:
        light = "yellow"  # spent with no success: not on target, whatever today says so far
    key, title = f"flow:cost-per-success:{c.budget_key}", f"Cost per success · {c.budget_key}"
    body = (
        f'<p class="big">{_metric("cost-per-success-today", shown(today))} '
        f'<span class="sub">target {esc(usd_unit(c.limit_nanos))}</span></p>'
        f'<p class="sub">today {esc(plural(c.today_successes, "success", "successes"))}; yesterday '
        f"{_metric('cost-per-success-yesterday', shown(yesterday))} "
        f"({esc(plural(c.yesterday_successes, 'success', 'successes'))})</p>"
    )
    if today is None and yesterday is None:  # no outcome to judge by (the alert waits for one too)
        return _stat(key, title, body)
    return tile(
        key=key,
        light=light,
        title=title,
        body=body,
        label="no successes yesterday"
        if light == "yellow" and yesterday is None
        else {"green": "on target", "yellow": "above target today", "red": "above target"}[light],
    )


def _budgets_table(p: FlowPage) -> str:
    if not p.budgets:
        return (
            '<p class="notice">No budget covers this flow, so the page shows its spend only. '
            "Write one in <code>budgets/*.yaml</code> (<code>finops budgets init</code>).</p>"
        )

    def row(fb: FlowBudget) -> list[str]:
        s, b = fb.state, fb.budget
        covers = "this flow" if fb.only_this_flow else esc(b.flow_pattern)
        if b.tag_filter:
            covers += " with " + esc(", ".join(f"{k}={v}" for k, v in sorted(b.tag_filter.items())))
        return [
            esc(b.key),
            covers,
            money(s.spend_nanos),
            money(s.cap_nanos),
            esc(of_cap(s.spend_nanos, s.cap_nanos)),
            money(s.projection.end_of_period_nanos),
            esc(b.on_breach),
        ]

    return table(
        ["Budget", "Counts", "Spend today", "Daily cap", "Of cap", "Projected", "At the cap"],
        [row(fb) for fb in p.budgets],
        caption="Budgets covering this flow (today in each budget's zone)",
        numeric=(2, 3, 4, 5),
        name="budgets",
    )


def _day_position(p: FlowPage, at: datetime) -> float:
    return (at - p.start) / timedelta(hours=1)


def _annotation_text(a: Annotation, zone: str) -> str:
    local = a.at.astimezone(ZoneInfo(zone))
    return f"{a.kind} {local:%Y-%m-%d %H:%M} {zone}: {a.text}"


def _burn_chart(p: FlowPage) -> str:
    hours = round((p.end - p.start) / timedelta(hours=1))
    axis = [_clock(p.start + timedelta(hours=h), p.timezone) for h in range(hours + 1)]
    points = [(_clock(b.at, p.timezone), b.cumulative_nanos) for b in p.burn]
    positions = [_day_position(p, b.at) for b in p.burn]
    markers: list[Marker] = [
        (_day_position(p, a.at), a.kind, _annotation_text(a, p.timezone)) for a in p.annotations_today
    ]
    return line_chart(
        points,
        title=f"Spend today, cumulative ({p.timezone})",
        cap=p.cap_nanos,
        markers=markers,
        projection=(float(hours), p.projection.end_of_period_nanos),
        axis=axis,
        positions=positions,
    )


def _days_chart(p: FlowPage) -> str:
    index = {d.day: i for i, d in enumerate(p.daily)}
    zone = ZoneInfo(p.timezone)
    markers: list[Marker] = []
    for a in p.annotations_days:
        i = index.get(a.at.astimezone(zone).date())
        if i is not None:
            markers.append((float(i), a.kind, _annotation_text(a, p.timezone)))
    return line_chart(
        [(d.day.isoformat(), d.cost_nanos) for d in p.daily],
        title=f"Daily spend, last {len(p.daily)} days ({p.timezone} days)",
        unpriced={d.day.isoformat(): d.unpriced_records for d in p.daily if d.unpriced_records},
        cap=p.cap_nanos,
        markers=markers,
    )


def _share_rows(items: Sequence[Share]) -> list[list[str]]:
    return [
        [
            f"<code>{esc(s.name)}</code>",
            _cost(s.today),
            _cost(s.days),
            f"{s.days.records:,}",
            esc(percent(s.days.cache_hit)),
        ]
        for s in items
    ]


def _models_table(p: FlowPage) -> str:
    foot = [
        "Total",
        _cost(p.today),
        _cost(p.days_total),
        f"{p.days_total.records:,}",
        esc(percent(p.days_total.cache_hit)),
    ]
    return table(
        ["Model", f"Today ({p.timezone})", f"Last {len(p.daily)} days", "Records", "Cache hits"],
        _share_rows(p.models),
        caption=f"Spend by model: today and the last {len(p.daily)} days ({p.timezone} days)",
        numeric=(1, 2, 3, 4),
        foot=foot,
        name="models",
    )


def _prompts_table(p: FlowPage) -> str:
    if not p.prompts:
        return '<p class="muted">No usage of this flow in the last 30 UTC days.</p>'
    more = ""
    if p.prompts_others:
        more = f'<p class="muted">{esc(plural(p.prompts_others, "more prompt"))} not shown.</p>'
    link = query_href("/prompts", [("flow", p.flow)])
    return (
        table(
            ["Prompt", "Today (UTC day)", "Last 30 UTC days", "Records", "Cache hits"],
            _share_rows(p.prompts),
            caption="Spend by prompt (prompt_id): today's UTC day and the 30 UTC days ending today",
            numeric=(1, 2, 3, 4),
            name="prompts",
        )
        + more
        + f'<p><a href="{esc(link)}">All prompts of this flow</a></p>'
    )


def _events(p: FlowPage) -> str:
    if not p.annotations_days:
        return '<p class="muted">No deploys, budget changes, price changes or breaches in these days.</p>'
    items = "".join(
        f'<li data-annotation="{esc(a.kind)}">{esc(_annotation_text(a, p.timezone))}</li>'
        for a in reversed(p.annotations_days)
    )
    return f'<ul class="flow-events">{items}</ul>'


def render_flow(p: FlowPage) -> str:
    tiles = [
        _today_tile(p),
        _last_week_tile(p),
        _days_tile(p),
        _cache_tile(p),
        _failed_tile(p),
        _fanout_tile(p),
        *(_cps_tile(c) for c in p.cost_per_success[:2]),
    ]
    spend_link = query_href(
        "/spend", [("period", "today"), ("tz", p.timezone), ("by", "model"), ("flow", p.flow)]
    )
    body = (
        f'<p class="muted flow-intro">Flow <code data-flow>{esc(p.flow)}</code> on {esc(p.day.isoformat())} '
        f"({esc(p.timezone)}), read at {esc(_clock(p.now, p.timezone))}. "
        f'<a href="{esc(spend_link)}">The same question on the spend page</a>.</p>'
        f'<div class="band" data-band="flow">{"".join(tiles)}</div>'
        '<section aria-labelledby="today"><h2 id="today">Today against the cap</h2>'
        f'<figure class="flow-chart" data-figure="burn">{_burn_chart(p)}<figcaption class="muted">'
        "Cumulative spend by hour; the dashed grey line is the projection to the end of the day at "
        "today's average rate, the red one the cap. Dotted lines mark events (hover for what).</figcaption>"
        f"</figure>{_budgets_table(p)}</section>"
        f'<section aria-labelledby="days"><h2 id="days">The last {len(p.daily)} days</h2>'
        f'<figure class="flow-chart" data-figure="days">{_days_chart(p)}</figure></section>'
        '<section aria-labelledby="drivers"><h2 id="drivers">What drives the spend</h2>'
        f"{_models_table(p)}{_prompts_table(p)}</section>"
        f'<section aria-labelledby="events"><h2 id="events">Events</h2>{_events(p)}</section>'
    )
    return page(
        title=f"Flow {p.flow}",
        active="",
        body=body,
        generated=f"{p.now:%Y-%m-%d %H:%M:%S} UTC",
        refresh_s=_REFRESH_S,
    )
