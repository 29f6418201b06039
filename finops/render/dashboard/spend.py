"""``/spend``: the form (keeping what was asked), the answer as a table and a chart, and the
exact downloads.

Every number comes from the :class:`SpendResult` as ``finops spend --format json`` prints it: the
table's ``<data value>`` holds the JSON's exact string (cost) or integer (counts), the total row
is the result's total (the rows plus "N more" add up to it), and a group with no priced record
shows a dash with its unpriced count, never $0.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from finops.domain.dashboard import Annotation
from finops.domain.words import plural
from finops.render.charts import Marker, bar_chart, line_chart
from finops.render.dashboard.layout import esc, money, page, table
from finops.usecases.dashboard.spend import SpendForm
from finops.usecases.spend import DIMENSIONS, SpendResult

__all__ = ["render_spend", "spend_href"]

#: Counts shown beside the cost, as (JSON name, column heading).
_COUNTS = (
    ("requests", "requests"),
    ("input_tokens", "input tokens"),
    ("cached_input_tokens", "cached input"),
    ("output_tokens", "output tokens"),
    ("reasoning_tokens", "reasoning tokens"),
    ("unpriced_records", "unpriced records"),
)
_TIME = ("hour", "day", "month")
#: Bars drawn at most (the table has every row).
_MAX_BARS = 40
_PERIOD_WORDS = {"today": "Today (since local midnight)", "month": "A month", "range": "Since / until"}


def spend_href(path: str, form: SpendForm) -> str:
    """``/spend``, ``/spend.csv`` or ``/spend.json`` with this question's query string."""
    return f"{path}?{urlencode(form.params())}"


def _count(value: int) -> str:
    return f'<data value="{value}">{value:,}</data>'


def _unknown(sums: dict[str, int]) -> bool:
    """No record of the group has a price: its cost is unknown, not zero."""
    return bool(sums["unpriced_records"]) and sums["unpriced_records"] >= sums["records"]


def _cost(sums: dict[str, int]) -> str:
    if _unknown(sums):
        return (
            money(None)
            + f' <span class="unpriced">{esc(plural(sums["unpriced_records"], "unpriced"))}</span>'
        )
    partly = ' <span class="unpriced" title="plus usage without a price">+?</span>'
    return money(sums["cost_nanos"]) + (partly if sums["unpriced_records"] else "")


def _cells(sums: dict[str, int]) -> list[str]:
    return [_cost(sums), *(_count(sums[name]) for name, _ in _COUNTS)]


def _label(keys: dict[str, str]) -> str:
    return " · ".join(keys.values()) or "all usage"


def _table(result: SpendResult) -> str:
    dims = list(result.query.group_by)
    heads = [d.removeprefix("tag:") for d in dims] or ["usage"]
    rows = [[esc(v) for v in r.keys.values()] or ["all usage"] for r in result.rows]
    sums = [r.sums for r in result.rows]
    if result.others is not None:
        more = f"({result.others_count} more)"
        rows.append([esc(more)] + [""] * (len(heads) - 1))
        sums.append(result.others)
    body = [[*key, *_cells(s)] for key, s in zip(rows, sums, strict=True)]
    foot = ["total"] + [""] * (len(heads) - 1) + _cells(result.total)
    numeric = range(len(heads), len(heads) + 1 + len(_COUNTS))
    return table(
        [*heads, "cost (USD)", *(h for _, h in _COUNTS)],
        body,
        caption=f"Spend by {', '.join(heads) if dims else 'nothing (all usage)'}",
        numeric=list(numeric),
        foot=foot,
        name="spend",
    )


def _markers(
    points: Sequence[tuple[str, int]], notes: Sequence[Annotation], grain: str, tz: ZoneInfo
) -> list[Marker]:
    """Each event on the bucket it falls in (a bucket with no usage has no point, so no marker)."""
    slot = {label: float(i) for i, (label, _) in enumerate(points)}
    fmt = {"hour": "%Y-%m-%dT%H:%M%z", "day": "%Y-%m-%d", "month": "%Y-%m"}[grain]
    found: list[Marker] = []
    for a in notes:
        at = a.at.replace(minute=0, second=0, microsecond=0) if grain == "hour" else a.at  # UTC hour buckets
        i = slot.get(at.astimezone(tz).strftime(fmt))
        if i is not None:
            found.append((i, a.kind, f"{a.at.astimezone(tz):%Y-%m-%d %H:%M} {a.kind}: {a.text}"))
    return found


def _chart(result: SpendResult, notes: Sequence[Annotation] = ()) -> str:
    q = result.query
    if len(q.group_by) == 1 and q.group_by[0] in _TIME:
        grain = q.group_by[0]
        points = [(_label(r.keys), r.sums["cost_nanos"]) for r in result.rows]
        unpriced = {
            _label(r.keys): r.sums["unpriced_records"] for r in result.rows if r.sums["unpriced_records"]
        }
        markers = _markers(points, notes, grain, q.tz)
        return line_chart(points, title=f"Cost by {grain} ({q.tz})", unpriced=unpriced, markers=markers)
    rows = [(r.keys, r.sums) for r in result.rows]
    if result.others is not None:
        rows.append(({"": f"({result.others_count} more)"}, result.others))
    shown = rows[:_MAX_BARS]
    items = [(_label(k), None if _unknown(s) else s["cost_nanos"]) for k, s in shown]
    partly = frozenset(_label(k) for k, s in shown if s["unpriced_records"] and not _unknown(s))
    heads = ", ".join(d.removeprefix("tag:") for d in q.group_by) or "all usage"
    chart = bar_chart(items, title=f"Cost by {heads}", partly=partly)
    if len(rows) > _MAX_BARS:
        chart += (
            f'<p class="muted">The chart shows the first {_MAX_BARS} of {len(rows)} rows; '
            "the table has all.</p>"
        )
    return chart


def _field(name: str, label: str, value: str, *, hint: str = "", extra: str = "") -> str:
    ident = f"f-{name}"
    return (
        f'<label for="{ident}">{esc(label)}'
        f'<input id="{ident}" name="{esc(name)}" value="{esc(value)}"{extra}>'
        f"{f'<small>{esc(hint)}</small>' if hint else ''}</label>"
    )


def _repeated(name: str, label: str, values: Sequence[str], hint: str) -> str:
    """One input per value given, plus an empty one to add another (no script needed)."""
    fields = []
    for i, value in enumerate([*values, ""]):
        ident = f"f-{name}-{i}"
        title = label if i == 0 else f"{label} ({i + 1})"
        fields.append(
            f'<label for="{ident}">{esc(title)}'
            f'<input id="{ident}" name="{esc(name)}" value="{esc(value)}" placeholder="{esc(hint)}"></label>'
        )
    return "".join(fields)


def _form(form: SpendForm) -> str:
    choices = "".join(f'<option value="{esc(d)}"></option>' for d in (*DIMENSIONS, "tag:team", "flow,model"))
    periods = "".join(
        f'<option value="{p}"{" selected" if p == form.period else ""}>{esc(words)}</option>'
        for p, words in _PERIOD_WORDS.items()
    )
    return (
        '<form class="filters spend-form" method="get" action="/spend" aria-label="The spend question">'
        + _field(
            "by",
            "Group by",
            form.by,
            hint="comma-separated: flow, model, provider, service_tier, status, day, month, hour, tag:KEY",
            extra=' list="by-choices" autocomplete="off"',
        )
        + f'<datalist id="by-choices">{choices}</datalist>'
        + f'<label for="f-period">Period<select id="f-period" name="period">{periods}</select></label>'
        + _field("month", "Month", form.month, extra=' placeholder="2026-11"')
        + _field("since", "Since", form.since, extra=' placeholder="7d, 2026-11-01"')
        + _field("until", "Until (exclusive)", form.until, extra=' placeholder="2026-11-15"')
        + _field("tz", "Time zone", form.tz, extra=' placeholder="Europe/Berlin"')
        + _repeated("flow", "Flow", form.flows, "support-*")
        + _repeated("model", "Model", form.models, "gpt-4o*")
        + _repeated("provider", "Provider", form.providers, "openai")
        + _repeated("tag", "Tag", form.tags, "team=search")
        + _field("top", "Top", form.top, extra=' type="number" min="1" inputmode="numeric"')
        + '<button id="f-submit" type="submit">Show</button></form>'
    )


def _span(result: SpendResult) -> str:
    """The period in the question's own time zone (the query holds UTC instants)."""
    q = result.query
    start = f"{q.start.astimezone(q.tz):%Y-%m-%d %H:%M}" if q.start else ""
    end = f"{q.end.astimezone(q.tz):%Y-%m-%d %H:%M}" if q.end else ""
    if start and end:
        return f"{start} to {end} {q.tz} (end exclusive)"
    if start:
        return f"since {start} {q.tz}"
    if end:
        return f"until {end} {q.tz}"
    return "all time"


def _unpriced_note(result: SpendResult) -> str:
    count = result.total["unpriced_records"]
    if not count:
        return ""
    models = ", ".join(f"<code>{esc(m)}</code>" for m, _ in result.unpriced_models[:5])
    return (
        f'<p class="notice">{esc(plural(count, "record"))} {"has" if count == 1 else "have"} no price: '
        f"their cost is unknown and not in the total (— or +? above): {models}. "
        "<code>finops prices unpriced</code> lists them.</p>"
    )


def render_spend(
    form: SpendForm, result: SpendResult, *, generated: str, annotations: Sequence[Annotation] = ()
) -> str:
    """The whole page for a question the form asked and its answer."""
    downloads = (
        '<p class="downloads">Download exactly what the CLI prints: '
        f'<a href="{esc(spend_href("/spend.csv", form))}" data-download="csv">CSV</a>'
        f'<a href="{esc(spend_href("/spend.json", form))}" data-download="json">JSON</a></p>'
        f'<p class="muted command">Same as <code>{esc(form.command("json"))}</code></p>'
    )
    if result.rows:
        answer = _table(result) + _unpriced_note(result) + _chart(result, annotations)
    else:
        answer = (
            '<p class="notice">No usage in this period. Ingest some with <code>finops ingest FILE</code>.</p>'
        )
    body = (
        _form(form)
        + f'<section aria-labelledby="answer"><h2 id="answer">Spend {esc(_span(result))}</h2>'
        + downloads
        + answer
        + "</section>"
    )
    return page(title="Spend", active="spend", body=body, generated=generated)
