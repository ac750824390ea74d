"""The admin console: departments, users and their roles, API tokens, the log's signing keys,
the background work and the settings in force. Every change goes through
govshare.administration, so it is an entry of the signed log like the API's and the CLI's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import SecretStr
from sqlmodel import col, func, select

from govshare import administration
from govshare.web.base import CheckedForm, PageRoute, page_user, redirect, render, text, texts
from kernel import identity, jobs
from kernel.auth import Principal
from kernel.db import session_scope, utcnow
from kernel.identity import AdminLevel, ApiToken, Department, DepartmentKind, Role, User
from kernel.problems import Invalid
from kernel.settings import get_settings

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Admin = Annotated[Principal, Depends(page_user(Role.admin))]


@router.get("/admin")
def admin_home(who: Admin) -> Response:
    return redirect("/admin/users")


def _departments() -> tuple[list[Department], dict[int | None, Department]]:
    with session_scope(write=False) as session:
        depts = identity.list_departments(session)
        session.expunge_all()
    return depts, {d.id: d for d in depts}


@router.get("/admin/departments")
def departments_page(request: Request, who: Admin) -> Response:
    depts, by_id = _departments()
    with session_scope(write=False) as session:
        counts = dict(session.exec(select(User.department_id, func.count())
                                   .group_by(col(User.department_id))).all())
    return render(request, "admin_departments.html", {
        "depts": depts, "by_id": by_id, "counts": counts, "kinds": list(DepartmentKind),
        "levels": list(AdminLevel)})


E = TypeVar("E", DepartmentKind, AdminLevel, jobs.View)


def _enum(cls: type[E], raw: str) -> E:
    try:
        return cls(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise Invalid(f"'{raw}' is not one of {allowed}.", key="problem.web.not_one_of",
                      params={"raw": raw, "allowed": allowed}) from None


@router.post("/admin/departments")
def create_department(request: Request, form: CheckedForm, who: Admin) -> Response:
    code, name_zh, name_en = text(form, "code"), text(form, "name_zh"), text(form, "name_en")
    if not (2 <= len(code) <= 16 and name_zh and name_en):
        raise Invalid("A department needs a code of 2 to 16 letters or digits and both names.")
    with session_scope() as session:
        administration.create_department(
            session, who.actor, code=code, name_zh=name_zh[:100], name_en=name_en[:200],
            kind=_enum(DepartmentKind, text(form, "kind", "line")),
            level=_enum(AdminLevel, text(form, "level", "municipal")),
            parent=text(form, "parent") or None, credit_code=text(form, "credit_code") or None,
            commissioner=text(form, "commissioner")[:100] or None,
            contact=text(form, "contact")[:200] or None)
    return redirect("/admin/departments?ok=department_created")


@router.get("/admin/users")
def users_page(request: Request, who: Admin) -> Response:
    depts, by_id = _departments()
    with session_scope(write=False) as session:
        users = list(session.exec(select(User).order_by(col(User.username))))
        for u in users:
            _ = u.roles  # load the links before the session closes
        session.expunge_all()
    return render(request, "admin_users.html", {"users": users, "depts": depts, "by_id": by_id,
                                                "roles": list(Role)})


def _roles(form: Any) -> list[Role]:
    values = texts(form, "roles")
    if not values or any(v not in Role.__members__ for v in values):
        raise Invalid("A user needs at least one role.")
    return [Role(v) for v in values]


@router.post("/admin/users")
def create_user(request: Request, form: CheckedForm, who: Admin) -> Response:
    username = text(form, "username")
    if not (2 <= len(username) <= 64) or not all(c.isalnum() or c in "_.-" for c in username) \
            or not username.isascii():
        raise Invalid("A user name has 2 to 64 letters, digits, '_', '.' or '-'.")
    display = text(form, "display_name")[:100] or username
    with session_scope() as session:
        administration.create_user(session, who.actor, username=username, display_name=display,
                                   department=text(form, "department"), roles=_roles(form),
                                   password=text(form, "password") or None,
                                   email=text(form, "email")[:254] or None)
    return redirect(f"/admin/users/{username}?ok=user_created")


def _user_page(request: Request, username: str, **extra: Any) -> Response:
    depts, _ = _departments()
    with session_scope(write=False) as session:
        user = identity.get_user(session, username)
        _ = user.roles
        tokens = identity.list_tokens(session, user)
        session.expunge_all()
    return render(request, "admin_user.html", {
        "user": user, "depts": depts, "roles": list(Role), "tokens": tokens, "now": utcnow(),
        "issue_url": f"/admin/users/{username}/tokens", "revoke_base": "/admin/tokens",
        **extra})


@router.get("/admin/users/{username}")
def user_page(request: Request, username: str, who: Admin) -> Response:
    return _user_page(request, username)


@router.post("/admin/users/{username}/roles")
def update_user(request: Request, username: str, form: CheckedForm, who: Admin) -> Response:
    with session_scope() as session:
        user = identity.get_user(session, username)
        administration.update_user(session, who.actor, user, roles=_roles(form),
                                   department=text(form, "department") or None)
    return redirect(f"/admin/users/{username}?ok=user_saved")


@router.post("/admin/users/{username}/tokens")
def issue_token(request: Request, username: str, form: CheckedForm, who: Admin) -> Response:
    raw = text(form, "days", "90")
    if not raw.isdigit() or not 1 <= int(raw) <= 3650:
        raise Invalid("A token's lifetime must be between 1 and 3650 days.")
    with session_scope() as session:
        user = identity.get_user(session, username)
        _, plain = administration.issue_token(session, who.actor, user,
                                              name=text(form, "name")[:100] or "admin",
                                              days=int(raw))
    return _user_page(request, username, issued=plain)  # shown once, on this response only


@router.post("/admin/users/{username}/{action}")
def toggle_user(request: Request, username: str, action: str, form: CheckedForm,
                who: Admin) -> Response:
    if action not in ("disable", "enable", "password"):
        raise Invalid(f"Unknown action '{action}'.",
                      key="problem.web.unknown_action", params={"action": action})
    with session_scope() as session:
        user = identity.get_user(session, username)
        if action == "password":
            administration.set_password(session, who.actor, user, text(form, "password"))
        else:
            if user.id == who.user_id and action == "disable":
                raise Invalid("You cannot disable your own account.")
            administration.set_active(session, who.actor, user, action == "enable")
    return redirect(f"/admin/users/{username}?ok=user_saved")


@router.get("/admin/tokens")
def tokens_page(request: Request, who: Admin) -> Response:
    with session_scope(write=False) as session:
        tokens = list(session.exec(select(ApiToken).order_by(col(ApiToken.id).desc())))
        users = {u.id: u.username for u in session.exec(select(User))}
        session.expunge_all()
    return render(request, "admin_tokens.html", {"tokens": tokens, "users": users,
                                                 "now": utcnow()})


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: int, form: CheckedForm, who: Admin) -> Response:
    with session_scope() as session:
        token = administration.revoke_token(session, who.actor, token_id)
        owner = identity.get_user(session, token.user_id).username
    back = request.headers.get("referer", "")
    target = f"/admin/users/{owner}" if f"/admin/users/{owner}" in back else "/admin/tokens"
    return redirect(f"{target}?ok=token_revoked")


@router.get("/admin/settings")
def settings_page(request: Request, who: Admin) -> Response:
    """The settings in force, read-only; secrets show only whether they are set."""
    settings = get_settings()
    rows = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "********"
        elif value is None or value == "":
            shown = "—"
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value) or "—"
        else:
            shown = str(getattr(value, "value", value))
        if name == "database_url" and "@" in shown:  # user:password@host
            shown = shown.split("://", 1)[0] + "://********@" + shown.rsplit("@", 1)[1]
        rows.append(("GOVSHARE_" + name.upper(), shown))
    return render(request, "admin_settings.html", {"settings": rows})


@router.get("/admin/keys")
def keys_page(request: Request, who: Admin) -> Response:
    """The signed log's keys, with a rotation (the same service as ``govshare log
    rotate-key``); after one, the new key's public forms are shown for witnesses and
    verifiers to pick up."""
    from translog import keys as log_keys

    with session_scope(write=False) as session:
        document = log_keys.key_document(log_keys.all_keys(session))
    fresh = request.query_params.get("rotated")
    new = next((k for k in document["keys"] if k["key_id"] == fresh), None)
    return render(request, "admin_keys.html", {"keys": document["keys"], "new_key": new,
                                               "witnesses": document["witnesses"]})


@router.post("/admin/keys/rotate")
def rotate_key(request: Request, form: CheckedForm, who: Admin) -> Response:
    if text(form, "confirm") != "rotate":
        raise Invalid("Tick the confirmation to rotate the signing key.",
                      errors=[{"field": "confirm", "message": "Tick the confirmation to "
                               "rotate the signing key."}])
    with session_scope() as session:
        new = administration.rotate_log_key(session, who.actor)
        key_id = new.key_id
    return redirect(f"/admin/keys?ok=key_rotated&rotated={key_id}")


@router.get("/admin/jobs")
def jobs_page(request: Request, who: Admin) -> Response:
    """Background work by kind and state, the newest jobs (filtered), their errors and
    leases; failed and dead jobs can be retried."""
    raw_view, kind = request.query_params.get("state") or "", request.query_params.get("kind")
    view = _enum(jobs.View, raw_view) if raw_view else None
    with session_scope(write=False) as session:
        counts = jobs.counts(session)
        listed = jobs.listing(session, view, kind or None)
        session.expunge_all()
    kinds = sorted({k for k, _ in counts} | set(jobs.handlers()))
    return render(request, "admin_jobs.html", {
        "views": list(jobs.View), "kinds": kinds, "counts": counts, "jobs": listed,
        "view_of": jobs.view_of, "state": view.value if view else "", "kind": kind or "",
        "now": datetime.now(UTC)})


@router.post("/admin/jobs/{job_id}/retry")
def retry_job(request: Request, job_id: int, form: CheckedForm, who: Admin) -> Response:
    with session_scope() as session:
        administration.retry_job(session, who.actor, job_id)
    return redirect(f"/admin/jobs?ok=job_retried#job-{job_id}")
