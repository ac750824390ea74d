"""Background work: a worker that runs queued runs (a small thread pool, one run per resource
at a time) and an in-process scheduler that queues a run for every resource once per
interval. ``start``/``stop`` are called from ``govshare.wiring``; ``tick`` and
``run_pending`` do the same work synchronously (tests, the CLI, an external cron)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from kernel import leader
from kernel.db import utcnow
from quality import queue, runs
from quality.models import RunStatus
from quality.settings import get_quality_settings

log = logging.getLogger("govshare.quality")

_thread: threading.Thread | None = None
_stop = threading.Event()
# Bounds one call of run_pending, so that a flood of queued runs cannot pin it forever.
_MAX_BATCHES = 50


def run_pending(now: datetime | None = None) -> dict[int, RunStatus | None]:
    """Run every queued run, in parallel across resources; returns run id → outcome."""
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


def _loop(poll: float, schedule_minutes: int) -> None:
    next_schedule = time.monotonic()
    while not _stop.is_set():
        try:
            # With N server processes only the leader works (kernel.leader); a claim is
            # atomic anyway, but two processes could run two queued runs of one resource.
            if leader.is_leader():
                runs.reclaim_interrupted()  # runs of a stopped process: queued again
                if schedule_minutes and time.monotonic() >= next_schedule:
                    runs.enqueue_scheduled(utcnow())
                    next_schedule = time.monotonic() + schedule_minutes * 60
                if poll:
                    run_pending()
        except Exception:  # keep the worker alive; the run itself records its failure
            log.exception("quality worker iteration failed")
        # Poll at least every LEASE/3 so an interrupted run is picked up within a minute.
        queue.wake.wait(min(poll or schedule_minutes * 60, runs.LEASE.total_seconds() / 3))
        queue.wake.clear()


def start() -> None:
    """Start the worker/scheduler thread, unless both are disabled by settings."""
    global _thread
    settings = get_quality_settings()
    if _thread is not None or (not settings.poll_seconds and not settings.schedule_minutes):
        return
    _stop.clear()
    _thread = threading.Thread(target=_loop, name="quality-worker", daemon=True,
                               args=(settings.poll_seconds, settings.schedule_minutes))
    _thread.start()


def stop(timeout: float = 60.0) -> None:
    global _thread
    if _thread is None:
        return
    _stop.set()
    queue.wake.set()
    _thread.join(timeout)
    _thread = None
