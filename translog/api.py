"""HTTP API of the signed access log.

``router`` (under /api/v1): signed tree heads, inclusion and consistency proofs, and entries —
a user's own, or all of them for auditors. ``well_known`` (at the root): the public keys, so
anyone can check heads and proofs without signing in.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select

from kernel.auth import DbSession, Principal, SignedIn, require
from kernel.identity import Department, Role, User
from kernel.problems import Forbidden, NotFound
from kernel.settings import get_settings
from translog import canonical, checkpoints, keys, receipts, service, tilepath, tiles
from translog.models import LogEntry, LogWitness, TreeHead
from translog.witnesses import quorum, witnesses

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
    vkey: str = Field(description="C2SP signed-note verifier key of the checkpoints.")
    created_at: str
    retired_at: str | None
    status: str


class KeysOut(BaseModel):
    origin: str = Field(description="The checkpoint origin (and note key name) of this log.")
    keys: list[PublicKeyOut]
    witnesses: list[str] = Field(description="Verifier keys of the witnesses whose "
                                 "cosignatures a published checkpoint carries.")
    quorum: int = Field(description="Cosignatures a published checkpoint carries at least.")


class ReadOut(BaseModel):
    seq: int
    time: str
    type: str = Field(description="What was read: resource.previewed, quality.samples_viewed, "
                      "delivery.link_issued, delivery.downloaded or grant.queried.")
    resource: str
    reader: str | None = Field(description="The reader's username (null for the system).")
    reader_department: str | None
    entry: EntryBody


class WitnessOut(BaseModel):
    name: str
    vkey: str
    url: str
    last_size: int = Field(description="The tree size this witness last cosigned.")
    cosigned_at: str | None
    refusal: str | None = Field(description="Its last refusal: a checkpoint it would not "
                                "cosign because it contradicts one it cosigned before.")
    refused_at: str | None
    error: str | None
    error_at: str | None


class WitnessesOut(BaseModel):
    quorum: int
    published_size: int | None
    witnesses: list[WitnessOut]


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


# --- C2SP checkpoint and tiles (at the site root, like the keys) -------------------------------

NOTE_TYPE = "text/plain; charset=utf-8"
# The checkpoint changes with every batch; tiles never change once they exist.
CHECKPOINT_CACHE = "no-cache, max-age=0"
TILE_CACHE = "public, max-age=31536000, immutable"


@well_known.get("/checkpoint", response_class=Response,
                responses={200: {"content": {NOTE_TYPE: {}}}})
def checkpoint(session: DbSession) -> Response:
    """The latest published C2SP checkpoint (c2sp.org/tlog-checkpoint), a signed note carrying
    the witnesses' cosignatures; no sign-in."""
    _, signed = checkpoints.published(session)
    return Response(signed, media_type=NOTE_TYPE, headers={"Cache-Control": CHECKPOINT_CACHE})


def _tile(session: DbSession, path: str, entries: bool) -> Response:
    try:
        tile = tilepath.parse(path)
    except ValueError as exc:
        raise NotFound(f"No such tile: {exc} (c2sp.org/tlog-tiles).",
                       key="problem.log_tile_path", params={"reason": str(exc)}) from None
    if tile.is_entries != entries:
        raise NotFound("Entry bundles are at /tile/entries/<N>.", key="problem.log_tile_entries")
    try:
        data = tiles.read(session, tile)
    except tiles.TileMissing:
        raise NotFound(f"The log has no tile {tile.path()} (yet): fetch the checkpoint and "
                       "only the tiles its size implies.", key="problem.log_tile_missing",
                       params={"path": tile.path()}) from None
    cache = TILE_CACHE.replace("public", "private") if entries else TILE_CACHE
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": cache})


@well_known.get("/tile/entries/{tile_path:path}", response_class=Response)
def entry_bundle(session: DbSession, _: Auditor,
                 tile_path: Annotated[str, Path(description="<N>[.p/<W>]")]) -> Response:
    """Entry bundles (auditors: entries say who did what): each entry's canonical bytes
    prefixed with a big-endian uint16 length."""
    return _tile(session, "entries/" + tile_path, entries=True)


@well_known.get("/tile/{tile_path:path}", response_class=Response)
def hash_tile(session: DbSession,
              tile_path: Annotated[str, Path(description="<L>/<N>[.p/<W>]")]) -> Response:
    """Merkle tree tiles (c2sp.org/tlog-tiles): 256 hashes, or W in a partial tile; no
    sign-in (hashes only), immutable."""
    return _tile(session, tile_path, entries=False)


# --- witnesses and receipts -------------------------------------------------------------------

def _time(moment: Any) -> str | None:
    return canonical.format_time(moment) if moment else None


@router.get("/witnesses", response_model=WitnessesOut)
def witness_status(session: DbSession, _: SignedIn) -> WitnessesOut:
    """The configured witnesses, the size each last cosigned, and any refusal they reported."""
    stored = checkpoints.latest_stored(session)
    out = []
    for w in witnesses():
        row = session.get(LogWitness, w.name) or LogWitness(name=w.name)
        out.append(WitnessOut(name=w.name, vkey=w.verifier.vkey, url=w.url,
                              last_size=row.last_size, cosigned_at=_time(row.cosigned_at),
                              refusal=row.refusal, refused_at=_time(row.refused_at),
                              error=row.error, error_at=_time(row.error_at)))
    return WitnessesOut(quorum=quorum(), published_size=stored.tree_size if stored else None,
                        witnesses=out)


@router.get("/receipts/{seq}", response_class=Response,
            responses={200: {"content": {NOTE_TYPE: {}}}})
def receipt(seq: int, session: DbSession, who: SignedIn) -> Response:
    """A C2SP tlog-proof that entry ``seq`` is in the published, cosigned checkpoint (the
    entry's own actor, members of its department, and auditors)."""
    row = service.get_entry(session, seq)
    if Role.auditor not in who.roles and row.actor_user_id != who.user_id \
            and row.actor_department_id != who.department_id:
        raise Forbidden("Receipts are for the entry's actor, their department and auditors.",
                        key="problem.log_receipt_forbidden")
    return Response(receipts.for_entry(session, row), media_type=NOTE_TYPE)


# --- reads on record --------------------------------------------------------------------------

@router.get("/reads", response_model=list[ReadOut])
def reads(session: DbSession, who: SignedIn, after_seq: AfterSeq = -1, limit: Limit = 100,
          department: Annotated[str | None, Query(
              max_length=16, description="Provider department code; default: yours. Other "
              "departments: auditors only.")] = None) -> list[ReadOut]:
    """Who read the department's resources and when, from the log: previews of raw rows,
    failing-row samples, download links, downloads and API queries."""
    code = department or who.department_code
    if code != who.department_code and Role.auditor not in who.roles:
        raise Forbidden("A department lists the reads of its own resources; auditors any.",
                        key="problem.log_reads_forbidden")
    prefix = f"{get_settings().region_code}-{code}-"
    rows = service.list_reads(session, prefix, after_seq=after_seq, limit=limit)
    users = {u.id: u for u in session.exec(select(User).where(
        col(User.id).in_({r.actor_user_id for r in rows if r.actor_user_id is not None})))}
    depts = {d.id: d.code for d in session.exec(select(Department).where(
        col(Department.id).in_({r.actor_department_id for r in rows
                                if r.actor_department_id is not None})))}
    out = []
    for row in rows:
        user = users.get(row.actor_user_id)
        out.append(ReadOut(seq=row.seq, time=canonical.format_time(row.time),
                           type=row.event_type, resource=row.subjects["resource"],
                           reader=user.username if user else None,
                           reader_department=depts.get(row.actor_department_id)
                           if row.actor_department_id is not None else None,
                           entry=EntryBody.model_validate(service.entry_object(row))))
    return out
