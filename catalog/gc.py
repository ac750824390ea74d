"""Garbage collection of the data plane: warehouse files no committed row refers to.

Segments are written, renamed into place and only then committed; a normal failure deletes
the file (``kernel.db.on_rollback``), but a process killed between the rename and the
commit leaves a segment no ``data_version`` row names, and one killed mid-upload leaves its
staging files. Both are invisible (nothing reads a file the database does not name) and only
cost disk space; ``govshare warehouse gc`` removes them once they are older than a grace
period, which must exceed the longest upload (staging) and commit (segments) in flight.

Order matters with several workers: the referenced set is read *before* the folders are
listed, so a segment committed meanwhile is either in the set or younger than the grace.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from catalog.models import DataVersion
from kernel.db import session_scope
from kernel.settings import get_settings

STAGING = "_staging"
DEFAULT_GRACE = timedelta(hours=24)


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)  # relative to the warehouse
    bytes_freed: int = 0
    young: list[str] = field(default_factory=list)  # orphans within the grace period
    missing: list[str] = field(default_factory=list)  # named by a row, absent on disk


def collect(*, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False,
            now: float | None = None) -> GcReport:
    """Remove (or with ``dry_run`` only list) orphan segments and staging leftovers."""
    root = get_settings().warehouse_dir
    report = GcReport()
    with session_scope(write=False) as session:
        referenced = set(session.exec(select(DataVersion.segment)))
    report.missing = sorted(s for s in referenced if not (root / s).exists())
    if not root.is_dir():
        return report
    cutoff = (now if now is not None else time.time()) - grace.total_seconds()
    for path in _orphans(root, referenced):
        relative = str(path.relative_to(root))
        if _newest_mtime(path) >= cutoff:
            report.young.append(relative)
            continue
        size = _size(path)
        if not dry_run:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        report.removed.append(relative)
        report.bytes_freed += size
    return report


def _orphans(root: Path, referenced: set[str]) -> list[Path]:
    found: list[Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            # Nothing in the staging area is ever referenced: it is all work in flight.
            if folder.name == STAGING or str(path.relative_to(root)) not in referenced:
                found.append(path)
    return found


def _newest_mtime(path: Path) -> float:
    try:
        if path.is_dir():  # a spill directory: its newest file tells whether it is in use
            return max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.rglob("*")])
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by its owner meanwhile
        return float("inf")


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except FileNotFoundError:
        return 0
