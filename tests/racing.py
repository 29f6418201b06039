"""Races made deterministic: run a competing commit right after the k-th SQL statement of a reader.

A reader that assembles one answer from several statements (a check, a report, an export) sees,
on PostgreSQL's read committed, each statement's own snapshot. The race tests run the competing
write (a settle, a reprice, retention, a late batch) after each statement in turn, with a
SQLAlchemy event on the reader's engine or connection: no sleeps, no mocks of finops's code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, event

__all__ = ["AfterStatement", "after_statement", "in_sqlite_write"]


@dataclass
class AfterStatement:
    """What happened in the block: statements run on the target, and whether the action ran."""

    statements: int = 0
    ran: bool = False


@contextmanager
def after_statement(
    target: Engine | Connection,
    k: int | None,
    action: Callable[[], object],
    *,
    skip: Callable[[Connection], bool] | None = None,
) -> Iterator[AfterStatement]:
    """Count the statements ``target`` runs inside the block and run ``action`` once, right after
    the ``k``-th (``None``: never, only count). A ``k``-th statement for which ``skip(conn)`` is
    true does not run it (see :func:`in_sqlite_write`)."""
    seen = AfterStatement()

    def after(conn: Connection, *_: Any) -> None:
        seen.statements += 1
        if seen.statements == k and not seen.ran and not (skip is not None and skip(conn)):
            seen.ran = True
            action()

    event.listen(target, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(target, "after_cursor_execute", after)


def in_sqlite_write(conn: Connection) -> bool:
    """A statement inside a SQLite write transaction: a write run from there would wait for the
    one write lock that transaction holds, for ever."""
    return conn.dialect.name == "sqlite" and bool(conn.get_execution_options().get("finops_write"))
