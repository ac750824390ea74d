"""Custom Great Expectations for Chinese identifiers, written the GX way.

Each is a GX metric provider (one condition, implemented for GX's pandas engine and for its
SQL engine) plus a ``ColumnMapExpectation``/``ColumnPairMapExpectation`` subclass; importing
this module registers them in GX's expectation registry under their snake-case names:

* ``expect_column_values_to_be_valid_cn_resident_id`` (居民身份证号码, GB 11643)
* ``expect_column_values_to_be_valid_cn_uscc`` (统一社会信用代码, GB 32100)
* ``expect_column_pair_cn_resident_id_to_match_birth_date`` (consistency: the birth date
  item equals the date embedded in the ID)
* ``expect_rows_to_satisfy`` (consistency: a row expression of ``quality.expressions``, such
  as parts adding up to their total)

The SQL side calls the DuckDB macros of ``quality.sql_rules`` (DuckDB evaluates them
vectorised); the pandas side is vectorised numpy, so that the pandas contender of
``bench.bench_quality`` is a fair one. Rows where a value is missing are not judged here:
missing values are completeness, not validity.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics import ColumnMapMetricProvider
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
    multicolumn_condition_partial,
)

_RIC_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_RIC_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28],
                         dtype=np.int64)
# byte → index in the USCC alphabet (−1: not in it)
_USCC_INDEX = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate(_USCC_ALPHABET):
    _USCC_INDEX[ord(_c)] = _i


def _fixed_width(values: pd.Series, width: int) -> np.ndarray:
    """ASCII strings of exactly ``width`` chars as a (n, width) uint8 matrix."""
    joined = "".join(values.astype(str).tolist()).encode("ascii")
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, width)


def ric_birth_dates(values: pd.Series) -> pd.Series:
    """The birth date embedded in each resident ID (NaT where malformed)."""
    shaped = values.astype("string").str.fullmatch(r"[0-9]{17}[0-9Xx]").fillna(False)
    digits = values.astype("string").str.slice(6, 14).where(shaped)
    return pd.to_datetime(digits, format="%Y%m%d", errors="coerce")


def valid_resident_ids(values: pd.Series) -> pd.Series:
    """Vectorised GB 11643 check (see ``quality.sql_rules``)."""
    text = values.astype("string").str.upper()  # a lowercase x is the same X
    shaped = text.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False).to_numpy(dtype=bool)
    out = np.zeros(len(values), dtype=bool)
    if shaped.any():
        chars = _fixed_width(text[shaped], 18)
        total = (chars[:, :17].astype(np.int64) - 48) @ _RIC_WEIGHTS
        checked = _RIC_CHECK[total % 11] == chars[:, 17]
        dated = ric_birth_dates(text[shaped]).notna().to_numpy(dtype=bool)
        out[shaped] = checked & dated
    return pd.Series(out, index=values.index)


def valid_usccs(values: pd.Series) -> pd.Series:
    """Vectorised GB 32100 check (python-stdnum's rule, see ``quality.sql_rules``)."""
    text = values.astype("string")
    pattern = f"[0-9]{{8}}[{_USCC_ALPHABET}]{{10}}"
    shaped = text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)
    out = np.zeros(len(values), dtype=bool)
    if shaped.any():
        index = _USCC_INDEX[_fixed_width(text[shaped], 18)]
        total = index[:, :17] @ _USCC_WEIGHTS
        expected = (31 - total % 31) % 31
        out[shaped] = expected == index[:, 17]
    return pd.Series(out, index=values.index)


# --- metric providers ------------------------------------------------------------------------

class ColumnValuesValidCnResidentId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_cn_resident_id"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return valid_resident_ids(column)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, **kwargs: Any) -> Any:
        return sa.func.gs_valid_ric(column)


class ColumnValuesValidCnUscc(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_cn_uscc"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return valid_usccs(column)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, **kwargs: Any) -> Any:
        return sa.func.gs_valid_uscc(column)


class ColumnPairCnResidentIdMatchesBirthDate(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.cn_resident_id_matches_birth_date"
    condition_domain_keys = ("batch_id", "table", "column_A", "column_B", "row_condition",
                             "condition_parser", "ignore_row_if")
    condition_value_keys = ()

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **kwargs: Any) -> pd.Series:
        embedded = ric_birth_dates(column_A)
        declared = pd.to_datetime(column_B, errors="coerce")
        # A malformed ID has no embedded date: that is validity's finding, not consistency's.
        return (embedded.isna() | (embedded == declared)).fillna(False)

    @column_pair_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column_A: Any, column_B: Any, **kwargs: Any) -> Any:
        embedded = sa.func.gs_ric_birth(column_A)
        return sa.or_(embedded.is_(None), embedded == sa.cast(column_B, sa.Date))


# --- expectations ----------------------------------------------------------------------------

class ExpectColumnValuesToBeValidCnResidentId(ColumnMapExpectation):
    """Resident ID numbers carry a valid date and ISO 7064 MOD 11-2 check character."""

    map_metric = "column_values.valid_cn_resident_id"
    success_keys = ("mostly",)
    args_keys = ("column",)
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["govshare"]}


class ExpectColumnValuesToBeValidCnUscc(ColumnMapExpectation):
    """Unified social credit codes have the right shape and MOD 31 check character."""

    map_metric = "column_values.valid_cn_uscc"
    success_keys = ("mostly",)
    args_keys = ("column",)
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["govshare"]}


class ExpectColumnPairCnResidentIdToMatchBirthDate(ColumnPairMapExpectation):
    """The birth date item agrees with the birth date embedded in the resident ID."""

    map_metric = "column_pair_values.cn_resident_id_matches_birth_date"
    success_keys = ("column_A", "column_B", "ignore_row_if", "mostly")
    args_keys = ("column_A", "column_B")
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "either_value_is_missing")
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["govshare"]}


# --- row expressions (consistency rules over several items) ----------------------------------

def _parsed(expression: str, item_types: dict[str, str], item_aliases: dict[str, str]) -> Any:
    from quality.expressions import parse

    return parse(expression, item_types, item_aliases)


class MulticolumnValuesSatisfyExpression(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.satisfy_govshare_expression"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition",
                             "condition_parser", "ignore_row_if")
    condition_value_keys = ("expression", "item_types", "item_aliases")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, expression: str, item_types: dict[str, str],
                item_aliases: dict[str, str], **kwargs: Any) -> pd.Series:
        from quality.expressions import on_pandas

        return on_pandas(_parsed(expression, item_types, item_aliases), column_list)

    @multicolumn_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column_list: list[Any], expression: str, item_types: dict[str, str],
                    item_aliases: dict[str, str], **kwargs: Any) -> Any:
        from quality.expressions import to_sql

        # Re-parsed from the stored text and compiled to a SQLAlchemy expression over the
        # declared items: names become quoted identifiers, literals bound values.
        return to_sql(_parsed(expression, item_types, item_aliases))


class ExpectRowsToSatisfy(MulticolumnMapExpectation):
    """Every row satisfies a row expression over declared items (``quality.expressions``),
    e.g. ``abs(online_cases + offline_cases - total_cases) <= 0.01 * total_cases``.

    ``column_list`` (the items the expression reads), ``item_types`` (their declared types)
    and ``item_aliases`` (title → name) are filled in by govshare from the catalog, not by
    the user."""

    expression: str
    item_types: dict[str, str]
    item_aliases: dict[str, str] = pydantic.Field(default_factory=dict)
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"
    map_metric = "multicolumn_values.satisfy_govshare_expression"
    success_keys = ("expression", "item_types", "item_aliases", "mostly")
    args_keys = ("expression",)
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["govshare"]}

    @pydantic.validator("column_list")
    def _validate_column_list(cls, v: list[str]) -> list[str]:
        # GX's multicolumn expectations want two columns; an expression may read one.
        if not v:
            raise ValueError("column_list must name at least one column")
        return v
