"""Expectation suites per resource: generated from the catalog entry plus custom
expectations, versioned whenever what would be validated changes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlmodel import Session, col, select

from catalog.models import DataVersion, Resource
from catalog.service import get_resource
from kernel.auth import Principal
from kernel.db import utcnow
from kernel.events import Event, publish
from kernel.identity import Role
from kernel.policy import is_data_bureau
from kernel.problems import Forbidden, Invalid, NotFound
from quality import expressions, guard, rules
from quality.expressions import Parsed
from quality.models import CustomExpectation, QualitySuite
from quality.rules import EXPECTATION_DIMENSIONS, Dimension, Rule

# Keys that steer GX's output or identity rather than what is expected: never from users.
_RESERVED_KWARGS = {"result_format", "catch_exceptions", "include_config", "meta", "id",
                    "rendered_content", "notes"}
# Expectations that run SQL text supplied by the user: never, whatever its role.
_RAW_SQL_EXPECTATIONS = {"unexpected_rows_expectation"}
_COLUMN_KWARGS = ("column", "column_A", "column_B")


# --- custom expectations ---------------------------------------------------------------------

ROW_EXPRESSION = "expect_rows_to_satisfy"  # quality.gx_rules.ExpectRowsToSatisfy
# What a user gives for a row expression; govshare derives column_list and item_types.
_ROW_EXPRESSION_KWARGS = {"expression", "mostly", "row_condition", "condition_parser"}
# Suite parameters govshare supplies at validation time (quality.validate).
SUITE_PARAMETERS = {"run_date"}


def require_editor(session: Session, who: Principal, resource: Resource) -> None:
    """The data bureau (kernel.policy) and publishers of the provider department."""
    if who.has(Role.publisher) and who.department_id == resource.provider_id:
        return
    if is_data_bureau(session, who):
        return
    raise Forbidden(f"Only the data bureau and publishers of the provider department can "
                    f"change the checks of {resource.code}.",
                    key="problem.quality.checks_forbidden", params={"code": resource.code})


def check_custom(who: Principal, resource: Resource, type_: str, kwargs: dict[str, Any],
                 dimension: str) -> dict[str, Any]:
    """Validate a custom expectation as GX would, and as ``quality.guard`` allows for
    ``who``, before it is saved; returns the kwargs to store."""
    if dimension not in {d.value for d in EXPECTATION_DIMENSIONS}:
        allowed = ", ".join(d.value for d in EXPECTATION_DIMENSIONS)
        raise Invalid(f"Dimension '{dimension}' is not one of: {allowed}.",
                      errors=[{"field": "dimension", "message": "unknown dimension"}],
                      key="problem.quality.dimension_not_allowed",
                      params={"dimension": dimension, "allowed": allowed})
    _check_gx_type(type_)
    reserved = sorted(_RESERVED_KWARGS & set(kwargs))
    if reserved:
        raise Invalid(f"These arguments are set by govshare, not per expectation: "
                      f"{', '.join(reserved)}.",
                      errors=[{"field": f"kwargs.{k}", "message": "not allowed"} for k in reserved],
                      key="problem.quality.reserved_arguments",
                      params={"reserved": ', '.join(reserved)})
    _check_parameters(kwargs)
    expression_items: list[str] = []
    if type_ == ROW_EXPRESSION:
        expression_items = list(_parse_row_expression(resource, kwargs).items)
    _check_columns(resource, kwargs)
    _check_row_condition(kwargs)
    kwargs = guard.check_custom(who, resource, type_, kwargs, expression_items)
    config = Rule(type_, _expanded(resource, type_, kwargs), "custom", Dimension(dimension),
                  source="custom").as_config()
    _instantiate(config)
    return kwargs


def _check_parameters(kwargs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        if isinstance(value, dict) and "$PARAMETER" in value and \
                (set(value) != {"$PARAMETER"} or value["$PARAMETER"] not in SUITE_PARAMETERS):
            raise Invalid(f"kwargs.{key}: the only suite parameter is "
                          '{"$PARAMETER": "run_date"} (the date of the run).',
                          errors=[{"field": f"kwargs.{key}", "message": "unknown parameter"}],
                          key="problem.quality.suite_parameter", params={"key": key})


def _item_types(resource: Resource) -> dict[str, str]:
    return {i.name: str(i.type) for i in resource.items}


def _item_aliases(resource: Resource) -> dict[str, str]:
    """Titles (e.g. 办件总量) by which an expression may name items, when unambiguous."""
    titles = [i.title for i in resource.items if i.title]
    return {i.title: i.name for i in resource.items
            if i.title and titles.count(i.title) == 1 and i.title != i.name}


def _parse_row_expression(resource: Resource, kwargs: dict[str, Any]) -> Parsed:
    extra = sorted(set(kwargs) - _ROW_EXPRESSION_KWARGS)
    if extra:
        raise Invalid(f"{ROW_EXPRESSION} takes an expression (and mostly); the items it reads "
                      f"come from the expression, not from {', '.join(extra)}.",
                      errors=[{"field": f"kwargs.{k}", "message": "not allowed"} for k in extra],
                      key="problem.quality.row_expression_args",
                      params={"ROW_EXPRESSION": ROW_EXPRESSION, "extra": ', '.join(extra)})
    try:
        return expressions.parse(kwargs.get("expression"), _item_types(resource),  # type: ignore[arg-type]
                                 _item_aliases(resource))
    except expressions.ExpressionError as exc:
        why, position = exc.message, exc.position
        raise Invalid(f"The expression cannot be checked: {why} (at position {position}).",
                      errors=[{"field": "kwargs.expression", "message": why,
                               "position": position}],
                      key="problem.quality.expression_invalid",
                      params={"why": why, "position": position}) from None


def _expanded(resource: Resource, type_: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs GX gets: a row expression's items and their declared types are filled in
    from the catalog entry as it is now (so a changed entry changes the suite)."""
    if type_ != ROW_EXPRESSION:
        return kwargs
    types, aliases = _item_types(resource), _item_aliases(resource)
    try:
        used = list(expressions.parse(str(kwargs.get("expression")), types, aliases).items)
    except expressions.ExpressionError:
        used = []  # the entry changed under it: GX reports the error, the check scores 0
    # GX's SQL engine wants at least two columns in a multicolumn domain; extra ones are
    # only read, never judged (ignore_row_if "never").
    for name in types:
        if len(used) >= 2:
            break
        if name not in used:
            used.append(name)
    return {**kwargs, "column_list": used, "item_types": types, "item_aliases": aliases}


def _check_gx_type(type_: str) -> None:
    from great_expectations.expectations.registry import get_expectation_impl

    import quality.gx_rules  # noqa: F401  (our own expectations are valid names too)

    if type_ in _RAW_SQL_EXPECTATIONS:
        raise Invalid(f"'{type_}' runs SQL text and cannot be added here.",
                      errors=[{"field": "type", "message": "not allowed"}],
                      key="problem.quality.sql_refused", params={"type_": type_})
    try:
        get_expectation_impl(type_)
    except Exception:
        raise Invalid(f"'{type_}' is not a Great Expectations expectation. Use a snake-case "
                      "name such as expect_column_values_to_match_regex.",
                      errors=[{"field": "type", "message": "unknown expectation"}],
                      key="problem.quality.not_an_expectation",
                      params={"type_": type_}) from None


def _check_columns(resource: Resource, kwargs: dict[str, Any]) -> None:
    names = {i.name for i in resource.items}
    named = [str(kwargs[k]) for k in _COLUMN_KWARGS if k in kwargs]
    named += [str(c) for c in kwargs.get("column_list") or []]
    unknown = [c for c in named if c not in names]
    if unknown:
        raise Invalid(f"Resource {resource.code} has no data item {', '.join(unknown)}.",
                      errors=[{"field": "kwargs", "message": f"unknown column {c}"}
                              for c in unknown],
                      key="problem.quality.no_items",
                      params={"code": resource.code, "unknown": ', '.join(unknown)})


def _check_row_condition(kwargs: dict[str, Any]) -> None:
    if kwargs.get("row_condition") is not None and \
            kwargs.get("condition_parser", "great_expectations") != "great_expectations":
        raise Invalid("A row_condition must use condition_parser 'great_expectations'.",
                      errors=[{"field": "kwargs.condition_parser", "message": "not allowed"}])


def _instantiate(config: dict[str, Any]) -> None:
    """GX's own validation of the arguments (types, required keys, value ranges)."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    try:
        ExpectationConfiguration(**config).to_domain_obj()
    except Exception as exc:
        raise Invalid(f"Great Expectations refused the arguments of {config['type']}: "
                      f"{_first_line(exc)}",
                      errors=[{"field": "kwargs", "message": _first_line(exc)}],
                      key="problem.quality.gx_refused",
                      params={"type": config['type'], "reason": _first_line(exc)}) from None


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:400] or type(exc).__name__


def add_custom(session: Session, who: Principal, code: str, type_: str,
               kwargs: dict[str, Any], dimension: str, note: str) -> CustomExpectation:
    resource = get_resource(session, code)
    require_editor(session, who, resource)
    kwargs = check_custom(who, resource, type_, kwargs, dimension)
    custom = CustomExpectation(resource_id=resource.id or 0, type=type_, arguments=kwargs,
                               dimension=dimension, note=note, added_by=who.user_id,
                               added_by_bureau=is_data_bureau(session, who))
    session.add(custom)
    session.flush()
    current_suite(session, resource)
    _logged(session, who, "quality.check_added", resource, custom)
    return custom


def _logged(session: Session, who: Principal, kind: str, resource: Resource,
            custom: CustomExpectation) -> None:
    """Every add and removal of a check is an entry of the signed log (who, which check on
    which resource); the arguments are in the digested payload."""
    publish(session, Event(kind, who.actor,
                           {"resource": resource.code, "check": str(custom.id),
                            "type": custom.type[:120], "dimension": custom.dimension},
                           {"kwargs": custom.arguments, "note": custom.note}))


def remove_custom(session: Session, who: Principal, code: str, custom_id: int) -> None:
    resource = get_resource(session, code)
    require_editor(session, who, resource)
    custom = session.get(CustomExpectation, custom_id)
    if custom is None or custom.resource_id != resource.id or custom.removed_at is not None:
        raise NotFound(f"Resource {code} has no custom expectation {custom_id}.",
                       key="problem.quality.no_custom_check",
                       params={"code": code, "custom_id": custom_id})
    if custom.added_by_bureau and not is_data_bureau(session, who):
        # The data bureau's own checks are not for the audited department to drop.
        raise Forbidden("This check was added by the data bureau; only the data bureau can "
                        "remove it.")
    custom.removed_by, custom.removed_at = who.user_id, utcnow()
    session.add(custom)
    session.flush()
    current_suite(session, resource)
    _logged(session, who, "quality.check_removed", resource, custom)


def active_customs(session: Session, resource: Resource) -> list[CustomExpectation]:
    return list(session.exec(select(CustomExpectation).where(
        CustomExpectation.resource_id == resource.id,
        col(CustomExpectation.removed_at).is_(None)).order_by(col(CustomExpectation.id))))


# --- suites ----------------------------------------------------------------------------------

def previous_rows(session: Session, resource: Resource, version: int) -> int | None:
    """Rows of the data as of the version before ``version`` (the row-count baseline)."""
    before = session.exec(select(DataVersion.total_rows).where(
        DataVersion.resource_id == resource.id, DataVersion.version == version - 1)).first()
    return int(before) if before is not None else None


def configs_for(session: Session, resource: Resource, version: int) -> list[dict[str, Any]]:
    generated = rules.generate(resource.items, date_item=resource.date_item,
                               previous_rows=previous_rows(session, resource, version))
    configs = [r.as_config() for r in generated]
    for custom in active_customs(session, resource):
        rule = Rule(custom.type, _expanded(resource, custom.type, custom.arguments),
                    f"custom:{custom.id}", Dimension(custom.dimension), source="custom",
                    note=custom.note)
        configs.append(rule.as_config())
    return configs


def fingerprint(configs: list[dict[str, Any]]) -> str:
    canonical = json.dumps(configs, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def next_suite(session: Session, resource: Resource,
               version: int | None = None) -> QualitySuite:
    """The suite a run of the data as of ``version`` (default current) would validate,
    without writing: the newest stored suite if nothing changed, else a new suite that is
    not stored (``id`` is None and it is not added to the session). Readers see this."""
    configs = configs_for(session, resource, version or resource.current_version)
    digest = fingerprint(configs)
    latest = latest_suite(session, resource)
    if latest is not None and latest.fingerprint == digest:
        return latest
    number = (latest.version if latest else 0) + 1
    return QualitySuite(resource_id=resource.id or 0, version=number, fingerprint=digest,
                        suite={"name": f"{resource.code}.v{number}", "expectations": configs})


def current_suite(session: Session, resource: Resource,
                  version: int | None = None) -> QualitySuite:
    """``next_suite``, stored as a new suite version if it differs from the newest stored
    one. Only runs and changes of the custom expectations call this (never a GET)."""
    suite = next_suite(session, resource, version)
    if suite.id is None:
        session.add(suite)
        session.flush()
    return suite


def latest_suite(session: Session, resource: Resource) -> QualitySuite | None:
    return session.exec(select(QualitySuite).where(QualitySuite.resource_id == resource.id)
                        .order_by(col(QualitySuite.version).desc())).first()


def list_suites(session: Session, resource: Resource) -> list[QualitySuite]:
    return list(session.exec(select(QualitySuite).where(QualitySuite.resource_id == resource.id)
                             .order_by(col(QualitySuite.version).desc())))
