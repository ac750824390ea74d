"""C2SP signed notes, checkpoints and cosignatures (Ed25519), with the standard library and
``cryptography`` only, so offline verifiers and the witness can import it without a database.

* signed-note (c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank line, then
  signature lines ``— <key name> base64(4-byte key ID ‖ signature)``. An Ed25519 key's ID is
  ``SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)[:4]``; a verifier key ("vkey") is written
  ``<name>+<hex key ID>+base64(0x01 ‖ public key)``, the form Go's ``sumdb/note`` reads.
* tlog-checkpoint (c2sp.org/tlog-checkpoint): the note text is the origin line, the tree size
  in decimal and the base64 root hash, each on its own line, then optional extension lines.
* tlog-cosignature v1 (c2sp.org/tlog-cosignature): a witness signs
  ``"cosignature/v1\\ntime <t>\\n" ‖ checkpoint text`` with its Ed25519 key (type byte 0x04 in
  the key ID) and the signature field is ``key ID ‖ uint64 big-endian t ‖ Ed25519 signature``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01  # signed-note signature type of a log's own Ed25519 signature
COSIGNATURE_V1 = 0x04  # tlog-cosignature/v1 over Ed25519
DASH = "\u2014"  # EM DASH starts every signature line
COSIGNATURE_HEADER = "cosignature/v1\n"
MAX_SIGNATURES = 100  # c2sp.org/signed-note: verifiers may reject notes with more
_NAME = re.compile(r"^[^\s+]+$")  # a key name has no whitespace and no '+'
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,18})$")


class NoteError(ValueError):
    """A malformed note, checkpoint, key or signature; the message says which part."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not standard base64: {text[:60]!r}") from None
    if b64(data) != text:  # one byte string, one encoding: refuse non-canonical padding bits
        raise NoteError(f"{what} is not canonical base64")
    return data


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def check_name(name: str) -> str:
    if not name or not _NAME.match(name):
        raise NoteError(f"key name {name!r} must be non-empty without spaces or '+'")
    return name


@dataclass(frozen=True)
class Verifier:
    """A public key under a name: the log's (type 0x01) or a witness's (type 0x04)."""

    name: str
    sig_type: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.sig_type]) + self.public)}"

    def _ed25519(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify(self, text: str, sig: bytes) -> int | None:
        """Check a signature field (key ID stripped) over a note text. Returns 0 for a
        valid log signature, the timestamp for a valid cosignature, else None."""
        if self.sig_type == ED25519:
            return 0 if len(sig) == 64 and self._ed25519(text.encode(), sig) else None
        if self.sig_type == COSIGNATURE_V1 and len(sig) == 72:
            (timestamp,) = struct.unpack(">Q", sig[:8])
            if timestamp < 2**63 and self._ed25519(cosigned_message(text, timestamp), sig[8:]):
                return timestamp
        return None


def parse_vkey(vkey: str) -> Verifier:
    """``name+hexID+base64(type ‖ key)``; the key ID must match the name and key."""
    parts = vkey.strip().split("+", 2)  # the base64 key may itself contain "+"
    if len(parts) != 3:
        raise NoteError(f"a verifier key is name+keyid+base64key, got {vkey[:80]!r}")
    name, hex_id, key = parts
    check_name(name)
    data = unb64(key, "the verifier key's public key")
    if len(data) != 33 or data[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("the verifier key must hold type 0x01 or 0x04 and a 32-byte Ed25519 key")
    verifier = Verifier(name, data[0], data[1:])
    if hex_id.lower() != verifier.key_id.hex() or len(hex_id) != 8:
        raise NoteError(f"the verifier key {name}: key ID {hex_id} does not match its key")
    return verifier


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    sig: bytes  # the signature field without the key ID

    def line(self) -> str:
        return f"{DASH} {self.name} {b64(self.key_id + self.sig)}\n"


@dataclass
class Note:
    text: str  # ends with "\n"
    signatures: list[Signature] = field(default_factory=list)

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def verified(self, verifiers: list[Verifier]) -> dict[str, int]:
        """The names of ``verifiers`` whose signature is here and valid → timestamp (0 for a
        log signature). Signatures by unknown keys are ignored, as the spec requires."""
        found: dict[str, int] = {}
        for s in self.signatures:
            for v in verifiers:
                if v.name == s.name and v.key_id == s.key_id:
                    stamp = v.verify(self.text, s.sig)
                    if stamp is not None:
                        found[v.name] = stamp
        return found


def parse_signature_line(line: str) -> Signature:
    if not line.startswith(DASH + " "):
        raise NoteError(f"a signature line starts with '{DASH} ', got {line[:40]!r}")
    parts = line[2:].split(" ")
    if len(parts) != 2:
        raise NoteError(f"a signature line is '{DASH} <name> <base64>', got {line[:80]!r}")
    name, data = check_name(parts[0]), unb64(parts[1], f"the signature of {parts[0]}")
    if len(data) < 5:
        raise NoteError(f"the signature of {name} is too short")
    return Signature(name, data[:4], data[4:])


def parse_signature_lines(text: str) -> list[Signature]:
    if text and not text.endswith("\n"):
        raise NoteError("every signature line must end with a newline")
    return [parse_signature_line(line) for line in text.split("\n")[:-1]]


def parse_note(data: bytes | str) -> Note:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    cut = text.rfind("\n\n")
    if cut < 0:
        raise NoteError("a signed note needs its text, a blank line and signature lines")
    body, sigs = text[:cut + 1], parse_signature_lines(text[cut + 2:])
    if not sigs or len(sigs) > MAX_SIGNATURES:
        raise NoteError(f"a signed note carries 1 to {MAX_SIGNATURES} signatures")
    if any(c < " " and c != "\n" for c in body):
        raise NoteError("the note text must not contain control characters other than newline")
    return Note(body, sigs)


def sign_text(private: Ed25519PrivateKey, name: str, text: str) -> Signature:
    """The log's signature line over a note text (type 0x01)."""
    return Signature(name, key_id(check_name(name), ED25519, raw_public(private)),
                     private.sign(text.encode()))


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def cosign(private: Ed25519PrivateKey, name: str, text: str, timestamp: int) -> Signature:
    """A witness's tlog-cosignature/v1 over a checkpoint text."""
    sig = private.sign(cosigned_message(text, timestamp))
    return Signature(name, key_id(check_name(name), COSIGNATURE_V1, raw_public(private)),
                     struct.pack(">Q", timestamp) + sig)


# --- checkpoints ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        return "".join(f"{line}\n" for line in
                       (self.origin, str(self.size), b64(self.root_hash), *self.extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint has an origin line, a size line and a root hash line")
    origin, size, root, *extensions = lines[:-1]
    if not origin:
        raise NoteError("the checkpoint's origin line is empty")
    if not _DECIMAL.match(size):
        raise NoteError(f"the checkpoint's tree size {size!r} is not a decimal number")
    root_hash = unb64(root, "the checkpoint's root hash")
    if len(root_hash) != 32:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise NoteError("a checkpoint has no empty extension lines")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def open_checkpoint(data: bytes | str, log: Verifier) -> tuple[Note, Checkpoint]:
    """Parse a signed checkpoint and check the log's signature and origin."""
    note = parse_note(data)
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != log.name:
        raise NoteError(f"the checkpoint is for the log {checkpoint.origin!r}, not {log.name!r}")
    if log.name not in note.verified([log]):
        raise NoteError(f"the checkpoint carries no valid signature by the log key {log.vkey}")
    return note, checkpoint
