"""The log's C2SP checkpoints, the witnesses' state, and an index for receipts.

Revision ID: wt18_log_checkpoints
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kernel.db

revision: str = "wt18_log_checkpoints"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_checkpoint",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cosignatures", sa.Integer(), nullable=False),
        sa.Column("published_at", kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tree_size"),
    )
    op.create_table(
        "log_witness",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("last_size", sa.BigInteger(), nullable=False),
        sa.Column("cosigned_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refusal", sa.Text(), nullable=True),
        sa.Column("refused_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("log_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_entry_payload_sha256"), ["payload_sha256"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("log_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_entry_payload_sha256"))
    op.drop_table("log_witness")
    op.drop_table("log_checkpoint")
