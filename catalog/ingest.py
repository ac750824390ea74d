"""Loading a staged upload into a new segment: header matching, normalisation, type and key
checks, all or nothing.

Every format is read once, as columns ``c0…`` (one per declared item, in declared order; text
for CSV, JSON lines and spreadsheets, the source's own types for Parquet and database pulls),
into a temporary table ``staged``: each cell normalised and cast in that one pass, with a flag
for every cell a step changed or that is not of its type. One aggregate over ``staged`` counts
the flags (and measures inferred decimals), a second finds duplicate keys (within the file and,
for an append, against the data already there), and only if all is well is the segment's
table ``data`` written from ``staged``'s typed columns. DuckDB spills ``staged`` to the
segment's own temporary directory beyond its memory limit.
"""

from __future__ import annotations

import hashlib
import queue
import re
import shutil
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
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
from kernel.problems import Invalid, Phrase

RAW = "raw"  # spreadsheets: the cells as text, before staging
STAGED = "staged"
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
    """Where the rows come from and how they map back to the file, for messages."""

    header: list[str]  # the file's header text of each declared item, in declared order
    text: bool  # the columns are text (to be normalised and cast) rather than typed
    # A FROM item giving the declared items as columns c0… in declared order (and the row
    # number in the file as ``_line`` when ``has_line``), and its query parameters.
    relation: str = RAW
    params: list[Any] = field(default_factory=list)
    has_line: bool = False
    line_sql: str = "rowid + 2"  # SQL over ``staged`` giving a row's line (or row) number
    unit: str = "line"  # or "row" (Parquet, spreadsheets)
    sheet: str | None = None  # spreadsheets: the sheet the rows are on
    types: list[str] = field(default_factory=list)  # typed sources: each column's type
    # Run after the source was read (CSV: refuse malformed rows before any value check).
    after_read: Callable[[duckdb.DuckDBPyConnection], None] | None = None
    # A stream read in chunks: puts the next chunk in place of ``relation``'s table and says
    # whether there was one (each is inserted after the first, in order).
    next_chunk: Callable[[duckdb.DuckDBPyConnection], bool] | None = None

    @property
    def variant(self) -> str:
        """Which message variant names this source's places: line, row or sheet."""
        return "sheet" if self.sheet else self.unit


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
    def unreadable(reason: str) -> Invalid:
        return Invalid(f"The file could not be read as {staged.format.value}: {reason}",
                       key="problem.catalog.file_unreadable",
                       params={"format": staged.format.value, "reason": reason})

    with _writing(segment, unreadable) as con:
        source = _READERS[staged.format](con, staged, columns, options or SourceOptions())
        return _check_and_write(con, source, columns, existing)


@contextmanager
def _writing(segment: Path, unreadable: Callable[[str], Invalid]
             ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB database for the new segment, published (write, fsync, rename) when the block
    succeeds; after any failure no segment exists. A DuckDB error becomes ``unreadable``'s
    problem (given the error's first line)."""
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
            yield con
            con.execute("CHECKPOINT")
        finally:
            con.close()
        storage.publish(tmp, segment)
    except duckdb.Error as exc:
        raise unreadable(_first_line(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)


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
    relation = (f"(SELECT {select} FROM read_csv(?, header=true, names={name_list}, "
                "all_varchar=true, store_rejects=true))")
    header = [str(h) for h in first]
    return Source([match.header[p] for p in match.positions], text=True, relation=relation,
                  params=[path], after_read=lambda c: _raise_on_rejects(c, names, header))


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
    relation = (f"(SELECT {select} FROM read_json('{path}', format='newline_delimited', "
                f"columns={{{as_text}}}))")
    return Source([keys[p] for p in match.positions], text=True, relation=relation,
                  line_sql="rowid + 1")


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
    """A typed source (Parquet, a database pull): its columns matched to the items, each of
    a type that fills the declared one without losing meaning."""
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
    return Source([n for n, _ in picked], text=False, relation=f"(SELECT {select} FROM "
                  f"{relation})", line_sql="rowid + 1", unit="row", types=[t for _, t in picked])


def _read_excel(con: duckdb.DuckDBPyConnection, staged: StagedFile,
                columns: Sequence[Column], options: SourceOptions) -> Source:
    loaded = excel.load(con, staged.path, columns, RAW, sheet=options.sheet,
                        header_row=options.header_row)
    return Source(loaded.header, text=True, relation=RAW, has_line=True, line_sql=LINE,
                  unit="row", sheet=loaded.sheet, after_read=_drop_raw)


def _drop_raw(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE {RAW}")


_READERS = {Format.csv: _read_csv, Format.jsonl: _read_jsonl, Format.parquet: _read_parquet,
            Format.xlsx: _read_excel, Format.xls: _read_excel}


# --- checks and the segment ------------------------------------------------------------------


@dataclass
class _Plan:
    """One declared column on its way from ``c{i}`` of the source to the segment."""

    index: int
    column: Column
    steps: cells.Steps | None  # text sources: the normalisation
    normal: str = ""  # the staged-query column holding the normalised (or typed source) value
    duck_type: str = ""  # the declared type; for an inferred decimal, set once measured
    inferred: bool = False  # a decimal whose precision and scale come from its values
    scale: int | None = None  # a decimal of known type: its scale
    value: str = ""  # the column ``staged`` stores: the typed value, or a decimal's text
    bad: str | None = None  # SQL over ``staged``: the value is not of the declared type
    flags: dict[str, str] = field(default_factory=dict)  # step → SQL: the step changed it

    @property
    def final(self) -> str:
        """SQL over ``staged`` of the value as stored in the segment."""
        return f"CAST({self.value} AS {self.duck_type})" if self.inferred else self.value


class _Flags:
    """Per-row booleans packed into BIGINT bit masks (``m0``, ``m1`` …): one narrow column
    instead of a boolean column per check, for staging and counting alike."""

    BITS = 62

    def __init__(self) -> None:
        self.tests: list[str] = []

    def add(self, test: str) -> str:
        """Register a test (SQL over the staging query); return its flag as SQL over
        ``staged``."""
        k = len(self.tests)
        self.tests.append(test)
        return f"({_mask(k // self.BITS)} & {1 << (k % self.BITS)}) <> 0"

    def columns(self) -> list[str]:
        out = []
        for start in range(0, len(self.tests), self.BITS):
            chunk = self.tests[start:start + self.BITS]
            bits = " + ".join(f"CASE WHEN {t} THEN {1 << k} ELSE 0 END"
                              for k, t in enumerate(chunk))
            out.append(f"CAST({bits} AS BIGINT) AS {_mask(start // self.BITS)}")
        return out

    def names(self) -> list[str]:
        return [_mask(k) for k in range((len(self.tests) + self.BITS - 1) // self.BITS)]


# The staged columns' names hold a "$", which no item name can (letters, digits and "_"):
# in place (``_finish_in_place``) they are renamed to the item names without a clash.
def _mask(k: int) -> str:
    return f'"m${k}"'


def _value(i: int) -> str:
    return f'"v${i}"'


LINE = '"line$"'


def _check_and_write(con: duckdb.DuckDBPyConnection, source: Source, columns: Sequence[Column],
                     existing: Sequence[Path]) -> Ingested:
    """Stage, check, write.

    One pass over the source normalises, casts and flags every cell into the temporary
    table ``staged`` (the typed values, and bits for every cell a step changed or that is
    not of its type; a decimal whose precision is inferred stays text until the precision
    is known). The checks then only read ``staged``: counts and decimal digits in one
    aggregate, keys in a second; and ``data`` is written from ``staged``'s typed columns.
    Every cell's normalisation and cast runs once, and the source is read once (a database
    pull cannot be read twice).
    """
    plans = [_Plan(i, c, cells.steps(c.type, c.kind) if source.text else None)
             for i, c in enumerate(columns)]
    for p in plans:
        p.duck_type, p.scale = _declared_type(p.column, source, p.index)
        p.inferred = not p.duck_type
    # With every type known before the data is read, the staged table is the segment's own
    # table, written as the source is read (a pull's write overlaps its fetch); a decimal
    # whose precision is measured on the values needs them all first, so it goes through a
    # temporary table and a copy.
    in_place = not any(p.inferred for p in plans)
    table = TABLE if in_place else STAGED
    select, masks = _staging_sql(source, plans)
    create = "CREATE TABLE" if in_place else "CREATE TEMP TABLE"
    con.execute(f"{create} {table} AS {select}", source.params)
    while source.next_chunk is not None and source.next_chunk(con):
        con.execute(f"INSERT INTO {table} {select}", source.params)
    if source.after_read is not None:
        source.after_read(con)
    count, normalised = _check_values(con, source, plans, table)
    if count == 0:
        raise messages.refuse("upload.no_rows")
    _check_keys(con, source, plans, existing, table, count)
    if in_place:
        _finish_in_place(con, source, plans, masks)
    else:
        select = ", ".join(f"{p.final} AS {quote(p.column.name)}" for p in plans)
        con.execute(f"CREATE TABLE {TABLE} AS SELECT {select} FROM {STAGED}")
        con.execute(f"DROP TABLE {STAGED}")
    return Ingested(count, normalised)


def _finish_in_place(con: duckdb.DuckDBPyConnection, source: Source, plans: list[_Plan],
                     masks: list[str]) -> None:
    """The staged table becomes the segment's: the flag masks (constant 0 when nothing was
    changed, so DuckDB stores them as constants) and line numbers dropped, the values
    renamed to the item names. No data is copied."""
    for name in masks + ([LINE] if source.has_line else []):
        con.execute(f"ALTER TABLE {TABLE} DROP COLUMN {name}")
    for p in plans:
        con.execute(f"ALTER TABLE {TABLE} RENAME COLUMN {p.value} TO {quote(p.column.name)}")


_DECIMAL_TYPE = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


def _declared_type(c: Column, source: Source, i: int) -> tuple[str, int | None]:
    """The column's DuckDB type and, for a decimal, its scale: as declared, else a typed
    source's own DECIMAL(p,s) (a Parquet decimal, a PostgreSQL numeric(p,s)), else "" —
    measured on the values."""
    if c.type is not ItemType.decimal:
        return DUCKDB_TYPES[c.type], None
    if c.precision is not None and c.scale is not None:
        return cells.decimal_type(c.precision, c.scale), c.scale
    found = _DECIMAL_TYPE.match(source.types[i].upper()) if not source.text else None
    if found and c.scale is None and int(found[1]) <= cells.MAX_PRECISION:
        return cells.decimal_type(int(found[1]), int(found[2])), int(found[2])
    return "", None


def _staging_sql(source: Source, plans: list[_Plan]) -> tuple[str, list[str]]:
    """The query of the staged table's rows from the source, each step a layer of its own
    over the previous one (a step's result is computed once however often later steps use
    it); and the names of its mask columns."""
    query = f"SELECT * FROM {source.relation}"
    flags = _Flags()

    def layer(exprs: list[str]) -> None:
        nonlocal query
        if exprs:
            query = f"SELECT *, {', '.join(exprs)} FROM ({query})"

    if source.text:
        # Each step's test is a column of its own: it decides the step and is its count.
        layer([f"{sql} AS {name}{p.index}" for p in plans
               for sql, name in zip(cells.edge_codes_sql(f"c{p.index}"), "or", strict=True)])
        layer([f"{cells.trim_test_sql(f'o{p.index}', f'r{p.index}')} AS e{p.index}"
               for p in plans])
        layer([f"{cells.trim_sql(f'c{p.index}', f'e{p.index}')} AS t{p.index}"
               for p in plans])
        for p in plans:
            p.normal = f"t{p.index}"
            p.flags["trimmed"] = flags.add(f"e{p.index}")
        half = [p for p in plans if p.steps is not None and p.steps.half_width]
        layer([f"{cells.half_width_test_sql(p.normal)} AS w{p.index}" for p in half])
        layer([f"{cells.half_width_sql(p.normal, f'w{p.index}')} AS h{p.index}"
               for p in half])
        for p in half:
            p.flags["half_width"] = flags.add(f"w{p.index}")
            p.normal = f"h{p.index}"
        upper = [p for p in plans if p.steps is not None and p.steps.upper]
        layer([f"{cells.upper_sql(p.normal)} AS u{p.index}" for p in upper])
        for p in upper:
            p.flags["upper_case"] = flags.add(f"{p.normal} IS DISTINCT FROM u{p.index}")
            p.normal = f"u{p.index}"
    else:
        for p in plans:
            p.normal = f"c{p.index}"
    # Decimals are checked and measured on their text (a typed source's number as text).
    decimals = [p for p in plans if p.column.type is ItemType.decimal]
    layer([f"CAST({p.normal} AS VARCHAR) AS d{p.index}" for p in decimals if not source.text])
    text = {p.index: (p.normal if source.text else f"d{p.index}") for p in decimals}
    layer([f"{_cast_sql(source, p)} AS v{p.index}" for p in plans if not p.inferred])
    outputs = []
    for p in plans:
        p.value = _value(p.index)
        outputs.append(f"{text[p.index] if p.inferred else f'v{p.index}'} AS {p.value}")
        bad = _bad_sql(source, p, text.get(p.index))
        if bad is not None:
            p.bad = flags.add(bad)
    if source.has_line:
        outputs.append(f"_line AS {LINE}")
    return f"SELECT {', '.join(outputs + flags.columns())} FROM ({query})", flags.names()


def _cast_sql(source: Source, p: _Plan) -> str:
    if source.text:
        return cells.typed(p.normal, p.column.type, p.duck_type)
    return f"TRY_CAST({p.normal} AS {p.duck_type})"


def _bad_sql(source: Source, p: _Plan, text: str | None) -> str | None:
    """SQL true for a cell whose value is not of the declared type (None: cannot happen)."""
    c = p.column
    if c.type is ItemType.decimal:
        assert text is not None
        tests = []
        # Text and binary floats may be in exponent notation; a typed source's integers and
        # decimals (PostgreSQL's numeric text too: NaN and Infinity fail the cast) never are.
        if source.text or source.types[p.index].upper() in ("FLOAT", "DOUBLE", "REAL"):
            tests.append(f"NOT {cells.plain_decimal_sql(text)}")
        if not p.inferred:
            # Casting would round extra decimal places away: refuse them instead.
            tests += [f"v{p.index} IS NULL", f"{cells.decimal_scale_sql(text)} > {p.scale}"]
        return f"{p.normal} IS NOT NULL AND ({' OR '.join(tests)})" if tests else None
    if not source.text and _lossless(source.types[p.index], p.duck_type):
        return None
    if source.text and c.type is ItemType.string:
        return None
    return f"{p.normal} IS NOT NULL AND v{p.index} IS NULL"


# Typed sources: conversions that cannot fail, so need no check per cell.
_WIDENS = {"BIGINT": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                      "UINTEGER"),
           "TIMESTAMP": ("DATE", "TIMESTAMP")}


def _lossless(source_type: str, duck_type: str) -> bool:
    base = source_type.split("(")[0].upper()
    return base == duck_type.upper() or base in _WIDENS.get(duck_type.upper(), ())


def _check_values(con: duckdb.DuckDBPyConnection, source: Source, plans: list[_Plan],
                  table: str) -> tuple[int, dict[str, dict[str, int]]]:
    """One aggregate over ``staged``: rows, changed cells per column and step, invalid
    values per column (their lines in a second query, only when there are any) and the
    digits of decimals whose precision is inferred."""
    aggs: list[str] = ["count(*)"]
    for p in plans:
        aggs += [f"count_if({flag})" for flag in p.flags.values()]
        aggs.append(f"count_if({p.bad})" if p.bad else "0")
        if p.inferred:
            valid = f"{p.value} IS NOT NULL" + (f" AND NOT ({p.bad})" if p.bad else "")
            aggs += [f"coalesce(max({cells.decimal_integer_digits_sql(p.value)}) "
                     f"FILTER (WHERE {valid}), 0)",
                     f"coalesce(max({cells.decimal_scale_sql(p.value)}) "
                     f"FILTER (WHERE {valid}), 0)"]
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {table}").fetchone()
    assert row is not None
    values = [v or 0 for v in row]  # count_if over no rows is NULL
    count = int(values.pop(0))
    normalised: dict[str, dict[str, int]] = {}
    bad: dict[int, int] = {}
    found: dict[int, tuple[int, int]] = {}
    for p in plans:
        changed = {step: int(values.pop(0)) for step in p.flags}
        changed = {k: v for k, v in changed.items() if v}
        if changed:
            normalised[p.column.name] = changed
        n = int(values.pop(0))
        if n:
            bad[p.index] = n
        if p.inferred:
            found[p.index] = (int(values.pop(0)), int(values.pop(0)))
    _infer_decimals(plans, found)
    if bad:
        _refuse_bad_values(con, source, plans, bad, table)
    return count, normalised


def _infer_decimals(plans: list[_Plan], found: dict[int, tuple[int, int]]) -> None:
    """The smallest DECIMAL that holds every value of the file exactly."""
    errors = []
    for p in plans:
        if not p.inferred:
            continue
        c = p.column
        digits, scale = found[p.index]
        scale = c.scale if c.scale is not None else scale
        precision = max(digits + scale, 1, scale)
        if precision > cells.MAX_PRECISION:
            errors.append({"column": c.name, "problem": (
                f"values need {digits} digits before and {scale} after the decimal point, "
                f"more than the {cells.MAX_PRECISION} an exact decimal holds; declare the "
                "item's scale (decimal places) or round the values")})
            continue
        p.duck_type = cells.decimal_type(precision, scale)
    if errors:
        raise messages.refuse("upload.decimal_too_wide", errors=errors,
                              cols=", ".join(str(e["column"]) for e in errors))


def _refuse_bad_values(con: duckdb.DuckDBPyConnection, source: Source, plans: list[_Plan],
                       bad: dict[int, int], table: str) -> None:
    checked = [p for p in plans if p.index in bad]
    lines = ", ".join(f"list({source.line_sql} ORDER BY rowid) FILTER (WHERE {p.bad})"
                      f"[1:{ERROR_LINES}]" for p in checked)
    row = con.execute(f"SELECT {lines} FROM {table}").fetchone()
    assert row is not None
    errors: list[dict[str, Any]] = []
    keys: list[tuple[str, dict[str, Any]] | None] = []
    for p, found in zip(checked, row, strict=True):
        c, header, bad_count, at = p.column, source.header[p.index], bad[p.index], list(found)
        kind = c.type.value if c.type is not ItemType.decimal else p.duck_type
        key = f"upload.bad_values_{source.variant}"
        # The type by its catalogue label in Chinese ("小数"), as declared in English.
        params = {"n": bad_count, "type": Phrase(f"type.{c.type.value}", kind.lower()),
                  "lines": _lines(at, bad_count), "sheet": source.sheet}
        errors.append({"column": c.name, "header": header, "rows": bad_count,
                       "lines": at, "first_line": at[0] if at else None,
                       "problem": messages.text(key, **params)})
        keys.append((key, params))
    where = ", ".join(f"{e['header']}" for e in errors)
    raise Invalid(f"Some values do not match the declared types ({where}). Nothing was "
                  "stored.", errors=errors, error_keys=keys, key="upload.types_mismatch",
                  params={"where": where})


def _lines(lines: list[int], total: int) -> str:
    """``2, 5, 9`` (or ``2, 5, 9 …`` when there are more than named)."""
    return ", ".join(str(n) for n in lines) + (" …" if total > len(lines) else "")


def _check_keys(con: duckdb.DuckDBPyConnection, source: Source, plans: list[_Plan],
                existing: Sequence[Path], table: str, count: int) -> None:
    """Key items are unique within the file and, for an append, against the current data."""
    keys = [p for p in plans if p.column.is_key]
    if not keys:
        return
    names = ", ".join(p.column.name for p in keys)
    key_cols = ", ".join(f"{p.final} AS k{i}" for i, p in enumerate(keys))
    k = ", ".join(f"k{i}" for i in range(len(keys)))
    # The key's values as text, for the message (key items may differ in type).
    as_text = "[" + ", ".join(f"CAST(k{i} AS VARCHAR)" for i in range(len(keys))) + "]"
    new = f"(SELECT {source.line_sql} AS line, {key_cols} FROM {table})"
    # First one 64-bit hash of each key (distinct hashes prove distinct keys); only when two
    # rows share a hash (a duplicate, or a collision: under 1 in 10^7 for a million rows)
    # are the keys themselves grouped, with their lines.
    dupes = []
    if _may_repeat(con, table, f"hash({', '.join(p.final for p in keys)})", count):
        dupes = con.execute(
            f"SELECT {as_text}, n, lines FROM (SELECT {k}, count(*) AS n, min(line) AS first, "
            f"list(line ORDER BY line)[1:{ERROR_LINES}] AS lines FROM {new} GROUP BY ALL "
            f"HAVING count(*) > 1) ORDER BY first LIMIT {ERROR_LINES}").fetchall()
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
            total = con.execute(
                f"SELECT count(*) FROM {new} n SEMI JOIN ({old}) o USING ({k})").fetchone()
            clash = con.execute(
                f"SELECT {as_text}, line FROM {new} n SEMI JOIN ({old}) o USING ({k}) "
                f"ORDER BY line LIMIT {ERROR_LINES + 1}").fetchall() if total and total[0] else []
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


# Up to this many rows the key hashes are sorted in memory (8 bytes a row); beyond, DuckDB
# groups them, spilling to disk within its memory limit.
SORTED_KEY_ROWS = 50_000_000


def _may_repeat(con: duckdb.DuckDBPyConnection, table: str, hashed: str, count: int) -> bool:
    """Whether two rows of ``table`` share the value of ``hashed`` (a 64-bit hash).

    Sorting the hashes with numpy and comparing neighbours costs about a third of grouping
    them in DuckDB's hash table (every key is its own group: a table as large as the data),
    and the check runs on every upload and pull of a resource with a key."""
    if count > SORTED_KEY_ROWS:
        return con.execute(f"SELECT 1 FROM {table} GROUP BY {hashed} HAVING count(*) > 1 "
                           "LIMIT 1").fetchone() is not None
    hashes = con.execute(f"SELECT {hashed} AS h FROM {table}").fetchnumpy()["h"]
    values = np.asarray(hashes)
    values.sort()
    return bool(np.any(values[1:] == values[:-1]))


def _key_text(values: Sequence[Any]) -> str:
    return ", ".join("NULL" if v is None else str(v) for v in values)


# --- Arrow streams (database sources) -------------------------------------------------------

# PostgreSQL NUMERIC arrives from ADBC as an opaque extension over its exact decimal text;
# the text is cast to the declared (or inferred) DECIMAL exactly, so it counts as a decimal.
_EXACT_TEXT_TYPES = {"numeric"}


def ingest_arrow(reader: pa.RecordBatchReader, columns: Sequence[Column], segment: Path, *,
                 decimals: Mapping[str, tuple[int, int]] | None = None,
                 exact_text: Collection[str] = ()) -> tuple[Ingested, str]:
    """Load an Arrow stream (a database pull, ``catalog.sources``) into a new segment with
    the same matching, checks and types as a typed file (Parquet): columns by item name or
    title, compatible types, exact decimals, unique keys. All or nothing, like ``ingest``.

    ``decimals``: the precision and scale the database declares for its exact-number
    columns (PostgreSQL ``numeric(p,s)``), by column name: such a column is a DECIMAL(p,s)
    without measuring its values, so the segment is written as the stream arrives.
    ``exact_text``: text columns that hold exact numbers (a ``numeric`` the database sent as
    its text), cast to DECIMAL exactly like the driver's own numeric text.

    The stream goes to DuckDB in chunks of about ``CHUNK_ROWS`` rows, each an in-memory Arrow
    table that DuckDB inserts on all its threads (a stream it would read on one) while the
    next chunk is fetched; so the stream is never whole in memory. Returns the result and
    the SHA-256 of the stream's batches (the pull's content hash, to tell an unchanged
    source from a changed one).
    """
    schema, exact = _plain_schema(reader.schema)
    exact |= set(exact_text) & set(schema.names)
    digest = hashlib.sha256()
    chunks = _chunks(_hashed(reader, schema, digest), schema)

    def unreadable(reason: str) -> Invalid:
        return Invalid(f"The source could not be read: {reason}",
                       key="problem.catalog.source_unreadable", params={"reason": reason})

    with _writing(segment, unreadable) as con:
        con.register("pulled", next(chunks))

        def next_chunk(c: duckdb.DuckDBPyConnection) -> bool:
            chunk = next(chunks, None)
            if chunk is not None:
                c.register("pulled", chunk)
            return chunk is not None

        found = [(f.name, _arrow_duckdb_type(f, exact, decimals or {})) for f in schema]
        source = _typed_source(con, found, columns, "pulled", "source")
        source.after_read, source.next_chunk = _unregister_pulled, next_chunk
        result = _check_and_write(con, source, columns, ())
    return result, digest.hexdigest()


CHUNK_ROWS = 500_000
# Batches fetched ahead of DuckDB (the driver's are ~200k rows): enough to keep the driver
# busy while a chunk is inserted, few enough that the memory in flight stays small.
AHEAD = 4


def _chunks(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    """The batches gathered into tables of about ``CHUNK_ROWS`` rows (at least one table,
    empty for an empty stream)."""
    pending: list[pa.RecordBatch] = []
    rows, sent = 0, False
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= CHUNK_ROWS:
            yield pa.Table.from_batches(pending, schema)
            pending, rows, sent = [], 0, True
    if pending or not sent:
        yield pa.Table.from_batches(pending, schema)


def _unregister_pulled(con: duckdb.DuckDBPyConnection) -> None:
    con.unregister("pulled")


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


def _arrow_duckdb_type(f: pa.Field, exact: set[str],
                       decimals: Mapping[str, tuple[int, int]]) -> str:
    if f.name in exact:
        return cells.decimal_type(*decimals[f.name]) if f.name in decimals else "DECIMAL"
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
    ahead: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(maxsize=AHEAD)

    def produce() -> None:
        try:
            for batch in reader:
                plain = pa.RecordBatch.from_arrays(
                    [c.storage if isinstance(c, pa.ExtensionArray) else c
                     for c in batch.columns], schema=schema)
                _digest_batch(digest, plain)
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


def _digest_batch(digest: Any, batch: pa.RecordBatch) -> None:
    """Feed a batch to the content hash without copying it: its length, then each column's
    offset and buffers (validity, offsets, values) with their sizes, as the driver filled
    them. (Serialising the batch first, as an IPC message, copied every byte once more and
    cost three times the hashing.)"""
    digest.update(batch.num_rows.to_bytes(8, "little"))
    for column in batch.columns:
        digest.update(column.offset.to_bytes(8, "little"))
        for buffer in column.buffers():
            size = 0 if buffer is None else buffer.size
            digest.update(size.to_bytes(8, "little"))
            if buffer is not None:
                digest.update(buffer)
