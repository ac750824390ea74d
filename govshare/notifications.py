"""Notifications: an in-app inbox per person, and optionally e-mail over SMTP.

Domain events (kernel.events) are turned into notifications for the people who must act or
want to know, in the same transaction as the change they are about:

* a new, resubmitted or reassigned application → the provider's approvers;
* a return, an approval (with or without conditions), a rejection, a delivery → the
  requesting department's requesters;
* a rectification notice issued → the department's publishers;
* a failed quality run → the provider's publishers;
* a reply due within two working days, and an overdue one → the provider's approvers and the
  data bureau's auditors (``sweep_deadlines``, the hourly ``notifications.deadlines`` job,
  at most once a day per application).

Texts are message-catalogue keys with parameters, shown in the reader's language. When
``GOVSHARE_SMTP_HOST`` is set, each notification is also mailed to the person's address by a
``notifications.mail`` job enqueued in the same transaction (so only once it commits: a
rolled-back change must not have told anyone).
"""

from __future__ import annotations

import logging
import smtplib
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import JSON, Column, event
from sqlmodel import Field, Session, SQLModel, col, func, select

from kernel import jobs
from kernel.calendar import WorkCalendar
from kernel.db import UTCDateTime, utcnow
from kernel.events import Event
from kernel.identity import Department, DepartmentKind, Role, User, UserRole
from kernel.settings import get_settings

log = logging.getLogger("govshare.notifications")


class Notification(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=48)  # the catalogue key is "notify.<kind>"
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    link: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                          nullable=False))
    read_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


# event type → (notification kind, who is told)
_APPROVERS, _REQUESTERS = "provider approvers", "requesting requesters"
_ROUTES: dict[str, tuple[str, str]] = {
    "application.filed": ("filed", _APPROVERS),
    "application.resubmitted": ("resubmitted", _APPROVERS),
    "application.reassigned": ("reassigned", _APPROVERS),
    "application.returned": ("returned", _REQUESTERS),
    "application.approved": ("approved", _REQUESTERS),
    "application.conditions_set": ("conditions_set", _REQUESTERS),
    "application.rejected": ("rejected", _REQUESTERS),
    "delivery.completed": ("delivered", _REQUESTERS),
}


def _users(session: Session, department_id: int | None, role: Role) -> list[int]:
    query = select(User.id).join(UserRole, UserRole.user_id == User.id).where(  # type: ignore[arg-type]
        UserRole.role == role, col(User.is_active).is_(True))
    if department_id is not None:
        query = query.where(User.department_id == department_id)
    return [u for u in session.exec(query) if u is not None]


def _bureau_auditors(session: Session) -> list[int]:
    bureaus = session.exec(select(Department.id).where(
        Department.kind == DepartmentKind.bureau)).all()
    return [u for d in bureaus for u in _users(session, d, Role.auditor)]


def notify(session: Session, user_ids: list[int], kind: str, params: dict[str, Any],
           link: str) -> list[Notification]:
    made = [Notification(user_id=u, kind=kind, params=params, link=link)
            for u in dict.fromkeys(user_ids)]
    session.add_all(made)
    if made and get_settings().smtp_host:
        pending: list[Notification] = session.info.setdefault("govshare.mail", [])
        pending.extend(made)
    return made


def on_event(session: Session, ev: Event) -> None:
    """The events subscriber (wired by govshare.wiring)."""
    if ev.type in _ROUTES:
        _application_event(session, ev, *_ROUTES[ev.type])
    elif ev.type in ("notice.issued", "notice.closed"):
        _notice_event(session, ev)
    elif ev.type == "quality.run_finished" and ev.subjects.get("status") == "failed":
        from catalog.models import Resource

        code = ev.subjects.get("resource", "")
        resource = session.exec(select(Resource).where(Resource.code == code)).first()
        if resource is not None:
            notify(session, _users(session, resource.provider_id, Role.publisher),
                   "run_failed", {"resource": resource.name}, f"/catalog/{code}")


def _notice_event(session: Session, ev: Event) -> None:
    """A rectification notice issued (its department's publishers are told where to answer)
    or closed by a passing re-run (they and the auditor who issued it are told)."""
    from catalog.models import Resource
    from quality.models import RectificationNotice

    notice = session.get(RectificationNotice, int(ev.subjects.get("notice", 0)))
    if notice is None:
        return
    resource = session.get(Resource, notice.resource_id)
    params = {"id": notice.id, "resource": resource.name if resource else "",
              "deadline": str(notice.deadline)}
    publishers = _users(session, notice.department_id, Role.publisher)
    if ev.type == "notice.issued":
        notify(session, publishers, "notice_issued", params, f"/notices#notice-{notice.id}")
    else:
        notify(session, [*publishers, notice.issued_by], "notice_closed", params,
               f"/quality/notices/{notice.id}")


def _application_event(session: Session, ev: Event, kind: str, audience: str) -> None:
    from access.models import Application
    from catalog.models import Resource

    try:
        app_id = int(ev.subjects.get("application", 0))
    except ValueError:  # subjects are free-form ids: not an application number of ours
        return
    app = session.get(Application, app_id)
    if app is None:
        return
    resource = session.get(Resource, app.resource_id)
    params = {"id": app.id, "resource": resource.name if resource else ""}
    if audience == _APPROVERS:
        users = _users(session, app.provider_department_id, Role.approver)
    else:
        users = _users(session, app.requester_department_id, Role.requester)
    notify(session, users, kind, params, f"/applications/{app.id}")


def sweep_deadlines(session: Session, today: date | None = None) -> int:
    """Replies due within two working days, and overdue ones: tell the provider's approvers
    (and, when overdue, the data bureau) once a day per application and kind; and overdue
    rectification notices (the department's publishers and the bureau)."""
    from access.models import Application, ApplicationState
    from catalog.models import Resource

    cal = WorkCalendar.from_settings()
    today = today or cal.local_date(utcnow())
    soon = cal.add_working_days(today, 2)
    made = 0
    apps = session.exec(select(Application).where(
        Application.state == ApplicationState.submitted,
        col(Application.due_date).is_not(None), col(Application.due_date) <= soon)).all()
    for app in apps:
        assert app.due_date is not None
        kind = "overdue" if app.due_date < today else "due_soon"
        link = f"/applications/{app.id}"
        told = session.exec(select(Notification.params).where(
            Notification.kind == kind, Notification.link == link)).all()
        if any(p.get("day") == today.isoformat() for p in told):
            continue  # once a day
        users = _users(session, app.provider_department_id, Role.approver)
        if kind == "overdue":
            users += _bureau_auditors(session)
        resource = session.get(Resource, app.resource_id)
        made += len(notify(session, users, kind, {
            "id": app.id, "resource": resource.name if resource else "",
            "due": str(app.due_date), "day": today.isoformat()}, link))
    return made + _sweep_notices(session, today)


def _sweep_notices(session: Session, today: date) -> int:
    """Rectification notices past their deadline and not closed: tell the department's
    publishers and the data bureau, once a day per notice."""
    from catalog.models import Resource
    from quality.models import NoticeStatus, RectificationNotice

    made = 0
    late = session.exec(select(RectificationNotice).where(
        RectificationNotice.status != NoticeStatus.closed,
        col(RectificationNotice.deadline) < today)).all()
    for notice in late:
        link = f"/quality/notices/{notice.id}"
        told = session.exec(select(Notification.params).where(
            Notification.kind == "notice_overdue", Notification.link == link)).all()
        if any(p.get("day") == today.isoformat() for p in told):
            continue  # once a day
        resource = session.get(Resource, notice.resource_id)
        users = _users(session, notice.department_id, Role.publisher) + \
            _bureau_auditors(session)
        made += len(notify(session, users, "notice_overdue", {
            "id": notice.id, "resource": resource.name if resource else "",
            "deadline": str(notice.deadline), "day": today.isoformat()}, link))
    return made


def unread(session: Session, user_id: int) -> int:
    return int(session.exec(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, col(Notification.read_at).is_(None))).one())


def inbox(session: Session, user_id: int, limit: int = 100) -> list[Notification]:
    return list(session.exec(select(Notification).where(Notification.user_id == user_id)
                             .order_by(col(Notification.id).desc()).limit(limit)))


def mark_read(session: Session, user_id: int) -> None:
    now = utcnow()
    for n in session.exec(select(Notification).where(Notification.user_id == user_id,
                                                     col(Notification.read_at).is_(None))):
        n.read_at = now
        session.add(n)


# --- e-mail -------------------------------------------------------------------------------------

def _before_commit(session: Session) -> None:
    """Resolve the addresses while the transaction can still write, and enqueue the mail as a
    job in it: a ``govshare worker`` sends it once the change committed (never before, and
    never for a rolled-back change), retrying a mail server that is away."""
    pending: list[Notification] = session.info.pop("govshare.mail", [])
    mails = []
    for n in pending:
        user = session.get(User, n.user_id)
        if user is not None and user.email:
            mails.append([user.email, n.kind, dict(n.params), n.link])
    if mails:
        jobs.enqueue(session, MAIL, {"mails": mails})


def _after_rollback(session: Session) -> None:
    session.info.pop("govshare.mail", None)


def send_mail(mails: list[tuple[str, str, dict[str, Any], str]]) -> None:
    """One message per notification, in Chinese with the English below (mail clients have
    no language switch); a failure raises, so the mail job is retried with backoff."""
    from govshare.web import i18n

    settings = get_settings()
    zh, en = i18n.Translator("zh-CN"), i18n.Translator("en")
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user and settings.smtp_password:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            for address, kind, params, link in mails:
                message = EmailMessage()
                message["From"], message["To"] = settings.smtp_from, address
                message["Subject"] = "[govshare] " + zh(f"notify.{kind}", **params)
                url = settings.public_url.rstrip("/") + link if settings.public_url else link
                message.set_content(f"{zh(f'notify.{kind}', **params)}\n{url}\n\n"
                                    f"{en(f'notify.{kind}', **params)}\n")
                smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("could not send %d notification mail(s): %s", len(mails),
                    type(exc).__name__)
        raise


def install() -> None:
    """Subscribe to the domain events and send mail after commits (idempotent)."""
    from kernel import events

    events.subscribe(on_event)
    if not event.contains(Session, "before_commit", _before_commit):
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_soft_rollback", lambda s, _t: _after_rollback(s))


# --- jobs (kernel/jobs.py, run by `govshare worker`) -----------------------------------------

DEADLINES, MAIL = "notifications.deadlines", "notifications.mail"


@jobs.handler(DEADLINES, max_attempts=1)
def _deadlines(_payload: dict[str, Any]) -> None:
    from kernel import db

    with db.session_scope() as session:
        sweep_deadlines(session)


@jobs.handler(MAIL, max_attempts=5)
def _mail(payload: dict[str, Any]) -> None:
    send_mail([(m[0], m[1], m[2], m[3]) for m in payload["mails"]])


def declare_schedules(interval: float = 3600) -> None:
    """Replies due soon or overdue, hourly (once a day per application)."""
    jobs.every(DEADLINES, DEADLINES, timedelta(seconds=interval))
