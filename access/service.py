"""Application use cases: file, decide, revise, escalate, coordinate, revoke; bundles.

Every change goes through ``_move``: it asks the state machine (``access.flows``) whether the
caller may make the move now, records the step in the history and publishes the event the
signed access log records, all in the caller's transaction. Department scoping is derived
here from the ``Principal`` (never from ids the client sends).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from access import aggregate, masking, pseudonym
from access.calendar import WorkCalendar
from access.flows import Action, Party, next_state
from access.masking import MaskingRule
from access.models import (
    ACTIVE_STATES,
    CLOSED_STATES,
    Application,
    ApplicationState,
    ApplicationStep,
    Bundle,
    Deficiency,
    DeliveryMethod,
    Grant,
    Schedule,
)
from access.schemas import (
    ApplicationIn,
    ApprovalIn,
    BundleIn,
    CoordinationIn,
    RejectIn,
    ReturnIn,
    RevisionIn,
    TightenIn,
)
from catalog.models import DataItem, Resource, ResourceStatus, SharingType
from catalog.service import get_resource
from catalog.warehouse import quote
from kernel import policy
from kernel.auth import Principal
from kernel.db import utcnow
from kernel.events import Actor, Event, publish
from kernel.identity import Role, User
from kernel.problems import Conflict, Forbidden, Invalid, NotFound, Phrase, Phrases
from kernel.settings import get_settings

SYSTEM = Actor(user_id=None, department_id=None, kind="system")
S = ApplicationState

# The part of an application each deficiency code is about (for the one-time-notice check).
DEFICIENCY_FIELDS: dict[Deficiency, tuple[str, ...]] = {
    Deficiency.purpose_unclear: ("purpose",),
    Deficiency.legal_basis_insufficient: ("legal_basis",),
    Deficiency.items_not_necessary: ("items",),
    Deficiency.period_too_long: ("period_start", "period_end"),
    Deficiency.delivery_unsuitable: ("delivery_method", "file_format", "schedule"),
    Deficiency.other: (),
}
_REVISABLE = ("purpose", "legal_basis", "items", "period_start", "period_end",
              "delivery_method", "file_format", "schedule")


# --- lookups and parties ----------------------------------------------------------------------

def load(session: Session, app_id: int, *, lock: bool = False) -> Application:
    query = select(Application).where(Application.id == app_id)
    if lock:  # PostgreSQL: serialise concurrent decisions; SQLite writes are serial anyway
        query = query.with_for_update()
    app = session.exec(query).first()
    if app is None:
        raise NotFound(f"No application {app_id}.",
                       key="problem.access.no_application", params={"app_id": app_id})
    return app


def is_bureau(session: Session, department_id: int) -> bool:
    """Whether the department is of kind bureau (the rule itself: ``kernel.policy``)."""
    return policy.is_bureau_department(session, department_id)


def parties_of(session: Session, who: Principal | None, app: Application) -> set[Party]:
    """The roles the caller plays for this application (system if no caller)."""
    if who is None:
        return {Party.system}
    parties = set()
    if who.department_id == app.requester_department_id and who.has(Role.requester):
        parties.add(Party.requester)
    if who.department_id == app.provider_department_id and who.has(Role.approver):
        parties.add(Party.provider)
    if policy.is_data_bureau(session, who):
        parties.add(Party.bureau)
    if app.bundle_id is not None and who.has(Role.approver):
        bundle = session.get(Bundle, app.bundle_id)
        if bundle is not None and bundle.coordinator_department_id == who.department_id:
            parties.add(Party.coordinator)
    return parties


def can_view(session: Session, who: Principal, app: Application) -> bool:
    if who.department_id in (app.requester_department_id, app.provider_department_id):
        return True
    return bool(parties_of(session, who, app) & {Party.bureau, Party.coordinator})


def get_application(session: Session, who: Principal, app_id: int) -> Application:
    app = load(session, app_id)
    if not can_view(session, who, app):
        raise Forbidden(f"Application {app_id} is between other departments; only they, a "
                        "bundle's coordinator and the data bureau can see it.",
                        key="problem.access.application_not_yours", params={"app_id": app_id})
    return app


def list_applications(session: Session, who: Principal, *, state: S | None = None,
                      overdue: bool | None = None, limit: int = 100,
                      offset: int = 0) -> list[Application]:
    query = select(Application)
    if not policy.is_data_bureau(session, who):
        mine = (col(Application.requester_department_id) == who.department_id) | \
            (col(Application.provider_department_id) == who.department_id)
        query = query.where(mine)
    if state is not None:
        query = query.where(Application.state == state)
    if overdue is not None:
        today = WorkCalendar.from_settings().local_date(utcnow())
        late = (col(Application.state) == S.submitted) & (col(Application.due_date) < today)
        query = query.where(late if overdue else ~late)
    query = query.order_by(col(Application.id).desc()).offset(offset).limit(limit)
    return list(session.exec(query))


def is_overdue(app: Application, now: datetime | None = None) -> bool:
    if app.state is not S.submitted or app.due_date is None:
        return False
    return WorkCalendar.from_settings().local_date(now or utcnow()) > app.due_date


def steps(session: Session, app_id: int) -> list[ApplicationStep]:
    return list(session.exec(select(ApplicationStep)
                             .where(ApplicationStep.application_id == app_id)
                             .order_by(col(ApplicationStep.seq))))


def resource_items(session: Session, app: Application) -> list[DataItem]:
    resource = session.get(Resource, app.resource_id)
    assert resource is not None  # foreign key
    return list(resource.items)


# --- the one way state changes ----------------------------------------------------------------

def _actor(who: Principal | None) -> Actor:
    return who.actor if who is not None else SYSTEM


def check(session: Session, app: Application, action: Action, who: Principal | None) -> S:
    """The state ``action`` would lead to now, or IllegalMove (access.flows); changes nothing
    (a long step checks first, then moves when it is done)."""
    return next_state(app.state, action, parties_of(session, who, app), app_id=app.id)


def move(session: Session, app: Application, action: Action, who: Principal | None,
         detail: dict[str, Any] | None = None, *, event: str | None = None,
         payload: dict[str, Any] | None = None,
         parties: set[Party] | None = None) -> ApplicationStep:
    """Check and make one move: new state, history step and log event, in this transaction.
    Every state change goes through here (or, for filing, ``record`` with the state machine's
    answer). ``parties`` overrides who acts (a block is the system's, whoever asked)."""
    before = app.state
    target = next_state(before, action, parties or parties_of(session, who, app), app_id=app.id)
    return record(session, app, action, target, _actor(who), detail, event=event,
                  payload=payload, before=before)


def record(session: Session, app: Application, action: Action | str, target: S, actor: Actor,
           detail: dict[str, Any] | None = None, *, event: str | None = None,
           payload: dict[str, Any] | None = None, before: S | None = None) -> ApplicationStep:
    """Record a move already checked (``_move``, filing, deliveries)."""
    now = utcnow()
    app.state, app.updated_at = target, now
    if target in CLOSED_STATES and app.closed_at is None:
        app.closed_at = now
    seq = (session.exec(select(func.max(ApplicationStep.seq))
                        .where(ApplicationStep.application_id == app.id)).one() or 0) + 1
    name = action.value if isinstance(action, Action) else action
    step = ApplicationStep(application_id=app.id or 0, seq=seq, action=name,
                           from_state=before.value if before else None, to_state=target.value,
                           actor_user_id=actor.user_id, actor_department_id=actor.department_id,
                           actor_kind=actor.kind, at=now, detail=detail or {})
    session.add_all([app, step])
    session.flush()
    publish(session, Event(event or f"application.{name}", actor, _subjects(session, app),
                           {"state": target.value, **(payload or detail or {})}))
    if target in CLOSED_STATES or target is S.delivered:
        _maybe_complete_bundle(session, app, actor)
    return step


def _subjects(session: Session, app: Application) -> dict[str, str]:
    resource = session.get(Resource, app.resource_id)
    subjects = {"application": str(app.id), "resource": resource.code if resource else "?"}
    if app.bundle_id is not None:
        subjects["bundle"] = str(app.bundle_id)
    return subjects


# --- filing -----------------------------------------------------------------------------------

def _require_requester(who: Principal) -> None:
    if not who.has(Role.requester):
        raise Forbidden("Only requesters file applications for their department.")


def check_application(session: Session, who: Principal, resource: Resource,
                      data: ApplicationIn | RevisionIn, current: Application | None = None
                      ) -> list[dict[str, Any]]:
    """Every reason to refuse (empty: acceptable). ``current`` fills fields a revision omits."""
    errors: list[dict[str, Any]] = []
    if resource.sharing_type is SharingType.not_shareable:
        errors.append({"field": "resource", "problem": Phrase(
            "problem.access.check.not_shareable", f"{resource.code} is not shareable "
            "(不予共享): it never leaves its department through govshare",
            {"code": resource.code})})
    if resource.status is not ResourceStatus.active:
        errors.append({"field": "resource", "problem": Phrase(
            "problem.access.check.withdrawn", f"{resource.code} is withdrawn",
            {"code": resource.code})})
    if resource.provider_id == who.department_id:
        errors.append({"field": "resource", "problem": Phrase(
            "problem.access.check.own_data",
            "this is your own department's data; you already hold it")})
    errors += _check_items(resource, _field(data, current, "items"))
    # A resubmission keeping its original start is not refused for it having passed while
    # the application waited: only a start the requester types now must not be in the past.
    new_start = current is None or data.period_start is not None
    errors += _check_period(_field(data, current, "period_start") or _today(),
                            _field(data, current, "period_end"), new_start)
    method = _field(data, current, "delivery_method")
    if method is DeliveryMethod.api and _field(data, current, "schedule") is not Schedule.once:
        errors.append({"field": "schedule", "problem": Phrase(
            "problem.access.check.api_schedule", "an API-query grant is live for its whole "
            "period; schedules apply to file deliveries only")})
    errors += _check_aggregate(method, getattr(data, "aggregate", None) if current is None
                               else None, _field(data, current, "items"), resource)
    return errors


def _check_aggregate(method: DeliveryMethod | None, spec: aggregate.AggregateSpec | None,
                     items: Sequence[str], resource: Resource) -> list[dict[str, Any]]:
    if method is not DeliveryMethod.aggregate:
        if spec is not None:
            return [{"field": "aggregate", "problem": Phrase(
                "problem.access.check.aggregate_only", "only for delivery_method aggregate")}]
        return []
    if spec is None:
        return [{"field": "aggregate", "problem": Phrase(
            "problem.access.check.aggregate_needs",
            "an aggregate grant needs its groups, measures and privacy budget")}]
    missing = [n for n in spec.items() if n not in items]
    if missing:
        names = ", ".join(missing)
        return [{"field": "aggregate", "problem": Phrase(
            "problem.access.check.aggregate_items",
            f"group and measure items must be among the requested items: {names}",
            {"names": names})}]
    try:
        aggregate.validate(spec, resource.items)
    except Invalid as problem:
        return [{"field": "aggregate", "problem": Phrase(problem.key or "", problem.detail,
                                                        problem.params)}]
    return []


def _field(data: ApplicationIn | RevisionIn, current: Application | None, name: str) -> Any:
    value = getattr(data, name, None)
    return getattr(current, name) if value is None and current is not None else value


def _today() -> date:
    return WorkCalendar.from_settings().local_date(utcnow())


def _check_items(resource: Resource, items: Sequence[str]) -> list[dict[str, Any]]:
    declared = {i.name for i in resource.items}
    errors: list[dict[str, Any]] = [
        {"field": "items", "problem": Phrase(
            "problem.access.check.not_an_item", f"'{n}' is not a data item of {resource.code}",
            {"n": n, "code": resource.code})} for n in items if n not in declared]
    repeated = sorted({n for n in items if list(items).count(n) > 1})
    if repeated:
        names = ", ".join(repeated)
        errors.append({"field": "items", "problem": Phrase(
            "problem.access.check.repeated", f"repeated: {names}", {"names": names})})
    return errors


def _check_period(start: date, end: date, new_start: bool = True) -> list[dict[str, Any]]:
    longest = get_settings().access_max_period_days
    if end < start:
        return [{"field": "period_end", "problem": Phrase(
            "problem.access.check.period_reversed", "the period ends before it starts")}]
    if new_start and start < _today():
        return [{"field": "period_start", "problem": Phrase(
            "problem.access.check.period_past", "the period cannot start in the past")}]
    days = (end - start).days + 1
    if days > longest:
        return [{"field": "period_end", "problem": Phrase(
            "problem.access.check.period_long",
            f"the period of use is {days} days; at most {longest} are allowed",
            {"days": days, "longest": longest})}]
    return []


THE_APPLICATION = Phrase("phrase.the_application_subject", "The application")
THE_BUNDLE = Phrase("phrase.the_bundle_subject", "The bundle")
THE_REVISION = Phrase("phrase.the_revision_subject", "The revision")


def _refuse(errors: list[dict[str, Any]], what: Phrase = THE_APPLICATION) -> None:
    """Refuse with every reason: each entry's ``problem`` is a Phrase, so the detail and the
    entries are in the caller's language (kernel.problems)."""
    if errors:
        problems = Phrases(tuple(e["problem"] for e in errors), "semicolon")
        raise Invalid(f"{what} cannot be accepted: {problems}.", errors=errors,
                      key="problem.access.not_accepted",
                      params={"what": what, "problems": problems})


def find_duplicate(session: Session, department_id: int, resource_id: int,
                   items: Sequence[str], exclude: int | None = None) -> Application | None:
    """An active application of the same department for the same resource and items."""
    rows = session.exec(select(Application).where(
        Application.requester_department_id == department_id,
        Application.resource_id == resource_id,
        col(Application.state).in_([s.value for s in ACTIVE_STATES])))
    return next((a for a in rows if set(a.items) == set(items) and a.id != exclude), None)


def _ordered_items(resource: Resource, items: Sequence[str]) -> list[str]:
    position = {i.name: i.position for i in resource.items}
    return sorted(items, key=lambda n: position[n])


def file_application(session: Session, who: Principal, data: ApplicationIn,
                     bundle: Bundle | None = None) -> Application:
    """File one application; unconditional resources are approved at once (delivery follows
    as soon as the transaction commits: ``access.delivery.deliver``)."""
    _require_requester(who)
    resource = get_resource(session, data.resource)
    _refuse(check_application(session, who, resource, data))
    _refuse_duplicate(session, who, resource, data.items)
    app = _new_application(who, resource, data, bundle)
    session.add(app)
    session.flush()
    record(session, app, "file", S.submitted, who.actor, _filing_detail(app),
           event="application.filed")
    if resource.sharing_type is SharingType.unconditional:
        _approve(session, app, None, ApprovalIn(), Action.auto_approve)
    return app


def _refuse_duplicate(session: Session, who: Principal, resource: Resource,
                      items: Sequence[str]) -> None:
    dup = find_duplicate(session, who.department_id, resource.id or 0, items)
    if dup is not None:
        state = Phrase(f"state.{dup.state.value}", dup.state.value)
        raise Conflict(f"Your department already has application {dup.id} ({state}) "
                       f"for these items of {resource.code}; follow that one instead.",
                       existing_application=dup.id,
                       key="problem.access.duplicate_application",
                       params={"id": dup.id, "state": state, "code": resource.code})


def _new_application(who: Principal, resource: Resource, data: ApplicationIn,
                     bundle: Bundle | None) -> Application:
    return Application(
        bundle_id=bundle.id if bundle else None, resource_id=resource.id or 0,
        provider_department_id=resource.provider_id, requester_department_id=who.department_id,
        requester_user_id=who.user_id, sharing_type=resource.sharing_type, state=S.submitted,
        purpose=data.purpose, legal_basis=data.legal_basis,
        items=_ordered_items(resource, data.items), period_start=data.period_start or _today(),
        period_end=data.period_end, delivery_method=data.delivery_method,
        file_format=data.file_format, schedule=data.schedule, due_date=_due_date(),
        aggregate=data.aggregate.model_dump(mode="json") if data.aggregate else None)


def _filing_detail(app: Application) -> dict[str, Any]:
    return {"purpose": app.purpose, "legal_basis": app.legal_basis, "items": app.items,
            "period": [app.period_start.isoformat(), app.period_end.isoformat()],
            "delivery_method": app.delivery_method.value, "schedule": app.schedule.value}


def _due_date() -> date:
    cal = WorkCalendar.from_settings()
    return cal.add_working_days(cal.local_date(utcnow()),
                                get_settings().access_reply_working_days)


# --- bundles ----------------------------------------------------------------------------------

def file_bundle(session: Session, who: Principal, data: BundleIn) -> Bundle:
    """All parts are checked first: a bundle is filed whole or not at all."""
    _require_requester(who)
    resources = [get_resource(session, p.resource) for p in data.parts]
    errors = []
    for i, (part, resource) in enumerate(zip(data.parts, resources, strict=True)):
        errors += [{"part": i, **e} for e in check_application(session, who, resource, part)]
        dup = find_duplicate(session, who.department_id, resource.id or 0, part.items)
        if dup is not None:
            errors.append({"part": i, "field": "items", "existing_application": dup.id,
                           "problem": Phrase("problem.access.check.duplicate",
                                             f"duplicate of active application {dup.id}",
                                             {"id": dup.id})})
    codes = [r.code for r in resources]
    if len(set(codes)) != len(codes):
        errors.append({"field": "parts", "problem": Phrase(
            "problem.access.check.resource_twice", "a resource appears in two parts")})
    _refuse(errors, THE_BUNDLE)
    bundle = Bundle(title=data.title, requester_department_id=who.department_id,
                    requester_user_id=who.user_id,
                    coordinator_department_id=resources[0].provider_id)
    session.add(bundle)
    session.flush()
    publish(session, Event("bundle.filed", who.actor, {"bundle": str(bundle.id)},
                           {"title": data.title, "resources": codes}))
    for part in data.parts:
        file_application(session, who, part, bundle)
    return bundle


def bundle_parts(session: Session, bundle_id: int) -> list[Application]:
    return list(session.exec(select(Application).where(Application.bundle_id == bundle_id)
                             .order_by(col(Application.id))))


def get_bundle(session: Session, who: Principal, bundle_id: int) -> Bundle:
    bundle = session.get(Bundle, bundle_id)
    if bundle is None:
        raise NotFound(f"No bundle {bundle_id}.",
                       key="problem.access.no_bundle", params={"bundle_id": bundle_id})
    parts = bundle_parts(session, bundle_id)
    if who.department_id != bundle.requester_department_id and \
            not any(can_view(session, who, p) for p in parts):
        raise Forbidden(f"Bundle {bundle_id} is between other departments.",
                        key="problem.access.bundle_not_yours", params={"bundle_id": bundle_id})
    return bundle


def _maybe_complete_bundle(session: Session, app: Application, actor: Actor) -> None:
    if app.bundle_id is None:
        return
    bundle = session.get(Bundle, app.bundle_id)
    if bundle is None or bundle.completed_at is not None:
        return
    parts = bundle_parts(session, app.bundle_id)
    done = CLOSED_STATES | {S.delivered}
    if all(p.state in done for p in parts):
        bundle.completed_at = utcnow()
        session.add(bundle)
        publish(session, Event("bundle.completed", actor, {"bundle": str(bundle.id)},
                               {"parts": {str(p.id): p.state.value for p in parts}}))


def remind_bundle(session: Session, who: Principal, bundle_id: int, note: str) -> list[int]:
    """The coordinating department reminds every provider whose part is still pending."""
    get_bundle(session, who, bundle_id)
    reminded = []
    for part in bundle_parts(session, bundle_id):
        if part.state in (S.submitted, S.conditions_pending, S.returned):
            coordinate(session, who, part.id or 0, CoordinationIn(kind="remind", note=note))
            reminded.append(part.id or 0)
    if not reminded:
        raise Conflict(f"No part of bundle {bundle_id} is waiting for a decision.",
                       key="problem.access.bundle_nothing_waiting", params={"bundle_id": bundle_id})
    return reminded


# --- decisions --------------------------------------------------------------------------------

def approve(session: Session, who: Principal, app_id: int, data: ApprovalIn) -> Application:
    """Approve (or, with conditions, approve subject to the requester accepting them)."""
    app = load(session, app_id, lock=True)
    action = Action.set_conditions if data.conditions else Action.approve
    next_state(app.state, action, parties_of(session, who, app), app_id=app.id)  # fail fast
    return _approve(session, app, who, data, action)


def _approve(session: Session, app: Application, who: Principal | None, data: ApprovalIn,
             action: Action) -> Application:
    items = resource_items(session, app)
    plan = masking.tighten(items, masking.default_plan(items, app.items), data.masking)
    _check_filters(items, data.row_filters)
    _check_quasi_identifiers(plan, data.quasi_identifiers)
    _check_risk_settings(plan, data.quasi_identifiers, data.sensitive_items, data.k_min,
                         data.max_suppression)
    app.masking_plan = masking.plan_json(plan)
    app.row_filters = [f.model_dump(mode="json") for f in data.row_filters]
    app.quasi_identifiers, app.k_min = list(data.quasi_identifiers), data.k_min
    app.max_suppression, app.sensitive_items = data.max_suppression, list(data.sensitive_items)
    app.conditions = list(data.conditions)
    app.decided_at = utcnow()
    payload = {"masking_plan": app.masking_plan, "row_filters": app.row_filters,
               "quasi_identifiers": app.quasi_identifiers, "k_min": app.k_min,
               "max_suppression": app.max_suppression, "sensitive_items": app.sensitive_items,
               "conditions": app.conditions, "note": data.note}
    event = "application.conditions_set" if action is Action.set_conditions else \
        "application.approved"
    move(session, app, action, who, payload, event=event)
    if app.state is S.approved:
        _activate(session, app)
    return app


def _check_filters(items: Sequence[DataItem], filters: Sequence[masking.RowFilter]) -> None:
    masking.filter_sql(filters, {i.name: (quote(i.name), i.type) for i in items})


def _check_quasi_identifiers(plan: masking.Plan, names: Sequence[str]) -> None:
    delivered = {n for n, r in plan.items() if r.rule is not MaskingRule.suppress}
    unknown = [n for n in names if n not in delivered]
    if unknown:
        names = ", ".join(unknown)
        raise Invalid(f"Quasi-identifiers must be delivered columns; not delivered: {names}.",
                      key="problem.access.qi_not_delivered", params={"names": names})


def _check_risk_settings(plan: masking.Plan, quasi_identifiers: Sequence[str],
                         sensitive: Sequence[str], k_min: int | None,
                         max_suppression: float | None) -> None:
    delivered = {n for n, r in plan.items() if r.rule is not MaskingRule.suppress}
    unknown = [n for n in sensitive if n not in delivered]
    if unknown:
        names = ", ".join(unknown)
        raise Invalid(f"Sensitive items must be delivered columns; not delivered: {names}.",
                      key="problem.access.sensitive_not_delivered", params={"names": names})
    both = sorted(set(sensitive) & set(quasi_identifiers))
    if both:
        names = ", ".join(both)
        raise Invalid(f"An item is either a quasi-identifier or sensitive, not both: {names}.",
                      key="problem.access.qi_and_sensitive", params={"names": names})
    if max_suppression is not None and (k_min is None or not quasi_identifiers):
        raise Invalid("Suppressing outliers needs quasi-identifiers and k_min: the outliers "
                      "are the rows of classes smaller than k_min.")


def _activate(session: Session, app: Application) -> Grant:
    """Approval takes effect: the grant, and the requester's pseudonym key if needed."""
    app.approved_at = utcnow()
    if any(r.get("rule") == MaskingRule.pseudonymize.value for r in app.masking_plan.values()):
        pseudonym.department_key(session, app.requester_department_id)  # created on first use
    cal = WorkCalendar.from_settings()
    start = datetime.combine(app.period_start, time.min, cal.tz).astimezone(UTC)
    grant = Grant(application_id=app.id or 0, requester_department_id=app.requester_department_id,
                  resource_id=app.resource_id, schedule=app.schedule,
                  valid_from=max(utcnow(), start),
                  valid_until=cal.end_of_day(app.period_end))
    session.add_all([app, grant])
    session.flush()
    return grant


def accept_conditions(session: Session, who: Principal, app_id: int) -> Application:
    app = load(session, app_id, lock=True)
    move(session, app, Action.accept_conditions, who,
          {"conditions": app.conditions, "accepted_by": who.username},
          event="application.conditions_accepted")
    _activate(session, app)
    return app


def return_application(session: Session, who: Principal, app_id: int,
                       data: ReturnIn) -> Application:
    """Return for changes, listing every deficiency at once (一次性告知)."""
    app = load(session, app_id, lock=True)
    next_state(app.state, Action.return_, parties_of(session, who, app), app_id=app.id)
    codes = [d.code for d in data.deficiencies]
    detail: dict[str, Any] = {"deficiencies": [d.model_dump(mode="json")
                                               for d in data.deficiencies]}
    if app.returns == 0:
        app.first_return_codes = [c.value for c in codes]
        detail["snapshot"] = _snapshot(app)
    else:
        detail |= _notice_check(session, app, codes)
        if detail["repeated"] or detail["missed_at_first"]:
            app.notice_violations += 1
    app.returns += 1
    move(session, app, Action.return_, who, detail, event="application.returned")
    return app


def _snapshot(app: Application) -> dict[str, Any]:
    return {f: _jsonable(getattr(app, f)) for f in _REVISABLE}


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return value.value if hasattr(value, "value") else value


def _notice_check(session: Session, app: Application,
                  codes: Sequence[Deficiency]) -> dict[str, Any]:
    """One-time notice: a later return may not raise a problem that existed at the first.

    ``repeated``: codes already listed at the first return (the problem persists or was
    raised again); ``missed_at_first``: codes about a part of the application unchanged since
    the first return, yet not listed then (the approver should have said so the first time).
    """
    first = set(app.first_return_codes)
    first_step = next((s for s in steps(session, app.id or 0)
                       if s.action == Action.return_.value), None)
    snapshot: dict[str, Any] = first_step.detail.get("snapshot", {}) if first_step else {}
    now = _snapshot(app)
    repeated = [c.value for c in codes if c.value in first]
    missed = [c.value for c in codes if c.value not in first and DEFICIENCY_FIELDS[c]
              and all(snapshot.get(f) == now[f] for f in DEFICIENCY_FIELDS[c])]
    return {"repeated": repeated, "missed_at_first": missed}


def resubmit(session: Session, who: Principal, app_id: int, data: RevisionIn) -> Application:
    app = load(session, app_id, lock=True)
    next_state(app.state, Action.resubmit, parties_of(session, who, app), app_id=app.id)
    resource = session.get(Resource, app.resource_id)
    assert resource is not None
    _refuse(check_application(session, who, resource, data, app), THE_REVISION)
    changes = _revise(resource, app, data)
    if "items" in changes:
        dup = find_duplicate(session, app.requester_department_id, app.resource_id, app.items,
                             exclude=app.id)
        if dup is not None:
            raise Conflict(f"Application {dup.id} already covers these items.",
                           existing_application=dup.id,
                           key="problem.access.already_covered", params={"id": dup.id})
    app.revision += 1
    app.due_date = _due_date()  # a resubmission starts the provider's clock again
    move(session, app, Action.resubmit, who, {"changes": changes, "note": data.note},
          event="application.resubmitted")
    return app


def _revise(resource: Resource, app: Application, data: RevisionIn) -> dict[str, Any]:
    changes = {}
    for name in _REVISABLE:
        new = getattr(data, name)
        if new is None:
            continue
        if name == "items":
            new = _ordered_items(resource, new)
        old = getattr(app, name)
        if _jsonable(new) != _jsonable(old):
            changes[name] = [_jsonable(old), _jsonable(new)]
            setattr(app, name, new)
    return changes


def reject(session: Session, who: Principal, app_id: int, data: RejectIn) -> Application:
    app = load(session, app_id, lock=True)
    app.decided_at = utcnow()
    move(session, app, Action.reject, who, data.model_dump(mode="json"),
          event="application.rejected")
    return app


def withdraw(session: Session, who: Principal, app_id: int, note: str) -> Application:
    app = load(session, app_id, lock=True)
    move(session, app, Action.withdraw, who, {"note": note}, event="application.withdrawn")
    return app


def reassign(session: Session, who: Principal, app_id: int, assignee: str,
             note: str) -> Application:
    app = load(session, app_id, lock=True)
    next_state(app.state, Action.reassign, parties_of(session, who, app), app_id=app.id)
    user = session.exec(select(User).where(User.username == assignee)).first()
    if user is None or user.department_id != app.provider_department_id \
            or Role.approver not in user.roles:
        raise Invalid(f"'{assignee}' is not an approver of the provider department.",
                      key="problem.access.not_an_approver",
                      params={"assignee": assignee})
    app.assignee_user_id = user.id
    app.reassignments += 1
    move(session, app, Action.reassign, who, {"assignee": assignee, "note": note},
          event="application.reassigned")
    return app


def escalate(session: Session, who: Principal, app_id: int, note: str) -> Application:
    """Send an overdue application to the data bureau, which coordinates but never decides."""
    app = load(session, app_id, lock=True)
    next_state(app.state, Action.escalate, parties_of(session, who, app), app_id=app.id)
    if not is_overdue(app):
        raise Conflict(f"Application {app_id} is not overdue: the provider's reply is due by "
                       f"{app.due_date}. Escalate after that date.",
                       key="problem.access.not_overdue",
                       params={"app_id": app_id, "due_date": app.due_date})
    app.escalations += 1
    app.escalated_at = utcnow()
    move(session, app, Action.escalate, who, {"note": note, "due_date": str(app.due_date)},
          event="application.escalated")
    return app


def coordinate(session: Session, who: Principal, app_id: int,
               data: CoordinationIn) -> Application:
    """The bureau (after escalation) or a bundle's coordinator records coordination: a
    reminder, a meeting convened, its outcome. It never changes the provider's decision."""
    app = load(session, app_id, lock=True)
    parties = parties_of(session, who, app)
    next_state(app.state, Action.coordinate, parties, app_id=app.id)
    if Party.bureau not in parties and data.kind != "remind":
        raise Forbidden("A bundle's coordinator can only remind; meetings and their outcome "
                        "are recorded by the data bureau.")
    if Party.bureau in parties and Party.coordinator not in parties and app.escalated_at is None:
        raise Conflict(f"Application {app_id} has not been escalated to the data bureau.",
                       key="problem.access.not_escalated", params={"app_id": app_id})
    move(session, app, Action.coordinate, who, data.model_dump(),
          event="application.coordinated")
    return app


def tighten(session: Session, who: Principal, app_id: int, data: TightenIn) -> Application:
    """The provider tightens the plan of a granted application (e.g. after a blocked delivery);
    it applies from the next package on."""
    app = load(session, app_id, lock=True)
    next_state(app.state, Action.tighten, parties_of(session, who, app), app_id=app.id)
    items = resource_items(session, app)
    plan = masking.tighten(items, masking.plan_from_json(app.masking_plan), data.masking)
    filters = _tightened_filters(items, app, data)
    qi = list(data.quasi_identifiers) if data.quasi_identifiers is not None \
        else app.quasi_identifiers
    if not set(app.quasi_identifiers) <= set(qi):
        raise Invalid("Quasi-identifiers can only be added.")
    _check_quasi_identifiers(plan, qi)
    if data.k_min is not None and app.k_min is not None and data.k_min < app.k_min:
        raise Invalid(f"k_min can only be raised (now {app.k_min}).",
                      key="problem.access.k_min_only_up", params={"k_min": app.k_min})
    k_min = data.k_min if data.k_min is not None else app.k_min
    sensitive = list(data.sensitive_items) if data.sensitive_items is not None \
        else list(app.sensitive_items)
    # Suppressing outliers never loosens: every delivered class still has k_min rows.
    suppression = data.max_suppression if data.max_suppression is not None \
        else app.max_suppression
    _check_risk_settings(plan, qi, sensitive, k_min, suppression)
    app.masking_plan, app.row_filters, app.quasi_identifiers = masking.plan_json(plan), filters, qi
    app.k_min, app.sensitive_items, app.max_suppression = k_min, sensitive, suppression
    app.delivery_blocked = None
    move(session, app, Action.tighten, who,
          {"masking_plan": app.masking_plan, "row_filters": filters, "quasi_identifiers": qi,
           "k_min": app.k_min, "max_suppression": suppression, "sensitive_items": sensitive},
          event="application.plan_tightened")
    return app


def _tightened_filters(items: Sequence[DataItem], app: Application,
                       data: TightenIn) -> list[dict[str, Any]]:
    if data.row_filters is None:
        return app.row_filters
    new = [f.model_dump(mode="json") for f in data.row_filters]
    missing = [f for f in app.row_filters if f not in new]
    if missing:
        raise Invalid("Row filters can only be added to (a filter was removed): "
                      f"{missing[0]['column']} {missing[0]['op']}.",
                      key="problem.access.filters_only_added",
                      params={"column": missing[0]['column'], "op": missing[0]['op']})
    _check_filters(items, data.row_filters)
    return new


# --- grants -----------------------------------------------------------------------------------

def grant_of(session: Session, app: Application) -> Grant | None:
    return session.exec(select(Grant).where(Grant.application_id == app.id)).first()


def get_grant(session: Session, who: Principal, grant_id: int) -> tuple[Grant, Application]:
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"No grant {grant_id}.",
                       key="problem.access.no_grant", params={"grant_id": grant_id})
    return grant, get_application(session, who, grant.application_id)


def revoke(session: Session, who: Principal, grant_id: int, reason: str) -> Grant:
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"No grant {grant_id}.",
                       key="problem.access.no_grant", params={"grant_id": grant_id})
    app = load(session, grant.application_id, lock=True)
    # Like every move, a revocation by anyone but the provider is an illegal move (409).
    next_state(app.state, Action.revoke, parties_of(session, who, app), app_id=app.id)
    grant.revoked_at, grant.revoked_by, grant.revoke_reason = utcnow(), who.user_id, reason
    session.add(grant)
    move(session, app, Action.revoke, who, {"grant": grant.id, "reason": reason},
          event="grant.revoked")
    return grant


def expire_due(session: Session, now: datetime | None = None) -> list[int]:
    """End grants whose period of use is over (the scheduler calls this)."""
    now = now or utcnow()
    rows = session.exec(select(Grant, Application)
                        .join(Application, col(Application.id) == Grant.application_id)
                        .where(col(Grant.valid_until) <= now,
                               col(Application.state).in_([S.approved.value,
                                                           S.delivered.value]))).all()
    for grant, app in rows:
        move(session, app, Action.expire, None, {"grant": grant.id,
                                                  "valid_until": grant.valid_until.isoformat()},
              event="grant.expired")
    return [app.id or 0 for _, app in rows]


def grant_active(grant: Grant, app: Application, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return app.state is S.delivered and grant.revoked_at is None and \
        grant.valid_from - timedelta(seconds=1) <= now < grant.valid_until


def list_grants(session: Session, who: Principal, limit: int = 100) -> list[Grant]:
    query = select(Grant).join(Application, col(Application.id) == Grant.application_id)
    if not policy.is_data_bureau(session, who):
        query = query.where((col(Application.requester_department_id) == who.department_id)
                            | (col(Application.provider_department_id) == who.department_id))
    return list(session.exec(query.order_by(col(Grant.id).desc()).limit(limit)))
