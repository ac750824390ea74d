"""background jobs: the job table and periodic schedules (kernel/jobs.py)

Revision ID: 13w_jobs
Revises: w16c
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kernel.db

revision: str = "13w_jobs"
down_revision: str | None = "w16c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("state IN ('pending', 'running')")


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_claim", "job", ["state", "run_at"], unique=False)
    op.create_index("ux_job_key_active", "job", ["key"], unique=True,
                    sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)
    op.create_table(
        "job_schedule",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("every_seconds", sa.Integer(), nullable=False),
        sa.Column("next_run_at", kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    _adopt_quality_runs()


def _adopt_quality_runs() -> None:
    """Runs queued (or cut off mid-run) under the old in-process worker become jobs, so a
    ``govshare worker`` runs (or resumes) them."""
    bind = op.get_bind()
    runs = bind.execute(sa.text(
        "SELECT id FROM quality_run WHERE status IN ('queued', 'running')")).scalars().all()
    if not runs:
        return
    job = sa.table("job", sa.column("kind", sa.String), sa.column("payload", sa.JSON),
                   sa.column("key", sa.String), sa.column("state", sa.String),
                   sa.column("attempts", sa.Integer), sa.column("max_attempts", sa.Integer),
                   sa.column("run_at", kernel.db.UTCDateTime(timezone=True)),
                   sa.column("created_at", kernel.db.UTCDateTime(timezone=True)))
    now = datetime.now(UTC)
    op.bulk_insert(job, [{"kind": "quality.run", "payload": {"run": run_id},
                          "key": f"quality.run:{run_id}", "state": "pending", "attempts": 0,
                          "max_attempts": 3, "run_at": now, "created_at": now}
                         for run_id in runs])


def downgrade() -> None:
    op.drop_table("job_schedule")
    op.drop_index("ux_job_key_active", table_name="job")
    op.drop_index("ix_job_claim", table_name="job")
    op.drop_table("job")
