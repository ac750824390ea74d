"""The expectation suite a catalog entry implies, as GX expectations.

Every generated expectation carries ``meta`` with a stable ``rule`` key (so a notice can name
it across suite versions), its quality ``dimension`` and ``source: generated``. Custom
expectations (``quality.suites``) carry ``source: custom``.

The table of what each data item implies is in docs/quality.md ("Generated suites").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from catalog.models import DUCKDB_TYPES, DataItem, ItemKind, ItemType
from quality.sql_rules import BANK_CARD_REGEX, EMAIL_REGEX, MOBILE_REGEX

RUN_DATE = {"$PARAMETER": "run_date"}  # GX suite parameter, supplied at validation time
EARLIEST_DATE = "1900-01-01"
LATEST_PLAUSIBLE_DATE = "2199-12-31"
# A new version may shrink to half or grow to ten times the previous one before the row
# count counts as implausible (a truncated export, a duplicated append).
ROW_COUNT_SHRINK, ROW_COUNT_GROWTH = 0.5, 10.0


class Dimension(StrEnum):
    freshness = "freshness"
    completeness = "completeness"
    validity = "validity"
    uniqueness = "uniqueness"
    consistency = "consistency"


# Dimensions that expectations can be attached to (freshness comes from metadata).
EXPECTATION_DIMENSIONS = (Dimension.completeness, Dimension.validity, Dimension.uniqueness,
                          Dimension.consistency)


@dataclass(frozen=True)
class Rule:
    """One expectation as GX configures it: its snake-case type, kwargs and meta."""

    type: str
    kwargs: dict[str, Any]
    rule: str
    dimension: Dimension
    source: str = "generated"
    note: str = ""  # a custom check's note: how reports and pages name it

    def as_config(self) -> dict[str, Any]:
        meta = {"rule": self.rule, "dimension": self.dimension.value, "source": self.source}
        if self.note:
            meta["note"] = self.note
        return {"type": self.type, "kwargs": self.kwargs, "meta": meta}


def expected_row_range(previous_rows: int | None) -> tuple[int, int | None]:
    if not previous_rows:
        return 1, None
    return (max(1, math.floor(previous_rows * ROW_COUNT_SHRINK)),
            math.ceil(previous_rows * ROW_COUNT_GROWTH))


def generate(items: Sequence[DataItem], *, date_item: str | None,
             previous_rows: int | None) -> list[Rule]:
    """The generated rules for a resource's data items, in a stable order."""
    rules = [Rule("expect_table_columns_to_match_set",
                  {"column_set": [i.name for i in items], "exact_match": False},
                  "items_present", Dimension.completeness)]
    rules += [Rule("expect_column_values_to_not_be_null", {"column": i.name},
                   f"not_null:{i.name}", Dimension.completeness) for i in items if i.required]
    for item in items:
        rules += _validity(item, item.name == date_item)
    if date_item:
        # Its observed value, the newest as-of date in the data, feeds freshness.
        rules.append(Rule("expect_column_max_to_be_between",
                          {"column": date_item, "max_value": RUN_DATE},
                          f"newest:{date_item}", Dimension.freshness))
    low, high = expected_row_range(previous_rows)
    rules.append(Rule("expect_table_row_count_to_be_between",
                      {"min_value": low, "max_value": high}, "row_count", Dimension.validity))
    rules += _uniqueness(items)
    rules += _consistency(items)
    return rules


def _validity(item: DataItem, is_date_item: bool) -> list[Rule]:
    col = item.name
    rules = [Rule("expect_column_values_to_be_of_type",
                  {"column": col, "type_": DUCKDB_TYPES[ItemType(item.type)]},
                  f"type:{col}", Dimension.validity)]
    by_kind = _KIND_RULES.get(item.kind) if item.kind else None
    if by_kind:
        rules.append(Rule(by_kind[0], {"column": col, **by_kind[1]},
                          f"{item.kind}:{col}", Dimension.validity))
    if item.kind is ItemKind.code and item.code_list:
        rules.append(Rule("expect_column_values_to_be_in_set",
                          {"column": col, "value_set": list(item.code_list)},
                          f"code_list:{col}", Dimension.validity))
    if item.type in (ItemType.date, ItemType.datetime):
        rules.append(_date_range(item, is_date_item))
    return rules


_KIND_RULES: dict[ItemKind, tuple[str, dict[str, Any]]] = {
    ItemKind.resident_id: ("expect_column_values_to_be_valid_cn_resident_id", {}),
    ItemKind.uscc: ("expect_column_values_to_be_valid_cn_uscc", {}),
    ItemKind.mobile: ("expect_column_values_to_match_regex", {"regex": MOBILE_REGEX}),
    ItemKind.email: ("expect_column_values_to_match_regex", {"regex": EMAIL_REGEX}),
    ItemKind.bank_card: ("expect_column_values_to_match_regex", {"regex": BANK_CARD_REGEX}),
}


def _date_range(item: DataItem, is_date_item: bool) -> Rule:
    # Birth dates and as-of dates cannot lie in the future; other dates (an expiry) may.
    past_only = is_date_item or item.kind is ItemKind.birth_date
    high: Any = RUN_DATE if past_only else LATEST_PLAUSIBLE_DATE
    return Rule("expect_column_values_to_be_between",
                {"column": item.name, "min_value": EARLIEST_DATE, "max_value": high},
                f"date_range:{item.name}", Dimension.validity)


def _uniqueness(items: Sequence[DataItem]) -> list[Rule]:
    keys = [i.name for i in items if i.is_key]
    if len(keys) == 1:
        return [Rule("expect_column_values_to_be_unique", {"column": keys[0]},
                     f"unique:{keys[0]}", Dimension.uniqueness)]
    if len(keys) > 1:
        return [Rule("expect_compound_columns_to_be_unique", {"column_list": keys},
                     "unique:" + "+".join(keys), Dimension.uniqueness)]
    return []


def _subject(name: str, suffixes: tuple[str, ...]) -> str:
    """Whose value an item holds, from its name: ``child_birth_date`` → ``child``."""
    for suffix in suffixes:
        if name.endswith(suffix):
            return name[: -len(suffix)].rstrip("_")
    return name


def _same_person(id_item: str, birth_item: str) -> bool:
    # An adopter's ID must not be checked against the child's birth date: pair the two only
    # when their names speak of the same subject, or one of them names no subject at all.
    a = _subject(id_item, ("resident_id", "id_number", "id_no", "id"))
    b = _subject(birth_item, ("birth_date", "birthday", "dob"))
    return a == b or not a or not b


def _consistency(items: Sequence[DataItem]) -> list[Rule]:
    ids = [i.name for i in items if i.kind is ItemKind.resident_id]
    births = [i.name for i in items if i.kind is ItemKind.birth_date]
    if len(ids) == 1 and len(births) == 1 and _same_person(ids[0], births[0]):
        return [Rule("expect_column_pair_cn_resident_id_to_match_birth_date",
                     {"column_A": ids[0], "column_B": births[0]},
                     f"id_birth_date:{ids[0]}+{births[0]}", Dimension.consistency)]
    return []
