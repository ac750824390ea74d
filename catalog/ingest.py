"""Loading a staged upload into a new segment: header matching, normalisation, type and key
checks, all or nothing.

Every format is first read into a temporary table ``raw`` (columns ``c0…``, one per declared
item, in declared order; text for CSV, JSON lines and spreadsheets, the file's own types for
Parquet). Then one aggregate pass counts normalised cells and invalid values per column, a
second finds duplicate keys (within the file and, for an append, against the data already
there), and only if all is well is the segment's table ``data`` written from ``raw``. DuckDB
spills ``raw`` to the segment's own temporary directory beyond its memory limit.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from catalog import cells, excel, messages
from catalog.headers import match_header
from catalog.models import DUCKDB_TYPES, ItemKind, ItemType
from catalog.warehouse import (
    TABLE,
    Format,
    StagedFile,
    connect,
    escape_path,
    quote,
)
from kernel import storage
from kernel.problems import Invalid

RAW = "raw"
ERROR_LINES = 5  # lines named per problem; the count says how many more


@dataclass(frozen=True)
class Column:
    name: str
    type: ItemType
    title: str = ""
    kind: ItemKind | None = None
    is_key: bool = False
    precision: int | None = None
    scale: int | None = None


@dataclass(frozen=True)
class SourceOptions:
    """Where the data is in a spreadsheet: the sheet (name, or 1-based index) and the header
    row (1-based; found by matching the declared items when not given)."""

    sheet: str | int | None = None
    header_row: int | None = None


@dataclass
class Source:
    """What ``raw`` holds and how its rows map back to the file, for messages."""

    header: list[str]  # the file's header text of each declared item, in declared order
    text: bool  # raw columns are text (to be normalised and cast) rather than typed
    line_sql: str = "rowid + 2"  # SQL giving a raw row's line (or row) number in the file
    unit: str = "line"  # or "row" (Parquet, spreadsheets)
    sheet: str | None = None  # spreadsheets: the sheet the rows are on

    @property
    def variant(self) -> str:
        """Which message variant names this source's places: line, row or sheet."""
        return "sheet" if self.sheet else self.unit
    types: list[str] = field(default_factory=list)  # typed sources: each column's type


@dataclass(frozen=True)
class Ingested:
    rows: int
    normalised: dict[str, dict[str, int]]  # item name → step → cells changed


def ingest(staged: StagedFile, columns: Sequence[Column], segment: Path, *,
           existing: Sequence[Path] = (), options: SourceOptions | None = None) -> Ingested:
    """Load the staged file into a new segment with the declared columns and types.

    ``existing``: the segments of the data an append adds to (its keys must stay unique).
    Raises ``Invalid`` naming the columns, lines and values at fault; on any failure no
    segment exists afterwards.
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
            con.execute(f"SET temp_directory='{escape_path(spill)}'")
            source = _READERS[staged.format](con, staged, columns, options or SourceOptions())
            result = _check_and_write(con, source, columns, existing)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        storage.publish(tmp, segment)
    except duckdb.Error as exc:
        raise Invalid(f"The file could not be read as {staged.format.value}: "
                      f"{_first_line(exc)}",
                      key="problem.catalog.file_unreadable",
                      params={"format": staged.format.value, "reason": _first_line(exc)}) from None
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    return result


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300]


# --- readers: the file into ``raw`` ----------------------------------------------------------


def _read_csv(con: duckdb.DuckDBPyConnection, staged: StagedFile, columns: Sequence[Column],
              options: SourceOptions) -> Source:
    path = str(staged.path)
    # The header as it is in the file: read as a data row, so that DuckDB neither renames
    # duplicates (姓名, 姓名_1) nor invents names for empty cells.
    first = con.execute("SELECT * FROM read_csv(?, header=false, all_varchar=true) LIMIT 1",
                        [path]).fetchone()
    if first is None:
        raise Invalid("The file is empty. Export the data with a header row and try again.")
    match = match_header(list(first), columns)
    names = [f"f{i}" for i in range(len(first))]
    select = ", ".join(f"f{p} AS c{i}" for i, p in enumerate(match.positions))
    name_list = "[" + ", ".join(f"'{n}'" for n in names) + "]"
    con.execute(f"CREATE TEMP TABLE {RAW} AS SELECT {select} FROM read_csv(?, header=true, "
                f"names={name_list}, all_varchar=true, store_rejects=true)", [path])
    _raise_on_rejects(con, names, [str(h) for h in first])
    return Source([match.header[p] for p in match.positions], text=True)


def _raise_on_rejects(con: duckdb.DuckDBPyConnection, names: list[str],
                      header: list[str]) -> None:
    rejects = con.execute(
        "SELECT column_name, error_type, count(*) AS n, min(line) AS first_line "
        "FROM reject_errors GROUP BY ALL ORDER BY first_line"
    ).fetchall()
    if not rejects:
        return
    by_name = dict(zip(names, header, strict=True))
    errors = [{"column": by_name.get(str(column)) if column else None,
               "problem": f"{n} malformed row(s) ({str(error_type).lower()}), "
                          f"first on line {first_line}",
               "rows": n, "first_line": first_line}
              for column, error_type, n, first_line in rejects]
    keys: list[tuple[str, dict[str, Any]] | None] = [
        ("upload.malformed", {"n": n, "kind": str(kind).lower(), "line": line})
        for _, kind, n, line in rejects]
    raise messages.refuse("upload.malformed_rows", errors=errors, error_keys=keys)


def _read_jsonl(con: duckdb.DuckDBPyConnection, staged: StagedFile, columns: Sequence[Column],
                options: SourceOptions) -> Source:
    path = escape_path(staged.path)
    keys = [str(r[0]) for r in con.execute(
        f"DESCRIBE SELECT * FROM read_json('{path}', format='newline_delimited')").fetchall()]
    match = match_header(keys, columns)
    as_text = ", ".join(f"{cells.sql_str(k)}: 'VARCHAR'" for k in keys)
    select = ", ".join(f"{quote(keys[p])} AS c{i}" for i, p in enumerate(match.positions))
    con.execute(f"CREATE TEMP TABLE {RAW} AS SELECT {select} FROM read_json('{path}', "
                f"format='newline_delimited', columns={{{as_text}}})")
    return Source([keys[p] for p in match.positions], text=True, line_sql="rowid + 1")


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


def _read_parquet(con: duckdb.DuckDBPyConnection, staged: StagedFile,
                  columns: Sequence[Column], options: SourceOptions) -> Source:
    relation = f"read_parquet('{escape_path(staged.path)}')"
    found = [(str(r[0]), str(r[1])) for r in con.execute(
        f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    return _typed_source(con, found, columns, relation, "file")


def _typed_source(con: duckdb.DuckDBPyConnection, found: list[tuple[str, str]],
                  columns: Sequence[Column], relation: str, what: str) -> Source:
    """A typed source (Parquet, a database pull) into ``raw``: its columns matched to the
    items, each of a type that fills the declared one without losing meaning."""
    match = match_header([n for n, _ in found], columns)
    picked = [found[p] for p in match.positions]
    errors = [{"column": c.name, "problem": f"declared {c.type.value}, {what} has {t}"}
              for c, (_, t) in zip(columns, picked, strict=True)
              if not _compatible(t, c.type)]
    if errors:
        cols = ", ".join(str(e["column"]) for e in errors)
        raise Invalid(f"Some columns have types other than declared ({cols}). Nothing was stored.",
                      errors=errors,
                      key="problem.catalog.column_types_differ", params={"cols": cols})
    select = ", ".join(f"{quote(n)} AS c{i}" for i, (n, _) in enumerate(picked))
    con.execute(f"CREATE TEMP TABLE {RAW} AS SELECT {select} FROM {relation}")
    return Source([n for n, _ in picked], text=False, line_sql="rowid + 1", unit="row",
                  types=[t for _, t in picked])


def _read_excel(con: duckdb.DuckDBPyConnection, staged: StagedFile,
                columns: Sequence[Column], options: SourceOptions) -> Source:
    loaded = excel.load(con, staged.path, columns, RAW, sheet=options.sheet,
                        header_row=options.header_row)
    return Source(loaded.header, text=True, line_sql="_line", unit="row", sheet=loaded.sheet)


_READERS = {Format.csv: _read_csv, Format.jsonl: _read_jsonl, Format.parquet: _read_parquet,
            Format.xlsx: _read_excel, Format.xls: _read_excel}


# --- checks and the segment ------------------------------------------------------------------


@dataclass
class _Plan:
    column: Column
    steps: cells.Steps | None  # text columns: the normalisation
    text: str  # SQL of the normalised value (text) or the typed source value
    duck_type: str = ""
    typed: str = ""  # SQL of the value in its declared type (NULL when invalid)


def _check_and_write(con: duckdb.DuckDBPyConnection, source: Source, columns: Sequence[Column],
                     existing: Sequence[Path]) -> Ingested:
    plans = []
    for i, c in enumerate(columns):
        if source.text:
            st = cells.steps(f"c{i}", c.type, c.kind)
            plans.append(_Plan(c, st, st.result))
        else:
            plans.append(_Plan(c, None, f"c{i}"))
    _decide_types(con, source, plans)
    count, normalised = _check_values(con, source, plans)
    if count == 0:
        raise messages.refuse("upload.no_rows")
    _check_keys(con, source, plans, existing)
    select = ", ".join(f"{p.typed} AS {quote(p.column.name)}" for p in plans)
    con.execute(f"CREATE TABLE {TABLE} AS SELECT {select} FROM {RAW}")
    con.execute(f"DROP TABLE {RAW}")
    return Ingested(count, normalised)


def _decide_types(con: duckdb.DuckDBPyConnection, source: Source, plans: list[_Plan]) -> None:
    """Each column's DuckDB type; a ``decimal`` without a declared precision and scale gets
    the smallest DECIMAL that holds every value of the file exactly."""
    infer = [p for p in plans if p.column.type is ItemType.decimal
             and (p.column.precision is None or p.column.scale is None)]
    found: dict[str, tuple[int, int]] = {}
    if infer:
        aggs = []
        for p in infer:
            text = p.text if source.text else f"CAST({p.text} AS VARCHAR)"
            aggs += [f"coalesce(max({cells.decimal_integer_digits_sql(text)}), 0)",
                     f"coalesce(max({cells.decimal_scale_sql(text)}), 0)"]
        row = con.execute(f"SELECT {', '.join(aggs)} FROM {RAW}").fetchone() or ()
        for n, p in enumerate(infer):
            found[p.column.name] = (int(row[2 * n]), int(row[2 * n + 1]))
    errors = []
    for p in plans:
        c = p.column
        if c.type is not ItemType.decimal:
            p.duck_type = DUCKDB_TYPES[c.type]
        elif c.precision is not None and c.scale is not None:
            p.duck_type = cells.decimal_type(c.precision, c.scale)
        else:
            digits, scale = found[c.name]
            scale = c.scale if c.scale is not None else scale
            precision = max(digits + scale, 1, scale)
            if precision > cells.MAX_PRECISION:
                errors.append({"column": c.name, "problem": (
                    f"values need {digits} digits before and {scale} after the decimal point, "
                    f"more than the {cells.MAX_PRECISION} an exact decimal holds; declare the "
                    "item's scale (decimal places) or round the values")})
                continue
            p.duck_type = cells.decimal_type(precision, scale)
        p.typed = (cells.typed(p.text, c.type, p.duck_type) if source.text
                   else f"TRY_CAST({p.text} AS {p.duck_type})")
    if errors:
        raise messages.refuse("upload.decimal_too_wide", errors=errors,
                              cols=", ".join(str(e["column"]) for e in errors))


def _check_values(con: duckdb.DuckDBPyConnection, source: Source,
                  plans: list[_Plan]) -> tuple[int, dict[str, dict[str, int]]]:
    """One pass: rows, normalised cells per column and step, invalid values per column."""
    aggs: list[str] = ["count(*)"]
    layout: list[tuple[_Plan, list[str]]] = []
    for p in plans:
        names: list[str] = []
        if p.steps is not None:
            for step, sql in cells.change_counts(p.steps).items():
                aggs.append(sql)
                names.append(step)
        bad = f"{p.text} IS NOT NULL AND {p.typed} IS NULL"
        c = p.column
        if c.type is ItemType.decimal and c.scale is not None:
            # Casting would round extra decimal places away: refuse them instead.
            text = p.text if source.text else f"CAST({p.text} AS VARCHAR)"
            bad = f"({bad}) OR ({cells.decimal_scale_sql(text)} > {c.scale})"
        aggs += [f"count(*) FILTER (WHERE {bad})",
                 f"list({source.line_sql} ORDER BY rowid) FILTER (WHERE {bad})[1:{ERROR_LINES}]"]
        layout.append((p, names))
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {RAW}").fetchone()
    assert row is not None
    values = list(row)
    count = int(values.pop(0))
    normalised: dict[str, dict[str, int]] = {}
    errors: list[dict[str, Any]] = []
    keys: list[tuple[str, dict[str, Any]] | None] = []
    for (p, names), header in zip(layout, source.header, strict=True):
        changed = {name: int(values.pop(0)) for name in names}
        changed = {k: v for k, v in changed.items() if v}
        if changed:
            normalised[p.column.name] = changed
        bad_count, lines = int(values.pop(0)), list(values.pop(0) or [])
        if bad_count:
            c = p.column
            kind = c.type.value if c.type is not ItemType.decimal else p.duck_type.lower()
            key = f"upload.bad_values_{source.variant}"
            params = {"n": bad_count, "type": kind, "lines": _lines(lines, bad_count),
                      "sheet": source.sheet}
            errors.append({"column": c.name, "header": header, "rows": bad_count,
                           "lines": lines, "first_line": lines[0] if lines else None,
                           "problem": messages.text(key, **params)})
            keys.append((key, params))
    if errors:
        where = ", ".join(f"{e['header']}" for e in errors)
        raise Invalid(f"Some values do not match the declared types ({where}). Nothing was "
                      "stored.", errors=errors, error_keys=keys, key="upload.types_mismatch",
                      params={"where": where})
    return count, normalised


def _lines(lines: list[int], total: int) -> str:
    """``2, 5, 9`` (or ``2, 5, 9 …`` when there are more than named)."""
    return ", ".join(str(n) for n in lines) + (" …" if total > len(lines) else "")


def _check_keys(con: duckdb.DuckDBPyConnection, source: Source, plans: list[_Plan],
                existing: Sequence[Path]) -> None:
    """Key items are unique within the file and, for an append, against the current data."""
    keys = [p for p in plans if p.column.is_key]
    if not keys:
        return
    names = ", ".join(p.column.name for p in keys)
    key_cols = ", ".join(f"{p.typed} AS k{i}" for i, p in enumerate(keys))
    k = ", ".join(f"k{i}" for i in range(len(keys)))
    # The key's values as text, for the message (key items may differ in type).
    as_text = "[" + ", ".join(f"CAST(k{i} AS VARCHAR)" for i in range(len(keys))) + "]"
    new = f"(SELECT {source.line_sql} AS line, {key_cols} FROM {RAW})"
    dupes = con.execute(
        f"SELECT {as_text}, count(*), list(line ORDER BY line)[1:{ERROR_LINES}] "
        f"FROM {new} GROUP BY ALL HAVING count(*) > 1 ORDER BY min(line) LIMIT {ERROR_LINES}"
    ).fetchall()
    found = "duplicate_key"
    errors: list[dict[str, Any]] = [
        {"column": names, "key": list(v), "rows": int(n), "lines": list(lines),
         "params": {"names": names, "key": _key_text(v), "n": int(n),
                    "lines": _lines(list(lines), int(n)), "sheet": source.sheet}}
        for v, n, lines in dupes]
    if not errors and existing:
        for i, seg in enumerate(existing):
            con.execute(f"ATTACH '{escape_path(seg)}' AS old{i} (READ_ONLY)")
        try:
            old_cols = ", ".join(f"{quote(p.column.name)} AS k{j}" for j, p in enumerate(keys))
            old = " UNION ALL ".join(f"SELECT {old_cols} FROM old{i}.{TABLE}"
                                     for i in range(len(existing)))
            clash = con.execute(
                f"SELECT {as_text}, line FROM {new} n SEMI JOIN ({old}) o USING ({k}) "
                f"ORDER BY line LIMIT {ERROR_LINES + 1}").fetchall()
            total = con.execute(
                f"SELECT count(*) FROM {new} n SEMI JOIN ({old}) o USING ({k})").fetchone()
        finally:
            for i in range(len(existing)):
                con.execute(f"DETACH old{i}")
        n_clash = int(total[0]) if total else 0
        found = "key_exists"
        errors = [{"column": names, "key": list(v), "lines": [line],
                   "params": {"names": names, "key": _key_text(v), "lines": str(line),
                              "sheet": source.sheet}}
                  for v, line in clash[:ERROR_LINES]]
        if errors:
            errors[0]["rows"] = n_clash  # keys of the file already in the data
    if errors:
        key = f"upload.{found}_{source.variant}"
        error_keys: list[tuple[str, dict[str, Any]] | None] = []
        for e in errors:
            params = e.pop("params")
            e["problem"] = messages.text(key, **params)
            error_keys.append((key, params))
        raise Invalid(str(errors[0]["problem"]), errors=errors, error_keys=error_keys,
                      key=key, params=error_keys[0][1] if error_keys[0] else {})


def _key_text(values: Sequence[Any]) -> str:
    return ", ".join("NULL" if v is None else str(v) for v in values)


# --- Arrow streams (database sources) -------------------------------------------------------

# PostgreSQL NUMERIC arrives from ADBC as an opaque extension over its exact decimal text;
# the text is cast to the declared (or inferred) DECIMAL exactly, so it counts as a decimal.
_EXACT_TEXT_TYPES = {"numeric"}


def ingest_arrow(reader: pa.RecordBatchReader, columns: Sequence[Column],
                 segment: Path) -> tuple[Ingested, str]:
    """Load an Arrow stream (a database pull, ``catalog.sources``) into a new segment with
    the same matching, checks and types as a typed file (Parquet): columns by item name or
    title, compatible types, exact decimals, unique keys. All or nothing, like ``ingest``.

    DuckDB pulls the batches as it writes, so the stream is never whole in memory. Returns
    the result and the SHA-256 of the stream's batches (the pull's content hash, to tell an
    unchanged source from a changed one).
    """
    schema, exact = _plain_schema(reader.schema)
    digest = hashlib.sha256()
    stream = pa.RecordBatchReader.from_batches(schema, _hashed(reader, schema, digest))
    segment.parent.mkdir(parents=True, exist_ok=True)
    tmp = segment.with_name(segment.name + ".tmp")
    spill = segment.with_name(segment.name + ".spill")
    tmp.unlink(missing_ok=True)
    try:
        con = connect(str(tmp))
        try:
            con.execute(f"SET temp_directory='{escape_path(spill)}'")
            con.register("pulled", stream)
            found = [(f.name, _arrow_duckdb_type(f, exact)) for f in schema]
            source = _typed_source(con, found, columns, "pulled", "source")
            con.unregister("pulled")
            result = _check_and_write(con, source, columns, ())
            con.execute("CHECKPOINT")
        finally:
            con.close()
        storage.publish(tmp, segment)
    except duckdb.Error as exc:
        raise Invalid(f"The source could not be read: {_first_line(exc)}",
                      key="problem.catalog.source_unreadable",
                      params={"reason": _first_line(exc)}) from None
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    return result, digest.hexdigest()


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
