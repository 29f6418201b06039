"""Imported price entries, kept in the database so every process prices with the same book."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Connection, select

from finops.domain.pricing import PriceEntry, entry_from_mapping, entry_to_mapping
from finops.storage.sql import dialect_insert
from finops.storage.tables import price_entries

__all__ = ["load_imported", "save_imported"]


def save_imported(conn: Connection, entries: Sequence[PriceEntry], *, now_us: int) -> int:
    """Store entries not stored yet (same prices, source and date are the same key); returns new."""
    if not entries:
        return 0
    rows = {
        e.key: {
            "key": e.key,
            "layer": e.layer,
            "provider": e.provider,
            "model": e.model,
            "effective_from": e.effective_from,
            "source": e.source,
            "body": json.dumps(entry_to_mapping(e), sort_keys=True),
            "created_us": now_us,
        }
        for e in entries
    }
    known: set[str] = set()
    keys = list(rows)
    for start in range(0, len(keys), 900):
        chunk = keys[start : start + 900]
        known.update(conn.scalars(select(price_entries.c.key).where(price_entries.c.key.in_(chunk))))
    new = [row for key, row in rows.items() if key not in known]
    if new:
        conn.execute(dialect_insert(conn, price_entries).on_conflict_do_nothing(index_elements=["key"]), new)
    return len(new)


def load_imported(conn: Connection) -> list[PriceEntry]:
    """Every imported entry, in the order it was imported."""
    rows = conn.execute(
        select(price_entries.c.layer, price_entries.c.body).order_by(price_entries.c.created_us)
    )
    return [entry_from_mapping(json.loads(body), layer=layer) for layer, body in rows]
