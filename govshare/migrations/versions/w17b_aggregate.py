"""aggregate releases with differential privacy: the spec and the grant's spent budget

Revision ID: w17b_aggregate
Revises: w17_risk
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "w17b_aggregate"
down_revision: str | None = "w17_risk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


METHODS = sa.Enum("file", "api", "aggregate", name="deliverymethod")
OLD_METHODS = sa.Enum("file", "api", name="deliverymethod")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # a native enum there
        op.execute("ALTER TYPE deliverymethod ADD VALUE IF NOT EXISTS 'aggregate'")
    with op.batch_alter_table("application") as batch:
        batch.add_column(sa.Column("aggregate", sa.JSON(), nullable=True))
        if not postgres:  # elsewhere a VARCHAR as long as the longest value
            batch.alter_column("delivery_method", existing_type=OLD_METHODS, type_=METHODS,
                               existing_nullable=False)
    if not postgres:
        with op.batch_alter_table("delivery") as batch:
            batch.alter_column("method", existing_type=OLD_METHODS, type_=METHODS,
                               existing_nullable=False)
    with op.batch_alter_table("access_grant") as batch:
        batch.add_column(sa.Column("privacy_spent", sa.Float(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("access_grant") as batch:
        batch.drop_column("privacy_spent")
    with op.batch_alter_table("application") as batch:
        batch.drop_column("aggregate")
