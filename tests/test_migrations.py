"""Alembic: ``upgrade head`` from an empty database yields exactly the models' schema.

Runs on SQLite and, under ``.ci/with-postgres``, on PostgreSQL (tests/pg.py). A failure here
after a model change means the migration was not regenerated (``make migration-initial``
before the first release, a new revision after it).
"""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import govshare.registry  # noqa: F401  (fills SQLModel.metadata)
from govshare import migrate
from kernel import db
from kernel.settings import get_settings


def _empty() -> None:
    """Start from nothing: each test's store is a migrated copy (tests/conftest.py)."""
    if get_settings().is_sqlite:
        db.reset_engines()
        path = get_settings().data_dir / "govshare.db"
        for leftover in path.parent.glob("govshare.db*"):
            leftover.unlink()
    else:
        with db.get_engine().begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    with db.get_engine().connect() as conn:
        assert inspect(conn).get_table_names() == []


def test_upgrade_from_empty_reaches_head_and_matches_the_models(data_dir: Path) -> None:
    _empty()
    migrate.upgrade()
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    with db.get_engine().connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"the migrations and the models differ on {conn.dialect.name}: {diff}"


def test_upgrade_is_idempotent_and_safe_to_repeat(data_dir: Path) -> None:
    # Every worker process migrates on start-up; the second and later find nothing to do.
    _empty()
    migrate.upgrade()
    migrate.upgrade()
    with db.get_engine().connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables


def test_the_totp_migration_seals_secrets_stored_in_clear(data_dir: Path) -> None:
    from kernel import identity

    _empty()
    migrate.upgrade("lead_data_source")  # the revision before sealing
    with db.get_engine(write=True).begin() as conn:
        conn.execute(text("INSERT INTO department (code, name_zh, name_en, kind, level, "
                          "created_at) VALUES ('GA', '公安局', 'Police', 'line', 'municipal', "
                          "'2026-01-01 00:00:00')"))
        conn.execute(text(
            "INSERT INTO \"user\" (id, username, display_name, department_id, is_active, "
            "totp_secret, created_at) VALUES (7, 'li', '李', (SELECT id FROM department), "
            ":on, :t, '2026-01-01 00:00:00')"), {"t": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                                                 "on": True})
        # A row that references the user: SQLite rebuilds the user table to widen a column,
        # which must not trip over it (an upgrade of a real installation did).
        conn.execute(text(
            "INSERT INTO api_token (user_id, name, token_hash, prefix, created_at, expires_at) "
            "VALUES (7, 'cli', 'h', 'gs_x', '2026-01-01 00:00:00', '2027-01-01 00:00:00')"))
    migrate.upgrade()
    with db.session_scope(write=False) as session:
        user = identity.get_user(session, "li")
        assert user.totp_secret and "JBSWY3DP" not in user.totp_secret
        assert identity.totp_secret(user) == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    if get_settings().is_sqlite:  # enforced again on the connection that migrated
        with db.get_engine(write=True).connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
