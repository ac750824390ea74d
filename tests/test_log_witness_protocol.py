"""The witness's add-checkpoint answers, status by status (c2sp.org/tlog-witness), and the
cosignature format, in process: no database, a log made of in-memory leaves."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from translog import cosigner, merkle, note, witness

ORIGIN = "example.gov/log"


class Log:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.tree = merkle.MemoryTree(merkle.leaf_hash(b"%d" % i) for i in range(20))
        self.verifier = note.Verifier(ORIGIN, note.ED25519, note.raw_public(self.key))

    def checkpoint(self, size: int, root: bytes | None = None,
                   key: Ed25519PrivateKey | None = None) -> note.Note:
        text = note.Checkpoint(ORIGIN, size, root or self.tree.root(size)).text()
        return note.Note(text, [note.sign_text(key or self.key, ORIGIN, text)])

    def body(self, old: int, size: int, root: bytes | None = None,
             key: Ed25519PrivateKey | None = None) -> bytes:
        proof = [] if old in (0, size) else merkle.consistency_proof(old, size,
                                                                    self.tree.lookup)
        return cosigner.submission(old, proof, self.checkpoint(size, root, key))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Log, witness.Witness, TestClient]:
    log = Log()
    w = witness.Witness(tmp_path / "w", "audit.example/w", [log.verifier])
    return log, w, TestClient(witness.create_app(w))


def test_statuses(setup: tuple[Log, witness.Witness, TestClient]) -> None:
    log, w, api = setup
    add = "/add-checkpoint"
    r = api.post(add, content=log.body(0, 5))
    assert r.status_code == 200 and r.text.startswith("\u2014 audit.example/w ")
    # the cosignature: key ID with type 0x04, a big-endian timestamp, Ed25519 over the message
    (sig,) = note.parse_signature_lines(r.text)
    assert sig.key_id == note.key_id("audit.example/w", note.COSIGNATURE_V1,
                                     w.verifier.public)
    (stamp,) = struct.unpack(">Q", sig.sig[:8])
    assert w.verifier.verify(log.checkpoint(5).text, sig.sig) == stamp
    assert "cosignature/v1\ntime " in note.cosigned_message("x\n", stamp).decode()

    r = api.post(add, content=log.body(0, 9))  # the witness is at 5, not 0
    assert r.status_code == 409 and r.text == "5\n"
    assert r.headers["content-type"].startswith("text/x.tlog.size")
    assert api.post(add, content=log.body(5, 9)).status_code == 200
    assert api.post(add, content=log.body(9, 9)).status_code == 200  # the same again: fine
    above = cosigner.submission(12, [], log.checkpoint(9))
    assert api.post(add, content=above).status_code == 400  # old above size
    assert api.post(add, content=b"old 9\nnot base64!\n\n" + log.checkpoint(12).render()
                    .encode()).status_code == 400
    assert api.post(add, content=b"hello").status_code == 400
    other = Ed25519PrivateKey.generate()
    assert api.post(add, content=log.body(9, 12, key=other)).status_code == 403
    text = note.Checkpoint("other.example/log", 3, bytes(32)).text()
    unknown = note.Note(text, [note.sign_text(log.key, "other.example/log", text)])
    assert api.post(add, content=cosigner.submission(0, [], unknown)).status_code == 404
    assert w.evidence() == []
    # a proof that does not lead from the cosigned root: refused and kept as evidence
    bad = cosigner.submission(9, [bytes(32)] * 3, log.checkpoint(12))
    assert api.post(add, content=bad).status_code == 422
    assert api.post(add, content=log.body(9, 9, root=bytes(32))).status_code == 409
    evidence = api.get("/evidence").json()["evidence"]
    assert [e["reason"].split(" ")[0] for e in evidence] == ["no", "a"]
    assert api.get("/").json()["logs"][0]["size"] == 9
    # the state survives a restart of the witness (a new process on the same directory)
    again = witness.Witness(w.data_dir, w.name, [log.verifier])
    assert again.state(ORIGIN)["size"] == 9  # type: ignore[index]
    assert again.verifier == w.verifier
    # after a key rotation the witness follows both keys of the origin
    rotated = Ed25519PrivateKey.generate()
    both = witness.Witness(w.data_dir, w.name, [
        log.verifier, note.Verifier(ORIGIN, note.ED25519, note.raw_public(rotated))])
    api2 = TestClient(witness.create_app(both))
    assert api2.post(add, content=log.body(9, 12, key=rotated)).status_code == 200
    assert len(api2.get("/").json()["logs"][0]["vkeys"]) == 2
