"""Many requests' writes in one transaction (the daemon's group commit).

A reserve and a settlement each write, and on SQLite one writer writes at a time. Given one
transaction each, concurrent callers queue on the write lock and every one pays BEGIN, COMMIT
and the hand-over. Written together, usage batches share one insert, one rollup upsert and one
settlement, and reserves share one read of spend and holds, while each still gets exactly the
answer it would have got alone, one after the other (usecases/ingest.py ``write_staged``,
usecases/admission.py ``decide``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from finops.domain.budgets import Budget
from finops.storage.db import write_transaction
from finops.storage.reservations import budgets_of, lock_budgets
from finops.usecases.admission import Ask, ReserveResult, decide
from finops.usecases.ingest import StagedWrite, Written, write_staged
from finops.usecases.ledger import Ledger

__all__ = ["write_group"]


def write_group(
    ledger: Ledger,
    budgets: Sequence[Budget],
    writes: Sequence[StagedWrite],
    asks: Sequence[Ask],
    *,
    now: datetime,
) -> tuple[list[Written], list[ReserveResult]]:
    """Store ``writes`` (settling the holds their records name), then decide ``asks``, in one
    transaction; one result each, in order. Nothing is committed unless all of it is.

    Every budget the group touches is locked first, in key order, so two groups (two replicas
    on one PostgreSQL) never each hold a lock the other waits for.
    """
    with write_transaction(ledger.engine) as conn:
        if conn.dialect.name != "sqlite":  # SQLite: the write lock serialises already
            held = [rid for w in writes for rid in w.batch.reservations.values()]
            keys = {b.key for a in asks for b in budgets if b.matches(a.req.flow, a.req.tags)}
            lock_budgets(conn, keys.union(budgets_of(conn, held)))
        written = write_staged(conn, writes, now_us=time.time_ns() // 1000) if writes else []
        results = (
            decide(conn, budgets, asks, now=now, admit_unpriced=ledger.settings.admit_unpriced)
            if asks
            else []
        )
    return written, results
