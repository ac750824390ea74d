"""A short-lived cache of API token -> Principal, so that a request does not cost a database
round trip (three joined tables) to learn who sent it.

Correctness comes first; the cache only removes repeated lookups of the same answer:

* an entry lives ``TTL`` seconds at most, and never past its token's ``expires_at``;
* a commit that changes who a token is (a token revoked or its expiry changed; a user disabled,
  moved to another department, given other roles, renamed or deleted: ``kernel.identity``'s
  commit hook) empties this process's cache as it commits, and replaces the stamp file
  ``<data dir>/.auth-changed``; every process on the host compares the stamp (one ``stat``) on
  each lookup and empties its cache when it changed. So a revocation is refused at once by
  every worker on the host;
* on a deployment of several hosts (PostgreSQL), another host's workers learn of it within
  ``TTL`` seconds. docs/security.md says so.

Only the SHA-256 of a token is kept as the key, as in the database. Failed lookups are not
cached (the brute-force limiter counts them), so a token issued a moment ago works at once.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from kernel import storage
from kernel.settings import get_settings

TTL = 5.0  # seconds
MAX_ENTRIES = 10_000  # beyond, the cache starts over (a burst of distinct tokens)
STAMP = ".auth-changed"

_lock = threading.Lock()
_entries: dict[str, tuple[float, datetime, Any]] = {}  # hash -> (cached at, expires, principal)
_stamp_seen: tuple[int, int] = (0, 0)


def _stamp_path() -> Path:
    return get_settings().data_dir / STAMP


def _stamp() -> tuple[int, int]:
    """The stamp file's identity: replaced (a new inode) on every change."""
    try:
        st = os.stat(_stamp_path())
    except OSError:
        return (0, 0)
    return (st.st_ino, st.st_mtime_ns)


def lookup(token_hash: str, now: datetime) -> tuple[Any | None, tuple[int, int]]:
    """The cached Principal of this token hash if fresh and its token not yet expired, and
    the stamp as read before (to pass to ``store`` after a database lookup)."""
    global _stamp_seen
    stamp = _stamp()
    with _lock:
        if stamp != _stamp_seen:  # some process on this host changed identities
            _entries.clear()
            _stamp_seen = stamp
            return None, stamp
        entry = _entries.get(token_hash)
        if entry is None:
            return None, stamp
        cached_at, expires_at, principal = entry
        if time.monotonic() - cached_at > TTL or expires_at <= now:
            del _entries[token_hash]
            return None, stamp
        return principal, stamp


def store(token_hash: str, expires_at: datetime, principal: Any, stamp: tuple[int, int]) -> None:
    """Remember a database lookup made after ``lookup`` read ``stamp``: if the stamp has moved
    since, the answer may predate a change and is not kept."""
    with _lock:
        if stamp != _stamp_seen:
            return
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[token_hash] = (time.monotonic(), expires_at, principal)


def forget() -> None:
    """Empty this process's cache (tests; after a change, done by the commit hook)."""
    with _lock:
        _entries.clear()


def changed() -> None:
    """Identities changed: empty this cache and tell the host's other processes."""
    forget()
    path = _stamp_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Renamed into place: a new inode, so readers see a new stamp even in the same tick.
        storage.publish_text(path, str(time.time_ns()))
    except OSError:  # a read-only data directory: other processes fall back on the TTL
        pass
