"""Writing the ledger: usage rows, their hourly rollups and dead letters, in one transaction.

A batch is idempotent on (source, record id): rows already stored with the same
fingerprint are duplicates (no change), with another fingerprint conflicts
(a dead letter, the stored row untouched). Only rows this transaction really
inserted (``INSERT .. ON CONFLICT DO NOTHING RETURNING``) reach the rollups, so
two replicas writing the same records at once still count each one once.
Rollup rows are upserted in key order, so concurrent writers never deadlock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from finops.domain.pricing import PriceMatch, entry_to_mapping
from finops.domain.usage import UsageRecord
from finops.storage.sql import dialect_insert
from finops.storage.tables import (
    ROLLUP_KEYS,
    ROLLUP_SUMS,
    dead_letters,
    price_versions,
    rollups_hourly,
    usage_records,
)

__all__ = [
    "BatchOutcome",
    "PricedRecord",
    "Rejection",
    "add_to_rollups",
    "record_price_versions",
    "write_batch",
    "write_dead_letters",
]

_CHUNK = 900  # bound parameters per IN (...) query, under every driver's limit
_RAW_LIMIT = 4000


@dataclass(slots=True)
class PricedRecord:
    """A valid record with its cost (``None``: unpriced) and where it came from."""

    record: UsageRecord
    cost_nanos: int | None
    price_version: str | None
    location: str
    line: int | None = None


@dataclass(slots=True)
class Rejection:
    """A line or record that was not stored, and why."""

    location: str
    line: int | None
    reason: str
    raw: str
    record_id: str | None = None


@dataclass(slots=True)
class BatchOutcome:
    """What a batch changed."""

    stored: int = 0
    duplicates: int = 0
    cost_nanos: int = 0
    unpriced: int = 0
    conflicts: list[Rejection] = field(default_factory=list)


def _tags_json(tags: Any) -> str:
    return json.dumps(dict(sorted(tags.items())), ensure_ascii=False, separators=(",", ":")) if tags else "{}"


def _row(item: PricedRecord, source: str, fingerprint: str, now_us: int) -> dict[str, Any]:
    r = item.record
    ts_us = int(r.ts.timestamp()) * 1_000_000 + r.ts.microsecond
    return {
        "source": source, "record_id": r.id, "fingerprint": fingerprint,
        "ts_us": ts_us, "hour": ts_us // 3_600_000_000 * 3600,
        "provider": r.provider, "model": r.model, "flow": r.flow, "tags": _tags_json(r.tags),
        "service_tier": r.service_tier, "status": r.status, "requests": r.requests,
        "input_tokens": r.input_tokens, "cached_input_tokens": r.cached_input_tokens,
        "cache_write_tokens": r.cache_write_tokens, "cache_write_1h_tokens": r.cache_write_1h_tokens,
        "output_tokens": r.output_tokens, "reasoning_tokens": r.reasoning_tokens,
        "cost_nanos": item.cost_nanos, "price_version": item.price_version,
        "prompt_id": r.prompt_id, "user_hash": r.user_hash, "trace_id": r.trace_id,
        "session_id": r.session_id, "latency_ms": r.latency_ms, "tool_calls": r.tool_calls,
        "ingested_us": now_us,
    }


def _existing(conn: Connection, source: str, ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    t = usage_records.c
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = conn.execute(
            select(t.record_id, t.fingerprint).where(t.source == source, t.record_id.in_(chunk))
        )
        found.update({rid: fp for rid, fp in rows})
    return found


def _conflict(item: PricedRecord) -> Rejection:
    return Rejection(
        location=item.location, line=item.line, record_id=item.record.id,
        reason=f"conflict: id {item.record.id!r} was already stored with different content; "
        "the stored record is kept (send a new id for a new call)",
        raw=json.dumps({"id": item.record.id, "ts": item.record.ts.isoformat(), "model": item.record.model}),
    )


def add_to_rollups(conn: Connection, rows: Iterable[dict[str, Any]], *, sign: int = 1) -> None:
    """Add (or with ``sign=-1`` subtract) usage rows to their hourly rollups."""
    sums: dict[tuple[Any, ...], list[int]] = {}
    width = len(ROLLUP_SUMS)
    for row in rows:
        key = tuple(row[k] for k in ROLLUP_KEYS)
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0] * width
        priced = row["cost_nanos"] is not None
        acc[0] += 1
        acc[1] += row["requests"]
        acc[2] += row["input_tokens"]
        acc[3] += row["cached_input_tokens"]
        acc[4] += row["cache_write_tokens"]
        acc[5] += row["cache_write_1h_tokens"]
        acc[6] += row["output_tokens"]
        acc[7] += row["reasoning_tokens"]
        acc[8] += row["cost_nanos"] if priced else 0
        acc[9] += 0 if priced else 1
        acc[10] += 0 if priced else row["requests"]
    if not sums:
        return
    params = [
        {**dict(zip(ROLLUP_KEYS, key, strict=True)),
         **{name: sign * value for name, value in zip(ROLLUP_SUMS, acc, strict=True)}}
        for key, acc in sorted(sums.items())
    ]
    stmt = dialect_insert(conn, rollups_hourly)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(ROLLUP_KEYS),
        set_={name: rollups_hourly.c[name] + stmt.excluded[name] for name in ROLLUP_SUMS},
    )
    conn.execute(stmt, params)


def write_batch(
    conn: Connection,
    *,
    source: str,
    items: Sequence[PricedRecord],
    rejections: Sequence[Rejection] = (),
    now_us: int,
) -> BatchOutcome:
    """Store one batch inside the caller's transaction; see the module docstring."""
    outcome = BatchOutcome()
    fresh: dict[str, tuple[PricedRecord, str]] = {}
    for item in items:
        fp = item.record.fingerprint()
        seen = fresh.get(item.record.id)
        if seen is None:
            fresh[item.record.id] = (item, fp)
        elif seen[1] == fp:
            outcome.duplicates += 1
        else:
            outcome.conflicts.append(_conflict(item))
    if fresh:
        stored = _existing(conn, source, list(fresh))
        for rid, fp in stored.items():
            item, new_fp = fresh.pop(rid)
            if fp == new_fp:
                outcome.duplicates += 1
            else:
                outcome.conflicts.append(_conflict(item))
    if fresh:
        rows = [_row(item, source, fp, now_us) for item, fp in fresh.values()]
        stmt = (
            dialect_insert(conn, usage_records)
            .on_conflict_do_nothing(index_elements=["source", "record_id"])
            .returning(usage_records.c.record_id)
        )
        inserted = {rid for (rid,) in conn.execute(stmt, rows)}
        lost = [rid for rid in fresh if rid not in inserted]  # another writer won the race
        if lost:
            stored = _existing(conn, source, lost)
            for rid in lost:
                item, fp = fresh[rid]
                if stored.get(rid) == fp:
                    outcome.duplicates += 1
                else:
                    outcome.conflicts.append(_conflict(item))
            rows = [row for row in rows if row["record_id"] in inserted]
        add_to_rollups(conn, rows)
        outcome.stored = len(rows)
        for row in rows:
            if row["cost_nanos"] is None:
                outcome.unpriced += 1
            else:
                outcome.cost_nanos += row["cost_nanos"]
    write_dead_letters(conn, source=source, rejections=[*rejections, *outcome.conflicts], now_us=now_us)
    return outcome


def write_dead_letters(
    conn: Connection, *, source: str, rejections: Sequence[Rejection], now_us: int
) -> None:
    """Keep rejected input with its reason; the same rejection twice is kept once."""
    if not rejections:
        return
    rows = []
    for rej in rejections:
        raw = rej.raw if len(rej.raw) <= _RAW_LIMIT else rej.raw[:_RAW_LIMIT] + "…[truncated]"
        digest = hashlib.blake2b(
            repr((source, rej.location, rej.line, rej.reason, rej.raw)).encode(), digest_size=16
        ).hexdigest()
        rows.append({
            "fingerprint": digest, "source": source, "location": rej.location, "line": rej.line,
            "record_id": rej.record_id, "reason": rej.reason, "raw": raw, "created_us": now_us,
        })
    conn.execute(dialect_insert(conn, dead_letters).on_conflict_do_nothing(index_elements=["fingerprint"]), rows)


def record_price_versions(conn: Connection, matches: Iterable[PriceMatch], *, now_us: int) -> None:
    """Remember exactly which prices priced something, so any stored cost can be explained."""
    rows = {}
    for m in matches:
        rows[m.version] = {
            "version": m.version, "layer": m.entry.layer, "provider": m.entry.provider,
            "model": m.entry.model, "effective_from": m.entry.effective_from,
            "source": m.entry.source,
            "discount": None if m.discount is None else
            f"{m.discount.fraction * 100:f}% off ({m.discount.note})",
            "body": json.dumps(entry_to_mapping(m.entry), sort_keys=True), "first_used_us": now_us,
        }
    if rows:
        stmt = dialect_insert(conn, price_versions).on_conflict_do_nothing(index_elements=["version"])
        conn.execute(stmt, list(rows.values()))
