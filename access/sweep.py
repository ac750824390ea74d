"""Crash recovery of deliveries: files of dead jobs (staging leftovers, renamed files no row
names) are deleted once their job's lock is free (the kernel drops a dead process's
``flock``) and, re-checked under the lock, no committed Delivery names them."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from pathlib import Path

from sqlmodel import col, select

from access.models import (
    Delivery,
)
from access.planning import deliveries_dir, staging
from kernel import db

log = logging.getLogger("govshare")


_JOB_RE = re.compile(r"([0-9a-f]{32})")


def sweep(app_id: int | None = None) -> list[str]:
    """Delete files of dead jobs: staging leftovers and renamed files no row names.

    A file is deleted only once its job's lock can be taken (its process is gone or
    finished) *and*, re-checked after taking the lock, no committed Delivery names it.
    ``app_id`` limits the sweep to one application's folder (plus the staging area).
    """
    root = deliveries_dir()
    if not root.exists():
        return []
    folder_of_jobs = staging()
    candidates = list(folder_of_jobs.glob("*.partial"))
    folders = [root / str(app_id)] if app_id is not None else \
        [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    for folder in folders:
        if folder.is_dir():
            candidates += [p for p in folder.iterdir() if p.is_file()]
    referenced = _referenced(app_id)
    deleted = [str(p.relative_to(root)) for p in candidates
               if _data_path(root, p) not in referenced and _reap(root, p)]
    _drop_stale_locks(folder_of_jobs)
    return deleted


def _data_path(root: Path, path: Path) -> str:
    return str(path.relative_to(root)).removesuffix(".manifest.json")


def _referenced(app_id: int | None) -> set[str]:
    with db.session_scope(write=False) as session:
        query = select(Delivery.path).where(col(Delivery.path).is_not(None))
        if app_id is not None:
            query = query.where(Delivery.application_id == app_id)
        return {p for p in session.exec(query) if p}


def _reap(root: Path, path: Path) -> bool:
    match = _JOB_RE.search(path.name)
    if match is None:
        return False
    lock = staging() / f"{match.group(1)}.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its job is alive
        if _is_referenced(_data_path(root, path)):  # committed just before we took the lock
            return False
        path.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _drop_stale_locks(staging: Path, older_than: float = 3600) -> None:
    """Lock files of jobs that died before writing anything. Only old ones: a job creates
    its lock file an instant before locking it, and must not lose it in between."""
    cutoff = time.time() - older_than
    for lock in staging.glob("*.lock"):
        with contextlib.suppress(FileNotFoundError):
            if lock.stat().st_mtime < cutoff:
                lock.unlink()


def _is_referenced(relative: str) -> bool:
    with db.session_scope(write=False) as session:
        return session.exec(select(Delivery.id).where(Delivery.path == relative)).first() \
            is not None
