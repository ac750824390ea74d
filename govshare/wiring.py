"""Connects the bounded contexts to each other at run time (events, routers, background jobs).

Kept apart from ``app`` so that the CLI wires the same subscribers without building an app.
"""

from __future__ import annotations

from fastapi import APIRouter

from govshare.settings import Settings


def subscribe_events() -> None:
    """Send every domain event to the signed access log (same transaction)."""
    try:
        from access.log import service as log_service
    except ImportError:  # the log arrives with its own issue
        return
    log_service.subscribe()


def context_routers() -> list[APIRouter]:
    routers: list[APIRouter] = []
    try:
        from access.log.api import router as log_router, well_known
    except ImportError:
        return routers
    routers.append(log_router)
    routers.append(well_known)
    return routers


def start(settings: Settings) -> None:
    """Background work owned by the process (schedulers); nothing yet."""


def stop() -> None:
    pass
