"""``govshare witness``: a small C2SP tlog-witness (c2sp.org/tlog-witness) any department, the
audit office or a neighbouring city can run beside (not inside) govshare.

It follows logs named by their verifier keys (the key name is the checkpoint origin), keeps the
latest checkpoint it cosigned for each in its own data directory (one JSON file per log, written
to a temporary file, fsynced and renamed), and answers ``POST /add-checkpoint``: it cosigns a
new checkpoint (tlog-cosignature/v1) only when a consistency proof shows that it extends the one
it cosigned before. A checkpoint that contradicts a cosigned one — the same size with another
root, or a proof that does not verify against the recorded root — is refused and kept under
``evidence/`` with the checkpoint it contradicts: a split view becomes evidence anyone can check
with the log's public key. ``GET /evidence`` lists it; ``GET /`` says what the witness follows.

Imports no database and nothing of govshare beyond ``translog.note`` and ``translog.merkle``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from kernel import storage
from translog import merkle, note

log = logging.getLogger("govshare.witness")
SIZE_TYPE = "text/x.tlog.size"
MAX_BODY = 64 * 1024
MAX_PROOF_LINES = 63


class Refused(Exception):
    def __init__(self, status: int, detail: str, body: str | None = None,
                 media_type: str = "text/plain; charset=utf-8") -> None:
        super().__init__(detail)
        self.status, self.detail, self.body, self.media_type = status, detail, body, media_type


def atomic_write(path: Path, data: bytes) -> None:
    """Write, fsync, rename, fsync the directory: a crash leaves the old file or the new one."""
    storage.publish_bytes(path, data, mode=0o600)


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    """The witness's Ed25519 key (``witness-key.pem``, mode 0600), created on first use.

    Encrypted with ``GOVSHARE_WITNESS_PASSPHRASE`` when it is set.
    """
    path = data_dir / "witness-key.pem"
    passphrase = os.environ.get("GOVSHARE_WITNESS_PASSPHRASE", "").encode() or None
    if path.exists():
        private = serialization.load_pem_private_key(path.read_bytes(), passphrase)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 key")
        return private
    private = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, private.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8, encryption))
    return private


def read_evidence(data_dir: Path) -> list[dict[str, Any]]:
    """The refused, contradicting checkpoints recorded in a witness's directory, oldest first."""
    folder = data_dir / "evidence"
    if not folder.exists():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


@dataclass(frozen=True)
class Submission:
    old_size: int
    proof: list[bytes]
    note_text: str


def parse_submission(body: bytes) -> Submission:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the request body is not UTF-8") from None
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise Refused(400, "the body is an old size line, proof lines, a blank line, then the "
                      "checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old ") or not note._DECIMAL.match(lines[0][4:]):
        raise Refused(400, "the first line must be 'old <size>' in decimal")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refused(400, f"at most {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = [note.unb64(line, "a proof line") for line in lines[1:]]
    except note.NoteError as exc:
        raise Refused(400, str(exc)) from None
    if any(len(h) != 32 for h in proof):
        raise Refused(400, "each proof line is a base64 SHA-256 hash")
    return Submission(int(lines[0][4:]), proof, checkpoint)


class Witness:
    """The witness's state: its key, the logs it follows, the latest cosigned checkpoints."""

    def __init__(self, data_dir: Path, name: str, logs: list[note.Verifier]) -> None:
        self.data_dir = data_dir
        self.name = note.check_name(name)
        self.private = load_or_create_key(data_dir)
        self.verifier = note.Verifier(name, note.COSIGNATURE_V1, note.raw_public(self.private))
        # origin -> its trusted keys: several after a key rotation (old and new both sign)
        self.logs: dict[str, list[note.Verifier]] = {}
        for v in logs:
            self.logs.setdefault(v.name, []).append(v)
        self._lock = threading.Lock()  # check-then-persist is atomic (the spec's race)

    # --- state files ---
    def _state_path(self, origin: str) -> Path:
        return self.data_dir / "state" / (hashlib.sha256(origin.encode()).hexdigest()[:32]
                                          + ".json")

    def state(self, origin: str) -> dict[str, Any] | None:
        path = self._state_path(origin)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One thread at a time in this process, and one process at a time on this directory.
        with self._lock:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _record_evidence(self, reason: str, submitted: str, cosigned: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        record = {"time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "reason": reason,
                  "submitted": submitted, "cosigned": cosigned.get("checkpoint")}
        digest = hashlib.sha256(submitted.encode()).hexdigest()[:16]
        atomic_write(self.data_dir / "evidence" / f"{now:%Y%m%dT%H%M%S%f}-{digest}.json",
                     json.dumps(record, ensure_ascii=False, indent=1).encode())
        log.warning("witness %s refused a checkpoint: %s", self.name, reason)

    def evidence(self) -> list[dict[str, Any]]:
        return read_evidence(self.data_dir)

    # --- the protocol ---
    def add_checkpoint(self, body: bytes) -> str:
        """Handle one add-checkpoint body; returns the cosignature line or raises Refused."""
        sub = parse_submission(body)
        try:
            signed = note.parse_note(sub.note_text)
            checkpoint = note.parse_checkpoint(signed.text)
        except note.NoteError as exc:
            raise Refused(400, f"not a checkpoint: {exc}") from None
        log_keys = self.logs.get(checkpoint.origin)
        if log_keys is None:
            raise Refused(404, f"this witness does not follow the log {checkpoint.origin!r}")
        if checkpoint.origin not in signed.verified(log_keys):
            raise Refused(403, "no valid signature by the log's key")
        if sub.old_size > checkpoint.size:
            raise Refused(400, f"old size {sub.old_size} is above the checkpoint's size "
                          f"{checkpoint.size}")
        with self._locked():
            state = self.state(checkpoint.origin)
            size = state["size"] if state else 0
            if sub.old_size != size:
                raise Refused(409, "old size does not match", f"{size}\n", SIZE_TYPE)
            if state is not None:
                self._check_consistency(state, sub, checkpoint, sub.note_text)
            elif sub.proof:
                raise Refused(400, "the proof must be empty when the old size is zero")
            timestamp = int(time.time())
            cosignature = note.cosign(self.private, self.name, signed.text, timestamp)
            signed.signatures = [s for s in signed.signatures if s.name != self.name]
            signed.signatures.append(cosignature)
            atomic_write(self._state_path(checkpoint.origin), json.dumps({
                "origin": checkpoint.origin, "size": checkpoint.size,
                "root_hash": note.b64(checkpoint.root_hash), "checkpoint": signed.render(),
            }, ensure_ascii=False).encode())
        return cosignature.line()

    def _check_consistency(self, state: dict[str, Any], sub: Submission,
                           checkpoint: note.Checkpoint, submitted: str) -> None:
        old_root = note.unb64(state["root_hash"], "the stored root")
        if checkpoint.size == state["size"]:
            if checkpoint.root_hash != old_root or sub.proof:
                self._record_evidence(
                    f"a checkpoint of size {checkpoint.size} with another root than the one "
                    "this witness cosigned (a split view)", submitted, state)
                raise Refused(409, "this witness cosigned another root at this size",
                              f"{state['size']}\n", SIZE_TYPE)
            return
        if not merkle.verify_consistency(state["size"], checkpoint.size, old_root,
                                         checkpoint.root_hash, sub.proof):
            self._record_evidence(
                f"no valid consistency proof from the cosigned size {state['size']} to "
                f"{checkpoint.size} (the log may have rewritten its history)", submitted, state)
            raise Refused(422, "the consistency proof does not verify against the checkpoint "
                          "this witness cosigned")


def create_app(witness: Witness) -> FastAPI:
    app = FastAPI(title=f"govshare witness {witness.name}", docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("request body too large\n", status_code=413)
        try:
            line = witness.add_checkpoint(body)
        except Refused as refused:
            return Response(refused.body if refused.body is not None else refused.detail + "\n",
                            status_code=refused.status, media_type=refused.media_type)
        return PlainTextResponse(line)

    @app.get("/")
    def info() -> JSONResponse:
        logs = []
        for origin, verifiers in witness.logs.items():
            state = witness.state(origin)
            logs.append({"origin": origin, "vkeys": [v.vkey for v in verifiers],
                         "size": state["size"] if state else 0})
        return JSONResponse({"name": witness.name, "vkey": witness.verifier.vkey, "logs": logs})

    @app.get("/evidence")
    def evidence() -> JSONResponse:
        return JSONResponse({"evidence": witness.evidence()})

    return app
