"""Alembic environment: migrates the metadata store the settings point at."""

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import govshare.registry  # noqa: F401  (fills SQLModel.metadata)
from kernel.db import get_engine

target_metadata = SQLModel.metadata


def run() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        _configure_and_run(connectable)
        return
    with get_engine().connect() as connection:
        _configure_and_run(connection)
        connection.commit()


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER via table copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
