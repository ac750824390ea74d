"""Keyed pseudonymisation: HMAC-SHA256 with a per-requester-department key, in DuckDB SQL.

Each requesting department has its own random 256-bit key, so the same resident ID gets the
same pseudonym in every package that department receives (it can join them) but different
pseudonyms in two departments' packages (they cannot link theirs). Keys are stored AES-GCM
encrypted under a key derived with scrypt from GOVSHARE_KEY_PASSPHRASE (one salt per
department), bound to the department id as associated data, and never leave the server.

HMAC (RFC 2104) is ``SHA256((K ⊕ opad) ‖ SHA256((K ⊕ ipad) ‖ m))``. Masking SQL names one
function, ``gs_pseudonym(varchar)``, installed on the delivery's private in-memory DuckDB
connection by ``install``; the SQL govshare builds, logs or returns never holds the key, which
lives in that connection's memory and dies with it. Two implementations, same tokens:

* native (``access.native``, the default): a vectorised DuckDB scalar function over whole
  vectors, in C with OpenSSL, the padded-key blocks absorbed once per vector. ~0.4 µs/value.
* SQL (fallback when no C compiler or libcrypto is available): DuckDB has ``sha256`` but no
  HMAC, so a temporary macro spells it out with the padded keys as constants. That is four
  portable-C SHA-256 blocks per value, ~1.3 µs/value: alone more than twice the cost of
  writing the whole table to Parquet. (``getvariable()`` instead of constants was ~25%
  slower still; a Python Arrow UDF with hashlib pays an interpreter round trip per value.)

A pseudonym is the first 128 bits of the HMAC in lowercase hex (32 characters; ample against
collisions for billions of values). The raw-PII check verifies pseudonymised columns by shape
(every value must be such a token) rather than by looking for ID-like digit runs, which hex
text contains by chance.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

import duckdb
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from duckdb.func import FunctionNullHandling, PythonUDFType
from sqlmodel import Session

from access import native as native_hmac
from access.log import keys as log_keys
from access.models import PseudonymKey
from catalog.models import ItemKind
from govshare.settings import get_settings

_BLOCK = 64  # SHA-256 block size
_MACRO = "gs_hmac_sha256"
_FUNCTION = "gs_pseudonym"
TOKEN_HEX_CHARS = 32
TOKEN_PATTERN = f"[0-9a-f]{{{TOKEN_HEX_CHARS}}}"


class KeyUnavailable(RuntimeError):
    """A stored key cannot be decrypted (wrong passphrase or tampered row)."""


def _aad(department_id: int) -> bytes:
    return f"govshare pseudonym key v1 department {department_id}".encode()


@lru_cache(maxsize=64)
def _kek(passphrase: bytes, salt: bytes) -> bytes:
    # scrypt costs ~50 ms on purpose; cached per (passphrase, salt) for the process.
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(passphrase)


def _passphrase() -> bytes:
    return log_keys.passphrase(get_settings())


def department_key(session: Session, department_id: int) -> bytes:
    """The department's HMAC key, created on first use (call inside a write transaction)."""
    row = session.get(PseudonymKey, department_id)
    if row is None:
        row = _create(session, department_id)
    try:
        return AESGCM(_kek(_passphrase(), row.salt)).decrypt(row.nonce, row.ciphertext,
                                                             _aad(department_id))
    except InvalidTag:
        raise KeyUnavailable("A pseudonymisation key cannot be decrypted: check "
                        "GOVSHARE_KEY_PASSPHRASE.") from None


def existing_key(session: Session, department_id: int) -> bytes | None:
    """The key if it exists (read-only sessions never create one)."""
    if session.get(PseudonymKey, department_id) is None:
        return None
    return department_key(session, department_id)


def _create(session: Session, department_id: int) -> PseudonymKey:
    key, salt, nonce = os.urandom(32), os.urandom(16), os.urandom(12)
    ciphertext = AESGCM(_kek(_passphrase(), salt)).encrypt(nonce, key, _aad(department_id))
    row = PseudonymKey(department_id=department_id, salt=salt, nonce=nonce,
                       ciphertext=ciphertext)
    session.add(row)
    session.flush()
    return row


def install(con: duckdb.DuckDBPyConnection, key: bytes, *, native: bool = True) -> None:
    """Define ``gs_pseudonym(varchar) -> varchar`` (the 32-hex token; NULL and empty values
    map to themselves) with this key on the (private) connection: the native function when
    it is available (``access.native``), else the SQL macro. Both give the same tokens
    (tests/test_access_masking.py)."""
    fn = native_hmac.load() if native else None
    if fn is not None:
        con.create_function(_FUNCTION, native_hmac.udf(fn, key, TOKEN_HEX_CHARS),
                            [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                            type=PythonUDFType.ARROW,
                            null_handling=FunctionNullHandling.SPECIAL, side_effects=False)
        return
    padded = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(_BLOCK, b"\0")
    ipad = bytes(b ^ 0x36 for b in padded).hex()
    opad = bytes(b ^ 0x5C for b in padded).hex()
    con.execute(f"CREATE OR REPLACE TEMP MACRO {_MACRO}(m) AS "
                f"sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}') || m)))")
    con.execute(f"CREATE OR REPLACE TEMP MACRO {_FUNCTION}(v) AS CASE WHEN v = '' THEN '' "
                f"ELSE left({_MACRO}(encode(v)), {TOKEN_HEX_CHARS}) END")


def normalise_sql(value_sql: str, kind: ItemKind | None) -> str:
    """Canonical text of a value before hashing, so equal things get equal pseudonyms
    (``11010119900307001x`` and ``11010119900307001X`` are the same person)."""
    text = f"trim(CAST({value_sql} AS VARCHAR))"
    if kind == ItemKind.resident_id:
        return f"upper({text})"
    if kind in (ItemKind.mobile, ItemKind.bank_card):
        return f"regexp_replace({text}, '[^0-9]', '', 'g')"
    if kind == ItemKind.email:
        return f"lower({text})"
    return text


def hmac_sql(value_sql: str, kind: ItemKind | None) -> str:
    """SQL for the pseudonym of ``value_sql``: NULL stays NULL, an empty value stays empty."""
    return f"{_FUNCTION}({normalise_sql(value_sql, kind)})"


def pseudonym(key: bytes, value: str, kind: ItemKind | None = None) -> str:
    """The same pseudonym in Python (tests and the documentation's examples)."""
    import hmac

    text = value.strip()
    if kind == ItemKind.resident_id:
        text = text.upper()
    elif kind in (ItemKind.mobile, ItemKind.bank_card):
        text = "".join(ch for ch in text if ch.isdigit())
    elif kind == ItemKind.email:
        text = text.lower()
    if text == "":
        return ""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]
