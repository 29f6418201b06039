"""Every schema change is a migration: upgrade, downgrade and upgrade again on SQLite and PostgreSQL,
and the migrated schema is exactly what finops/storage/tables.py declares."""

from __future__ import annotations

import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from finops.storage.db import create_engine_for, current_revision, downgrade, head_revision, upgrade
from finops.storage.reservations import held_by_budget
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


_PARTITION_OBJECTS = re.compile(r"^(usage_records_(p\d{6}|default)|usage_record_keys)")


def _declared(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    """PostgreSQL's partition layout (storage/partitions.py) is made by migration 0008, not declared
    in tables.py: the partitions, the key table and their indexes are left out of the comparison."""
    table = getattr(obj, "table", obj) if kind != "table" else obj
    return not _PARTITION_OBJECTS.match(str(getattr(table, "name", name) or ""))


def test_migrated_schema_matches_the_declared_tables(db_url: str) -> None:
    engine = create_engine_for(db_url)
    upgrade(engine)
    opts = {"compare_type": True, "include_object": _declared}
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
    engine.dispose()
    if engine.dialect.name == "postgresql":
        # Partitioned, the one difference: (source, record_id) is unique through usage_record_keys,
        # as a partitioned table cannot hold a unique index without its partition key.
        assert [(d[0], d[1].name) for d in diff] == [("add_constraint", "uq_usage_records_source_record_id")]
    else:
        assert diff == []


def test_schema_head_constant_is_alembics_head(sqlite_url: str) -> None:
    from finops.storage.db import SCHEMA_HEAD

    engine = create_engine_for(sqlite_url)
    assert head_revision(engine) == SCHEMA_HEAD
    engine.dispose()


def test_0009_keeps_the_links_of_open_and_lapsed_holds_with_their_sums_and_back(db_url: str) -> None:
    """A populated ledger at 0008: links of open, lapsed, settled and released holds (and one
    whose reservation is gone). Up: open and lapsed holds keep theirs, now with their estimate and
    expiry, and the held sums are what 0008 summed; down: the same links in the former shape."""
    from sqlalchemy import text

    engine = create_engine_for(db_url)
    upgrade(engine, "0008_partitions")
    rows = [  # id, status, estimate, expires, budgets
        ("open1", "open", 7, 2_000, ["a", "b"]),
        ("open2", "open", 11, 900, ["a"]),  # expired by the clock of the sum below
        ("lapsed", "lapsed", 13, 3_000, ["b"]),
        ("settled", "settled", 17, 3_000, ["a", "b"]),
        ("released", "released", 19, 3_000, ["a"]),
    ]
    with engine.begin() as conn:
        for rid, status, estimate, expires, keys in rows:
            conn.execute(
                text(
                    "INSERT INTO reservations (id, source, request_id, flow, tags, estimate_nanos, "
                    "status, answer, created_us, expires_us) "
                    "VALUES (:id, 'app', NULL, 'f', '{}', :e, :s, '{}', 1, :x)"
                ),
                {"id": rid, "e": estimate, "s": status, "x": expires},
            )
            for key in keys:
                conn.execute(
                    text("INSERT INTO reservation_budgets (reservation_id, budget_key) VALUES (:r, :k)"),
                    {"r": rid, "k": key},
                )
        conn.execute(
            text("INSERT INTO reservation_budgets (reservation_id, budget_key) VALUES ('gone', 'a')")
        )
    upgrade(engine)
    with engine.connect() as conn:
        links = sorted(conn.execute(text("SELECT * FROM reservation_budgets")).all())
        held = held_by_budget(conn, ["a", "b", "c"], now_us=1_000)
    assert [tuple(r) for r in links] == [
        ("lapsed", "b", 13, 3_000),
        ("open1", "a", 7, 2_000),
        ("open1", "b", 7, 2_000),
        ("open2", "a", 11, 900),
    ]
    assert held == {"a": 7, "b": 7 + 13, "c": 0}  # as 0008 summed: open or lapsed, unexpired
    downgrade(engine, "0008_partitions")
    with engine.connect() as conn:
        links = sorted(conn.execute(text("SELECT reservation_id, budget_key FROM reservation_budgets")).all())
        names = {i["name"] for i in inspect(conn).get_indexes("reservation_budgets")}
    assert [tuple(r) for r in links] == [("lapsed", "b"), ("open1", "a"), ("open1", "b"), ("open2", "a")]
    assert names == {"ix_reservation_budgets_budget_key_reservation_id"}
    upgrade(engine)
    engine.dispose()
