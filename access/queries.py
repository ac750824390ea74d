"""API-query deliveries: a page of the desensitized view of an active API grant, filtered on
its (masked) columns, logged as ``grant.queried``."""

from __future__ import annotations

import logging
from typing import Any

import duckdb
from sqlmodel import Session

from access import masking
from access import service as svc
from access.calendar import WorkCalendar
from access.models import (
    Application,
    DeliveryMethod,
    Grant,
)
from access.packaging import masked_select
from access.planning import Gone, Job, plan_job
from access.schemas import QueryIn
from catalog.models import Resource
from catalog.warehouse import (
    open_data,
    quote,
)
from kernel.auth import Principal
from kernel.db import utcnow
from kernel.events import Event, publish
from kernel.identity import Role
from kernel.problems import Forbidden, Invalid, Phrase
from kernel.settings import get_settings

log = logging.getLogger("govshare")


def query(session: Session, who: Principal, grant_id: int, q: QueryIn) -> dict[str, Any]:
    """A page of the desensitized view, filtered on its (masked) columns; logged."""
    grant, app = svc.get_grant(session, who, grant_id)
    _check_query_allowed(who, grant, app)
    limit = get_settings().access_query_max_rows
    if q.size > limit:
        raise Invalid(f"A page holds at most {limit} rows.",
                      key="problem.access.page_limit", params={"limit": limit})
    resource = session.get(Resource, app.resource_id)
    assert resource is not None
    job = plan_job(session, app, grant, resource, "query",
               WorkCalendar.from_settings().local_date(utcnow()))
    with open_data(job.segments) as con:
        columns, rows = _page(con, job, q)
    publish(session, Event("grant.queried", who.actor,
                           svc._subjects(session, app) | {"grant": str(grant.id)},
                           {"filters": [f.model_dump(mode="json") for f in q.filters],
                            "columns": columns, "page": q.page, "size": q.size,
                            "rows": min(len(rows), q.size)}))
    return {"columns": columns, "rows": rows[:q.size], "page": q.page, "size": q.size,
            "has_more": len(rows) > q.size, "resource_version": job.version}


def _check_query_allowed(who: Principal, grant: Grant, app: Application) -> None:
    if who.department_id != app.requester_department_id or not who.has(Role.requester):
        raise Forbidden("Only requesters of the requesting department query its grants.")
    if app.delivery_method is not DeliveryMethod.api:
        raise Invalid(f"Grant {grant.id} delivers files; download its packages instead.",
                      key="problem.access.grant_is_files", params={"id": grant.id})
    if grant.revoked_at is not None:
        raise Gone(f"The grant was revoked on {grant.revoked_at:%Y-%m-%d}.",
                   key="problem.access.grant_revoked",
                   params={"revoked_at": grant.revoked_at})
    if not svc.grant_active(grant, app):
        state = Phrase(f"state.{app.state.value}", app.state.value)
        raise Gone(f"Grant {grant.id} is not active (application {state}).",
                   key="problem.access.grant_inactive", params={"id": grant.id, "state": state})


def _page(con: duckdb.DuckDBPyConnection, job: Job,
          q: QueryIn) -> tuple[list[str], list[list[Any]]]:
    view, columns = masked_select(con, job)
    by_name = {c.name: (quote(c.name), c.type) for c in columns}
    wanted = q.columns or [c.name for c in columns]
    unknown = [c for c in wanted if c not in by_name]
    if unknown:
        names = ", ".join(unknown)
        raise Invalid(f"Unknown columns: {names}.", key="problem.access.unknown_columns",
                      params={"names": names})
    where = masking.filter_sql(q.filters, by_name)
    projection = ", ".join(quote(c) for c in wanted)
    cur = con.execute(f"SELECT {projection} FROM ({view}) WHERE {where} LIMIT ? OFFSET ?",
                      [q.size + 1, (q.page - 1) * q.size])
    return wanted, [[_jsonable(v) for v in row] for row in cur.fetchall()]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
