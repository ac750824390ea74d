"""Masking plans and their execution as DuckDB SQL over the whole table.

A plan maps each requested data item to a ``ColumnRule``. ``default_plan`` derives it from
the item's sensitivity and kind; the provider's approver may tighten any column (never loosen
it below the default, ``check_tightening``). ``compile_columns`` turns the plan into one SQL
expression per output column; deliveries and API queries run ``SELECT <those> FROM data
WHERE <row filters>`` so DuckDB masks column-at-a-time and no row ever passes through Python.

Rules and their strength (a tighter rule has a higher strength):

* keep (0): the value as it is;
* partial (1): type-aware partial masking, ``catalog.masking.mask_expression``;
* pseudonymize (2): keyed HMAC-SHA256 per requesting department (``access.pseudonym``);
* generalize (2): month / year / 5- or 10-year age band of a date, street / district / city
  of an address, range of an amount; within a method family a coarser one is tighter
  (month < year < 5-year band < 10-year band; street < district < city);
* suppress (3): the column is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from math import isfinite
from typing import Any, Protocol

from pydantic import BaseModel, Field, model_validator

from access import pseudonym
from catalog.masking import mask_expression
from catalog.models import ItemKind, ItemType, Sensitivity
from catalog.warehouse import quote
from kernel.problems import Invalid, Phrase, Phrases


class MaskingRule(StrEnum):
    keep = "keep"
    partial = "partial"
    pseudonymize = "pseudonymize"
    generalize = "generalize"
    suppress = "suppress"


class Generalization(StrEnum):
    month = "month"  # a date → YYYY-MM
    year = "year"  # a date → its year
    age_band_5 = "age_band_5"  # a birth date → 5-year age band on the delivery date, 30-34
    age_band = "age_band"  # a birth date → 10-year age band on the delivery date, e.g. 30-39
    street = "street"  # an address → up to its street or town (街道/镇/乡), else its district
    district = "district"  # an address → up to its district (区/县/旗), else its city
    city = "city"  # an address → its city (市)
    range = "range"  # an amount → [lo, hi): fixed width, or 1 significant digit by default


STRENGTH = {MaskingRule.keep: 0, MaskingRule.partial: 1, MaskingRule.pseudonymize: 2,
            MaskingRule.generalize: 2, MaskingRule.suppress: 3}
_DATE_COARSENESS = {Generalization.month: 1, Generalization.year: 2,
                    Generalization.age_band_5: 3, Generalization.age_band: 4}
_ADDRESS_COARSENESS = {Generalization.street: 1, Generalization.district: 2,
                       Generalization.city: 3}
PERSONAL_KINDS = frozenset({ItemKind.resident_id, ItemKind.mobile, ItemKind.person_name,
                            ItemKind.bank_card, ItemKind.email, ItemKind.birth_date,
                            ItemKind.address})


class ColumnRule(BaseModel):
    rule: MaskingRule
    method: Generalization | None = None
    width: float | None = Field(default=None, gt=0, description="Range width (generalize/range)")

    @model_validator(mode="after")
    def _method_only_for_generalize(self) -> ColumnRule:
        if (self.rule is MaskingRule.generalize) != (self.method is not None):
            raise ValueError("'method' is required for generalize and only for generalize")
        if self.width is not None and self.method is not Generalization.range:
            raise ValueError("'width' applies only to the range generalization")
        return self


class Item(Protocol):
    """What masking needs of a ``catalog.models.DataItem``."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> ItemType: ...
    @property
    def kind(self) -> ItemKind | None: ...
    @property
    def sensitivity(self) -> Sensitivity: ...
    @property
    def is_key(self) -> bool: ...


Plan = dict[str, ColumnRule]


# --- the default plan -------------------------------------------------------------------------

def effective_sensitivity(item: Item) -> Sensitivity:
    """A personal kind is personal data even if the publisher declared it ``none``."""
    if item.sensitivity == Sensitivity.none and item.kind in PERSONAL_KINDS:
        return Sensitivity.personal
    return item.sensitivity


def default_rule(item: Item) -> ColumnRule:
    s = effective_sensitivity(item)
    if s == Sensitivity.none:
        return ColumnRule(rule=MaskingRule.keep)
    if s == Sensitivity.confidential:
        return ColumnRule(rule=MaskingRule.suppress)
    # Identifiers become pseudonyms: the requester can still join its own deliveries on them.
    if item.kind in (ItemKind.resident_id, ItemKind.bank_card) or item.is_key:
        return ColumnRule(rule=MaskingRule.pseudonymize)
    generalization = _default_generalization(item, s)
    if generalization is not None:
        return ColumnRule(rule=MaskingRule.generalize, method=generalization)
    return ColumnRule(rule=MaskingRule.partial)


def _default_generalization(item: Item, s: Sensitivity) -> Generalization | None:
    if item.kind == ItemKind.birth_date:
        return Generalization.age_band if s == Sensitivity.sensitive_personal \
            else Generalization.year
    if item.type in (ItemType.date, ItemType.datetime):
        return Generalization.month
    if item.kind == ItemKind.address and item.type == ItemType.string:
        return Generalization.district
    if item.type in (ItemType.integer, ItemType.decimal):
        return Generalization.range
    return None


def default_plan(items: Sequence[Item], names: Sequence[str]) -> Plan:
    by_name = {i.name: i for i in items}
    return {n: default_rule(by_name[n]) for n in names}


def plan_json(plan: Plan) -> dict[str, Any]:
    return {n: r.model_dump(exclude_none=True) for n, r in plan.items()}


def plan_from_json(raw: Mapping[str, Any]) -> Plan:
    return {n: ColumnRule.model_validate(r) for n, r in raw.items()}


# --- tightening -------------------------------------------------------------------------------

def at_least_as_strict(new: ColumnRule, old: ColumnRule) -> bool:
    if new == old:
        return True
    if STRENGTH[new.rule] != STRENGTH[old.rule]:
        return STRENGTH[new.rule] > STRENGTH[old.rule]
    if new.rule is not old.rule or new.rule is not MaskingRule.generalize:
        return False  # e.g. pseudonymize vs generalize: different, neither is tighter
    assert new.method is not None and old.method is not None
    if new.method in _DATE_COARSENESS and old.method in _DATE_COARSENESS:
        return _DATE_COARSENESS[new.method] >= _DATE_COARSENESS[old.method]
    if new.method in _ADDRESS_COARSENESS and old.method in _ADDRESS_COARSENESS:
        return _ADDRESS_COARSENESS[new.method] >= _ADDRESS_COARSENESS[old.method]
    if new.method == Generalization.range and old.method == Generalization.range:
        # Only fixed widths compare; the significant-digit default is its own scale.
        return old.width is not None and new.width is not None and new.width >= old.width
    return False


def tighten(items: Sequence[Item], base: Plan, changes: Mapping[str, ColumnRule]) -> Plan:
    """``base`` with ``changes`` applied, refusing any change that loosens a column."""
    by_name = {i.name: i for i in items}
    errors = []
    for name, rule in changes.items():
        if name not in base:
            errors.append({"column": name, "problem": Phrase(
                "problem.access.masking.not_an_item", "not one of the application's items")})
        elif not at_least_as_strict(rule, base[name]):
            new, old = _describe(rule), _describe(base[name])
            errors.append({"column": name, "problem": Phrase(
                "problem.access.masking.looser", f"{new} is not at least as strict as {old}",
                {"new": new, "old": old})})
        else:
            problem = applicability(by_name[name], rule)
            if problem:
                errors.append({"column": name, "problem": problem})
    if errors:
        problems = Phrases(tuple(Phrase("problem.access.masking.column",
                                        f"{e['column']}: {e['problem']}",
                                        {"column": e["column"], "problem": e["problem"]})
                                 for e in errors), "semicolon")
        raise Invalid("The masking plan can only be tightened, with rules that fit each "
                      f"column: {problems}", errors=errors,
                      key="problem.access.masking.not_tighter", params={"problems": problems})
    plan = dict(base) | dict(changes)
    if all(r.rule is MaskingRule.suppress for r in plan.values()):
        raise Invalid("The plan suppresses every item: nothing would be delivered. "
                      "Reject the application instead.")
    return plan


def _describe(rule: ColumnRule) -> str:
    return f"{rule.rule.value}({rule.method.value})" if rule.method else rule.rule.value


def applicability(item: Item, rule: ColumnRule) -> Phrase | None:
    """Why ``rule`` cannot apply to ``item`` (in the catalogue's words), or None."""
    if rule.rule is not MaskingRule.generalize:
        return None
    m = rule.method
    method = m.value if m else ""
    dates = (ItemType.date, ItemType.datetime)
    if m in _DATE_COARSENESS and not (item.type in dates or item.kind == ItemKind.birth_date):
        return Phrase("problem.access.masking.needs_date",
                      f"{method} needs a date or a birth date", {"method": method})
    if m in _ADDRESS_COARSENESS and item.type != ItemType.string:
        return Phrase("problem.access.masking.needs_address",
                      f"{method} needs an address (text)", {"method": method})
    if m == Generalization.range and item.type not in (ItemType.integer, ItemType.decimal):
        return Phrase("problem.access.masking.needs_number", "range needs a number")
    return None


# --- SQL --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutputColumn:
    name: str
    sql: str  # expression over the raw column
    type: ItemType  # the type of the *output* (masked values are mostly text)
    rule: MaskingRule
    # The expression is the pseudonym function itself, whose output alphabet is [0-9a-f]:
    # every value is a 32-hex token, '' or NULL by construction, so the raw-PII check need
    # not read the column back (``access.packaging.targets``).
    tokens_only: bool = False

    @property
    def masked(self) -> bool:
        """Meant to be masked: the raw-PII check covers it."""
        return self.rule != MaskingRule.keep


# Cells a spreadsheet would run as a formula (OWASP CSV injection), plus tab and CR.
_FORMULA_STARTS = "'=', '+', '-', '@', chr(9), chr(13)"


def compile_columns(items: Sequence[Item], plan: Plan, *, as_of: date,
                    csv: bool = False) -> list[OutputColumn]:
    """One SQL expression per delivered column (suppressed ones are left out)."""
    by_name = {i.name: i for i in items}
    out = []
    for name, rule in plan.items():
        if rule.rule is MaskingRule.suppress:
            continue
        item = by_name[name]
        sql, out_type = _expression(item, rule, as_of)
        # Pseudonyms are hex: they never start like a spreadsheet formula.
        if csv and out_type == ItemType.string and rule.rule is not MaskingRule.pseudonymize:
            sql = f"(CASE WHEN left({sql}, 1) IN ({_FORMULA_STARTS}) THEN '''' || {sql} " \
                  f"ELSE {sql} END)"
        tokens = rule.rule is MaskingRule.pseudonymize and \
            pseudonym.is_token_call(sql, quote(name))
        out.append(OutputColumn(name, sql, out_type, rule.rule, tokens_only=tokens))
    return out


def _expression(item: Item, rule: ColumnRule, as_of: date) -> tuple[str, ItemType]:
    col = quote(item.name)
    if rule.rule is MaskingRule.keep:
        return col, item.type
    if rule.rule is MaskingRule.partial:
        sensitivity = Sensitivity(effective_sensitivity(item))
        if sensitivity == Sensitivity.none:  # tightened by the approver
            sensitivity = Sensitivity.personal
        kind = ItemKind(item.kind) if item.kind is not None else None
        return mask_expression(col, kind, sensitivity), ItemType.string
    if rule.rule is MaskingRule.pseudonymize:
        return pseudonym.hmac_sql(col, item.kind), ItemType.string
    assert rule.method is not None
    return _generalize(item, rule.method, rule.width, as_of)


def _as_date(item: Item) -> str:
    col = quote(item.name)
    if item.type in (ItemType.date, ItemType.datetime):
        return f"CAST({col} AS DATE)"
    # Text birth dates: ISO (1990-03-07) or compact (19900307).
    return (f"COALESCE(TRY_CAST({col} AS DATE), "
            f"CAST(TRY_STRPTIME(CAST({col} AS VARCHAR), '%Y%m%d') AS DATE))")


def _generalize(item: Item, method: Generalization, width: float | None,
                as_of: date) -> tuple[str, ItemType]:
    col = quote(item.name)
    if method == Generalization.year:
        return f"year({_as_date(item)})", ItemType.integer
    if method == Generalization.month:
        return f"strftime({_as_date(item)}, '%Y-%m')", ItemType.string
    if method in (Generalization.age_band, Generalization.age_band_5):
        size = 5 if method == Generalization.age_band_5 else 10
        age = f"date_sub('year', {_as_date(item)}, DATE '{as_of.isoformat()}')"
        band = f"(({age}) // {size} * {size})"
        return (f"CASE WHEN {age} IS NULL OR {age} < 0 THEN NULL "
                f"ELSE CAST({band} AS VARCHAR) || '-' || CAST({band} + {size - 1} AS VARCHAR) "
                f"END"), ItemType.string
    if method == Generalization.district:
        return _district(col), ItemType.string
    if method == Generalization.street:
        return _street(col), ItemType.string
    if method == Generalization.city:
        return _city(col), ItemType.string
    return _range(col, width), ItemType.string


def _district(col: str) -> str:
    v = f"CAST({col} AS VARCHAR)"
    # Up to the first 区/县/旗, skipping an autonomous region or prefecture (自治区/自治州)
    # before it; a 小区/社区/园区 (compound) is not a district, so fall back to the city.
    m = f"regexp_extract(left({v}, 24), '^((?:.*?自治[区州])?.*?(?:区|县|旗))', 1)"
    city = f"NULLIF(regexp_extract(left({v}, 12), '^(.*?市)', 1), '')"
    compound = " OR ".join(f"{m} LIKE '%{s}'" for s in ("小区", "社区", "园区", "校区"))
    return (f"CASE WHEN {v} IS NULL THEN NULL WHEN {v} = '' THEN '' "
            f"WHEN {m} <> '' AND NOT ({compound}) THEN {m} ELSE {city} END")


def _street(col: str) -> str:
    v = f"CAST({col} AS VARCHAR)"
    # Up to the first 街道/镇/乡 (sub-district, town, township) after the district, else the
    # first road (路/街/道); without either, the district.
    m = (f"regexp_extract(left({v}, 40), '^((?:.*?自治[区州])?.*?(?:区|县|旗)"
         f".*?(?:街道|镇|乡|路|大道|街))', 1)")
    return f"CASE WHEN {m} <> '' THEN {m} ELSE {_district(col)} END"


def _city(col: str) -> str:
    v = f"CAST({col} AS VARCHAR)"
    city = f"regexp_extract(left({v}, 12), '^(.*?市)', 1)"
    return (f"CASE WHEN {v} IS NULL THEN NULL WHEN {v} = '' THEN '' "
            f"ELSE NULLIF({city}, '') END")


def _num(sql: str, step_sql: str) -> str:
    """A bound as text: integral steps print as integers, smaller ones with their decimals."""
    digits = f"CAST(greatest(0, -floor(log10({step_sql}))) AS INTEGER)"
    return (f"CASE WHEN {step_sql} >= 1 THEN CAST(CAST(round({sql}) AS HUGEINT) AS VARCHAR) "
            f"ELSE CAST(round({sql}, {digits}) AS VARCHAR) END")


def _range(col: str, width: float | None) -> str:
    x = f"CAST({col} AS DOUBLE)"
    step = repr(float(width)) if width is not None else \
        f"pow(10, floor(log10(abs(NULLIF({x}, 0)))))"
    lo = f"(floor(abs({x}) / {step}) * {step})"
    hi = f"({lo} + {step})"
    if width is not None:  # fixed bins over the signed value
        lo, hi = f"(floor({x} / {step}) * {step})", f"(floor({x} / {step}) * {step} + {step})"
        return (f"CASE WHEN {x} IS NULL THEN NULL ELSE "
                f"'[' || {_num(lo, step)} || ', ' || {_num(hi, step)} || ')' END")
    return (f"CASE WHEN {x} IS NULL THEN NULL WHEN {x} = 0 THEN '0' "
            f"WHEN {x} < 0 THEN '(-' || {_num(hi, step)} || ', -' || {_num(lo, step)} || ']' "
            f"ELSE '[' || {_num(lo, step)} || ', ' || {_num(hi, step)} || ')' END")


# --- row filters ------------------------------------------------------------------------------

class FilterOp(StrEnum):
    eq = "eq"
    ne = "ne"
    lt = "lt"
    le = "le"
    gt = "gt"
    ge = "ge"
    in_ = "in"
    not_in = "not_in"
    between = "between"
    is_null = "is_null"
    not_null = "not_null"


_COMPARE = {FilterOp.eq: "=", FilterOp.ne: "<>", FilterOp.lt: "<", FilterOp.le: "<=",
            FilterOp.gt: ">", FilterOp.ge: ">="}
_ARITY = {FilterOp.between: (2, 2), FilterOp.is_null: (0, 0), FilterOp.not_null: (0, 0),
          FilterOp.in_: (1, 1000), FilterOp.not_in: (1, 1000)}


class RowFilter(BaseModel):
    """A structured condition (never SQL text): ``column op values``."""

    column: str = Field(max_length=64)
    op: FilterOp
    values: list[str | int | float | bool] = Field(default_factory=list, max_length=1000)


def literal(value: Any, type_: ItemType) -> str:
    """A SQL literal of ``type_`` from a client value, or Invalid: values are parsed into
    Python types first, so nothing a client sends is ever spliced into SQL as text."""
    try:
        return _LITERALS[type_](value)
    except (TypeError, ValueError):
        raise Invalid(f"'{value}' is not a valid {type_.value}.",
                      key="problem.access.not_valid_type",
                      params={"value": value, "type_": type_.value}) from None


def _lit_string(v: Any) -> str:
    if not isinstance(v, str | int | float) or isinstance(v, bool) or "\0" in str(v):
        raise ValueError(v)
    return "'" + str(v).replace("'", "''") + "'"


def _lit_int(v: Any) -> str:
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise ValueError(v)
    return str(int(v))


def _lit_float(v: Any) -> str:
    if isinstance(v, bool):
        raise ValueError(v)
    f = float(v)
    if not isfinite(f):
        raise ValueError(v)
    return repr(f)


def _lit_bool(v: Any) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if str(v).lower() in ("true", "false"):
        return str(v).upper()
    raise ValueError(v)


_LITERALS = {
    ItemType.string: _lit_string,
    ItemType.integer: _lit_int,
    ItemType.decimal: _lit_float,
    ItemType.boolean: _lit_bool,
    ItemType.date: lambda v: f"DATE '{date.fromisoformat(str(v)).isoformat()}'",
    ItemType.datetime: lambda v: f"TIMESTAMP '{datetime.fromisoformat(str(v)).isoformat()}'",
}


def filter_sql(filters: Sequence[RowFilter], columns: Mapping[str, tuple[str, ItemType]]) -> str:
    """``WHERE`` body for the filters over ``columns`` (name → (SQL expression, type))."""
    parts = []
    for f in filters:
        if f.column not in columns:
            raise Invalid(f"Cannot filter on '{f.column}': not one of "
                          f"{', '.join(sorted(columns))}.",
                          key="problem.access.filter_unknown_column",
                          params={"column": f.column, "columns": ', '.join(sorted(columns))})
        sql, type_ = columns[f.column]
        lo, hi = _ARITY.get(f.op, (1, 1))
        if not lo <= len(f.values) <= hi:
            raise Invalid(f"Filter '{f.op.value}' on '{f.column}' takes {lo}–{hi} value(s).",
                          key="problem.access.filter_arity",
                          params={"op": f.op.value, "column": f.column, "lo": lo, "hi": hi})
        parts.append(_condition(sql, f, [literal(v, type_) for v in f.values]))
    return " AND ".join(parts) if parts else "TRUE"


def _condition(sql: str, f: RowFilter, values: list[str]) -> str:
    if f.op in _COMPARE:
        return f"({sql} {_COMPARE[f.op]} {values[0]})"
    if f.op is FilterOp.between:
        return f"({sql} BETWEEN {values[0]} AND {values[1]})"
    if f.op is FilterOp.is_null:
        return f"({sql} IS NULL)"
    if f.op is FilterOp.not_null:
        return f"({sql} IS NOT NULL)"
    joined = ", ".join(values)
    return f"({sql} IN ({joined}))" if f.op is FilterOp.in_ else f"({sql} NOT IN ({joined}))"
