"""Administrative actions, one function each, every one an entry of the signed log.

The API (govshare.admin), the admin console (govshare.web.pages.admin) and the CLI all call
these, so an action leaves the same trace whichever way it is made; the CLI acts as
``OPERATOR`` (someone with shell access to the server, not a signed-in user).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from govshare.signin import passwords
from kernel import identity, jobs
from kernel.events import Actor, Event, publish
from kernel.identity import AdminLevel, ApiToken, Department, DepartmentKind, Role, User
from kernel.jobs import Job
from kernel.problems import Invalid
from translog import service as log_service
from translog.models import LogKey

# The log knows two kinds of actor, users and the system; an operator's CLI action is the
# system's, marked ``via: cli`` among the subjects.
OPERATOR = Actor(user_id=None, department_id=None, kind="system")


def _log(session: Session, actor: Actor, kind: str, subjects: dict[str, str],
         payload: dict[str, Any] | None = None) -> None:
    if actor is OPERATOR:
        subjects = {**subjects, "via": "cli"}
    publish(session, Event(type=kind, actor=actor, subjects=subjects, payload=payload or {}))


def create_department(session: Session, actor: Actor, *, code: str, name_zh: str, name_en: str,
                      kind: DepartmentKind = DepartmentKind.line,
                      level: AdminLevel = AdminLevel.municipal, parent: str | None = None,
                      credit_code: str | None = None, commissioner: str | None = None,
                      contact: str | None = None) -> Department:
    dept = identity.create_department(session, code=code, name_zh=name_zh, name_en=name_en,
                                      kind=kind, level=level, parent=parent,
                                      credit_code=credit_code, commissioner=commissioner,
                                      contact=contact)
    _log(session, actor, "department.created", {"department": dept.code},
         {"name_zh": name_zh, "kind": kind.value, "parent": parent or ""})
    return dept


def create_user(session: Session, actor: Actor, *, username: str, display_name: str,
                department: str | int, roles: list[Role], password: str | None = None,
                email: str | None = None) -> User:
    user = identity.create_user(session, username=username, display_name=display_name,
                                department=department, roles=roles)
    user.email = email or None
    if password:
        user.password_hash = _hash(password)
    _log(session, actor, "user.created", {"user": username},
         {"roles": sorted(r.value for r in roles), "department": str(department)})
    return user


def update_user(session: Session, actor: Actor, user: User, *, roles: list[Role],
                department: str | None = None) -> User:
    identity.set_roles(session, user, roles)
    if department:
        user.department_id = identity.get_department(session, department).id or 0
    session.add(user)
    _log(session, actor, "user.updated", {"user": user.username},
         {"roles": sorted(r.value for r in roles), "department": department or ""})
    return user


def set_active(session: Session, actor: Actor, user: User, active: bool) -> User:
    """Disabling refuses the user's sessions and tokens at once (both check is_active)."""
    user.is_active = active
    session.add(user)
    _log(session, actor, "user.enabled" if active else "user.disabled", {"user": user.username})
    return user


def _hash(plain: str) -> str:
    try:
        return passwords.hash_password(plain)
    except ValueError:
        raise Invalid(f"A password needs at least {passwords.MIN_LENGTH} characters.",
                      key="problem.password_short",
                      params={"n": passwords.MIN_LENGTH}) from None


def set_password(session: Session, actor: Actor, user: User, plain: str) -> User:
    user.password_hash = _hash(plain)
    session.add(user)
    _log(session, actor, "user.password_set", {"user": user.username})
    return user


def set_totp(session: Session, actor: Actor, user: User, secret: str | None) -> User:
    assert user.id is not None
    user.totp_secret = identity.seal_totp(user.id, secret) if secret else None
    session.add(user)
    _log(session, actor, "user.totp_enabled" if secret else "user.totp_disabled",
         {"user": user.username})
    return user


def issue_token(session: Session, actor: Actor, user: User, *, name: str,
                days: int) -> tuple[ApiToken, str]:
    token, plain = identity.issue_token(session, user, name=name, days=days)
    _log(session, actor, "token.issued", {"user": user.username, "token": str(token.id)},
         {"days": days, "name": name})
    return token, plain


def revoke_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    token = identity.revoke_token(session, token_id)
    _log(session, actor, "token.revoked", {"token": str(token_id)})
    return token


def retry_job(session: Session, actor: Actor, job_id: int) -> Job:
    """Run a failed or dead background job again now (kernel.jobs.retry)."""
    job = jobs.retry(session, job_id)
    _log(session, actor, "job.retried", {"job": str(job_id)},
         {"kind": job.kind, "last_error": (job.error or "")[:500]})
    return job


def rotate_log_key(session: Session, actor: Actor) -> LogKey:
    """Start a new log signing key and retire the current one (which stays published, so
    older heads keep verifying). The rotation is itself the log entry ``log.key_rotated``,
    signed with the new key and naming the previous one."""
    return log_service.rotate_key(session, actor)
