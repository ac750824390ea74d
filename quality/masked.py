"""Masking of values that GX reports (observed values, partial unexpected lists, literal
arguments), with the same DuckDB expressions as ``catalog.masking``; no GX import here, so
the API can use it without loading Great Expectations."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from catalog.masking import mask_expression
from catalog.models import ItemKind, Sensitivity

# Expectations whose observed value is about the table, not out of a column.
_METADATA_SUFFIXES = ("_to_be_of_type", "_to_be_in_type_list", "_to_exist")
# Keys of a GX result that may carry data values, and those that hold internals we drop.
_VALUE_KEYS = ("partial_unexpected_list", "observed_value")
_DROPPED_KEYS = ("unexpected_index_query", "unexpected_index_column_names",
                 "unexpected_index_list", "unexpected_list", "partial_unexpected_index_list",
                 "partial_unexpected_counts", "unexpected_rows")


@dataclass(frozen=True)
class ColumnMask:
    kind: ItemKind | None
    sensitivity: Sensitivity

    def sql(self, column_sql: str) -> str:
        return mask_expression(column_sql, self.kind, self.sensitivity)

    @property
    def hides(self) -> bool:
        return self.sensitivity is not Sensitivity.none


_QUOTED = (re.compile(r"'[^']*'"), re.compile(r'"[^"]*"'))
_LONG_DIGITS = re.compile(r"\d{6,}")


def scrub_error(text: str) -> str:
    """An error message safe to show auditors: its first line, with quoted literals and long
    digit runs blanked (database errors quote the value that failed, e.g. a name)."""
    first = (text.strip().splitlines() or [""])[0]
    return _LONG_DIGITS.sub("…", _blank_quoted(first))[:300]


def _blank_quoted(text: str) -> str:
    for pattern, blank in zip(_QUOTED, ("'…'", '"…"'), strict=True):
        text = pattern.sub(blank, text)
    return text


def jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def columns_of(kwargs: Mapping[str, Any]) -> list[str]:
    """The columns an expectation's arguments name, in GX's order."""
    if "column" in kwargs:
        return [str(kwargs["column"])]
    if "column_A" in kwargs:
        return [str(kwargs["column_A"]), str(kwargs["column_B"])]
    return [str(c) for c in kwargs.get("column_list") or []]


def reports_metadata(expectation_type: str) -> bool:
    """Whether the expectation's observed value describes the table (a type name, a column
    list, a row count) rather than values out of a column."""
    return expectation_type.endswith(_METADATA_SUFFIXES) or \
        expectation_type.startswith("expect_table_")


def mask_result_values(result: dict[str, Any], expectation_type: str, columns: list[str],
                       masks: Mapping[str, ColumnMask], con: Any) -> None:
    for key in _DROPPED_KEYS:
        result.pop(key, None)
    hidden = [c for c in columns if c in masks and masks[c].hides]
    if not hidden or reports_metadata(expectation_type):
        return
    result.pop("details", None)  # e.g. value counts of the column: values, not findings
    for key in _VALUE_KEYS:
        if key in result:
            result[key] = _mask_shaped(result[key], columns, masks, con)


def _mask_shaped(value: Any, columns: list[str], masks: Mapping[str, ColumnMask],
                 con: Any) -> Any:
    """Mask a value, or a list of values, as GX reports them for ``columns``: scalars of the
    first column, positional lists for column pairs, or {column: value} dicts."""
    if isinstance(value, list):
        return [_mask_element(v, columns, masks, con) for v in value]
    return _mask_element(value, columns, masks, con)


def _mask_element(value: Any, columns: list[str], masks: Mapping[str, ColumnMask],
                  con: Any) -> Any:
    if isinstance(value, dict):
        return {k: mask_values(con, [v], masks.get(k))[0] for k, v in value.items()}
    if isinstance(value, list | tuple) and len(columns) > 1:
        return [mask_values(con, [v], masks.get(c))[0]
                for v, c in zip(value, columns, strict=False)]
    first = masks.get(columns[0]) if columns else None
    if isinstance(value, list | tuple):
        return mask_values(con, value, first)
    return mask_values(con, [value], first)[0]


def mask_values(con: Any, values: Iterable[Any], mask: ColumnMask | None) -> list[Any]:
    """Mask values taken out of a column, in DuckDB with the column's mask expression."""
    values = list(values)
    if mask is None or not mask.hides:
        return values
    items = [None if v is None else str(jsonable(v)) for v in values]
    row = con.execute(f"SELECT list_transform(?::VARCHAR[], lambda v: {mask.sql('v')})",
                      [items]).fetchone()
    return list(row[0]) if row else []


def mask_configs(raw: dict[str, Any], masks: Mapping[str, ColumnMask], con: Any) -> None:
    """Literal values a custom expectation names for a personal column are masked too;
    ``batch_id`` (an internal name) is dropped."""
    for result in raw["results"]:
        config = result["expectation_config"]
        config["kwargs"] = public_kwargs(config, masks, con)


def public_kwargs(config: Mapping[str, Any], masks: Mapping[str, ColumnMask],
                  con: Any) -> dict[str, Any]:
    """An expectation's kwargs as shown: generated rules carry only catalog metadata (code
    lists, patterns, bounds), custom ones may name personal values and are masked."""
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    if (config.get("meta") or {}).get("source") == "generated":
        return kwargs
    return mask_kwargs(kwargs, masks, con)


_LITERAL_KWARGS = ("value_set", "value", "values", "min_value", "max_value", "value_pairs_set")


def mask_kwargs(kwargs: Mapping[str, Any], masks: Mapping[str, ColumnMask],
                con: Any) -> dict[str, Any]:
    columns = columns_of(kwargs)
    hidden = [masks[c] for c in columns if c in masks and masks[c].hides]
    out = dict(kwargs)
    if isinstance(out.get("row_condition"), str) and any(m.hides for m in masks.values()):
        # A row condition may compare any column with a literal: the literals are hidden.
        out["row_condition"] = _blank_quoted(out["row_condition"])
    if not hidden:
        return out
    for key in _LITERAL_KWARGS:
        value = out.get(key)
        if value is None or isinstance(value, dict):  # None or a suite parameter
            continue
        values = value if isinstance(value, list) else [value]
        masked = mask_values(con, [v if not isinstance(v, list) else str(v) for v in values],
                             hidden[0])
        out[key] = masked if isinstance(value, list) else masked[0]
    return out
