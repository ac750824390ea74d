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
import queue
import shutil
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import pyarrow as pa

from catalog.models import DUCKDB_TYPES, ItemType
from kernel import storage
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
    database = "database"  # pulled from a department's database (catalog.sources)


_EXTENSIONS: dict[str, Format] = {
    ".csv": Format.csv, ".tsv": Format.csv, ".txt": Format.csv, ".csv.gz": Format.csv,
    ".parquet": Format.parquet, ".pq": Format.parquet,
    ".jsonl": Format.jsonl, ".ndjson": Format.jsonl, ".json": Format.jsonl,
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ItemType


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
    try:
        with dest.open("wb") as out:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"The file is larger than the limit of {max_bytes:,} bytes"
                                   " (for .gz files: once decompressed).",
                                   key="upload.too_large", params={"limit": f"{max_bytes:,}"})
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise Invalid("The file is empty. Export the data with a header row and try again.")
        if fmt is Format.parquet:
            _check_parquet(dest, max_bytes)
        transcoded = _ensure_utf8(dest) if fmt is Format.csv else None
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


def _ensure_utf8(path: Path) -> str | None:
    """Transcode a GB 18030 (superset of GBK/GB2312) CSV to UTF-8 in place, streaming."""
    if _is_utf8(path):
        return None
    tmp = path.with_suffix(".utf8.tmp")
    try:
        with path.open("rb") as raw, tmp.open("w", encoding="utf-8", newline="") as out:
            reader = codecs.getreader("gb18030")(raw, "strict")
            while text := reader.read(CHUNK):
                out.write(text)
    except UnicodeDecodeError as exc:
        tmp.unlink(missing_ok=True)
        raise Invalid("The CSV file is neither UTF-8 nor GB 18030 text. Save it as UTF-8 "
                      f"(error near byte {exc.start}).") from None
    # A staging file, not published data: after a crash the upload is gone anyway and staging
    # is swept, so no fsync (kernel.storage) is spent on it.
    os.replace(tmp, path)
    return "gb18030"


def _is_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as raw:
            while chunk := raw.read(CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


# --- ingest ----------------------------------------------------------------------------------

def connect(path: str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(path, read_only=read_only)
    con.execute(MEMORY_LIMIT_SQL)
    # Never let a query on behalf of a user reach beyond the files we hand it.
    return con


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ingest(staged: StagedFile, columns: Sequence[Column], segment: Path) -> int:
    """Load the staged file into a new segment with the declared columns and types.

    Raises ``Invalid`` naming the exact columns (and lines) at fault; on any failure no
    segment exists afterwards. Returns the number of rows.
    """
    segment.parent.mkdir(parents=True, exist_ok=True)
    tmp = segment.with_name(segment.name + ".tmp")
    # Spill files of its own: ingests run concurrently (threads, worker processes) into the
    # same folder, and each removes its spill directory when done.
    spill = segment.with_name(segment.name + ".spill")
    tmp.unlink(missing_ok=True)
    try:
        con = connect(str(tmp))
        try:
            con.execute(f"SET temp_directory='{_escape(spill)}'")
            _check_columns(_source_columns(con, staged), columns)
            _LOADERS[staged.format](con, staged.path, columns)
            rows = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
            count = int(rows[0]) if rows else 0
            if count == 0:
                raise Invalid("The file has a header but no data rows.")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        storage.publish(tmp, segment)
    except duckdb.Error as exc:
        raise Invalid(f"The file could not be read as {staged.format.value}: "
                      f"{_first_line(exc)}", key="upload.unreadable",
                      params={"format": staged.format.value,
                              "reason": _first_line(exc)}) from None
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    return count


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300]


def _source_columns(con: duckdb.DuckDBPyConnection, staged: StagedFile) -> dict[str, str]:
    """Column name → DuckDB type as the file itself declares or DuckDB detects it."""
    source = {
        Format.csv: "read_csv(?, header=true, all_varchar=true)",
        Format.parquet: "read_parquet(?)",
        Format.jsonl: "read_json(?, format='newline_delimited')",
    }[staged.format]
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}", [str(staged.path)]).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _check_columns(found: dict[str, str], declared: Sequence[Column]) -> None:
    names = [c.name for c in declared]
    missing = [n for n in names if n not in found]
    extra = [n for n in found if n not in names]
    errors = [{"column": n, "problem": "declared as a data item but not in the file"}
              for n in missing]
    errors += [{"column": n, "problem": "in the file but not declared as a data item"}
               for n in extra]
    keys: list[tuple[str, dict[str, Any]] | None] = [("upload.missing_column", {})] * len(missing)
    keys += [("upload.extra_column", {})] * len(extra)
    if errors:
        parts = []
        if missing:
            parts.append("missing from the file: " + ", ".join(missing))
        if extra:
            parts.append("not declared: " + ", ".join(extra))
        raise Invalid("The file's columns do not match the declared data items ("
                      + "; ".join(parts) + "). Nothing was stored.", errors=errors,
                      key="upload.columns_mismatch", error_keys=keys,
                      params={"missing": ", ".join(missing) or "—",
                              "extra": ", ".join(extra) or "—"})


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, columns: Sequence[Column]) -> None:
    types = ", ".join(f"{_sql_str(c.name)}: '{DUCKDB_TYPES[c.type]}'" for c in columns)
    select = ", ".join(quote(c.name) for c in columns)
    con.execute(
        f"CREATE TABLE {TABLE} AS SELECT {select} FROM read_csv(?, header=true, "
        f"types={{{types}}}, store_rejects=true)",
        [str(path)],
    )
    _raise_on_rejects(con, columns)


def _raise_on_rejects(con: duckdb.DuckDBPyConnection, columns: Sequence[Column]) -> None:
    rejects = con.execute(
        "SELECT column_name, error_type, count(*) AS n, min(line) AS first_line "
        "FROM reject_errors GROUP BY ALL ORDER BY first_line"
    ).fetchall()
    if not rejects:
        return
    declared = {c.name: c.type for c in columns}
    errors = []
    keys: list[tuple[str, dict[str, Any]] | None] = []
    for column, error_type, n, first_line in rejects:
        if column and error_type == "CAST":
            problem = (f"{n} value(s) are not valid {declared[column].value}, "
                       f"first on line {first_line}")
            keys.append(("upload.cast", {"n": n, "type": declared[column].value,
                                         "line": first_line}))
        else:
            problem = (f"{n} malformed row(s) ({str(error_type).lower()}), "
                       f"first on line {first_line}")
            keys.append(("upload.malformed", {"n": n, "kind": str(error_type).lower(),
                                              "line": first_line}))
        errors.append({"column": column, "problem": problem, "rows": n, "first_line": first_line})
    where = ", ".join(sorted({str(e["column"]) for e in errors if e["column"]})) or "row structure"
    raise Invalid(f"Some values do not match the declared types ({where}). Nothing was stored.",
                  errors=errors, error_keys=keys, key="upload.types_mismatch",
                  params={"where": where})


# Typed formats: which source types may fill each declared type without losing meaning.
_COMPATIBLE: dict[ItemType, tuple[str, ...]] = {
    ItemType.string: ("VARCHAR",),
    ItemType.integer: ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                       "UINTEGER", "UBIGINT", "HUGEINT"),
    ItemType.decimal: ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE",
                       "DECIMAL", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"),
    ItemType.boolean: ("BOOLEAN",),
    ItemType.date: ("DATE", "TIMESTAMP"),
    ItemType.datetime: ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS",
                        "TIMESTAMP_S", "DATE"),
}


def _compatible(source_type: str, declared: ItemType) -> bool:
    base = source_type.split("(")[0].upper()
    return base in _COMPATIBLE[declared] or (base == "NULL")


def _load_parquet(con: duckdb.DuckDBPyConnection, path: Path, columns: Sequence[Column]) -> None:
    found = _described(con, f"read_parquet('{_escape(path)}')")
    wrong = [c for c in columns if not _compatible(found[c.name], c.type)]
    errors = [{"column": c.name, "problem": f"declared {c.type.value}, file has {found[c.name]}"}
              for c in wrong]
    if errors:
        cols = ", ".join(str(e["column"]) for e in errors)
        raise Invalid(f"Some columns have types other than declared ({cols}). Nothing was stored.",
                      errors=errors, key="upload.column_types", params={"cols": cols},
                      error_keys=[("upload.declared_vs_file",
                                   {"type": c.type.value, "found": found[c.name]})
                                  for c in wrong])
    select = ", ".join(f"CAST({quote(c.name)} AS {DUCKDB_TYPES[c.type]}) AS {quote(c.name)}"
                       for c in columns)
    con.execute(f"CREATE TABLE {TABLE} AS SELECT {select} FROM read_parquet(?)", [str(path)])


def _load_jsonl(con: duckdb.DuckDBPyConnection, path: Path, columns: Sequence[Column]) -> None:
    # Read every field as text, then cast strictly, so a wrong value is reported per column.
    as_text = ", ".join(f"{_sql_str(c.name)}: 'VARCHAR'" for c in columns)
    source = f"read_json('{_escape(path)}', format='newline_delimited', columns={{{as_text}}})"
    checks = ", ".join(
        f"count(*) FILTER (WHERE {quote(c.name)} IS NOT NULL AND "
        f"TRY_CAST({quote(c.name)} AS {DUCKDB_TYPES[c.type]}) IS NULL)"
        for c in columns
    )
    bad = con.execute(f"SELECT {checks} FROM {source}").fetchone() or ()
    wrong = [(c, n) for c, n in zip(columns, bad, strict=True) if n]
    errors = [{"column": c.name, "problem": f"{n} value(s) are not valid {c.type.value}",
               "rows": n} for c, n in wrong]
    if errors:
        cols = ", ".join(str(e["column"]) for e in errors)
        raise Invalid(f"Some values do not match the declared types ({cols}). Nothing was stored.",
                      errors=errors, key="upload.types_mismatch", params={"where": cols},
                      error_keys=[("upload.cast_count", {"n": n, "type": c.type.value})
                                  for c, n in wrong])
    select = ", ".join(f"CAST({quote(c.name)} AS {DUCKDB_TYPES[c.type]}) AS {quote(c.name)}"
                       for c in columns)
    con.execute(f"CREATE TABLE {TABLE} AS SELECT {select} FROM {source}")


_LOADERS = {Format.csv: _load_csv, Format.parquet: _load_parquet, Format.jsonl: _load_jsonl}


# --- Arrow streams (database sources) -------------------------------------------------------

# PostgreSQL NUMERIC arrives from ADBC as an opaque extension over its exact decimal text;
# the text is cast to the declared DECIMAL exactly, so it counts as a decimal source.
_EXACT_TEXT_TYPES = {"numeric"}


def ingest_arrow(reader: pa.RecordBatchReader, columns: Sequence[Column],
                 segment: Path) -> tuple[int, str]:
    """Load an Arrow stream (a database pull) into a new segment, streaming: DuckDB pulls
    the batches as it writes, so neither the stream nor the table is ever whole in memory.

    Columns match the declared items by name; types must be compatible as for Parquet.
    Returns the row count and the SHA-256 of the stream's batches (the pull's content hash,
    to tell an unchanged source from a changed one). All or nothing, like ``ingest``.
    """
    schema, exact = _plain_schema(reader.schema)
    found = {f.name: _arrow_duckdb_type(f, exact) for f in schema}
    _check_columns(found, columns)
    errors = [{"column": c.name, "problem": f"declared {c.type.value}, source has {found[c.name]}"}
              for c in columns if not _compatible(found[c.name], c.type)]
    if errors:
        cols = ", ".join(str(e["column"]) for e in errors)
        raise Invalid(f"Some columns have types other than declared ({cols}). Nothing was stored.",
                      errors=errors)
    digest = hashlib.sha256()
    stream = pa.RecordBatchReader.from_batches(schema, _hashed(reader, schema, digest))
    select = ", ".join(f"CAST({quote(c.name)} AS {DUCKDB_TYPES[c.type]}) AS {quote(c.name)}"
                       for c in columns)
    segment.parent.mkdir(parents=True, exist_ok=True)
    tmp = segment.with_name(segment.name + ".tmp")
    spill = segment.with_name(segment.name + ".spill")
    tmp.unlink(missing_ok=True)
    try:
        con = connect(str(tmp))
        try:
            con.execute(f"SET temp_directory='{_escape(spill)}'")
            con.register("pulled", stream)
            con.execute(f"CREATE TABLE {TABLE} AS SELECT {select} FROM pulled")
            con.unregister("pulled")
            count = int((con.execute(f"SELECT count(*) FROM {TABLE}").fetchone() or (0,))[0])
            if count == 0:
                raise Invalid("The source returned no rows; nothing was stored.")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        storage.publish(tmp, segment)
    except duckdb.ConversionException as exc:
        raise Invalid("Some values do not match the declared types: "
                      f"{_first_line(exc)}. Nothing was stored.") from None
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    return count, digest.hexdigest()


def _plain_schema(schema: pa.Schema) -> tuple[pa.Schema, set[str]]:
    """The schema with opaque extension columns replaced by their storage type, and the
    names of those whose text is an exact number."""
    fields, exact = [], set()
    for f in schema:
        if isinstance(f.type, pa.BaseExtensionType):
            meta = f.metadata or {}
            if meta.get(b"POSTGRESQL:type", b"").decode() in _EXACT_TEXT_TYPES:
                exact.add(f.name)
            f = pa.field(f.name, f.type.storage_type, f.nullable, f.metadata)
        fields.append(f)
    return pa.schema(fields), exact


def _arrow_duckdb_type(f: pa.Field, exact: set[str]) -> str:
    if f.name in exact:
        return "DECIMAL"
    t = f.type
    for test, name in _ARROW_TYPES:
        if test(t):
            return name
    return str(t).upper()


_ARROW_TYPES: list[tuple[Callable[[pa.DataType], bool], str]] = [
    (pa.types.is_boolean, "BOOLEAN"), (pa.types.is_int8, "TINYINT"),
    (pa.types.is_int16, "SMALLINT"), (pa.types.is_int32, "INTEGER"),
    (pa.types.is_int64, "BIGINT"), (pa.types.is_floating, "DOUBLE"),
    (pa.types.is_decimal, "DECIMAL"), (pa.types.is_date, "DATE"),
    (lambda t: pa.types.is_timestamp(t) and t.tz is not None, "TIMESTAMP WITH TIME ZONE"),
    (pa.types.is_timestamp, "TIMESTAMP"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "VARCHAR"),
]


def _hashed(reader: pa.RecordBatchReader, schema: pa.Schema,
            digest: Any) -> Iterator[pa.RecordBatch]:
    """The batches with their extension columns unwrapped, hashed on the way.

    A reader thread keeps the next batches coming while DuckDB writes the previous ones
    (the driver and hashlib release the GIL), so the pull takes about as long as the slower
    of the two rather than their sum."""
    ahead: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(maxsize=4)

    def produce() -> None:
        try:
            for batch in reader:
                plain = pa.RecordBatch.from_arrays(
                    [c.storage if isinstance(c, pa.ExtensionArray) else c
                     for c in batch.columns], schema=schema)
                digest.update(plain.serialize())
                ahead.put(plain)
            ahead.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            ahead.put(exc)

    thread = threading.Thread(target=produce, name="pull-reader", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        thread.join(timeout=0)


def _described(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _escape(path: Path) -> str:
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
    statements = [f"ATTACH '{_escape(seg)}' AS seg{i} (READ_ONLY)"
                  for i, seg in enumerate(segments)]
    parts = " UNION ALL ".join(f"SELECT * FROM seg{i}.{TABLE}" for i in range(len(segments)))
    return [*statements, f"CREATE TEMP VIEW {TABLE} AS {parts}"]


def new_segment_path(warehouse: Path, resource_code: str, version: int) -> Path:
    # A random suffix keeps a retried upload from ever colliding with an orphan of a crash.
    return warehouse / resource_code / f"v{version:05d}-{uuid.uuid4().hex[:8]}.duckdb"
