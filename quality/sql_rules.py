"""Format rules as DuckDB SQL macros, created on every connection GX validates through.

They are the SQL side of the custom GX expectations in ``quality.gx_rules``: GX pushes each
rule down to DuckDB as ``gs_valid_ric(column)`` and DuckDB evaluates it vectorised. The
pandas side (``quality.gx_rules``) implements the same rules; tests check both agree with
python-stdnum on edge values.

* Resident ID (GB 11643-1999): 17 digits and a check character (a digit or X; a lowercase x
  is the same X, as in pseudonyms, ``access.pseudonym``), the
  ISO 7064 MOD 11-2 check, and a real calendar date in positions 7–14. Like python-stdnum's
  ``calc_check_digit``/``get_birth_date``; unlike ``stdnum.cn.ric.is_valid`` we do not look
  the first six digits up in a historical division-code table (codes are retired and reused;
  a stale table would reject real IDs). 15-digit legacy IDs are invalid: they were replaced
  by 2013 and cannot carry a check character.
* Unified social credit code (GB 32100-2015): python-stdnum's rule — 18 characters, the first
  8 digits, the rest from the code's 31-character alphabet, and the MOD 31 check character.
"""

from __future__ import annotations

_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _char_index(pos: int) -> str:
    # ord() - 48 rather than CAST: no error for a character the format check rejects.
    return f"(ord(substr(s, {pos}, 1)) - 48)"


def _ric_sum() -> str:
    return " + ".join(f"{w} * {_char_index(i + 1)}" for i, w in enumerate(_RIC_WEIGHTS))


def _uscc_sum() -> str:
    return " + ".join(f"{w} * (strpos('{_USCC_ALPHABET}', substr(s, {i + 1}, 1)) - 1)"
                      for i, w in enumerate(_USCC_WEIGHTS))


# Each macro reads its argument character by character rather than reusing a parsed
# chunk: DuckDB does not share repeated subexpressions inside CASE, which is where GX puts
# every condition, so a chunk parsed once per digit would be parsed seventeen times.
MACROS: tuple[str, ...] = (
    # The birth date embedded in a resident ID, or NULL when the ID is malformed.
    "CREATE OR REPLACE MACRO gs_ric_birth(s) AS CASE "
    "WHEN regexp_full_match(s, '[0-9]{17}[0-9Xx]') "
    "THEN CAST(try_strptime(substr(s, 7, 8), '%Y%m%d') AS DATE) END",
    "CREATE OR REPLACE MACRO gs_valid_ric(s) AS CASE "
    "WHEN regexp_full_match(s, '[0-9]{17}[0-9Xx]') "
    f"THEN substr('10X98765432', (({_ric_sum()}) % 11) + 1, 1) = upper(substr(s, 18, 1)) "
    "AND try_strptime(substr(s, 7, 8), '%Y%m%d') IS NOT NULL "
    "ELSE false END",
    "CREATE OR REPLACE MACRO gs_valid_uscc(s) AS CASE "
    f"WHEN regexp_full_match(s, '[0-9]{{8}}[{_USCC_ALPHABET}]{{10}}') "
    f"THEN substr('{_USCC_ALPHABET}', ((31 - (({_uscc_sum()}) % 31)) % 31) + 1, 1) "
    "= substr(s, 18, 1) ELSE false END",
)

MOBILE_REGEX = r"^1[3-9][0-9]{9}$"
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
BANK_CARD_REGEX = r"^[0-9]{12,19}$"
