"""Shared fixtures: every test gets its own data directory, metadata store and app."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kernel import db, events, ratelimit, secrets
from kernel.identity import DepartmentKind, Role
from kernel.settings import get_settings
from tests import pg
from tests.world import create_departments


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass (``make test``'s second run), only the tests that use a database
    (the ``data_dir`` or ``postgres`` fixture): the others -- pure functions, files, processes
    with a data folder of their own -- ran in the SQLite pass and would run identically."""
    if pg.server_url() is None:
        return
    keep, other = [], []
    for item in items:
        uses_db = {"data_dir", "postgres"} & set(getattr(item, "fixturenames", ()))
        (keep if uses_db else other).append(item)
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = keep


@pytest.fixture(scope="session")
def postgres() -> Iterator[tuple[pg.Databases, str] | None]:
    """With GOVSHARE_TEST_DATABASE_URL set: the server's databases and a migrated template."""
    url = pg.server_url()
    if url is None:
        yield None
        return
    databases = pg.Databases(url)
    with databases.migrated_template() as template:
        yield databases, template


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite metadata store migrated once per session: each test starts from a copy, as the
    PostgreSQL pass starts from a template database (migrating from nothing takes a third of
    a second, which every test paid). A test that needs an empty store deletes the file."""
    from govshare import migrate

    folder = tmp_path_factory.mktemp("sqlite-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVSHARE_DATA_DIR", str(folder))
        mp.setenv("GOVSHARE_MODE", "development")
        mp.delenv("GOVSHARE_DATABASE_URL", raising=False)
        get_settings.cache_clear()
        db.reset_engines()
        migrate.upgrade()
        db.reset_engines()  # the last connection closed: the WAL is checkpointed away
        get_settings.cache_clear()
    return folder / "govshare.db"


def _copy_sqlite(template: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source, copy = sqlite3.connect(template), sqlite3.connect(target)
    try:
        source.backup(copy)  # a consistent copy whatever state the template's WAL is in
    finally:
        source.close()
        copy.close()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path,
             postgres: tuple[pg.Databases, str] | None) -> Iterator[Path]:
    monkeypatch.setenv("GOVSHARE_DATA_DIR", str(tmp_path / "data"))
    # Development mode, explicitly (production is the default): the master key file is made
    # on first use under the public development passphrase, cheaply (kernel/secrets.py).
    monkeypatch.setenv("GOVSHARE_MODE", "development")
    for name in ("GOVSHARE_KEY_PASSPHRASE", "GOVSHARE_MASTER_SECRET",
                 "GOVSHARE_MASTER_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    database = None
    if postgres is None:  # a fresh copy of the migrated SQLite store
        _copy_sqlite(sqlite_template, tmp_path / "data" / "govshare.db")
    else:  # a fresh PostgreSQL database per test (tests/pg.py)
        databases, template = postgres
        database = databases.create(template)
        monkeypatch.setenv("GOVSHARE_DATABASE_URL", databases.url_of(database))
    get_settings.cache_clear()
    secrets.forget()
    db.reset_engines()
    ratelimit.reset()  # failed sign-ins of one test must not block the next
    yield tmp_path / "data"
    db.reset_engines()
    events.unsubscribe_all()
    get_settings.cache_clear()
    if postgres is not None and database is not None:
        postgres[0].drop(database)


class DrainingClient(TestClient):
    """A test client with "a worker beside the server": after each request, the delivery and
    mail jobs it enqueued run at once in this process (``kernel.jobs.run_pending``), as the
    background tasks and threads used to. Quality runs stay queued until a test runs them."""

    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        from kernel import jobs

        response = super().request(*args, **kwargs)
        jobs.run_pending(["access.deliver", "notifications.mail"])
        return response


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    from govshare.app import create_app

    with DrainingClient(create_app()) as c:
        yield c


@dataclass
class World:
    """Two line departments and the data bureau, with one user per role in each."""

    tokens: dict[tuple[str, Role], str]

    def headers(self, dept: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(dept, role)]}"}


DEPARTMENTS = [
    ("GA", "市公安局", "Public Security Bureau", DepartmentKind.line),
    ("SCJG", "市市场监督管理局", "Market Regulation Administration", DepartmentKind.line),
    ("SJJ", "市政务服务和数据管理局", "Data Bureau", DepartmentKind.bureau),
]


@pytest.fixture
def world(client: TestClient) -> World:
    tokens = create_departments(DEPARTMENTS)
    return World(tokens)
