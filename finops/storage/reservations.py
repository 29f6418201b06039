"""Reservations in the database: holds on budgets for calls in flight, and the budget locks that
make a reserve atomic across replicas.

A reserve locks the rows of its budgets in ``budget_locks`` (key order: two reserves never wait
on each other in a cycle), then reads spend and open holds and inserts its own hold in the same
transaction; a settlement takes the same locks before it swaps a hold for the actual cost. So
while a reserve decides, no hold of its budgets can vanish from under its reads, and two
reserves on the same budget run one after the other. On SQLite every write transaction holds
the database's write lock from its first statement, which serialises the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, text, update

from finops.storage.sql import dialect_insert
from finops.storage.tables import reservation_budgets, reservations

__all__ = [
    "Reservation",
    "close_reservation",
    "held_by_budget",
    "hold_counts",
    "insert_reservations",
    "lock_budgets",
    "mark_lapsed",
    "reservation",
    "reservation_for_request",
    "reservation_row",
    "reservations_for_requests",
    "settle_reservations",
]


@dataclass(frozen=True)
class Reservation:
    id: str
    source: str
    request_id: str | None
    flow: str
    estimate_nanos: int
    status: str
    answer: dict[str, Any]
    expires_us: int


def _row(r: Any) -> Reservation:
    return Reservation(
        r.id, r.source, r.request_id, r.flow, r.estimate_nanos, r.status, json.loads(r.answer), r.expires_us
    )


#: PostgreSQL only. The keys come as one array, so the statement is the same text whatever their
#: number (SQLAlchemy compiled a multi-row VALUES anew each time: ~1 ms of Python a reserve).
_LOCK = text(
    "INSERT INTO budget_locks (budget_key) SELECT k FROM unnest(CAST(:keys AS varchar[])) AS k "
    "ORDER BY k ON CONFLICT (budget_key) DO UPDATE SET budget_key = excluded.budget_key"
)


def lock_budgets(conn: Connection, keys: Iterable[str]) -> None:
    """Hold the lock of each budget until the transaction ends (PostgreSQL: row locks, in key
    order; SQLite: the transaction's write lock already serialises every writer).

    One statement, one round trip (a reserve's latency is mostly round trips): a budget's row is
    inserted on its first use, and locked by the no-op update otherwise, in key order either way,
    so two transactions never wait on each other in a cycle. (Not a lock of the existing rows
    followed by an insert of the missing ones: that takes locks out of key order.)"""
    ordered = sorted(set(keys))
    if not ordered or conn.dialect.name == "sqlite":
        return
    conn.execute(_LOCK, {"keys": ordered})


_r, _rb = reservations.c, reservation_budgets.c
#: The statements a reserve and a settlement run, built once: composing a query costs more
#: Python than SQLite takes to answer it, and both run while the budgets are locked.
_HELD = (
    # A budget's links are those of its open holds and of lapsed ones (settled and released holds
    # lose theirs in the transaction that closes them), so the sum is one index range of the
    # unexpired links, whatever the budget's history. "lapsed" too: a replica whose clock runs
    # ahead marks a hold lapsed before its expiry by this one's clock; it counts here until then
    # (holds lapse at expiry, never before).
    select(_rb.budget_key, func.coalesce(func.sum(_rb.estimate_nanos), 0))
    .where(_rb.budget_key.in_(bindparam("keys", expanding=True)), _rb.expires_us > bindparam("now_us"))
    .group_by(_rb.budget_key)
)
_BUDGETS_OF = select(_rb.budget_key).where(_rb.reservation_id.in_(bindparam("ids", expanding=True)))
_SETTLE = (
    update(reservations)
    .where(
        _r.id == bindparam("b_id"),
        or_(_r.status == "open", _r.status == "lapsed"),  # executemany: no IN
        # A record of another flow counts against that flow's budgets, not the ones this hold
        # was taken against: settling would take the money off those; the hold lapses instead.
        _r.flow == bindparam("b_flow"),
    )
    .values(
        status="settled",
        closed_us=bindparam("b_now"),
        cost_nanos=bindparam("b_cost"),
        record_id=bindparam("b_record"),
    )
)
_UNLINK_SETTLED = delete(reservation_budgets).where(
    _rb.reservation_id.in_(
        select(_r.id).where(_r.id.in_(bindparam("ids", expanding=True)), _r.status == "settled")
    )
)
_INSERT_MANY: dict[str, Any] = {}  # per dialect, built on first use (a check never imports PostgreSQL's)


def _insert_many(conn: Connection) -> Any:
    name = conn.dialect.name
    if name not in _INSERT_MANY:
        _INSERT_MANY[name] = dialect_insert(conn, reservations).on_conflict_do_nothing()
    return _INSERT_MANY[name]


def held_by_budget(conn: Connection, keys: Sequence[str], *, now_us: int) -> dict[str, int]:
    """The money held by unexpired reservations that are open (or were marked lapsed early by a
    replica whose clock runs ahead), per budget key (0 where none)."""
    held = dict.fromkeys(keys, 0)
    if not keys:
        return held
    for key, total in conn.execute(_HELD, {"keys": list(keys), "now_us": now_us}):
        held[key] = int(total)
    return held


def reservation_for_request(conn: Connection, source: str, request_id: str) -> Reservation | None:
    r = reservations.c
    row = conn.execute(select(reservations).where(r.source == source, r.request_id == request_id)).first()
    return _row(row) if row else None


def reservation(conn: Connection, reservation_id: str) -> Reservation | None:
    row = conn.execute(select(reservations).where(reservations.c.id == reservation_id)).first()
    return _row(row) if row else None


def reservations_for_requests(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored answers to ``(source, request_id)`` pairs answered before, in one query."""
    if not keys:
        return {}
    r = reservations.c
    wanted = set(keys)
    found = conn.execute(
        select(r.source, r.request_id, r.answer).where(  # both columns: the (source, request_id) index
            r.source.in_(sorted({s for s, _ in wanted})), r.request_id.in_(sorted({rid for _, rid in wanted}))
        )
    )
    return {(s, rid): json.loads(a) for s, rid, a in found if (s, rid) in wanted}


def reservation_row(
    *,
    reservation_id: str,
    source: str,
    request_id: str | None,
    flow: str,
    tags: Mapping[str, str],
    estimate_nanos: int,
    status: str,
    answer: Mapping[str, Any],
    budget_keys: Sequence[str],
    now_us: int,
    expires_us: int,
) -> dict[str, Any]:
    """A reservation (or a denial) as :func:`insert_reservations` takes it."""
    return {
        "id": reservation_id,
        "source": source,
        "request_id": request_id,
        "flow": flow,
        "tags": json.dumps(dict(tags), sort_keys=True, separators=(",", ":")),
        "estimate_nanos": estimate_nanos,
        "status": status,
        "answer": json.dumps(answer, sort_keys=True),
        "created_us": now_us,
        "expires_us": expires_us,
        "budget_keys": sorted(set(budget_keys)) if status == "open" else [],
    }


#: The columns of a reservation row (:func:`reservation_row`) as _INSERT_LINKED takes them.
_RESERVATION_COLUMNS = (
    "id", "source", "request_id", "flow", "tags", "estimate_nanos", "status", "answer", "created_us",
    "expires_us",
)  # fmt: skip
#: PostgreSQL: the reservations, and the budget links of exactly the rows inserted, in one
#: statement whose text does not depend on how many (each column comes as one array).
_INSERT_LINKED = text(
    "WITH new AS (INSERT INTO reservations (id, source, request_id, flow, tags, estimate_nanos, "
    "status, answer, created_us, expires_us) SELECT * FROM unnest(CAST(:id AS varchar[]), "
    "CAST(:source AS varchar[]), CAST(:request_id AS varchar[]), CAST(:flow AS varchar[]), "
    "CAST(:tags AS text[]), CAST(:estimate_nanos AS bigint[]), CAST(:status AS varchar[]), "
    "CAST(:answer AS text[]), CAST(:created_us AS bigint[]), CAST(:expires_us AS bigint[])) "
    "ON CONFLICT DO NOTHING RETURNING id, estimate_nanos, expires_us) "
    "INSERT INTO reservation_budgets (reservation_id, budget_key, estimate_nanos, expires_us) "
    "SELECT w.rid, w.k, new.estimate_nanos, new.expires_us "
    "FROM unnest(CAST(:link_ids AS varchar[]), CAST(:link_keys AS varchar[])) AS w(rid, k) "
    "JOIN new ON new.id = w.rid"
)


def insert_reservations(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert reservations and denials (:func:`reservation_row`) and link each open hold to its
    budgets: one statement for any number on PostgreSQL (the links of the rows inserted), two on
    SQLite. A request_id answered before is not inserted again
    (the caller looked it up under the budget locks: only a flow no budget covers can race)."""
    if not rows:
        return
    values = [{k: v for k, v in row.items() if k != "budget_keys"} for row in rows]
    links = [(row, k) for row in rows for k in row["budget_keys"]]
    if links and conn.dialect.name == "postgresql":  # one statement: a round trip less a reserve
        params: dict[str, Any] = {c: [v[c] for v in values] for c in _RESERVATION_COLUMNS}
        params["link_ids"], params["link_keys"] = [r["id"] for r, _ in links], [k for _, k in links]
        conn.execute(_INSERT_LINKED, params)
        return
    conn.execute(_insert_many(conn), values)
    if links:
        conn.execute(
            reservation_budgets.insert(),
            [
                {
                    "reservation_id": r["id"],
                    "budget_key": k,
                    "estimate_nanos": r["estimate_nanos"],
                    "expires_us": r["expires_us"],
                }
                for r, k in links
            ],
        )


def budgets_of(conn: Connection, reservation_ids: Iterable[str]) -> list[str]:
    ids = list(set(reservation_ids))
    if not ids:
        return []
    return sorted({k for (k,) in conn.execute(_BUDGETS_OF, {"ids": ids})})


def close_reservation(conn: Connection, reservation_id: str, *, status: str, now_us: int) -> str | None:
    """Release (or otherwise close) an open reservation; returns its status before, ``None`` if
    there is none. Only an open one changes: a reservation is closed once."""
    r = reservations.c
    # Locked (PostgreSQL): a settle committing between this read and the update would otherwise
    # leave the update changing nothing while the answer says the hold was open (so "released").
    before = conn.execute(select(r.status).where(r.id == reservation_id).with_for_update()).scalar()
    if before == "open":
        conn.execute(
            update(reservations)
            .where(r.id == reservation_id, r.status == "open")
            .values(status=status, closed_us=now_us)
        )
        conn.execute(
            delete(reservation_budgets).where(reservation_budgets.c.reservation_id == reservation_id)
        )
    return str(before) if before is not None else None


def settle_reservations(conn: Connection, settled: Mapping[str, tuple[str, int, str]], *, now_us: int) -> int:
    """Swap holds for actual costs: ``{reservation_id: (record_id, cost_nanos, flow)}`` of usage
    stored in this transaction. An unknown, released or already settled reservation, or one held
    for another flow, is left alone (the usage is stored and priced all the same). Returns how
    many were settled."""
    if not settled:
        return 0
    if conn.dialect.name != "sqlite":  # SQLite: the write lock serialises already (lock_budgets)
        lock_budgets(conn, budgets_of(conn, settled))
    params = [
        {"b_id": rid, "b_now": now_us, "b_cost": cost, "b_record": record_id, "b_flow": flow}
        for rid, (record_id, cost, flow) in sorted(settled.items())
    ]
    settled_now = int(conn.execute(_SETTLE, params).rowcount)
    # The settled holds stop counting in this transaction: their links go (those left open or
    # lapsed, of another flow or already closed, keep theirs).
    conn.execute(_UNLINK_SETTLED, {"ids": sorted(settled)})
    return settled_now


def mark_lapsed(conn: Connection, *, now_us: int) -> int:
    """Open reservations past their expiry become ``lapsed`` (they stopped counting at expiry)."""
    r = reservations.c
    return conn.execute(
        update(reservations)
        .where(and_(r.status == "open", r.expires_us <= now_us))
        .values(status="lapsed", closed_us=now_us)
    ).rowcount


def hold_counts(conn: Connection, *, now_us: int, closed: bool = True) -> dict[str, int]:
    """Reservations by state, for metrics: open (unexpired), lapsed, settled, released, denied.
    ``closed=False`` counts only the open ones (an index range: cheap at any table size); the
    closed states are then left out of the answer."""
    r = reservations.c
    counts = {"open": 0, "lapsed": 0, "settled": 0, "released": 0, "denied": 0} if closed else {"open": 0}
    expired = and_(r.status == "open", r.expires_us <= now_us)
    by_status = select(r.status, func.count()).group_by(r.status)
    if not closed:
        by_status = by_status.where(r.status == "open")
    for status, n in conn.execute(by_status):
        counts[str(status)] = counts.get(str(status), 0) + int(n)
    stale = int(conn.scalar(select(func.count()).where(expired)) or 0)
    counts["open"] -= stale
    if closed:
        counts["lapsed"] += stale
    return counts
