"""The last good version of each budget file, so a broken edit never switches a budget off."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from finops.domain.budgets import Budget, budget_from_mapping, budget_to_mapping
from finops.storage.sql import dialect_insert
from finops.storage.tables import budget_file_snapshots, meta

__all__ = ["load_cached", "load_snapshots", "save_cached", "save_snapshots"]

#: The finops_meta row holding the last folder read: its digest and what was in force.
_CACHE_KEY = "budgets_in_force"


def save_snapshots(conn: Connection, files: Mapping[str, Sequence[Budget]], *, now_us: int) -> None:
    """Remember each good file's budgets (replacing what was remembered)."""
    if not files:
        return
    stmt = dialect_insert(conn, budget_file_snapshots)
    stmt = stmt.on_conflict_do_update(
        index_elements=["file"], set_={"budgets": stmt.excluded.budgets, "saved_us": stmt.excluded.saved_us}
    )
    conn.execute(
        stmt,
        [
            {
                "file": name,
                "budgets": json.dumps([budget_to_mapping(b) for b in budgets]),
                "saved_us": now_us,
            }
            for name, budgets in files.items()
        ],
    )


def load_snapshots(conn: Connection, files: Sequence[str]) -> dict[str, tuple[list[Budget], int]]:
    """The remembered budgets of these files, and when they were saved."""
    if not files:
        return {}
    rows = conn.execute(select(budget_file_snapshots).where(budget_file_snapshots.c.file.in_(list(files))))
    return {
        r.file: ([budget_from_mapping(item) for item in json.loads(r.budgets)], int(r.saved_us)) for r in rows
    }


def load_cached(conn: Connection, digest: str) -> dict[str, Any] | None:
    """What was in force when the folder last had ``digest``; ``None`` if it has changed since."""
    value = conn.scalar(select(meta.c.value).where(meta.c.key == _CACHE_KEY))
    if value is None:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("digest") != digest or not isinstance(doc.get("in_force"), dict):
        return None
    found: dict[str, Any] = doc["in_force"]
    return found


def save_cached(conn: Connection, digest: str, in_force: dict[str, Any]) -> None:
    """Remember what the folder with ``digest`` puts in force (one row: the last folder read)."""
    stmt = dialect_insert(conn, meta)
    value = json.dumps({"digest": digest, "in_force": in_force}, separators=(",", ":"))
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value}),
        {"key": _CACHE_KEY, "value": value},
    )
