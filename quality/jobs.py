"""Quality's background work, as jobs (kernel/jobs.py) run by ``govshare worker`` processes.

* ``quality.run`` — one queued run (``quality.queue`` enqueues it with the run, in the same
  transaction). At most one per worker process at a time (GX is not shared between threads,
  and a run already uses DuckDB's threads); a resource's runs stay serial (a run whose
  resource has another running waits). The run keeps its own accounting (``quality.runs``:
  attempts, a backoff after a transient failure, failure reasons): the job waits for the
  backoff and runs it again. A worker killed mid-run stops renewing the job's lease; the
  job is claimed again by another worker once it expires, which queues the interrupted run
  again (``runs.resume_interrupted``) and runs it: the run stores one result.
* ``quality.schedule`` — periodic (``GOVSHARE_QUALITY_SCHEDULE_MINUTES``): queue a run for
  every resource whose newest run is older than the interval, runs whose own lease lapsed
  (``runs.reclaim_interrupted``) queued again, and a job for any queued run without one.

``run_pending`` and ``tick`` do the same work synchronously in this process (tests, the CLI).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from kernel import jobs
from kernel.db import session_scope
from quality import queue, runs
from quality.models import QualityRun, RunStatus
from quality.settings import get_quality_settings

log = logging.getLogger("govshare.quality")

SCHEDULE = "quality.schedule"
# Bounds one call of run_pending, so that a flood of queued runs cannot pin it forever.
_MAX_BATCHES = 50


@jobs.handler(queue.RUN, max_attempts=5, per_process=1)
def _run(payload: dict[str, Any]) -> None:
    run_id = int(payload["run"])
    if runs.resource_busy(run_id):
        raise jobs.Defer(5, "another run of the same resource is in progress")
    current = jobs.current()
    if current is not None and current.attempt > 1:
        runs.resume_interrupted(run_id)  # this job's last worker died mid-run
    status, wait = runs.waiting(run_id)
    if status is RunStatus.queued and wait > 0:
        raise jobs.Defer(wait, "the run is backing off after a transient failure")
    if runs.execute(run_id) is RunStatus.queued:  # failed, queued again after a backoff
        raise jobs.Defer(max(runs.waiting(run_id)[1], 1.0), "retrying the run")


@jobs.handler(SCHEDULE, max_attempts=1)
def _schedule(_payload: dict[str, Any]) -> None:
    runs.reclaim_interrupted()
    runs.enqueue_scheduled()
    with session_scope() as session:  # runs queued before jobs existed, or orphaned
        for run_id in session.exec(select(QualityRun.id).where(
                QualityRun.status == RunStatus.queued)):
            jobs.enqueue(session, queue.RUN, {"run": run_id}, key=f"{queue.RUN}:{run_id}")


def declare_schedules() -> None:
    minutes = get_quality_settings().schedule_minutes
    jobs.every(SCHEDULE, SCHEDULE, timedelta(minutes=minutes))


def run_pending(now: datetime | None = None) -> dict[int, RunStatus | None]:
    """Run every due queued run now, in this process, in parallel across resources
    (tests, the CLI); returns run id → outcome. Their jobs find them done later."""
    done: dict[int, RunStatus | None] = {}
    workers = get_quality_settings().workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quality-run") as pool:
        for _ in range(_MAX_BATCHES):
            batch = [i for i in runs.queued_run_ids() if i not in done]
            if not batch:
                break
            for run_id, status in zip(batch, pool.map(lambda i: runs.execute(i, now), batch),
                                      strict=True):
                done[run_id] = status
    return done


def tick(now: datetime | None = None) -> dict[int, RunStatus | None]:
    """One scheduler tick, synchronously: queue what is due (and what a stopped process
    left running), then run everything queued."""
    runs.reclaim_interrupted(now)
    runs.enqueue_scheduled(now)
    return run_pending(now)
