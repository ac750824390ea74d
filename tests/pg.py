"""The suite on PostgreSQL: set GOVSHARE_TEST_DATABASE_URL to a server (a superuser's URL;
``.ci/with-postgres`` starts a throwaway one) and every test gets a database of its own.

Each test's database is a copy of a template migrated once per session (``CREATE DATABASE …
TEMPLATE``): measured on the 2-core CI machine, about 75 ms to create and 22 ms to drop,
against ~540 ms to drop the schema and migrate again, so every test starts from scratch.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

TEST_URL_ENV = "GOVSHARE_TEST_DATABASE_URL"


def server_url() -> str | None:
    return os.environ.get(TEST_URL_ENV) or None


def _driver_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


class Databases:
    """Creates and drops the per-test databases on one server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._admin: Engine = create_engine(_driver_url(url), isolation_level="AUTOCOMMIT",
                                            poolclass=NullPool)
        self._names = (f"gs_{os.getpid()}_{n}" for n in itertools.count())
        self.template = f"gs_{os.getpid()}_template"

    def url_of(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def _exec(self, sql: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(sql))

    def create(self, template: str | None = None) -> str:
        name = next(self._names)
        self._exec(f'CREATE DATABASE "{name}"'
                   + (f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""))
        return name

    def drop(self, name: str) -> None:
        # FORCE: a test's child processes or leaked pools must not keep it alive.
        self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def migrated_template(self) -> Iterator[str]:
        """A database migrated to head, to copy for each test; dropped at the end."""
        from govshare import migrate
        from kernel import db
        from kernel.settings import get_settings

        self.drop(self.template)
        self._exec(f'CREATE DATABASE "{self.template}"')
        saved = os.environ.get("GOVSHARE_DATABASE_URL")
        os.environ["GOVSHARE_DATABASE_URL"] = self.url_of(self.template)
        get_settings.cache_clear()
        try:
            migrate.upgrade()
        finally:
            db.reset_engines()  # no connection may stay on a template being copied
            if saved is None:
                os.environ.pop("GOVSHARE_DATABASE_URL", None)
            else:
                os.environ["GOVSHARE_DATABASE_URL"] = saved
            get_settings.cache_clear()
        try:
            yield self.template
        finally:
            self.drop(self.template)
            self._admin.dispose()
