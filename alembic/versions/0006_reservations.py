"""Admission control: reservations (holds on budgets for calls in flight) and budget locks.

Revision ID: 0006_reservations
Revises: 0005_outbox_leases
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0006_reservations"
down_revision = "0005_outbox_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_locks",
        sa.Column("budget_key", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("budget_key", name=op.f("pk_budget_locks")),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(256), nullable=True),
        sa.Column("flow", sa.String(128), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("estimate_nanos", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("closed_us", sa.BigInteger(), nullable=True),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=True),
        sa.Column("record_id", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint("source", "request_id", name=op.f("uq_reservations_source_request_id")),
    )
    op.create_index(op.f("ix_reservations_status_expires_us"), "reservations", ["status", "expires_us"])
    op.create_table(
        "reservation_budgets",
        sa.Column("reservation_id", sa.String(40), nullable=False),
        sa.Column("budget_key", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("reservation_id", "budget_key", name=op.f("pk_reservation_budgets")),
    )
    op.create_index(
        op.f("ix_reservation_budgets_budget_key_reservation_id"),
        "reservation_budgets",
        ["budget_key", "reservation_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reservation_budgets_budget_key_reservation_id"), table_name="reservation_budgets")
    op.drop_table("reservation_budgets")
    op.drop_index(op.f("ix_reservations_status_expires_us"), table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("budget_locks")
