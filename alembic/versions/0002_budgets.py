"""Budget breaches (once per budget, period and threshold), the alert outbox, and
the last good version of each budget file.

Revision ID: 0002_budgets
Revises: 0001_ledger
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0002_budgets"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "budget_breaches",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("budget_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("threshold", sa.String(16), nullable=False),
        sa.Column("spend_nanos", sa.BigInteger(), nullable=False),
        sa.Column("cap_nanos", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("resolved_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_budget_breaches"),
        sa.UniqueConstraint("budget_key", "kind", "period", "threshold", name="uq_budget_breaches_once"),
    )
    op.create_table(
        "alert_outbox",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(300), nullable=False),
        sa.Column("channel", sa.String(200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
        sa.Column("claimed_us", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("slack_ts", sa.String(64), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_alert_outbox_dedupe_key"),
    )
    op.create_index("ix_alert_outbox_status_next_attempt_us", "alert_outbox", ["status", "next_attempt_us"])
    op.create_table(
        "budget_file_snapshots",
        sa.Column("file", sa.String(1024), nullable=False),
        sa.Column("budgets", sa.Text(), nullable=False),
        sa.Column("saved_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("file", name="pk_budget_file_snapshots"),
    )


def downgrade() -> None:
    op.drop_table("budget_file_snapshots")
    op.drop_index("ix_alert_outbox_status_next_attempt_us", table_name="alert_outbox")
    op.drop_table("alert_outbox")
    op.drop_table("budget_breaches")
