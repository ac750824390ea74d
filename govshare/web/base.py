"""What every page shares: rendering, the signed-in user, CSRF on forms, error pages.

Pages are server-rendered (Jinja2) and call the contexts' service functions directly; the
only JavaScript is the upload progress bar, the dashboard's charts and the rating buttons.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from access.calendar import WorkCalendar
from govshare.web import i18n
from kernel import csrf
from kernel.auth import Principal, session_principal
from kernel.db import session_scope
from kernel.identity import Role
from kernel.problems import PROBLEM_JSON, Forbidden, Invalid, Problem, Unauthenticated
from kernel.settings import get_settings

TEMPLATES = Jinja2Templates(directory=str(files("govshare.web") / "templates"))

# Same origin only: the UI loads nothing from elsewhere (a test checks every src/href too).
# ECharts sets element styles from script (allowed); style attributes need 'unsafe-inline'.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}

# Where each role starts, in the order the navigation lists them.
NAV: list[tuple[str, str, frozenset[Role] | None]] = [
    ("/catalog", "nav.catalog", None),
    ("/publish", "nav.publish", frozenset({Role.publisher})),
    ("/requests", "nav.requests", frozenset({Role.requester})),
    ("/inbox", "nav.inbox", frozenset({Role.approver})),
    ("/notices", "nav.notices", frozenset({Role.publisher, Role.auditor})),
    # The data bureau's in-tray (auditors of other departments get a 403 page explaining why).
    ("/coordination", "nav.coordination", frozenset({Role.auditor})),
    ("/quality", "nav.quality", frozenset({Role.auditor, Role.leader})),
    ("/dashboard", "nav.dashboard", frozenset({Role.leader, Role.auditor})),
    ("/admin", "nav.admin", frozenset({Role.admin})),
]


class SignInRequired(Exception):
    """No valid session cookie: the page redirects to the sign-in page."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "")
        self.message = message


# --- the signed-in user -------------------------------------------------------------------------

def _principal(request: Request) -> Principal:
    cookie = request.cookies.get(csrf.SESSION_COOKIE)
    if not cookie:
        raise SignInRequired()
    try:
        with session_scope(write=False) as session:
            principal = session_principal(session, cookie)
    except Unauthenticated as exc:
        raise SignInRequired(exc.detail) from None
    request.state.principal = principal
    return principal


def page_user(*roles: Role) -> Callable[[Request], Principal]:
    """Dependency: the signed-in user (else redirect to sign-in), holding one of ``roles``."""

    def dependency(request: Request) -> Principal:
        who = _principal(request)
        if roles and not who.has(*roles):
            needed = " / ".join(r.value for r in roles)
            held = ", ".join(sorted(r.value for r in who.roles)) or "none"
            t = i18n.Translator(i18n.language_of(request))
            raise Forbidden(f"This page needs the {needed} role; your roles: {held}.",
                            key="problem.page_role",
                            params={"needed": " / ".join(t.label("role", r) for r in roles),
                                    "held": "、".join(t.label("role", r) for r in
                                                     sorted(who.roles)) or "—"})
        return who

    return dependency


SignedIn = Annotated[Principal, Depends(page_user())]


async def checked_form(request: Request) -> FormData:
    """Dependency for every POSTed form: its CSRF token must match the session."""
    form = await request.form()
    sent = form.get(csrf.FORM_FIELD)
    csrf.check(request, sent if isinstance(sent, str) else None)
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def texts(form: FormData, name: str) -> list[str]:
    return [v.strip() for v in form.getlist(name) if isinstance(v, str)]


# --- rendering ------------------------------------------------------------------------------------

def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    tz = WorkCalendar.from_settings().tz
    return value.astimezone(tz).strftime(fmt)


def duration(t: i18n.Translator, hours: float | None) -> str:
    if hours is None:
        return ""
    if hours * 60 < 1:
        return t("unit.under_minute")
    if hours < 1:
        return t("unit.minutes", n=round(hours * 60))
    if hours < 48:
        return t("unit.hours", n=round(hours, 1))
    return t("unit.days", n=round(hours / 24, 1))


def since(moment: datetime | None) -> float | None:
    return None if moment is None else (datetime.now(UTC) - moment).total_seconds() / 3600


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status: int = 200) -> HTMLResponse:
    lang = i18n.language_of(request)
    t = i18n.Translator(lang)
    who: Principal | None = getattr(request.state, "principal", None)
    nav = [(href, t(key)) for href, key, roles in NAV
           if who is not None and (roles is None or who.has(*roles))]
    secret = csrf.session_secret(request)
    new_presession = None
    if secret is None:  # first visit: a pre-session secret, so the sign-in form has a token
        secret = new_presession = secrets.token_urlsafe(32)
    unread = 0
    if who is not None:
        from govshare import notifications

        with session_scope(write=False) as session:
            unread = notifications.unread(session, who.user_id)
    ctx = {"request": request, "t": t, "lang": lang, "who": who, "nav": nav, "unread": unread,
           "csrf_token": csrf.token_for(secret), "path": request.url.path,
           "local_time": local_time, "duration": lambda h: duration(t, h),
           "lang_url": lambda code: _with_lang(request, code), **(context or {})}
    response = TEMPLATES.TemplateResponse(request, template, ctx, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    if i18n.requested(request):
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax",
                            secure=_https(request))
    if new_presession:
        response.set_cookie(csrf.PRESESSION_COOKIE, new_presession, httponly=True,
                            samesite="strict", secure=_https(request), path="/")
    return response


def _with_lang(request: Request, code: str) -> str:
    params = {k: v for k, v in request.query_params.items() if k != "lang"}
    params["lang"] = code
    return request.url.path + "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(request: Request, response: Response, cookie: str) -> None:
    """The session cookie (kernel.sessions.start made it); it lives as long as the session."""
    response.set_cookie(csrf.SESSION_COOKIE, cookie, httponly=True, samesite="strict",
                        secure=_https(request), path="/",
                        max_age=int(get_settings().session_hours * 3600))
    response.delete_cookie(csrf.PRESESSION_COOKIE, path="/")


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(csrf.SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=_https(request))


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- errors -------------------------------------------------------------------------------------

def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept or "application/problem+json" in accept


def error_page(request: Request, problem: Problem) -> Response:
    body = problem.body(request.url.path, i18n.language_of(request))
    if _wants_json(request):  # the upload form posts with XMLHttpRequest
        return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON)
    return render(request, "error.html", {"problem": body}, status=problem.status)


class PageRoute(APIRoute):
    """Turns what the pages raise into pages: sign-in redirects and readable error pages
    (the API keeps answering problem+json)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                url = "/signin?next=" + quote(target, safe="")
                if exc.message:
                    url += "&expired=1"
                return redirect(url)
            except Problem as problem:
                return error_page(request, problem)
            except RequestValidationError as exc:
                return error_page(request, Invalid.of(exc.errors(), "the form"))
            except StarletteHTTPException as exc:
                http_problem = Problem(str(exc.detail),
                                       key=f"error.http_detail.{exc.status_code}")
                http_problem.status = exc.status_code
                return error_page(request, http_problem)

        return page_handler
