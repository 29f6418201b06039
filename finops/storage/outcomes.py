"""Outcomes in the database, and their links to the usage they judge.

Links are made when an outcome is stored (by request ids, else trace id, else
session id) and retried for outcomes still unlinked (usage can arrive later
than the outcome). An outcome without a flow counts for the flow of its usage (``linked_flow``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update

from finops.domain.outcomes import Outcome
from finops.storage.ledger import Rejection
from finops.storage.retention import hold_retention_lock
from finops.storage.sql import dialect_insert
from finops.storage.tables import outcome_links, outcomes, usage_records

__all__ = ["OutcomeBatch", "link_outcome", "relink_unlinked", "write_outcomes"]

_CHUNK = 900


@dataclass
class OutcomeBatch:
    stored: int = 0
    duplicates: int = 0
    linked: int = 0
    conflicts: list[Rejection] = field(default_factory=list)


def _stored_content(row: Any) -> tuple[object, ...]:
    return (
        row.ts_us,
        row.flow,
        row.status,
        tuple(json.loads(row.request_ids)),
        row.trace_id,
        row.session_id,
        row.event,
        row.value_nanos,
    )


def write_outcomes(
    conn: Connection, *, source: str, items: Sequence[tuple[Outcome, str, int | None]], now_us: int
) -> OutcomeBatch:
    """Store new outcomes once per (source, id), link them; report duplicates and conflicts."""
    # Shared, as a usage batch holds it: on PostgreSQL retention could otherwise delete a month's
    # links, then drop its usage, between the lookup of the usage and this commit; the link made
    # meanwhile would point at a record that is gone.
    hold_retention_lock(conn, shared=True)
    batch = OutcomeBatch()
    fresh: dict[str, tuple[Outcome, str, int | None]] = {}
    for item in items:
        seen = fresh.get(item[0].id)
        if seen is None:
            fresh[item[0].id] = item
        elif seen[0].content() == item[0].content():
            batch.duplicates += 1
        else:
            batch.conflicts.append(_conflict(item, seen[0]))
    o = outcomes.c
    ids = list(fresh)
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(
                o.outcome_id,
                o.ts_us,
                o.flow,
                o.status,
                o.request_ids,
                o.trace_id,
                o.session_id,
                o.event,
                o.value_nanos,
            ).where(o.source == source, o.outcome_id.in_(ids[start : start + _CHUNK]))
        )
        for row in rows:
            item = fresh.pop(row.outcome_id)
            stored = _stored_content(row)
            if stored == item[0].content():
                batch.duplicates += 1
            else:
                batch.conflicts.append(_conflict(item, None, stored_status=row.status))
    new = [outcome for outcome, _, _ in fresh.values()]
    inserted: dict[str, int] = {}
    stmt = (
        dialect_insert(conn, outcomes)
        .on_conflict_do_nothing(index_elements=["source", "outcome_id"])
        .returning(o.id, o.outcome_id)
    )
    for start in range(0, len(new), _CHUNK):  # one statement per chunk, not one per outcome
        values = [
            {
                "source": source,
                "outcome_id": outcome.id,
                "ts_us": outcome.ts_us,
                "flow": outcome.flow,
                "status": outcome.status,
                "event": outcome.event,
                "value_nanos": outcome.value_nanos,
                "request_ids": json.dumps(list(outcome.request_ids)),
                "trace_id": outcome.trace_id,
                "session_id": outcome.session_id,
                "linked": 0,
                "ingested_us": now_us,
            }
            for outcome in new[start : start + _CHUNK]
        ]
        inserted.update((str(oid), int(pk)) for pk, oid in conn.execute(stmt, values))
    batch.stored += len(inserted)
    batch.duplicates += len(new) - len(inserted)  # another writer stored them meanwhile
    batch.linked += _link_many(conn, [(inserted[x.id], x) for x in new if x.id in inserted])
    return batch


def _conflict(
    item: tuple[Outcome, str, int | None], first: Outcome | None, stored_status: str | None = None
) -> Rejection:
    outcome, location, line = item
    was = stored_status or (first.status if first else "?")
    what = f"status {was!r} -> {outcome.status!r}" if was != outcome.status else "different content"
    return Rejection(
        location=location,
        line=line,
        record_id=outcome.id,
        reason=f"conflict: outcome {outcome.id!r} was already stored ({what}); the stored one is kept",
        digest="sha256:" + hashlib.sha256(repr(outcome.content()).encode()).hexdigest()[:32],
    )


def _link_many(conn: Connection, items: Sequence[tuple[int, Outcome]]) -> int:
    """``link_outcome`` for many new outcomes: their request ids looked up together, links and
    link counts written in one statement each. Returns the links made."""
    u = usage_records.c
    wanted = sorted({rid for _, outcome in items for rid in outcome.request_ids})
    usage: dict[str, list[tuple[int, str]]] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = conn.execute(
            select(u.record_id, u.id, u.flow).where(u.record_id.in_(wanted[start : start + _CHUNK]))
        )
        for rid, pk, flow in rows:
            usage.setdefault(rid, []).append((int(pk), flow))
    links: list[dict[str, int]] = []
    counts: list[dict[str, Any]] = []
    for pk, outcome in items:
        found = [hit for rid in outcome.request_ids for hit in usage.get(rid, ())]
        if not found and (outcome.trace_id is not None or outcome.session_id is not None):
            found = _by_trace_or_session(conn, outcome.trace_id, outcome.session_id)
        if not found:
            continue
        links.extend({"outcome": pk, "usage": usage_pk} for usage_pk, _ in found)
        flow = Counter(f for _, f in found).most_common(1)[0][0]
        counts.append({"pk": pk, "n": len(found), "f": flow})
    insert = dialect_insert(conn, outcome_links).on_conflict_do_nothing(index_elements=["outcome", "usage"])
    for start in range(0, len(links), _CHUNK):
        conn.execute(insert, links[start : start + _CHUNK])
    if counts:
        conn.execute(
            update(outcomes)
            .where(outcomes.c.id == bindparam("pk"))
            .values(linked=bindparam("n"), linked_flow=bindparam("f")),
            counts,
        )
    return len(links)


def _by_trace_or_session(
    conn: Connection, trace_id: str | None, session_id: str | None
) -> list[tuple[int, str]]:
    u = usage_records.c
    found: list[tuple[int, str]] = []
    if trace_id is not None:
        found = [(int(i), f) for i, f in conn.execute(select(u.id, u.flow).where(u.trace_id == trace_id))]
    if not found and session_id is not None:
        found = [(int(i), f) for i, f in conn.execute(select(u.id, u.flow).where(u.session_id == session_id))]
    return found


def link_outcome(
    conn: Connection, pk: int, request_ids: Sequence[str], trace_id: str | None, session_id: str | None
) -> int:
    """Link an outcome to its usage: request ids, else trace id, else session id. Returns links made.

    Under the retention lock, as :func:`write_outcomes` is, for the same reason."""
    hold_retention_lock(conn, shared=True)
    u = usage_records.c
    found: list[tuple[int, str]] = []
    for start in range(0, len(request_ids), _CHUNK):
        chunk = list(request_ids[start : start + _CHUNK])
        found.extend((int(i), f) for i, f in conn.execute(select(u.id, u.flow).where(u.record_id.in_(chunk))))
    if not found:
        found = _by_trace_or_session(conn, trace_id, session_id)
    if not found:
        return 0
    conn.execute(
        dialect_insert(conn, outcome_links).on_conflict_do_nothing(index_elements=["outcome", "usage"]),
        [{"outcome": pk, "usage": usage_pk} for usage_pk, _ in found],
    )
    flow = Counter(f for _, f in found).most_common(1)[0][0]
    conn.execute(update(outcomes).where(outcomes.c.id == pk).values(linked=len(found), linked_flow=flow))
    return len(found)


def relink_unlinked(conn: Connection, *, since_us: int, until_us: int) -> int:
    """Try again to link outcomes of a period whose usage was missing, all or part of it (it may
    have arrived since); returns the outcomes that gained links."""
    o = outcomes.c
    rows = conn.execute(
        select(o.id, o.request_ids, o.trace_id, o.session_id, o.linked).where(
            or_(o.linked == 0, o.request_ids != "[]"), o.ts_us >= since_us, o.ts_us < until_us
        )
    )
    gained = 0
    for r in list(rows):
        ids = json.loads(r.request_ids)
        if r.linked and r.linked >= len(ids):  # every request id found already
            continue
        if link_outcome(conn, int(r.id), ids, r.trace_id, r.session_id) > r.linked:
            gained += 1
    return gained
