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

The library is built when govshare is installed, as the extension module
``access.native._native`` (setup.py: ``pip install .``, ``make run`` and ``make test`` do it,
and a build failure stops the install); a server never invokes a compiler. It is linked
against the libcrypto that Python's ``hashlib`` uses and called through ctypes.

Before a process uses it, a child process self-tests it against Python (``hmac``, ``re``) and
runs the C API path over a stored table: a DuckDB or OpenSSL whose layout differs from the
declarations here can then only crash that child, never the server. The path in use is one of
``duckdb-c-api`` (fastest), ``arrow`` (C API path refused) and ``sql`` (no library: DuckDB SQL,
~9x slower); anything but the first is logged as an error at start-up, and the path and its
reason are in ``/healthz`` and ``/metrics`` (``status()``).
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import re
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

_lock = threading.Lock()
_loaded: list[tuple[Native | None, Status]] = []  # [(library or None, why)] once tried

# The pseudonym paths, fastest first (status(), /healthz, /metrics).
PATH_C_API, PATH_ARROW, PATH_SQL = "duckdb-c-api", "arrow", "sql"

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


@dataclass(frozen=True)
class Status:
    path: str  # PATH_C_API, PATH_ARROW or PATH_SQL
    detail: str  # why not a faster path ("" on the fastest)


def library_file() -> Path | None:
    """The installed extension module's file, or None if govshare was installed without it."""
    try:
        spec = importlib.util.find_spec("access.native._native")
    except ImportError:
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _open(path: Path) -> Native:
    lib = ctypes.CDLL(str(path))
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
    """The C functions, or None (pseudonyms and the PII check then use DuckDB SQL)."""
    with _lock:
        if not _loaded:
            _loaded.append(_load())
            why = _loaded[0][1]
            if why.path != PATH_C_API:  # loudly: a slower path must never go unnoticed
                log.error("pseudonyms use the %s path, not %s: %s", why.path, PATH_C_API,
                          why.detail)
        return _loaded[0][0]


def status() -> Status:
    """Which pseudonym path this process uses, and why (``load`` runs first if need be)."""
    load()
    return _loaded[0][1]


def _load() -> tuple[Native | None, Status]:
    path = library_file()
    if path is None:
        return None, Status(PATH_SQL, "the native extension access.native._native is not "
                            "installed (it is built by `pip install .`; GOVSHARE_NO_NATIVE=1 "
                            "skips it): reinstall govshare on a host with a C compiler")
    checked = _self_test_in_child(path)
    if not checked.get("hmac"):
        return None, Status(PATH_SQL, f"the native library failed its self-test: "
                                      f"{checked.get('error', 'no answer')}")
    try:
        lib = _open(path)
        _self_test(lib)  # the same checks, on the library this process maps
    except Exception as exc:
        return None, Status(PATH_SQL, f"the native library failed its self-test: {exc}")
    if not checked.get("copy"):
        return (Native(lib.hmac, lib.candidates, lib.duckdb_copy, None),
                Status(PATH_ARROW, f"DuckDB's C API path failed its self-test: "
                                   f"{checked.get('copy_error', 'no answer')}"))
    return lib, Status(PATH_C_API, "")


def _self_test_in_child(path: Path) -> dict[str, Any]:
    """Run ``_child`` in another interpreter: a crash there (a struct layout that changed
    under us) costs that process, not this one."""
    code = "import sys; from access.native import _child; _child(sys.argv[1])"
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, timeout=300, check=False, cwd=_import_root())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"the self-test process could not run: {exc}"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"the self-test process exited with {done.returncode}: "
                         f"{done.stderr.strip()[-500:]}"}
    return dict(json.loads(lines[-1]))


def _import_root() -> str:
    # The folder holding the ``access`` package, so the child imports this same code.
    return str(Path(__file__).resolve().parent.parent.parent)


def _child(path: str) -> None:
    """The self-test's child process: prints {"hmac": ok, "copy": ok, ...} as JSON."""
    out: dict[str, Any] = {"hmac": False, "copy": False}
    try:
        lib = _open(Path(path))
        _self_test(lib)
        out["hmac"] = True
        problem = _check_copy(lib)
        out["copy"] = not problem
        if problem:
            out["copy_error"] = problem
    except Exception as exc:
        out["error"] = str(exc)
    print(json.dumps(out), flush=True)


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


def _check_copy(lib: Native) -> str:
    """"" if ``lib``'s C API path gives Python's tokens — over a stored table, whose
    compressed columns reach the function as dictionary vectors — else what went wrong."""
    if lib.api is None:
        return "the duckdb module does not export the C API's entry points"
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
        return f"the C API COPY failed: {exc}"
    want = [None if v is None else hmac.new(key, normalise(v, TRIM | UPPER).encode(),
                                            hashlib.sha256).hexdigest()[:32] for v in values]
    if rows != len(values) or got != want:
        return "the C API COPY's tokens differ from Python's hmac"
    return ""


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
