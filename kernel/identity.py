"""Departments, users, roles and API tokens: who is calling, and for which department."""


import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, UniqueConstraint, event
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Field, Relationship, Session, SQLModel, col, select
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError

from kernel import authcache
from kernel import secrets as keys
from kernel.db import UTCDateTime, utcnow
from kernel.problems import Conflict, Invalid, NotFound


class Role(StrEnum):
    publisher = "publisher"  # registers and maintains its department's resources
    requester = "requester"  # files applications for its department
    approver = "approver"  # decides applications addressed to its department
    auditor = "auditor"  # the data bureau: quality and metadata, never raw data
    leader = "leader"  # reads metrics
    admin = "admin"  # departments, users and tokens; no data rights of its own


class DepartmentKind(StrEnum):
    line = "line"  # 条: a vertical line department (public security, tax…)
    district = "district"  # 块: a territorial (district/county) government
    bureau = "bureau"  # the data bureau / big-data center


class AdminLevel(StrEnum):
    provincial = "provincial"
    municipal = "municipal"
    district = "district"


class Department(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=16)
    name_zh: str = Field(max_length=100)
    name_en: str = Field(max_length=200)
    kind: DepartmentKind = DepartmentKind.line
    level: AdminLevel = AdminLevel.municipal
    # The department it reports to (a district office under its city bureau), if any.
    parent_id: int | None = Field(default=None, foreign_key="department.id")
    # 统一社会信用代码 (GB 32100) of the department as an organisation, checked when set.
    credit_code: str | None = Field(default=None, max_length=18)
    # The department's data commissioner (数据专员) and how to reach them, shown on every
    # resource it provides.
    commissioner: str | None = Field(default=None, max_length=100)
    contact: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))


class UserRole(SQLModel, table=True):
    __tablename__ = "user_role"
    user_id: int | None = Field(default=None, foreign_key="user.id", primary_key=True,
                                ondelete="CASCADE")
    role: Role = Field(primary_key=True)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = Field(max_length=100)
    department_id: int = Field(foreign_key="department.id", index=True)
    is_active: bool = True
    # Local accounts (docs/security.md): an argon2id hash, and a TOTP secret once enrolled,
    # sealed (``seal_totp``): a copy of the database alone does not give second factors.
    password_hash: str | None = Field(default=None, max_length=200)
    totp_secret: str | None = Field(default=None, max_length=255)
    # Where notifications are mailed (optional; the identity platform's ``email`` claim).
    email: str | None = Field(default=None, max_length=254)
    # The identity platform's subject (``sub``) this user signed in with, once matched.
    oidc_subject: str | None = Field(default=None, max_length=255, index=True, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    role_links: list[UserRole] = Relationship(
        sa_relationship_kwargs={"lazy": "selectin", "cascade": "all, delete-orphan"}
    )

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(link.role for link in self.role_links)


class ApiToken(SQLModel, table=True):
    """A bearer token. Only its SHA-256 is stored: tokens carry 256 bits of randomness, so a
    fast hash is as safe as a slow one and keeps every request's lookup a single index probe."""

    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("token_hash"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)  # shown in listings so people can tell tokens apart
    token_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


TOKEN_PREFIX = "gs_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- departments -----------------------------------------------------------------------------

def create_department(session: Session, *, code: str, name_zh: str, name_en: str,
                      kind: DepartmentKind = DepartmentKind.line,
                      level: AdminLevel = AdminLevel.municipal, parent: str | None = None,
                      credit_code: str | None = None, commissioner: str | None = None,
                      contact: str | None = None) -> Department:
    code = code.strip().upper()
    if not code.isalnum():
        raise Invalid(f"Department code '{code}' must be letters and digits only.",
                      key="problem.kernel.department_code_form", params={"code": code})
    if session.exec(select(Department).where(Department.code == code)).first():
        raise Conflict(f"A department with code '{code}' already exists.",
                       key="problem.kernel.department_code_taken", params={"code": code})
    parent_id = get_department(session, parent).id if parent else None
    if credit_code:
        try:
            credit_code = uscc.validate(credit_code)
        except ValidationError:
            raise Invalid(f"'{credit_code}' is not a valid unified social credit code "
                          "(18 characters, GB 32100 check character).",
                          key="problem.credit_code", params={"code": credit_code}) from None
    dept = Department(code=code, name_zh=name_zh, name_en=name_en, kind=kind, level=level,
                      parent_id=parent_id, credit_code=credit_code or None,
                      commissioner=commissioner or None, contact=contact or None)
    session.add(dept)
    session.flush()
    return dept


def get_department(session: Session, code_or_id: str | int) -> Department:
    if isinstance(code_or_id, int) or str(code_or_id).isdigit():
        dept = session.get(Department, int(code_or_id))
        if dept is None:
            dept = session.exec(
                select(Department).where(Department.code == str(code_or_id))
            ).first()
    else:
        dept = session.exec(
            select(Department).where(Department.code == str(code_or_id).upper())
        ).first()
    if dept is None:
        raise NotFound(f"No department '{code_or_id}'. "
                       "List departments with GET /api/v1/departments.",
                       key="problem.kernel.no_department", params={"code_or_id": code_or_id})
    return dept


def list_departments(session: Session) -> list[Department]:
    return list(session.exec(select(Department).order_by(col(Department.code))))


# --- users -----------------------------------------------------------------------------------

def create_user(session: Session, *, username: str, display_name: str, department: str | int,
                roles: list[Role]) -> User:
    if not roles:
        raise Invalid("A user needs at least one role.")
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"User '{username}' already exists.",
                       key="problem.kernel.user_taken", params={"username": username})
    dept = get_department(session, department)
    user = User(username=username, display_name=display_name, department_id=dept.id or 0,
                role_links=[UserRole(role=r) for r in sorted(set(roles))])
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username_or_id: str | int) -> User:
    if isinstance(username_or_id, int):
        user = session.get(User, username_or_id)
    else:
        user = session.exec(select(User).where(User.username == username_or_id)).first()
    if user is None:
        raise NotFound(f"No user '{username_or_id}'.",
                       key="problem.kernel.no_such_user", params={"username_or_id": username_or_id})
    return user


def set_roles(session: Session, user: User, roles: list[Role]) -> User:
    if not roles:
        raise Invalid("A user needs at least one role.")
    user.role_links = [UserRole(role=r) for r in sorted(set(roles))]
    session.add(user)
    session.flush()
    return user


# --- tokens ----------------------------------------------------------------------------------

def issue_token(session: Session, user: User, *, name: str, days: int) -> tuple[ApiToken, str]:
    """Create a token; the plain value is returned once and never stored."""
    if days < 1 or days > 3650:
        raise Invalid("A token's lifetime must be between 1 and 3650 days.")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id or 0, name=name, prefix=plain[:10],
                     token_hash=hash_token(plain), expires_at=utcnow() + timedelta(days=days))
    session.add(token)
    session.flush()
    return token, plain


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No token with id {token_id}.",
                       key="problem.kernel.no_token", params={"token_id": token_id})
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
        session.flush()
    return token


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(col(ApiToken.id))
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.exec(query))


# --- TOTP secrets, sealed at rest ------------------------------------------------------------

def _totp_aad(user_id: int) -> bytes:
    # Bound to the user: a sealed secret copied onto another user's row does not open.
    return f"govshare/user/{user_id}/totp".encode()


def seal_totp(user_id: int, secret: str) -> str:
    """The stored form of a TOTP secret: AES-GCM under the ``totp-secrets`` purpose key."""
    return keys.seal_text(keys.TOTP_SECRETS, secret, _totp_aad(user_id))


def totp_secret(user: User) -> str | None:
    """The user's TOTP secret in clear (to verify a code), or None when none is enrolled.
    A value stored before sealing (no key id) is read as it is until the migration seals it."""
    stored = user.totp_secret
    if not stored or user.id is None:
        return None
    if not keys.is_sealed_text(stored):
        return stored
    return keys.unseal_text(keys.TOTP_SECRETS, stored, _totp_aad(user.id))


def reseal_totp_all(session: Session) -> int:
    """Seal again under the current purpose key every enrolled TOTP secret (after a master
    secret or purpose key rotation), and seal any stored in clear; returns how many."""
    users = list(session.exec(select(User).where(col(User.totp_secret).is_not(None))))
    for user in users:
        plain = totp_secret(user)
        if plain is not None and user.id is not None:
            user.totp_secret = seal_totp(user.id, plain)
            session.add(user)
    session.flush()
    return len(users)


# --- telling the token cache (kernel.authcache) ------------------------------------------------

_TOKEN_COLUMNS = ("revoked_at", "expires_at", "user_id", "token_hash")  # not last_used_at
_USER_COLUMNS = ("is_active", "department_id", "username", "display_name")


def _changes_identity(obj: object, deleted: bool) -> bool:
    if isinstance(obj, UserRole):
        return True  # a role given or taken
    if not isinstance(obj, ApiToken | User):
        return False
    if deleted:
        return True
    columns = _TOKEN_COLUMNS if isinstance(obj, ApiToken) else _USER_COLUMNS
    state = sa_inspect(obj)
    return any(state.attrs[c].history.has_changes() for c in columns)


@event.listens_for(Session, "after_flush")
def _note_identity_changes(session: Session, _context: Any) -> None:
    if any(_changes_identity(o, False) for o in session.dirty) or \
            any(_changes_identity(o, True) for o in session.deleted) or \
            any(isinstance(o, UserRole) for o in session.new):
        session.info["identity_changed"] = True


@event.listens_for(Session, "after_commit")
def _tell_token_cache(session: Session) -> None:
    if session.info.pop("identity_changed", False):
        authcache.changed()


@event.listens_for(Session, "after_rollback")
def _forget_identity_changes(session: Session) -> None:
    session.info.pop("identity_changed", None)
