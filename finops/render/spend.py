"""Spend results for people (a table, rounded to the cent) and machines (JSON, CSV: exact)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from finops.domain.money import format_usd
from finops.domain.words import plural, verb
from finops.render.report_data import spreadsheet_text
from finops.render.text_table import Column, render
from finops.usecases.spend import METRICS, SpendResult

__all__ = ["render_csv", "render_json", "render_table", "spend_document"]


def _measures(sums: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {"cost_usd": format_usd(sums["cost_nanos"])}
    out.update({m: sums[m] for m in METRICS if m != "cost_nanos"})
    return out


def spend_document(result: SpendResult) -> dict[str, Any]:
    """The JSON document: exact decimal strings for money, integers for counts."""
    q = result.query
    doc: dict[str, Any] = {
        "total_usd": format_usd(result.total["cost_nanos"]),
        "currency": "USD",
        "group_by": list(q.group_by),
        "period": {
            "start": q.start.isoformat() if q.start else None,
            "end": q.end.isoformat() if q.end else None,
            "timezone": str(q.tz),
        },
        "rows": [{**row.keys, **_measures(row.sums)} for row in result.rows],
        "totals": _measures(result.total),
        "unpriced": {
            "records": result.total["unpriced_records"],
            "models": [{"model": m, "records": n} for m, n in result.unpriced_models],
            "note": "cost of unpriced records is unknown and not in total_usd; see `finops prices unpriced`"
            if result.total["unpriced_records"]
            else None,
        },
    }
    if result.others is not None:
        doc["others"] = {"groups": result.others_count, **_measures(result.others)}
    return doc


def render_json(result: SpendResult) -> str:
    return json.dumps(spend_document(result), indent=2, ensure_ascii=False)


def render_csv(result: SpendResult) -> str:
    buf = io.StringIO()
    keys = list(result.query.group_by)
    columns = [*keys, "cost_usd", *(m for m in METRICS if m != "cost_nanos")]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in result.rows:  # the group's names come from senders: never a formula in Excel
        values = {**{k: spreadsheet_text(v) for k, v in row.keys.items()}, **_measures(row.sums)}
        writer.writerow([values[c] for c in columns])
    if result.others is not None:
        values = {**dict.fromkeys(keys, f"({result.others_count} more)"), **_measures(result.others)}
        writer.writerow([values[c] for c in columns])
    return buf.getvalue()


def _n(value: int) -> str:
    return f"{value:,}"


def _cost(sums: dict[str, int]) -> str:
    """Cents; ``—`` when nothing in the group has a price, ``+?`` when part of it has none."""
    if sums["unpriced_records"] and sums["unpriced_records"] >= sums["requests"]:
        return "—"
    cost = format_usd(sums["cost_nanos"], cents=True)
    return cost + " +?" if sums["unpriced_records"] else cost


def render_table(result: SpendResult) -> str:
    """A table a person reads: dollars to the cent, the total, and what is not priced."""
    keys = list(result.query.group_by)
    label = [k.replace("tag:", "") for k in keys] or ["all usage"]
    total = result.total
    columns = [Column(name, footer="total" if i == 0 else "") for i, name in enumerate(label)]
    columns += [
        Column("cost (USD)", right=True, footer=_cost(total)),
        Column("share", right=True, footer="100%" if total["cost_nanos"] else ""),
        Column("requests", right=True, footer=_n(total["requests"])),
        Column("input tok", right=True, footer=_n(total["input_tokens"])),
        Column("cached", right=True, footer=_pct(total["cached_input_tokens"], total["input_tokens"])),
        Column("output tok", right=True, footer=_n(total["output_tokens"])),
    ]
    rows = [(list(r.keys.values()) or ["all usage"], r.sums) for r in result.rows]
    if result.others is not None:
        rows.append(([f"({result.others_count} more)", *[""] * (len(label) - 1)], result.others))
    cells = [
        [
            *key,
            _cost(sums),
            "—" if _cost(sums) == "—" else _pct(sums["cost_nanos"], total["cost_nanos"]),
            _n(sums["requests"]),
            _n(sums["input_tokens"]),
            _pct(sums["cached_input_tokens"], sums["input_tokens"]),
            _n(sums["output_tokens"]),
        ]
        for key, sums in rows
    ]
    q = result.query
    span = (
        f"{q.start:%Y-%m-%d %H:%M} to {q.end:%Y-%m-%d %H:%M} {q.tz}"
        if q.start and q.end
        else (f"since {q.start:%Y-%m-%d %H:%M} {q.tz}" if q.start else "all time")
    )
    lines = [f"Spend {span}"]
    if not result.rows:
        lines.append("No usage in this period. Ingest some with `finops ingest FILE`.")
        return "\n".join(lines)
    lines.append(render(columns, cells))
    if total["unpriced_records"]:
        models = ", ".join(m for m, _ in result.unpriced_models[:5])
        count = total["unpriced_records"]
        lines.append(
            f"{plural(count, 'record')} {verb(count, 'has', 'have')} no price (— or +? above; their "
            f"cost is unknown and not in the total): {models}. Run `finops prices unpriced`."
        )
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    """One decimal, rounded half up in integers (display only; sums stay exact)."""
    if not whole:
        return "-"
    tenths = (part * 1000 * 2 + whole) // (whole * 2)
    return f"{tenths // 10}.{tenths % 10}%"
