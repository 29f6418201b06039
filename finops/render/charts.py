"""Inline SVG charts for the HTML report: no JavaScript, no fonts or images to fetch.

The report is one file mailed to finance and opened offline, or printed, so charts are
plain SVG drawn here rather than by a charting library that needs a script and a CDN.
Each chart is an ``<svg role="img">`` with a ``<title>`` (read by screen readers, shown
as a tooltip) and ``data-chart="bar"`` or ``data-chart="line"``; each bar or point
carries ``data-value`` (integer nano-dollars) and ``data-label``, so tests and scrapers
read the exact numbers back. Every label is escaped: names come from usage data. The
``<svg>`` has no ``xmlns``: HTML does not need it inline, and the report then contains no
``http://`` at all (a test checks that). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from finops.domain.words import plural
from finops.render.report_data import month_name, usd, usd_unit

__all__ = ["BAR_COLOR", "CAP_COLOR", "LINE_COLOR", "Marker", "bar_chart", "line_chart"]

BAR_COLOR = "#2f6bd8"
LINE_COLOR = "#2f6bd8"
_AREA_COLOR = "#dce8fb"
_TEXT = "#1f2933"
_MUTED = "#616e7c"
_GRID = "#e4e7eb"
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

_WIDTH = 720
_LINE_WIDTH = 1000  # a month of days needs the room; it scales down with the page
_LABEL_WIDTH = 230
_VALUE_WIDTH = 96
_ROW = 26
_BAR = 16
_TITLE_HEIGHT = 34
_LABEL_CHARS = 32
_NANOS = 1_000_000_000


def _a(value: object) -> str:
    """An attribute value or text node, escaped (quotes too)."""
    return escape(str(value), quote=True)


def _clip(label: str, limit: int = _LABEL_CHARS) -> str:
    label = " ".join(label.split())
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _n(x: float) -> str:
    """A coordinate with at most one decimal (keeps the markup small and stable)."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _open(kind: str, title: str, height: int, desc: str, width: int = _WIDTH) -> list[str]:
    return [
        f'<svg role="img" aria-label="{_a(title)}" '
        f'data-chart="{kind}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="{_a(_FONT)}" font-size="12" fill="{_TEXT}" class="chart">',
        f"<title>{_a(title)}</title>",
        f"<desc>{_a(desc)}</desc>",
        f'<text x="0" y="18" font-size="14" font-weight="600">{_a(title)}</text>',
    ]


def _empty(kind: str, title: str) -> str:
    lines = _open(kind, title, 80, "No data")
    lines.append(f'<text x="0" y="56" fill="{_MUTED}">No spend this month.</text>')
    return "\n".join([*lines, "</svg>"])


def bar_chart(
    items: Sequence[tuple[str, int | None]], *, title: str, partly: frozenset[str] = frozenset()
) -> str:
    """Horizontal bars, one per ``(label, nanos)`` in the given order, values written as dollars.

    Bars scale to the largest value; a negative value draws no bar. ``None`` is a cost nobody
    knows (unpriced usage): no bar and "cost unknown", never $0 (its ``data-value`` is empty). A
    label in ``partly`` has some unpriced usage: its value is the priced part, marked with a dagger.
    Long labels are cut to fit (the full label is the bar's tooltip).
    """
    if not items:
        return _empty("bar", title)
    height = _TITLE_HEIGHT + _ROW * len(items) + 6
    known = [(k, v) for k, v in items if v is not None]
    top = max(max((v for _, v in known), default=0), 1)
    span = _WIDTH - _LABEL_WIDTH - _VALUE_WIDTH
    desc = plural(len(items), "bar")
    if known:
        name, value = max(known, key=lambda kv: kv[1])
        desc += f"; largest {name}: {usd(value)}"
    lines = _open("bar", title, height, desc)
    for i, (label, nanos) in enumerate(items):
        y = _TITLE_HEIGHT + i * _ROW
        width = max(nanos or 0, 0) * span / top
        if nanos is not None and nanos > 0:
            width = max(width, 1.0)
        mid = y + _ROW / 2 + 4
        shown = "cost unknown" if nanos is None else usd(nanos) + ("†" if label in partly else "")
        data = "" if nanos is None else str(nanos)
        italic = ' font-style="italic"' if nanos is None else ""
        lines += [
            f"<g><title>{_a(label)}: {_a(shown)}</title>",
            f'<text x="{_LABEL_WIDTH - 10}" y="{_n(mid)}" text-anchor="end">{_a(_clip(label))}</text>',
            f'<rect x="{_LABEL_WIDTH}" y="{_n(y + (_ROW - _BAR) / 2)}" width="{_n(width)}" height="{_BAR}" '
            f'rx="2" fill="{BAR_COLOR}" data-value="{data}" data-label="{_a(label)}"/>',
            f'<text x="{_n(_LABEL_WIDTH + width + 6)}" y="{_n(mid)}" fill="{_MUTED}" '
            f'font-variant-numeric="tabular-nums"{italic}>'
            f"{_a(shown)}</text></g>",
        ]
    return "\n".join([*lines, "</svg>"])


def _step(top: int, ticks: int = 4) -> int:
    """A "nice" axis step in nanos (1, 2 or 5 times a power of ten) giving at most ``ticks`` steps."""
    raw = max(-(-top // ticks), 1)
    magnitude: int = 10 ** (len(str(raw)) - 1)
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _axis_usd(nanos: int, step: int) -> str:
    if step % _NANOS == 0:
        return f"${nanos // _NANOS:,}"
    return usd(nanos) if step % (_NANOS // 100) == 0 else usd_unit(nanos)


def _day(label: str) -> str:
    """``2026-10-14`` as ``Oct 14`` on the axis; other labels as given."""
    if len(label) == 10 and label[4] == "-" and label[7] == "-" and label[8:].isdigit():
        return f"{month_name(label[:7], short=True)[:3]} {int(label[8:])}"
    return _clip(label, 12)


#: Marks added for the dashboard's time charts (the report draws none of them).
CAP_COLOR = "#c2262e"
_PROJECTION_COLOR = "#7b8794"
_MARKER_COLORS = {"deploy": "#6b3fa0", "price": "#a86400", "budget": "#1e7b45", "breach": "#c2262e"}
_MARKER_DEFAULT = "#52606d"

#: A marker on a time chart: (x position in slots, kind, tooltip text).
Marker = tuple[float, str, str]


def line_chart(
    points: Sequence[tuple[str, int]],
    *,
    title: str,
    unpriced: Mapping[str, int] | None = None,
    cap: int | None = None,
    markers: Sequence[Marker] = (),
    projection: tuple[float, int] | None = None,
    axis: Sequence[str] | None = None,
    positions: Sequence[float] | None = None,
) -> str:
    """Spend over time: a line with a shaded area and a dot per ``(label, nanos)`` point.

    The y axis starts at zero (a chart starting at $380 makes a 5% rise look like 300%)
    and has "nice" dollar gridlines; about eight x labels are shown whatever the length.
    A point in ``unpriced`` (label -> records without a price) is drawn hollow and its tooltip
    says its dollars are the priced part only (``data-unpriced`` holds the count).

    The dashboard's extras (all optional): ``axis`` labels the x slots when they outnumber the
    points (a whole day of hours while the points stop at now), ``positions`` puts each point on
    a slot (fractions allowed; default: point i on slot i); ``cap`` draws a dashed line carrying
    ``data-cap`` (nanos); ``projection`` (slot, nanos) a dashed line from the last point carrying
    ``data-projection``; each marker (slot, kind, text) is a vertical line in a
    ``<g data-annotation="kind">`` whose ``<title>`` is the text.
    """
    unpriced = unpriced or {}
    if not points:
        return _empty("line", title)
    labels = list(axis) if axis else [label for label, _ in points]
    at = list(positions) if positions is not None else [float(i) for i in range(len(points))]
    height, left, right, top_pad, bottom = 260, 70, 16, _TITLE_HEIGHT + 10, 28
    plot_w, plot_h = _LINE_WIDTH - left - right, height - top_pad - bottom
    data_peak = max(max(v for _, v in points), cap or 0, 0)
    peak = data_peak
    if projection is not None:
        # an early-morning projection (minutes of spend times a day) may be 50 times the cap: the
        # axis stops at twice the data and the cap, and the projection leaves through its top
        peak = max(data_peak, min(projection[1], 2 * data_peak) if data_peak else projection[1])
    step = _step(peak) if peak else _NANOS
    ceiling = max(-(-peak // step) * step, step)
    label, most = max(points, key=lambda p: p[1])
    desc = (
        f"{plural(len(points), 'point')} from {points[0][0]} to {points[-1][0]}; highest {label}: {usd(most)}"
    )
    if cap is not None:
        desc += f"; cap {usd(cap)}"
    lines = _open("line", title, height, desc, _LINE_WIDTH)
    slots = max(len(labels), 1)

    def x(pos: float) -> float:
        if slots == 1:
            return left + plot_w / 2
        return left + min(max(pos, 0.0), slots - 1) * plot_w / (slots - 1)

    def y(v: int) -> float:
        return top_pad + plot_h - max(v, 0) * plot_h / ceiling

    for tick in range(0, ceiling + 1, step):
        lines += [
            f'<line x1="{left}" x2="{_LINE_WIDTH - right}" y1="{_n(y(tick))}" y2="{_n(y(tick))}" '
            f'stroke="{_GRID}" stroke-width="1"/>',
            f'<text x="{left - 8}" y="{_n(y(tick) + 4)}" text-anchor="end" fill="{_MUTED}">'
            f"{_a(_axis_usd(tick, step))}</text>",
        ]
    every = max(1, -(-slots // 8))
    for i, day in enumerate(labels):
        if i % every == 0:
            # the last label ends at the plot's edge rather than spilling past the chart's
            anchor = "end" if slots > 1 and i == slots - 1 else "middle"
            lines.append(
                f'<text x="{_n(x(i))}" y="{height - 8}" text-anchor="{anchor}" fill="{_MUTED}">'
                f"{_a(_day(day))}</text>"
            )
    coords = [f"{_n(x(at[i]))},{_n(y(v))}" for i, (_, v) in enumerate(points)]
    base = _n(y(0))
    area = f"M{_n(x(at[0]))},{base} L" + " L".join(coords) + f" L{_n(x(at[len(points) - 1]))},{base} Z"
    lines += [
        f'<path d="{area}" fill="{_AREA_COLOR}" stroke="none"/>',
        f'<polyline points="{" ".join(coords)}" fill="none" stroke="{LINE_COLOR}" stroke-width="2" '
        'stroke-linejoin="round"/>',
    ]
    if cap is not None:
        lines.append(
            f'<g data-cap="{cap}"><title>{_a(f"cap {usd(cap)}")}</title>'
            f'<line x1="{left}" x2="{_LINE_WIDTH - right}" y1="{_n(y(cap))}" y2="{_n(y(cap))}" '
            f'stroke="{CAP_COLOR}" stroke-width="2" stroke-dasharray="8 4"/>'
            f'<text x="{_LINE_WIDTH - right}" y="{_n(y(cap) - 5)}" text-anchor="end" fill="{CAP_COLOR}">'
            f"{_a(f'cap {usd(cap)}')}</text></g>"
        )
    if projection is not None:
        where, value = projection
        last = points[-1][1]
        x0, x1, shown = x(at[-1]), x(where), value
        if value > ceiling and value > last:  # cut where the line leaves the plot, and say where it goes
            x1 = x0 + (x1 - x0) * (ceiling - last) / (value - last)
            shown = ceiling
        note = ""
        if shown != value:
            note = (
                f'<text x="{_n(min(x1 + 4, _LINE_WIDTH - right))}" y="{_n(y(shown) + 12)}" '
                f'text-anchor="{"end" if x1 > _LINE_WIDTH - right - 160 else "start"}" '
                f'fill="{_PROJECTION_COLOR}">{_a(f"heading for {usd(value)}")}</text>'
            )
        lines.append(
            f'<g data-projection="{value}"><title>{_a(f"projected {usd(value)}")}</title>'
            f'<line x1="{_n(x0)}" y1="{_n(y(last))}" x2="{_n(x1)}" y2="{_n(y(shown))}" '
            f'stroke="{_PROJECTION_COLOR}" stroke-width="2" stroke-dasharray="4 4"/>{note}</g>'
        )
    for where, kind, text in markers:
        color = _MARKER_COLORS.get(kind, _MARKER_DEFAULT)
        mx = _n(x(where))
        lines.append(
            f'<g data-annotation="{_a(kind)}"><title>{_a(text)}</title>'
            f'<line x1="{mx}" x2="{mx}" y1="{top_pad}" y2="{_n(y(0))}" stroke="{color}" '
            'stroke-width="2" stroke-dasharray="2 3"/>'
            f'<circle cx="{mx}" cy="{top_pad}" r="5" fill="{color}"/></g>'
        )
    for i, (day, nanos) in enumerate(points):
        missing = unpriced.get(day, 0)
        tip = f"{day}: {usd(nanos)}"
        extra = ""
        fill = LINE_COLOR
        if missing:
            tip += f" priced, plus {plural(missing, 'unpriced record')} (cost unknown)"
            extra, fill = f' data-unpriced="{missing}" stroke="{LINE_COLOR}" stroke-width="1.5"', "#fff"
        lines.append(
            f'<circle cx="{_n(x(at[i]))}" cy="{_n(y(nanos))}" r="3" fill="{fill}"{extra} '
            f'data-value="{nanos}" data-label="{_a(day)}"><title>{_a(tip)}</title></circle>'
        )
    return "\n".join([*lines, "</svg>"])
