"""Collecting witness cosignatures and publishing checkpoints that reached the quorum.

Runs outside every request: the periodic ``translog.cosign`` job, run by a ``govshare worker``
every ``GOVSHARE_LOG_COSIGN_SECONDS`` (kernel/jobs.py), when witnesses are configured.
``publish_once`` is one round: sign the latest head as a checkpoint, POST it with a
consistency proof to every witness at once (C2SP tlog-witness ``add-checkpoint``), and store the
checkpoint with the cosignatures if at least the quorum answered with a valid one. No database
transaction is open while waiting for the network.

A witness answering 409 with another size is caught up: the round retries once with a proof
from the size it reports (a witness that was offline for a while). A 409 that repeats the size
we sent (another root at that size) or a 422 (the proof does not verify against what it
cosigned) is a *refusal*: recorded in ``log_witness`` with the witness's words and logged as a
warning, because an honest log never receives one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import Session, select

from kernel import db, jobs
from kernel.db import utcnow
from kernel.problems import NotFound
from kernel.settings import get_settings
from translog import checkpoints, note, service, tree
from translog import witnesses as witnesses_mod
from translog.models import LogCheckpoint, LogWitness, TreeHead
from translog.witnesses import WitnessConfig

log = logging.getLogger("govshare")
ProofFn = Callable[[int, int], list[bytes]]
_client_lock = threading.Lock()
_clients: dict[float, httpx.Client] = {}


@dataclass
class Outcome:
    name: str
    status: str  # "cosigned", "refused" or "error"
    detail: str = ""
    size: int | None = None  # the witness's size afterwards, when known
    cosignature: note.Signature | None = None


@dataclass
class Round:
    tree_size: int
    quorum: int
    outcomes: list[Outcome] = field(default_factory=list)
    published: bool = False

    @property
    def cosignatures(self) -> list[note.Signature]:
        return [o.cosignature for o in self.outcomes if o.cosignature is not None]


def _client(timeout: float) -> httpx.Client:
    # One pooled client per timeout: keep-alive connections to the witnesses, as the spec asks.
    with _client_lock:
        if timeout not in _clients:
            _clients[timeout] = httpx.Client(timeout=timeout)
        return _clients[timeout]


def submission(old: int, proof: list[bytes], signed: note.Note) -> bytes:
    lines = [f"old {old}\n", *(note.b64(h) + "\n" for h in proof), "\n", signed.render()]
    return "".join(lines).encode()


def ask(witness: WitnessConfig, signed: note.Note, checkpoint: note.Checkpoint, old: int,
        proof_fn: ProofFn, timeout: float) -> Outcome:
    """One witness: add-checkpoint from ``old``, retried once from the size it reports."""
    client = _client(timeout)
    for _attempt in range(2):
        if old > checkpoint.size:
            return Outcome(witness.name, "refused", f"the witness has cosigned size {old}, "
                           f"larger than this checkpoint's {checkpoint.size}", old)
        try:
            proof = proof_fn(old, checkpoint.size)
        except Exception as exc:  # e.g. a size the log never had: this witness only
            return Outcome(witness.name, "error", f"no consistency proof from size {old}: "
                           f"{type(exc).__name__}: {exc}")
        try:
            r = client.post(f"{witness.url}/add-checkpoint",
                            content=submission(old, proof, signed))
        except (httpx.HTTPError, OSError) as exc:
            return Outcome(witness.name, "error", f"unreachable: {type(exc).__name__}: {exc}")
        text = r.text.strip()
        if r.status_code == 200:
            return _cosigned(witness, signed, checkpoint, r.text)
        if r.status_code == 409 and r.headers.get("content-type", "").startswith(
                "text/x.tlog.size") and note._DECIMAL.match(text):
            reported = int(text)
            if reported == old:  # same size as ours, yet a conflict: another root there
                return Outcome(witness.name, "refused", "the witness cosigned another root at "
                               f"size {old}: this checkpoint contradicts it", old)
            old = reported
            continue
        status = "refused" if r.status_code == 422 else "error"
        return Outcome(witness.name, status, f"HTTP {r.status_code}: {text[:300]}")
    return Outcome(witness.name, "error", "the witness's size kept changing")


def _cosigned(witness: WitnessConfig, signed: note.Note, checkpoint: note.Checkpoint,
              body: str) -> Outcome:
    try:
        lines = note.parse_signature_lines(body)
    except note.NoteError as exc:
        return Outcome(witness.name, "error", f"unreadable cosignature: {exc}")
    mine = note.Note(signed.text, lines)
    if witness.name not in mine.verified([witness.verifier]):
        return Outcome(witness.name, "error", "no valid cosignature by the configured key")
    line = next(s for s in lines if s.name == witness.name
                and s.key_id == witness.verifier.key_id)
    return Outcome(witness.name, "cosigned", size=checkpoint.size, cosignature=line)


def collect(signed: note.Note, witnesses: list[WitnessConfig], sizes: dict[str, int],
            proof_fn: ProofFn, timeout: float) -> list[Outcome]:
    """Ask every witness at once; the slowest decides the round's latency."""
    checkpoint = note.parse_checkpoint(signed.text)
    if not witnesses:
        return []
    with ThreadPoolExecutor(max_workers=len(witnesses)) as pool:
        futures = [pool.submit(ask, w, signed, checkpoint, sizes.get(w.name, 0), proof_fn,
                               timeout) for w in witnesses]
        return [f.result() for f in futures]


def _proof(old: int, new: int) -> list[bytes]:
    if old == 0 or old == new:
        return []
    with db.session_scope(write=False) as session:
        return tree.consistency_proof(session, old, new)


def publish_once() -> Round | None:
    """One cosigning round for the latest head; None when there is nothing new to publish."""
    settings = get_settings()
    if not witnesses_mod.witnesses(settings):
        return None  # the latest head is published as it is signed (checkpoints.published)
    with db.session_scope(write=False) as session:
        try:
            head = service.latest_head(session)
        except NotFound:
            return None
        stored = checkpoints.latest_stored(session)
        if stored is not None and stored.tree_size >= head.tree_size:
            return None
        signed = checkpoints.sign(head, settings)
    return submit(signed, head)


def submit(signed: note.Note, head: TreeHead | None = None) -> Round:
    """Ask every witness to cosign ``signed``, record what each answered, and publish it if
    ``head`` is given and the quorum cosigned."""
    settings = get_settings()
    witnesses = witnesses_mod.witnesses(settings)
    with db.session_scope(write=False) as session:
        sizes = {w.name: w.last_size for w in _states(session)}
    checkpoint = note.parse_checkpoint(signed.text)
    result = Round(checkpoint.size, witnesses_mod.quorum(settings),
                   collect(signed, witnesses, sizes, _proof,
                           settings.log_witness_timeout_seconds))
    with db.session_scope(write=True) as session:
        _record(session, result)
        if head is not None and len(result.cosignatures) >= result.quorum:
            result.published = _store(session, head, signed, result.cosignatures)
    return result


def _states(session: Session) -> list[LogWitness]:
    return list(session.exec(select(LogWitness)))


def _record(session: Session, result: Round) -> None:
    now = utcnow()
    for outcome in result.outcomes:
        row = session.get(LogWitness, outcome.name) or LogWitness(name=outcome.name)
        if outcome.size is not None:
            row.last_size = outcome.size
        if outcome.status == "cosigned":
            row.cosigned_at = now
            row.error = row.error_at = None
        elif outcome.status == "refused":
            row.refusal, row.refused_at = outcome.detail, now
            log.warning("witness %s refused the checkpoint of size %d: %s", outcome.name,
                        result.tree_size, outcome.detail)
        else:
            row.error, row.error_at = outcome.detail, now
            log.info("witness %s: %s", outcome.name, outcome.detail)
        session.add(row)


def _store(session: Session, head: TreeHead, signed: note.Note,
           cosignatures: list[note.Signature]) -> bool:
    if session.get(LogCheckpoint, head.tree_size) is not None:
        return False  # another process published this size meanwhile
    final = note.Note(signed.text, [*signed.signatures, *cosignatures])
    session.add(LogCheckpoint(tree_size=head.tree_size, root_hash=head.root_hash,
                              note=final.render(), cosignatures=len(cosignatures)))
    return True


# --- the periodic job -------------------------------------------------------------------------

COSIGN = "translog.cosign"


@jobs.handler(COSIGN, max_attempts=1)
def _cosign(_payload: dict[str, Any]) -> None:
    publish_once()  # a failed round is logged by the job; the next period retries


def declare_schedules() -> None:
    """A cosigning round every ``GOVSHARE_LOG_COSIGN_SECONDS`` in a ``govshare worker``
    (kernel/jobs.py: once per period however many workers run), if witnesses are set."""
    settings = get_settings()
    every = timedelta(seconds=settings.log_cosign_seconds) \
        if witnesses_mod.witnesses(settings) else timedelta(0)
    jobs.every(COSIGN, COSIGN, every)
