"""Outcomes and their links to usage, prompt daily rollups, prompts; usage indexes for linking.

Revision ID: 0003_outcomes_prompts
Revises: 0002_budgets
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0003_outcomes_prompts"
down_revision = "0002_budgets"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("outcome_id", sa.String(256), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("flow", sa.String(128), nullable=True),
        sa.Column("linked_flow", sa.String(128), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("event", sa.String(128), nullable=True),
        sa.Column("value_nanos", sa.BigInteger(), nullable=True),
        sa.Column("request_ids", sa.Text(), nullable=False),
        sa.Column("trace_id", sa.String(512), nullable=True),
        sa.Column("session_id", sa.String(512), nullable=True),
        sa.Column("linked", sa.Integer(), nullable=False),
        sa.Column("ingested_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outcomes"),
        sa.UniqueConstraint("source", "outcome_id", name="uq_outcomes_source_outcome_id"),
    )
    op.create_index("ix_outcomes_ts_us", "outcomes", ["ts_us"])
    op.create_table(
        "outcome_links",
        sa.Column("outcome", sa.BigInteger(), nullable=False),
        sa.Column("usage", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("outcome", "usage", name="pk_outcome_links"),
    )
    op.create_index("ix_outcome_links_usage", "outcome_links", ["usage"])
    op.create_table(
        "prompt_rollups_daily",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("prompt_id", sa.String(512), nullable=False),
        sa.Column("flow", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "records",
                "requests",
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "cost_nanos",
                "unpriced_records",
            )
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_rollups_daily"),
        sa.UniqueConstraint(
            "day", "prompt_id", "flow", "provider", "model", name="uq_prompt_rollups_daily_key"
        ),
    )
    op.create_table(
        "prompts",
        sa.Column("prompt_id", sa.String(512), nullable=False),
        sa.Column("first_seen_us", sa.BigInteger(), nullable=False),
        sa.Column("preview", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=True),
        sa.Column("tokens_estimated", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("prompt_id", name="pk_prompts"),
    )
    op.create_index("ix_usage_records_record_id", "usage_records", ["record_id"])
    op.create_index(
        "ix_usage_records_trace_id",
        "usage_records",
        ["trace_id"],
        sqlite_where=sa.text("trace_id IS NOT NULL"),
        postgresql_where=sa.text("trace_id IS NOT NULL"),
    )
    op.create_index(
        "ix_usage_records_session_id",
        "usage_records",
        ["session_id"],
        sqlite_where=sa.text("session_id IS NOT NULL"),
        postgresql_where=sa.text("session_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_usage_records_session_id", table_name="usage_records")
    op.drop_index("ix_usage_records_trace_id", table_name="usage_records")
    op.drop_index("ix_usage_records_record_id", table_name="usage_records")
    op.drop_table("prompts")
    op.drop_table("prompt_rollups_daily")
    op.drop_index("ix_outcome_links_usage", table_name="outcome_links")
    op.drop_table("outcome_links")
    op.drop_index("ix_outcomes_ts_us", table_name="outcomes")
    op.drop_table("outcomes")
