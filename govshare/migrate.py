"""Schema migrations with Alembic, run on start-up and by ``govshare db upgrade``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from kernel.db import get_engine

_INI = Path(__file__).with_name("alembic.ini")


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"govshare:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def alembic_config() -> Config:
    return Config(str(_INI))


def upgrade(revision: str = "head") -> None:
    """Bring the metadata store to the newest schema (idempotent).

    Every worker process of ``govshare serve --workers N`` calls this on start-up; the
    migration runs under a lock so that the first one migrates and the others find the
    schema at head: an advisory lock on PostgreSQL, the write lock (``BEGIN IMMEDIATE``,
    the write engine) on SQLite.
    """
    cfg = alembic_config()
    with (get_engine(write=True).connect() as connection,
          _sqlite_table_rebuilds(connection), connection.begin()):
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                               {"k": lock_key("migrations")})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        if connection.dialect.name == "sqlite":
            _check_foreign_keys(connection)


@contextmanager
def _sqlite_table_rebuilds(connection: Connection) -> Iterator[None]:
    """SQLite alters a table by copying it (Alembic's batch mode), which drops the old table;
    with foreign keys enforced, dropping a table that other rows reference fails. SQLite's
    own procedure (sqlite.org/lang_altertable.html, "other kinds of table schema changes"):
    keys off outside the transaction, rebuild, ``foreign_key_check`` before commit, keys on.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection  # no transaction is open yet
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
    if broken:  # raising rolls the whole migration back
        raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")


def autogenerate(message: str, rev_id: str | None = None) -> None:
    """Developer helper: write a new revision from the difference to the models."""
    cfg = alembic_config()
    with get_engine().begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
