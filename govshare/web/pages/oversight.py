"""The data bureau's and leaders' pages: quality rankings, failing expectations and notices;
the leaders' dashboard (charts drawn in the browser from /api/v1/metrics)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import col, select

from govshare.web import i18n
from govshare.web.base import CheckedForm, PageRoute, page_user, redirect, render, text
from kernel.auth import Principal
from kernel.db import session_scope
from kernel.identity import Department, Role
from kernel.problems import Invalid
from quality import audit
from quality import notices as quality_notices
from quality.models import NoticeStatus, QualityRun
from quality.rules import Dimension

# Catalog entries the dashboard's script needs (series names, stages, reasons…).
_CHART_LABELS = ("chart.", "stage.", "reason.", "sharing_type.", "unit.")

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Overseer = Annotated[Principal, Depends(page_user(Role.auditor, Role.leader))]
Auditor = Annotated[Principal, Depends(page_user(Role.auditor))]


def _failing(run: QualityRun | None) -> list[dict[str, Any]]:
    return [e for e in (run.expectations or []) if not e.get("success")] if run else []


@router.get("/quality")
def quality_page(request: Request, who: Overseer) -> Response:
    with session_scope(write=False) as session:
        threshold = audit.threshold_or_default(session, None)
        departments = audit.rank_departments(session, threshold)
        below = audit.below_threshold(session, threshold)[:30]
        runs = {r.id: r for r in session.exec(select(QualityRun).where(
            col(QualityRun.id).in_([b.score.run_id for b in below])))}
        failing = [{"latest": b, "failing": _failing(runs.get(b.score.run_id)),
                    "weak": {d.value: v for d in Dimension
                             if (v := getattr(b.score, d.value)) is not None and v < threshold}}
                   for b in below]
        notices = quality_notices.list_notices(session, who, None, None)
        open_count = sum(1 for n in notices if n.status is not NoticeStatus.closed)
        depts = {d.id: d for d in session.exec(select(Department))}
    return render(request, "quality.html", {
        "threshold": threshold, "departments": departments, "failing": failing,
        "notices": notices[:20], "open_count": open_count, "depts": depts,
        "dimensions": [d.value for d in Dimension],
        "default_deadline": date.today() + timedelta(days=14)})


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
        quality_notices.issue(session, who, text(form, "resource"), problem=problem,
                              deadline=deadline, dimension=text(form, "dimension") or None,
                              rules=[r.strip() for r in rules], min_score=threshold,
                              run_id=None)
    return redirect("/quality?ok=notice_issued")


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
