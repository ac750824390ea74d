"""HTTP API of the signed access log.

``router`` (under /api/v1): signed tree heads, inclusion and consistency proofs, and entries —
a user's own, or all of them for auditors. ``well_known`` (at the root): the public keys, so
anyone can check heads and proofs without signing in.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from kernel.auth import DbSession, Principal, SignedIn, require
from kernel.identity import Role
from translog import keys, service
from translog.models import LogEntry, TreeHead

router = APIRouter(prefix="/log", tags=["access log"])
well_known = APIRouter(tags=["access log"])
Auditor = Annotated[Principal, Depends(require(Role.auditor))]
WELL_KNOWN_KEYS = "/.well-known/govshare-log-keys"


class TreeHeadOut(BaseModel):
    tree_size: int
    root_hash: str = Field(description="Hex SHA-256 Merkle tree hash (RFC 9162).")
    time: str = Field(description="RFC 3339 UTC, exactly as signed.")
    key_id: str
    signature: str = Field(description="Base64 Ed25519 signature over the canonical head "
                           "(docs/access-log.md).")


class ActorOut(BaseModel):
    user: int | None
    department: int | None
    kind: str


class EntryBody(BaseModel):
    """The canonical entry object: its RFC 8785 JSON bytes are the Merkle leaf."""

    v: int
    seq: int
    time: str
    type: str
    actor: ActorOut
    subjects: dict[str, str]
    payload_sha256: str


class EntryOut(BaseModel):
    entry: EntryBody
    leaf_hash: str = Field(description="Hex SHA-256(0x00 ‖ canonical entry bytes).")


class InclusionProofOut(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str] = Field(description="Hex hashes, leaf side first (RFC 9162 §2.1.3).")
    tree_head: TreeHeadOut


class ConsistencyProofOut(BaseModel):
    first: int
    second: int
    proof: list[str] = Field(description="Hex hashes (RFC 9162 §2.1.4).")
    first_head: TreeHeadOut
    second_head: TreeHeadOut


class PublicKeyOut(BaseModel):
    key_id: str
    algorithm: str
    public_key: str = Field(description="Base64 of the 32-byte raw Ed25519 public key.")
    public_key_pem: str
    created_at: str
    retired_at: str | None
    status: str


class KeysOut(BaseModel):
    keys: list[PublicKeyOut]


def _head(head: TreeHead) -> TreeHeadOut:
    return TreeHeadOut(**service.head_record(head))


def _entry(row: LogEntry) -> EntryOut:
    obj = service.entry_object(row)
    leaf = service.leaf_hash(row).hex()
    return EntryOut(entry=EntryBody.model_validate(obj), leaf_hash=leaf)


Limit = Annotated[int, Query(ge=1, le=1000)]
AfterSeq = Annotated[int, Query(ge=-1, description="Return entries after this sequence number.")]


# --- heads and proofs -------------------------------------------------------------------------

@router.get("/tree-heads/latest", response_model=TreeHeadOut)
def latest_tree_head(session: DbSession, _: SignedIn) -> TreeHeadOut:
    return _head(service.latest_head(session))


@router.get("/tree-heads", response_model=list[TreeHeadOut])
def list_tree_heads(session: DbSession, _: SignedIn,
                    after_size: Annotated[int, Query(ge=0)] = 0,
                    limit: Limit = 100) -> list[TreeHeadOut]:
    """Signed heads in size order (one per committed batch), for monitors that follow the log."""
    return [_head(h) for h in service.list_heads(session, after_size=after_size, limit=limit)]


@router.get("/tree-heads/{tree_size}", response_model=TreeHeadOut)
def tree_head_at(tree_size: int, session: DbSession, _: SignedIn) -> TreeHeadOut:
    return _head(service.head_at(session, tree_size))


@router.get("/proofs/inclusion", response_model=InclusionProofOut)
def inclusion_proof(session: DbSession, _: SignedIn,
                    seq: Annotated[int, Query(ge=0, description="The entry's sequence number.")],
                    tree_size: Annotated[int | None, Query(
                        ge=1, description="A signed head's size; default: the latest.")] = None,
                    ) -> InclusionProofOut:
    """The audit path proving entry ``seq`` is in the signed tree of ``tree_size``."""
    head = service.latest_head(session) if tree_size is None else service.head_at(session,
                                                                                   tree_size)
    path = service.inclusion_proof(session, seq, head.tree_size)
    leaf = service.leaf_hash(service.get_entry(session, seq)).hex()
    return InclusionProofOut(seq=seq, tree_size=head.tree_size, leaf_hash=leaf,
                             audit_path=[h.hex() for h in path], tree_head=_head(head))


@router.get("/proofs/consistency", response_model=ConsistencyProofOut)
def consistency_proof(session: DbSession, _: SignedIn,
                      first: Annotated[int, Query(ge=1)],
                      second: Annotated[int | None, Query(
                          ge=1, description="Default: the latest signed size.")] = None,
                      ) -> ConsistencyProofOut:
    """Proof that the signed tree of size ``first`` is a prefix of the one of ``second``."""
    second_head = service.latest_head(session) if second is None else service.head_at(session,
                                                                                      second)
    proof = service.consistency_proof(session, first, second_head.tree_size)
    return ConsistencyProofOut(first=first, second=second_head.tree_size,
                               proof=[h.hex() for h in proof],
                               first_head=_head(service.head_at(session, first)),
                               second_head=_head(second_head))


# --- entries ----------------------------------------------------------------------------------

@router.get("/entries/mine", response_model=list[EntryOut])
def my_entries(session: DbSession, who: SignedIn, after_seq: AfterSeq = -1,
               limit: Limit = 100) -> list[EntryOut]:
    """Entries recording your own actions, oldest first."""
    rows = service.list_entries(session, after_seq=after_seq, limit=limit,
                                actor_user_id=who.user_id)
    return [_entry(r) for r in rows]


@router.get("/entries", response_model=list[EntryOut])
def all_entries(session: DbSession, _: Auditor, after_seq: AfterSeq = -1, limit: Limit = 100,
                type: Annotated[str | None, Query(max_length=64)] = None,
                user: Annotated[int | None, Query(description="Actor user id.")] = None,
                department: Annotated[int | None, Query(description="Actor department id.")]
                = None) -> list[EntryOut]:
    """Every entry's metadata (auditors): digests and ids only, never payloads."""
    rows = service.list_entries(session, after_seq=after_seq, limit=limit, event_type=type,
                                actor_user_id=user, department_id=department)
    return [_entry(r) for r in rows]


# --- keys -------------------------------------------------------------------------------------

def _keys(session: DbSession) -> dict[str, Any]:
    return keys.key_document(keys.all_keys(session))


@well_known.get(WELL_KNOWN_KEYS, response_model=KeysOut)
def published_keys(session: DbSession) -> dict[str, Any]:
    """Every key id and Ed25519 public key that has signed tree heads, retired ones included."""
    return _keys(session)


@router.get("/keys", response_model=KeysOut)
def log_keys(session: DbSession, _: SignedIn) -> dict[str, Any]:
    """The same document as /.well-known/govshare-log-keys."""
    return _keys(session)
