"""The monthly report's numbers: JSON and CSV for machines, and the figures and formats all renderers share.

Convention, the same as ``finops spend --format json``: money is an exact decimal
string of US dollars with nine places (``"12.345678901"``) under a key ending in
``_usd``, never a float and never rounded; ``null`` (JSON) or an empty cell (CSV)
means *unknown* (no previous month, no success to divide by, an unpriced model), never
zero. Counts are integers; ratios (share, cache hit, success rate) are fractions 0..1.
A line whose records are all unpriced has ``cost_usd: null`` (unknown) and every line carries
``unpriced_records`` (records whose cost is unknown and not in ``cost_usd``), so a partly priced
line is its priced cost plus a count of what could not be priced.

``breaches`` lists spend at or over a cap; ``threshold_crossings`` lists the lower thresholds
(50%, 80%) and fan-out guardrails (both used to be in ``breaches``: see CHANGELOG). A partial month has
``partial`` set and ``compared_with`` naming the same days of the previous month.

The helpers (:func:`change`, :func:`ratio`, :func:`untagged_nanos`, :func:`movers`) and
the formats for people (:func:`usd`, :func:`percent` ...) are used by the Markdown, HTML
and Slack renderers, so every format agrees on what "change" means and how it reads.
For people, dollars are rounded to the cent (half to even); a cost per success or per
attempt below one dollar keeps four decimals, because "$0.06" hides the difference between
a 4.3 and a 5.7 cent outcome and budgets cap it at such figures. Unknown is never shown as
zero: "cost unknown", "no successes", "new", or a dash. Pure: no I/O.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from finops.domain.budgets import percent_of
from finops.domain.money import format_usd, nanos_to_usd
from finops.usecases.audit.report_model import Breach, BudgetLine, MonthlyReport, SpendLine, comparable

__all__ = [
    "DASH",
    "ESTIMATE_NOTE",
    "breach_kind",
    "breach_threshold",
    "change",
    "change_ratio",
    "compared_label",
    "count",
    "month_name",
    "movers",
    "of_cap",
    "percent",
    "percent_change",
    "period_label",
    "ratio",
    "relative_change",
    "report_document",
    "report_to_csv",
    "report_to_json",
    "untagged_nanos",
    "usd",
    "usd_change",
    "usd_unit",
    "value_per_dollar_nanos",
]

DASH = "—"
#: Said next to the headline when some token counts are estimates.
ESTIMATE_NOTE = (
    "some prompt token counts are estimates (no exact tokenizer for their model), "
    "so average prompt sizes are approximate. Costs come from the recorded usage."
)
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
SCHEMA = "finops.monthly_report/1"
_UNPRICED_NOTE = "cost of unpriced usage is unknown and not in total_usd; see `finops prices unpriced`"
#: A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------- shared derived numbers


def change(now: int, prev: int | None) -> int | None:
    """``now - prev``, or None when there is no previous figure (a new flow is not a +100% change)."""
    return None if prev is None else now - prev


def change_ratio(now: int, prev: int | None) -> Decimal | None:
    """Relative change as an exact Decimal (0.21 is +21%); None without a non-zero previous figure."""
    if not prev:
        return None
    return (Decimal(now) - Decimal(prev)) / Decimal(prev)


def relative_change(now: int, prev: int | None, *, base: bool = True) -> str:
    """``+21.0%``; ``new`` when ``prev`` is too small a base (see ``comparable``); a dash without ``prev``."""
    if prev is None:
        return DASH
    if not comparable(now, prev, base=base):
        return "new"
    return percent_change(change_ratio(now, prev))


def period_label(report: MonthlyReport) -> str:
    """``October 2026``, or ``November 2026, partial (1–29 Nov)`` for a month still running."""
    name = month_name(report.month)
    return f"{name}, partial ({report.partial})" if report.partial else name


def compared_label(report: MonthlyReport) -> str:
    """What the report compares with: ``September 2026`` or ``the same days of October (1–29 Oct)``."""
    prev = month_name(report.previous_month)
    if report.compared_days:
        return f"the same days of {prev} ({report.compared_days})"
    return prev


def ratio(part: int, whole: int) -> float | None:
    """``part / whole`` for shares and hit rates; None when ``whole`` is zero (not 0%)."""
    return part / whole if whole else None


def untagged_nanos(report: MonthlyReport, key: str) -> int:
    """Spend carrying no value for tag ``key``: the total minus its lines (never below zero)."""
    return max(report.total_nanos - sum(line.cost_nanos for line in report.by_tag.get(key, ())), 0)


def movers(lines: Iterable[SpendLine], n: int) -> list[SpendLine]:
    """The ``n`` lines whose spend moved most in dollars, either way; a new line moved by its cost."""

    def moved(line: SpendLine) -> int:
        return abs(line.cost_nanos - (line.prev_cost_nanos or 0))

    return sorted((line for line in lines if moved(line)), key=moved, reverse=True)[:n]


# ---------------------------------------------------------------- formats for people


def usd(nanos: int) -> str:
    """Dollars to the cent, half to even: ``$1,234.57``, ``-$3.10``."""
    return f"{'-' if nanos < 0 else ''}${format_usd(abs(nanos), cents=True)}"


def usd_unit(nanos: int) -> str:
    """A unit cost (per success, per attempt): four decimals below one dollar, else cents."""
    if abs(nanos) >= 1_000_000_000:
        return usd(nanos)
    value = nanos_to_usd(abs(nanos)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    return f"{'-' if nanos < 0 else ''}${value}"


def usd_change(nanos: int | None) -> str:
    """A signed difference (``+$12.30``, ``-$4.00``); None (no previous figure) reads ``new``."""
    return "new" if nanos is None else ("+" if nanos > 0 else "") + usd(nanos)


def percent(value: float | Decimal | None, places: int = 1) -> str:
    """A fraction as a percentage (0.214 is ``21.4%``); None reads as a dash, not 0%."""
    if value is None:
        return DASH
    q = (Decimal(str(value)) * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{abs(q) if q == 0 else q}%"


def percent_change(value: Decimal | None) -> str:
    """A signed relative change (``+21.0%``); None (nothing to compare with) reads as a dash."""
    text = percent(value)
    return text if value is None or text.startswith("-") or text == "0.0%" else "+" + text


def count(n: int) -> str:
    return f"{n:,}"


def month_name(month: str, *, short: bool = False) -> str:
    """``2026-10`` as ``October 2026`` (``Oct 2026`` when short); anything else unchanged."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        return month
    name = _MONTHS[int(m.group(2)) - 1]
    return f"{name[:3] if short else name} {m.group(1)}"


def breach_kind(b: Breach) -> str:
    """``threshold`` is daily or monthly depending on the period (``2026-10-14`` or ``2026-10``)."""
    if b.kind == "threshold":
        return "monthly threshold" if re.fullmatch(r"\d{4}-\d{2}", b.period) else "daily threshold"
    return {
        "monthly": "monthly cap",
        "fanout": "tool-call fan-out",
        "cost_per_success": "cost per success",
    }.get(b.kind, b.kind)


def breach_threshold(b: Breach) -> str:
    """A threshold fraction (``0.8``) as ``80%``, a cost per success as dollars, else as written."""
    number = re.fullmatch(r"\d+(\.\d+)?", b.threshold)
    if number and b.kind in ("threshold", "monthly"):
        return percent(Decimal(b.threshold), places=0)
    if number and b.kind == "cost_per_success":
        return f"${b.threshold}"
    return b.threshold or DASH


def of_cap(spend: int, cap: int) -> str:
    """Spend as a whole percent of its cap, floored (99.9% never reads 100%); a dash without a cap."""
    return f"{percent_of(spend, cap)}%" if cap > 0 else DASH


def value_per_dollar_nanos(value: int | None, cost: int) -> int | None:
    """Value earned per dollar spent, in nano-dollars (rounded half to even); None when unknown."""
    if value is None or cost <= 0:
        return None
    q, rem = divmod(value * 1_000_000_000, cost)
    return q + (1 if rem * 2 > cost or (rem * 2 == cost and q % 2) else 0)


# ---------------------------------------------------------------- JSON


def _usd(nanos: int | None) -> str | None:
    return None if nanos is None else format_usd(nanos)


def _spend(line: SpendLine, total: int) -> dict[str, Any]:
    return {
        "key": line.key,
        "cost_usd": _usd(line.cost_nanos) if line.cost_known else None,
        "unpriced_records": line.unpriced_records,
        "prev_cost_usd": _usd(line.prev_cost_nanos) if line.prev_cost_known else None,
        "change_usd": _usd(change(line.cost_nanos, line.prev_cost_nanos))
        if line.cost_known and line.prev_cost_known
        else None,
        "share": ratio(line.cost_nanos, total) if line.cost_known else None,
        "requests": line.requests,
        "input_tokens": line.input_tokens,
        "output_tokens": line.output_tokens,
        "cached_input_tokens": line.cached_input_tokens,
        "cache_hit_ratio": ratio(line.cached_input_tokens, line.input_tokens),
    }


def _breach(b: Breach) -> dict[str, Any]:
    return {
        "budget": b.budget,
        "period": b.period,
        "kind": b.kind,
        "threshold": b.threshold,
        "spend_usd": _usd(b.spend_nanos),
        "cap_usd": _usd(b.cap_nanos),
    }


def _budget(b: BudgetLine) -> dict[str, Any]:
    return {
        "flow": b.flow,
        "budget": b.budget,
        "daily_cap_usd": _usd(b.daily_cap_nanos),
        "days": b.days,
        "cap_usd": _usd(b.cap_nanos),
        "actual_usd": _usd(b.actual_nanos),
        "percent_of_cap": percent_of(b.actual_nanos, b.cap_nanos) if b.cap_nanos > 0 else None,
        "unpriced_records": b.unpriced_records,
    }


def report_document(report: MonthlyReport) -> dict[str, Any]:
    """The report as JSON-ready data (see the module docstring for the conventions)."""
    r = report
    total = r.total_nanos
    return {
        "schema": SCHEMA,
        "currency": "USD",
        "month": r.month,
        "previous_month": r.previous_month,
        "timezone": r.timezone,
        "generated_at": r.generated_at,
        "partial": r.partial,
        "compared_with": r.compared_days,
        "previous_is_base": r.prev_base,
        "summary": {
            "total_usd": _usd(total),
            "prev_total_usd": _usd(r.prev_total_nanos),
            "change_usd": _usd(change(total, r.prev_total_nanos)),
            "requests": r.requests,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cached_input_tokens": r.cached_input_tokens,
            "cache_hit_ratio": ratio(r.cached_input_tokens, r.input_tokens),
            "token_counts_estimated": r.token_counts_estimated,
            "records": r.records,
            "unpriced_records": r.unpriced_records,
            "budget_breaches": len(r.over_cap),
            "threshold_crossings": len(r.crossings),
        },
        "by_flow": [_spend(line, total) for line in r.by_flow],
        "by_model": [_spend(line, total) for line in r.by_model],
        "by_provider": [_spend(line, total) for line in r.by_provider],
        "by_tag": {
            key: {
                "lines": [_spend(line, total) for line in lines],
                "untagged_usd": _usd(untagged_nanos(r, key)),
            }
            for key, lines in r.by_tag.items()
        },
        "daily": [
            {"date": day, "cost_usd": _usd(nanos), "unpriced_records": dict(r.daily_unpriced).get(day, 0)}
            for day, nanos in r.daily
        ],
        "breaches": [_breach(b) for b in r.over_cap],
        "threshold_crossings": [_breach(b) for b in r.crossings],
        "budgets": [_budget(b) for b in r.budgets],
        "budgets_problem": r.budgets_problem,
        "outcomes": [
            {
                "flow": o.flow,
                "cost_usd": _usd(o.cost_nanos),
                "outcomes": o.outcomes,
                "successes": o.successes,
                "partials": o.partials,
                "failures": o.failures,
                "success_rate": o.success_rate,
                "cost_per_success_usd": _usd(o.cost_per_success_nanos),
                "cost_per_attempt_usd": _usd(o.cost_per_attempt_nanos),
                "prev_cost_per_success_usd": _usd(o.prev_cost_per_success_nanos),
                "value_usd": _usd(o.value_nanos),
                "value_per_dollar": None if o.value_nanos is None else ratio(o.value_nanos, o.cost_nanos),
            }
            for o in r.outcomes
        ],
        "top_prompts": [
            {
                "rank": rank,
                "prompt": p.prompt,
                "cost_usd": _usd(p.cost_nanos) if p.cost_known else None,
                "unpriced_records": p.unpriced_records,
                "prev_cost_usd": _usd(p.prev_cost_nanos),
                "change_usd": _usd(change(p.cost_nanos, p.prev_cost_nanos)),
                "share": p.share,
                "calls": p.calls,
                "avg_input_tokens": p.avg_input_tokens,
                "avg_output_tokens": p.avg_output_tokens,
                "cache_hit_ratio": p.cache_hit_ratio,
                "success_rate": p.success_rate,
                "flows": list(p.flows),
                "models": list(p.models),
                "flags": list(p.flags),
                "preview": p.preview,
            }
            for rank, p in enumerate(r.top_prompts, start=1)
        ],
        "unpriced": {
            "note": _UNPRICED_NOTE if r.unpriced else None,
            "models": [
                {
                    "model": u.model,
                    "records": u.records,
                    "input_tokens": u.input_tokens,
                    "output_tokens": u.output_tokens,
                    "cost_usd": None,
                }
                for u in r.unpriced
            ],
        },
        "findings": [
            {
                "title": f.title,
                "detail": f.detail,
                "suggestion": f.suggestion,
                "saving_usd": _usd(f.saving_nanos),
            }
            for f in r.findings
        ],
        "notes": list(r.notes),
    }


def report_to_json(report: MonthlyReport) -> str:
    """The report as one JSON document (UTF-8 text, indented; money exact, see module docstring)."""
    return json.dumps(report_document(report), indent=2, ensure_ascii=False)


# ---------------------------------------------------------------- CSV


def spreadsheet_text(text: str) -> str:
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``...), with a leading ``'``
    (the OWASP advice): finance opens CSV files in Excel, and names come from senders."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _cell(value: Any) -> str:
    """One CSV cell: None is empty, lists join with ``;``, floats stay full precision.

    Text that a spreadsheet would run as a formula gets a leading ``'`` (the OWASP advice),
    because finance opens these files in Excel and flow names come from senders. Money
    strings are formatted by us and only ever start with a digit or ``-``, so they are left alone.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    if isinstance(value, str):
        return spreadsheet_text(value)
    return str(value)


def _row(row: dict[str, Any], columns: Sequence[str]) -> list[str]:
    # Money (keys ending _usd) is our own exact decimal and passes through as is.
    return [
        "" if row.get(c) is None else str(row[c]) if c.endswith("_usd") else _cell(row[c]) for c in columns
    ]


def _table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(_row(row, columns) for row in rows)
    return buf.getvalue()


_SPEND = (
    "key", "cost_usd", "unpriced_records", "prev_cost_usd", "change_usd", "share", "requests",
    "input_tokens", "output_tokens", "cached_input_tokens", "cache_hit_ratio",
)  # fmt: skip
_COLUMNS = {
    "by_flow": _SPEND,
    "by_model": _SPEND,
    "by_provider": _SPEND,
    "by_tag": ("tag_key", "tag_value", *_SPEND[1:]),
    "daily": ("date", "cost_usd", "unpriced_records"),
    "breaches": ("budget", "period", "kind", "threshold", "spend_usd", "cap_usd"),
    "threshold_crossings": ("budget", "period", "kind", "threshold", "spend_usd", "cap_usd"),
    "budgets": ("flow", "budget", "daily_cap_usd", "days", "cap_usd", "actual_usd", "percent_of_cap",
                "unpriced_records"),
    "outcomes": (
        "flow", "cost_usd", "outcomes", "successes", "partials", "failures", "success_rate",
        "cost_per_success_usd", "cost_per_attempt_usd", "prev_cost_per_success_usd", "value_usd",
        "value_per_dollar",
    ),
    "top_prompts": (
        "rank", "prompt", "cost_usd", "unpriced_records", "prev_cost_usd", "change_usd", "share", "calls",
        "avg_input_tokens", "avg_output_tokens", "cache_hit_ratio", "success_rate", "flows", "models",
        "flags", "preview",
    ),
    "unpriced": ("model", "records", "input_tokens", "output_tokens", "cost_usd"),
    "findings": ("title", "detail", "suggestion", "saving_usd"),
}  # fmt: skip


def report_to_csv(report: MonthlyReport) -> dict[str, str]:
    """One CSV text per section, by file name (``by_flow.csv``, ``top_prompts.csv``, ...).

    Same conventions as the JSON. ``by_tag.csv`` has a ``tag_key`` column and, per key, a
    row with an empty ``tag_value`` for untagged spend, so each key's rows sum to the total.
    ``summary.csv`` is ``field,value`` pairs. Lists (flows, models, flags) join with ``;``.
    """
    doc = report_document(report)
    sections: dict[str, list[dict[str, Any]]] = {
        name: doc[name]
        for name in (
            "by_flow",
            "by_model",
            "by_provider",
            "daily",
            "breaches",
            "threshold_crossings",
            "budgets",
        )
    }
    sections |= {"outcomes": doc["outcomes"], "top_prompts": doc["top_prompts"]}
    sections |= {"unpriced": doc["unpriced"]["models"], "findings": doc["findings"]}
    tags: list[dict[str, Any]] = []
    for key, section in doc["by_tag"].items():
        tags += [{"tag_key": key, "tag_value": line["key"], **line} for line in section["lines"]]
        if section["untagged_usd"] != format_usd(0):
            tags.append({"tag_key": key, "tag_value": "", "cost_usd": section["untagged_usd"]})
    sections["by_tag"] = tags
    out = {f"{name}.csv": _table(sections[name], columns) for name, columns in _COLUMNS.items()}
    head = ("month", "previous_month", "timezone", "generated_at", "partial", "compared_with")
    summary = {k: doc[k] for k in head} | doc["summary"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("field", "value"))
    writer.writerows(
        (k, "" if v is None else v if k.endswith("_usd") else _cell(v)) for k, v in summary.items()
    )
    return {"summary.csv": buf.getvalue(), **out}
