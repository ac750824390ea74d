"""Spreadsheets (.xlsx, .xls) into DuckDB through python-calamine, in Arrow batches.

Department exports put a title or two above the header ("2025年高龄津贴发放明细表") and often
several sheets; the header row is the first row (of the first 30) that names most of the
declared items, on the sheet given by name or 1-based index, or else the first sheet that has
such a row. Cells are read as typed values (numbers, dates), never as their display text, and
turned into canonical text for the common normalise-and-cast path (``catalog.ingest``):
a number keeps all its digits (a 15-digit ID stored as a number stays ``110105491231002``, not
``1.10105491231002E+14``), a date is ISO 8601.

Memory: calamine holds the sheet's cells (Rust values, tens of bytes each) while the rows are
converted batch by batch; an .xlsx whose XML would expand beyond the upload limit is refused
before it is opened (``check_xlsx``).
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from python_calamine import CalamineError, CalamineSheet, CalamineWorkbook

from catalog import messages
from catalog.headers import Declared, match_header, score_header
from kernel.problems import TooLarge

BATCH_ROWS = 50_000
HEADER_SCAN_ROWS = 30


@dataclass(frozen=True)
class Loaded:
    sheet: str
    header_row: int  # 1-based
    header: list[str]


def check_xlsx(path: Path, max_bytes: int) -> None:
    """Refuse an .xlsx that is not a zip, or whose parts expand beyond the upload limit (a
    "zip bomb" of a few KB can expand to gigabytes of sheet XML)."""
    try:
        with zipfile.ZipFile(path) as zf:
            expanded = sum(i.file_size for i in zf.infolist())
    except zipfile.BadZipFile:
        raise messages.refuse("upload.bad_xlsx") from None
    if expanded > max_bytes:
        raise TooLarge(f"The workbook expands to {expanded:,} bytes, beyond the limit of "
                       f"{max_bytes:,} bytes.", key="upload.xlsx_expands",
                       params={"size": f"{expanded:,}", "limit": f"{max_bytes:,}"})


def load(con: duckdb.DuckDBPyConnection, path: Path, items: Sequence[Declared], table: str, *,
         sheet: str | int | None = None, header_row: int | None = None) -> Loaded:
    """Create the temporary table ``table`` (text columns ``c0…`` in the items' order, plus
    ``_line``, the sheet row number) from the workbook."""
    try:
        with CalamineWorkbook.from_path(str(path)) as wb:
            chosen, found = _pick_sheet(wb, items, sheet, header_row)
            return _load_sheet(con, chosen, found, items, table)
    except CalamineError as exc:
        raise messages.refuse("upload.bad_workbook", reason=str(exc)[:300]) from None


def _pick_sheet(wb: CalamineWorkbook, items: Sequence[Declared], sheet: str | int | None,
                header_row: int | None) -> tuple[CalamineSheet, int]:
    names = wb.sheet_names
    if sheet is not None:
        if isinstance(sheet, int) or (isinstance(sheet, str) and sheet.isdigit()
                                      and sheet not in names):
            index = int(sheet)
            if not 1 <= index <= len(names):
                raise messages.refuse("upload.no_sheet_number", count=len(names),
                                      index=index, sheets=", ".join(names))
            candidates = [wb.get_sheet_by_index(index - 1)]
        elif sheet in names:
            candidates = [wb.get_sheet_by_name(sheet)]
        else:
            raise messages.refuse("upload.no_sheet", sheet=sheet, sheets=", ".join(names))
    else:
        candidates = [wb.get_sheet_by_index(i) for i in range(len(names))]
    for candidate in candidates:
        row = header_row if header_row is not None else _find_header(candidate, items)
        if row is not None:
            return candidate, row
    if len(candidates) == 1:
        raise messages.refuse("upload.no_header_sheet", rows=HEADER_SCAN_ROWS,
                              sheet=candidates[0].name)
    raise messages.refuse("upload.no_header_any", rows=HEADER_SCAN_ROWS,
                          sheets=", ".join(names))


def _find_header(sheet: CalamineSheet, items: Sequence[Declared]) -> int | None:
    """The 1-based row naming the most declared items (at least half of them)."""
    best, best_row = 0, None
    for n, row in enumerate(sheet.to_python(skip_empty_area=False, nrows=HEADER_SCAN_ROWS)):
        score = score_header(row, items)
        if score > best:
            best, best_row = score, n + 1
    return best_row if best * 2 >= len(items) and best > 0 else None


def _load_sheet(con: duckdb.DuckDBPyConnection, sheet: CalamineSheet, header_row: int,
                items: Sequence[Declared], table: str) -> Loaded:
    rows = _rows(sheet)
    header: list[Any] = []
    for number, row in rows:
        if number == header_row:
            header = row
            break
    match = match_header(header, items)
    types = [(f"c{i}", pa.string()) for i in range(len(items))] + [("_line", pa.int64())]
    schema = pa.schema(types)
    cols = ", ".join(f"c{i} VARCHAR" for i in range(len(items)))
    con.execute(f"CREATE TEMP TABLE {table} ({cols}, _line BIGINT)")
    for batch in _batches(rows, match.positions, schema):
        con.register("_excel_batch", batch)
        try:
            con.execute(f"INSERT INTO {table} SELECT * FROM _excel_batch")
        finally:
            con.unregister("_excel_batch")
    return Loaded(sheet.name, header_row, [match.header[p] for p in match.positions])


def _rows(sheet: CalamineSheet) -> Iterator[tuple[int, list[Any]]]:
    """(1-based sheet row number, cells) from row 1, whatever the used range's start."""
    start = sheet.start
    first_row, first_col = (start[0], start[1]) if start else (0, 0)
    for n, row in enumerate(sheet.iter_rows()):
        yield first_row + n + 1, ([""] * first_col + list(row)) if first_col else list(row)


def _batches(rows: Iterator[tuple[int, list[Any]]], positions: list[int],
             schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    pending: list[list[Any]] = []
    lines: list[int] = []
    for number, row in rows:
        pending.append(row)
        lines.append(number)
        if len(lines) >= BATCH_ROWS:
            yield _batch(pending, lines, positions, schema)
            pending, lines = [], []
    if lines:
        yield _batch(pending, lines, positions, schema)


def _batch(rows: list[list[Any]], lines: list[int], positions: list[int],
           schema: pa.Schema) -> pa.RecordBatch:
    """Column by column (a column of text cells needs no conversion call per cell), then
    without the rows whose declared cells are all empty (blank rows below the data,
    formatted but empty, are not data)."""
    arrays = []
    for p in positions:
        raw = [r[p] if p < len(r) else None for r in rows]
        if all(type(v) is str for v in raw):
            values = [v or None for v in raw]  # "" is an empty cell
        else:
            # One dict lookup per cell picks its type's converter (an isinstance chain per
            # cell was a third of the load).
            values = [_BY_TYPE.get(type(v), _text)(v) for v in raw]
        arrays.append(pa.array(values, type=pa.string()))
    batch = pa.RecordBatch.from_arrays([*arrays, pa.array(lines, type=pa.int64())],
                                       schema=schema)
    blank = arrays[0].is_null()
    for a in arrays[1:]:
        blank = pc.and_(blank, a.is_null())
    return batch.filter(pc.invert(blank)) if pc.any(blank).as_py() else batch


def _text(cell: Any) -> str | None:
    """A typed cell as canonical text: what the value is, not how Excel displays it."""
    if cell is None or cell == "":
        return None
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, float):
        return _float_text(cell)
    if isinstance(cell, dt.datetime):
        return _datetime_text(cell)
    if isinstance(cell, dt.date | dt.time):
        return cell.isoformat()
    return str(cell)


def _float_text(cell: float) -> str:
    if cell.is_integer() and abs(cell) < 1e16:
        return str(int(cell))
    # The shortest text that reads back as the same double, without an exponent: repr is
    # that text unless it has an exponent (or is inf/nan), where Decimal writes it out.
    text = repr(cell)
    return text if "e" not in text and "n" not in text else format(Decimal(text), "f")


def _datetime_text(cell: dt.datetime) -> str:
    return cell.isoformat(sep=" ") if cell.time() != dt.time() else cell.date().isoformat()


def _str_text(cell: str) -> str | None:
    return cell or None  # "" is an empty cell


_BY_TYPE: dict[type, Callable[[Any], str | None]] = {
    str: _str_text, float: _float_text, int: str, dt.datetime: _datetime_text,
    dt.date: dt.date.isoformat, dt.time: dt.time.isoformat, type(None): lambda _: None,
}
