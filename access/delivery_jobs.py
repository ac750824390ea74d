"""A requester's "deliver now": the request checks and queues, a worker produces, the client
follows the job.

``POST /applications/{id}/deliver`` never builds the package itself (that is minutes of
DuckDB work on a big table, and a crash mid-way belongs in a worker, whose job another worker
re-runs). The request checks what it can answer at once — the move is legal for the caller,
the period of use has begun and not ended, an aggregate grant has budget left — and then:

* the period's package exists already: answer it (200), nothing is queued;
* otherwise queue the ``access.deliver`` job (``access.scheduler``) in the request's
  transaction and answer 202 with the job's status URL. The job is keyed per application, so
  a double click, a retry or the periodic tick while one is pending or running is the *same*
  job: one delivery.

The status (``status``) follows the job and then what it produced: ``queued`` → ``running``
→ ``delivered`` (with the delivery), or ``blocked`` (the desensitization check withheld the
package; the provider must tighten the plan), ``refused`` (revoked meanwhile, out of its
period, budget spent) or ``failed`` (the worker gave up after its retries; the operators see
the error in the admin console's background work). The job's ``result`` (``kernel.jobs``)
carries the outcome, written by the worker (``access.scheduler``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from access import aggregate, delivery, scheduler
from access import service as svc
from access.models import Delivery
from access.scheduler import BLOCKED, DELIVERED, REFUSED
from kernel import jobs, policy
from kernel.auth import Principal
from kernel.problems import NotFound, localize, params_from_json

QUEUED, RUNNING, FAILED = "queued", "running", "failed"
FINAL = frozenset({DELIVERED, BLOCKED, REFUSED, FAILED})


@dataclass
class Status:
    application: int
    job: int | None
    state: str
    attempts: int = 0
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    delivery: Delivery | None = None
    problem: dict[str, Any] | None = None


def request(session: Session, who: Principal, app_id: int) -> Status:
    """Check and queue (in the caller's transaction); see the module's docstring."""
    app, grant, _, _, done = delivery.admissible(session, app_id, who)
    if done is not None:
        return Status(app_id, None, DELIVERED, delivery=done)
    if app.aggregate:  # a spent budget is refused now, not after a trip through the queue
        spec = aggregate.AggregateSpec.model_validate(app.aggregate)
        aggregate.check_budget(spec, grant.privacy_spent, grant_id=grant.id)
    job_id = scheduler.enqueue_delivery(session, app_id)
    assert job_id is not None
    found = session.get(jobs.Job, job_id)
    assert found is not None
    return _status(session, who, app_id, found, "en")


def status(session: Session, who: Principal, app_id: int, job_id: int,
           lang: str = "en") -> Status:
    """Where the application's delivery job stands (everyone who may see the application)."""
    svc.get_application(session, who, app_id)
    job = session.get(jobs.Job, job_id)
    if job is None or job.kind != scheduler.DELIVER or int(job.payload.get("app", -1)) != app_id:
        raise NotFound(f"Application {app_id} has no delivery job {job_id} (finished jobs are "
                       "kept for a week; its deliveries are listed at "
                       f"/api/v1/deliveries?application={app_id}).",
                       key="problem.access.no_delivery_job",
                       params={"app_id": app_id, "job_id": job_id})
    return _status(session, who, app_id, job, lang)


def active(session: Session, app_id: int) -> str | None:
    """``queued`` or ``running`` while the application's delivery job is (the web page says
    the package is on its way), else None."""
    state = session.exec(select(jobs.Job.state).where(
        jobs.Job.key == f"{scheduler.DELIVER}:{app_id}",
        col(jobs.Job.state).in_([jobs.JobState.pending.value, jobs.JobState.running.value]))
    ).first()
    if state is None:
        return None
    return RUNNING if state == jobs.JobState.running.value else QUEUED


def _status(session: Session, who: Principal, app_id: int, job: jobs.Job,
            lang: str) -> Status:
    out = Status(app_id, job.id, QUEUED, job.attempts, job.created_at, job.started_at,
                 job.finished_at)
    if job.state == jobs.JobState.running.value:
        out.state = RUNNING
    elif job.state == jobs.JobState.failed.value:
        out.state = FAILED
        # The error text is for operators (it may name files and hosts): the admin console.
        detail = (f"The delivery failed {job.attempts} times and will not be retried; the "
                  "operators see why in the admin console (background work). Ask again "
                  "later, or ask the provider.")
        if policy.is_data_bureau(session, who):
            detail += f" Last error: {job.error}"
        out.problem = {"status": 500, "title": "Delivery failed", "detail": detail}
    elif job.state == jobs.JobState.done.value:
        result = job.result or {}
        produced = session.get(Delivery, int(result["delivery"])) \
            if result.get("delivery") is not None else None
        if produced is not None:
            out.state, out.delivery = DELIVERED, produced
        else:
            out.state = BLOCKED if result.get("outcome") == BLOCKED else REFUSED
            out.problem = _localized(result.get("problem") or {}, lang)
    return out


def _localized(stored: dict[str, Any], lang: str) -> dict[str, Any]:
    out = {k: v for k, v in stored.items() if k not in ("key", "params", "slug")}
    if stored.get("detail"):
        out["detail"] = localize(lang, stored.get("key"),
                                 params_from_json(stored.get("params") or {}), stored["detail"])
    if stored.get("slug"):
        out["title"] = localize(lang, f"problem.title.{stored['slug']}", {},
                                stored.get("title") or "")
    return out
