"""Signing in (identity platform, password + TOTP, or an API token), signing out, and the
person's own account page: their API tokens, password and second factor."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from itsdangerous import BadSignature
from sqlmodel import Session, select

from govshare import administration
from govshare.signin import oidc, passwords
from govshare.web import i18n
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
from kernel import csrf, identity, ratelimit, sessions
from kernel.auth import Principal, authenticate
from kernel.db import session_scope, utcnow
from kernel.events import Actor, Event, publish
from kernel.identity import Department, Role, User
from kernel.problems import Invalid, Unauthenticated
from kernel.settings import Settings, get_settings

log = logging.getLogger("govshare.signin")
router = APIRouter(route_class=PageRoute, include_in_schema=False)

# Where a role lands after signing in (first match wins).
LANDING = [(Role.leader, "/dashboard"), (Role.approver, "/inbox"), (Role.requester, "/requests"),
           (Role.publisher, "/publish"), (Role.auditor, "/quality"), (Role.admin, "/admin")]
OIDC_COOKIE = "govshare_oidc"
OIDC_SECONDS = 600  # a sign-in at the identity platform must come back within ten minutes


def landing(roles: frozenset[Role]) -> str:
    return next((url for role, url in LANDING if role in roles), "/catalog")


def _safe_next(target: str | None) -> str | None:
    """Only a local path: never send a freshly signed-in user to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _oidc_config(settings: Settings) -> oidc.OidcConfig | None:
    if not settings.oidc_issuer:
        return None
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret \
        else ""
    return oidc.OidcConfig(issuer=settings.oidc_issuer, client_id=settings.oidc_client_id,
                           client_secret=secret, scope=settings.oidc_scope)


def _page(request: Request, status: int = 200, **context: Any) -> Response:
    context.setdefault("next", "")
    return render(request, "signin.html",
                  {"oidc": _oidc_config(get_settings()) is not None, **context}, status=status)


def _signed_in(request: Request, session: Session, user: User, method: str,
               target: str | None) -> Response:
    """Start the session, record the sign-in in the log, and go where the person was going."""
    cookie = sessions.start(session, user, method)
    publish(session, Event(type="user.signed_in", actor=Actor(user.id, user.department_id),
                           subjects={"user": user.username}, payload={"method": method}))
    response = redirect(target or landing(user.roles))
    set_session(request, response, cookie)
    return response


@router.get("/")
def home(request: Request, who: SignedIn) -> Response:
    return redirect(landing(who.roles))


@router.get("/signin")
def signin_page(request: Request, next: str | None = None, expired: int = 0) -> Response:
    return _page(request, next=_safe_next(next) or "", expired=bool(expired))


@router.post("/signin")
def signin_token(request: Request, form: CheckedForm) -> Response:
    """Sign-in with an API token (machines' credential, kept for installations that hand
    them out); the browser gets a session, never the token."""
    plain = text(form, "token")
    target = _safe_next(text(form, "next"))
    t = i18n.Translator(i18n.language_of(request))
    ratelimit.check(request, plain)
    try:
        with session_scope() as session:
            who = authenticate(session, plain)
            return _signed_in(request, session, identity.get_user(session, who.user_id), "token",
                              target)
    except Unauthenticated as exc:
        ratelimit.failed(request, plain)
        message = i18n.localize_problem(t.lang, exc.key, exc.params, exc.detail) or exc.detail
        return _page(request, 401, next=target or "", error=message, token_error=True)


@router.post("/signin/password")
def signin_password(request: Request, form: CheckedForm) -> Response:
    username, plain, code = text(form, "username"), text(form, "password"), text(form, "totp")
    target = _safe_next(text(form, "next"))
    t = i18n.Translator(i18n.language_of(request))
    # Failures count against the IP and the user name, as wrong tokens do against prefixes.
    ratelimit.check(request, "user:" + username)
    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).first()
        ok = passwords.verify_password(user.password_hash if user else None, plain)
        error = None
        if not ok or user is None:
            error = t("signin.password_wrong")
        elif not user.is_active:
            error = t("signin.disabled")
        elif user.totp_secret and not code:
            error = t("signin.totp_needed")
        elif user.totp_secret and not passwords.verify_totp(identity.totp_secret(user) or "",
                                                            code):
            error = t("signin.totp_wrong")
        if error is None and user is not None:
            if user.password_hash and passwords.needs_rehash(user.password_hash):
                user.password_hash = passwords.hash_password(plain)
                session.add(user)
            return _signed_in(request, session, user, "password", target)
    ratelimit.failed(request, "user:" + username)
    return _page(request, 401, next=target or "", error=error, username=username)


@router.get("/signin/oidc")
def signin_oidc(request: Request, next: str | None = None) -> Response:
    config = _oidc_config(get_settings())
    t = i18n.Translator(i18n.language_of(request))
    if config is None:
        return _page(request, 404, error=t("signin.oidc_off"))
    try:
        url, pending = oidc.begin(config, str(request.url_for("oidc_callback")))
    except oidc.OidcFailure as exc:
        log.warning("OIDC sign-in could not start: %s", exc.detail)
        return _page(request, 502, error=t(exc.reason))
    pending["next"] = _safe_next(next) or ""
    response = redirect(url)
    response.set_cookie(OIDC_COOKIE, sessions.sign(pending, "oidc"), max_age=OIDC_SECONDS,
                        httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        path="/signin/oidc")
    return response


@router.get("/signin/oidc/callback", name="oidc_callback")
def oidc_callback(request: Request) -> Response:
    config = _oidc_config(get_settings())
    t = i18n.Translator(i18n.language_of(request))
    if config is None:
        return _page(request, 404, error=t("signin.oidc_off"))
    try:
        pending = sessions.unsign(request.cookies.get(OIDC_COOKIE, ""), "oidc", OIDC_SECONDS)
        if not isinstance(pending, dict):
            raise BadSignature("not a pending sign-in")
    except BadSignature:
        # No cookie (it expired after ten minutes, or another browser) or a forged one.
        return _oidc_refused(request, t("signin.oidc_expired"))
    try:
        claims = oidc.finish(config, str(request.url_for("oidc_callback")),
                             dict(request.query_params), pending)
    except oidc.OidcFailure as exc:
        log.info("OIDC sign-in refused: %s %s", exc.reason, exc.detail)
        return _oidc_refused(request, t(exc.reason))
    with session_scope() as session:
        user, reason = _match(session, claims, get_settings())
        if user is None:
            return _oidc_refused(request, t(reason))
        response = _signed_in(request, session, user, "oidc", _safe_next(pending.get("next")))
    response.delete_cookie(OIDC_COOKIE, path="/signin/oidc")
    return response


def _oidc_refused(request: Request, message: str) -> Response:
    response = _page(request, 401, error=message)
    response.delete_cookie(OIDC_COOKIE, path="/signin/oidc")
    return response


def _match(session: Session, claims: dict[str, Any],
           settings: Settings) -> tuple[User | None, str]:
    """The user the identity platform vouched for: by subject once linked, else by the
    configured claim; provisioned if allowed. (None, reason) when the person may not enter."""
    subject = str(claims.get("sub", ""))
    user = session.exec(select(User).where(User.oidc_subject == subject)).first()
    name = str(claims.get(settings.oidc_user_claim) or "").strip()
    if user is None and name:
        user = session.exec(select(User).where(User.username == name)).first()
        if user is not None and user.oidc_subject not in (None, subject):
            return None, "signin.oidc_other_subject"
    if user is None:
        if not settings.oidc_provision or not name:
            return None, "signin.oidc_unknown"
        user = _provision(session, claims, name, settings)
        if user is None:
            return None, "signin.oidc_no_department"
    if not user.is_active:
        return None, "signin.disabled"
    user.oidc_subject = subject
    display = claims.get(settings.oidc_name_claim)
    if isinstance(display, str) and display.strip():
        user.display_name = display.strip()[:100]
    email = claims.get("email")
    if isinstance(email, str) and "@" in email and claims.get("email_verified", True):
        user.email = email[:254]
    _apply_claims(session, user, claims, settings)
    session.add(user)
    session.flush()
    return user, ""


def _claimed_roles(claims: dict[str, Any], settings: Settings) -> list[Role]:
    """Roles the platform may grant: any but admin (administrators are made in govshare)."""
    raw = claims.get(settings.oidc_roles_claim) if settings.oidc_roles_claim else None
    values = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return sorted({Role(v) for v in values if v in Role.__members__ and v != Role.admin.value})


def _claimed_department(session: Session, claims: dict[str, Any],
                        settings: Settings) -> Department | None:
    if not settings.oidc_department_claim:
        return None
    code = str(claims.get(settings.oidc_department_claim) or "").strip().upper()
    return session.exec(select(Department).where(Department.code == code)).first() if code \
        else None


def _provision(session: Session, claims: dict[str, Any], name: str,
               settings: Settings) -> User | None:
    dept = _claimed_department(session, claims, settings)
    roles = _claimed_roles(claims, settings)
    if dept is None or not roles:
        return None
    display = str(claims.get(settings.oidc_name_claim) or name)[:100]
    actor = Actor(user_id=None, department_id=dept.id, kind="system")
    return administration.create_user(session, actor, username=name, display_name=display,
                                      department=dept.code, roles=roles)


def _apply_claims(session: Session, user: User, claims: dict[str, Any],
                  settings: Settings) -> None:
    """When the platform states department and roles, they win over earlier ones (the
    platform is where people change jobs); an admin role given in govshare is kept."""
    dept = _claimed_department(session, claims, settings)
    roles = _claimed_roles(claims, settings)
    if dept is not None and dept.id != user.department_id:
        user.department_id = dept.id or 0
    if roles:
        keep_admin = [Role.admin] if Role.admin in user.roles else []
        wanted = sorted(set(roles) | set(keep_admin))
        if wanted != sorted(user.roles):
            identity.set_roles(session, user, wanted)


@router.post("/signout")
def signout(request: Request, form: CheckedForm) -> Response:
    cookie = request.cookies.get(csrf.SESSION_COOKIE)
    if cookie:
        with session_scope() as session:
            sessions.end(session, cookie)
    response = redirect("/signin")
    clear_session(request, response)
    return response


# --- the person's own account -------------------------------------------------------------------

def _account(request: Request, who: Principal, **extra: Any) -> Response:
    with session_scope(write=False) as session:
        user = identity.get_user(session, who.user_id)
        dept = identity.get_department(session, user.department_id)
        tokens = identity.list_tokens(session, user)
        session.expunge_all()
    context: dict[str, Any] = {"user": user, "dept": dept, "roles": sorted(user.roles),
                               "tokens": tokens, "now": utcnow(), "self_service": True,
                               "issue_url": "/account/tokens", "revoke_base": "/account/tokens"}
    if request.query_params.get("totp") == "new" and not user.totp_secret:
        secret = passwords.new_totp_secret()
        context |= {"totp_new": secret, "totp_uri": passwords.totp_uri(secret, user.username)}
    return render(request, "account.html", context | extra)


@router.get("/account")
def account(request: Request, who: SignedIn) -> Response:
    return _account(request, who)


def _days(form: Any) -> int:
    raw = text(form, "days", "90")
    if not raw.isdigit() or not 1 <= int(raw) <= 3650:
        raise Invalid("A token's lifetime must be between 1 and 3650 days.")
    return int(raw)


@router.post("/account/tokens")
def account_issue(request: Request, form: CheckedForm, who: SignedIn) -> Response:
    name = text(form, "name")[:100] or "web"
    with session_scope() as session:
        user = identity.get_user(session, who.user_id)
        _, plain = administration.issue_token(session, who.actor, user, name=name,
                                              days=_days(form))
    # Shown once, on this response only; never put in a URL or a cookie.
    return _account(request, who, issued=plain)


@router.post("/account/tokens/{token_id}/revoke")
def account_revoke(request: Request, token_id: int, form: CheckedForm,
                   who: SignedIn) -> Response:
    with session_scope() as session:
        token = session.get(identity.ApiToken, token_id)
        if token is None or token.user_id != who.user_id:
            raise Invalid("You can revoke only your own tokens.")
        administration.revoke_token(session, who.actor, token_id)
    return redirect("/account?ok=token_revoked#tokens")


@router.post("/account/password")
def account_password(request: Request, form: CheckedForm, who: SignedIn) -> Response:
    with session_scope() as session:
        user = identity.get_user(session, who.user_id)
        if user.password_hash and not passwords.verify_password(user.password_hash,
                                                                text(form, "current")):
            raise Invalid("The current password is not right.")
        administration.set_password(session, who.actor, user, text(form, "new"))
    return redirect("/account?ok=password_set#password")


@router.post("/account/totp")
def account_totp(request: Request, form: CheckedForm, who: SignedIn) -> Response:
    secret = text(form, "secret")
    if len(secret) < 16 or not passwords.verify_totp(secret, text(form, "code")):
        raise Invalid("The code does not match; check the clock of the device and try again.")
    with session_scope() as session:
        administration.set_totp(session, who.actor, identity.get_user(session, who.user_id),
                                secret)
    return redirect("/account?ok=totp_on#totp")


@router.post("/account/totp/off")
def account_totp_off(request: Request, form: CheckedForm, who: SignedIn) -> Response:
    with session_scope() as session:
        user = identity.get_user(session, who.user_id)
        if not user.totp_secret or not passwords.verify_totp(identity.totp_secret(user) or "",
                                                             text(form, "code")):
            raise Invalid("The code does not match; check the clock of the device and try again.")
        administration.set_totp(session, who.actor, user, None)
    return redirect("/account?ok=totp_off#totp")





# --- notifications ------------------------------------------------------------------------------

@router.get("/notifications")
def notifications_page(request: Request, who: SignedIn) -> Response:
    from govshare import notifications

    with session_scope(write=False) as session:
        items = notifications.inbox(session, who.user_id)
        session.expunge_all()
    return render(request, "notifications.html", {"items": items})


@router.post("/notifications/read")
def notifications_read(request: Request, form: CheckedForm, who: SignedIn) -> Response:
    from govshare import notifications

    with session_scope() as session:
        notifications.mark_read(session, who.user_id)
    return redirect("/notifications")
