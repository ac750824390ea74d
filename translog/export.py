"""Write the log (entries and signed heads) as JSON lines for offline verification.

Format (docs/access-log.md, "Export format"): a header line, then every entry in sequence
order with each signed head right after the last entry it covers, then an end line. Each line
is one canonical JSON object with a single key: ``header``, ``entry``, ``head`` or ``end``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlmodel import Session, col, select

from kernel import storage
from kernel.db import utcnow
from translog import canonical, service
from translog.models import LogEntry, TreeHead

_CHUNK = 2000


def line(kind: str, body: dict[str, Any]) -> bytes:
    return json.dumps({kind: body}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode() + b"\n"


def export(session: Session, out: IO[bytes]) -> tuple[int, int]:
    """Write every entry covered by the latest signed head; returns (entries, heads)."""
    heads = list(session.exec(select(TreeHead).order_by(col(TreeHead.tree_size))))
    size = heads[-1].tree_size if heads else 0  # a consistent cut, whatever commits meanwhile
    out.write(line("header", {"format": canonical.EXPORT_FORMAT,
                              "version": canonical.EXPORT_VERSION,
                              "exported_at": canonical.format_time(utcnow()), "tree_size": size}))
    pending = iter(heads)
    next_head = next(pending, None)
    for row in _entries(session, size):
        out.write(b'{"entry":' + canonical.entry_bytes(service.entry_object(row)) + b"}\n")
        while next_head is not None and next_head.tree_size == row.seq + 1:
            out.write(line("head", service.head_record(next_head)))
            next_head = next(pending, None)
    out.write(line("end", {"entries": size, "heads": len(heads)}))
    return size, len(heads)


def _entries(session: Session, size: int) -> Iterator[LogEntry]:
    # Keyset pagination keeps memory flat on large logs, on both SQLite and PostgreSQL.
    after = -1
    while after + 1 < size:
        rows = session.exec(select(LogEntry).where(col(LogEntry.seq) > after,
                                                   col(LogEntry.seq) < size)
                            .order_by(col(LogEntry.seq)).limit(_CHUNK)).all()
        if not rows:
            return
        for row in rows:
            yield row
            session.expunge(row)  # written out: do not let the identity map grow with the log
        after = rows[-1].seq


def export_to_path(session: Session, path: Path) -> tuple[int, int]:
    """Published atomically (kernel.storage), so a failed export never leaves a
    plausible-looking partial file."""
    with storage.writing(path) as temp, temp.open("wb") as fh:
        counts = export(session, fh)
    return counts
