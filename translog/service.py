"""Appending to the signed access log, signing tree heads, and reading entries, heads and proofs.

Batching: the first append in a transaction locks the log-state row and loads the tree's
frontier; later appends in that transaction reuse it. A ``before_commit`` hook on every
SQLAlchemy session then signs exactly one tree head for the batch, inside the same transaction,
so entries and their head commit (or roll back) together and no committed entry is ever
unsigned. A released savepoint counts as a commit point too (it signs the appends made so far);
a rolled-back savepoint makes the batch reload its size and frontier from the database.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, insert
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from kernel import crashpoints, events
from kernel.db import utcnow
from kernel.events import Actor, Event
from kernel.problems import Invalid, NotFound
from kernel.settings import get_settings
from translog import canonical, keys, merkle, tree
from translog.merkle import Frontier
from translog.models import LogEntry, LogKey, LogState, TreeHead

_BATCH = "govshare.access_log.batch"
_SIGNED = "govshare.access_log.head_signed"
# Set after a transaction that signed a head commits: wakes the cosigner (translog.cosigner).
head_committed = threading.Event()
SYSTEM = Actor(user_id=None, department_id=None, kind="system")
_INSERT_ENTRY = insert(LogEntry.__table__)  # type: ignore[attr-defined]


@dataclass
class _Batch:
    """The appends of one transaction that still await their signed head."""

    state: LogState
    frontier: Frontier
    stale: bool = False  # a savepoint rolled back: reload size and frontier before use


# --- appending --------------------------------------------------------------------------------

def subscribe() -> None:
    """Log every published domain event, in the publisher's transaction."""
    events.subscribe(_on_event)


def _on_event(session: Session, event: Event) -> None:
    append(session, event)


def append(session: Session, event: Event) -> int:
    """Append one entry for ``event`` and return its sequence number; the entry's head is
    signed when the transaction commits."""
    batch = _batch(session)
    now = utcnow()
    seq = batch.frontier.size
    obj = canonical.entry_object(
        seq=seq, time=canonical.format_time(now), type=event.type, user=event.actor.user_id,
        department=event.actor.department_id, kind=event.actor.kind, subjects=event.subjects,
        payload_sha256=canonical.payload_digest(event.payload),
    )
    # Core inserts, executed at once (see tree.store): about ten times cheaper than ORM rows.
    session.connection().execute(_INSERT_ENTRY, [{
        "seq": seq, "time": now, "event_type": event.type, "actor_user_id": event.actor.user_id,
        "actor_department_id": event.actor.department_id, "actor_kind": event.actor.kind,
        "subjects": obj["subjects"], "payload_sha256": obj["payload_sha256"],
    }])
    tree.store(session, batch.frontier.append(merkle.leaf_hash(canonical.entry_bytes(obj))))
    return seq


def _batch(session: Session) -> _Batch:
    batch: _Batch | None = session.info.get(_BATCH)
    if batch is None:
        state = tree.lock_state(session)
        batch = _Batch(state, tree.load_frontier(session, state.tree_size))
        session.info[_BATCH] = batch
    elif batch.stale:
        _reload(session, batch)
    return batch


def _reload(session: Session, batch: _Batch) -> None:
    batch.state = tree.lock_state(session)  # the savepoint may have held the first lock
    last = session.exec(select(func.max(LogEntry.seq))).one()
    size = batch.state.tree_size if last is None else last + 1
    batch.frontier = tree.load_frontier(session, size)
    batch.stale = False


def _sign_pending_head(session: OrmSession) -> None:
    batch: _Batch | None = session.info.pop(_BATCH, None)
    if batch is None:
        return
    assert isinstance(session, Session)
    if batch.stale:
        _reload(session, batch)
    if batch.frontier.size != batch.state.tree_size:
        sign_head(session, batch.state, batch.frontier.size, batch.frontier.root())
        session.info[_SIGNED] = True


def _after_commit(session: OrmSession) -> None:
    if session.info.pop(_SIGNED, False):
        head_committed.set()


def sign_head(session: Session, state: LogState, size: int, root: bytes) -> TreeHead:
    """Sign (size, root) with the active key, creating the key on first use."""
    settings = get_settings()
    key = keys.active_key(session) or keys.create_key(session, settings)
    private = keys.load_private_key(settings, key.key_id)
    now = utcnow()
    message = canonical.head_bytes(tree_size=size, root_hash=root.hex(),
                                   time=canonical.format_time(now), key_id=key.key_id)
    head = TreeHead(tree_size=size, root_hash=root, time=now, key_id=key.key_id,
                    signature=private.sign(message))
    state.tree_size, state.root_hash, state.updated_at = size, root, now
    session.add_all([head, state])
    crashpoints.reach("log.head_signed")  # in before_commit: the head is signed, COMMIT not sent
    return head


def _on_soft_rollback(session: OrmSession, previous: SessionTransaction) -> None:
    if previous.nested:
        batch: _Batch | None = session.info.get(_BATCH)
        if batch is not None:
            batch.stale = True
    else:
        session.info.pop(_BATCH, None)
        session.info.pop(_SIGNED, None)


def _on_transaction_end(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # also covers Session.close() without commit or rollback
        session.info.pop(_BATCH, None)


def _install_hooks() -> None:
    for name, fn in (("before_commit", _sign_pending_head),
                     ("after_soft_rollback", _on_soft_rollback),
                     ("after_commit", _after_commit),
                     ("after_transaction_end", _on_transaction_end)):
        if not sa_event.contains(OrmSession, name, fn):
            sa_event.listen(OrmSession, name, fn)


_install_hooks()


# --- keys -------------------------------------------------------------------------------------

def ensure_key(session: Session) -> LogKey:
    """The active signing key, created (under the log lock) if there is none yet."""
    tree.lock_state(session)
    return keys.active_key(session) or keys.create_key(session, get_settings())


def rotate_key(session: Session, actor: Actor = SYSTEM) -> LogKey:
    """Retire the active key and start a new one; the rotation is itself a log entry.

    The head of this transaction is signed with the new key; every earlier head keeps its
    old key id, and the old public key stays in ``log_key`` and on the well-known endpoint.
    """
    _batch(session)  # take the log lock before reading the active key
    old = keys.active_key(session)
    if old is not None:
        old.retired_at = utcnow()
        session.add(old)
        session.flush()
    new = keys.create_key(session, get_settings())
    subjects = {"key": new.key_id} | ({"previous_key": old.key_id} if old else {})
    append(session, Event(type="log.key_rotated", actor=actor, subjects=subjects,
                          payload={"public_key": base64.b64encode(new.public_key).decode()}))
    return new


# --- reading ----------------------------------------------------------------------------------

def entry_object(row: LogEntry) -> dict[str, Any]:
    """The canonical entry object of a stored row (its canonical bytes are the leaf)."""
    return canonical.entry_object(
        seq=row.seq, time=canonical.format_time(row.time), type=row.event_type,
        user=row.actor_user_id, department=row.actor_department_id, kind=row.actor_kind,
        subjects=row.subjects, payload_sha256=row.payload_sha256,
    )


def leaf_hash(row: LogEntry) -> bytes:
    return merkle.leaf_hash(canonical.entry_bytes(entry_object(row)))


def list_entries(session: Session, *, after_seq: int = -1, limit: int = 100,
                 actor_user_id: int | None = None, event_type: str | None = None,
                 department_id: int | None = None) -> list[LogEntry]:
    query = select(LogEntry).where(col(LogEntry.seq) > after_seq)
    if actor_user_id is not None:
        query = query.where(LogEntry.actor_user_id == actor_user_id)
    if department_id is not None:
        query = query.where(LogEntry.actor_department_id == department_id)
    if event_type is not None:
        query = query.where(LogEntry.event_type == event_type)
    return list(session.exec(query.order_by(col(LogEntry.seq)).limit(limit)))


def get_entry(session: Session, seq: int) -> LogEntry:
    row = session.get(LogEntry, seq)
    if row is None:
        size = tree.committed_size(session)
        if not size:
            raise NotFound("The access log has no entries yet.", key="problem.log.empty")
        last = size - 1
        raise NotFound(f"The access log has no entry {seq}; its entries are numbered from 0 to "
                       f"{last}.", key="problem.log.no_entry", params={"seq": seq, "last": last})
    return row


def latest_head(session: Session) -> TreeHead:
    head = session.exec(select(TreeHead).order_by(col(TreeHead.tree_size).desc())).first()
    if head is None:
        raise NotFound("The access log is empty: no tree head has been signed yet.")
    return head


def head_at(session: Session, size: int) -> TreeHead:
    head = session.get(TreeHead, size)
    if head is None:
        raise NotFound(f"No signed tree head at size {size}. {_nearest_heads(session, size)}",
                       key="problem.log.no_head_at_size",
                       params={"size": size, "nearest": _nearest_heads(session, size)})
    return head


def _nearest_heads(session: Session, size: int) -> str:
    below = session.exec(select(func.max(TreeHead.tree_size))
                         .where(col(TreeHead.tree_size) < size)).one()
    above = session.exec(select(func.min(TreeHead.tree_size))
                         .where(col(TreeHead.tree_size) > size)).one()
    near = [str(s) for s in (below, above) if s is not None]
    if not near:
        return "The log has no signed heads yet."
    return "Heads are signed once per batch of entries; the nearest sizes are " \
        + " and ".join(near) + "."


def list_heads(session: Session, *, after_size: int = 0, limit: int = 100) -> list[TreeHead]:
    query = select(TreeHead).where(col(TreeHead.tree_size) > after_size)
    return list(session.exec(query.order_by(col(TreeHead.tree_size)).limit(limit)))


def inclusion_proof(session: Session, seq: int, tree_size: int) -> list[bytes]:
    """Audit path of entry ``seq`` in the tree of a signed head of ``tree_size``."""
    head_at(session, tree_size)
    if not 0 <= seq < tree_size:
        raise Invalid(f"Entry {seq} is not in the tree of size {tree_size}: choose a signed head "
                      f"whose size is greater than {seq}.",
                      key="problem.log.entry_not_in_tree",
                      params={"seq": seq, "tree_size": tree_size})
    return tree.inclusion_proof(session, seq, tree_size)


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    """Proof that the signed tree of size ``first`` is a prefix of the one of size ``second``."""
    if not 0 < first <= second:
        raise Invalid(f"A consistency proof needs 0 < first <= second; got first={first}, "
                      f"second={second}.",
                      key="problem.log.consistency_bounds",
                      params={"first": first, "second": second})
    head_at(session, first)
    head_at(session, second)
    return tree.consistency_proof(session, first, second)


def head_record(head: TreeHead) -> dict[str, Any]:
    """A head as exported and served: the signed fields plus the base64 signature."""
    return {
        "tree_size": head.tree_size,
        "root_hash": head.root_hash.hex(),
        "time": canonical.format_time(head.time),
        "key_id": head.key_id,
        "signature": base64.b64encode(head.signature).decode("ascii"),
    }


# --- reads on record --------------------------------------------------------------------------

# Entries that record someone reading data (raw or delivered rows, failing-row samples).
READ_TYPES = ("resource.previewed", "quality.samples_viewed", "delivery.link_issued",
              "delivery.downloaded", "grant.queried")


def list_reads(session: Session, resource_prefix: str, *, after_seq: int = -1,
               limit: int = 100) -> list[LogEntry]:
    """Read entries whose ``resource`` subject starts with ``resource_prefix`` (resource codes
    start with ``<region>-<provider department code>-``), oldest first."""
    resource = col(LogEntry.subjects)["resource"].as_string()
    query = (select(LogEntry).where(col(LogEntry.seq) > after_seq)
             .where(col(LogEntry.event_type).in_(READ_TYPES))
             .where(resource.startswith(resource_prefix, autoescape=True))
             .order_by(col(LogEntry.seq)).limit(limit))
    return list(session.exec(query))
