"""The usage ledger: usage records, dead letters, price entries and versions, hourly and daily rollups.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SUMS = (
    "records",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "unpriced_records",
    "unpriced_requests",
)


def upgrade() -> None:
    op.create_table(
        "finops_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_finops_meta"),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("record_id", sa.String(256), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("flow", sa.String(128), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("service_tier", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_1h_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=True),
        sa.Column("price_version", sa.String(32), nullable=True),
        sa.Column("prompt_id", sa.String(512), nullable=True),
        sa.Column("user_hash", sa.String(32), nullable=True),
        sa.Column("trace_id", sa.String(512), nullable=True),
        sa.Column("session_id", sa.String(512), nullable=True),
        sa.Column("latency_ms", sa.BigInteger(), nullable=True),
        sa.Column("tool_calls", sa.BigInteger(), nullable=True),
        sa.Column("ingested_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage_records"),
        sa.UniqueConstraint("source", "record_id", name="uq_usage_records_source_record_id"),
    )
    op.create_index("ix_usage_records_ts_us", "usage_records", ["ts_us"])
    op.create_table(
        "dead_letters",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("location", sa.String(1024), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=True),
        sa.Column("record_id", sa.String(256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint("fingerprint", name="uq_dead_letters_fingerprint"),
    )
    op.create_table(
        "price_entries",
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("layer", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_price_entries"),
    )
    op.create_index("ix_price_entries_provider_model", "price_entries", ["provider", "model"])
    op.create_table(
        "price_versions",
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("layer", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("discount", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("first_used_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_price_versions"),
    )
    op.create_table(
        "rollups_hourly",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("flow", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("service_tier", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("id", name="pk_rollups_hourly"),
        sa.UniqueConstraint(
            "hour",
            "flow",
            "provider",
            "model",
            "service_tier",
            "status",
            "tags",
            name="uq_rollups_hourly_key",
        ),
    )

    op.create_table(
        "rollups_daily",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("flow", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("service_tier", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("id", name="pk_rollups_daily"),
        sa.UniqueConstraint(
            "day", "flow", "provider", "model", "service_tier", "status", "tags", name="uq_rollups_daily_key"
        ),
    )


def downgrade() -> None:
    op.drop_table("rollups_daily")
    op.drop_table("rollups_hourly")
    op.drop_table("price_versions")
    op.drop_index("ix_price_entries_provider_model", table_name="price_entries")
    op.drop_table("price_entries")
    op.drop_table("dead_letters")
    op.drop_index("ix_usage_records_ts_us", table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_table("finops_meta")
