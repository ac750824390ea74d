"""database sources of resources (catalog.sources)

Revision ID: lead_data_source
Revises: 13w_jobs
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

import kernel.db

revision: str = "lead_data_source"
down_revision: str | None = "13w_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("location", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("credentials_kid", sqlmodel.sql.sqltypes.AutoString(length=64),
                  nullable=False),
        sa.Column("credentials", sa.Text(), nullable=False),
        sa.Column("configured_by", sa.Integer(), nullable=False),
        sa.Column("status", sa.Enum("never", "ok", "unchanged", "failed", name="sourcestatus"),
                  nullable=False),
        sa.Column("last_pull_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_pull_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("created_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["configured_by"], ["user.id"]),
        sa.ForeignKeyConstraint(["resource_id"], ["resource.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_data_source_resource_id"), "data_source", ["resource_id"],
                    unique=True)
    op.create_index(op.f("ix_data_source_next_pull_at"), "data_source", ["next_pull_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_data_source_next_pull_at"), table_name="data_source")
    op.drop_index(op.f("ix_data_source_resource_id"), table_name="data_source")
    op.drop_table("data_source")
