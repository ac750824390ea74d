"""The data bureau's and leaders' pages: quality rankings, failing expectations and notices;
the leaders' dashboard (charts drawn in the browser from /api/v1/metrics)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from catalog.models import Resource, ResourceStatus
from govshare.web import i18n
from govshare.web.base import CheckedForm, PageRoute, page_user, redirect, render, text
from govshare.web.pages import quality_view
from kernel.auth import Principal
from kernel.db import session_scope
from kernel.identity import Department, Role, User
from kernel.policy import is_data_bureau
from kernel.problems import Forbidden, Invalid
from quality import audit, suites
from quality import notices as quality_notices
from quality.models import NoticeStatus, QualityRun
from quality.rules import Dimension

# Catalog entries the dashboard's script needs (series names, stages, reasons…).
_CHART_LABELS = ("chart.", "stage.", "reason.", "sharing_type.", "unit.", "kpi.")

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Overseer = Annotated[Principal, Depends(page_user(Role.auditor, Role.leader))]
Auditor = Annotated[Principal, Depends(page_user(Role.auditor))]
Reader = Annotated[Principal, Depends(page_user(Role.auditor, Role.leader, Role.publisher))]
Editor = Annotated[Principal, Depends(page_user(Role.auditor, Role.publisher))]


def _failing(run: QualityRun | None) -> list[dict[str, Any]]:
    return [e for e in (run.expectations or []) if not e.get("success")] if run else []


@router.get("/quality")
def quality_page(request: Request, who: Overseer) -> Response:
    with session_scope(write=False) as session:
        if not quality_notices.sees_all(session, who):
            raise Forbidden("The city-wide quality audit is for leaders and the data bureau "
                            "(auditors of a department of kind 'bureau').")
        threshold = audit.threshold_or_default(session, None)
        departments = audit.rank_departments(session, threshold)
        below = audit.below_threshold(session, threshold)[:30]
        runs = {r.id: r for r in session.exec(select(QualityRun).where(
            col(QualityRun.id).in_([b.score.run_id for b in below])))}
        failing = []
        for b in below:
            checks = _failing(runs.get(b.score.run_id))
            weak = {d.value: v for d in Dimension
                    if (v := getattr(b.score, d.value)) is not None and v < threshold}
            # The bureau's link to the notice form, filled in: the weakest dimension and the
            # failing checks.
            link = quality_view.notice_link(
                b.resource.code, min(weak, key=weak.__getitem__) if weak else None,
                [str(e["rule"]) for e in checks if e.get("rule")])
            failing.append({"latest": b, "failing": checks, "weak": weak, "notice_link": link})
        notices = quality_notices.list_notices(session, who, None, None)
        open_count = sum(1 for n in notices if n.status is not NoticeStatus.closed)
        depts = {d.id: d for d in session.exec(select(Department))}
        timing = {n.id: quality_notices.timing(n) for n in notices[:20]}
        failed_runs = audit.failed_latest(session)[:20]
        bureau = is_data_bureau(session, who)
        # The notice form's search box: every active resource, by code and name.
        resources = list(session.exec(select(Resource.code, Resource.name).where(
            Resource.status == ResourceStatus.active).order_by(col(Resource.code)))) \
            if bureau else []
        prefill = _prefill(request, dict(resources)) if bureau else None
    return render(request, "quality.html", {
        "threshold": threshold, "departments": departments, "failing": failing,
        "notices": notices[:20], "open_count": open_count, "depts": depts,
        "timing": timing, "failed_runs": failed_runs, "bureau": bureau,
        "resources": resources, "prefill": prefill,
        "dimensions": [d.value for d in Dimension],
        "default_deadline": date.today() + timedelta(days=14)})


def _prefill(request: Request, names: dict[str, str]) -> dict[str, str] | None:
    """The notice form filled in from a "issue a notice" link (a failing resource's row or its
    quality panel): the resource, its weakest dimension and its failing checks."""
    code = request.query_params.get("resource", "")
    if code not in names:
        return None
    dimension = request.query_params.get("dimension", "")
    return {"resource": code, "name": names[code],
            "dimension": dimension if dimension in {d.value for d in Dimension} else "",
            "rules": request.query_params.get("rules", "")[:500]}


@router.post("/quality/notices")
def issue_notice(request: Request, who: Auditor, form: CheckedForm) -> Response:
    try:
        deadline = date.fromisoformat(text(form, "deadline"))
    except ValueError:
        raise Invalid("Give the deadline as a date (YYYY-MM-DD).") from None
    problem = text(form, "problem")
    if len(problem) < 2:
        raise Invalid("Describe the problem the department must fix.")
    with session_scope(write=True) as session:
        threshold = audit.threshold_or_default(session, None)
        rules = [r for r in text(form, "rules").split(",") if r.strip()]
        quality_notices.issue(session, who, _resource_code(session, text(form, "resource")),
                              problem=problem,
                              deadline=deadline, dimension=text(form, "dimension") or None,
                              rules=[r.strip() for r in rules], min_score=threshold,
                              run_id=None)
    return redirect("/quality?ok=notice_issued")


def _resource_code(session: Session, typed: str) -> str:
    """The code of the resource the bureau picked: the search box sends the code, but a
    person may type the resource's full name instead (one active resource of that name)."""
    if session.exec(select(Resource.id).where(Resource.code == typed)).first() is not None:
        return typed
    named = list(session.exec(select(Resource.code).where(
        Resource.name == typed, Resource.status == ResourceStatus.active).limit(2)))
    if len(named) == 1:
        return named[0]
    if named:
        raise Invalid("Several resources have that name: pick one from the list.",
                      key="notice.several_named")
    raise Invalid("No active resource has that code or name: pick one from the list.",
                  key="notice.no_such_resource")


@router.get("/quality/notices/{notice_id}")
def notice_page(request: Request, notice_id: int, who: Reader) -> Response:
    """One rectification notice: status, deadline in working days, overdue, the runs that
    verify it and its history."""
    with session_scope(write=False) as session:
        notice = quality_notices.get_notice(session, notice_id)
        if not quality_notices.visible_to(session, who, notice):
            raise Forbidden("This notice is addressed to another department.")
        resource = session.get(Resource, notice.resource_id)
        dept = session.get(Department, notice.department_id)
        verifying = list(session.exec(select(QualityRun).where(
            QualityRun.notice_id == notice.id).order_by(col(QualityRun.id).desc())))
        history = quality_notices.history(session, notice)
        users = {u.id: u.username for u in session.exec(select(User))}
        details = resource is not None and quality_view.can_read_details(session, who, resource)
    return render(request, "notice.html", {
        "n": notice, "resource": resource, "dept": dept, "verifying": verifying,
        "history": history, "users": users, "timing": quality_notices.timing(notice),
        "details": details,
        "can_respond": who.has(Role.publisher) and who.department_id == notice.department_id
        and notice.status is not NoticeStatus.closed})


@router.post("/catalog/{code}/quality/rules")
def add_row_rule(request: Request, code: str, who: Editor, form: CheckedForm) -> Response:
    """A row-expression rule (expect_rows_to_satisfy), counted in consistency: the provider's
    publishers and the data bureau (quality.guard decides what each may name)."""
    with session_scope(write=True) as session:
        suites.add_custom(session, who, code, suites.ROW_EXPRESSION,
                          {"expression": text(form, "expression")}, "consistency",
                          text(form, "note"))
    return redirect(f"/catalog/{code}?ok=rule_added")


@router.get("/dashboard")
def dashboard(request: Request, who: Overseer) -> Response:
    with session_scope(write=False) as session:
        depts = list(session.exec(select(Department).order_by(col(Department.code))))
    today = date.today()
    t = i18n.Translator(i18n.language_of(request))
    labels = {k: v for k, v in t.messages.items() if k.startswith(_CHART_LABELS)}
    return render(request, "dashboard.html", {
        "labels": labels,
        "depts": depts, "from": request.query_params.get("from")
        or (today - timedelta(days=180)).isoformat(),
        "to": request.query_params.get("to") or today.isoformat(),
        "department": request.query_params.get("department", "")})


_LISTS = ("filed", "delivered", "replied", "overdue")


@router.get("/dashboard/applications")
def dashboard_applications(request: Request, who: Overseer) -> Response:
    """The applications a dashboard figure was computed from, with the same window and
    department (metadata only: who asked whom for what, and how long it took)."""
    from access.calendar import WorkCalendar
    from access.models import Application, ApplicationStep
    from catalog.models import Resource, SharingType
    from metrics.mart import REPLIES

    q = request.query_params
    kind = q.get("list", "filed")
    if kind not in _LISTS:
        raise Invalid(f"Unknown list '{kind}'.",
                      key="problem.web.unknown_list", params={"kind": kind})
    try:
        start = date.fromisoformat(q.get("from") or "2000-01-01")
        end = date.fromisoformat(q.get("to") or date.today().isoformat())
        sharing = SharingType(q["sharing_type"]) if q.get("sharing_type") else None
    except ValueError:
        raise Invalid("Give the dates as YYYY-MM-DD and a known sharing type.") from None
    cal = WorkCalendar.from_settings()
    lo, hi = cal.end_of_day(start - timedelta(days=1)), cal.end_of_day(end)
    with session_scope(write=False) as session:
        depts = {d.id: d for d in session.exec(select(Department))}
        query = select(Application)
        dept = next((d for d in depts.values() if d.code == q.get("department")), None)
        if dept is not None:
            query = query.where((Application.provider_department_id == dept.id)
                                | (Application.requester_department_id == dept.id))
        if sharing is not None:
            query = query.where(Application.sharing_type == sharing)
        if kind == "filed":
            query = query.where(Application.filed_at >= lo, Application.filed_at < hi)
        elif kind == "delivered":
            query = query.where(col(Application.delivered_at) >= lo,
                                col(Application.delivered_at) < hi)
        elif kind == "replied":
            replied = select(ApplicationStep.application_id).where(
                col(ApplicationStep.action).in_(REPLIES), ApplicationStep.at >= lo,
                ApplicationStep.at < hi)
            query = query.where(col(Application.id).in_(replied))
        else:
            query = query.where(Application.state == "submitted",
                                col(Application.due_date) < date.today())
        apps = list(session.exec(query.order_by(col(Application.id).desc()).limit(500)))
        names = {r.id: r.name for r in session.exec(select(Resource).where(
            col(Resource.id).in_({a.resource_id for a in apps})))}
        rows = [{"id": a.id, "resource": names.get(a.resource_id, ""),
                 "provider": depts[a.provider_department_id],
                 "requester": depts[a.requester_department_id], "sharing_type": a.sharing_type,
                 "state": a.state, "filed_at": a.filed_at, "delivered_at": a.delivered_at,
                 "due_date": a.due_date,
                 "hours": None if a.delivered_at is None
                 else (a.delivered_at - a.filed_at).total_seconds() / 3600,
                 "working_days": None if a.delivered_at is None
                 else cal.working_days_between(a.filed_at, a.delivered_at)} for a in apps]
    return render(request, "dashboard_applications.html", {
        "rows": rows, "kind": kind, "sharing": sharing, "from": start, "to": end,
        "department": dept})
