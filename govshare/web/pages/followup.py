"""After the decision is due or made: escalation to the data bureau and its coordination,
bundle reminders, revoking a grant, and querying an API-query grant.

Every handler calls the same service function as the API endpoint it mirrors
(access/api.py), which checks role and department; the handlers first load the application
with ``svc.get_application`` so that a department with no part in it gets the 403 page before
anything else is looked at.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from access import queries
from access import service as svc
from access.calendar import WorkCalendar
from access.masking import RowFilter
from access.models import Application, ApplicationState, Bundle
from access.schemas import CoordinationIn, QueryIn
from catalog.models import Resource
from govshare.web.base import CheckedForm, PageRoute, page_user, redirect, render, text
from kernel import policy
from kernel.auth import Principal
from kernel.db import session_scope, utcnow
from kernel.identity import Department, Role
from kernel.problems import Forbidden, Invalid

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Escalator = Annotated[Principal, Depends(page_user(Role.requester, Role.auditor))]
Coordinator = Annotated[Principal, Depends(page_user(Role.auditor, Role.approver))]
Auditor = Annotated[Principal, Depends(page_user(Role.auditor))]
Approver = Annotated[Principal, Depends(page_user(Role.approver))]
Requester = Annotated[Principal, Depends(page_user(Role.requester))]
S = ApplicationState
PENDING = (S.submitted, S.conditions_pending, S.returned)
QUERY_PAGE_SIZE = 50


def working_days_overdue(due: date | None, today: date | None = None) -> int:
    """Working days after the due date up to today (today counts): 0 if not yet late."""
    if due is None:
        return 0
    cal = WorkCalendar.from_settings()
    today = today or cal.local_date(utcnow())
    # Whole working days from the end of the due date to the end of today.
    return round(cal.working_days_between(cal.end_of_day(due), cal.end_of_day(today)))


# --- escalation (requester, or the bureau itself) -------------------------------------------------

@router.post("/applications/{app_id}/escalate")
def escalate(request: Request, app_id: int, who: Escalator, form: CheckedForm) -> Response:
    with session_scope(write=True) as session:
        svc.get_application(session, who, app_id)
        svc.escalate(session, who, app_id, text(form, "note")[:2000])
    return redirect(f"/applications/{app_id}?ok=escalated")


# --- coordination (data bureau after escalation; a bundle's coordinator may remind) ---

@router.post("/applications/{app_id}/coordination")
def coordinate(request: Request, app_id: int, who: Coordinator, form: CheckedForm) -> Response:
    try:
        data = CoordinationIn(kind=text(form, "kind"), note=text(form, "note"))
    except ValidationError:
        raise Invalid("Choose remind, convene or outcome and write a note (at least 2 "
                      "characters).") from None
    with session_scope(write=True) as session:
        svc.get_application(session, who, app_id)
        svc.coordinate(session, who, app_id, data)
    return redirect(f"/applications/{app_id}?ok=coordinated")


@router.get("/coordination")
def bureau_intray(request: Request, who: Auditor) -> Response:
    """The data bureau's in-tray: applications escalated to it, still waiting, oldest first."""
    with session_scope(write=False) as session:
        if not policy.is_data_bureau(session, who):
            raise Forbidden("The coordination in-tray is the data bureau's: only auditors of "
                            "a department of kind 'bureau' coordinate escalated applications.")
        escalated = list(session.exec(
            select(Application).where(col(Application.escalated_at).is_not(None))
            .order_by(col(Application.escalated_at).desc()).limit(300)))
        waiting = sorted((a for a in escalated if a.state in PENDING),
                         key=lambda a: (a.due_date or date.max, a.id or 0))
        settled = [a for a in escalated if a.state not in PENDING][:30]
        ids = {a.resource_id for a in escalated}
        resources = {r.id: r for r in session.exec(select(Resource)
                                                   .where(col(Resource.id).in_(ids)))}
        depts = {d.id: d for d in session.exec(select(Department))}
        last = {a.id: _last_coordination(session, a.id or 0) for a in waiting}
    return render(request, "coordination.html", {
        "waiting": waiting, "settled": settled, "resources": resources, "depts": depts,
        "late": {a.id: working_days_overdue(a.due_date) if svc.is_overdue(a) else 0
                 for a in escalated}, "last": last})


def _last_coordination(session: Session, app_id: int) -> Any:
    coordinated = [s for s in svc.steps(session, app_id) if s.action == "coordinate"]
    return coordinated[-1] if coordinated else None


# --- bundles (一件事) ---------------------------------------------------------------------

def bundles_of(session: Session, who: Principal, apps: list[Application]) -> list[dict[str, Any]]:
    """The bundles among ``apps``: each part's state, and the bundle's elapsed time next to
    the sum of its parts' (what deciding them one after another would have cost)."""
    now = utcnow()
    out = []
    for bundle_id in sorted({a.bundle_id for a in apps if a.bundle_id}, reverse=True):
        bundle = session.get(Bundle, bundle_id)
        if bundle is None:
            continue
        parts = svc.bundle_parts(session, bundle_id)
        end = bundle.completed_at or now
        out.append({"bundle": bundle, "parts": parts,
                    "elapsed": _hours(bundle.filed_at, end),
                    "sum_of_parts": sum(_hours(p.filed_at, p.delivered_at or p.closed_at or now)
                                        for p in parts),
                    "can_remind": who.has(Role.approver)
                    and who.department_id == bundle.coordinator_department_id
                    and any(p.state in PENDING for p in parts)})
    return out


def _hours(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0) / 3600


@router.post("/bundles/{bundle_id}/remind")
def remind(request: Request, bundle_id: int, who: Approver, form: CheckedForm) -> Response:
    with session_scope(write=True) as session:
        svc.remind_bundle(session, who, bundle_id, text(form, "note")[:2000] or "请尽快办理")
    return redirect("/inbox?ok=reminded")


# --- grants: revoke (provider), query (requester of an API-query grant) ---------------------------

@router.post("/grants/{grant_id}/revoke")
def revoke(request: Request, grant_id: int, who: Approver, form: CheckedForm) -> Response:
    reason = text(form, "reason")
    if len(reason) < 2:
        raise Invalid("Give the reason for revoking the grant (at least 2 characters); the "
                      "requester sees it.")
    with session_scope(write=True) as session:
        _, app = svc.get_grant(session, who, grant_id)
        svc.revoke(session, who, grant_id, reason[:2000])
        app_id = app.id
    return redirect(f"/applications/{app_id}?ok=revoked")


def _filters(form: CheckedForm) -> list[RowFilter]:
    """One optional filter row of the form: column, operator, value."""
    column, op, value = text(form, "column"), text(form, "op") or "eq", text(form, "value")
    if not column:
        return []
    values = [] if op in ("is_null", "not_null") else [value]
    try:
        return [RowFilter.model_validate({"column": column, "op": op, "values": values})]
    except ValidationError as exc:
        raise Invalid.of(exc.errors(), "the filter") from None


@router.post("/grants/{grant_id}/query")
def query(request: Request, grant_id: int, who: Requester, form: CheckedForm) -> Response:
    try:
        page = max(int(text(form, "page") or "1"), 1)
    except ValueError:
        raise Invalid("The page must be a number.") from None
    q = QueryIn(filters=_filters(form), page=page, size=QUERY_PAGE_SIZE)
    with session_scope(write=True) as session:
        grant, app = svc.get_grant(session, who, grant_id)
        result = queries.query(session, who, grant_id, q)
        app_id = app.id
        depts = {d.id: d for d in session.exec(select(Department))}
        provider = depts.get(app.provider_department_id)
    return render(request, "query.html", {
        "grant_id": grant.id, "app_id": app_id, "result": result, "provider": provider,
        "column": text(form, "column"), "op": text(form, "op") or "eq",
        "value": text(form, "value"), "items": app.items, "ops": OPS})


OPS = ["eq", "ne", "lt", "le", "gt", "ge", "is_null", "not_null"]
