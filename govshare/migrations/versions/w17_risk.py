"""risk reports: outlier suppression and sensitive items of an application

Revision ID: w17_risk
Revises: q14_quality_runs_kept
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "w17_risk"
down_revision: str | None = "q14_quality_runs_kept"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("application") as batch:
        batch.add_column(sa.Column("max_suppression", sa.Float(), nullable=True))
        batch.add_column(sa.Column("sensitive_items", sa.JSON(), nullable=False,
                                   server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("application") as batch:
        batch.drop_column("sensitive_items")
        batch.drop_column("max_suppression")
