"""Connects the bounded contexts to each other at run time (events, routers, background jobs).

Kept apart from ``app`` so that the CLI wires the same subscribers without building an app.
"""

from __future__ import annotations

from fastapi import APIRouter

from kernel import leader
from kernel.events import subscribe
from kernel.settings import Settings
from translog import api as log_api
from translog import cosigner as log_cosigner
from translog import service as log_service


def subscribe_events() -> None:
    """Send every domain event to the signed access log (same transaction)."""
    log_service.subscribe()
    # People's inboxes (and mail): what they must act on or want to know.
    from govshare import notifications

    notifications.install()
    # Quality queues a run for each registration and new data version (same transaction).
    from quality import queue as quality_queue

    subscribe(quality_queue.on_catalog_event)
    # The search index redoes a resource's document after each catalog change and each new
    # quality score (quality.run_finished): a feed row in the same transaction. Subscribed
    # here, so that neither context imports the other for it.
    from catalog.search import feed as search_feed

    subscribe(search_feed.on_event)
    # The DCAT-AP export carries each resource's scores as W3C DQV measurements; the catalog
    # takes them from a contributor registered here, without importing quality.
    from catalog import export as catalog_export
    from quality import dqv

    catalog_export.contribute(dqv.measurements, dqv.CONTEXT)


def context_routers() -> list[APIRouter]:
    """Routers of the bounded contexts, mounted under /api/v1."""
    from access.api import routers as access_routers
    from metrics.api import router as metrics_router
    from quality.api import router as quality_router

    return [log_api.router, quality_router, *access_routers, metrics_router]


def root_routers() -> list[APIRouter]:
    """Routers mounted at the site root, outside /api/v1: well-known URIs (RFC 8615) and the
    operators' Prometheus /metrics."""
    from metrics.prometheus import router as prometheus_router

    return [log_api.well_known, prometheus_router]


def start(settings: Settings) -> None:
    """Background work owned by the process: the quality worker and scheduler, the
    periodic-delivery scheduler, and this machine's search index writer."""
    from access import scheduler as access_scheduler
    from catalog.search import feed as search_feed
    from quality import jobs as quality_jobs

    search_feed.start()
    quality_jobs.start()
    access_scheduler.start(settings)
    log_cosigner.start()  # asks the witnesses to cosign new checkpoints (if any configured)
    from govshare import notifications

    notifications.start()  # replies due soon or overdue, hourly (once a day per application)


def stop() -> None:
    from access import scheduler as access_scheduler
    from catalog.search import feed as search_feed
    from quality import jobs as quality_jobs

    search_feed.stop()
    quality_jobs.stop()
    access_scheduler.stop()
    log_cosigner.stop()
    from govshare import notifications

    notifications.stop()
    leader.release_all()  # another worker process takes over the background jobs
