"""The daemon: provider usage and cost reports, poller cursors, scheduled-job claims.

Revision ID: 0004_daemon
Revises: 0003_outcomes_prompts
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0004_daemon"
down_revision = "0003_outcomes_prompts"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _bucket_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("bucket_start_us", sa.BigInteger(), nullable=False),
        sa.Column("bucket_end_us", sa.BigInteger(), nullable=False),
        sa.Column("group_key", sa.String(512), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "provider_usage",
        *_bucket_columns(),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("project", sa.String(256), nullable=True),
        sa.Column("service_tier", sa.String(16), nullable=True),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_1h_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("fetched_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_provider_usage"),
        sa.UniqueConstraint("provider", "bucket_start_us", "group_key", name="uq_provider_usage_key"),
    )
    op.create_table(
        "provider_costs",
        *_bucket_columns(),
        sa.Column("line_item", sa.String(256), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("project", sa.String(256), nullable=True),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("fetched_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_provider_costs"),
        sa.UniqueConstraint("provider", "bucket_start_us", "group_key", name="uq_provider_costs_key"),
    )
    op.create_table(
        "poller_cursors",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_poller_cursors"),
    )
    op.create_table(
        "schedule_runs",
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("claimed_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_us", sa.BigInteger(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", "period", name="pk_schedule_runs"),
    )


def downgrade() -> None:
    op.drop_table("schedule_runs")
    op.drop_table("poller_cursors")
    op.drop_table("provider_costs")
    op.drop_table("provider_usage")
