"""Risk reports and generalization suggestions for an application's masking plan.

The approver sees the report of the plan *as it would be delivered* before deciding (the
default plan, or the plan with the changes being considered), and may ask for the least
generalization that meets a target; the requester sees the report of the decided plan. The
same ``access.risk.measure`` runs on every delivered package (``access.delivery``), whose
manifest carries it.

Pseudonymised columns are measured through a throwaway random key: a keyed hash maps equal
values to equal tokens and different values to different ones, so classes are the same as
with the requester's key, and no key of a department is ever used outside a delivery.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from sqlmodel import Session

from access import generalize, masking, pseudonym, risk
from access import service as svc
from access.calendar import WorkCalendar
from access.flows import Party
from access.masking import ColumnRule, MaskingRule, Plan, RowFilter
from catalog.models import DataItem, ItemType, Resource
from catalog.service import segments_for
from catalog.warehouse import TABLE, open_data, quote
from kernel.auth import Principal
from kernel.db import utcnow
from kernel.problems import Forbidden, Invalid

DEFAULT_K = 5


@dataclass(frozen=True)
class Frozen:
    """What measuring needs, detached from the session (it runs outside any transaction)."""

    name: str
    type: ItemType
    kind: Any
    sensitivity: Any
    is_key: bool


@dataclass
class Inputs:
    items: list[Frozen]
    plan: Plan
    row_filters: list[RowFilter]
    quasi_identifiers: list[str]
    sensitive: list[str]
    k_target: int
    max_suppression: float | None
    segments: list[Path]
    as_of: date
    proposed: bool  # QIs/sensitive items were proposed, not chosen


def _freeze(item: DataItem) -> Frozen:
    return Frozen(item.name, item.type, item.kind, item.sensitivity, item.is_key)


def inputs(session: Session, who: Principal, app_id: int, *,
           changes: Mapping[str, ColumnRule] | None = None,
           quasi_identifiers: Sequence[str] | None = None,
           sensitive: Sequence[str] | None = None, k_target: int | None = None,
           max_suppression: float | None = None, provider_only: bool = False) -> Inputs:
    """The plan to measure: the application's (or the default, before a decision) with the
    approver's tentative ``changes``; QIs and sensitive items as chosen, else as proposed."""
    app = svc.get_application(session, who, app_id)
    parties = svc.parties_of(session, who, app)
    if Party.provider not in parties and Party.bureau not in parties \
            and app.decided_at is None:
        raise Forbidden("The risk report is shown to the requester once the application is "
                        "decided.")
    if (changes or provider_only) and Party.provider not in parties:
        raise Forbidden("Only the provider's approvers try changes to the plan or ask for a "
                        "suggestion.")
    items = svc.resource_items(session, app)
    base = masking.plan_from_json(app.masking_plan) if app.masking_plan \
        else masking.default_plan(items, app.items)
    plan = masking.tighten(items, base, changes) if changes else base
    delivered = [n for n, r in plan.items() if r.rule is not MaskingRule.suppress]
    chosen_qis = list(quasi_identifiers) if quasi_identifiers is not None \
        else list(app.quasi_identifiers)
    proposed = not chosen_qis and quasi_identifiers is None
    qis = chosen_qis or (risk.propose_quasi_identifiers(items, delivered) if proposed else [])
    chosen_s = list(sensitive) if sensitive is not None else list(app.sensitive_items)
    sens = chosen_s or (risk.propose_sensitive(items, delivered, qis)
                        if sensitive is None else [])
    unknown = [n for n in [*qis, *sens] if n not in delivered]
    if unknown:
        names = ", ".join(unknown)
        raise Invalid("Quasi-identifiers and sensitive items must be delivered items; not "
                      f"delivered: {names}.", key="problem.access.risk_items_not_delivered",
                      params={"names": names})
    both = sorted(set(qis) & set(sens))
    if both:
        names = ", ".join(both)
        raise Invalid(f"An item is either a quasi-identifier or sensitive, not both: {names}.",
                      key="problem.access.qi_and_sensitive", params={"names": names})
    resource = session.get(Resource, app.resource_id)
    assert resource is not None
    return Inputs(
        items=[_freeze(i) for i in items], plan=plan,
        row_filters=[RowFilter.model_validate(f) for f in app.row_filters],
        quasi_identifiers=qis, sensitive=sens,
        k_target=k_target or app.k_min or DEFAULT_K,
        max_suppression=max_suppression if max_suppression is not None
        else app.max_suppression,
        segments=segments_for(session, resource),
        as_of=WorkCalendar.from_settings().local_date(utcnow()), proposed=proposed)


def _numeric(columns: Sequence[masking.OutputColumn], name: str) -> bool:
    return any(c.name == name and c.type in (ItemType.integer, ItemType.decimal)
               for c in columns)


def masked_relation(items: Sequence[Any], plan: Plan, names: Sequence[str],
                    row_filters: Sequence[RowFilter], *, as_of: date, filtered: bool = True,
                    k_min: int | None = None, quasi_identifiers: Sequence[str] = ()
                    ) -> tuple[str, list[masking.OutputColumn]]:
    """``(SELECT <masked names> FROM data WHERE <filters>)``, with the records of classes
    smaller than ``k_min`` dropped when given (outlier suppression, as delivered)."""
    wanted = {n: plan[n] for n in names}
    columns = masking.compile_columns(items, wanted, as_of=as_of)
    where = masking.filter_sql(row_filters, {i.name: (quote(i.name), i.type) for i in items}) \
        if filtered else "TRUE"
    select = ", ".join(f"{c.sql} AS {quote(c.name)}" for c in columns) or "1 AS one"
    sql = f"SELECT {select} FROM {TABLE} WHERE {where}"
    if k_min and quasi_identifiers:
        sql = suppress_outliers(sql, quasi_identifiers, k_min)
    return f"({sql})", columns


def suppress_outliers(select: str, quasi_identifiers: Sequence[str], k_min: int) -> str:
    """Keep only the rows of classes of at least ``k_min`` rows."""
    partition = ", ".join(quote(q) for q in quasi_identifiers)
    return (f"SELECT * FROM ({select}) QUALIFY count(*) OVER (PARTITION BY {partition}) "
            f">= {int(k_min)}")


def measure(inp: Inputs) -> dict[str, Any]:
    """The report for ``inp`` (runs DuckDB; call outside a write transaction)."""
    names = [*inp.quasi_identifiers, *inp.sensitive]
    with open_data(inp.segments) as con:
        _install_throwaway_key(con, inp.plan, names)
        suppress = inp.max_suppression is not None
        sample, columns = masked_relation(
            inp.items, inp.plan, names, inp.row_filters, as_of=inp.as_of,
            k_min=inp.k_target if suppress else None, quasi_identifiers=inp.quasi_identifiers)
        population = None
        if inp.row_filters:
            population, _ = masked_relation(inp.items, inp.plan, inp.quasi_identifiers, [],
                                            as_of=inp.as_of, filtered=False)
        report = risk.measure(con, sample, inp.quasi_identifiers,
                              [risk.Sensitive(s, _numeric(columns, s)) for s in inp.sensitive],
                              k_target=inp.k_target, population=population)
        out = report.as_dict()
        out["suppressed_rows"] = 0
        if suppress:
            where = masking.filter_sql(inp.row_filters,
                                       {i.name: (quote(i.name), i.type) for i in inp.items})
            row = con.execute(f"SELECT count(*) FROM {TABLE} WHERE {where}").fetchone()
            out["suppressed_rows"] = int(row[0]) - report.rows if row else 0
    out["sensitive_items"] = list(inp.sensitive)
    out["proposed"] = inp.proposed
    out["max_suppression"] = inp.max_suppression
    return out


def _install_throwaway_key(con: duckdb.DuckDBPyConnection, plan: Plan,
                           names: Sequence[str]) -> None:
    if any(plan[n].rule is MaskingRule.pseudonymize for n in names):
        pseudonym.install(con, os.urandom(32))


def suggest(inp: Inputs, target: generalize.Target) -> dict[str, Any]:
    """The least generalization of ``inp``'s QIs meeting ``target``, and its report."""
    if not inp.quasi_identifiers:
        raise Invalid("Name the quasi-identifiers first: the suggestion generalizes them.")
    where = masking.filter_sql(inp.row_filters,
                               {i.name: (quote(i.name), i.type) for i in inp.items})
    with open_data(inp.segments) as con:
        found = generalize.search(con, f"(SELECT * FROM {TABLE} WHERE {where})", inp.items,
                                  inp.plan, inp.quasi_identifiers, target, as_of=inp.as_of)
    out = found.as_dict()
    plan = masking.tighten(inp.items, inp.plan, found.changes) if found.changes else inp.plan
    # A QI the suggestion suppresses is no longer delivered, so no longer a QI.
    out["quasi_identifiers"] = [q for q in inp.quasi_identifiers
                                if plan[q].rule is not MaskingRule.suppress]
    out["max_suppression"] = target.max_suppression if found.suppressed_share else None
    if found.met and out["quasi_identifiers"]:
        after = Inputs(**{**inp.__dict__, "plan": plan, "k_target": target.effective_k,
                          "quasi_identifiers": out["quasi_identifiers"],
                          "max_suppression": out["max_suppression"]
                          if out["max_suppression"] is not None else inp.max_suppression})
        out["report"] = measure(after)
    return out


def report_for(session: Session, who: Principal, app_id: int, **kwargs: Any) -> dict[str, Any]:
    return measure(inputs(session, who, app_id, **kwargs))
