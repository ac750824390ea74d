"""Offline verification of an exported access log: standard library and ``cryptography`` only.

Needs no database, no server and nothing else from govshare (``canonical`` and ``merkle`` are
standard-library modules), so an auditor can run it on a machine of their own. It streams the
file once, keeping only the O(log n) frontier of the tree, and stops at the first problem:

* every entry must be well formed, byte-identical to its canonical form and numbered in order;
* every head's Ed25519 signature must verify with a trusted public key, and its root must equal
  the root recomputed from the entries before it;
* the file must end with its end line, and every entry must be covered by a signed head.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from translog import canonical, merkle

# Why verification failed (``Result.problem``).
CHANGED = "changed"
MISSING = "missing"
REORDERED = "reordered"
INSERTED = "inserted"
BAD_SIGNATURE = "bad signature"
UNKNOWN_KEY = "unknown key"
MALFORMED = "malformed"
TRUNCATED = "truncated"

HEAD_RECORD_FIELDS = frozenset({"tree_size", "root_hash", "time", "key_id", "signature"})
_ENTRY_PREFIX = b'{"entry":'
_SEQ_RE = re.compile(rb'"seq":(\d+)')
_SIZE_RE = re.compile(rb'"tree_size":(\d+)')


@dataclass(frozen=True)
class Result:
    ok: bool
    tree_size: int = 0
    root_hash: str = merkle.EMPTY_ROOT.hex()
    heads: int = 0
    problem: str | None = None
    line: int | None = None
    seq: int | None = None  # the first bad entry, when one can be named
    detail: str = ""

    def summary(self) -> str:
        if self.ok:
            return (f"OK: tree size {self.tree_size}, root {self.root_hash} "
                    f"({self.heads} signed heads verified)")
        where = f"line {self.line}" + (f", entry {self.seq}" if self.seq is not None else "")
        return f"FAILED ({self.problem}) at {where}: {self.detail}"


class _Failure(Exception):
    def __init__(self, problem: str, detail: str, seq: int | None) -> None:
        super().__init__(detail)
        self.problem, self.detail, self.seq = problem, detail, seq


def _fail(problem: str, detail: str, seq: int | None = None) -> NoReturn:
    raise _Failure(problem, detail, seq)


# --- public keys ------------------------------------------------------------------------------

def load_public_keys(path: str | Path) -> dict[str, Ed25519PublicKey]:
    """Key id -> key, from a key document (``govshare log keys``) or a file of PEM blocks.

    Key ids are recomputed from the key material, never taken on trust from the file.
    """
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"{"):
        document = json.loads(data)
        items = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise ValueError(f"{path} is not a key document: it needs a \"keys\" list")
        raws = [_document_key(k) for k in items]
        keys = [Ed25519PublicKey.from_public_bytes(raw) for raw in raws]
    else:
        blocks = re.findall(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", data, re.S)
        keys = [_pem_key(block) for block in blocks]
    if not keys:
        raise ValueError(f"{path} holds no Ed25519 public keys (expected the output of "
                         "`govshare log keys` or PEM 'PUBLIC KEY' blocks)")
    return {canonical.key_id_of(_raw(k)): k for k in keys}


def _document_key(item: Any) -> bytes:
    if not isinstance(item, dict) or item.get("algorithm") != "Ed25519" \
            or not isinstance(item.get("public_key"), str):
        raise ValueError("every key in the key document must be an Ed25519 key with its "
                         "base64 public_key")
    raw = base64.b64decode(item["public_key"], validate=True)  # binascii.Error is a ValueError
    if item.get("key_id") not in (None, canonical.key_id_of(raw)):
        raise ValueError(f"key {item.get('key_id')!r} does not match its public key")
    return raw


def _pem_key(block: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(block)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("only Ed25519 public keys can verify log heads")
    return key


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- verification -----------------------------------------------------------------------------

def verify_export(path: str | Path, keys: Mapping[str, Ed25519PublicKey]) -> Result:
    with open(path, "rb") as fh:  # binary: a "\r" must not pass for a line break
        return verify_lines(fh, keys)


def verify_lines(lines: Iterable[bytes], keys: Mapping[str, Ed25519PublicKey]) -> Result:
    verifier = _Verifier(keys, lines)
    try:
        verifier.run()
    except _Failure as failure:
        return Result(ok=False, tree_size=verifier.signed_size, root_hash=verifier.root.hex(),
                      heads=verifier.heads, problem=failure.problem, line=verifier.lineno,
                      seq=failure.seq, detail=failure.detail)
    return Result(ok=True, tree_size=verifier.signed_size, root_hash=verifier.root.hex(),
                  heads=verifier.heads)


class _Verifier:
    def __init__(self, keys: Mapping[str, Ed25519PublicKey], lines: Iterable[bytes]) -> None:
        self.keys = keys
        self.lines: Iterator[tuple[int, bytes]] = enumerate(lines, 1)
        self.lineno = 0
        self.frontier = merkle.Frontier()
        self.signed_size = 0
        self.root = merkle.EMPTY_ROOT
        self.heads = 0
        self.header_size = -1
        self.ended = False

    def run(self) -> None:
        for lineno, raw in self.lines:
            self.lineno = lineno
            if not raw.endswith(b"\n"):
                _fail(TRUNCATED, "the last line is incomplete: the file was truncated")
            if self.ended:
                _fail(INSERTED, "there is content after the end line")
            line = raw[:-1]
            kind, body = self._record(line)
            if self.lineno == 1 or kind == "header":
                self._header(kind, body)
            elif kind == "entry":
                self._entry(line, body)
            elif kind == "head":
                self._head(body)
            elif kind == "end":
                self._end(body)
            else:
                _fail(MALFORMED, f"unknown record {kind!r}")
        if self.lineno == 0:
            _fail(TRUNCATED, "the file is empty")
        if not self.ended:
            _fail(TRUNCATED, "the file ends without its end line: it was truncated")

    def _record(self, line: bytes) -> tuple[str, Any]:
        try:
            obj = _DECODER.decode(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            _fail(MALFORMED, "the line is not valid UTF-8 JSON", self._seq_guess(line))
        if not isinstance(obj, dict) or len(obj) != 1:
            _fail(MALFORMED, "each line must be an object with a single key")
        ((kind, body),) = obj.items()
        return kind, body

    def _seq_guess(self, line: bytes) -> int | None:
        match = _SEQ_RE.search(line) if line.startswith(_ENTRY_PREFIX) else None
        return int(match.group(1)) if match else None

    def _header(self, kind: str, body: Any) -> None:
        if self.lineno != 1 or kind != "header":
            _fail(MALFORMED, "the header must be the first line, and only there")
        if not isinstance(body, dict) or body.get("format") != canonical.EXPORT_FORMAT:
            _fail(MALFORMED, "this is not a govshare log export")
        if body.get("version") != canonical.EXPORT_VERSION:
            _fail(MALFORMED, f"export version {body.get('version')!r} is not supported")
        size = body.get("tree_size")
        if type(size) is not int or size < 0:
            _fail(MALFORMED, "the header's tree_size must be a non-negative integer")
        self.header_size = size

    # entries

    def _entry(self, line: bytes, body: Any) -> None:
        problem = canonical.entry_problem(body)
        if problem:
            _fail(MALFORMED, f"malformed entry: {problem}", self._seq_guess(line))
        seq = body["seq"]
        if seq != self.frontier.size:
            self._seq_failure(seq)
        leaf = canonical.entry_bytes(body)
        if line != _ENTRY_PREFIX + leaf + b"}":
            _fail(CHANGED, f"entry {seq} is not byte-identical to its canonical form: the line "
                  "was edited", seq)
        self.frontier.append(merkle.leaf_hash(leaf))

    def _seq_failure(self, seq: int) -> NoReturn:
        expected = self.frontier.size
        if seq < expected:
            _fail(INSERTED, f"entry {seq} appears again where entry {expected} belongs: an entry "
                  "was inserted or duplicated", seq)
        later, signed = self._scan_rest()
        if seq in later:
            _fail(INSERTED, f"entry {seq} stands where entry {expected} belongs and appears "
                  "again later: an entry was inserted", seq)
        if expected not in later:
            _fail(MISSING, f"entry {expected} is missing (entry {seq} stands in its place)",
                  expected)
        if seq < signed:
            _fail(REORDERED, f"entry {seq} stands where entry {expected} belongs, and entry "
                  f"{expected} comes later: entries were reordered", expected)
        _fail(INSERTED, f"entry {seq} stands where entry {expected} belongs, but no signed head "
              "covers an entry with that number: it was inserted", seq)

    def _scan_rest(self) -> tuple[set[int], int]:
        """(numbers of the entries further on, largest head size further on).

        Only on the failure path, to say *why* the numbering broke; a cheap pattern match.
        """
        lineno, seqs, signed = self.lineno, set(), 0
        for _, raw in self.lines:
            if raw.startswith(_ENTRY_PREFIX):
                match = _SEQ_RE.search(raw)
                if match:
                    seqs.add(int(match.group(1)))
            elif raw.startswith(b'{"head":'):
                match = _SIZE_RE.search(raw)
                signed = max(signed, int(match.group(1))) if match else signed
        self.lineno = lineno
        return seqs, signed

    # heads

    def _head(self, body: Any) -> None:
        size, root_hex = self._check_head_signature(body)
        if size <= self.signed_size:
            _fail(REORDERED, f"the head of size {size} comes after the head of size "
                  f"{self.signed_size}: heads were reordered or duplicated")
        have = self.frontier.size
        if size > have:
            _fail(MISSING, f"the head of size {size} follows only {have} entries: entries "
                  f"{have} to {size - 1} are missing", have)
        if size < have:
            _fail(INSERTED, f"entry {size} stands before the head of size {size}, which covers "
                  f"entries 0 to {size - 1} only: entries were inserted", size)
        root = self.frontier.root()
        if root.hex() != root_hex:
            _fail(CHANGED, f"entries {self.signed_size} to {size - 1} do not reproduce the root "
                  f"signed at size {size}: at least one of them was changed", self.signed_size)
        self.signed_size, self.root = size, root
        self.heads += 1

    def _check_head_signature(self, body: Any) -> tuple[int, str]:
        if not isinstance(body, dict) or body.keys() != HEAD_RECORD_FIELDS or not _head_ok(body):
            _fail(MALFORMED, "malformed head: it needs tree_size, root_hash (hex), time, key_id "
                  "and signature (base64)")
        key = self.keys.get(body["key_id"])
        if key is None:
            _fail(UNKNOWN_KEY, f"the head of size {body['tree_size']} is signed with key "
                  f"{body['key_id']}, which is not among the trusted public keys")
        message = canonical.head_bytes(tree_size=body["tree_size"], root_hash=body["root_hash"],
                                       time=body["time"], key_id=body["key_id"])
        try:
            signature = base64.b64decode(body["signature"], validate=True)
            if base64.b64encode(signature).decode() != body["signature"]:
                raise InvalidSignature  # unused base64 bits set: the same bytes, other text
            key.verify(signature, message)
        except (InvalidSignature, binascii.Error):
            _fail(BAD_SIGNATURE, f"the signature of the head of size {body['tree_size']} does "
                  f"not verify with key {body['key_id']}: the head was altered")
        return body["tree_size"], body["root_hash"]

    # end

    def _end(self, body: Any) -> None:
        have = self.frontier.size
        if have != self.signed_size:
            _fail(INSERTED, f"entries {self.signed_size} to {have - 1} are not covered by any "
                  "signed head", self.signed_size)
        if body != {"entries": have, "heads": self.heads}:
            _fail(TRUNCATED, f"the end line does not match the file ({have} entries, "
                  f"{self.heads} heads): lines were removed or added")
        if self.header_size != self.signed_size:
            _fail(TRUNCATED, f"the header announces size {self.header_size}, but the last signed "
                  f"head has size {self.signed_size}")
        self.ended = True


def _head_ok(body: dict[str, Any]) -> bool:
    return (type(body["tree_size"]) is int and body["tree_size"] > 0
            and isinstance(body["root_hash"], str)
            and canonical.HEX64_RE.fullmatch(body["root_hash"]) is not None
            and isinstance(body["time"], str)
            and canonical.TIME_RE.fullmatch(body["time"]) is not None
            and isinstance(body["key_id"], str)
            and canonical.KEY_ID_RE.fullmatch(body["key_id"]) is not None
            and isinstance(body["signature"], str))


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)  # NaN and Infinity are not JSON
