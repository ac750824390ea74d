"""Engines and sessions for the metadata store (SQLite by default, PostgreSQL in production).

One request = one session = one transaction: services flush, the request commits. Models use
only portable column types so the same schema runs on both backends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine

from kernel.settings import Settings, get_settings

# The demo's sharing history replays months of work through the real services; it sets this
# clock so every record (and log entry) carries the simulated time. Never set while serving.
_simulated_now: ContextVar[datetime | None] = ContextVar("govshare_simulated_now", default=None)


def utcnow() -> datetime:
    return _simulated_now.get() or datetime.now(UTC)


@contextmanager
def simulated_clock(at: datetime) -> Iterator[Callable[[datetime], None]]:
    """Run with ``utcnow()`` returning ``at``; the yielded function moves the clock."""
    def move(to: datetime) -> None:
        _simulated_now.set(to)

    token = _simulated_now.set(at)
    try:
        yield move
    finally:
        _simulated_now.reset(token)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use kernel.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(settings: Settings, *, write: bool = False) -> Engine:
    """An engine for reads, or (``write=True``) one for transactions that will write.

    On SQLite the difference matters: WAL lets readers run alongside the one writer, but a
    deferred transaction that reads and then writes fails at once with "database is locked"
    if another writer committed meanwhile. Write transactions therefore take the write lock
    at BEGIN (``BEGIN IMMEDIATE``) and queue on ``busy_timeout``; reads stay deferred.
    PostgreSQL needs no such split: both are the same engine.
    """
    if not settings.is_sqlite:
        return create_engine(settings.sqlalchemy_url, pool_pre_ping=True, pool_size=10)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        settings.sqlalchemy_url,
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    begin = "BEGIN IMMEDIATE" if write else "BEGIN"
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
    return engine


# FULL: in WAL mode, NORMAL syncs only at checkpoints, so a power loss can drop commits that
# were acknowledged, such as a signed tree head someone already fetched; the log would then
# sign a different root at that size, indistinguishable from a fork. FULL syncs the WAL at
# every commit (cost measured by bench/bench_sqlite_sync.py, docs/deployment.md).
SQLITE_SYNCHRONOUS = "FULL"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
    cur.execute("PRAGMA busy_timeout=30000")
    # A larger page cache and memory-mapped reads: search reads many index pages per query.
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB
    cur.execute("PRAGMA mmap_size=268435456")  # 256 MiB
    cur.close()


_engines: dict[tuple[str, bool], Engine] = {}


def get_engine(*, write: bool = False) -> Engine:
    settings = get_settings()
    write = write and settings.is_sqlite  # one engine serves both on PostgreSQL
    key = (settings.sqlalchemy_url, write)
    if key not in _engines:
        _engines[key] = make_engine(settings, write=write)
    return _engines[key]


def reset_engines() -> None:
    """Dispose every engine (tests and the CLI switch data directories)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def on_rollback(session: Session, undo: Callable[[], None]) -> None:
    """Run ``undo`` if the session's transaction rolls back (e.g. delete a file written for
    it), so work done outside the database never outlives a failed transaction."""
    session.info.setdefault("on_rollback", []).append(undo)


@event.listens_for(Session, "after_commit")
def _forget_undo(session: Session) -> None:
    session.info.pop("on_rollback", None)


@event.listens_for(Session, "after_rollback")
def _run_undo(session: Session) -> None:
    for undo in reversed(session.info.pop("on_rollback", [])):
        undo()


@contextmanager
def session_scope(*, write: bool = True) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any error."""
    with Session(get_engine(write=write), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_session() -> Iterator[Session]:
    """FastAPI dependency for requests that only read."""
    with session_scope(write=False) as session:
        yield session


def get_write_session() -> Iterator[Session]:
    """FastAPI dependency for requests that change state: one transaction per request."""
    with session_scope(write=True) as session:
        yield session
