"""Building receipts (``translog.proofs``) from the database against the published checkpoint."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from kernel.problems import Conflict
from translog import canonical, checkpoints, proofs, service, tree
from translog.models import LogEntry


def for_entry(session: Session, row: LogEntry) -> str:
    """The tlog-proof of an entry; Conflict while no published checkpoint covers it yet."""
    size, signed = checkpoints.published(session)
    if row.seq >= size:
        raise Conflict(f"Entry {row.seq} is not yet in a published checkpoint (size {size}): "
                       "the witnesses cosign new checkpoints within seconds; ask again.",
                       key="problem.log_receipt_pending", params={"seq": row.seq, "size": size})
    return proofs.Receipt(
        index=row.seq, proof=tree.inclusion_proof(session, row.seq, size), checkpoint_note=signed,
        extra=canonical.entry_bytes(service.entry_object(row)),
    ).render()


def find_entry(session: Session, event_type: str, payload: Any) -> LogEntry | None:
    """The entry that recorded exactly this payload as this event type (the latest one)."""
    query = (select(LogEntry).where(LogEntry.payload_sha256 == canonical.payload_digest(payload))
             .where(LogEntry.event_type == event_type).order_by(col(LogEntry.seq).desc()))
    return session.exec(query).first()


def for_payload(session: Session, event_type: str, payload: Any) -> str | None:
    """A receipt for the entry of ``payload``; None if none is published yet (or no entry)."""
    row = find_entry(session, event_type, payload)
    if row is None:
        return None
    try:
        return for_entry(session, row)
    except Conflict:
        return None


def for_subject(session: Session, key: str, value: str, types: tuple[str, ...] = (),
                limit: int = 200) -> list[tuple[LogEntry, str | None]]:
    """Entries naming ``key=value`` among their subjects (of ``types``, if given), oldest
    first, each with its receipt (None until a published checkpoint covers it)."""
    query = select(LogEntry).where(col(LogEntry.subjects)[key].as_string() == value)
    if types:
        query = query.where(col(LogEntry.event_type).in_(types))
    out: list[tuple[LogEntry, str | None]] = []
    for row in session.exec(query.order_by(col(LogEntry.seq)).limit(limit)):
        try:
            out.append((row, for_entry(session, row)))
        except Conflict:
            out.append((row, None))
    return out
