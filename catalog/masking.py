"""Type-aware partial masking (脱敏) as DuckDB SQL expressions.

``mask_expression(column_sql, kind, sensitivity)`` returns a SQL expression that DuckDB
evaluates column-at-a-time, so masking never loops over rows in Python and raw values never
have to leave DuckDB. Quality uses it for the example failing rows it stores; the access
pipeline will use it for deliveries.

Rules (sensitivity first, then the item's kind):

* ``none``: unchanged (same type);
* ``confidential``: NULL — suppressed, not even the length shows;
* ``personal`` / ``sensitive_personal``, by kind (result is VARCHAR):

  ============  =====================================  ===========================
  kind          keeps                                  example
  ============  =====================================  ===========================
  resident_id   18 chars: first 6 + last 4;            ``110101********1234``
                15-char legacy IDs: first 6 + last 3;  ``110101******123``
                any other length: nothing
  mobile        11+ chars: first 3 + last 4            ``138****5678``
  person_name   the surname (compound surnames such    ``张*``, ``欧阳**``
                as 欧阳 when 3+ chars, else 1 char)
  bank_card     12+ chars: last 4                      ``************1234``
  address       up to the first 区/县/旗 within the     ``广东省深圳市南山区***``
                first 12 chars, else the first 6
                chars of addresses longer than 8
  email         first char + the domain                ``z***@example.com``
  other kinds   nothing: a fixed ``***``
  ============  =====================================  ===========================

NULL stays NULL and an empty string stays empty (the access log and quality reports must be
able to tell "missing" from "masked"). A value too short for its rule is masked in full, with
one ``*`` per character, so a malformed 3-character "ID" reveals nothing.
"""

from __future__ import annotations

from catalog.models import ItemKind, Sensitivity

FIXED = "'***'"

# Two-character surnames (复姓) common enough to matter; a name starting with one of these
# and at least three characters long keeps both characters.
COMPOUND_SURNAMES: tuple[str, ...] = (
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文",
    "司徒", "夏侯", "轩辕", "令狐", "司空", "端木", "独孤", "南宫", "西门", "百里", "呼延",
    "澹台", "公冶", "太史", "申屠", "钟离", "闻人", "万俟", "赫连", "拓跋", "左丘", "东郭",
    "单于", "濮阳", "淳于", "仲孙", "宗政", "公羊", "谷梁", "第五", "羊舌", "梁丘", "闾丘",
)

# The address prefix kept reaches at most this far (a district name is rarely longer), so an
# address whose first "区" belongs to a residential compound (小区) leaks little.
_ADDRESS_PREFIX_MAX = 12
_ADDRESS_FALLBACK = 6


# Every rule maps NULL to NULL (string functions propagate it) and '' to '' (zero stars), so
# the expressions need no guard of their own. They are written for speed as well: this is
# the inner loop of a delivery, where each string function costs ~50 ns a value. ``substr``
# is cheaper than ``left`` in DuckDB, and each branch's length condition already ensures
# the count of stars is positive.


def _stars(n_sql: str) -> str:
    return f"repeat('*', {n_sql})"


def _all_stars(v: str) -> str:
    return _stars(f"length({v})")


def _keep(v: str, head: int, tail: int) -> str:
    """First ``head`` and last ``tail`` characters, stars in between (the caller's branch
    guarantees ``length(v) >= head + tail``)."""
    middle = _stars(f"length({v}) - {head + tail}")
    head_sql = f"substr({v}, 1, {head})" if head else "''"
    tail_sql = f"right({v}, {tail})" if tail else "''"
    return f"{head_sql} || {middle} || {tail_sql}"


def _resident_id(v: str) -> str:
    # The usual lengths get constant-width stars: no repeat() per value.
    return (f"CASE WHEN length({v}) = 18 THEN substr({v}, 1, 6) || '********' || substr({v}, 15) "
            f"WHEN length({v}) = 15 THEN substr({v}, 1, 6) || '******' || substr({v}, 13) "
            f"ELSE {_all_stars(v)} END")


def _mobile(v: str) -> str:
    return (f"CASE WHEN length({v}) = 11 THEN substr({v}, 1, 3) || '****' || substr({v}, 8) "
            f"WHEN length({v}) > 11 THEN {_keep(v, 3, 4)} ELSE {_all_stars(v)} END")


def _person_name(v: str) -> str:
    compounds = ", ".join(f"'{s}'" for s in COMPOUND_SURNAMES)
    return (f"CASE WHEN length({v}) >= 3 AND substr({v}, 1, 2) IN ({compounds}) "
            f"THEN {_keep(v, 2, 0)} "
            f"WHEN length({v}) >= 2 THEN {_keep(v, 1, 0)} ELSE {_all_stars(v)} END")


def _bank_card(v: str) -> str:
    return f"CASE WHEN length({v}) >= 12 THEN {_keep(v, 0, 4)} ELSE {_all_stars(v)} END"


def _address(v: str) -> str:
    prefix = f"regexp_extract(left({v}, {_ADDRESS_PREFIX_MAX}), '^.*?(区|县|旗)', 0)"
    return (f"CASE WHEN {prefix} <> '' AND length({prefix}) < length({v}) "
            f"THEN {prefix} || '***' "
            f"WHEN {prefix} <> '' THEN {prefix} "
            f"WHEN length({v}) > {_ADDRESS_FALLBACK + 2} "
            f"THEN left({v}, {_ADDRESS_FALLBACK}) || '***' "
            f"ELSE {_all_stars(v)} END")


def _email(v: str) -> str:
    at = f"strpos({v}, '@')"
    return (f"CASE WHEN {at} > 1 THEN left({v}, 1) || '***' || substr({v}, {at}) "
            f"ELSE {_all_stars(v)} END")


_BY_KIND = {
    ItemKind.resident_id: _resident_id,
    ItemKind.mobile: _mobile,
    ItemKind.person_name: _person_name,
    ItemKind.bank_card: _bank_card,
    ItemKind.address: _address,
    ItemKind.email: _email,
}


def mask_expression(column_sql: str, kind: ItemKind | None, sensitivity: Sensitivity) -> str:
    """A DuckDB SQL expression masking ``column_sql`` (a quoted column or any expression)."""
    if sensitivity is Sensitivity.none:
        return column_sql
    if sensitivity is Sensitivity.confidential:
        return "CAST(NULL AS VARCHAR)"
    v = f"CAST({column_sql} AS VARCHAR)"
    rule = _BY_KIND.get(kind) if kind is not None else None
    if rule is not None:
        return rule(v)
    return f"CASE WHEN {v} IS NULL THEN NULL WHEN {v} = '' THEN '' ELSE {FIXED} END"


def is_masked(sensitivity: Sensitivity) -> bool:
    """Whether values of this sensitivity are ever shown other than masked."""
    return sensitivity is not Sensitivity.none
