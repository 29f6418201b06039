"""The dashboard: each source's newest usage (freshness without a scan), and chart annotations.

``source_activity`` is filled from the usage already stored, so an upgraded database shows its
sources' freshness at once.

Revision ID: 0007_dashboard
Revises: 0006_reservations
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0007_dashboard"
down_revision = "0006_reservations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_activity",
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("newest_ts_us", sa.BigInteger(), nullable=False),
        sa.Column("last_ingest_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_activity")),
    )
    op.execute(
        "INSERT INTO source_activity (source, newest_ts_us, last_ingest_us) "
        "SELECT source, MAX(ts_us), MAX(ingested_us) FROM usage_records GROUP BY source"
    )
    op.create_table(
        "annotations",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("annotation_id", sa.String(256), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("flow", sa.String(128), nullable=True),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.UniqueConstraint("annotation_id", name=op.f("uq_annotations_annotation_id")),
    )
    op.create_index(op.f("ix_annotations_ts_us"), "annotations", ["ts_us"])


def downgrade() -> None:
    op.drop_index(op.f("ix_annotations_ts_us"), table_name="annotations")
    op.drop_table("annotations")
    op.drop_table("source_activity")
