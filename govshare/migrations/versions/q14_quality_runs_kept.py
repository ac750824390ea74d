"""quality: run retries and leases, run attestations, checks added by the data bureau

Revision ID: q14_quality_runs_kept
Revises: wt19_search_engine
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kernel.db

revision: str = "q14_quality_runs_kept"
down_revision: str | None = "wt19_search_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quality_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("not_before", kernel.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("lease_until", kernel.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("attestation", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("log_seq", sa.Integer(), nullable=True))
    with op.batch_alter_table("quality_custom_expectation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("added_by_bureau", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("quality_custom_expectation", schema=None) as batch_op:
        batch_op.drop_column("added_by_bureau")
    with op.batch_alter_table("quality_run", schema=None) as batch_op:
        batch_op.drop_column("log_seq")
        batch_op.drop_column("attestation")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("not_before")
        batch_op.drop_column("attempts")
