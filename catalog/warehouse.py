"""The data plane: every data version is an immutable DuckDB file (a *segment*).

Why one file per version rather than one shared DuckDB database: a segment is written to a
temporary name and renamed into place only when complete, so a crash never leaves half a
version visible; once written it never changes, so any number of worker processes can open
it read-only at once (DuckDB allows many read-only openers of a file but only one writer);
and old versions stay readable for audits and deliveries made from them.

The data as of version N is the segments from the last ``replace`` up to N, read through a
view ``data`` that UNIONs them.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import struct
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import pyarrow as pa

from catalog.excel import check_xlsx
from kernel.problems import Invalid, TooLarge, Unsupported

CHUNK = 1024 * 1024
# DuckDB spills to disk beyond this, so a 1 GB upload never needs 1 GB of memory.
DUCKDB_MEMORY_LIMIT = "1GB"
MEMORY_LIMIT_SQL = f"SET memory_limit='{DUCKDB_MEMORY_LIMIT}'"
TABLE = "data"


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"
    xlsx = "xlsx"
    xls = "xls"
    database = "database"  # pulled from a department's database (catalog.sources)


_EXTENSIONS: dict[str, Format] = {
    ".csv": Format.csv, ".tsv": Format.csv, ".txt": Format.csv, ".csv.gz": Format.csv,
    ".parquet": Format.parquet, ".pq": Format.parquet,
    ".jsonl": Format.jsonl, ".ndjson": Format.jsonl, ".json": Format.jsonl,
    ".xlsx": Format.xlsx, ".xlsm": Format.xlsx, ".xls": Format.xls,
}


@dataclass(frozen=True)
class StagedFile:
    path: Path
    format: Format
    bytes: int
    sha256: str
    transcoded_from: str | None = None


def detect_format(filename: str) -> Format:
    name = Path(filename).name.lower()
    for ext in sorted(_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return _EXTENSIONS[ext]
    known = ", ".join(sorted(_EXTENSIONS))
    raise Unsupported(f"Cannot tell the format of '{Path(filename).name}'. Use one of: {known}.",
                      key="upload.format", params={"name": Path(filename).name, "known": known})


def staging_dir(warehouse: Path) -> Path:
    path = warehouse / "_staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stage(src: BinaryIO, filename: str, warehouse: Path, *, max_bytes: int) -> StagedFile:
    """Copy an upload to a private staging file in chunks (bounded memory), hashing it.

    The client's file name is used only for its extension: path tricks in it never reach the
    file system. CSV that is not UTF-8 (GB 18030 exports are common) is transcoded.
    """
    fmt = detect_format(filename)
    suffix = f".{fmt.value}"
    if filename.lower().endswith(".gz"):
        # Decompressed here, with the limit counted on the *decompressed* bytes: a gzip bomb
        # (kilobytes that expand to terabytes) stops at the limit instead of filling the disk.
        src = gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[assignment]
    dest = staging_dir(warehouse) / f"{uuid.uuid4().hex}{suffix}"
    digest, size = hashlib.sha256(), 0
    utf8 = _Utf8Check() if fmt is Format.csv else None
    try:
        with dest.open("wb") as out:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"The file is larger than the limit of {max_bytes:,} bytes"
                                   " (for .gz files: once decompressed).",
                                   key="upload.too_large", params={"limit": f"{max_bytes:,}"})
                digest.update(chunk)
                if utf8 is not None:
                    utf8.update(chunk)
                out.write(chunk)
        if size == 0:
            raise Invalid("The file is empty. Export the data with a header row and try again.")
        if fmt is Format.parquet:
            _check_parquet(dest, max_bytes)
        if fmt is Format.xlsx:
            check_xlsx(dest, max_bytes)
        transcoded = _transcode(dest) if utf8 is not None and not utf8.done() else None
    except (OSError, EOFError, zlib.error) as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, gzip.BadGzipFile | EOFError | zlib.error):
            raise Invalid(f"The .gz file is damaged or not gzip: {exc}",
                          key="upload.bad_gzip", params={"reason": str(exc)}) from None
        raise
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return StagedFile(dest, fmt, size, digest.hexdigest(), transcoded)


def _check_parquet(path: Path, max_bytes: int) -> None:
    """Refuse a Parquet file whose pages would expand beyond the upload limit (compression and
    run-length encoding make a "parquet bomb" of a few KB possible), before DuckDB reads it."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several types for a damaged footer
        raise Invalid(f"The file is not readable as Parquet: {str(exc)[:200]}",
                      key="upload.bad_parquet", params={"reason": str(exc)[:200]}) from None
    expanded = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            # The page sizes do not count what dictionary and run-length encoding expand to:
            # estimate every value at its type's width (strings: the longest in the stats).
            expanded += max(chunk.total_uncompressed_size,
                            chunk.num_values * _value_width(chunk))
    if expanded > max_bytes:
        raise TooLarge(f"The Parquet file expands to {expanded:,} bytes, beyond the limit of "
                       f"{max_bytes:,} bytes.", key="upload.parquet_expands",
                       params={"size": f"{expanded:,}", "limit": f"{max_bytes:,}"})


_WIDTHS = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}


def _value_width(chunk: Any) -> int:
    if chunk.physical_type in _WIDTHS:
        return _WIDTHS[chunk.physical_type]
    stats = chunk.statistics
    if stats is not None and stats.has_min_max and isinstance(stats.max, str | bytes):
        return max(len(stats.max), 1)
    return 1


class _Utf8Check:
    """Whether the bytes fed in, chunk by chunk, are UTF-8: checked as they are staged (no
    second read) by Arrow's vectorised validation, ~8× Python's decoder on CJK text. A
    character cut by a chunk boundary is carried over to the next chunk."""

    def __init__(self) -> None:
        self.ok = True
        self.tail = b""

    def update(self, chunk: bytes) -> None:
        if not self.ok:
            return
        data = self.tail + chunk if self.tail else chunk
        cut = _complete_utf8(data)
        self.tail = data[cut:]
        offsets = pa.py_buffer(struct.pack("<ii", 0, cut))
        try:
            pa.StringArray.from_buffers(1, offsets, pa.py_buffer(data[:cut])).validate(full=True)
        except pa.ArrowInvalid:
            self.ok = False

    def done(self) -> bool:
        """True when everything fed in was UTF-8 (no character left unfinished)."""
        return self.ok and not self.tail


def _complete_utf8(data: bytes) -> int:
    """The length of ``data`` without a UTF-8 sequence cut short at its end."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte < 0x80:
            return n
        if byte >= 0xC0:  # the lead byte of the last sequence: is it complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return n if back >= need else n - back
    return n  # only continuation bytes: not UTF-8, the validation says so


def _transcode(path: Path) -> str:
    """Transcode a GB 18030 (superset of GBK/GB2312) CSV to UTF-8 in place, streaming."""
    tmp = path.with_suffix(".utf8.tmp")
    try:
        with path.open("rb") as raw, tmp.open("w", encoding="utf-8", newline="") as out:
            reader = codecs.getreader("gb18030")(raw, "strict")
            while text := reader.read(CHUNK):
                out.write(text)
    except UnicodeDecodeError as exc:
        tmp.unlink(missing_ok=True)
        raise Invalid("The CSV file is neither UTF-8 nor GB 18030 text. Save it as UTF-8 "
                      f"(error near byte {exc.start}).",
                      key="problem.catalog.csv_encoding", params={"start": exc.start}) from None
    # A staging file, not published data: after a crash the upload is gone anyway and staging
    # is swept, so no fsync (kernel.storage) is spent on it.
    os.replace(tmp, path)
    return "gb18030"


# --- ingest ----------------------------------------------------------------------------------

def connect(path: str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(path, read_only=read_only)
    con.execute(MEMORY_LIMIT_SQL)
    # Never let a query on behalf of a user reach beyond the files we hand it.
    return con


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def escape_path(path: Path) -> str:
    """A path inside a single-quoted SQL string literal."""
    return str(path).replace("'", "''")


# --- reading ---------------------------------------------------------------------------------

@contextmanager
def open_data(segments: Sequence[Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with a read-only view ``data`` over the segments."""
    if not segments:
        raise Invalid("This resource has no data yet.")
    con = connect()
    try:
        for statement in data_view_sql(segments):
            con.execute(statement)
        yield con
    finally:
        con.close()


def data_view_sql(segments: Sequence[Path]) -> list[str]:
    """The statements that give a fresh connection the read-only view ``data`` over the
    segments (``open_data``; also for connections opened outside Python's API)."""
    statements = [f"ATTACH '{escape_path(seg)}' AS seg{i} (READ_ONLY)"
                  for i, seg in enumerate(segments)]
    parts = " UNION ALL ".join(f"SELECT * FROM seg{i}.{TABLE}" for i in range(len(segments)))
    return [*statements, f"CREATE TEMP VIEW {TABLE} AS {parts}"]


def new_segment_path(warehouse: Path, resource_code: str, version: int) -> Path:
    # A random suffix keeps a retried upload from ever colliding with an orphan of a crash.
    return warehouse / resource_code / f"v{version:05d}-{uuid.uuid4().hex[:8]}.duckdb"
