"""The catalog's background work (run by ``govshare worker``): database-source pulls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session

from kernel import jobs
from kernel.db import session_scope

PULL = "catalog.source_pull"
DUE = "catalog.sources_due"
# How often the worker looks for sources whose cycle has come round.
DUE_EVERY = timedelta(minutes=1)


def enqueue_pull(session: Session, source_id: int) -> None:
    """Queue one pull in the caller's transaction (at most one pending per source)."""
    jobs.enqueue(session, PULL, {"source": source_id}, key=f"{PULL}:{source_id}")


@jobs.handler(PULL, max_attempts=1)  # a failed pull is recorded and retried by its own backoff
def _pull(payload: dict[str, Any]) -> None:
    from catalog import sources

    sources.pull(int(payload["source"]))


@jobs.handler(DUE, max_attempts=1)
def _due(_payload: dict[str, Any]) -> None:
    from catalog import sources

    due = sources.due()
    if due:
        with session_scope() as session:
            for source_id in due:
                enqueue_pull(session, source_id)


def declare_schedules() -> None:
    jobs.every(DUE, DUE, DUE_EVERY)
