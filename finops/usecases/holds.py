"""What open reservations hold now, per budget: for `finops budgets status` beside the spend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from finops.domain.budgets import Budget
from finops.storage.reservations import held_by_budget

__all__ = ["held_now"]


def held_now(conn: Connection, budgets: Sequence[Budget], now: datetime) -> dict[str, int]:
    """Nano-dollars held by open, unexpired reservations, per budget key (0 where none)."""
    return held_by_budget(conn, [b.key for b in budgets], now_us=int(now.timestamp() * 1_000_000))
