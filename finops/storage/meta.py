"""Small facts the database keeps about itself (e.g. the generated user-hash key)."""

from __future__ import annotations

import secrets

from sqlalchemy import Connection, select

from finops.storage.sql import dialect_insert
from finops.storage.tables import meta

__all__ = ["user_hash_key"]


def user_hash_key(conn: Connection) -> bytes:
    """The database's own HMAC key for ``user``, created once on first use.

    Used when FINOPS_USER_HASH_SECRET is not set, so pseudonyms are stable per
    database and a raw user id is never stored.
    """
    conn.execute(
        dialect_insert(conn, meta).on_conflict_do_nothing(index_elements=["key"]),
        {"key": "user_hash_key", "value": secrets.token_hex(32)},
    )
    value = conn.scalar(select(meta.c.value).where(meta.c.key == "user_hash_key"))
    assert value is not None
    return bytes.fromhex(value)
