"""HTTP API of the sharing metrics (docs/metrics.md; contract in the web UI's dashboard).

City-wide figures without personal data: leaders and the data bureau's auditors. Every
endpoint answers JSON, or its main table as CSV with ``format=csv``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import date
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from catalog.export import safe_cell
from kernel.auth import Principal, require
from kernel.identity import Role
from metrics import mart
from metrics import service as svc

router = APIRouter(prefix="/metrics", tags=["metrics"])

Reader = Annotated[Principal, Depends(require(Role.leader, Role.auditor))]
From = Annotated[date | None, Query(alias="from", description="first day (local), inclusive; "
                                    "default: 179 days before 'to'")]
To = Annotated[date | None, Query(description="last day (local), inclusive; default: today")]
Dept = Annotated[str | None, Query(description="department code: only flows it provides or "
                                   "requests")]
Format = Annotated[Literal["json", "csv"], Query(description="csv: the main table")]


def _answer(name: str, start: date | None, end: date | None, department: str | None,
            fmt: str, build: Callable[[duckdb.DuckDBPyConnection, svc.Window], dict[str, Any]],
            table: Callable[[duckdb.DuckDBPyConnection, svc.Window, dict[str, Any]],
                            Sequence[dict[str, Any]]]) -> Any:
    snap = mart.snapshot()
    w = svc.window(snap.con, start, end, department)
    body = build(snap.con, w)
    if fmt == "csv":
        return _csv(f"{name}-{w.start}-{w.end}.csv", svc.flatten(table(snap.con, w, body)))
    return {**body, "as_of": snap.as_of.isoformat()}


def _csv(filename: str, rows: Sequence[dict[str, Any]]) -> Response:
    buf = io.StringIO()
    buf.write("\ufeff")  # Excel reads UTF-8 (Chinese names) only with a BOM
    writer = csv.writer(buf, lineterminator="\r\n")
    if rows:
        writer.writerow(list(rows[0]))
        writer.writerows([safe_cell(v) for v in r.values()] for r in rows)
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/overview")
def overview(_: Reader, start: From = None, end: To = None, department: Dept = None,
             format: Format = "json") -> Any:
    """Headline figures of the window; overdue, notices and quality are as of now."""
    return _answer("overview", start, end, department, format, svc.overview,
                   lambda c, w, body: [body])


@router.get("/volume")
def volume(_: Reader, start: From = None, end: To = None, department: Dept = None,
           bucket: Literal["day", "week", "month"] = "week", format: Format = "json") -> Any:
    """Applications, approvals, deliveries, rows and bytes over time, by department and by
    resource (top 20). CSV: the series."""
    return _answer("volume", start, end, department, format,
                   lambda c, w: svc.volume(c, w, bucket), lambda c, w, body: body["series"])


@router.get("/flows")
def flows(_: Reader, start: From = None, end: To = None, department: Dept = None,
          format: Format = "json") -> Any:
    """Provider × requester matrix of applications, deliveries and rows."""
    return _answer("flows", start, end, department, format, svc.flows,
                   lambda c, w, body: body["cells"])


@router.get("/latency")
def latency(_: Reader, start: From = None, end: To = None, department: Dept = None,
            by: Literal["overall", "provider", "requester", "sharing_type", "stage"] = "overall",
            bucket: Literal["day", "week", "month"] = "week", format: Format = "json") -> Any:
    """Sharing latency (filing → first delivery) percentiles, in hours and working days,
    grouped, and its trend. CSV: the groups."""
    return _answer("latency", start, end, department, format,
                   lambda c, w: svc.latency(c, w, by, bucket), lambda c, w, body: body["groups"])


@router.get("/timeliness")
def timeliness(_: Reader, start: From = None, end: To = None, department: Dept = None,
               format: Format = "json") -> Any:
    """On-time replies against the working-day deadline, overdue applications now, approval
    and rejection rates. CSV: every overdue application."""
    return _answer("timeliness", start, end, department, format, svc.timeliness,
                   lambda c, w, body: svc.overdue_rows(c, w, limit=None))


@router.get("/failures")
def failures(_: Reader, start: From = None, end: To = None, department: Dept = None,
             format: Format = "json") -> Any:
    """Rejections by reason, bounces per application, notice violations, blocked deliveries,
    time waiting on conditions. CSV: rejections by reason."""
    return _answer("failures", start, end, department, format, svc.failures,
                   lambda c, w, body: body["rejections_by_reason"])


@router.get("/quality")
def quality(_: Reader, start: From = None, end: To = None, department: Dept = None,
            format: Format = "json") -> Any:
    """Current quality: department ranking, score distribution, open notices, lowest
    resources. CSV: the ranking."""
    return _answer("quality", start, end, department, format, svc.quality,
                   lambda c, w, body: body["ranking"])


@router.get("/resources")
def resources(_: Reader, start: From = None, end: To = None, department: Dept = None,
              format: Format = "json") -> Any:
    """Most requested resources, and those catalogued but never requested or never
    delivered. CSV: every never-requested resource."""
    return _answer("resources", start, end, department, format, svc.resources,
                   lambda c, w, body: svc.resource_list(c, w, "never_requested", None))


@router.get("/feedback")
def feedback(_: Reader, start: From = None, end: To = None, department: Dept = None,
             format: Format = "json") -> Any:
    """Requesters' ratings of deliveries per provider, and the latest comments. CSV: per
    provider."""
    return _answer("feedback", start, end, department, format, svc.feedback,
                   lambda c, w, body: body["by_provider"])
