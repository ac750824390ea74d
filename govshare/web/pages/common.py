"""Sign-in and sign-out, the home page, the catalog search and resource pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

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
from catalog.search.analysis import MAX_QUERY_TOKENS
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
    # A query that cannot be searched gets an empty page that says why (and keeps the
    # filters), not an error page: too long, or nothing but punctuation and symbols.
    unsearchable = _unsearchable(raw.get("q"))
    if unsearchable:
        raw["q"] = raw["q"][:Q_MAX]  # shown back in the search box
    try:
        params = search.SearchParams.model_validate(
            {k: v for k, v in raw.items() if not (unsearchable and k == "q")}
            | {"size": 20, "facets": not unsearchable})
    except ValidationError as exc:
        raise Invalid.of(exc.errors(), "the search filters") from None
    with session_scope(write=False) as session:
        depts = {d.id: d for d in departments(session)}
        if unsearchable:
            found = search.SearchPage(total=0, page=1, size=20, hits=[])
        else:
            found = search.search(session, params)
        hits = found.resources
    pages = max(1, -(-found.total // found.size))
    query = {k: v for k, v in raw.items() if k != "page"}
    return render(request, "catalog.html", {
        "hits": hits, "total": found.total, "page": found.page, "pages": pages,
        "query": query, "depts": depts, "categories": CATEGORY_LABELS,
        "sharing_types": list(SharingType), "cycles": list(UpdateCycle),
        "levels": list(SecurityLevel), "unsearchable": unsearchable,
        "q_max": Q_MAX, "facets": _facet_groups(found.facets, query),
        "depts_by_code": {d.code: d for d in depts.values()},
        "category_labels": {c.value: labels for c, labels in CATEGORY_LABELS.items()}})


Q_MAX = 200  # SearchParams.q's bound, shown on the search box
# The filters a person can click, in the order shown; "min_quality" is the quality band.
_FACETS = ("department", "category", "sharing_type", "update_cycle", "security_level",
           "min_quality")
_FACET_VALUES_SHOWN = 12


def _unsearchable(q: str | None) -> str | None:
    """Why ``q`` cannot be searched (a catalogue key), or None."""
    if q is None or not q.strip():
        return None
    if len(q) > Q_MAX:
        return "catalog.q_too_long"
    tokens = search.parse_query(q)
    if not tokens:
        return "catalog.q_no_words"
    if len(tokens) > MAX_QUERY_TOKENS:
        return "catalog.q_too_many_words"
    return None


def _facet_groups(facets: search.Facets | None,
                  query: dict[str, str]) -> list[dict[str, Any]]:
    """Each filter's values with their hit counts, most hits first, each a link that sets the
    filter (or, when it is the one set, clears it); the other filters and the query stay."""
    if facets is None:
        return []
    groups = []
    for name in _FACETS:
        counts: dict[str, int] = getattr(facets, name)
        values = sorted(((v, n) for v, n in counts.items() if n > 0),
                        key=lambda vn: (-vn[1], vn[0]))
        if name == "min_quality":  # bands in score order: 90 and above first
            values = sorted(values, key=lambda vn: -float(vn[0]))
        shown = []
        for value, n in values[:_FACET_VALUES_SHOWN]:
            active = query.get(name) == value
            rest = {k: v for k, v in query.items() if k != name}
            href = "/catalog?" + urlencode(rest if active else rest | {name: value})
            shown.append({"value": value, "count": n, "href": href, "active": active})
        if shown:
            groups.append({"name": name, "values": shown})
    return groups


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

