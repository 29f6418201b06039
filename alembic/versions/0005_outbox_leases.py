"""Outbox leases: a claim lasts until lease_until_us (longer than the longest send).

A row in "sending" without a lease was claimed by an older finops; it keeps that finops's
two-minute lease (claimed_us + 120 s), so nothing needs rewriting here.

Revision ID: 0005_outbox_leases
Revises: 0004_daemon
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0005_outbox_leases"
down_revision = "0004_daemon"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_outbox") as batch:
        batch.add_column(sa.Column("lease_until_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # An older finops knows no "dismissed": such rows were decided by a person, like "failed".
    op.execute("UPDATE alert_outbox SET status = 'failed' WHERE status = 'dismissed'")
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_column("lease_until_us")
