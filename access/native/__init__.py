"""Native vector functions for the access pipeline: HMAC pseudonyms and the PII prefilter.

Two loops that DuckDB SQL does slowly run here in C over whole vectors, never value by value
in Python, and a third file lets DuckDB call the first directly:

* ``hmac_sha256.c`` — keyed HMAC-SHA256 pseudonyms (``access.pseudonym``). DuckDB has no
  HMAC, and its ``sha256`` is portable C: HMAC spelled in SQL costs four SHA-256 blocks per
  value at ~0.3 µs each. Here the padded key blocks are absorbed once per vector and each
  value, normalised on the way in (trimmed, case-folded or reduced to digits), is hashed in
  two blocks with OpenSSL, which uses the CPU's SHA extensions. It runs as a vectorised
  DuckDB scalar function (``type='arrow'``): DuckDB hands it whole vectors and masking stays
  one DuckDB query over the whole table; the key lives in the function's closure on the
  delivery's private connection.
* ``pii_scan.c`` — the raw-PII check's prefilter (``access.pii``): which values hold a run
  of 11+ digits, or are not a pseudonym token. A regular expression per value in DuckDB cost
  more than writing the column.
* ``duckdb_copy.c`` — a file delivery's COPY on a DuckDB connection of its own, with the
  HMAC registered through DuckDB's stable C API (``copy``): DuckDB's threads call the C loop
  on their own vectors, without the Arrow round trip and the GIL the Arrow function costs.
  The C API's entry points are the ones the duckdb Python module exports, handed over as a
  table of function pointers; when they are missing, or the path's self-test over a stored
  table disagrees with Python, ``Native.api`` is None and deliveries use the Arrow function.

The library is compiled on first use with the system C compiler against the libcrypto that
Python's ``hashlib`` already loaded (no OpenSSL headers needed), cached per source hash in
``~/.cache/govshare`` (or ``$XDG_CACHE_HOME``), and self-tested against Python (``hmac``,
``re``) before it is used. Without a compiler, or on any mismatch, ``load()`` returns None
and both callers fall back to DuckDB SQL (same results, slower).
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger("govshare")

_SOURCES = tuple(Path(__file__).with_name(n)
                 for n in ("hmac_sha256.c", "pii_scan.c", "duckdb_copy.c"))
_lock = threading.Lock()
_loaded: list[Native | None] = []  # [library or None] once tried

# Normalisation flags of hmac_sha256.c (NORM_*).
TRIM, UPPER, LOWER, DIGITS = 1, 2, 4, 8
# Scan modes of pii_scan.c (SCAN_*).
SCAN_TEXT, SCAN_TOKEN = 1, 2


# DuckDB C API entry points duckdb_copy.c calls, in the order of its api_t.
API_FUNCTIONS = (
    "open", "connect", "disconnect", "close", "query", "destroy_result", "result_error",
    "value_int64", "create_scalar_function", "destroy_scalar_function",
    "scalar_function_set_name", "scalar_function_add_parameter",
    "scalar_function_set_return_type", "scalar_function_set_extra_info",
    "scalar_function_set_function", "register_scalar_function",
    "scalar_function_get_extra_info", "create_logical_type", "destroy_logical_type",
    "data_chunk_get_size", "data_chunk_get_vector", "vector_get_data", "vector_get_validity",
    "vector_ensure_validity_writable", "vector_assign_string_element_len",
    "scalar_function_set_error")


class CopyFailed(RuntimeError):
    """DuckDB refused a statement of ``copy`` (the message is DuckDB's)."""


@dataclass(frozen=True)
class Native:
    hmac: Any  # gs_hmac_sha256_hex
    candidates: Any  # gs_pii_candidates
    duckdb_copy: Any  # gs_duckdb_copy
    api: Any = None  # the DuckDB C API table for duckdb_copy, None when unavailable


def _libcrypto() -> str | None:
    """The libcrypto this interpreter's hashlib uses (so no second OpenSSL is loaded)."""
    import _hashlib  # noqa: F401  (maps it into the process)

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split()[-1] if line.split() else ""
        if "/libcrypto.so" in path and os.path.isfile(path):
            return path
    return None


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "govshare"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = base.stat()
    # A library loaded into the server must not be replaceable by anyone else.
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OSError(f"{base} is not private to this user")
    return base


def _build() -> Path:
    crypto = _libcrypto()
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if crypto is None or cc is None:
        raise OSError("no C compiler or no libcrypto")
    source = b"".join(s.read_bytes() for s in _SOURCES)
    tag = hashlib.sha256(source + crypto.encode() + sys.platform.encode()).hexdigest()[:16]
    target = _cache_dir() / f"govshare-native-{tag}.so"
    if target.exists():
        return target
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", tmp, *map(str, _SOURCES), crypto],
                       check=True, capture_output=True, timeout=60)
        os.replace(tmp, target)  # concurrent builders: the last complete one wins
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _open() -> Native:
    lib = ctypes.CDLL(str(_build()))
    mac = lib.gs_hmac_sha256_hex
    mac.argtypes = [ctypes.c_char_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    mac.restype = ctypes.c_int
    scan = lib.gs_pii_candidates
    scan.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                     ctypes.c_int, ctypes.c_void_p]
    scan.restype = ctypes.c_int64
    run = lib.gs_duckdb_copy
    run.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                    ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                    ctypes.POINTER(ctypes.c_int64), ctypes.c_char_p, ctypes.c_int]
    run.restype = ctypes.c_int
    return Native(mac, scan, run, _duckdb_api())


def _duckdb_api() -> Any:
    """DuckDB's C API as exported by the duckdb Python module, or None."""
    try:
        import _duckdb

        module = ctypes.CDLL(_duckdb.__file__)
        addresses = [ctypes.cast(getattr(module, f"duckdb_{name}"), ctypes.c_void_p).value
                     for name in API_FUNCTIONS]
    except (ImportError, OSError, AttributeError):
        return None
    return (ctypes.c_void_p * len(addresses))(*addresses)


def load() -> Native | None:
    """The C functions, or None if they cannot be built or fail their self-test."""
    with _lock:
        if not _loaded:
            try:
                lib = _open()
                _self_test(lib)
                lib = _checked_copy(lib)
            except Exception as exc:  # any failure means: use DuckDB SQL
                log.warning("native functions unavailable, pseudonyms and the PII check use "
                            "DuckDB SQL: %s", exc)
                lib = None
            _loaded.append(lib)
        return _loaded[0]


def _strings(values: pa.Array) -> tuple[int, np.ndarray, int]:
    """(length, int32 offsets, address of the data) of a string array, for the C side."""
    if values.type != pa.string():
        values = values.cast(pa.string())
    n = len(values)
    _validity, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=n + 1,
                            offset=values.offset * 4)
    data = data_buf.address if data_buf is not None and data_buf.size else 0
    return n, offsets, data


def hex_tokens(lib: Native, key: bytes, values: pa.Array, chars: int, norm: int) -> pa.Array:
    """``hmac(key, normalised value).hexdigest()[:chars]`` of every value; NULL stays NULL
    and a value empty after normalisation becomes empty."""
    return _tokens(lib, _padded(key), values, chars, norm)


def _tokens(lib: Native, key64: bytes, values: pa.Array, chars: int, norm: int) -> pa.Array:
    n, offsets, data = _strings(values)
    if n == 0:
        return pa.array([], pa.string())
    out = np.empty(n * chars, dtype=np.uint8)
    out_offsets = np.empty(n + 1, dtype=np.int32)
    rc = lib.hmac(key64, n, offsets.ctypes.data, data or out.ctypes.data, norm,
                  out.ctypes.data, out_offsets.ctypes.data, chars)
    if rc != 0:
        raise RuntimeError(f"native HMAC failed ({rc})")
    tokens = pa.py_buffer(out[: out_offsets[-1]])
    if not values.null_count:
        return pa.StringArray.from_buffers(n, pa.py_buffer(out_offsets), tokens)
    if values.offset == 0:  # the input's validity bitmap is the output's: no copy
        return pa.StringArray.from_buffers(n, pa.py_buffer(out_offsets), tokens,
                                           values.buffers()[0], values.null_count)
    result = pa.StringArray.from_buffers(n, pa.py_buffer(out_offsets), tokens)
    return pc.if_else(values.is_valid(), result, pa.scalar(None, pa.string()))


def candidates(lib: Native, values: pa.Array, mode: int, token_chars: int = 0) -> np.ndarray:
    """Indexes of the values the PII check must look at (NULLs are never candidates)."""
    n, offsets, data = _strings(values)
    out = np.empty(max(n, 1), dtype=np.int32)
    if n == 0 or data == 0:
        return out[:0]
    found = lib.candidates(mode, n, offsets.ctypes.data, data, token_chars, out.ctypes.data)
    idx = out[:found]
    if values.null_count:
        idx = idx[np.asarray(values.is_valid())[idx]]
    return idx


def _padded(key: bytes) -> bytes:
    return (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")


def udf(lib: Native, key: bytes, chars: int, norm: int) -> Callable[[Any], pa.Array]:
    """The Arrow scalar function DuckDB calls with each vector of the column."""
    key64 = _padded(key)  # once per connection, not per vector

    def tokens(values: Any) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        return _tokens(lib, key64, values, chars, norm)
    return tokens


def copy(lib: Native, key: bytes | None, functions: dict[str, int], statements: list[str],
         chars: int) -> int:
    """Run ``statements`` on a DuckDB connection of their own whose ``functions`` (name →
    normalisation) are the pseudonym functions under ``key``, called by DuckDB's threads
    through the C API; returns the last statement's first value (a COPY's row count)."""
    if lib.api is None:
        raise RuntimeError("DuckDB's C API is not available")
    chosen = functions if key is not None else {}  # no key: no pseudonymised column
    names = [n.encode() for n in chosen]
    c_names = (ctypes.c_char_p * max(len(names), 1))(*names)
    modes = (ctypes.c_int * max(len(names), 1))(*chosen.values())
    encoded = [st.encode() for st in statements]
    c_statements = (ctypes.c_char_p * len(encoded))(*encoded)
    rows, error = ctypes.c_int64(0), ctypes.create_string_buffer(2048)
    rc = lib.duckdb_copy(lib.api, _padded(key or b""), c_names, modes, len(names), chars,
                         c_statements, len(encoded), ctypes.byref(rows), error, len(error))
    if rc != 0:
        raise CopyFailed(error.value.decode(errors="replace"))
    return int(rows.value)


def _checked_copy(lib: Native) -> Native:
    """``lib`` if its C API path gives Python's tokens — over a stored table, whose
    compressed columns reach the function as dictionary vectors — else without it."""
    if lib.api is None:
        return lib
    key = os.urandom(32)
    values = [None if i % 7 == 0 else f" 4403{i % 13:02d}x{i % 3} " for i in range(5000)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db, out = Path(tmp) / "t.duckdb", Path(tmp) / "t.csv"
            con = duckdb.connect(str(db))
            con.execute("CREATE TABLE t AS SELECT CAST(i AS INTEGER) AS i, CASE WHEN i % 7 = 0 "
                        "THEN NULL ELSE ' 4403' || lpad(CAST(i % 13 AS VARCHAR), 2, '0') || 'x' "
                        "|| CAST(i % 3 AS VARCHAR) || ' ' END AS v FROM range(5000) r(i)")
            con.execute("CHECKPOINT")
            con.close()
            rows = copy(lib, key, {"gs_test": TRIM | UPPER}, [
                f"ATTACH '{db}' AS s (READ_ONLY)",
                f"COPY (SELECT i, gs_test(v) AS p FROM s.t ORDER BY i) TO '{out}' (HEADER)"], 32)
            got = [r[1] for r in duckdb.connect().execute(
                f"SELECT * FROM read_csv('{out}', all_varchar=true, header=true)").fetchall()]
    except Exception as exc:  # any failure: deliveries keep the Arrow function
        log.warning("DuckDB C API path unavailable: %s", exc)
        return Native(lib.hmac, lib.candidates, lib.duckdb_copy, None)
    want = [None if v is None else hmac.new(key, normalise(v, TRIM | UPPER).encode(),
                                            hashlib.sha256).hexdigest()[:32] for v in values]
    if rows != len(values) or got != want:
        log.warning("DuckDB C API path disagrees with Python's hmac: not used")
        return Native(lib.hmac, lib.candidates, lib.duckdb_copy, None)
    return lib


# --- self-test against Python --------------------------------------------------------------

SPACES = " \t\n\v\f\r\u3000"  # what TRIM strips: ASCII whitespace and the ideographic space


def normalise(value: str, norm: int) -> str:
    """The C normalisation in Python (the reference ``access.pseudonym.pseudonym`` uses)."""
    text = value.strip(SPACES) if norm & TRIM else value
    if norm & DIGITS:
        text = "".join(c for c in text if "0" <= c <= "9")
    if norm & UPPER:
        text = "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in text)
    if norm & LOWER:
        text = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    return text


_RUN = re.compile(r"[0-9](?:[ -]?[0-9]){10,}")  # = access.pii.PREFILTER


def _self_test(lib: Native) -> None:
    key = os.urandom(32)
    values = ["", "a", "440300194001010000", " ", "\u3000 11010119900307001x\t", "张三",
              "x" * 300, None, "1 3 8-1234-5678", "ｘ１３８１２３４５６７８", "AbC-9",
              "y" * 55, "y" * 56, " " + "z" * 55 + " "]  # one SHA-256 block or two
    arr = pa.array(values, pa.string()).slice(1)
    for norm in (TRIM, TRIM | UPPER, TRIM | LOWER, TRIM | DIGITS):
        got = hex_tokens(lib, key, arr, 32, norm).to_pylist()
        want = [None if v is None else "" if normalise(v, norm) == "" else hmac.new(
            key, normalise(v, norm).encode(), hashlib.sha256).hexdigest()[:32]
            for v in values[1:]]
        if got != want:
            raise RuntimeError(f"HMAC self-test mismatch (normalisation {norm})")
    texts = ["138 1234 5678", "138-1234-567", "1234567890-1", "12  34567890123", None, "",
             "x44030419900307002Xy", "138****5678", "1-2-3-4-5-6-7-8-9-0-1"]
    got_idx = candidates(lib, pa.array(texts, pa.string()), SCAN_TEXT).tolist()
    if got_idx != [i for i, v in enumerate(texts) if v and _RUN.search(v)]:
        raise RuntimeError("PII prefilter self-test mismatch")
    tokens = ["", "0" * 32, "0" * 31 + "g", "A" * 32, "0" * 33, None]
    if candidates(lib, pa.array(tokens, pa.string()), SCAN_TOKEN, 32).tolist() != [2, 3, 4]:
        raise RuntimeError("token prefilter self-test mismatch")
