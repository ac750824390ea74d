"""``GET /metrics`` for operators: Prometheus text exposition.

* ``govshare_http_requests_total{method, route, status}`` and
  ``govshare_http_request_duration_seconds{method, route}`` (histogram), per route
  *template* (``/api/v1/applications/{app_id}``, never the raw path: bounded label sets);
* ``govshare_applications{state}``, ``govshare_pipeline_stage_seconds{stage, quantile}`` and
  ``govshare_pipeline_stage_applications{stage}`` (applications first delivered in the last
  30 days) and ``govshare_access_log_entries_total{event_type}``, from the metrics mart (stale
  by at most GOVSHARE_METRICS_REFRESH_SECONDS);
* ``govshare_access_log_size`` (the signed log's tree size), read live;
* ``govshare_pseudonym_path{path}``: 1 for the pseudonym path in use (``duckdb-c-api``,
  ``arrow`` or ``sql``; access.native), 0 for the others.

Request counters are per process: with several workers, scrape each or run one. Access: the
static bearer token GOVSHARE_METRICS_TOKEN (for scrapers), or a leader's or admin's token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlmodel import select

from access import latency as sharing_latency
from access import native
from kernel.auth import DbSession, bearer_header, current_principal
from kernel.db import session_scope, utcnow
from kernel.identity import Role
from kernel.problems import Forbidden
from kernel.settings import get_settings
from metrics import mart
from metrics import service as svc
from translog.models import LogState

REGISTRY = CollectorRegistry()
REQUESTS = Counter("govshare_http_requests", "HTTP requests answered",
                   ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("govshare_http_request_duration_seconds",
                    "Time to answer an HTTP request", ["method", "route"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30))
STAGE_WINDOW = timedelta(days=30)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _template(scope)
            method = str(scope.get("method", ""))
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    """The matched route's template with its router prefix: FastAPI puts the route in the
    scope, its ``path`` relative to the including router, so the static prefix is taken from
    the request path (as many leading segments as the template lacks). Unmatched paths share
    one label, so label sets stay bounded."""
    template = getattr(scope.get("route"), "path", None)
    if not template:
        return "(unmatched)"
    own = template.strip("/")
    segments = str(scope.get("path", "")).strip("/").split("/")
    keep = len(segments) - (own.count("/") + 1 if own else 0)
    prefix = "/".join(segments[:max(keep, 0)])
    return ("/" + prefix if prefix else "") + (template if own else template.rstrip("/") or "/")


class PipelineCollector(Collector):
    """Figures read at scrape time from the mart and the log state."""

    def collect(self) -> Iterator[Metric]:
        snap = mart.snapshot()
        states = GaugeMetricFamily("govshare_applications", "Applications by state",
                                   labels=["state"])
        for state, n in svc.states(snap.con):
            states.add_metric([state], n)
        yield states
        since = svc.window(snap.con, None, None, None).end - STAGE_WINDOW
        quantiles = GaugeMetricFamily(
            "govshare_pipeline_stage_seconds", "Stage durations of applications first "
            "delivered in the last 30 days", labels=["stage", "quantile"])
        counts = GaugeMetricFamily("govshare_pipeline_stage_applications",
                                   "Applications measured per stage", labels=["stage"])
        for row in svc.stage_seconds(snap.con, since):
            counts.add_metric([row["stage"]], row["n"])
            for q, value in zip(map(str, sharing_latency.QUANTILES), row["q"] or [], strict=False):
                quantiles.add_metric([row["stage"], q], value)
        yield quantiles
        yield counts
        entries = CounterMetricFamily("govshare_access_log_entries",
                                      "Signed access-log entries by event type",
                                      labels=["event_type"])
        for event_type, n in svc.log_counts(snap.con):
            entries.add_metric([event_type], n)
        yield entries
        with session_scope(write=False) as session:
            size = session.exec(select(LogState.tree_size)).first() or 0
        yield GaugeMetricFamily("govshare_access_log_size",
                                "Entries in the signed access log (tree size)", value=size)
        yield GaugeMetricFamily("govshare_metrics_mart_age_seconds",
                                "Age of the metrics mart", value=max(
                                    (utcnow() - snap.as_of).total_seconds(), 0.0))


REGISTRY.register(PipelineCollector())


class PseudonymPathCollector(Collector):
    """1 for the pseudonym path this process uses, 0 for the others: alert when
    ``govshare_pseudonym_path{path="duckdb-c-api"}`` is 0 (a slower fallback, access.native)."""

    def collect(self) -> Iterator[Metric]:
        used = native.status().path
        gauge = GaugeMetricFamily("govshare_pseudonym_path", "Pseudonym path in use by this "
                                  "process (1) and the others (0)", labels=["path"])
        for path in (native.PATH_C_API, native.PATH_ARROW, native.PATH_SQL):
            gauge.add_metric([path], 1 if path == used else 0)
        yield gauge


REGISTRY.register(PseudonymPathCollector())


def _scraper(request: Request, session: DbSession) -> None:
    """The static scrape token, or a signed-in leader or admin."""
    configured = get_settings().metrics_token
    sent = bearer_header(request)
    if configured is not None and sent is not None and hmac.compare_digest(
            sent.encode(), configured.get_secret_value().encode()):
        return
    principal = current_principal(request, session)
    if not principal.has(Role.leader, Role.admin):
        raise Forbidden("The operators' metrics need the leader or admin role, or the "
                        "GOVSHARE_METRICS_TOKEN scrape token.")


router = APIRouter(tags=["ops"])


@router.get("/metrics", dependencies=[Depends(_scraper)],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics() -> Response:
    """Prometheus text exposition (request counts and latencies per route, pipeline stage
    durations, applications by state, access-log size)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
