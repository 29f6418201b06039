"""``/``: the band of budget tiles, the health tiles beside it, and the week in five sentences."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from finops.domain.words import plural
from finops.render.dashboard.layout import esc, flow_href, money, page, query_href, tile
from finops.render.report_data import of_cap
from finops.usecases.dashboard.overview import BudgetTile, Overview

__all__ = ["render_overview"]

_REFRESH_S = 60


def local_time(at: datetime, zone: str) -> str:
    """``15:50 Europe/Berlin`` (the date too when it is not today there)."""
    from zoneinfo import ZoneInfo

    return f"{at.astimezone(ZoneInfo(zone)):%H:%M} {zone}"


def age_text(seconds: float) -> str:
    """``just now``, ``12 min ago``, ``3 h ago``, ``2 days ago``."""
    s = int(seconds)
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{plural(s // 86400, 'day')} ago"


def _versus(now: int, before: int) -> str:
    """Today against the same time last week, in words a reader cannot misread: a change under a
    cent is "about the same", and a rise from almost nothing is a multiple, not +600,000%."""
    if before <= 0:
        return "nothing this time last week" if now <= 0 else "new: nothing this time last week"
    change = now - before
    if before < 5_000_000 and change >= 10_000_000:  # what shows as $0.00
        return "new: under a cent this time last week"
    if abs(change) < 10_000_000:
        return f"about the same as this time last week ({money(before)})"
    if now >= 10 * before:
        return f"{now // before:,}× the {money(before)} of this time last week"
    pct = (Decimal(change) * 100 / Decimal(before)).quantize(Decimal(1), ROUND_HALF_EVEN)
    sign = "+" if change > 0 else "-"
    return f"{sign}{money(abs(change))} ({sign}{abs(pct)}%) vs {money(before)} this time last week"


def _budget_href(t: BudgetTile) -> str:
    b = t.budget
    if b.flow is not None:
        return flow_href(b.flow)
    pattern = b.flow_pattern
    if not any(c in pattern for c in "*?") and not b.tag_filter:
        return flow_href(pattern)
    tags = [("tag", f"{k}={v}") for k, v in sorted(b.tag_filter.items())]
    return query_href(
        "/spend", [("period", "today"), ("tz", b.timezone), ("by", "flow"), ("flow", pattern), *tags]
    )


def _budget_tile(t: BudgetTile) -> str:
    s, b = t.state, t.budget
    width = min(s.percent, 100)
    low = min(b.thresholds, default=1) * 100
    lines = [
        f'<p class="big">{money(s.spend_nanos)} <span class="sub">of {money(s.cap_nanos)}</span></p>',
        f'<meter min="0" max="100" low="{low}" high="99.99" optimum="0" value="{width}">'
        f"{esc(of_cap(s.spend_nanos, s.cap_nanos))}</meter>",
        f'<p class="sub">{esc(of_cap(s.spend_nanos, s.cap_nanos))} of the daily cap · '
        f"{esc(s.local_day.isoformat())} {esc(b.timezone)}</p>",
    ]
    if s.spend_nanos >= s.cap_nanos:
        lines.append('<p class="sub">over the cap today</p>')
    elif s.projection.cap_hit_at is not None:
        lines.append(f'<p class="sub">cap at {esc(local_time(s.projection.cap_hit_at, b.timezone))}</p>')
    else:
        lines.append(f'<p class="sub">heading for {money(s.projection.end_of_period_nanos)} today</p>')
    lines.append(f'<p class="sub" data-metric="last-week">{_versus(s.spend_nanos, t.last_week_nanos)}</p>')
    if s.month_cap_nanos is not None and s.month_spend_nanos is not None:
        lines.append(f'<p class="sub">month {money(s.month_spend_nanos)} of {money(s.month_cap_nanos)}</p>')
    if t.held_nanos:
        lines.append(f'<p class="sub">held {money(t.held_nanos)} by calls in flight</p>')
    if t.unpriced_records:
        lines.append(
            f'<p class="sub" data-metric="unpriced">{esc(plural(t.unpriced_records, "call"))} today '
            "without a price: cost unknown</p>"
        )
    if b.on_breach == "block":
        lines.append('<p class="sub">blocks calls at the cap</p>')
    label = {"red": "blocking" if b.on_breach == "block" else "over the cap"}.get(t.light)
    return tile(
        key=f"budget:{b.key}",
        light=t.light,
        title=b.key,
        href=_budget_href(t),
        body="".join(lines),
        label=label,
    )


def _health(o: Overview) -> list[str]:
    tiles = []
    for src in o.sources:
        tiles.append(
            tile(
                key=f"health:ingest:{src.source}",
                light=src.light,
                title=f"Ingest · {src.source}",
                body=f'<p class="big">{esc(age_text(src.age_s))}</p>'
                f'<p class="sub">newest record <time datetime="{src.newest.isoformat()}">'
                f"{src.newest:%Y-%m-%d %H:%M} UTC</time></p>",
                label={"green": "fresh", "yellow": "late", "red": "stale"}[src.light],
            )
        )
    for src in o.providers:
        tiles.append(
            tile(
                key=f"health:provider:{src.source}",
                light=src.light,
                title=f"Provider report · {src.source}",
                body=f'<p class="big">{esc(age_text(src.age_s))}</p>'
                f'<p class="sub">last fetched <time datetime="{src.last_ingest.isoformat()}">'
                f"{src.last_ingest:%Y-%m-%d %H:%M} UTC</time>; reported up to "
                f"{src.newest:%Y-%m-%d %H:%M} UTC</p>",
                label={"green": "polling", "yellow": "late", "red": "stale"}[src.light],
            )
        )
    if not o.sources:
        tiles.append(
            tile(
                key="health:ingest",
                light="yellow",
                title="Ingest",
                body='<p class="big">no usage yet</p><p class="sub">send records to /v1/usage or run '
                "<code>finops ingest</code></p>",
                label="waiting",
            )
        )
    share = f"{o.today_unpriced * 100 / o.today_records:.1f}% of today's" if o.today_records else "today's"
    tiles.append(
        tile(
            key="health:unpriced",
            light=o.unpriced_light,
            title="Unpriced today",
            body=f'<p class="big">{o.today_unpriced:,}</p>'
            f'<p class="sub">{esc(plural(o.today_unpriced, "record"))} '
            f"without a price ({esc(share)} {o.today_records:,}); "
            "<code>finops prices unpriced</code> names the models</p>",
            label={"green": "none", "yellow": "some", "red": "many"}[o.unpriced_light],
        )
    )
    tiles.append(
        tile(
            key="health:slack",
            light=o.outbox_light,
            title="Slack outbox",
            body=f'<p class="big">{o.outbox_failed:,} failed · {o.outbox_ambiguous:,} ambiguous</p>'
            '<p class="sub"><code>finops alerts list</code> shows them</p>',
            label={"green": "delivering", "yellow": "checking", "red": "failing"}[o.outbox_light],
        )
    )
    d = o.drift
    if d is None:
        body = '<p class="big">no report</p><p class="sub">no provider cost report for a closed day yet</p>'
    else:
        pct = f"{d.drift_pct:+}%" if d.drift_pct is not None else "—"
        body = (
            f'<p class="big">{esc(pct)}</p><p class="sub">{esc(d.provider)} on {d.day.isoformat()}: '
            f"reported {money(d.reported.cost_nanos)}, metered {money(d.metered.cost_nanos)} "
            f"(alert beyond ±{o.drift_threshold_pct}%)</p>"
        )
    tiles.append(
        tile(
            key="health:drift",
            light=o.drift_light,
            title="Reconciliation drift",
            body=body,
            label={"green": "within tolerance", "yellow": "drifting", "red": "off"}[o.drift_light],
        )
    )
    files = len(o.broken_files) + len(o.kept_files)
    tiles.append(
        tile(
            key="health:budget-files",
            light=o.budget_files_light,
            title="Budget files",
            body=f'<p class="big">{files:,} broken</p>'
            + (
                f'<p class="sub">{len(o.broken_files):,} not enforced, {len(o.kept_files):,} on their '
                "last good version</p>"
                if files
                else '<p class="sub">every file read</p>'
            ),
            label={"green": "read", "yellow": "last good version", "red": "not enforced"}[
                o.budget_files_light
            ],
        )
    )
    return tiles


def render_overview(o: Overview, narrative: Sequence[str] = ()) -> str:
    budgets = "".join(_budget_tile(t) for t in o.budgets)
    if not o.budgets:
        budgets = (
            '<p class="notice">No budgets yet: write one in <code>budgets/*.yaml</code> '
            "(<code>finops budgets init</code>).</p>"
        )
    broken = ""
    if o.broken_files:
        names = ", ".join(f"<code>{esc(f)}</code>" for f in o.broken_files)
        broken = (
            f'<p class="error">{esc(plural(len(o.broken_files), "budget file"))} cannot be read and '
            f"{'is' if len(o.broken_files) == 1 else 'are'} not enforced: {names}. "
            "<code>finops budgets validate</code> says why.</p>"
        )
    if o.kept_files:
        names = ", ".join(f"<code>{esc(f)}</code>" for f in o.kept_files)
        broken += (
            f'<p class="error">{esc(plural(len(o.kept_files), "budget file"))} cannot be read; the last '
            f"version that could is enforced until it is fixed: {names}. "
            "<code>finops budgets validate</code> says why.</p>"
        )
    story = ""
    if narrative:
        story = (
            '<section aria-labelledby="week"><h2 id="week">This week</h2>'
            '<div class="narrative" data-narrative>'
            f"<p>{' '.join(esc(s) for s in narrative)}</p></div></section>"
        )
    body = (
        f'<section aria-labelledby="budgets"><h2 id="budgets">Budgets today</h2>{broken}'
        f'<div class="band" data-band="budgets">{budgets}</div></section>'
        f'<section aria-labelledby="health"><h2 id="health">Health</h2>'
        f'<div class="band" data-band="health">{"".join(_health(o))}</div></section>{story}'
    )
    return page(
        title="Overview",
        active="overview",
        body=body,
        generated=f"{o.now:%Y-%m-%d %H:%M:%S} UTC",
        refresh_s=_REFRESH_S,
    )
