"""Sign-in and sign-out, the home page, the catalog search and resource pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from access.models import Application
from catalog import search
from catalog import service as catalog_service
from catalog.models import (
    CATEGORY_LABELS,
    DataVersion,
    Resource,
    SecurityLevel,
    SharingType,
    UpdateCycle,
)
from govshare.web.base import (
    CheckedForm,
    PageRoute,
    SignedIn,
    clear_session,
    redirect,
    render,
    set_session,
    text,
)
from kernel.auth import authenticate
from kernel.db import session_scope
from kernel.identity import Department, Role, User
from kernel.problems import Invalid, Unauthenticated
from quality import audit
from quality.models import QualityScore

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# Where a role lands after signing in (first match wins).
LANDING = [(Role.leader, "/dashboard"), (Role.approver, "/inbox"), (Role.requester, "/requests"),
           (Role.publisher, "/publish"), (Role.auditor, "/quality")]


def _safe_next(target: str | None) -> str | None:
    """Only a local path: never send a freshly signed-in user to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@router.get("/signin")
def signin_page(request: Request, next: str | None = None, expired: int = 0) -> Response:
    return render(request, "signin.html", {"next": _safe_next(next) or "",
                                           "expired": bool(expired)})


@router.post("/signin")
def signin(request: Request, form: CheckedForm) -> Response:
    token = text(form, "token")
    target = _safe_next(text(form, "next"))
    try:
        with session_scope(write=False) as session:
            who = authenticate(session, token)
    except Unauthenticated as exc:
        return render(request, "signin.html", {"next": target or "", "error": exc.detail},
                      status=401)
    landing = next((url for role, url in LANDING if who.has(role)), "/catalog")
    response = redirect(target or landing)
    set_session(request, response, token)
    return response


@router.post("/signout")
def signout(request: Request, form: CheckedForm) -> Response:
    response = redirect("/signin")
    clear_session(request, response)
    return response


@router.get("/")
def home(request: Request, who: SignedIn) -> Response:
    landing = next((url for role, url in LANDING if who.has(role)), "/catalog")
    return redirect(landing)


# --- catalog ------------------------------------------------------------------------------------

_FILTERS = ("q", "department", "category", "sharing_type", "update_cycle", "security_level",
            "min_quality", "sort", "page")


def departments(session: Session) -> list[Department]:
    return list(session.exec(select(Department).order_by(col(Department.code))))


@router.get("/catalog")
def catalog_page(request: Request, who: SignedIn) -> Response:
    raw = {k: v for k, v in request.query_params.items() if k in _FILTERS and v.strip()}
    try:
        params = search.SearchParams.model_validate(raw | {"size": 20})
    except ValidationError as exc:
        raise Invalid.of(exc.errors(), "the search filters") from None
    with session_scope(write=False) as session:
        found = search.search(session, params)
        ids = [h.resource_id for h in found.hits]
        by_id = {r.id: r for r in session.exec(select(Resource).where(col(Resource.id).in_(ids)))}
        depts = {d.id: d for d in departments(session)}
        hits = [by_id[h.resource_id] for h in found.hits if h.resource_id in by_id]
    pages = max(1, -(-found.total // found.size))
    query = {k: v for k, v in raw.items() if k != "page"}
    return render(request, "catalog.html", {
        "hits": hits, "total": found.total, "page": found.page, "pages": pages,
        "query": query, "depts": depts, "categories": CATEGORY_LABELS,
        "sharing_types": list(SharingType), "cycles": list(UpdateCycle),
        "levels": list(SecurityLevel)})


@router.get("/catalog/{code}")
def resource_page(request: Request, code: str, who: SignedIn) -> Response:
    with session_scope(write=False) as session:
        resource = catalog_service.get_resource(session, code)
        provider = catalog_service.provider_of(session, resource)
        versions = list(session.exec(select(DataVersion)
                                     .where(DataVersion.resource_id == resource.id)
                                     .order_by(col(DataVersion.version).desc()).limit(20)))
        revisions = catalog_service.list_revisions(session, code)[:20]
        users = {u.id: u.username for u in session.exec(select(User))}
        scores = list(session.exec(select(QualityScore)
                                   .where(QualityScore.resource_id == resource.id)
                                   .order_by(col(QualityScore.scored_at).desc()).limit(30)))
        trend = audit.trend(session, resource=resource, department=None, days=365)
        mine = who.department_id == resource.provider_id
        applied = None
        if who.has(Role.requester):
            applied = session.exec(select(Application).where(
                Application.resource_id == resource.id,
                Application.requester_department_id == who.department_id,
            ).order_by(col(Application.id).desc())).first()
        items = list(resource.items)
    latest: dict[str, Any] | None = None
    if scores:
        s = scores[0]
        latest = {"overall": s.overall, "dims": {d: getattr(s, d) for d in
                  ("freshness", "completeness", "validity", "uniqueness", "consistency")},
                  "at": s.scored_at}
    return render(request, "resource.html", {
        "r": resource, "provider": provider, "items": items, "versions": versions,
        "revisions": revisions, "users": users, "scores": scores, "latest": latest,
        "trend": trend, "mine": mine, "applied": applied,
        "category": CATEGORY_LABELS[resource.category],
        "can_apply": who.has(Role.requester) and not mine
        and resource.sharing_type is not SharingType.not_shareable,
        "can_publish": mine and who.has(Role.publisher)})

