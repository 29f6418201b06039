"""PostgreSQL: usage records in monthly partitions, one key row per record (SQLite: no change).

An existing ``usage_records`` is converted in place: renamed aside, a partitioned table made
in its image, the rows and their keys copied, a partition made for every month that has
records (within three years of today; older or far-future records stay in the default
partition) and for last month, this month and the next two, the old table dropped. Ids and their sequence are kept,
so outcome links still point at the same records. The downgrade does the reverse.

Revision ID: 0008_partitions
Revises: 0007_dashboard
Create Date: 2026-12-01
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import op
from finops.storage.partitions import (
    DEFAULT_PARTITION,
    KEYS_TABLE,
    create_month_partition,
    ensure_partitions,
    months_with_rows,
)

revision = "0008_partitions"
down_revision = "0007_dashboard"
branch_labels = None
depends_on = None

_OLD = "usage_records_unpartitioned"


def _indexes(table: str) -> None:
    """The usage indexes, on the partitioned parent (each partition gets its own copy).

    Time is a BRIN index: rows arrive in time order, so a few pages of summaries find a
    day among millions of rows, at almost no cost per insert.
    """
    op.execute(f"CREATE INDEX ix_usage_records_ts_us ON {table} USING brin (ts_us)")
    op.execute(f"CREATE INDEX ix_usage_records_record_id ON {table} (record_id)")
    op.execute(f"CREATE INDEX ix_usage_records_trace_id ON {table} (trace_id) WHERE trace_id IS NOT NULL")
    op.execute(
        f"CREATE INDEX ix_usage_records_session_id ON {table} (session_id) WHERE session_id IS NOT NULL"
    )


def _drop_indexes() -> None:
    for name in ("ts_us", "record_id", "trace_id", "session_id"):
        op.execute(f"DROP INDEX IF EXISTS ix_usage_records_{name}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    conn = op.get_bind()
    _drop_indexes()
    op.execute(f"ALTER TABLE usage_records RENAME TO {_OLD}")
    op.execute(f"ALTER TABLE {_OLD} RENAME CONSTRAINT pk_usage_records TO pk_{_OLD}")
    op.execute(f"ALTER TABLE {_OLD} DROP CONSTRAINT uq_usage_records_source_record_id")
    op.execute(f"CREATE TABLE usage_records (LIKE {_OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (ts_us)")
    op.execute("ALTER TABLE usage_records ADD CONSTRAINT pk_usage_records PRIMARY KEY (id, ts_us)")
    op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF usage_records DEFAULT")
    for start in sorted(months_with_rows(conn, _OLD, datetime.now(UTC))):
        create_month_partition(conn, start)
    ensure_partitions(conn, datetime.now(UTC))  # last month, this month and the next two
    op.execute(f"INSERT INTO usage_records SELECT * FROM {_OLD}")
    op.execute(
        f"CREATE TABLE {KEYS_TABLE} (source varchar(128) NOT NULL, record_id varchar(256) NOT NULL, "
        "ts_us bigint NOT NULL)"
    )
    op.execute(
        f"INSERT INTO {KEYS_TABLE} (source, record_id, ts_us) SELECT source, record_id, ts_us FROM {_OLD}"
    )
    op.execute(f"ALTER TABLE {KEYS_TABLE} ADD CONSTRAINT pk_{KEYS_TABLE} PRIMARY KEY (source, record_id)")
    op.execute(f"CREATE INDEX ix_{KEYS_TABLE}_ts_us ON {KEYS_TABLE} USING brin (ts_us)")
    op.execute("ALTER SEQUENCE usage_records_id_seq OWNED BY usage_records.id")
    op.execute(f"DROP TABLE {_OLD}")
    _indexes("usage_records")
    op.execute("ANALYZE usage_records")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE TABLE {_OLD} (LIKE usage_records INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {_OLD} SELECT * FROM usage_records")
    op.execute(f"ALTER SEQUENCE usage_records_id_seq OWNED BY {_OLD}.id")
    op.execute("DROP TABLE usage_records")  # its partitions and indexes with it
    op.execute(f"DROP TABLE {KEYS_TABLE}")
    op.execute(f"ALTER TABLE {_OLD} RENAME TO usage_records")
    op.execute("ALTER TABLE usage_records ADD CONSTRAINT pk_usage_records PRIMARY KEY (id)")
    op.execute(
        "ALTER TABLE usage_records ADD CONSTRAINT uq_usage_records_source_record_id UNIQUE (source, record_id)"
    )
    op.execute("CREATE INDEX ix_usage_records_ts_us ON usage_records (ts_us)")
    op.execute("CREATE INDEX ix_usage_records_record_id ON usage_records (record_id)")
    op.execute(
        "CREATE INDEX ix_usage_records_trace_id ON usage_records (trace_id) WHERE trace_id IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX ix_usage_records_session_id ON usage_records (session_id) WHERE session_id IS NOT NULL"
    )
