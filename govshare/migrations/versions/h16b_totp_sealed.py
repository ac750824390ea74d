"""TOTP secrets sealed at rest (AES-GCM under the totp-secrets purpose key)

Revision ID: h16b_totp_sealed
Revises: lead_data_source
Create Date: 2026-12-03 17:30:00

Widens ``user.totp_secret`` to hold "<key id>$<sealed>" and seals every secret stored in clear,
bound to its user id (kernel.identity.seal_totp). The key ring is loaded only when there is a
secret to seal, so databases without TOTP enrolments migrate without a master secret.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "h16b_totp_sealed"
down_revision: str | None = "lead_data_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_USER = sa.table("user", sa.column("id", sa.Integer()), sa.column("totp_secret", sa.String()))


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.alter_column("totp_secret",
                              existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=255),
                              existing_nullable=True)
    bind = op.get_bind()
    rows = bind.execute(sa.select(_USER.c.id, _USER.c.totp_secret)
                        .where(_USER.c.totp_secret.is_not(None))).all()
    clear = [(uid, secret) for uid, secret in rows if "$" not in secret]
    if not clear:
        return
    from kernel.identity import seal_totp  # loads the key ring: only when there is work

    for uid, secret in clear:
        bind.execute(sa.update(_USER).where(_USER.c.id == uid)
                     .values(totp_secret=seal_totp(uid, secret)))


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_USER.c.id, _USER.c.totp_secret)
                        .where(_USER.c.totp_secret.is_not(None))).all()
    if rows:
        from kernel import secrets

        for uid, stored in rows:
            if "$" in stored:
                plain = secrets.unseal_text(secrets.TOTP_SECRETS, stored,
                                            f"govshare/user/{uid}/totp".encode())
                bind.execute(sa.update(_USER).where(_USER.c.id == uid)
                             .values(totp_secret=plain))
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.alter_column("totp_secret",
                              existing_type=sqlmodel.sql.sqltypes.AutoString(length=255),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=64),
                              existing_nullable=True)
