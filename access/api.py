"""HTTP API of the access pipeline: applications, bundles, deliveries, grants, latency.

Every endpoint declares its roles with ``require``; which department may do what is checked
by the services (``access.service``, ``access.delivery``) from the principal. Moves that the
state machine refuses (approving twice, approving for another department, delivering a
rejected application) are 409 problem+json naming the reason.

Deliveries are jobs (``access.scheduler``): the deciding request enqueues one in its own
transaction, and a ``govshare worker`` process produces the package; this process only
answers. The requester's "deliver now" too: 202 and a status URL (``access.delivery_jobs``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import FileResponse
from sqlmodel import Session, select

from access import (
    assessment,
    delivery,
    delivery_jobs,
    generalize,
    latency,
    links,
    queries,
    ratings,
    scheduler,
)
from access import service as svc
from access.flows import legal_actions
from access.models import (
    Application,
    ApplicationState,
    Bundle,
    Delivery,
    DeliveryRating,
    Grant,
)
from access.schemas import (
    ApplicationIn,
    ApplicationOut,
    ApprovalIn,
    BundleIn,
    BundleOut,
    CoordinationIn,
    DeliveryJobOut,
    DeliveryOut,
    GrantOut,
    LinkOut,
    ManifestOut,
    NoteIn,
    QueryIn,
    QueryOut,
    RatingIn,
    RatingOut,
    ReassignIn,
    ReceiptOut,
    RejectIn,
    ReturnIn,
    RevisionIn,
    RevokeIn,
    RiskIn,
    StepOut,
    SuggestIn,
    TightenIn,
)
from catalog.models import Resource
from kernel.auth import DbSession, Principal, WriteSession, require
from kernel.idempotency import IDEMPOTENT, IdempotentRoute
from kernel.identity import Department, Role, User
from kernel.problems import preferred_language
from translog import proofs, receipts

log = logging.getLogger("govshare")

applications = APIRouter(prefix="/applications", tags=["access: applications"],
                          route_class=IdempotentRoute)
bundles = APIRouter(prefix="/bundles", tags=["access: applications"],
                     route_class=IdempotentRoute)
deliveries = APIRouter(prefix="/deliveries", tags=["access: deliveries"],
                        route_class=IdempotentRoute)
grants = APIRouter(prefix="/grants", tags=["access: deliveries"])
latency_router = APIRouter(prefix="/latency", tags=["access: latency"])
routers = [applications, bundles, deliveries, grants, latency_router]

Requester = Annotated[Principal, Depends(require(Role.requester))]
Approver = Annotated[Principal, Depends(require(Role.approver))]
Involved = Annotated[Principal, Depends(require(Role.requester, Role.approver, Role.auditor,
                                                Role.leader))]
Escalator = Annotated[Principal, Depends(require(Role.requester, Role.auditor))]
Coordinator = Annotated[Principal, Depends(require(Role.auditor, Role.approver))]
Metrics = Annotated[Principal, Depends(require(Role.leader, Role.auditor))]
RatingReader = Annotated[Principal, Depends(require(Role.requester, Role.approver,
                                                    Role.publisher, Role.auditor))]


# --- output -----------------------------------------------------------------------------------

class _Names:
    """Codes and usernames by id, loaded once per request."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.depts = {d.id: d.code for d in session.exec(select(Department))}
        self._users: dict[int, str] = {}
        self._resources: dict[int, str] = {}

    def user(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        if user_id not in self._users:
            u = self.session.get(User, user_id)
            self._users[user_id] = u.username if u else "?"
        return self._users[user_id]

    def resource(self, resource_id: int) -> str:
        if resource_id not in self._resources:
            r = self.session.get(Resource, resource_id)
            self._resources[resource_id] = r.code if r else "?"
        return self._resources[resource_id]


def application_out(session: Session, who: Principal, app: Application,
                    names: _Names | None = None) -> ApplicationOut:
    n = names or _Names(session)
    grant = svc.grant_of(session, app)
    fields = app.model_dump(include={
        "id", "bundle_id", "purpose", "legal_basis", "items", "period_start", "period_end",
        "delivery_method", "file_format", "schedule", "revision", "due_date", "escalated_at",
        "masking_plan", "row_filters", "quasi_identifiers", "k_min", "max_suppression",
        "sensitive_items", "aggregate", "conditions",
        "delivery_blocked", "returns", "escalations", "reassignments", "notice_violations",
        "filed_at", "decided_at", "approved_at", "masked_at", "delivered_at",
        "first_download_at", "closed_at"})
    return ApplicationOut(
        **fields, resource=n.resource(app.resource_id),
        provider=n.depts.get(app.provider_department_id, "?"),
        requester=n.depts.get(app.requester_department_id, "?"),
        requested_by=n.user(app.requester_user_id) or "?", sharing_type=app.sharing_type.value,
        state=app.state.value, assignee=n.user(app.assignee_user_id),
        overdue=svc.is_overdue(app), bounces=app.bounces,
        grant_id=grant.id if grant else None,
        next_actions=[a.value for a in legal_actions(app.state,
                                                     svc.parties_of(session, who, app))])


def _step_out(step: Any, n: _Names) -> StepOut:
    return StepOut(seq=step.seq, action=step.action, from_state=step.from_state,
                   to_state=step.to_state, actor=n.user(step.actor_user_id),
                   actor_department=n.depts.get(step.actor_department_id), at=step.at,
                   detail=step.detail)


def bundle_out(session: Session, who: Principal, bundle: Bundle) -> BundleOut:
    n = _Names(session)
    parts = [application_out(session, who, p, n)
             for p in svc.bundle_parts(session, bundle.id or 0)]
    return BundleOut(id=bundle.id or 0, title=bundle.title,
                     requester=n.depts.get(bundle.requester_department_id, "?"),
                     coordinator=n.depts.get(bundle.coordinator_department_id, "?"),
                     filed_at=bundle.filed_at, completed_at=bundle.completed_at, parts=parts)


def grant_out(session: Session, grant: Grant, app: Application) -> GrantOut:
    n = _Names(session)
    return GrantOut(id=grant.id or 0, application_id=app.id or 0,
                    resource=n.resource(app.resource_id),
                    requester=n.depts.get(app.requester_department_id, "?"),
                    schedule=grant.schedule, valid_from=grant.valid_from,
                    valid_until=grant.valid_until, revoked_at=grant.revoked_at,
                    revoke_reason=grant.revoke_reason, last_version=grant.last_version,
                    active=svc.grant_active(grant, app), privacy_spent=grant.privacy_spent,
                    privacy_budget=(app.aggregate or {}).get("budget"))


# --- deliveries: enqueued with the decision -----------------------------------------------------

def _enqueue_deliveries(session: Session, apps: list[Application]) -> None:
    """Queue the deliveries of what is approved, in the deciding request's transaction: the
    job exists exactly when the approval committed (a worker produces the package)."""
    for app in apps:
        if app.state is ApplicationState.approved:
            scheduler.enqueue_delivery(session, app.id or 0)


# --- applications -----------------------------------------------------------------------------

@applications.post("", response_model=ApplicationOut, status_code=status.HTTP_201_CREATED,
                   dependencies=[IDEMPOTENT],
                   responses={409: {"description": "A duplicate: `existing_application` "
                                                   "names the active one"}})
def file_application(data: ApplicationIn, session: WriteSession, who: Requester) -> ApplicationOut:
    """File an application for your department. Unconditional resources are approved at once
    and delivered within seconds; a duplicate of an active one is refused with 409 and the
    existing id."""
    app = svc.file_application(session, who, data)
    out = application_out(session, who, app)
    _enqueue_deliveries(session, [app])
    return out


@applications.get("", response_model=list[ApplicationOut])
def list_applications(session: DbSession, who: Involved,
                      state: ApplicationState | None = None,
                      overdue: bool | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100,
                      offset: Annotated[int, Query(ge=0)] = 0) -> list[ApplicationOut]:
    """Your department's applications, filed or received (the data bureau: all)."""
    n = _Names(session)
    return [application_out(session, who, a, n) for a in svc.list_applications(
        session, who, state=state, overdue=overdue, limit=limit, offset=offset)]


@applications.get("/{app_id}", response_model=ApplicationOut)
def get_application(app_id: int, session: DbSession, who: Involved) -> ApplicationOut:
    return application_out(session, who, svc.get_application(session, who, app_id))


@applications.get("/{app_id}/risk")
def risk_report(app_id: int, session: DbSession, who: Involved) -> dict[str, Any]:
    """The re-identification risk of the plan as it would be delivered: equivalence classes,
    k, prosecutor / journalist / marketer risk, l-diversity and t-closeness of the sensitive
    items (docs/access.md). Approvers and the bureau before the decision; the requester
    after it."""
    return assessment.report_for(session, who, app_id)


@applications.post("/{app_id}/risk")
def risk_of_changes(app_id: int, data: RiskIn, session: DbSession,
                    who: Approver) -> dict[str, Any]:
    """The report of the plan with tentative tightenings, other quasi-identifiers or
    sensitive items, before deciding (changes nothing)."""
    return assessment.report_for(
        session, who, app_id, changes=data.masking, quasi_identifiers=data.quasi_identifiers,
        sensitive=data.sensitive_items, k_target=data.k_target,
        max_suppression=data.max_suppression)


@applications.post("/{app_id}/suggestion")
def suggestion(app_id: int, data: SuggestIn, session: DbSession,
               who: Approver) -> dict[str, Any]:
    """The least generalization of the quasi-identifiers that meets the target, as masking
    changes to apply in one click (approve or tighten with them), with its report."""
    inp = assessment.inputs(session, who, app_id, changes=data.masking,
                            quasi_identifiers=data.quasi_identifiers,
                            sensitive=data.sensitive_items, provider_only=True)
    target = generalize.Target(k=data.k, max_suppression=data.suppression, l=data.l,
                               sensitive=tuple(inp.sensitive) if data.l else (),
                               prosecutor_max=data.prosecutor_max)
    return assessment.suggest(inp, target)


@applications.get("/{app_id}/history", response_model=list[StepOut])
def history(app_id: int, session: DbSession, who: Involved) -> list[StepOut]:
    svc.get_application(session, who, app_id)
    n = _Names(session)
    return [_step_out(s, n) for s in svc.steps(session, app_id)]


@applications.get("/{app_id}/receipts", response_model=list[ReceiptOut])
def application_receipts(app_id: int, session: DbSession, who: Involved) -> list[ReceiptOut]:
    """A receipt for every log entry of the application: its filing, each decision, each
    delivery."""
    svc.get_application(session, who, app_id)
    return [ReceiptOut(seq=row.seq, type=row.event_type, time=row.time, receipt=receipt)
            for row, receipt in receipts.for_subject(session, "application", str(app_id))]


@applications.post("/{app_id}/approve", response_model=ApplicationOut)
def approve(app_id: int, data: ApprovalIn, session: WriteSession, who: Approver) -> ApplicationOut:
    """Approve with the default masking plan, tightened where you say; with ``conditions``
    the requester must accept them before anything is delivered."""
    app = svc.approve(session, who, app_id, data)
    out = application_out(session, who, app)
    _enqueue_deliveries(session, [app])
    return out


@applications.post("/{app_id}/accept-conditions", response_model=ApplicationOut)
def accept_conditions(app_id: int, session: WriteSession, who: Requester) -> ApplicationOut:
    app = svc.accept_conditions(session, who, app_id)
    out = application_out(session, who, app)
    _enqueue_deliveries(session, [app])
    return out


@applications.post("/{app_id}/return", response_model=ApplicationOut)
def return_application(app_id: int, data: ReturnIn, session: WriteSession,
                       who: Approver) -> ApplicationOut:
    """Return for changes, listing every deficiency at once (一次性告知)."""
    return application_out(session, who, svc.return_application(session, who, app_id, data))


@applications.post("/{app_id}/resubmit", response_model=ApplicationOut)
def resubmit(app_id: int, data: RevisionIn, session: WriteSession,
             who: Requester) -> ApplicationOut:
    return application_out(session, who, svc.resubmit(session, who, app_id, data))


@applications.post("/{app_id}/reject", response_model=ApplicationOut)
def reject(app_id: int, data: RejectIn, session: WriteSession, who: Approver) -> ApplicationOut:
    return application_out(session, who, svc.reject(session, who, app_id, data))


@applications.post("/{app_id}/withdraw", response_model=ApplicationOut)
def withdraw(app_id: int, data: NoteIn, session: WriteSession, who: Requester) -> ApplicationOut:
    return application_out(session, who, svc.withdraw(session, who, app_id, data.note))


@applications.post("/{app_id}/reassign", response_model=ApplicationOut)
def reassign(app_id: int, data: ReassignIn, session: WriteSession,
             who: Approver) -> ApplicationOut:
    return application_out(session, who, svc.reassign(session, who, app_id, data.assignee,
                                                      data.note))


@applications.post("/{app_id}/escalate", response_model=ApplicationOut)
def escalate(app_id: int, data: NoteIn, session: WriteSession, who: Escalator) -> ApplicationOut:
    """Send an overdue application to the data bureau (requesters, or the bureau itself)."""
    return application_out(session, who, svc.escalate(session, who, app_id, data.note))


@applications.post("/{app_id}/coordination", response_model=ApplicationOut)
def coordinate(app_id: int, data: CoordinationIn, session: WriteSession,
               who: Coordinator) -> ApplicationOut:
    """Record a reminder, a meeting or its outcome (data bureau after escalation; a bundle's
    coordinator may remind). Never changes the provider's decision."""
    return application_out(session, who, svc.coordinate(session, who, app_id, data))


@applications.post("/{app_id}/masking", response_model=ApplicationOut)
def tighten(app_id: int, data: TightenIn, session: WriteSession, who: Approver) -> ApplicationOut:
    """Tighten the masking plan, row filters or k-anonymity of a granted application."""
    app = svc.tighten(session, who, app_id, data)
    out = application_out(session, who, app)
    _enqueue_deliveries(session, [app])
    return out


@applications.post("/{app_id}/deliver", response_model=DeliveryJobOut,
                   status_code=status.HTTP_202_ACCEPTED, dependencies=[IDEMPOTENT],
                   responses={200: {"model": DeliveryJobOut,
                                    "description": "The period's package exists already"},
                              409: {"description": "Not deliverable now (state, period of "
                                                   "use, privacy budget): `detail` says why"}})
def deliver_now(app_id: int, request: Request, response: Response, session: WriteSession,
                who: Requester) -> DeliveryJobOut:
    """Ask for the current period's package now. A worker produces it: the answer is 202
    with the job's status URL (`Location`, `status_url`) to follow until `final`. A double
    click or a retry while the job is queued or running is the same job (one delivery); when
    the period's package exists already, the answer is 200 with it."""
    found = delivery_jobs.request(session, who, app_id)
    out = _job_out(request, found)
    if found.job is None:
        response.status_code = status.HTTP_200_OK
    else:
        assert out.status_url is not None
        response.headers["Location"] = out.status_url
        response.headers["Retry-After"] = "1"
    return out


@applications.get("/{app_id}/delivery-jobs/{job_id}", response_model=DeliveryJobOut,
                  name="delivery_job")
def delivery_job(app_id: int, job_id: int, request: Request, session: DbSession,
                 who: Involved) -> DeliveryJobOut:
    """A requested delivery: queued, running, then delivered (with the delivery) or why
    not (blocked by the desensitization check, refused, failed)."""
    lang = preferred_language(request.headers.get("accept-language"))
    return _job_out(request, delivery_jobs.status(session, who, app_id, job_id, lang))


def _job_out(request: Request, found: delivery_jobs.Status) -> DeliveryJobOut:
    status_url = None if found.job is None else str(request.url_for(
        "delivery_job", app_id=found.application, job_id=found.job))
    done = found.delivery
    return DeliveryJobOut(
        application=found.application, job=found.job, state=found.state,
        final=found.state in delivery_jobs.FINAL, attempts=found.attempts,
        queued_at=found.queued_at, started_at=found.started_at, finished_at=found.finished_at,
        status_url=status_url, problem=found.problem,
        delivery=None if done is None else DeliveryOut.model_validate(done),
        delivery_url=None if done is None else str(request.url_for(
            "get_delivery", delivery_id=done.id)))


# --- bundles ----------------------------------------------------------------------------------

@bundles.post("", response_model=BundleOut, status_code=status.HTTP_201_CREATED,
               dependencies=[IDEMPOTENT])
def file_bundle(data: BundleIn, session: WriteSession, who: Requester) -> BundleOut:
    """One filing over several departments' resources (一件事): the parts are decided in
    parallel; the first part's provider coordinates (首办责任制)."""
    bundle = svc.file_bundle(session, who, data)
    out = bundle_out(session, who, bundle)
    _enqueue_deliveries(session, svc.bundle_parts(session, bundle.id or 0))
    return out


@bundles.get("", response_model=list[BundleOut])
def list_bundles(session: DbSession, who: Involved) -> list[BundleOut]:
    ids = {a.bundle_id for a in svc.list_applications(session, who, limit=500) if a.bundle_id}
    found = [session.get(Bundle, i) for i in sorted(ids, reverse=True)]
    return [bundle_out(session, who, b) for b in found if b is not None]


@bundles.get("/{bundle_id}", response_model=BundleOut)
def get_bundle(bundle_id: int, session: DbSession, who: Involved) -> BundleOut:
    return bundle_out(session, who, svc.get_bundle(session, who, bundle_id))


@bundles.post("/{bundle_id}/remind", response_model=BundleOut)
def remind(bundle_id: int, data: NoteIn, session: WriteSession, who: Approver) -> BundleOut:
    """The coordinating department reminds the providers of pending parts."""
    svc.remind_bundle(session, who, bundle_id, data.note or "请尽快办理")
    return bundle_out(session, who, svc.get_bundle(session, who, bundle_id))


# --- deliveries -------------------------------------------------------------------------------

@deliveries.get("", response_model=list[DeliveryOut])
def list_deliveries(session: DbSession, who: Involved,
                    application: int | None = None) -> list[Delivery]:
    return delivery.list_deliveries(session, who, application)


@deliveries.get("/{delivery_id}", response_model=DeliveryOut, name="get_delivery")
def get_delivery(delivery_id: int, session: DbSession, who: Involved) -> Delivery:
    return delivery.get_delivery(session, who, delivery_id)[0]


@deliveries.get("/{delivery_id}/manifest", response_model=ManifestOut)
def manifest(delivery_id: int, session: DbSession, who: Involved) -> ManifestOut:
    """The signed manifest; verify it with the key from /.well-known/govshare-log-keys."""
    d, _ = delivery.get_delivery(session, who, delivery_id)
    logged = delivery.logged_payload(d)
    receipt = receipts.for_payload(session, proofs.DELIVERY_EVENT, logged)
    return ManifestOut(manifest=d.manifest, signature=d.signature, key_id=d.key_id,
                       receipt=receipt, logged_payload=logged if receipt else None)


@deliveries.post("/{delivery_id}/link", response_model=LinkOut, dependencies=[IDEMPOTENT])
def link(delivery_id: int, request: Request, session: WriteSession, who: Requester) -> LinkOut:
    """An expiring download link, for the requesting department's users only."""
    token, expires = links.issue_link(session, who, delivery_id)
    url = str(request.url_for("download", delivery_id=delivery_id)) + f"?token={token}"
    return LinkOut(url=url, expires_at=expires)


@deliveries.get("/{delivery_id}/download", name="download")
def download(delivery_id: int, token: str, session: WriteSession,
             who: Requester) -> FileResponse:
    """Download with a link's token (you must still be signed in, in the requesting
    department); logged."""
    path, d = links.open_download(session, who, delivery_id, token)
    session.commit()  # the download is on record before a byte leaves
    media = "text/csv" if path.suffix == ".csv" else "application/vnd.apache.parquet"
    return FileResponse(path, media_type=media, filename=path.name,
                        headers={"X-Content-SHA256": d.sha256 or ""})


def _rating_out(session: Session, rating: DeliveryRating) -> RatingOut:
    n = _Names(session)
    return RatingOut(id=rating.id or 0, delivery_id=rating.delivery_id,
                     application_id=rating.application_id,
                     provider=n.depts.get(rating.provider_department_id, "?"),
                     requester=n.depts.get(rating.requester_department_id, "?"),
                     rated_by=n.user(rating.rated_by) or "?", useful=rating.useful,
                     comment=rating.comment, rated_at=rating.rated_at)


@deliveries.post("/{delivery_id}/rating", response_model=RatingOut)
def rate_delivery(delivery_id: int, data: RatingIn, session: WriteSession,
                  who: Requester) -> RatingOut:
    """Was this delivery useful? Requesters of the requesting department; rating again
    replaces your verdict. Logged; providers see the ratings, metrics aggregate them."""
    rating = ratings.rate(session, who, delivery_id, data.useful, data.comment)
    return _rating_out(session, rating)


@deliveries.get("/{delivery_id}/ratings", response_model=list[RatingOut])
def delivery_ratings(delivery_id: int, session: DbSession, who: RatingReader) -> list[RatingOut]:
    """Ratings of a delivery: its requesting and providing departments, and the bureau."""
    return [_rating_out(session, r) for r in ratings.ratings(session, who, delivery_id)]


# --- grants -----------------------------------------------------------------------------------

@grants.get("", response_model=list[GrantOut])
def list_grants(session: DbSession, who: Involved) -> list[GrantOut]:
    out = []
    for g in svc.list_grants(session, who):
        app = session.get(Application, g.application_id)
        if app is not None:
            out.append(grant_out(session, g, app))
    return out


@grants.get("/{grant_id}", response_model=GrantOut)
def get_grant(grant_id: int, session: DbSession, who: Involved) -> GrantOut:
    grant, app = svc.get_grant(session, who, grant_id)
    return grant_out(session, grant, app)


@grants.post("/{grant_id}/revoke", response_model=GrantOut)
def revoke(grant_id: int, data: RevokeIn, session: WriteSession, who: Approver) -> GrantOut:
    """End a grant early (the provider): no more downloads, queries or packages."""
    grant = svc.revoke(session, who, grant_id, data.reason)
    app = session.get(Application, grant.application_id)
    assert app is not None
    return grant_out(session, grant, app)


@grants.post("/{grant_id}/query", response_model=QueryOut)
def query(grant_id: int, data: QueryIn, session: WriteSession, who: Requester) -> QueryOut:
    """Filtered, paginated rows of the desensitized view (API-query grants); logged."""
    return QueryOut(**queries.query(session, who, grant_id, data))


# --- latency ----------------------------------------------------------------------------------

GroupBy = Literal["provider", "requester", "sharing_type", "stage", "resource"]


@latency_router.get("")
def latency_report(session: DbSession, _: Metrics, group_by: GroupBy = "provider",
                   since: datetime | None = None, until: datetime | None = None
                   ) -> dict[str, Any]:
    """Sharing latency (first delivery − filing) percentiles, in hours and working days."""
    measured = latency.collect(session, since, until)
    return {"group_by": group_by, "applications": len(measured),
            "groups": latency.report(measured, group_by)}


@latency_router.get("/bundles")
def latency_bundles(session: DbSession, _: Metrics) -> list[dict[str, Any]]:
    """Each bundle's elapsed time next to the sum of its parts (serial approval's cost)."""
    return latency.bundles(session, latency.collect(session))


@latency_router.get("/applications")
def latency_applications(session: DbSession, _: Metrics,
                         since: datetime | None = None) -> list[dict[str, Any]]:
    return latency.as_rows(latency.collect(session, since))
