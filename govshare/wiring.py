"""Connects the bounded contexts to each other at run time (events, routers).

Kept apart from ``app`` so that the CLI and ``govshare worker`` (``govshare.worker``, which
registers the contexts' job handlers) wire the same subscribers without building an app.
"""

from __future__ import annotations

from fastapi import APIRouter

from kernel.events import subscribe
from kernel.settings import Settings
from translog import api as log_api
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
    """What a web process keeps up to date on its own host: this machine's search index
    (``catalog.search.feed``, one index per host). All other background work is jobs, run by
    ``govshare worker`` processes (govshare/worker.py)."""
    from catalog.search import feed as search_feed

    search_feed.start()


def stop() -> None:
    from catalog.search import feed as search_feed

    search_feed.stop()
