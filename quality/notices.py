"""Rectification notices (整改通知): issued by the data bureau to a department about one of
its resources, answered by the department's publishers once fixed, and closed only when a
re-run shows the named dimension and expectations now pass. Every step is a
``NoticeEvent`` (who, when) and a domain event for the access log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from catalog.service import get_resource
from kernel.auth import Principal
from kernel.calendar import WorkCalendar
from kernel.db import utcnow
from kernel.events import Actor, Event, publish
from kernel.identity import Department, Role
from kernel.policy import is_data_bureau, require_data_bureau
from kernel.problems import Conflict, Forbidden, Invalid, NotFound, Phrase
from quality import queue
from quality.models import (
    NoticeEvent,
    NoticeStatus,
    QualityRun,
    RectificationNotice,
    RunTrigger,
)
from quality.rules import Dimension


def issue(session: Session, who: Principal, code: str, *, problem: str, deadline: date,
          dimension: str | None, rules: list[str], min_score: float,
          run_id: int | None) -> RectificationNotice:
    require_data_bureau(session, who, Phrase("phrase.bureau.issue_notices",
                                             "issues rectification notices"))
    resource = get_resource(session, code)
    if dimension is not None and dimension not in {d.value for d in Dimension}:
        raise Invalid(f"Unknown dimension '{dimension}'.",
                      key="problem.quality.unknown_dimension", params={"dimension": dimension})
    if deadline < utcnow().date():
        raise Invalid("The deadline is in the past.")
    if run_id is not None:
        run = session.get(QualityRun, run_id)
        if run is None or run.resource_id != resource.id:
            raise Invalid(f"Run {run_id} is not a run of {code}.",
                          key="problem.quality.run_not_of_resource",
                          params={"run_id": run_id, "code": code})
    notice = RectificationNotice(resource_id=resource.id or 0,
                                 department_id=resource.provider_id, problem=problem,
                                 dimension=dimension, min_score=min_score, rules=rules,
                                 deadline=deadline, issued_by=who.user_id, run_id=run_id)
    session.add(notice)
    session.flush()
    _record(session, notice, "issued", who.user_id, problem)
    _publish(session, "notice.issued", who.actor, notice, code,
             {"department": resource.provider_id, "deadline": deadline.isoformat(),
              "dimension": dimension, "rules": rules})
    return notice


def respond(session: Session, who: Principal, notice_id: int, response: str) -> QualityRun:
    """The department says it has fixed the problem: recorded, and a verifying run queued."""
    notice = get_notice(session, notice_id)
    if not who.has(Role.publisher) or who.department_id != notice.department_id:
        raise Forbidden("Only publishers of the department the notice is addressed to can "
                        "respond to it.")
    if notice.status is NoticeStatus.closed:
        raise Conflict(f"Notice {notice_id} is already closed.",
                       key="problem.quality.notice_closed",
                       params={"notice_id": notice_id})
    notice.status, notice.response = NoticeStatus.responded, response
    notice.responded_by, notice.responded_at = who.user_id, utcnow()
    session.add(notice)
    resource = get_resource(session, _code(session, notice))
    run = queue.enqueue(session, resource, RunTrigger.notice, requested_by=who.user_id,
                        notice_id=notice.id)
    _record(session, notice, "responded", who.user_id, response, run.id)
    _publish(session, "notice.responded", who.actor, notice, resource.code,
             {"run": run.id})
    return run


def verify_after_run(session: Session, run: QualityRun, outcomes: Sequence[Mapping[str, Any]],
                     dimensions: Mapping[str, float | None], overall: float) -> None:
    """Check every responded notice of the run's resource against a successful run."""
    pending = session.exec(select(RectificationNotice).where(
        RectificationNotice.resource_id == run.resource_id,
        RectificationNotice.status == NoticeStatus.responded)).all()
    for notice in pending:
        if notice.responded_at is None or run.queued_at < notice.responded_at:
            continue  # the run began before the fix: it proves nothing
        failing = still_failing(notice, outcomes, dimensions, overall)
        if failing:
            notice.status = NoticeStatus.open
            _record(session, notice, "verification_failed", None,
                    "Still failing: " + "; ".join(failing), run.id)
        else:
            notice.status, notice.closed_at, notice.closing_run_id = (
                NoticeStatus.closed, utcnow(), run.id)
            _record(session, notice, "closed", None, "Verified by a re-run.", run.id)
            _publish(session, "notice.closed", queue.SYSTEM, notice,
                     _code(session, notice), {"run": run.id})
        session.add(notice)


def still_failing(notice: RectificationNotice, outcomes: Sequence[Mapping[str, Any]],
                  dimensions: Mapping[str, float | None], overall: float) -> list[str]:
    """What the run shows is not fixed yet: named expectations that failed (or are gone),
    and the dimension (or overall) score below the notice's minimum."""
    by_rule = {str(o.get("rule")): o for o in outcomes}
    failing = [f"{rule} failed" if rule in by_rule else f"{rule} not evaluated"
               for rule in notice.rules if not by_rule.get(rule, {}).get("success")]
    if notice.dimension:
        value = dimensions.get(notice.dimension)
        if value is not None and value < notice.min_score:
            failing.append(f"{notice.dimension} {value} < {notice.min_score}")
    elif overall < notice.min_score:
        failing.append(f"overall {overall} < {notice.min_score}")
    return failing


def get_notice(session: Session, notice_id: int) -> RectificationNotice:
    notice = session.get(RectificationNotice, notice_id)
    if notice is None:
        raise NotFound(f"No rectification notice {notice_id}.",
                       key="problem.quality.no_notice",
                       params={"notice_id": notice_id})
    return notice


def visible_to(session: Session, who: Principal, notice: RectificationNotice) -> bool:
    return who.department_id == notice.department_id or sees_all(session, who)


def sees_all(session: Session, who: Principal) -> bool:
    return who.has(Role.leader) or is_data_bureau(session, who)


def timing(notice: RectificationNotice, now: datetime | None = None) -> dict[str, Any]:
    """Working days left to the deadline (negative once past it) and whether an unclosed
    notice is overdue, on the platform's working-day calendar."""
    if notice.status is NoticeStatus.closed:
        return {"working_days_left": None, "overdue": False}
    calendar = WorkCalendar.from_settings()
    today = calendar.local_date(now or utcnow())
    if notice.deadline >= today:
        left = _working_days(calendar, today, notice.deadline)
    else:
        left = -_working_days(calendar, notice.deadline, today)
    return {"working_days_left": left, "overdue": today > notice.deadline}


def _working_days(calendar: WorkCalendar, start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end``."""
    days, day = 0, start
    while day < end:
        day += timedelta(days=1)
        days += calendar.is_working_day(day)
    return days


def list_notices(session: Session, who: Principal, status: NoticeStatus | None,
                 department: str | None) -> list[RectificationNotice]:
    query = select(RectificationNotice).order_by(col(RectificationNotice.issued_at).desc())
    if status is not None:
        query = query.where(RectificationNotice.status == status)
    if department is not None:
        dept = session.exec(select(Department).where(Department.code == department)).first()
        query = query.where(RectificationNotice.department_id == (dept.id if dept else -1))
    if not sees_all(session, who):
        query = query.where(RectificationNotice.department_id == who.department_id)
    return list(session.exec(query))


def history(session: Session, notice: RectificationNotice) -> list[NoticeEvent]:
    return list(session.exec(select(NoticeEvent).where(NoticeEvent.notice_id == notice.id)
                             .order_by(col(NoticeEvent.id))))


def _record(session: Session, notice: RectificationNotice, action: str, actor: int | None,
            note: str, run_id: int | None = None) -> None:
    session.add(NoticeEvent(notice_id=notice.id or 0, action=action, actor_id=actor,
                            note=note, run_id=run_id))
    session.flush()


def _code(session: Session, notice: RectificationNotice) -> str:
    from catalog.models import Resource

    resource = session.get(Resource, notice.resource_id)
    assert resource is not None  # foreign key
    return resource.code


def _publish(session: Session, kind: str, actor: Actor, notice: RectificationNotice,
             code: str, payload: dict[str, Any]) -> None:
    publish(session, Event(kind, actor, {"notice": str(notice.id), "resource": code}, payload))
