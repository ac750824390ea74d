/* The Python face of the native library (access/native/__init__.py): an empty extension
 * module, so that setuptools builds hmac_sha256.c, pii_scan.c and duckdb_copy.c when the
 * package is installed (setup.py) and Python's import machinery finds the result. The
 * functions themselves are plain C, called through ctypes on this module's file. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native",
    "govshare's native vector functions (HMAC pseudonyms, PII prefilter, DuckDB C API COPY).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
