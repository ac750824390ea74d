"""Canonical bytes of log entries, payloads and tree heads (see docs/access-log.md).

Every hash and signature in the access log is computed over bytes produced here, so this module
is the format: changing an output byte breaks every existing log. It imports only the standard
library because the offline verifier (``translog.verify``) uses it on auditors' machines.

All three serialisations are RFC 8785 (JSON Canonicalization Scheme) over a restricted value
set: objects with ASCII keys (sorted), strings, integers and null for entries and heads; any
JSON value for payloads.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

FORMAT_VERSION = 1
ENTRY_FIELDS = frozenset({"v", "seq", "time", "type", "actor", "subjects", "payload_sha256"})
ACTOR_FIELDS = frozenset({"user", "department", "kind"})
HEAD_FIELDS = frozenset({"v", "type", "tree_size", "root_hash", "time", "key_id"})
HEAD_TYPE = "govshare.log.tree_head"
EXPORT_FORMAT = "govshare-log-export"
EXPORT_VERSION = 1

TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
EVENT_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
SUBJECT_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
HEX64_RE = re.compile(r"[0-9a-f]{64}")
KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
ACTOR_KINDS = frozenset({"user", "system"})
MAX_SUBJECT_VALUE = 200


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits, e.g. 2026-05-01T08:00:00.000000Z."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime in the access log; use kernel.db.utcnow()")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    if not TIME_RE.fullmatch(text):
        raise ValueError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# With ASCII keys and only strings/integers/null as leaves, this encoder emits exactly the
# RFC 8785 form, and its C implementation keeps the verifier fast (one shared instance: building
# an encoder per call costs as much as encoding). Lone surrogates make .encode() fail, as needed.
_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _dumps(obj: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(obj).encode()


# --- entries ------------------------------------------------------------------------------------

def entry_object(*, seq: int, time: str, type: str, user: int | None, department: int | None,
                 kind: str, subjects: Mapping[str, str], payload_sha256: str) -> dict[str, Any]:
    """The entry as a JSON object; its canonical bytes are the Merkle leaf."""
    obj = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "time": time,
        "type": type,
        "actor": {"user": user, "department": department, "kind": kind},
        "subjects": dict(subjects),
        "payload_sha256": payload_sha256,
    }
    problem = entry_problem(obj)
    if problem:
        raise ValueError(problem)
    return obj


def entry_bytes(obj: Mapping[str, Any]) -> bytes:
    """Canonical bytes of an entry object (call ``entry_problem`` first on untrusted input)."""
    return _dumps(obj)


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass; floats are never valid here


def _optional_id(value: Any) -> bool:
    return value is None or (_is_int(value) and 0 <= value < 2**53)


def entry_problem(obj: Any) -> str | None:
    """Why ``obj`` is not a well-formed v1 entry object, or None if it is."""
    if not isinstance(obj, dict) or obj.keys() != ENTRY_FIELDS:
        return "entry must have exactly the fields " + ", ".join(sorted(ENTRY_FIELDS))
    if obj["v"] != FORMAT_VERSION or not _is_int(obj["v"]):
        return f"unsupported entry format version {obj['v']!r}"
    if not _is_int(obj["seq"]) or not 0 <= obj["seq"] < 2**53:
        return "seq must be a non-negative integer"
    if not isinstance(obj["time"], str) or not TIME_RE.fullmatch(obj["time"]):
        return "time must be YYYY-MM-DDTHH:MM:SS.ffffffZ"
    if not isinstance(obj["type"], str) or not EVENT_TYPE_RE.fullmatch(obj["type"]) \
            or len(obj["type"]) > 64:
        return "type must be a dotted lowercase event name of at most 64 characters"
    return _actor_problem(obj["actor"]) or _subjects_problem(obj["subjects"]) or (
        None if isinstance(obj["payload_sha256"], str) and HEX64_RE.fullmatch(obj["payload_sha256"])
        else "payload_sha256 must be 64 lowercase hex digits")


def _actor_problem(actor: Any) -> str | None:
    if not isinstance(actor, dict) or actor.keys() != ACTOR_FIELDS:
        return "actor must have exactly the fields department, kind, user"
    if not _optional_id(actor["user"]) or not _optional_id(actor["department"]):
        return "actor user and department must be non-negative integers or null"
    if actor["kind"] not in ACTOR_KINDS:
        return "actor kind must be 'user' or 'system'"
    return None


def _subjects_problem(subjects: Any) -> str | None:
    if not isinstance(subjects, dict):
        return "subjects must be an object"
    for key, value in subjects.items():
        if not SUBJECT_KEY_RE.fullmatch(key):
            return f"subject key {key!r} must be lowercase ASCII (a-z, 0-9, _), at most 32"
        if not isinstance(value, str) or not 0 < len(value) <= MAX_SUBJECT_VALUE:
            return f"subject {key!r} must be a non-empty string of at most 200 characters"
    return None


# --- payloads -----------------------------------------------------------------------------------

def payload_digest(payload: Any) -> str:
    """Hex SHA-256 of the payload's RFC 8785 canonical JSON (after ``_plain`` conversions)."""
    return hashlib.sha256(payload_bytes(payload)).hexdigest()


def payload_bytes(payload: Any) -> bytes:
    return _jcs(_plain(payload)).encode()


def _plain(value: Any) -> Any:
    """Map common Python values onto JSON ones, so services can publish them as they are."""
    if isinstance(value, Enum):  # before str/int: StrEnum and IntEnum members are both
        return _plain(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=lambda v: _jcs(v))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if hasattr(value, "model_dump"):  # pydantic models, without importing pydantic here
        return _plain(value.model_dump(mode="json"))
    raise TypeError(f"cannot digest a {type(value).__name__} in an event payload")


def _key(key: Any) -> str:
    if isinstance(key, Enum):
        key = key.value
    if not isinstance(key, str):
        raise TypeError("event payload keys must be strings")
    return key


def _jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)  # exact; RFC 8785 would round beyond 2**53 (documented deviation)
    if isinstance(value, float):
        return es6_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    # RFC 8785 sorts member names by their UTF-16 code units, not by code points.
    items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _jcs(v) for k, v in items) + "}"


def es6_number(value: float) -> str:
    """ECMAScript Number.prototype.toString, as RFC 8785 requires for numbers."""
    if not math.isfinite(value):
        raise ValueError("NaN and infinities cannot be digested")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digits that round-trip, which is what ECMAScript uses too.
    digits_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits_tuple))
    k = len(digits)
    n = k + int(exponent)  # value = 0.digits × 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


# --- tree heads ---------------------------------------------------------------------------------

def head_object(*, tree_size: int, root_hash: str, time: str, key_id: str) -> dict[str, Any]:
    return {"v": FORMAT_VERSION, "type": HEAD_TYPE, "tree_size": tree_size,
            "root_hash": root_hash, "time": time, "key_id": key_id}


def head_bytes(*, tree_size: int, root_hash: str, time: str, key_id: str) -> bytes:
    """The bytes an Ed25519 signature over a tree head covers."""
    return _dumps(head_object(tree_size=tree_size, root_hash=root_hash, time=time, key_id=key_id))


def key_id_of(raw_public_key: bytes) -> str:
    """Hex of the first 8 bytes of SHA-256 over the 32-byte raw Ed25519 public key."""
    return hashlib.sha256(raw_public_key).digest()[:8].hex()
