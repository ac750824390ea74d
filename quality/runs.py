"""Executing a queued run: claim it, validate with GX outside any transaction, store the
masked result and the scores (or the error: a failed run never has a score), verify
notices, and publish ``quality.run_finished``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog.models import Resource, ResourceStatus, UpdateCycle
from catalog.service import get_resource, segments_for
from kernel.auth import Principal
from kernel.db import session_scope, utcnow
from kernel.events import Actor, Event, publish
from kernel.identity import Role
from kernel.problems import Conflict, Forbidden
from quality import notices, queue, scoring, suites
from quality.masked import ColumnMask, scrub_error
from quality.models import QualityRun, QualityScore, QualityWeights, RunStatus, RunTrigger
from quality.settings import get_quality_settings
from quality.validate import Validation, run_suite

log = logging.getLogger("govshare.quality")



@dataclass(frozen=True)
class _Job:
    """Everything a run needs, read in the claiming transaction."""

    run_id: int
    code: str
    segments: list[Path]
    configs: list[dict[str, Any]]
    masks: dict[str, ColumnMask]


# --- requests --------------------------------------------------------------------------------

def request_run(session: Session, who: Principal, code: str) -> QualityRun:
    """On demand: auditors for any resource, publishers for their own department's."""
    resource = get_resource(session, code)
    own = who.has(Role.publisher) and who.department_id == resource.provider_id
    if not (who.has(Role.auditor) or own):
        raise Forbidden(f"Only auditors and publishers of the provider department can run "
                        f"quality checks on {code}.")
    if resource.current_version == 0:
        raise Conflict(f"Resource {code} has no data to check.")
    run = queue.enqueue(session, resource, RunTrigger.on_demand, requested_by=who.user_id)
    queue.wake.set()
    return run


def enqueue_scheduled(now: datetime | None = None) -> list[int]:
    """Queue a scheduled run for every active resource with data whose newest run is older
    than the schedule interval (or that has none)."""
    interval = timedelta(minutes=get_quality_settings().schedule_minutes)
    now = now or utcnow()
    queued: list[int] = []
    with session_scope() as session:
        for resource in session.exec(select(Resource).where(
                Resource.status == ResourceStatus.active, col(Resource.current_version) > 0)):
            last = session.exec(select(QualityRun.queued_at).where(
                QualityRun.resource_id == resource.id)
                .order_by(col(QualityRun.queued_at).desc())).first()
            if last is None or now - last >= interval:
                queued.append(queue.enqueue(session, resource, RunTrigger.schedule).id or 0)
    return queued


# A run still "running" this long after it started was cut off by a stopped process.
INTERRUPTED_AFTER = timedelta(hours=1)


def fail_interrupted(now: datetime | None = None) -> int:
    """Record runs orphaned by a process that stopped mid-run as failed (never scored)."""
    cutoff = (now or utcnow()) - INTERRUPTED_AFTER
    with session_scope() as session:
        result = session.execute(update(QualityRun).where(
            col(QualityRun.status) == RunStatus.running, col(QualityRun.started_at) < cutoff)
            .values(status=RunStatus.failed, finished_at=utcnow(),
                    error="interrupted: the process running it stopped"))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def queued_run_ids(limit: int = 100) -> list[int]:
    """Queued runs, oldest first, at most one per resource (a resource's runs are serial)."""
    with session_scope(write=False) as session:
        rows = session.exec(select(QualityRun.id, QualityRun.resource_id)
                            .where(QualityRun.status == RunStatus.queued)
                            .order_by(col(QualityRun.queued_at), col(QualityRun.id))
                            .limit(limit)).all()
    seen: set[int] = set()
    picked = []
    for run_id, resource_id in rows:
        if resource_id not in seen:
            seen.add(resource_id)
            picked.append(int(run_id or 0))
    return picked


# --- execution -------------------------------------------------------------------------------

def execute(run_id: int, now: datetime | None = None) -> RunStatus | None:
    """Run one queued run to completion; None if another worker had claimed it."""
    try:
        job = _claim(run_id)
    except Exception as exc:
        _fail(run_id, exc)
        return RunStatus.failed
    if job is None:
        return None
    now = now or utcnow()
    settings = get_quality_settings()
    try:
        validation = run_suite(job.segments, job.configs, job.masks,
                               run_date=now.astimezone(scoring.CST).date(),
                               max_examples=settings.examples,
                               threads=settings.duckdb_threads or None)
        _raise_if_generated_failed(validation)
    except Exception as exc:
        _fail(run_id, exc)
        return RunStatus.failed
    _store(job, validation, now)
    return RunStatus.succeeded


def _claim(run_id: int) -> _Job | None:
    with session_scope() as session:
        claimed = session.execute(update(QualityRun).where(
            col(QualityRun.id) == run_id, col(QualityRun.status) == RunStatus.queued)
            .values(status=RunStatus.running, started_at=utcnow()))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        run = session.get(QualityRun, run_id)
        assert run is not None
        resource = session.get(Resource, run.resource_id)
        assert resource is not None  # foreign key
        suite = suites.current_suite(session, resource, run.data_version)
        run.suite_version = suite.version
        session.add(run)
        masks = {i.name: ColumnMask(i.kind, i.sensitivity) for i in resource.items}
        return _Job(run_id, resource.code, segments_for(session, resource, run.data_version),
                    list(suite.suite["expectations"]), masks)


def _raise_if_generated_failed(validation: Validation) -> None:
    """A generated expectation that GX could not evaluate means the run itself failed; a
    custom one that could not be evaluated is a failed expectation, shown as such."""
    for outcome in validation.expectations:
        if outcome.error and outcome.source == "generated":
            raise RuntimeError(f"{outcome.rule} could not be evaluated: {outcome.error}")


def _error_text(exc: BaseException) -> str:
    """The error, safe to show to auditors (``scrub_error``)."""
    return f"{type(exc).__name__}: {scrub_error(str(exc))}"


def _fail(run_id: int, exc: BaseException) -> None:
    log.warning("quality run %s failed: %s", run_id, type(exc).__name__)
    with session_scope() as session:
        run = session.get(QualityRun, run_id)
        if run is None:
            return
        run.status, run.finished_at, run.error = RunStatus.failed, utcnow(), _error_text(exc)
        session.add(run)
        resource = session.get(Resource, run.resource_id)
        _finished_event(session, run, resource.code if resource else "", None)


def current_weights(session: Session) -> QualityWeights:
    stored = session.exec(select(QualityWeights).order_by(col(QualityWeights.id).desc())).first()
    if stored is not None:
        return stored
    w = scoring.DEFAULT_WEIGHTS
    return QualityWeights(freshness=w["freshness"], completeness=w["completeness"],
                          validity=w["validity"], uniqueness=w["uniqueness"],
                          consistency=w["consistency"], threshold=scoring.DEFAULT_THRESHOLD)


def weights_dict(weights: QualityWeights) -> dict[str, float]:
    return {"freshness": weights.freshness, "completeness": weights.completeness,
            "validity": weights.validity, "uniqueness": weights.uniqueness,
            "consistency": weights.consistency}


def _plain(value: Any) -> Any:
    """JSON-storable: decimal items' values (observed minimums, examples) are DuckDB
    DECIMALs, i.e. Python ``Decimal``; kept exact as text."""
    return json.loads(json.dumps(value, default=lambda v: str(v) if isinstance(v, Decimal)
                                 else _unserialisable(v)))


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _store(job: _Job, validation: Validation, now: datetime) -> None:
    outcomes = _plain([o.as_json() for o in validation.expectations])
    with session_scope() as session:
        run = session.get(QualityRun, job.run_id)
        assert run is not None
        resource = session.get(Resource, run.resource_id)
        assert resource is not None
        weights = weights_dict(current_weights(session))
        data_as_of = scoring.as_of(_as_utc(resource.last_data_update), validation.newest)
        scores = scoring.score(outcomes, row_count=validation.row_count,
                               cycle=UpdateCycle(resource.update_cycle), data_as_of=data_as_of,
                               now=now, weights=weights)
        run.status, run.finished_at = RunStatus.succeeded, utcnow()
        run.row_count, run.gx_result, run.expectations = (validation.row_count,
                                                          _plain(validation.gx_result),
                                                          outcomes)
        session.add(run)
        dims = scores.dimensions
        session.add(QualityScore(run_id=run.id or 0, resource_id=resource.id or 0,
                                 department_id=resource.provider_id, scored_at=now,
                                 freshness=dims["freshness"], completeness=dims["completeness"],
                                 validity=dims["validity"], uniqueness=dims["uniqueness"],
                                 consistency=dims["consistency"], overall=scores.overall,
                                 weights=weights, details=scores.details))
        if run.data_version == resource.current_version:
            set_catalog_score(session, resource, scores.overall)
        notices.verify_after_run(session, run, outcomes, scores.dimensions, scores.overall)
        _finished_event(session, run, resource.code, scores.overall)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_catalog_score(session: Session, resource: Resource, overall: float) -> None:
    """The one catalog field quality writes: the score shown on (and searched in) entries."""
    resource.quality_score = overall
    session.add(resource)


def _finished_event(session: Session, run: QualityRun, code: str,
                    overall: float | None) -> None:
    actor = Actor(user_id=run.requested_by, department_id=None) \
        if run.trigger in (RunTrigger.on_demand, RunTrigger.notice) else queue.SYSTEM
    publish(session, Event("quality.run_finished", actor,
                           {"resource": code, "run": str(run.id)},
                           {"status": run.status.value, "trigger": run.trigger.value,
                            "data_version": run.data_version, "overall": overall,
                            "error": run.error}))
