"""Alembic environment: the URL comes from finops settings, or from the connection finops passes in."""

from __future__ import annotations

from sqlalchemy import Connection

from alembic import context
from finops.storage.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from finops.settings import Settings
    from finops.storage.db import create_engine_for

    engine = create_engine_for(config.attributes.get("url") or Settings().database_url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("finops migrations run online only: use `finops db upgrade`")
run_migrations_online()
