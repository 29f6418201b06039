"""Spend results for people (a table, rounded to the cent) and machines (JSON, CSV: exact)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from finops.domain.money import format_usd
from finops.domain.words import plural, verb
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
    for row in result.rows:
        values = {**row.keys, **_measures(row.sums)}
        writer.writerow([values[c] for c in columns])
    if result.others is not None:
        values = {**dict.fromkeys(keys, f"({result.others_count} more)"), **_measures(result.others)}
        writer.writerow([values[c] for c in columns])
    return buf.getvalue()


def _n(value: int) -> str:
    return f"{value:,}"


def render_table(result: SpendResult, console: Console) -> None:
    """A table a person reads: dollars to the cent, the total, and what is not priced."""
    keys = list(result.query.group_by)
    table = Table(show_footer=True, box=None, pad_edge=False)
    label = [k.replace("tag:", "") for k in keys] or ["all usage"]
    for i, name in enumerate(label):
        table.add_column(name, footer="total" if i == 0 else "", style="bold" if i == 0 else "")
    total = result.total
    table.add_column("cost (USD)", justify="right", footer=format_usd(total["cost_nanos"], cents=True))
    table.add_column("share", justify="right", footer="100%" if total["cost_nanos"] else "")
    table.add_column("requests", justify="right", footer=_n(total["requests"]))
    table.add_column("input tok", justify="right", footer=_n(total["input_tokens"]))
    table.add_column(
        "cached", justify="right", footer=_pct(total["cached_input_tokens"], total["input_tokens"])
    )
    table.add_column("output tok", justify="right", footer=_n(total["output_tokens"]))
    rows = [(list(r.keys.values()) or ["all usage"], r.sums) for r in result.rows]
    if result.others is not None:
        rows.append(([f"({result.others_count} more)", *[""] * (len(label) - 1)], result.others))
    for key, sums in rows:
        cost = format_usd(sums["cost_nanos"], cents=True)
        if sums["unpriced_records"]:
            cost += " +?"
        table.add_row(
            *key,
            cost,
            _pct(sums["cost_nanos"], total["cost_nanos"]),
            _n(sums["requests"]),
            _n(sums["input_tokens"]),
            _pct(sums["cached_input_tokens"], sums["input_tokens"]),
            _n(sums["output_tokens"]),
        )
    q = result.query
    span = (
        f"{q.start:%Y-%m-%d %H:%M} to {q.end:%Y-%m-%d %H:%M} {q.tz}"
        if q.start and q.end
        else (f"since {q.start:%Y-%m-%d %H:%M} {q.tz}" if q.start else "all time")
    )
    console.print(f"[dim]Spend {span}[/dim]")
    if not result.rows:
        console.print("No usage in this period. Ingest some with `finops ingest FILE`.")
        return
    console.print(table)
    if total["unpriced_records"]:
        models = ", ".join(m for m, _ in result.unpriced_models[:5])
        console.print(
            f"[yellow]{plural(total['unpriced_records'], 'record')} "
            f"{verb(total['unpriced_records'], 'has', 'have')} no price (+? above; their cost is "
            f"not in the total): {models}. Run `finops prices unpriced`.[/yellow]"
        )


def _pct(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.1f}%" if whole else "-"
