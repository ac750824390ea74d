"""Browser sessions: a server-side row per sign-in, named by a signed cookie.

The cookie carries a random 256-bit session id signed (itsdangerous, HMAC-SHA256) with a key
derived for this purpose alone, so a forged or altered cookie is refused before any database
lookup; the database keeps only the id's SHA-256. A session ends at its fixed expiry
(``GOVSHARE_SESSION_HOURS`` after sign-in), at sign-out, or when its user is disabled; the API
token a person may have signed in with is never put in a cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel, select

from kernel.db import UTCDateTime, utcnow
from kernel.identity import Department, User
from kernel.problems import Unauthenticated
from kernel.secrets import derive_key
from kernel.settings import get_settings

COOKIE = "govshare_session"


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"
    id: int | None = Field(default=None, primary_key=True)
    sid_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    method: str = Field(max_length=16)  # password, oidc or token: how the person signed in
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


def signing_key() -> bytes:
    """The key that signs session and sign-in cookies and nothing else (rotating it with
    ``govshare keys rotate --purpose sessions`` signs everyone out)."""
    return derive_key("sessions")


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_key(), salt=salt)


def sign(value: object, salt: str) -> str:
    """A cookie value for ``value`` (JSON), signed and time-stamped; the salt names its use."""
    return _serializer(salt).dumps(value)


def unsign(cookie: str, salt: str, max_age: int | None = None) -> object:
    """The value of a cookie made by ``sign`` with the same salt, no older than ``max_age``
    seconds; BadSignature (SignatureExpired is one) otherwise."""
    return _serializer(salt).loads(cookie, max_age=max_age)


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start(session: Session, user: User, method: str) -> str:
    """A new session for ``user``; returns the cookie value."""
    sid = secrets.token_urlsafe(32)
    hours = get_settings().session_hours
    session.add(WebSession(sid_hash=_hash(sid), user_id=user.id or 0, method=method,
                           expires_at=utcnow() + timedelta(hours=hours)))
    session.flush()
    return sign(sid, "session")


def lookup(session: Session, cookie: str) -> tuple[WebSession, User, Department]:
    """The live session a cookie names, with its user; Unauthenticated otherwise."""
    try:
        sid = unsign(cookie, "session")
    except BadSignature:
        raise Unauthenticated("Your session is not valid. Sign in again.") from None
    row = session.exec(
        select(WebSession, User, Department)
        .join(User, User.id == WebSession.user_id)  # type: ignore[arg-type]
        .join(Department, Department.id == User.department_id)  # type: ignore[arg-type]
        .where(WebSession.sid_hash == _hash(str(sid)))
    ).first()
    if row is None or row[0].ended_at is not None:
        raise Unauthenticated("You have signed out. Sign in again.")
    web, user, dept = row
    if web.expires_at <= utcnow():
        raise Unauthenticated("Your session has expired. Sign in again.")
    if not user.is_active:
        raise Unauthenticated("This user account is disabled.")
    return web, user, dept


def end(session: Session, cookie: str) -> None:
    """Sign-out: the session can never be used again, even if its cookie was copied."""
    try:
        sid = unsign(cookie, "session")
    except BadSignature:
        return
    web = session.exec(select(WebSession).where(WebSession.sid_hash == _hash(str(sid)))).first()
    if web is not None and web.ended_at is None:
        web.ended_at = utcnow()
        session.add(web)
