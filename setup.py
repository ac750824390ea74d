"""Builds the native library of access/native at install time, as a normal extension module.

``pip install .`` (and ``pip install -e .``, ``make run``, ``make test``) compile it; a
failure stops the install with the compiler's message, rather than surfacing later on a
production host. A server never invokes a compiler. ``GOVSHARE_NO_NATIVE=1`` skips the build
on purpose: pseudonyms then use DuckDB SQL (~9x slower), which the server logs loudly and
reports in /healthz and /metrics (access/native/__init__.py).

No OpenSSL headers are needed: the library is linked against the libcrypto that this
Python's own ``hashlib`` uses, so the server process never loads a second OpenSSL.
"""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

from setuptools import Extension, setup


def _libcrypto() -> str:
    import _hashlib  # noqa: F401  (maps this Python's libcrypto into the process)

    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1] if line.split() else ""
            if "/libcrypto.so" in path and os.path.isfile(path):
                return path
    except OSError:
        pass
    name = ctypes.util.find_library("crypto")
    if name is None:
        raise SystemExit("govshare's native library needs libcrypto (OpenSSL), which this "
                         "Python's hashlib should use; none found. Install OpenSSL, or set "
                         "GOVSHARE_NO_NATIVE=1 to install without it (pseudonyms ~9x slower).")
    return f"-l:{name}"


def _extensions() -> list[Extension]:
    if os.environ.get("GOVSHARE_NO_NATIVE") == "1":
        return []
    crypto = _libcrypto()
    folder = "access/native"
    return [Extension(
        "access.native._native",
        sources=[f"{folder}/{n}" for n in
                 ("_module.c", "hmac_sha256.c", "pii_scan.c", "duckdb_copy.c")],
        extra_compile_args=["-O2"],
        extra_link_args=[crypto],
    )]


setup(ext_modules=_extensions())
