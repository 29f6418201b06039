"""Dialect helpers shared by the storage modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table

__all__ = ["dialect_insert", "like_pattern"]


def dialect_insert(conn: Connection, table: Table) -> Any:
    """An INSERT with ``on_conflict_do_nothing/do_update`` for this connection's dialect.

    Each dialect is imported on first use: a SQLite command never loads PostgreSQL's.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def like_pattern(glob: str) -> str:
    """A glob (``support-*``) as a LIKE pattern with ``\\`` as the escape character.

    ``*`` and ``?`` are the only wildcards; ``%``, ``_`` and ``\\`` are escaped and everything
    else (``[`` included) matches itself, as in ``finops.domain.budgets.glob_matches``: a budget
    must sum exactly the spend of the flows it applies to.
    """
    out = []
    for ch in glob:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)
