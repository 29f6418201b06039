"""Retention: raw usage older than the horizon is deleted once its rollups are final; rollups stay.

"Final" is a watermark kept in ``finops_meta``: usage before it is closed. The ledger refuses a
record older than the watermark (its id may have been stored and deleted already, so storing it
again could count it twice), which is what makes deleting raw records safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, exists, select, update

from finops.storage.sql import dialect_insert
from finops.storage.tables import (
    dead_letters,
    meta,
    outcome_links,
    prompt_rollups_daily,
    prompts,
    usage_records,
)

__all__ = ["FINAL_KEY", "RetentionResult", "apply_retention", "final_before_us"]

FINAL_KEY = "usage_final_before_us"


def final_before_us(conn: Connection) -> int:
    """Usage with ``ts_us`` before this is final (0: nothing is)."""
    value = conn.scalar(select(meta.c.value).where(meta.c.key == FINAL_KEY))
    return int(value) if value is not None else 0


@dataclass(frozen=True)
class RetentionResult:
    final_before_us: int
    usage_deleted: int
    links_deleted: int
    dead_letters_deleted: int
    previews_cleared: int


def _set_final(conn: Connection, cutoff_us: int) -> int:
    """Move the watermark forward, never back; returns the watermark in force."""
    current = final_before_us(conn)
    if cutoff_us <= current:
        return current
    stmt = dialect_insert(conn, meta).values(key=FINAL_KEY, value=str(cutoff_us))
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": str(cutoff_us)}))
    return cutoff_us


def apply_retention(
    conn: Connection,
    *,
    usage_before_us: int,
    preview_before_day: int,
    dead_letters_before_us: int,
    batch: int = 50_000,
) -> RetentionResult:
    """Close usage before ``usage_before_us`` and delete its raw records (in ``batch``-sized steps,
    so a database with months of backlog is not locked in one statement).

    Run in one write transaction: the watermark and the deletes commit together.
    """
    final = _set_final(conn, usage_before_us)
    u = usage_records.c
    old_ids = select(u.id).where(u.ts_us < final).limit(batch)
    deleted = links = 0
    while True:
        ids = list(conn.scalars(old_ids))
        if not ids:
            break
        links += conn.execute(delete(outcome_links).where(outcome_links.c.usage.in_(ids))).rowcount
        deleted += conn.execute(delete(usage_records).where(u.id.in_(ids))).rowcount
    d = dead_letters.c
    dead = conn.execute(delete(dead_letters).where(d.created_us < dead_letters_before_us)).rowcount
    p, r = prompts.c, prompt_rollups_daily.c
    seen_lately = exists().where(and_(r.prompt_id == p.prompt_id, r.day >= preview_before_day))
    cleared = conn.execute(
        update(prompts).where(p.preview.is_not(None), ~seen_lately).values(preview=None)
    ).rowcount
    return RetentionResult(final, deleted, links, dead, cleared)
