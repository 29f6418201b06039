"""The last good version of each budget file, so a broken edit never switches a budget off."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, select

from finops.domain.budgets import Budget
from finops.storage.sql import dialect_insert
from finops.storage.tables import budget_file_snapshots

__all__ = ["load_snapshots", "save_snapshots"]


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
                "budgets": json.dumps([b.model_dump(mode="json") for b in budgets]),
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
        r.file: ([Budget.model_validate(item) for item in json.loads(r.budgets)], int(r.saved_us))
        for r in rows
    }
