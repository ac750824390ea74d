"""pseudonym keys sealed under a purpose key of the master secret: its key id

Revision ID: 13k_pseudonym_key_kid
Revises: wt18_log_checkpoints
Create Date: 2026-12-03 14:40:00

Rows without a key id are the ones sealed before the master secret (scrypt of the passphrase
with the row's salt); `govshare keys init` / `rotate` re-seals them (kernel/secrets.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "13k_pseudonym_key_kid"
down_revision: str | None = "wt18_log_checkpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pseudonym_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kid", sa.String(length=32),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pseudonym_key", schema=None) as batch_op:
        batch_op.drop_column("kid")
