"""The monthly report for machines (JSON, CSV) and the derived numbers every renderer shares.

Convention, the same as ``finops spend --format json``: money is an exact decimal
string of US dollars with nine places (``"12.345678901"``) under a key ending in
``_usd``, never a float and never rounded; ``null`` (JSON) or an empty cell (CSV)
means *unknown* (no previous month, no success to divide by, an unpriced model), never
zero. Counts are integers; ratios (share, cache hit, success rate) are fractions 0..1.

The helpers :func:`change`, :func:`change_ratio`, :func:`ratio`, :func:`untagged_nanos`
and :func:`movers` are used by the Markdown, HTML and Slack renderers too, so all
formats agree on what "change" and "untagged" mean. Pure: no I/O.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from finops.audit.report_model import MonthlyReport, SpendLine
from finops.domain.money import format_usd

__all__ = [
    "change",
    "change_ratio",
    "movers",
    "ratio",
    "report_document",
    "report_to_csv",
    "report_to_json",
    "untagged_nanos",
]

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


# ---------------------------------------------------------------- JSON


def _usd(nanos: int | None) -> str | None:
    return None if nanos is None else format_usd(nanos)


def _spend(line: SpendLine, total: int) -> dict[str, Any]:
    return {
        "key": line.key,
        "cost_usd": _usd(line.cost_nanos),
        "prev_cost_usd": _usd(line.prev_cost_nanos),
        "change_usd": _usd(change(line.cost_nanos, line.prev_cost_nanos)),
        "share": ratio(line.cost_nanos, total),
        "requests": line.requests,
        "input_tokens": line.input_tokens,
        "output_tokens": line.output_tokens,
        "cached_input_tokens": line.cached_input_tokens,
        "cache_hit_ratio": ratio(line.cached_input_tokens, line.input_tokens),
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
        "daily": [{"date": day, "cost_usd": _usd(nanos)} for day, nanos in r.daily],
        "breaches": [
            {
                "budget": b.budget,
                "period": b.period,
                "kind": b.kind,
                "threshold": b.threshold,
                "spend_usd": _usd(b.spend_nanos),
                "cap_usd": _usd(b.cap_nanos),
            }
            for b in r.breaches
        ],
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
                "cost_usd": _usd(p.cost_nanos),
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
        return "'" + value if value.startswith(_FORMULA_START) else value
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
    "key", "cost_usd", "prev_cost_usd", "change_usd", "share", "requests",
    "input_tokens", "output_tokens", "cached_input_tokens", "cache_hit_ratio",
)  # fmt: skip
_COLUMNS = {
    "by_flow": _SPEND,
    "by_model": _SPEND,
    "by_provider": _SPEND,
    "by_tag": ("tag_key", "tag_value", *_SPEND[1:]),
    "daily": ("date", "cost_usd"),
    "breaches": ("budget", "period", "kind", "threshold", "spend_usd", "cap_usd"),
    "outcomes": (
        "flow", "cost_usd", "outcomes", "successes", "partials", "failures", "success_rate",
        "cost_per_success_usd", "cost_per_attempt_usd", "prev_cost_per_success_usd", "value_usd",
        "value_per_dollar",
    ),
    "top_prompts": (
        "rank", "prompt", "cost_usd", "prev_cost_usd", "change_usd", "share", "calls",
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
        name: doc[name] for name in ("by_flow", "by_model", "by_provider", "daily", "breaches")
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
    summary = {k: doc[k] for k in ("month", "previous_month", "timezone", "generated_at")} | doc["summary"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("field", "value"))
    writer.writerows(
        (k, "" if v is None else v if k.endswith("_usd") else _cell(v)) for k, v in summary.items()
    )
    return {"summary.csv": buf.getvalue(), **out}
