"""Price-book use cases: import LiteLLM's catalog, explain a model's prices, list the unpriced."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from finops.domain.pricing import PriceMatch
from finops.domain.pricing.litellm import entries_from_litellm
from finops.errors import PriceFileError
from finops.storage.db import write_transaction
from finops.storage.prices import save_imported
from finops.storage.tables import rollups_hourly
from finops.usecases.ledger import Ledger

__all__ = ["ImportReport", "UnpricedModel", "import_litellm", "unpriced_models"]


@dataclass
class ImportReport:
    read: int
    added: int
    unchanged: int
    skipped: list[tuple[str, str]]
    effective_from: date


def import_litellm(ledger: Ledger, path: Path, *, effective_from: date) -> ImportReport:
    """Import a LiteLLM price file; entries already imported (same prices and date) are kept once."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise PriceFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise PriceFileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PriceFileError(f"{path}: expected LiteLLM's object of model -> prices")
    entries, skipped = entries_from_litellm(
        data, effective_from=effective_from, source=f"litellm import of {path.name}"
    )
    if not entries:
        raise PriceFileError(
            f"{path}: no entry with input_cost_per_token and output_cost_per_token; "
            "is this LiteLLM's model_prices_and_context_window.json?"
        )
    with write_transaction(ledger.engine) as conn:
        added = save_imported(conn, entries, now_us=time.time_ns() // 1000)
    ledger.reload_prices()
    return ImportReport(len(entries) + len(skipped), added, len(entries) - added, skipped, effective_from)


@dataclass
class UnpricedModel:
    provider: str
    model: str
    records: int
    requests: int
    input_tokens: int
    output_tokens: int
    first_seen: datetime
    last_seen: datetime
    price_now: PriceMatch | None  # a price that exists now (run `finops reprice`)


def unpriced_models(
    ledger: Ledger, *, start: datetime | None = None, end: datetime | None = None
) -> list[UnpricedModel]:
    """Models with records stored unpriced, most records first."""
    r = rollups_hourly.c
    stmt = (
        select(
            r.provider,
            r.model,
            func.sum(r.unpriced_records),
            func.sum(r.unpriced_requests),
            func.sum(r.input_tokens),
            func.sum(r.output_tokens),
            func.min(r.hour),
            func.max(r.hour),
        )
        .where(r.unpriced_records > 0)
        .group_by(r.provider, r.model)
    )
    if start is not None:
        stmt = stmt.where(r.hour >= int(start.timestamp()) // 3600 * 3600)
    if end is not None:
        stmt = stmt.where(r.hour < int(end.timestamp()))
    with ledger.read_engine.connect() as conn:
        rows = list(conn.execute(stmt))
    out = []
    for provider, model, records, requests, inp, outp, first, last in rows:
        last_dt = datetime.fromtimestamp(int(last), UTC)
        out.append(
            UnpricedModel(
                provider,
                model,
                int(records),
                int(requests),
                int(inp),
                int(outp),
                datetime.fromtimestamp(int(first), UTC),
                last_dt,
                ledger.book.match(provider, model, last_dt),
            )
        )
    return sorted(out, key=lambda u: (-u.records, u.provider, u.model))
