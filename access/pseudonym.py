"""Keyed pseudonymisation: HMAC-SHA256 with a per-requester-department key, in DuckDB SQL.

Each requesting department has its own random 256-bit key, so the same resident ID gets the
same pseudonym in every package that department receives (it can join them) but different
pseudonyms in two departments' packages (they cannot link theirs). Keys are stored AES-GCM
encrypted under a key derived with scrypt from GOVSHARE_KEY_PASSPHRASE (one salt per
department), bound to the department id as associated data, and never leave the server.

HMAC (RFC 2104) is ``SHA256((K ⊕ opad) ‖ SHA256((K ⊕ ipad) ‖ m))`` over the value once
normalised (``_NORMS``: trimmed of ASCII whitespace and U+3000; IDs upper-cased, e-mails
lower-cased, ASCII only; mobiles and cards reduced to digits). Masking SQL names one function
per normalisation, ``gs_pseudonym_<norm>(varchar)``, registered on a private in-memory DuckDB
database with the key; the SQL govshare builds, logs or returns never holds the key, which
lives in that registration and dies with it. Three registrations, same tokens:

* C API (``access.native.copy``; file deliveries): the COPY runs on a connection of its own
  where DuckDB's threads call the C loop directly. ~0.14 µs/value.
* Arrow function (``install`` with the native library; API views, and file deliveries when
  the C API path is unavailable): the same C loop, handed each vector as Arrow, which adds
  ~0.08 µs/value under the GIL.
* SQL (fallback when no C compiler or libcrypto is available): DuckDB has ``sha256`` but no
  HMAC, so a temporary macro spells it out with the padded keys as constants, after the same
  normalisation in SQL. That is four portable-C SHA-256 blocks per value, ~1.3 µs/value:
  alone more than twice the cost of writing the whole table to Parquet.

A pseudonym is the first 128 bits of the HMAC in lowercase hex (32 characters; ample against
collisions for billions of values). The raw-PII check verifies pseudonymised columns by shape
(every value must be such a token) rather than by looking for ID-like digit runs, which hex
text contains by chance.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache

import duckdb
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from duckdb.func import FunctionNullHandling, PythonUDFType
from sqlmodel import Session

from access import native as native_hmac
from access.models import PseudonymKey
from catalog.models import ItemKind
from kernel.settings import get_settings
from translog import keys as log_keys

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


# How each kind of value is normalised before hashing (``access.native`` flags), so equal
# things get equal pseudonyms: ``11010119900307001x`` and ``11010119900307001X`` are the same
# person, and so are ``138 1234 5678`` and ``13812345678``. Every value is trimmed of ASCII
# whitespace and the ideographic space U+3000; case folding is ASCII only (IDs, e-mail).
_NORMS = {ItemKind.resident_id: ("upper", native_hmac.TRIM | native_hmac.UPPER),
          ItemKind.mobile: ("digits", native_hmac.TRIM | native_hmac.DIGITS),
          ItemKind.bank_card: ("digits", native_hmac.TRIM | native_hmac.DIGITS),
          ItemKind.email: ("lower", native_hmac.TRIM | native_hmac.LOWER)}
_TEXT = ("text", native_hmac.TRIM)
_ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"
_SPACES_SQL = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(12288)"


def _norm(kind: ItemKind | None) -> tuple[str, int]:
    return _NORMS.get(kind, _TEXT) if kind is not None else _TEXT


def install(con: duckdb.DuckDBPyConnection, key: bytes, *, native: bool = True) -> None:
    """Define ``gs_pseudonym_<norm>(varchar) -> varchar`` for each normalisation (the
    32-hex token; NULL stays NULL and a value empty once normalised becomes empty) with this
    key on the (private) connection: native functions when ``access.native`` is available,
    else SQL macros. Both give the same tokens (tests/test_access_masking.py)."""
    lib = native_hmac.load() if native else None
    if lib is None:
        _install_macros(con, key)
        return
    for name, norm in functions().items():
        con.create_function(name, native_hmac.udf(lib, key, TOKEN_HEX_CHARS, norm),
                            [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                            type=PythonUDFType.ARROW,
                            null_handling=FunctionNullHandling.SPECIAL, side_effects=False)


def functions() -> dict[str, int]:
    """Every pseudonym function's SQL name → its ``access.native`` normalisation flags."""
    return {f"{_FUNCTION}_{name}": norm for name, norm in {*_NORMS.values(), _TEXT}}


def _install_macros(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    padded = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(_BLOCK, b"\0")
    ipad = bytes(b ^ 0x36 for b in padded).hex()
    opad = bytes(b ^ 0x5C for b in padded).hex()
    con.execute(f"CREATE OR REPLACE TEMP MACRO {_MACRO}(m) AS "
                f"sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}') || m)))")
    con.execute(f"CREATE OR REPLACE TEMP MACRO {_FUNCTION}(v) AS CASE WHEN v = '' THEN '' "
                f"ELSE left({_MACRO}(encode(v)), {TOKEN_HEX_CHARS}) END")
    trimmed = f"trim(v, {_SPACES_SQL})"
    bodies = {
        "text": trimmed,
        "upper": f"translate({trimmed}, '{_ASCII_LOWER}', '{_ASCII_LOWER.upper()}')",
        "lower": f"translate({trimmed}, '{_ASCII_LOWER.upper()}', '{_ASCII_LOWER}')",
        "digits": "regexp_replace(v, '[^0-9]', '', 'g')",
    }
    for name, body in bodies.items():
        con.execute(f"CREATE OR REPLACE TEMP MACRO {_FUNCTION}_{name}(v) AS "
                    f"{_FUNCTION}({body})")


def is_token_call(sql: str, column_sql: str) -> bool:
    """Whether ``sql`` is exactly one of the installed pseudonym functions applied to
    ``column_sql``: its values are then 32-hex tokens, '' or NULL by construction (the
    native function writes only [0-9a-f] and is self-tested; the macro is ``left(sha256)``).
    Checked on the text itself, independently of ``hmac_sql``, so a broken rule that
    emits anything else is still read back by the raw-PII check."""
    names = "|".join(map(re.escape, functions()))
    pattern = rf"(?:{names})\(CAST\({re.escape(column_sql)} AS VARCHAR\)\)"
    return re.fullmatch(pattern, sql) is not None


def hmac_sql(value_sql: str, kind: ItemKind | None) -> str:
    """SQL for the pseudonym of ``value_sql``: NULL stays NULL, a value empty once
    normalised becomes empty."""
    return f"{_FUNCTION}_{_norm(kind)[0]}(CAST({value_sql} AS VARCHAR))"


def pseudonym(key: bytes, value: str, kind: ItemKind | None = None) -> str:
    """The same pseudonym in Python (tests and the documentation's examples)."""
    import hmac

    text = native_hmac.normalise(value, _norm(kind)[1])
    if text == "":
        return ""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]
