"""The log as C2SP tlog-tiles (c2sp.org/tlog-tiles), read from the stored perfect subtrees.

Tile (L, N, W) is the W hashes of tree level 8·L from index N·256 on — exactly the rows of
``log_subtree`` at that level, so a tile is one range scan and nothing is hashed. An entry
bundle is the canonical bytes of entries N·256 … N·256+W−1, each prefixed with its length as a
big-endian uint16. A tile is served only when all of its hashes (or entries) exist, so its bytes
never change: full and partial tiles alike are immutable.
"""

from __future__ import annotations

import struct

from sqlmodel import Session, col, select

from translog import canonical, service
from translog.models import LogEntry, LogSubtree
from translog.tilepath import HEIGHT, Tile


class TileMissing(LookupError):
    """The tile does not exist (yet): fewer hashes or entries than its width."""


def read(session: Session, tile: Tile) -> bytes:
    return _entries(session, tile) if tile.is_entries else _hashes(session, tile)


def _hashes(session: Session, tile: Tile) -> bytes:
    query = (select(LogSubtree.hash)
             .where(LogSubtree.level == tile.level * HEIGHT)
             .where(col(LogSubtree.idx) >= tile.start)
             .where(col(LogSubtree.idx) < tile.start + tile.width)
             .order_by(col(LogSubtree.idx)))
    hashes = list(session.exec(query))
    if len(hashes) != tile.width:
        raise TileMissing(tile.path())
    return b"".join(hashes)


def _entries(session: Session, tile: Tile) -> bytes:
    query = (select(LogEntry).where(col(LogEntry.seq) >= tile.start)
             .where(col(LogEntry.seq) < tile.start + tile.width).order_by(col(LogEntry.seq)))
    rows = list(session.exec(query))
    if len(rows) != tile.width:
        raise TileMissing(tile.path())
    parts = []
    for row in rows:
        data = canonical.entry_bytes(service.entry_object(row))
        parts.append(struct.pack(">H", len(data)) + data)
    return b"".join(parts)
