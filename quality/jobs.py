"""Quality's background work, as jobs (kernel/jobs.py) run by ``govshare worker`` processes.

* ``quality.run`` — one queued run (``quality.queue`` enqueues it with the run, in the same
  transaction). At most one per worker process at a time (GX is not safe to share between
  threads, and a run already uses DuckDB's threads); a resource's runs stay serial (a run
  whose resource has another running waits). A worker killed mid-run stops renewing the
  job's lease, and another worker resumes the run (``runs.execute(resume=True)``): the run
  stores one result either way.
* ``quality.schedule`` — periodic (``GOVSHARE_QUALITY_SCHEDULE_MINUTES``): queue a run for
  every resource whose newest run is older than the interval.

``run_pending`` and ``tick`` do the same work synchronously in this process (tests, the CLI).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from kernel import jobs
from quality import queue, runs
from quality.models import RunStatus
from quality.settings import get_quality_settings

log = logging.getLogger("govshare.quality")

SCHEDULE = "quality.schedule"
# While ``run_pending`` drains: the time runs are scored at, and where outcomes are collected.
_scoring_now: ContextVar[datetime | None] = ContextVar("quality_scoring_now", default=None)
_outcomes: ContextVar[dict[int, RunStatus | None] | None] = ContextVar("quality_outcomes",
                                                                       default=None)


@jobs.handler(queue.RUN, max_attempts=3, per_process=1)
def _run(payload: dict[str, Any]) -> None:
    run_id = int(payload["run"])
    if runs.resource_busy(run_id):
        raise jobs.Defer(5, "another run of the same resource is in progress")
    status = runs.execute(run_id, _scoring_now.get(), resume=True)
    collected = _outcomes.get()
    if collected is not None:
        collected[run_id] = status


@jobs.handler(SCHEDULE, max_attempts=1)
def _schedule(_payload: dict[str, Any]) -> None:
    runs.enqueue_scheduled()


def declare_schedules() -> None:
    minutes = get_quality_settings().schedule_minutes
    jobs.every(SCHEDULE, SCHEDULE, timedelta(minutes=minutes))


def run_pending(now: datetime | None = None) -> dict[int, RunStatus | None]:
    """Run every queued run now, in this thread; returns run id → outcome."""
    done: dict[int, RunStatus | None] = {}
    token_now, token_out = _scoring_now.set(now), _outcomes.set(done)
    try:
        jobs.run_pending([queue.RUN])
    finally:
        _scoring_now.reset(token_now)
        _outcomes.reset(token_out)
    return done


def tick(now: datetime | None = None) -> dict[int, RunStatus | None]:
    """One scheduler tick, synchronously: queue what is due, then run everything queued."""
    runs.enqueue_scheduled(now)
    return run_pending(now)
