"""Receipts: C2SP tlog-proof (c2sp.org/tlog-proof) for one log entry, and their offline check.

A receipt is the text::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's canonical bytes>
    index <seq>
    <base64 hash>            ← the inclusion proof, leaf side first (RFC 6962 §2.1.1)
    …
    <blank line>
    <the published checkpoint, with the log's signature and the witnesses' cosignatures>

The ``extra`` line carries the entry itself, since its hash is the leaf: whoever holds the
event's payload (a delivery manifest) recomputes ``payload_sha256``, and from the entry the leaf
hash, the root and the signatures. Standard library, ``cryptography`` and our stdlib-only
modules: checkable offline with nothing but the public keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from translog import canonical, merkle, note

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class Receipt:
    index: int
    proof: list[bytes]
    checkpoint_note: str
    extra: bytes | None = None

    def render(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {note.b64(self.extra)}")
        lines.append(f"index {self.index}")
        lines += [note.b64(h) for h in self.proof]
        return "\n".join(lines) + "\n\n" + self.checkpoint_note


def parse(text: str) -> Receipt:
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise note.NoteError("a tlog-proof is header lines, a blank line, then the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise note.NoteError(f"the first line of a receipt must be {HEADER}")
    lines = lines[1:]
    extra = None
    if lines and lines[0].startswith("extra "):
        extra = note.unb64(lines[0][6:], "the extra line")
        lines = lines[1:]
    if not lines or not lines[0].startswith("index ") or not note._DECIMAL.match(lines[0][6:]):
        raise note.NoteError("a receipt needs an 'index <n>' line")
    proof = [note.unb64(line, "an inclusion proof line") for line in lines[1:]]
    if any(len(h) != 32 for h in proof):
        raise note.NoteError("each inclusion proof line is a base64 SHA-256 hash")
    return Receipt(int(lines[0][6:]), proof, checkpoint, extra)


@dataclass(frozen=True)
class Checked:
    entry: dict[str, Any]
    checkpoint: note.Checkpoint
    cosigners: list[str]

    def summary(self) -> str:
        who = ", ".join(self.cosigners) or "no witness"
        return (f"OK: entry {self.entry['seq']} ({self.entry['type']}) is in "
                f"{self.checkpoint.origin} at tree size {self.checkpoint.size}, cosigned by {who}")


def check(text: str, logs: list[note.Verifier], witnesses: list[note.Verifier], quorum: int,
          payload: Any = None) -> Checked:
    """Verify a receipt; raises NoteError naming the first problem.

    ``payload``: the event payload the entry must record (its canonical SHA-256); None skips it.
    """
    receipt = parse(text)
    signed = note.parse_note(receipt.checkpoint_note)
    checkpoint = note.parse_checkpoint(signed.text)
    trusted = [v for v in logs if v.name == checkpoint.origin]
    if not trusted:
        raise note.NoteError(f"no trusted key for the log {checkpoint.origin!r}")
    if not signed.verified(trusted):
        raise note.NoteError("the checkpoint's log signature does not verify")
    cosigners = sorted(signed.verified(witnesses))
    if len(cosigners) < quorum:
        raise note.NoteError(f"the checkpoint has {len(cosigners)} valid cosignature(s) by "
                             f"trusted witnesses, {quorum} needed")
    if receipt.extra is None:
        raise note.NoteError("the receipt carries no entry (extra line)")
    entry = _entry(receipt.extra)
    if entry["seq"] != receipt.index:
        raise note.NoteError(f"the entry is number {entry['seq']}, the receipt says "
                             f"{receipt.index}")
    leaf = merkle.leaf_hash(receipt.extra)
    if not merkle.verify_inclusion(receipt.index, checkpoint.size, leaf, receipt.proof,
                                   checkpoint.root_hash):
        raise note.NoteError("the inclusion proof does not lead to the checkpoint's root")
    if payload is not None and canonical.payload_digest(payload) != entry["payload_sha256"]:
        raise note.NoteError("the document does not match the logged entry: its digest "
                             "differs from the entry's payload_sha256 (it was changed)")
    return Checked(entry, checkpoint, cosigners)


def _entry(data: bytes) -> dict[str, Any]:
    try:
        entry = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise note.NoteError("the receipt's entry is not JSON") from None
    problem = canonical.entry_problem(entry)
    if problem is not None or canonical.entry_bytes(entry) != data:
        raise note.NoteError(f"the receipt's entry is not a canonical log entry: {problem}")
    result: dict[str, Any] = entry
    return result


DELIVERY_EVENT = "delivery.completed"


def delivery_payload(doc: dict[str, Any]) -> dict[str, Any]:
    """The payload of the delivery's log entry, from a manifest document: its
    ``logged_payload``, which must contain the document's manifest verbatim."""
    payload = doc.get("logged_payload")
    if not isinstance(payload, dict):
        raise note.NoteError("the manifest document carries no logged_payload")
    if payload.get("manifest") != doc.get("manifest"):
        raise note.NoteError("the manifest differs from the one in the logged payload: it "
                             "was changed")
    return payload


# --- what `govshare log check-receipt` reads --------------------------------------------------

@dataclass(frozen=True)
class Trust:
    """The public keys a receipt is checked with: the log's, the witnesses', the quorum."""

    logs: list[note.Verifier]
    witnesses: list[note.Verifier]
    quorum: int
    manifest_keys: dict[str, bytes]  # key id -> raw Ed25519 key (manifest signatures)


def trust_from_document(doc: dict[str, Any]) -> Trust:
    """From the key document (``govshare log keys``, /.well-known/govshare-log-keys); every
    key id and note key ID is recomputed from the key material."""
    logs, manifest_keys = [], {}
    for item in doc.get("keys", []):
        raw = note.unb64(item["public_key"], "a public key")
        manifest_keys[canonical.key_id_of(raw)] = raw
        if "vkey" in item:
            verifier = note.parse_vkey(item["vkey"])
            if verifier.public != raw or verifier.sig_type != note.ED25519:
                raise note.NoteError(f"key {item.get('key_id')}: its vkey names another key")
            logs.append(verifier)
    witnesses = [note.parse_vkey(v) for v in doc.get("witnesses", [])]
    return Trust(logs, witnesses, int(doc.get("quorum", 0)), manifest_keys)


def check_file(data: str, trust: Trust) -> Checked:
    """A ``.tlog-proof`` file, or a delivery manifest document (the JSON of
    GET /api/v1/deliveries/{id}/manifest: manifest, signature, key_id, receipt)."""
    if not data.lstrip().startswith("{"):
        return check(data, trust.logs, trust.witnesses, trust.quorum)
    try:
        doc = json.loads(data)
    except ValueError:
        raise note.NoteError("the file is neither a tlog-proof nor JSON") from None
    manifest, receipt = doc.get("manifest"), doc.get("receipt")
    if not isinstance(manifest, dict) or not isinstance(receipt, str):
        raise note.NoteError("the manifest document carries no receipt yet: fetch it again "
                             "once the checkpoint is cosigned")
    _check_manifest_signature(manifest, str(doc.get("signature", "")),
                              str(doc.get("key_id", "")), trust)
    checked = check(receipt, trust.logs, trust.witnesses, trust.quorum,
                    payload=delivery_payload(doc))
    if checked.entry["type"] != DELIVERY_EVENT:
        raise note.NoteError(f"the receipt is for a {checked.entry['type']} entry, not a "
                             "delivery")
    return checked


def _check_manifest_signature(manifest: dict[str, Any], signature: str, key_id: str,
                              trust: Trust) -> None:
    raw = trust.manifest_keys.get(key_id)
    if raw is None:
        raise note.NoteError(f"the manifest is signed by the unknown key {key_id!r}")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(
            note.unb64(signature, "the manifest signature"), canonical.payload_bytes(manifest))
    except InvalidSignature:
        raise note.NoteError("the manifest's signature does not verify: it was changed") \
            from None
