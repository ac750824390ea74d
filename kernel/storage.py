"""Atomic publish: every file govshare writes appears whole or not at all, and stays after a
power loss once the call returns.

The recipe (write to a temporary name in the same folder, fsync the file, rename it over the
target, fsync the folder) matters in each step: without the file fsync a crash can leave the
new name pointing at empty or partial data (ext4 ``data=ordered`` does not cover renames over
new files on every kernel, XFS never did); without the folder fsync the rename itself may be
lost, so a file someone already downloaded, or a key that signed a served head, disappears.
Every writer of the data folder uses this module: catalog segments, deliveries and their
manifests, the key files, quality reports, the metrics mart, exports.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush a finished file's data and size to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename, a new or removed name) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside ``target`` (same folder, so the rename is atomic);
    hidden and unique, so concurrent writers never share one."""
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")


def publish(temp: Path, target: Path, *, synced: bool = False) -> None:
    """Move the finished file ``temp`` to ``target`` durably (replacing any old one): fsync
    the file (unless the caller already did: ``synced``), rename, fsync the folder."""
    if not synced:
        fsync_file(temp)
    os.replace(temp, target)
    fsync_dir(target.parent)


def publish_new(temp: Path, target: Path) -> None:
    """Like ``publish`` but never replaces: raises ``FileExistsError`` if ``target`` exists
    (``link`` is atomic create-if-absent; the temporary name is removed either way)."""
    fsync_file(temp)
    try:
        os.link(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def publish_bytes(target: Path, data: bytes, *, mode: int = 0o644,
                  exclusive: bool = False) -> None:
    """Write ``data`` to ``target`` atomically and durably (``exclusive``: only if absent).
    The folder is created (0700 when ``mode`` keeps others out)."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if mode & 0o077 == 0 else 0o755)
    with writing(target, mode=mode, exclusive=exclusive) as temp, open(temp, "wb") as fh:
        fh.write(data)


def publish_text(target: Path, text: str, *, mode: int = 0o644) -> None:
    publish_bytes(target, text.encode("utf-8"), mode=mode)


@contextlib.contextmanager
def writing(target: Path, *, mode: int = 0o644, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``target``'s content to; on success it is published
    (``exclusive``: only if ``target`` does not exist yet), on any error removed."""
    temp = temp_path(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.close(fd)
    try:
        yield temp
        if exclusive:
            publish_new(temp, target)
        else:
            publish(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
