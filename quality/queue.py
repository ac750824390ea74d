"""The run queue: rows of ``quality_run`` in status ``queued``, each with a ``quality.run``
job (kernel/jobs.py), both inserted in the caller's transaction (so a registration and its
queued run commit or roll back together); a ``govshare worker`` runs it (``quality.jobs``)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from catalog.models import Resource
from kernel import jobs
from kernel.events import Actor, Event
from quality.models import QualityRun, RunStatus, RunTrigger

SYSTEM = Actor(user_id=None, department_id=None, kind="system")

RUN = "quality.run"

_COALESCING = (RunTrigger.registration, RunTrigger.new_version, RunTrigger.schedule)


def enqueue(session: Session, resource: Resource, trigger: RunTrigger, *,
            version: int | None = None, requested_by: int | None = None,
            notice_id: int | None = None) -> QualityRun:
    """Queue a run of the data as of ``version`` (default: current). Automatic triggers
    coalesce with a run already queued for the same data version."""
    version = version or resource.current_version
    if trigger in _COALESCING:
        queued = session.exec(select(QualityRun).where(
            QualityRun.resource_id == resource.id, QualityRun.data_version == version,
            QualityRun.status == RunStatus.queued,
            col(QualityRun.trigger).in_(_COALESCING))).first()
        if queued is not None:
            return queued
    run = QualityRun(resource_id=resource.id or 0, data_version=version, trigger=trigger,
                     requested_by=requested_by, notice_id=notice_id)
    session.add(run)
    session.flush()
    jobs.enqueue(session, RUN, {"run": run.id}, key=f"{RUN}:{run.id}")
    return run


def on_catalog_event(session: Session, event: Event) -> None:
    """Subscriber: every registration and new data version queues a run, in the same
    transaction; GX never runs inside the catalog's request."""
    triggers = {"resource.registered": RunTrigger.registration,
                "resource.version_added": RunTrigger.new_version}
    trigger = triggers.get(event.type)
    if trigger is None:
        return
    resource = session.exec(select(Resource).where(
        Resource.code == event.subjects["resource"])).first()
    if resource is None:
        return
    version = int(event.subjects.get("version") or resource.current_version)
    enqueue(session, resource, trigger, version=version, requested_by=event.actor.user_id)
