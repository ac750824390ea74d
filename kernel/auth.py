"""Request authentication and role checks.

Every endpoint declares its callers with ``require(...)``; department scoping is done by the
services with the ``Principal`` this returns, never with ids the client sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from kernel import authcache, csrf, ratelimit, sessions
from kernel.db import get_engine, get_session, get_write_session, session_scope, utcnow
from kernel.events import Actor
from kernel.identity import ApiToken, Department, Role, User, hash_token
from kernel.problems import Forbidden, Unauthenticated

# Touch last_used_at at most this often, so reads do not become writes.
_LAST_USED_GRANULARITY = timedelta(minutes=5)


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    department_id: int
    department_code: str
    roles: frozenset[Role]
    token_id: int  # 0 when signed in through a browser session or acting from the CLI
    display_name: str = ""

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, department_id=self.department_id)


def bearer_header(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def authenticate(session: Session, plain: str) -> Principal:
    digest = hash_token(plain)
    now = utcnow()
    # A token seen in the last few seconds needs no database lookup (kernel.authcache: how a
    # revocation still takes effect at once).
    cached, stamp = authcache.lookup(digest, now)
    if cached is not None:
        return cast(Principal, cached)
    row = session.exec(
        select(ApiToken, User, Department)
        .join(User, User.id == ApiToken.user_id)  # type: ignore[arg-type]
        .join(Department, Department.id == User.department_id)  # type: ignore[arg-type]
        .where(ApiToken.token_hash == digest)
    ).first()
    if row is None:
        raise Unauthenticated("The token is not recognised. Ask your administrator for a new one.")
    token, user, dept = row
    if token.revoked_at is not None:
        raise Unauthenticated("This token has been revoked. Ask your administrator for a new one.")
    if token.expires_at <= now:
        raise Unauthenticated("This token has expired. Ask your administrator for a new one.")
    if not user.is_active:
        raise Unauthenticated("This user account is disabled.")
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY:
        if session.get_bind() is get_engine(write=True):
            token.last_used_at = now  # already a write transaction: no second one needed
            session.add(token)
        else:
            _touch(token.id or 0, now)
    principal = Principal(user_id=user.id or 0, username=user.username,
                          department_id=dept.id or 0, department_code=dept.code,
                          roles=user.roles, token_id=token.id or 0,
                          display_name=user.display_name)
    authcache.store(digest, token.expires_at, principal, stamp)
    return principal


def _touch(token_id: int, now: datetime) -> None:
    """Record use in its own short write, so that authenticating never turns a read into a
    write transaction; best effort, since it is only a hint for administrators."""
    try:
        with session_scope(write=True) as session:
            token = session.get(ApiToken, token_id)
            if token is not None:
                token.last_used_at = now
    except OperationalError:  # a busy database must not fail the request itself
        pass


def principal_of(session: Session, username: str) -> Principal:
    """The Principal an operator's CLI action or a system job runs as (no token involved)."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise Unauthenticated(f"No user '{username}'.",
                              key="problem.kernel.no_user", params={"username": username})
    dept = session.get(Department, user.department_id)
    assert dept is not None  # foreign key
    return Principal(user_id=user.id or 0, username=user.username, department_id=dept.id or 0,
                     department_code=dept.code, roles=user.roles, token_id=0,
                     display_name=user.display_name)


def session_principal(session: Session, cookie: str) -> Principal:
    """The Principal of a browser session cookie (kernel.sessions); Unauthenticated if it is
    forged, ended, expired or its user disabled."""
    _, user, dept = sessions.lookup(session, cookie)
    return Principal(user_id=user.id or 0, username=user.username, department_id=dept.id or 0,
                     department_code=dept.code, roles=user.roles, token_id=0,
                     display_name=user.display_name)


def current_principal(request: Request,
                      session: Annotated[Session, Depends(get_session)]) -> Principal:
    plain = bearer_header(request)
    cookie = None if plain else request.cookies.get(csrf.SESSION_COOKIE)
    if not plain and not cookie:
        raise Unauthenticated("Send your API token as 'Authorization: Bearer <token>'.")
    if cookie and request.method not in csrf.SAFE_METHODS:
        # A browser session: the browser would send its cookie along with a request forged by
        # another site, so the page must prove it is ours.
        csrf.check(request, request.headers.get(csrf.HEADER))
    secret = plain or cookie or ""
    ratelimit.check(request, secret)
    try:
        principal = (authenticate(session, plain) if plain
                     else session_principal(session, cookie or ""))
    except Unauthenticated:
        ratelimit.failed(request, secret)
        raise
    request.state.principal = principal
    return principal


def require(*roles: Role) -> Callable[..., Principal]:
    """Dependency: any signed-in user if no roles are given, else one of ``roles``."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if roles and not principal.has(*roles):
            needed = " or ".join(r.value for r in roles)
            held = ", ".join(sorted(r.value for r in principal.roles)) or "none"
            raise Forbidden(f"This needs the {needed} role; your roles: {held}.",
                            key="problem.api_role", params={"needed": needed, "held": held})
        return principal

    dependency.required_roles = frozenset(roles)  # type: ignore[attr-defined]
    return dependency


async def signed_in_on_loop(request: Request) -> Principal:
    """``require()`` (any signed-in user) for endpoints that answer on the event loop: a
    bearer token in ``kernel.authcache`` is recognised here without I/O (the cache's one
    ``stat``), which spares the request the two or three hops to the thread pool and back
    that the sync dependencies cost (a third of a search page's CPU); anything else (a token
    not cached, a session cookie) is looked up as ``current_principal`` does, in the thread
    pool with its own read session."""
    plain = bearer_header(request)
    if plain:
        ratelimit.check(request, plain)
        cached, _ = authcache.lookup(hash_token(plain), utcnow())
        if cached is not None:
            request.state.principal = cached
            return cast(Principal, cached)
    return await run_in_threadpool(_principal_with_session, request)


def _principal_with_session(request: Request) -> Principal:
    with session_scope(write=False) as session:
        return current_principal(request, session)


signed_in_on_loop.required_roles = frozenset()  # type: ignore[attr-defined]

SignedIn = Annotated[Principal, Depends(require())]
# For async endpoints that need no database session for most requests (the search page).
SignedInOnLoop = Annotated[Principal, Depends(signed_in_on_loop)]
DbSession = Annotated[Session, Depends(get_session)]
# Function scope: the transaction commits before the response is sent, so a 2xx always means
# committed (a crash or failed commit after the response would otherwise lose the work).
WriteSession = Annotated[Session, Depends(get_write_session, scope="function")]
