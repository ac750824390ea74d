"""HTTP API of database sources (``catalog.sources``): the provider's publishers only.

Nothing here ever returns the connection URL: ``SourceOut`` carries ``location``
(host:port/database) and the pull's status.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from catalog import sources
from catalog.api import resource_out
from catalog.models import DataSource
from catalog.schemas import ResourceOut, SourceIn, SourceOut, SourceRegistration
from kernel.auth import DbSession, Principal, WriteSession, require
from kernel.idempotency import IDEMPOTENT, IdempotentRoute
from kernel.identity import Role

router = APIRouter(tags=["catalog"], route_class=IdempotentRoute)
Publisher = Annotated[Principal, Depends(require(Role.publisher))]


def source_out(source: DataSource) -> SourceOut:
    return SourceOut.model_validate(source, from_attributes=True)


@router.post("/resources/from-source", response_model=ResourceOut,
             status_code=status.HTTP_201_CREATED, dependencies=[IDEMPOTENT])
def register_from_source(body: SourceRegistration, session: WriteSession,
                         who: Publisher) -> ResourceOut:
    """Register a resource whose data is pulled from a database table (库表); the first pull
    runs now, and nothing is stored unless it succeeds."""
    resource, _ = sources.register(session, who, body.metadata, body.source.url,
                                   body.source.query, confirm_duplicate=body.confirm_duplicate)
    return resource_out(session, resource)


@router.put("/resources/{code}/source", response_model=SourceOut)
def set_source(code: str, body: SourceIn, session: WriteSession, who: Publisher) -> SourceOut:
    """Pull this resource's data from a database from now on (the first pull is due now)."""
    return source_out(sources.configure(session, who, code, body.url, body.query))


@router.get("/resources/{code}/source", response_model=SourceOut)
def get_source(code: str, session: DbSession, who: Publisher) -> SourceOut:
    return source_out(sources.get(session, who, code))


@router.post("/resources/{code}/source/pull", response_model=SourceOut,
             status_code=status.HTTP_202_ACCEPTED)
def pull_now(code: str, session: WriteSession, who: Publisher) -> SourceOut:
    """Pull now, off the cycle: the worker picks it up within its next poll."""
    return source_out(sources.request_pull(session, who, code))


@router.delete("/resources/{code}/source", status_code=status.HTTP_204_NO_CONTENT)
def remove_source(code: str, session: WriteSession, who: Publisher) -> None:
    sources.remove(session, who, code)
