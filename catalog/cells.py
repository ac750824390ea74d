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
    """Which normalisation steps apply to a text column, after the trim every column gets."""

    half_width: bool
    upper: bool

    @property
    def names(self) -> list[str]:
        """The steps in order, as counted in the registration reply."""
        return ["trimmed"] + ["half_width"] * self.half_width + ["upper_case"] * self.upper


def steps(type_: ItemType, kind: ItemKind | None) -> Steps:
    return Steps(half_width=kind in WIDTH_KINDS or type_ in WIDTH_TYPES,
                 upper=kind in UPPER_KINDS)


# Each step is SQL over the previous step's column (one column name, never a nested
# expression: the ingest materialises each step and its test once, so nothing runs twice per
# cell), and runs only on the values its cheap test selects: DuckDB's trim(x, chars) costs
# several times a test of the first and last characters, translate() ~100× (it maps
# character by character through its 94-entry table). The test is also the step's count.


def _is_space(code: str) -> str:
    # Comparisons, not IN (…): DuckDB plans a long IN list as a join.
    return (f"({code} = 32 OR {code} BETWEEN 9 AND 13 OR {code} = 160 OR {code} = 12288 "
            f"OR {code} = 65279)")


def edge_codes_sql(col: str) -> tuple[str, str]:
    """The code points of the cell's first and last characters (-1 for an empty cell)."""
    return f"ord({col})", f"ord({col}[-1])"


def trim_test_sql(first: str, last: str) -> str:
    """True when the cell starts or ends with whitespace, or is empty (NULL for NULL);
    ``first`` and ``last`` are the columns of ``edge_codes_sql``."""
    return f"({_is_space(first)} OR {_is_space(last)} OR {first} = -1)"


def trim_sql(col: str, test: str) -> str:
    """Surrounding whitespace trimmed; a cell empty after trimming is NULL."""
    return f"CASE WHEN {test} THEN NULLIF(trim({col}, {sql_str(_SPACES)}), '') ELSE {col} END"


def half_width_test_sql(col: str) -> str:
    """True when the cell holds a full-width ASCII character. Only values with a non-ASCII
    character (their byte length exceeds their character count) are searched for one."""
    # CASE, not AND: DuckDB evaluates both sides of an AND for every row of a projection.
    return (f"CASE WHEN strlen({col}) <> length({col}) "
            f"THEN regexp_matches({col}, '[\\x{{FF01}}-\\x{{FF5E}}]') ELSE false END")


def half_width_sql(col: str, test: str) -> str:
    """Full-width ASCII to half-width."""
    return (f"CASE WHEN {test} THEN translate({col}, {sql_str(_FULL)}, {sql_str(_HALF)}) "
            f"ELSE {col} END")


def upper_sql(col: str) -> str:
    return f"upper({col})"


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


# A decimal cell is written out in plain notation: digits, at most one point, an optional sign.
# DuckDB's own cast also takes 1e3 and 1_000; an exact decimal item refuses them rather than
# guess (a double's "1e-05" would otherwise round to 0 silently).
_PLAIN_DECIMAL = "[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)"


def plain_decimal_sql(text: str) -> str:
    return f"regexp_full_match({text}, '{_PLAIN_DECIMAL}')"


def decimal_scale_sql(text: str) -> str:
    """Digits after the decimal point of a number in plain notation."""
    return f"CASE WHEN strpos({text}, '.') = 0 THEN 0 ELSE length({text}) - strpos({text}, '.') END"


def decimal_integer_digits_sql(text: str) -> str:
    """Digits before the decimal point of a number in plain notation, without leading zeros."""
    return (f"length(ltrim(CASE WHEN strpos({text}, '.') = 0 THEN {text} "
            f"ELSE left({text}, strpos({text}, '.') - 1) END, '+-0'))")


def decimal_type(precision: int, scale: int) -> str:
    return f"DECIMAL({precision},{scale})"
