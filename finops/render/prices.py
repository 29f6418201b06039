"""The price book for people: one model's prices and history, the list, unpriced models, reprice results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from finops.domain.money import format_usd
from finops.domain.pricing import RATE_FIELDS, PriceBook, PriceEntry, entry_to_mapping
from finops.domain.pricing.rates import TIERS
from finops.domain.providers import canonical_provider, infer_provider
from finops.domain.words import plural
from finops.errors import PricingError
from finops.usecases.prices import UnpricedModel
from finops.usecases.reprice import RepriceReport

__all__ = ["list_prices", "print_reprice", "print_unpriced", "show_prices"]

_MILLION = Decimal(1_000_000)


def _per_million(value: Decimal | None) -> str:
    return "-" if value is None else f"{(value * _MILLION).normalize():f}"


def show_prices(
    book: PriceBook, *, model: str, provider: str | None, day: date, as_json: bool, console: Console
) -> None:
    """The entry in effect on ``day`` with every tier's complete rates, then the history."""
    prov = canonical_provider(provider) if provider else (infer_provider(model) or "unknown")
    match = book.match(prov, model, day)
    history = book.history(model)
    if match is None and not history:
        raise PricingError(
            f"no price for {prov}/{model}: records of it are stored unpriced. Add it to the override "
            "file (FINOPS_PRICE_OVERRIDES) or `finops prices import` a catalog that has it; "
            "`finops prices list --search NAME` shows similar names"
        )
    if as_json:
        doc: dict[str, Any] = {
            "query": {"provider": prov, "model": model, "date": day.isoformat()},
            "in_effect": None
            if match is None
            else {
                "version": match.version,
                "layer": match.entry.layer,
                **entry_to_mapping(match.entry),
                "discount": None
                if match.discount is None
                else {
                    "percent_off": f"{(match.discount.fraction * 100).normalize():f}",
                    "note": match.discount.note,
                },
            },
            "history": [{"layer": e.layer, **entry_to_mapping(e)} for e in history],
            "unit": "USD per million tokens",
        }
        console.print_json(json.dumps(doc))
        return
    if match is None:
        console.print(f"No price in effect for {prov}/{model} on {day}; history below.", markup=False)
    else:
        e = match.entry
        console.print(
            f"[bold]{e.provider}/{e.model}[/bold] for {model} on {day}: version {match.version}, "
            f"{e.layer} entry effective {e.effective_from}"
        )
        console.print(f"source: {e.source}", markup=False)
        if match.discount:
            console.print(
                f"discount: {(match.discount.fraction * 100).normalize():f}% off ({match.discount.note})",
                markup=False,
            )
        console.print(_rates_table(e))
    if history:
        console.print("\nHistory (oldest first):")
        for h in history:
            console.print(
                f"  {h.effective_from}  {h.layer:<8} {h.provider}/{h.model}  "
                f"in {_per_million(h.cards[('standard', 0)].input)} / out "
                f"{_per_million(h.cards[('standard', 0)].output)}  ({h.source})",
                markup=False,
            )


def _rates_table(entry: PriceEntry) -> Table:
    table = Table(
        title="USD per million tokens (complete rates, fallbacks applied)", box=None, pad_edge=False
    )
    table.add_column("tier")
    for name in RATE_FIELDS:
        table.add_column(name, justify="right")
    for h in (0, *sorted(entry.thresholds)):
        for tier in TIERS:
            own = (tier, h) in entry.cards or (tier, 0) in entry.cards
            if tier != "standard" and not own and tier != "batch":
                continue
            rates = entry.rates(tier, h)
            label = tier + (f" >{h:,}" if h else "") + ("" if own else " (derived)")
            table.add_row(label, *(_per_million(rates.get(f)) for f in RATE_FIELDS))
    return table


def list_prices(
    book: PriceBook,
    *,
    provider: str | None,
    search: str | None,
    layer: str | None,
    fmt: str,
    console: Console,
) -> None:
    prov = canonical_provider(provider) if provider else None
    rows = [
        e
        for e in book.entries
        if (prov is None or e.provider == prov)
        and (search is None or search.lower() in e.model)
        and (layer is None or e.layer == layer)
    ]
    rows.sort(key=lambda e: (e.provider, e.model, e.effective_from))
    if fmt == "json":
        console.print_json(json.dumps([{"layer": e.layer, **entry_to_mapping(e)} for e in rows]))
        return
    table = Table(box=None, pad_edge=False)
    for name in ("provider", "model", "from", "layer", "input", "cached", "output", "tiers"):
        table.add_column(name, justify="right" if name in ("input", "cached", "output") else "left")
    for e in rows:
        base = e.rates("standard", 0)
        tiers = sorted({t for t, _ in e.cards if t != "standard"}) + [
            f">{h // 1000}k" for h in sorted(e.thresholds)
        ]
        table.add_row(
            e.provider,
            e.model,
            str(e.effective_from),
            e.layer,
            _per_million(base.input),
            _per_million(base.cache_read),
            _per_million(base.output),
            ",".join(tiers),
        )
    console.print(table)
    console.print(f"{plural(len(rows), 'entry', 'entries')}; USD per million tokens.", markup=False)


def print_unpriced(models: Sequence[UnpricedModel], *, as_json: bool, console: Console) -> None:
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "provider": m.provider,
                        "model": m.model,
                        "records": m.records,
                        "requests": m.requests,
                        "input_tokens": m.input_tokens,
                        "output_tokens": m.output_tokens,
                        "first_seen": m.first_seen.isoformat(),
                        "last_seen": m.last_seen.isoformat(),
                        "price_available_now": m.price_now is not None,
                    }
                    for m in models
                ]
            )
        )
        return
    if not models:
        console.print("Every stored record is priced.")
        return
    table = Table(box=None, pad_edge=False)
    for name in (
        "provider",
        "model",
        "records",
        "input tok",
        "output tok",
        "first seen",
        "last seen",
        "price now?",
    ):
        table.add_column(name)
    for m in models:
        table.add_row(
            m.provider,
            m.model,
            f"{m.records:,}",
            f"{m.input_tokens:,}",
            f"{m.output_tokens:,}",
            f"{m.first_seen:%Y-%m-%d}",
            f"{m.last_seen:%Y-%m-%d}",
            "yes: run `finops reprice`" if m.price_now else "no",
        )
    console.print(table)
    console.print(
        "These records are stored without a cost (never $0). Add prices to the override file "
        "(FINOPS_PRICE_OVERRIDES) or import a catalog, then `finops reprice --since DATE`.",
        markup=False,
    )


def print_reprice(report: RepriceReport, *, dry_run: bool, console: Console) -> None:
    verb = "would change" if dry_run else "changed"
    console.print(
        f"examined {report.examined:,} records; {verb} {report.changed:,}; total "
        f"${format_usd(report.old_nanos)} -> ${format_usd(report.new_nanos)} "
        f"(difference {'+' if report.delta_nanos >= 0 else '-'}${format_usd(abs(report.delta_nanos))})",
        markup=False,
    )
    if not report.by_model:
        return
    table = Table(box=None, pad_edge=False)
    for name in ("model", "records", "before", "after", "difference", "newly priced", "now unpriced"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for name, c in sorted(report.by_model.items(), key=lambda kv: -abs(kv[1].new_nanos - kv[1].old_nanos)):
        table.add_row(
            name,
            f"{c.records:,}",
            format_usd(c.old_nanos),
            format_usd(c.new_nanos),
            format_usd(c.new_nanos - c.old_nanos),
            f"{c.newly_priced:,}",
            f"{c.newly_unpriced:,}",
        )
    console.print(table)
