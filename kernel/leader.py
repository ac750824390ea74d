"""One leader among the server's worker processes, for the background jobs.

``govshare serve --workers N`` starts N processes, and each starts the quality worker and the
periodic-delivery scheduler. Their work is safe to do twice (claims and unique keys make the
second attempt a no-op), but doing it twice wastes a DuckDB job per duplicate, so only the
process that holds the lead does it; the others ask again on every tick and take over within
one tick of the leader's death.

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a connection of
  its own. Workers may run on several hosts; the server drops the lock when the holder's
  connection ends, so a killed worker loses the lead at once.
* SQLite: an exclusive ``flock`` on ``<data dir>/<name>.leader``. SQLite serves processes on
  one host only, and the kernel drops the lock when the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from kernel.settings import Settings, get_settings

log = logging.getLogger("govshare")

BACKGROUND = "background-jobs"


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"govshare:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """Try to become (or stay) the leader for ``name``; ``held()`` is cheap to call often."""

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or get_settings()
        self._conn: Connection | None = None  # PostgreSQL
        self._fd: int | None = None  # SQLite
        self._mutex = threading.Lock()

    def held(self) -> bool:
        with self._mutex:
            try:
                return self._check_pg() if not self.settings.is_sqlite else self._check_file()
            except Exception:  # a database restart, a broken connection: not the leader now
                log.warning("leadership %s lost or unavailable", self.name, exc_info=True)
                self._release()
                return False

    def release(self) -> None:
        with self._mutex:
            self._release()

    def _check_pg(self) -> bool:
        if self._conn is not None:
            self._conn.execute(text("SELECT 1"))  # the lock lives as long as this session
            return True
        engine = create_engine(self.settings.sqlalchemy_url, poolclass=NullPool)
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                           {"k": lock_key(self.name)}).scalar()
        if got:
            self._conn = conn
            log.info("this process (pid %s) leads %s", os.getpid(), self.name)
            return True
        conn.close()
        engine.dispose()
        return False

    def _check_file(self) -> bool:
        if self._fd is not None:
            return True
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.settings.data_dir / f"{self.name}.leader", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        log.info("this process (pid %s) leads %s", os.getpid(), self.name)
        return True

    def _release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()  # ends the session, which drops its advisory locks
                self._conn.engine.dispose()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None


_leaders: dict[tuple[str, str], Leadership] = {}
_leaders_mutex = threading.Lock()


def is_leader(name: str = BACKGROUND) -> bool:
    """Whether this process leads ``name`` for the current settings' database."""
    settings = get_settings()
    key = (name, settings.sqlalchemy_url)
    with _leaders_mutex:
        leadership = _leaders.get(key)
        if leadership is None:
            leadership = _leaders[key] = Leadership(name, settings)
    return leadership.held()


def release_all() -> None:
    """Give up every lead this process holds (on shutdown, and between tests)."""
    with _leaders_mutex:
        for leadership in _leaders.values():
            leadership.release()
        _leaders.clear()
