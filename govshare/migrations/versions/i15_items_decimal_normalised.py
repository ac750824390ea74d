"""data items: decimal precision and scale; data versions: the cells normalised on the way in

Revision ID: i15_items_decimal
Revises: w16b
Create Date: 2026-12-03 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i15_items_decimal"
down_revision: str | None = "w16b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("precision", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("scale", sa.Integer(), nullable=True))
    with op.batch_alter_table("data_version", schema=None) as batch_op:
        # Versions stored before this revision normalised nothing.
        batch_op.add_column(sa.Column("normalised", sa.JSON(), nullable=False,
                                      server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("data_version", schema=None) as batch_op:
        batch_op.drop_column("normalised")
    with op.batch_alter_table("data_item", schema=None) as batch_op:
        batch_op.drop_column("scale")
        batch_op.drop_column("precision")
