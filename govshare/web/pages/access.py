"""Requester and approver pages: file and track applications (each stage and how long it
waited), download and rate deliveries; the approver's in-tray sorted by deadline and the
decision forms with the masking plan shown and adjustable (tighten only)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from access import delivery, delivery_jobs, links, masking, scheduler
from access import service as svc
from access.calendar import WorkCalendar
from access.flows import Party, legal_actions
from access.masking import ColumnRule, Generalization, MaskingRule
from access.models import (
    Application,
    ApplicationState,
    Deficiency,
    DeliveryMethod,
    FileFormat,
    RejectionReason,
    Schedule,
)
from access.schemas import ApplicationIn, ApprovalIn, RejectIn, ReturnIn, RevisionIn, TightenIn
from catalog import service as catalog_service
from catalog.models import DataItem, Resource
from govshare.web import i18n
from govshare.web.base import (
    CheckedForm,
    PageRoute,
    page_user,
    redirect,
    render,
    since,
    text,
    texts,
)
from govshare.web.pages import followup
from govshare.web.pages import risk as risk_page
from kernel.auth import Principal
from kernel.db import session_scope, utcnow
from kernel.identity import Department, Role, User
from kernel.problems import Invalid, localize, params_from_json

log = logging.getLogger("govshare")
router = APIRouter(route_class=PageRoute, include_in_schema=False)
Requester = Annotated[Principal, Depends(page_user(Role.requester))]
Approver = Annotated[Principal, Depends(page_user(Role.approver))]
Involved = Annotated[Principal, Depends(page_user(Role.requester, Role.approver, Role.auditor,
                                                  Role.leader))]
S = ApplicationState

# Every rule an approver can pick, strongest last; each item offers those at least as strict
# as its default and applicable to it.
CANDIDATES = [ColumnRule(rule=MaskingRule.keep), ColumnRule(rule=MaskingRule.partial),
              ColumnRule(rule=MaskingRule.pseudonymize),
              *[ColumnRule(rule=MaskingRule.generalize, method=m) for m in Generalization],
              ColumnRule(rule=MaskingRule.suppress)]


def rule_key(rule: ColumnRule | dict[str, Any]) -> str:
    """``rule[:method[:width]]``, e.g. ``generalize:range:50`` (a suggested fixed range)."""
    r = rule if isinstance(rule, ColumnRule) else ColumnRule.model_validate(rule)
    if r.method and r.width is not None:
        return f"{r.rule.value}:{r.method.value}:{r.width:g}"
    return f"{r.rule.value}:{r.method.value}" if r.method else r.rule.value


def rule_from_key(key: str) -> ColumnRule:
    rule, _, rest = key.partition(":")
    method, _, width = rest.partition(":")
    try:
        return ColumnRule(rule=MaskingRule(rule), method=Generalization(method) if method else None,
                          width=float(width) if width else None)
    except (ValueError, ValidationError):
        raise Invalid(f"Unknown masking rule '{key}'.",
                      key="problem.web.unknown_masking_rule", params={"key": key}) from None


def choices(item: DataItem, base: ColumnRule) -> list[str]:
    return [rule_key(c) for c in CANDIDATES
            if masking.at_least_as_strict(c, base) and masking.applicability(item, c) is None]


# --- stages and waiting times --------------------------------------------------------------------

@dataclass
class Stage:
    state: str
    entered: datetime
    left: datetime | None
    hours: float
    working_days: float
    current: bool


def stages(session: Session, app: Application) -> list[Stage]:
    """How long the application spent in each state, the current one up to now."""
    cal = WorkCalendar.from_settings()
    history = svc.steps(session, app.id or 0)
    moves = [s for s in history if s.from_state != s.to_state or s.seq == 1]
    out = []
    now = utcnow()
    for i, step in enumerate(moves):
        left = moves[i + 1].at if i + 1 < len(moves) else None
        closed = step.to_state in {s.value for s in (S.rejected, S.withdrawn, S.revoked,
                                                     S.expired, S.delivered)}
        end = left or (step.at if closed else now)
        out.append(Stage(state=step.to_state, entered=step.at, left=left,
                         hours=(end - step.at).total_seconds() / 3600,
                         working_days=cal.working_days_between(step.at, end),
                         current=left is None))
    return out


def _last(timeline: list[Stage]) -> Stage | None:
    return timeline[-1] if timeline else None


def _names(session: Session) -> tuple[dict[int | None, Department], dict[int | None, str]]:
    depts = {d.id: d for d in session.exec(select(Department))}
    users = {u.id: u.username for u in session.exec(select(User))}
    return depts, users


def _resources(session: Session, apps: list[Application]) -> dict[int, Resource]:
    ids = {a.resource_id for a in apps}
    return {r.id or 0: r for r in session.exec(select(Resource).where(col(Resource.id).in_(ids)))}


def _deliver_later(session: Session, apps: list[Application]) -> None:
    """Approved applications get a delivery job in the deciding transaction, as the API's;
    a ``govshare worker`` produces the package."""
    for app in apps:
        if app.state is S.approved:
            scheduler.enqueue_delivery(session, app.id or 0)


# --- requester ------------------------------------------------------------------------------------

@router.get("/requests")
def my_requests(request: Request, who: Requester) -> Response:
    with session_scope(write=False) as session:
        apps = [a for a in svc.list_applications(session, who, limit=200)
                if a.requester_department_id == who.department_id]
        resources = _resources(session, apps)
        depts, _ = _names(session)
        current = {a.id: _last(stages(session, a)) for a in apps[:100]}
        bundles = followup.bundles_of(session, who, apps)
    return render(request, "requests.html", {"apps": apps, "resources": resources,
                                             "depts": depts, "current": current,
                                             "bundles": bundles,
                                             "overdue": {a.id: svc.is_overdue(a) for a in apps}})


@router.get("/requests/new")
def new_request_page(request: Request, who: Requester, resource: str) -> Response:
    with session_scope(write=False) as session:
        r = catalog_service.get_resource(session, resource)
        provider = catalog_service.provider_of(session, r)
        items = list(r.items)
    return render(request, "apply.html", {
        "r": r, "provider": provider, "items": items, "methods": list(DeliveryMethod),
        "formats": list(FileFormat), "schedules": list(Schedule),
        "period_end": date.today() + timedelta(days=180)})


@router.post("/requests/new")
def file_request(request: Request, who: Requester, form: CheckedForm) -> Response:
    raw: dict[str, Any] = {"resource": text(form, "resource"), "purpose": text(form, "purpose"),
           "legal_basis": text(form, "legal_basis"), "items": texts(form, "items"),
           "period_end": text(form, "period_end"),
           "delivery_method": text(form, "delivery_method") or "file",
           "file_format": text(form, "file_format") or "parquet",
           "schedule": text(form, "schedule") or "once"}
    if text(form, "period_start"):
        raw["period_start"] = text(form, "period_start")
    if raw["delivery_method"] == DeliveryMethod.aggregate.value:
        raw["aggregate"] = _aggregate_spec(form)
    try:
        data = ApplicationIn.model_validate(raw)
    except ValidationError as exc:
        raise Invalid.of(exc.errors(), "the application") from None
    with session_scope(write=True) as session:
        app = svc.file_application(session, who, data)
        app_id = app.id
        _deliver_later(session, [app])
    return redirect(f"/applications/{app_id}?ok=filed")


def _aggregate_spec(form: CheckedForm) -> dict[str, Any]:
    """The aggregate fields of the form: always a count per group, optionally a mean of one
    number between bounds (the API takes any counts, sums and means, docs/access.md)."""
    measures: list[dict[str, Any]] = [{"op": "count"}]
    if text(form, "agg_mean"):
        measures.append({"op": "mean", "item": text(form, "agg_mean"),
                         "lower": text(form, "agg_lower") or None,
                         "upper": text(form, "agg_upper") or None})
    return {"group_by": texts(form, "agg_group_by"), "measures": measures,
            "epsilon": text(form, "agg_epsilon") or 1.0,
            "budget": text(form, "agg_budget") or 10.0,
            "min_count": text(form, "agg_min_count") or 10}


# --- one application, for every party -------------------------------------------------------------

@router.get("/applications/{app_id}")
def application_page(request: Request, app_id: int, who: Involved) -> Response:
    with session_scope(write=False) as session:
        app = svc.get_application(session, who, app_id)
        resource = session.get(Resource, app.resource_id)
        assert resource is not None
        depts, users = _names(session)
        parties = svc.parties_of(session, who, app)
        actions = {a.value for a in legal_actions(app.state, parties)}
        items = {i.name: i for i in resource.items}
        granted = app.state in (S.approved, S.delivered)
        base = masking.plan_from_json(app.masking_plan) if app.masking_plan else \
            masking.default_plan(list(resource.items), app.items)
        provider = Party.provider in parties
        shown = Party.bureau in parties or provider or app.decided_at is not None
        risk_panel = risk_page.panel(session, who, app, request, provider) if shown else None
        picked = risk_page.selected_rules(risk_panel["suggestion"] if risk_panel else None)
        plan = []
        for n in app.items:
            if n not in items:
                continue
            options = choices(items[n], base[n])
            if n in picked and picked[n] not in options:
                options.append(picked[n])  # e.g. a suggested fixed range width
            plan.append({"item": items[n], "rule": picked.get(n, rule_key(base[n])),
                         "suggested": n in picked, "choices": options})
        deliveries = delivery.list_deliveries(session, who, app_id) if granted or \
            app.state in (S.revoked, S.expired) else []
        history = svc.steps(session, app_id)
        timeline = stages(session, app)
        grant = svc.grant_of(session, app)
        grant_active = grant is not None and svc.grant_active(grant, app)
        coordinations = [s for s in history if s.action in ("escalate", "coordinate")]
        # What the requester must read before acting: the latest return (every deficiency
        # and its note) and the decision's note and conditions.
        last_return = next((s for s in reversed(history) if s.action == "return"), None)
        decision = next((s for s in reversed(history)
                         if s.action in ("approve", "set_conditions", "auto_approve")), None)
        all_items = list(resource.items)
        delivering = delivery_jobs.active(session, app_id) if granted else None
        blocked = _blocked_reason(history, app, i18n.language_of(request))
    return render(request, "application.html", {
        "delivering": delivering, "blocked_reason": blocked,
        "last_return": last_return if app.state is S.returned else None,
        "returns": [s for s in history if s.action == "return"], "decision": decision,
        "all_items": all_items, "methods": list(DeliveryMethod),
        "formats": list(FileFormat), "schedules": list(Schedule),
        "grant": grant, "grant_active": grant_active, "coordinations": coordinations,
        "days_overdue": followup.working_days_overdue(app.due_date) if svc.is_overdue(app)
        else 0, "bureau": "coordinate" in actions and app.escalated_at is not None
        and Party.bureau in parties, "ops": followup.OPS,
        "app": app, "r": resource, "depts": depts, "users": users, "actions": actions,
        "plan": plan, "risk": risk_panel, "deliveries": deliveries, "history": history,
        "stages": timeline,
        "overdue": svc.is_overdue(app), "granted": granted,
        "requester_side": who.department_id == app.requester_department_id
        and who.has(Role.requester),
        "reasons": list(RejectionReason), "deficiencies": list(Deficiency)})


def _blocked_reason(history: list[Any], app: Application, lang: str) -> str | None:
    """Why the last package was withheld, in the page's language (the stored reason is the
    English one; the block's step keeps its catalogue message)."""
    if not app.delivery_blocked:
        return None
    step = next((s for s in reversed(history) if s.action == "block"), None)
    why = (step.detail or {}).get("why") if step is not None else None
    if not why:
        return app.delivery_blocked
    phrase = params_from_json({"why": why})["why"]
    return localize(lang, phrase.key, dict(phrase.params), phrase.english)


def _plan_changes(form: CheckedForm, app: Application, base: dict[str, Any]) -> dict[str, Any]:
    """The items whose rule the approver changed from ``base`` (the shown plan)."""
    changes = {}
    for name in app.items:
        picked = text(form, f"mask_{name}")
        if picked and picked != base.get(name):
            changes[name] = rule_from_key(picked)
    return changes


@router.post("/applications/{app_id}/approve")
def approve(request: Request, app_id: int, who: Approver, form: CheckedForm) -> Response:
    with session_scope(write=True) as session:
        app = svc.get_application(session, who, app_id)
        items = svc.resource_items(session, app)
        base = masking.default_plan(items, app.items)
        default = {n: rule_key(r) for n, r in base.items()}
        conditions = [c.strip() for c in text(form, "conditions").splitlines() if c.strip()]
        changes = _plan_changes(form, app, default)
        plan = masking.tighten(items, base, changes)
        data = ApprovalIn(masking=changes, conditions=conditions, note=text(form, "note"),
                          **risk_page.settings_from(form, plan))
        app = svc.approve(session, who, app_id, data)
        _deliver_later(session, [app])
    return redirect(f"/applications/{app_id}?ok=approved")


@router.post("/applications/{app_id}/tighten")
def tighten(request: Request, app_id: int, who: Approver, form: CheckedForm) -> Response:
    with session_scope(write=True) as session:
        app = svc.get_application(session, who, app_id)
        current = {n: rule_key(r) for n, r in app.masking_plan.items()}
        changes = _plan_changes(form, app, current)
        items = svc.resource_items(session, app)
        plan = masking.tighten(items, masking.plan_from_json(app.masking_plan), changes)
        settings = risk_page.settings_from(form, plan)
        app = svc.tighten(session, who, app_id, TightenIn(
            masking=changes, quasi_identifiers=settings["quasi_identifiers"] or None,
            sensitive_items=settings["sensitive_items"] or None, k_min=settings["k_min"],
            max_suppression=settings["max_suppression"]))
        _deliver_later(session, [app])
    return redirect(f"/applications/{app_id}?ok=tightened")


@router.post("/applications/{app_id}/reject")
def reject(request: Request, app_id: int, who: Approver, form: CheckedForm) -> Response:
    try:
        data = RejectIn(reason=RejectionReason(text(form, "reason") or "other"),
                        text=text(form, "text"))
    except (ValueError, ValidationError):
        raise Invalid("Choose a reason and explain the rejection (at least 2 characters).") \
            from None
    with session_scope(write=True) as session:
        svc.reject(session, who, app_id, data)
    return redirect(f"/applications/{app_id}?ok=rejected")


@router.post("/applications/{app_id}/return")
def return_application(request: Request, app_id: int, who: Approver,
                       form: CheckedForm) -> Response:
    codes = texts(form, "deficiency")
    note = text(form, "note")
    try:
        # Each deficiency with its own note when the approver wrote one, else the common note.
        data = ReturnIn.model_validate({"deficiencies": [
            {"code": c, "note": text(form, f"note_{c}") or note} for c in codes]})
    except ValidationError:
        raise Invalid("Tick every deficiency the requester must fix (一次性告知).") from None
    with session_scope(write=True) as session:
        svc.return_application(session, who, app_id, data)
    return redirect(f"/applications/{app_id}?ok=returned")


@router.post("/applications/{app_id}/resubmit")
def resubmit(request: Request, app_id: int, who: Requester, form: CheckedForm) -> Response:
    raw: dict[str, Any] = {"purpose": text(form, "purpose") or None,
                           "legal_basis": text(form, "legal_basis") or None,
                           "note": text(form, "note")}
    # Everything the requester may change (the form shows the current values).
    if texts(form, "items"):
        raw["items"] = texts(form, "items")
    for name in ("period_start", "period_end", "delivery_method", "file_format", "schedule"):
        if text(form, name):
            raw[name] = text(form, name)
    try:
        data = RevisionIn.model_validate(raw)
    except ValidationError as exc:
        raise Invalid.of(exc.errors(), "the revision") from None
    with session_scope(write=True) as session:
        svc.resubmit(session, who, app_id, data)
    return redirect(f"/applications/{app_id}?ok=resubmitted")


@router.post("/applications/{app_id}/accept-conditions")
def accept_conditions(request: Request, app_id: int, who: Requester, form: CheckedForm) -> Response:
    with session_scope(write=True) as session:
        app = svc.accept_conditions(session, who, app_id)
        _deliver_later(session, [app])
    return redirect(f"/applications/{app_id}?ok=accepted")


@router.post("/applications/{app_id}/withdraw")
def withdraw(request: Request, app_id: int, who: Requester, form: CheckedForm) -> Response:
    with session_scope(write=True) as session:
        svc.withdraw(session, who, app_id, text(form, "note"))
    return redirect(f"/applications/{app_id}?ok=withdrawn")


@router.post("/deliveries/{delivery_id}/download")
def download(request: Request, delivery_id: int, who: Requester,
             form: CheckedForm) -> Response:
    """Issue a link and use it at once: the download is logged before a byte leaves."""
    with session_scope(write=True) as session:
        token, _ = links.issue_link(session, who, delivery_id)
        path, d = links.open_download(session, who, delivery_id, token)
        sha = d.sha256 or ""
    media = "text/csv" if path.suffix == ".csv" else "application/vnd.apache.parquet"
    return FileResponse(path, media_type=media, filename=path.name,
                        headers={"X-Content-SHA256": sha})


# --- approver -------------------------------------------------------------------------------------

@router.get("/inbox")
def inbox(request: Request, who: Approver) -> Response:
    with session_scope(write=False) as session:
        received = [a for a in svc.list_applications(session, who, limit=500)
                    if a.provider_department_id == who.department_id]
        waiting = sorted((a for a in received if a.state is S.submitted),
                         key=lambda a: (a.due_date or date.max, a.filed_at))
        decided = [a for a in received if a.state is not S.submitted][:30]
        bundles = [b for b in followup.bundles_of(session, who, received)
                   if b["bundle"].coordinator_department_id == who.department_id]
        parts = [p for b in bundles for p in b["parts"]]
        resources = _resources(session, received + parts)
        depts, _ = _names(session)
    today = WorkCalendar.from_settings().local_date(utcnow())
    return render(request, "inbox.html", {
        "waiting": waiting, "decided": decided, "resources": resources, "depts": depts,
        "today": today, "overdue": {a.id: svc.is_overdue(a) for a in received},
        "bundles": bundles,
        "waited": {a.id: since(a.filed_at) for a in waiting}})

