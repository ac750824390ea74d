"""search: the tantivy index replaces the SQL postings; a change feed for it

Revision ID: wt19_search_engine
Revises: w16a
Create Date: 2026-12-03 15:00:00

The index now lives in the data directory (docs/search.md) and is rebuilt from the catalog
tables on start; the SQL postings and documents are dropped, not migrated.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kernel.db

revision: str = "wt19_search_engine"
down_revision: str | None = "w16a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", kernel.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("search_feed", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_search_feed_created_at"), ["created_at"],
                              unique=False)
    with op.batch_alter_table("search_posting", schema=None) as batch_op:
        batch_op.drop_index("ix_search_posting_resource_id")
    op.drop_table("search_posting")
    op.drop_table("search_document")


def downgrade() -> None:
    op.create_table(
        "search_document",
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["resource_id"], ["resource.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("resource_id"),
    )
    op.create_table(
        "search_posting",
        sa.Column(
            "term",
            sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("fields", sa.Integer(), nullable=False),
        sa.Column("ctx", sa.Text(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.SmallInteger(), nullable=False),
        sa.Column("sharing_code", sa.SmallInteger(), nullable=False),
        sa.Column("cycle_code", sa.SmallInteger(), nullable=False),
        sa.Column("level_code", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("term", "resource_id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("search_posting", schema=None) as batch_op:
        batch_op.create_index("ix_search_posting_resource_id", ["resource_id"], unique=False)
    with op.batch_alter_table("search_feed", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_search_feed_created_at"))
    op.drop_table("search_feed")
