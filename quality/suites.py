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
from kernel.identity import Role, User
from kernel.problems import Forbidden, Invalid, NotFound
from quality import rules
from quality.models import CustomExpectation, QualitySuite
from quality.rules import EXPECTATION_DIMENSIONS, Dimension, Rule

# Keys that steer GX's output or identity rather than what is expected: never from users.
_RESERVED_KWARGS = {"result_format", "catch_exceptions", "include_config", "meta", "id",
                    "rendered_content", "notes"}
# Expectations that run SQL text supplied by the user: never, whatever its role.
_RAW_SQL_EXPECTATIONS = {"unexpected_rows_expectation"}
_COLUMN_KWARGS = ("column", "column_A", "column_B")


# --- custom expectations ---------------------------------------------------------------------

def require_editor(who: Principal, resource: Resource) -> None:
    """Auditors (the data bureau) and publishers of the provider department."""
    if who.has(Role.auditor):
        return
    if who.has(Role.publisher) and who.department_id == resource.provider_id:
        return
    raise Forbidden(f"Only auditors and publishers of the provider department can change the "
                    f"expectations of {resource.code}.")


def check_custom(resource: Resource, type_: str, kwargs: dict[str, Any],
                 dimension: str) -> dict[str, Any]:
    """Validate a custom expectation as GX would, before it is saved; returns its config."""
    if dimension not in {d.value for d in EXPECTATION_DIMENSIONS}:
        allowed = ", ".join(d.value for d in EXPECTATION_DIMENSIONS)
        raise Invalid(f"Dimension '{dimension}' is not one of: {allowed}.",
                      errors=[{"field": "dimension", "message": "unknown dimension"}])
    _check_gx_type(type_)
    reserved = sorted(_RESERVED_KWARGS & set(kwargs))
    if reserved:
        raise Invalid(f"These arguments are set by govshare, not per expectation: "
                      f"{', '.join(reserved)}.",
                      errors=[{"field": f"kwargs.{k}", "message": "not allowed"} for k in reserved])
    _check_columns(resource, kwargs)
    _check_row_condition(kwargs)
    config = Rule(type_, kwargs, "custom", Dimension(dimension), source="custom").as_config()
    _instantiate(config)
    return config


def _check_gx_type(type_: str) -> None:
    from great_expectations.expectations.registry import get_expectation_impl

    import quality.gx_rules  # noqa: F401  (our own expectations are valid names too)

    if type_ in _RAW_SQL_EXPECTATIONS:
        raise Invalid(f"'{type_}' runs SQL text and cannot be added here.",
                      errors=[{"field": "type", "message": "not allowed"}])
    try:
        get_expectation_impl(type_)
    except Exception:
        raise Invalid(f"'{type_}' is not a Great Expectations expectation. Use a snake-case "
                      "name such as expect_column_values_to_match_regex.",
                      errors=[{"field": "type", "message": "unknown expectation"}]) from None


def _check_columns(resource: Resource, kwargs: dict[str, Any]) -> None:
    names = {i.name for i in resource.items}
    named = [str(kwargs[k]) for k in _COLUMN_KWARGS if k in kwargs]
    named += [str(c) for c in kwargs.get("column_list") or []]
    unknown = [c for c in named if c not in names]
    if unknown:
        raise Invalid(f"Resource {resource.code} has no data item {', '.join(unknown)}.",
                      errors=[{"field": "kwargs", "message": f"unknown column {c}"}
                              for c in unknown])


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
                      errors=[{"field": "kwargs", "message": _first_line(exc)}]) from None


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:400] or type(exc).__name__


def add_custom(session: Session, who: Principal, code: str, type_: str,
               kwargs: dict[str, Any], dimension: str, note: str) -> CustomExpectation:
    resource = get_resource(session, code)
    require_editor(who, resource)
    check_custom(resource, type_, kwargs, dimension)
    custom = CustomExpectation(resource_id=resource.id or 0, type=type_, arguments=kwargs,
                               dimension=dimension, note=note, added_by=who.user_id)
    session.add(custom)
    session.flush()
    current_suite(session, resource)
    return custom


def remove_custom(session: Session, who: Principal, code: str, custom_id: int) -> None:
    resource = get_resource(session, code)
    require_editor(who, resource)
    custom = session.get(CustomExpectation, custom_id)
    if custom is None or custom.resource_id != resource.id or custom.removed_at is not None:
        raise NotFound(f"Resource {code} has no custom expectation {custom_id}.")
    adder = session.get(User, custom.added_by)
    if adder is not None and Role.auditor in adder.roles and not who.has(Role.auditor):
        # The data bureau's own checks are not for the audited department to drop.
        raise Forbidden("This expectation was added by the data bureau; only auditors can "
                        "remove it.")
    custom.removed_by, custom.removed_at = who.user_id, utcnow()
    session.add(custom)
    session.flush()
    current_suite(session, resource)


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
        rule = Rule(custom.type, custom.arguments, f"custom:{custom.id}",
                    Dimension(custom.dimension), source="custom")
        configs.append(rule.as_config())
    return configs


def _fingerprint(configs: list[dict[str, Any]]) -> str:
    canonical = json.dumps(configs, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def next_suite(session: Session, resource: Resource,
               version: int | None = None) -> QualitySuite:
    """The suite a run of the data as of ``version`` (default current) would validate,
    without writing: the newest stored suite if nothing changed, else a new suite that is
    not stored (``id`` is None and it is not added to the session). Readers see this."""
    configs = configs_for(session, resource, version or resource.current_version)
    fingerprint = _fingerprint(configs)
    latest = latest_suite(session, resource)
    if latest is not None and latest.fingerprint == fingerprint:
        return latest
    number = (latest.version if latest else 0) + 1
    return QualitySuite(resource_id=resource.id or 0, version=number, fingerprint=fingerprint,
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
