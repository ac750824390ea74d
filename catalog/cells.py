"""Cell normalisation and typed casts, as DuckDB SQL over the raw text of an upload.

Only what cannot change a value's meaning is normalised: surrounding whitespace is trimmed
(including the full-width space U+3000 and no-break spaces that spreadsheets leave behind),
and in codes, identifiers, phone numbers and numbers, full-width ASCII (１３８…, Ｘ) becomes
half-width, and the check character of resident IDs and credit codes is upper-cased
(``…123x`` → ``…123X``). A cell that is empty after trimming is NULL. Each change is counted
per column for the registration reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.models import ItemKind, ItemType

# Whitespace a trim removes: ASCII whitespace, no-break space, ideographic space, BOM.
_SPACES = " \t\r\n\u000b\u000c\u00a0\u3000\ufeff"
# Full-width ASCII (U+FF01..U+FF5E) → ASCII (U+0021..U+007E).
_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F))
_HALF = "".join(chr(c) for c in range(0x21, 0x7F))

# Items whose values are codes or numbers: here a full-width digit is only ever a typing
# accident. Free text (names, addresses) keeps its full-width characters.
WIDTH_KINDS = frozenset({ItemKind.resident_id, ItemKind.uscc, ItemKind.mobile,
                         ItemKind.bank_card, ItemKind.code, ItemKind.amount, ItemKind.email,
                         ItemKind.birth_date})
WIDTH_TYPES = frozenset({ItemType.integer, ItemType.decimal, ItemType.boolean, ItemType.date,
                         ItemType.datetime})
UPPER_KINDS = frozenset({ItemKind.resident_id, ItemKind.uscc})

# Dates as Chinese exports write them, all year first (so never ambiguous).
DATE_FORMATS = ("%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")
DATETIME_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y年%m月%d日 %H:%M:%S",
                    "%Y-%m-%d %H:%M")


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Steps:
    """The SQL of each normalisation step over one raw text column, in order."""

    raw: str
    trimmed: str
    half_width: str | None
    upper: str | None

    @property
    def result(self) -> str:
        return self.upper or self.half_width or self.trimmed


def steps(raw: str, type_: ItemType, kind: ItemKind | None) -> Steps:
    # trim() with a character set is ~4x the cost of a regex test: only where needed.
    edge = "[\\s\\x{0B}\\x{A0}\\x{3000}\\x{FEFF}]"
    trimmed = (f"CASE WHEN regexp_matches({raw}, '^{edge}|{edge}$') OR {raw} = '' "
               f"THEN NULLIF(trim({raw}, {sql_str(_SPACES)}), '') ELSE {raw} END")
    # translate() costs ~100× a regex test per value (DuckDB maps character by character
    # through the 94-character table): run it only on values that hold a full-width character.
    half = (f"CASE WHEN regexp_matches({trimmed}, '[\\x{{FF01}}-\\x{{FF5E}}]') "
            f"THEN translate({trimmed}, {sql_str(_FULL)}, {sql_str(_HALF)}) "
            f"ELSE {trimmed} END"
            if kind in WIDTH_KINDS or type_ in WIDTH_TYPES else None)
    upper = f"upper({half or trimmed})" if kind in UPPER_KINDS else None
    return Steps(raw, trimmed, half, upper)


def change_counts(s: Steps) -> dict[str, str]:
    """Aggregates counting the cells each step changed."""
    counts = {"trimmed": f"count(*) FILTER (WHERE {s.raw} IS DISTINCT FROM {s.trimmed})"}
    if s.half_width:
        counts["half_width"] = \
            f"count(*) FILTER (WHERE {s.trimmed} IS DISTINCT FROM {s.half_width})"
    if s.upper:
        counts["upper_case"] = \
            f"count(*) FILTER (WHERE {s.half_width or s.trimmed} IS DISTINCT FROM {s.upper})"
    return counts


def _formats(formats: tuple[str, ...]) -> str:
    return "[" + ", ".join(sql_str(f) for f in formats) + "]"


def typed(text: str, type_: ItemType, duck_type: str) -> str:
    """SQL casting normalised text to the declared type, NULL where it is not valid."""
    if type_ is ItemType.date:
        return (f"coalesce(TRY_CAST({text} AS DATE), "
                f"CAST(try_strptime({text}, {_formats(DATE_FORMATS)}) AS DATE))")
    if type_ is ItemType.datetime:
        return (f"coalesce(TRY_CAST({text} AS TIMESTAMP), "
                f"try_strptime({text}, {_formats(DATETIME_FORMATS + DATE_FORMATS)}))")
    if type_ is ItemType.boolean:
        return (f"CASE {text} WHEN '是' THEN true WHEN '否' THEN false "
                f"ELSE TRY_CAST({text} AS BOOLEAN) END")
    return f"TRY_CAST({text} AS {duck_type})"


# --- decimals ---------------------------------------------------------------------------------

MAX_PRECISION = 38


def decimal_scale_sql(text: str) -> str:
    """Digits after the decimal point of a number written as text."""
    return f"length(regexp_extract({text}, '\\.([0-9]*)$', 1))"


def decimal_integer_digits_sql(text: str) -> str:
    return f"length(ltrim(regexp_extract({text}, '^[+-]?([0-9]*)', 1), '0'))"


def decimal_type(precision: int, scale: int) -> str:
    return f"DECIMAL({precision},{scale})"
