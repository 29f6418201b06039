"""Every schema change is a migration: upgrade, downgrade and upgrade again on SQLite and PostgreSQL,
and the migrated schema is exactly what finops/storage/tables.py declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from finops.storage.db import create_engine_for, current_revision, downgrade, head_revision, upgrade
from finops.storage.tables import metadata


def test_upgrade_downgrade_upgrade_again(db_url: str) -> None:
    engine = create_engine_for(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {"usage_records", "rollups_hourly", "dead_letters", "price_entries", "price_versions"} <= tables
    downgrade(engine, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    engine.dispose()


def test_migrated_schema_matches_the_declared_tables(db_url: str) -> None:
    engine = create_engine_for(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []


def test_schema_head_constant_is_alembics_head(sqlite_url: str) -> None:
    from finops.storage.db import SCHEMA_HEAD

    engine = create_engine_for(sqlite_url)
    assert head_revision(engine) == SCHEMA_HEAD
    engine.dispose()
