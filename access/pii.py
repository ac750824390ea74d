"""The last check before delivery: does output meant to be masked still hold raw personal data?

Two steps, so the expensive part runs only on candidates: DuckDB scans the output columns
with a cheap regular expression (a run of 11+ digits, possibly split by spaces or hyphens),
then Python validates each digit run it finds: resident IDs (GB 11643 check digit and birth
date, via python-stdnum; 15-digit legacy IDs by their birth date), mobile numbers (11 digits,
1[3-9] prefix, optionally +86) and bank cards (16–19 digits, Luhn). Any hit blocks delivery.

The regex alone would block too much (order numbers, timestamps), the validators alone would
mean pulling every value into Python; together a clean 10M-row column costs one vectorised
scan and zero Python calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from access import pseudonym
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
        return f"abs({col}) >= 10000000000"
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
    one vectorised pass picks candidate rows, Python validates only those."""
    checks = [t if isinstance(t, Target) else Target(t) for t in targets]
    if not checks:
        return []
    columns = ", ".join(f"CAST({quote(t.name)} AS VARCHAR)" for t in checks)
    where = " OR ".join(f"({_candidate_sql(t)})" for t in checks)
    cur = con.execute(f"SELECT {columns} FROM {relation} WHERE {where}")
    hits: list[Hit] = []
    while len(hits) < MAX_HITS and (batch := cur.fetchmany(_BATCH)):
        hits.extend(_check_rows(batch, checks))
    return hits[:MAX_HITS]


def _check_rows(rows: Iterable[tuple[object, ...]], targets: Sequence[Target]) -> list[Hit]:
    hits = []
    for row in rows:
        for target, value in zip(targets, row, strict=True):
            if not isinstance(value, str):
                continue
            kind = find_in(value)
            if kind is None and target.shape == "pseudonym" and value \
                    and not _TOKEN.fullmatch(value):
                kind = "not_pseudonymised"
            if kind:
                hits.append(Hit(target.name, kind, _redact(value)))
    return hits


def k_anonymity(con: duckdb.DuckDBPyConnection, relation: str,
                quasi_identifiers: Sequence[str]) -> int | None:
    """The smallest group of rows sharing the same quasi-identifier values (None: no rows)."""
    if not quasi_identifiers:
        return None
    cols = ", ".join(quote(c) for c in quasi_identifiers)
    row = con.execute(f"SELECT min(n) FROM (SELECT count(*) AS n FROM {relation} "
                      f"GROUP BY {cols})").fetchone()
    return int(row[0]) if row and row[0] is not None else None
