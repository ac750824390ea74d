"""Administration API: departments, users and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field
from sqlmodel import select

from govshare import administration
from kernel import identity
from kernel.auth import DbSession, Principal, SignedIn, WriteSession, require
from kernel.idempotency import IDEMPOTENT, IdempotentRoute
from kernel.identity import AdminLevel, DepartmentKind, Role
from kernel.problems import Forbidden, NotFound

router = APIRouter(tags=["administration"], route_class=IdempotentRoute)
AdminOnly = Annotated[Principal, Depends(require(Role.admin))]


class DepartmentIn(BaseModel):
    code: str = Field(min_length=2, max_length=16, examples=["GA"])
    name_zh: str = Field(min_length=1, max_length=100, examples=["市公安局"])
    name_en: str = Field(min_length=1, max_length=200, examples=["Public Security Bureau"])
    kind: DepartmentKind = DepartmentKind.line
    level: AdminLevel = AdminLevel.municipal
    credit_code: str | None = Field(default=None, max_length=18,
                                    description="统一社会信用代码 (GB 32100)")
    commissioner: str | None = Field(default=None, max_length=100,
                                     description="The data commissioner (数据专员)")
    contact: str | None = Field(default=None, max_length=200)


class DepartmentCreate(DepartmentIn):
    parent: str | None = Field(default=None, description="Code of the parent department")


class DepartmentOut(DepartmentIn):
    id: int
    parent_id: int | None = None


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    display_name: str = Field(min_length=1, max_length=100)
    department: str = Field(description="Department code")
    roles: list[Role] = Field(min_length=1)


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    department: str
    roles: list[Role]
    is_active: bool


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    days: int = Field(default=90, ge=1, le=3650)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class IssuedToken(TokenOut):
    token: str = Field(description="Shown once; govshare stores only its hash.")


def _user_out(session: DbSession, user: identity.User) -> UserOut:
    dept = identity.get_department(session, user.department_id)
    return UserOut(id=user.id or 0, username=user.username, display_name=user.display_name,
                   department=dept.code, roles=sorted(user.roles), is_active=user.is_active)


def _token_out(token: identity.ApiToken) -> TokenOut:
    return TokenOut.model_validate(token, from_attributes=True)


@router.get("/departments", response_model=list[DepartmentOut])
def list_departments(session: DbSession, _: SignedIn) -> list[identity.Department]:
    """Every signed-in user may list departments (needed to read the catalog)."""
    return identity.list_departments(session)


@router.post("/departments", response_model=DepartmentOut, status_code=status.HTTP_201_CREATED,
             dependencies=[IDEMPOTENT])
def create_department(body: DepartmentCreate, session: WriteSession,
                      who: AdminOnly) -> identity.Department:
    return administration.create_department(session, who.actor, **body.model_dump())


@router.get("/users", response_model=list[UserOut])
def list_users(session: DbSession, _: AdminOnly) -> list[UserOut]:
    return [_user_out(session, u) for u in session.exec(select(identity.User))]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED,
             dependencies=[IDEMPOTENT])
def create_user(body: UserIn, session: WriteSession, who: AdminOnly) -> UserOut:
    user = administration.create_user(session, who.actor, **body.model_dump())
    return _user_out(session, user)


@router.get("/me", response_model=UserOut)
def me(session: DbSession, who: SignedIn) -> UserOut:
    return _user_out(session, identity.get_user(session, who.user_id))


@router.post("/users/{username}/tokens", response_model=IssuedToken,
             status_code=status.HTTP_201_CREATED, dependencies=[IDEMPOTENT])
def issue_token(username: str, body: TokenIn, session: WriteSession, who: AdminOnly) -> IssuedToken:
    user = identity.get_user(session, username)
    token, plain = administration.issue_token(session, who.actor, user, name=body.name,
                                              days=body.days)
    return IssuedToken(**_token_out(token).model_dump(), token=plain)


@router.get("/users/{username}/tokens", response_model=list[TokenOut])
def list_tokens(username: str, session: DbSession, who: SignedIn) -> list[TokenOut]:
    """Admins see anyone's tokens; everyone else only their own."""
    if username != who.username and Role.admin not in who.roles:
        raise Forbidden("You can list only your own tokens.")
    user = identity.get_user(session, username)
    return [_token_out(t) for t in identity.list_tokens(session, user)]


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: int, session: WriteSession, who: SignedIn) -> TokenOut:
    """Admins revoke any token; a user may revoke their own (e.g. after a leak)."""
    token = session.get(identity.ApiToken, token_id)
    if token is None:
        raise NotFound(f"No token with id {token_id}.",
                       key="problem.kernel.no_token", params={"token_id": token_id})
    if token.user_id != who.user_id and Role.admin not in who.roles:
        raise Forbidden("You can revoke only your own tokens.")
    token = administration.revoke_token(session, who.actor, token_id)
    return _token_out(token)
