"""The last check before delivery: does output meant to be masked still hold raw personal data?

Two steps, so the expensive part runs only on candidates. A vectorised pass over the output
columns picks values holding a run of 11+ digits (possibly split by single spaces or
hyphens) — ``access.native``'s C prefilter over Arrow batches, or the same test as a DuckDB
regular expression when the native library is unavailable — then Python validates each digit
run it finds: resident IDs (GB 11643 check digit and birth date, via python-stdnum; 15-digit
legacy IDs by their birth date), mobile numbers (11 digits, 1[3-9] prefix, optionally +86)
and bank cards (16–19 digits, Luhn). Any hit blocks delivery.

The prefilter alone would block too much (order numbers, timestamps), the validators alone
would mean calling Python per value; together a clean 10M-row column costs one vectorised
pass and zero Python calls per value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa
from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from access import native, pseudonym
from catalog.warehouse import quote

# DuckDB (RE2) prefilter: 11+ digits, allowing single spaces/hyphens between digits.
PREFILTER = r"[0-9](?:[ -]?[0-9]){10,}"
# Python: maximal digit runs (separators inside removed afterwards), an optional final X.
_RUN = re.compile(r"(?<![0-9A-Za-z])\+?[0-9](?:[ -]?[0-9]){10,}(?:[ -]?[Xx])?(?![0-9A-Za-z])")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_BANK_PREFIX = re.compile(r"(?:62|4|5[1-5]|3[47]|60|9)")
MAX_HITS = 5
_TOKEN = re.compile(pseudonym.TOKEN_PATTERN)
_BATCH = 10_000
_ARROW_BATCH = 262_144  # rows per Arrow batch of the native scan
_BIG = 10_000_000_000  # 11 digits: the shortest ID-like number


@dataclass(frozen=True)
class Hit:
    column: str
    kind: str  # resident_id | legacy_resident_id | mobile | bank_card
    sample: str  # masked for the report: the check's own message must not leak the value

    def as_dict(self) -> dict[str, str]:
        return {"column": self.column, "kind": self.kind, "sample": self.sample}


def classify(run: str) -> str | None:
    """What a run of digits is, if it is valid personal data."""
    digits = re.sub(r"[ -]", "", run).lstrip("+")
    if len(digits) == 18 and _resident_id(digits.upper()):
        return "resident_id"
    if len(digits) == 15 and digits.isdigit() and _legacy_id(digits):
        return "legacy_resident_id"
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) == 11 and _MOBILE.fullmatch(digits):
        return "mobile"
    if 16 <= len(digits) <= 19 and digits.isdigit() and _BANK_PREFIX.match(digits) \
            and luhn.is_valid(digits):
        return "bank_card"
    return None


def _resident_id(number: str) -> bool:
    """GB 11643 check digit and a real birth date (python-stdnum). The birthplace is not
    looked up: stdnum's region table lags new district codes, and an ID with an unknown
    region is still personal data."""
    if not number[:17].isdigit() or ric.calc_check_digit(number[:17]) != number[17]:
        return False
    try:
        ric.get_birth_date(number)
    except ValidationError:
        return False
    return True


def _legacy_id(digits: str) -> bool:
    """A pre-1999 15-digit ID: region code, then YYMMDD of a real date in 19xx, no checksum."""
    if digits[0] == "0" or digits[0] == "9":
        return False
    try:
        date(1900 + int(digits[6:8]), int(digits[8:10]), int(digits[10:12]))
    except ValueError:
        return False
    return True


def find_in(value: str) -> str | None:
    for match in _RUN.finditer(value):
        kind = classify(match.group(0))
        if kind:
            return kind
    return None


def _redact(value: str) -> str:
    return re.sub(r"[0-9]", "*", value[:40])


@dataclass(frozen=True)
class Target:
    """An output column to check, and what its masked values must look like."""

    name: str
    # text: no valid ID/mobile/card inside; number: no 11+ digit number; pseudonym: every
    # value is a pseudonym token (a whitelist, since hex text contains digit runs by chance).
    shape: str = "text"


def _candidate_sql(target: Target) -> str:
    col = quote(target.name)
    if target.shape == "number":
        return f"abs({col}) >= {_BIG}"
    if target.shape == "pseudonym":
        # Same as NOT regexp_full_match(col, TOKEN_PATTERN), at a third of the cost.
        return (f"{col} <> '' AND (strlen({col}) <> {pseudonym.TOKEN_HEX_CHARS} "
                f"OR regexp_matches({col}, '[^0-9a-f]'))")
    text = f"CAST({col} AS VARCHAR)"
    # The length guard skips the regex for short values (names, years, masked fragments).
    return f"strlen({text}) >= 11 AND regexp_matches({text}, '{PREFILTER}')"


def scan(con: duckdb.DuckDBPyConnection, relation: str,
         targets: Sequence[Target | str]) -> list[Hit]:
    """Hits in the target columns of ``relation`` (a table, view or ``read_parquet(...)``):
    one vectorised pass picks candidate values, Python validates only those. The pass is
    ``access.native``'s prefilter over Arrow batches of the columns when it is available,
    else the same test as DuckDB SQL."""
    checks = [t if isinstance(t, Target) else Target(t) for t in targets]
    if not checks:
        return []
    lib = native.load()
    hits = _scan_native(lib, con, relation, checks) if lib is not None else \
        _scan_sql(con, relation, checks)
    return hits[:MAX_HITS]


def _scan_sql(con: duckdb.DuckDBPyConnection, relation: str,
              checks: Sequence[Target]) -> list[Hit]:
    columns = ", ".join(f"CAST({quote(t.name)} AS VARCHAR)" for t in checks)
    where = " OR ".join(f"({_candidate_sql(t)})" for t in checks)
    cur = con.execute(f"SELECT {columns} FROM {relation} WHERE {where}")
    hits: list[Hit] = []
    while len(hits) < MAX_HITS and (batch := cur.fetchmany(_BATCH)):
        for row in batch:
            hits.extend(h for t, v in zip(checks, row, strict=True) if (h := _check(t, v)))
    return hits


def _scan_native(lib: native.Native, con: duckdb.DuckDBPyConnection, relation: str,
                 checks: Sequence[Target]) -> list[Hit]:
    """Column by column, so DuckDB reads only that column and drops what cannot match
    before anything is handed over: a text value shorter than 11 bytes holds no 11-digit
    run, and numbers are compared in SQL."""
    hits: list[Hit] = []
    for target in checks:
        hits.extend(_scan_column(lib, con, relation, target))
        if len(hits) >= MAX_HITS:
            break
    return hits


def _scan_column(lib: native.Native, con: duckdb.DuckDBPyConnection, relation: str,
                 target: Target) -> list[Hit]:
    col, text = quote(target.name), f"CAST({quote(target.name)} AS VARCHAR)"
    where = {"number": _candidate_sql(target), "pseudonym": f"{col} <> ''"}.get(
        target.shape, f"strlen({text}) >= 11")
    reader = con.sql(f"SELECT {text} FROM {relation} WHERE {where}").to_arrow_reader(
        _ARROW_BATCH)
    hits: list[Hit] = []
    with reader:  # closed even when the hits run out first: the connection goes on
        for batch in reader:
            column = batch.column(0)
            for i in _candidates(lib, target, column):
                if hit := _check(target, column[i].as_py()):
                    hits.append(hit)
                    if len(hits) >= MAX_HITS:
                        return hits
    return hits


def _candidates(lib: native.Native, target: Target, column: pa.Array) -> Iterable[int]:
    if target.shape == "number":  # already only the values of 11+ digits
        return range(len(column))
    mode = native.SCAN_TOKEN if target.shape == "pseudonym" else native.SCAN_TEXT
    return native.candidates(lib, column, mode, pseudonym.TOKEN_HEX_CHARS).tolist()


def _check(target: Target, value: object) -> Hit | None:
    if not isinstance(value, str):
        return None
    kind = find_in(value)
    if kind is None and target.shape == "pseudonym" and value and not _TOKEN.fullmatch(value):
        kind = "not_pseudonymised"
    return Hit(target.name, kind, _redact(value)) if kind else None


def k_anonymity(con: duckdb.DuckDBPyConnection, relation: str,
                quasi_identifiers: Sequence[str]) -> int | None:
    """The smallest group of rows sharing the same quasi-identifier values (None: no rows)."""
    if not quasi_identifiers:
        return None
    cols = ", ".join(quote(c) for c in quasi_identifiers)
    row = con.execute(f"SELECT min(n) FROM (SELECT count(*) AS n FROM {relation} "
                      f"GROUP BY {cols})").fetchone()
    return int(row[0]) if row and row[0] is not None else None
