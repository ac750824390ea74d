"""The Merkle tree in the database: the log-state lock and the table of perfect-subtree hashes.

Appends write each perfect subtree once, when it is completed; roots and proofs read the
O(log n) subtrees ``translog.merkle`` plans, in one query.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, insert, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from kernel.db import utcnow
from translog import merkle
from translog.merkle import Frontier, Node
from translog.models import LogState, LogSubtree

STATE_ID = 1
# Keep each IN list well under SQLite's bound-parameter limit (two parameters per node).
_LOOKUP_CHUNK = 400
_INSERT_SUBTREE = insert(LogSubtree.__table__)  # type: ignore[attr-defined]


def lock_state(session: Session) -> LogState:
    """Lock the single log-state row for the rest of the transaction, creating it if needed.

    PostgreSQL: SELECT … FOR UPDATE queues every other appender behind this transaction.
    SQLite: the engine opens every transaction with BEGIN IMMEDIATE, which already holds the
    database write lock, so FOR UPDATE is not rendered there.
    """
    query = (select(LogState).where(LogState.id == STATE_ID).with_for_update()
             .execution_options(populate_existing=True))
    state = session.exec(query).first()
    if state is None:
        _create_state_row(session)
        state = session.exec(query).one()
    return state


def _create_state_row(session: Session) -> None:
    # Two workers may both find no row; ON CONFLICT DO NOTHING lets the loser carry on.
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = upsert(LogState).values(
        id=STATE_ID, tree_size=0, root_hash=merkle.EMPTY_ROOT, updated_at=utcnow()
    ).on_conflict_do_nothing(index_elements=["id"])
    session.execute(statement)


def committed_size(session: Session) -> int:
    state = session.get(LogState, STATE_ID)
    return state.tree_size if state else 0


def fetch(session: Session, nodes: Iterable[Node]) -> dict[Node, bytes]:
    """Hashes of the given perfect subtrees; raises if one is missing (a damaged table)."""
    wanted = sorted(set(nodes))
    found: dict[Node, bytes] = {}
    for i in range(0, len(wanted), _LOOKUP_CHUNK):
        rows = session.exec(select(LogSubtree).where(_matching(wanted[i:i + _LOOKUP_CHUNK])))
        found.update(((row.level, row.idx), row.hash) for row in rows)
    missing = [node for node in wanted if node not in found]
    if missing:
        raise RuntimeError(f"log_subtree lacks the subtree(s) {missing[:5]}: the log table is "
                           "damaged; restore the database from backup")
    return found


def _matching(nodes: list[Node]) -> ColumnElement[bool]:
    # (level = ? AND idx IN (…)) OR …, one term per level: SQLite answers a row-value
    # "(level, idx) IN (…)" with a full table scan, but this form with primary-key searches.
    by_level: dict[int, list[int]] = {}
    for level, idx in nodes:
        by_level.setdefault(level, []).append(idx)
    return or_(*(and_(col(LogSubtree.level) == level, col(LogSubtree.idx).in_(idxs))
                 for level, idxs in by_level.items()))


def _lookup(hashes: dict[Node, bytes]) -> merkle.Lookup:
    return lambda level, index: hashes[(level, index)]


def load_frontier(session: Session, size: int) -> Frontier:
    nodes = merkle.decompose(0, size)
    hashes = fetch(session, nodes)
    return Frontier(size, [hashes[node] for node in nodes])


def store(session: Session, completed: Iterable[tuple[int, int, bytes]]) -> None:
    # A Core insert, executed now: ORM objects cost more than the hashing itself, and rows
    # written at once follow savepoints exactly (a rolled-back savepoint takes them along).
    rows = [{"level": level, "idx": idx, "hash": h} for level, idx, h in completed]
    session.connection().execute(_INSERT_SUBTREE, rows)


def root(session: Session, size: int) -> bytes:
    if size == 0:
        return merkle.EMPTY_ROOT
    return merkle.range_hash(0, size, _lookup(fetch(session, merkle.decompose(0, size))))


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    ranges = merkle.inclusion_ranges(index, size)
    lookup = _lookup(fetch(session, merkle.nodes_for(ranges)))
    return [merkle.range_hash(start, end, lookup) for start, end in ranges]


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    ranges = merkle.consistency_ranges(first, second)
    lookup = _lookup(fetch(session, merkle.nodes_for(ranges)))
    return [merkle.range_hash(start, end, lookup) for start, end in ranges]


def leaf(session: Session, index: int) -> bytes:
    return fetch(session, [(0, index)])[(0, index)]
