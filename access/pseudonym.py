"""Keyed pseudonymisation: HMAC-SHA256 with a per-requester-department key, in DuckDB SQL.

Each requesting department has its own random 256-bit key, so the same resident ID gets the
same pseudonym in every package that department receives (it can join them) but different
pseudonyms in two departments' packages (they cannot link theirs). Keys are stored AES-GCM
encrypted under the ``pseudonym-keys`` purpose key (``kernel.secrets``, derived from the master
secret), bound to the department id as associated data, and never leave the server. Rotating
the master secret re-seals them (``rewrap_all``); the keys themselves, and so the pseudonyms,
do not change.

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
from sqlmodel import Session, select

from access import native as native_hmac
from access.models import PseudonymKey
from catalog.models import ItemKind
from kernel import secrets
from kernel.settings import Mode, get_settings

_BLOCK = 64  # SHA-256 block size
_MACRO = "gs_hmac_sha256"
_FUNCTION = "gs_pseudonym"
TOKEN_HEX_CHARS = 32
TOKEN_PATTERN = f"[0-9a-f]{{{TOKEN_HEX_CHARS}}}"


class KeyUnavailable(RuntimeError):
    """A stored key cannot be decrypted (no master secret, or a tampered row)."""


def _aad(department_id: int) -> bytes:
    return f"govshare pseudonym key v1 department {department_id}".encode()


@lru_cache(maxsize=64)
def _legacy_kek(passphrase: bytes, salt: bytes) -> bytes:
    # Rows sealed before the master secret: scrypt of the passphrase, one salt per row.
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(passphrase)


def _legacy_passphrase() -> bytes:
    settings = get_settings()
    if settings.key_passphrase is not None:
        return settings.key_passphrase.get_secret_value().encode()
    if settings.mode is Mode.development:
        return secrets.DEV_PASSPHRASE.encode()
    raise KeyUnavailable("A pseudonymisation key predates the master secret: set the "
                         "GOVSHARE_KEY_PASSPHRASE it was sealed with and run `govshare keys "
                         "rotate --rewrap-only`.")


def _open(row: PseudonymKey) -> bytes:
    aad = _aad(row.department_id)
    try:
        if row.kid is None:
            return AESGCM(_legacy_kek(_legacy_passphrase(), row.salt)).decrypt(
                row.nonce, row.ciphertext, aad)
        return secrets.unseal(secrets.PSEUDONYM_KEYS, row.kid, row.nonce + row.ciphertext, aad)
    except (InvalidTag, secrets.SecretsUnavailable) as exc:
        raise KeyUnavailable(f"The pseudonymisation key of department {row.department_id} "
                             f"cannot be decrypted: {exc or 'check GOVSHARE_KEY_PASSPHRASE.'}"
                             ) from None


def department_key(session: Session, department_id: int) -> bytes:
    """The department's HMAC key, created on first use (call inside a write transaction)."""
    row = session.get(PseudonymKey, department_id)
    if row is None:
        row = _create(session, department_id)
    return _open(row)


def existing_key(session: Session, department_id: int) -> bytes | None:
    """The key if it exists (read-only sessions never create one)."""
    if session.get(PseudonymKey, department_id) is None:
        return None
    return department_key(session, department_id)


def _seal(row: PseudonymKey, key: bytes) -> None:
    try:
        row.kid, sealed = secrets.seal(secrets.PSEUDONYM_KEYS, key, _aad(row.department_id))
    except secrets.SecretsUnavailable as exc:
        raise KeyUnavailable(str(exc)) from None
    row.salt, row.nonce, row.ciphertext = b"", sealed[:12], sealed[12:]


def _create(session: Session, department_id: int) -> PseudonymKey:
    row = PseudonymKey(department_id=department_id, salt=b"", nonce=b"", ciphertext=b"")
    _seal(row, os.urandom(32))
    session.add(row)
    session.flush()
    return row


def rewrap_all(session: Session) -> int:
    """Re-seal every department's key under the current purpose key (after a master secret
    or purpose key rotation); the keys, and so the pseudonyms, stay the same."""
    rows = list(session.exec(select(PseudonymKey)))
    for row in rows:
        _seal(row, _open(row))
        session.add(row)
    session.flush()
    return len(rows)


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
    """Whether ``sql`` is one of the installed pseudonym functions applied, as the outermost
    call, to an expression of ``column_sql``: its values are then 32-hex tokens, '' or NULL
    by construction whatever the argument (the native function writes only [0-9a-f] and is
    self-tested; the macro is ``left(sha256)``). Checked on the text itself, independently
    of ``hmac_sql``, so a broken rule that emits anything else is still read back by the
    raw-PII check."""
    names = "|".join(map(re.escape, functions()))
    match = re.fullmatch(rf"(?:{names})\((.*)\)", sql, re.DOTALL)
    if match is None or f"CAST({column_sql} AS VARCHAR)" not in match.group(1):
        return False
    return _balanced(match.group(1))


def _balanced(sql: str) -> bool:
    """Parentheses balance outside string literals, never closing below zero: the call's
    own parenthesis closes at the very end, so nothing follows the pseudonym function."""
    depth, quoted = 0, False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not quoted


# GB 11643: a 15-digit ID of 1984–1999 becomes 18 digits by inserting the century "19"
# before its YYMMDD and appending the ISO 7064 MOD 11-2 check character.
_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"


def ric_18_sql(value_sql: str) -> str:
    """SQL turning a legacy 15-digit resident ID (after trimming) into its 18-digit form;
    any other value passes through unchanged. Only values whose byte length is not 18 are
    even looked at, so a column of 18-digit IDs costs one length test per value."""
    t = f"trim({value_sql}, {_SPACES_SQL})"
    body = f"(left({t}, 6) || '19' || substr({t}, 7, 9))"
    total = " + ".join(f"{w} * (ord(substr({body}, {i + 1}, 1)) - 48)"
                       for i, w in enumerate(_RIC_WEIGHTS))
    return (f"CASE WHEN strlen({value_sql}) BETWEEN 15 AND 64 AND strlen({value_sql}) <> 18 "
            f"AND regexp_full_match({t}, '[0-9]{{15}}') "
            f"THEN {body} || substr('{_RIC_CHECK}', (({total}) % 11) + 1, 1) "
            f"ELSE {value_sql} END")


def ric_18(value: str) -> str:
    """``ric_18_sql`` in Python: one person, one pseudonym whichever ID form a table holds."""
    text = value.strip(native_hmac.SPACES)
    if len(text) != 15 or not (text.isascii() and text.isdigit()):
        return value
    body = text[:6] + "19" + text[6:]
    return body + _RIC_CHECK[sum(w * int(c) for w, c in zip(_RIC_WEIGHTS, body, strict=True))
                             % 11]


def hmac_sql(value_sql: str, kind: ItemKind | None) -> str:
    """SQL for the pseudonym of ``value_sql``: NULL stays NULL, a value empty once
    normalised becomes empty. Resident IDs in the legacy 15-digit form are first converted to
    18 digits here, in SQL, so every registration of the function (C API, Arrow, macro)
    hashes the same string for one person."""
    value = f"CAST({value_sql} AS VARCHAR)"
    if kind == ItemKind.resident_id:
        value = ric_18_sql(value)
    return f"{_FUNCTION}_{_norm(kind)[0]}({value})"


def pseudonym(key: bytes, value: str, kind: ItemKind | None = None) -> str:
    """The same pseudonym in Python (tests and the documentation's examples)."""
    import hmac

    if kind == ItemKind.resident_id:
        value = ric_18(value)
    text = native_hmac.normalise(value, _norm(kind)[1])
    if text == "":
        return ""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]
