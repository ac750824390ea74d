"""Sign-in and sign-out, the home page, the catalog search and resource pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from access.models import Application
from catalog import profile as catalog_profile
from catalog import search
from catalog import service as catalog_service
from catalog.models import (
    CATEGORY_LABELS,
    DataVersion,
    SecurityLevel,
    SharingType,
    UpdateCycle,
)
from govshare.web.base import (
    PageRoute,
    SignedIn,
    render,
)
from govshare.web.pages import quality_view
from kernel.db import session_scope
from kernel.identity import Department, Role, User
from kernel.problems import Invalid
from quality import audit
from quality.models import QualityScore

router = APIRouter(route_class=PageRoute, include_in_schema=False)

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
        depts = {d.id: d for d in departments(session)}
        hits = found.resources
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
        column_profile = catalog_profile.profile(session, resource)
        quality = quality_view.panel(session, who, resource)
    latest: dict[str, Any] | None = None
    if scores:
        s = scores[0]
        latest = {"overall": s.overall, "dims": {d: getattr(s, d) for d in
                  ("freshness", "completeness", "validity", "uniqueness", "consistency")},
                  "at": s.scored_at}
    return render(request, "resource.html", {
        "r": resource, "provider": provider, "items": items, "versions": versions,
        "revisions": revisions, "users": users, "scores": scores, "latest": latest,
        "trend": trend, "mine": mine, "applied": applied, "quality": quality,
        "column_profile": column_profile,
        "category": CATEGORY_LABELS[resource.category],
        "can_apply": who.has(Role.requester) and not mine
        and resource.sharing_type is not SharingType.not_shareable,
        "can_publish": mine and who.has(Role.publisher)})

