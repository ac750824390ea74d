"""Access's background work, as jobs (kernel/jobs.py) run by ``govshare worker`` processes.

* ``access.deliver`` — produce an application's package. Enqueued by the request that
  approves (or files an unconditional application, accepts conditions, tightens the plan) in
  the same transaction, and by the periodic tick. Keyed per application, so one application
  has at most one delivery job pending or running; a crash mid-delivery is re-run by another
  worker once the lease expires (``access.delivery`` sweeps the dead job's files first, and a
  run is unique per grant and period, so nothing is delivered twice).
* ``access.tick`` — a periodic job (``GOVSHARE_ACCESS_SCHEDULER_SECONDS``): end grants past
  their period, sweep dead jobs' files, and enqueue the deliveries that are due (first ones
  that did not happen, periodic grants' new periods). It fires once per period however many
  workers run.

``run_due`` does a whole tick synchronously in this process, deliveries included
(``govshare access run-due``, the tests, the demo's history).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from access import delivery, planning, sweep
from access import service as svc
from access.calendar import WorkCalendar
from kernel import db, jobs
from kernel.db import utcnow
from kernel.problems import Problem, params_to_json
from kernel.settings import Settings

log = logging.getLogger("govshare")
# A first delivery not done this long after its approval is retried (crash, restart).
RETRY_AFTER = timedelta(minutes=2)
DELIVER, TICK = "access.deliver", "access.tick"
# A delivery job's outcomes (its ``result``, read by ``access.delivery_jobs``).
DELIVERED, BLOCKED, REFUSED = "delivered", "blocked", "refused"


@dataclass
class TickReport:
    expired: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    swept: list[str] = field(default_factory=list)
    enqueued: list[int] = field(default_factory=list)


def enqueue_delivery(session: Session, app_id: int, run_key: str | None = None) -> int | None:
    """Queue the application's delivery in the caller's transaction (one per application
    at a time: a second request while one is pending is the same job); its job's id."""
    return jobs.enqueue(session, DELIVER, {"app": app_id, "run_key": run_key},
                        key=f"{DELIVER}:{app_id}")


def _due(now: datetime, report: TickReport) -> list[tuple[int, str | None]]:
    report.swept = sweep.sweep()
    with db.session_scope(write=True) as session:
        report.expired = svc.expire_due(session, now)
    with db.session_scope(write=False) as session:
        today = WorkCalendar.from_settings().local_date(now)
        due: list[tuple[int, str | None]] = [
            (a, None) for a in planning.pending_first_deliveries(session, now - RETRY_AFTER)]
        due += [(a, k) for a, k in planning.due_periodic(session, today)]
    return due


def tick(now: datetime | None = None) -> TickReport:
    """The periodic job: expiry and sweeping here, deliveries enqueued for any worker."""
    report = TickReport()
    due = _due(now or utcnow(), report)
    with db.session_scope(write=True) as session:
        for app_id, run_key in due:
            enqueue_delivery(session, app_id, run_key)
            report.enqueued.append(app_id)
    return report


def run_due(now: datetime | None = None) -> TickReport:
    """One whole tick, synchronously, deliveries included (also ``govshare access run-due``)."""
    report = TickReport()
    for app_id, run_key in _due(now or utcnow(), report):
        try:
            delivery.deliver(app_id, run_key=run_key)
            report.delivered.append(app_id)
        except Problem as problem:  # blocked, revoked meanwhile, not yet in its period
            report.failed[app_id] = problem.detail
        except Exception as exc:  # one bad grant must not stop the others
            log.exception("delivery of application %s failed", app_id)
            report.failed[app_id] = type(exc).__name__
    return report


@jobs.handler(DELIVER, max_attempts=5)
def _deliver(payload: dict[str, Any]) -> dict[str, Any]:
    """Returns the outcome, kept as the job's result for whoever follows the job."""
    app_id = int(payload["app"])
    try:
        done = delivery.deliver(app_id, run_key=payload.get("run_key"))
    except Problem as problem:
        # Blocked by the desensitization check (recorded on the application), revoked, or
        # not yet in its period (the tick enqueues it again then): an outcome, not a failure.
        log.info("delivery of application %s not produced: %s", app_id, problem.detail)
        return refusal_of(problem)
    return {"outcome": DELIVERED, "delivery": done.id, "run_key": done.run_key}


def refusal_of(problem: Problem) -> dict[str, Any]:
    """A refusal as a job's result: the problem's English text with its catalogue key and
    parameters, so its status can be shown in the reader's language later."""
    body = problem.body()
    return {"outcome": BLOCKED if isinstance(problem, planning.DeliveryBlocked) else REFUSED,
            "problem": {**body, "key": problem.key,
                        "params": params_to_json(problem.params),
                        "slug": problem.slug}}


@jobs.handler(TICK, max_attempts=1)
def _tick(_payload: dict[str, Any]) -> None:
    tick()


def declare_schedules(settings: Settings) -> None:
    """The periodic tick; ``GOVSHARE_ACCESS_SCHEDULER_SECONDS=0`` turns it off."""
    jobs.every(TICK, TICK, timedelta(seconds=settings.access_scheduler_seconds))
