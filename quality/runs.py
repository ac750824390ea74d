"""Executing a queued run: claim it, validate with GX outside any transaction, store the
masked result and the scores (or the error: a failed run never has a score), verify
notices, and publish ``quality.run_finished``."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog.models import Resource, ResourceStatus, UpdateCycle
from catalog.service import get_resource, segments_for
from kernel import crashpoints
from kernel.auth import Principal
from kernel.db import session_scope, utcnow
from kernel.events import Actor, Event, publish
from kernel.identity import Role
from kernel.policy import is_data_bureau
from kernel.problems import Conflict, Forbidden
from quality import attest, notices, queue, scoring, suites
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
    suite_sha256: str


# --- requests --------------------------------------------------------------------------------

def request_run(session: Session, who: Principal, code: str) -> QualityRun:
    """On demand: the data bureau for any resource; the provider department's publishers
    and auditors for their own."""
    resource = get_resource(session, code)
    own = who.has(Role.publisher, Role.auditor) and who.department_id == resource.provider_id
    if not (own or is_data_bureau(session, who)):
        raise Forbidden(f"Only the data bureau and publishers or auditors of the provider "
                        f"department can run quality checks on {code}.",
                        key="problem.quality.run_forbidden", params={"code": code})
    if resource.current_version == 0:
        raise Conflict(f"Resource {code} has no data to check.",
                       key="problem.quality.no_data", params={"code": code})
    return queue.enqueue(session, resource, RunTrigger.on_demand, requested_by=who.user_id)


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


# Runs are never lost (docs/quality.md, "When runs fail"): a run that fails for a transient
# reason is queued again, at most MAX_ATTEMPTS times in all, after BACKOFF; a running run
# holds a lease that a heartbeat renews, and a run whose lease lapsed (its process stopped)
# is queued again by the next worker loop, within a minute.
MAX_ATTEMPTS = 3
BACKOFF = (timedelta(seconds=5), timedelta(seconds=30))
LEASE = timedelta(seconds=45)
_RENEW_SECONDS = 15.0
# Runs from before leases existed: still "running" this long after they started.
_LEGACY_INTERRUPTED_AFTER = timedelta(hours=1)
INTERRUPTED = "interrupted: the process running it stopped"


class PermanentRunError(RuntimeError):
    """A failure that a retry would only repeat (a generated check GX cannot evaluate)."""


# Missing data is not going to appear by itself; everything else (a DuckDB I/O error, a
# database lock, a GX internal error) gets the retries.
_PERMANENT: tuple[type[BaseException], ...] = (PermanentRunError, FileNotFoundError)


def reclaim_interrupted(now: datetime | None = None) -> int:
    """Queue again the runs whose process stopped mid-run (lease lapsed); a run that has
    used all its attempts is recorded as failed, saying so. Returns how many were touched."""
    now = now or utcnow()
    lapsed = (col(QualityRun.status) == RunStatus.running) & (
        (col(QualityRun.lease_until) < now) | (col(QualityRun.lease_until).is_(None)
                                              & (col(QualityRun.started_at)
                                                 < now - _LEGACY_INTERRUPTED_AFTER)))
    with session_scope() as session:
        again = session.execute(update(QualityRun).where(
            lapsed, col(QualityRun.attempts) < MAX_ATTEMPTS).values(
            status=RunStatus.queued, lease_until=None, not_before=None,
            error=f"{INTERRUPTED}; queued again"))
        given_up = session.execute(update(QualityRun).where(
            lapsed, col(QualityRun.attempts) >= MAX_ATTEMPTS).values(
            status=RunStatus.failed, finished_at=now, lease_until=None,
            error=f"{INTERRUPTED}, {MAX_ATTEMPTS} times; not retried"))
        return int(again.rowcount or 0) + int(given_up.rowcount or 0)  # type: ignore[attr-defined]


def resume_interrupted(run_id: int) -> bool:
    """Queue again one run left ``running`` by a worker that died, whatever its own lease
    says: the caller (the ``quality.run`` job, re-run after its job lease expired) knows that
    worker is gone. Attempts count as in ``reclaim_interrupted``. True if it was touched."""
    now = utcnow()
    running = (col(QualityRun.id) == run_id) & (col(QualityRun.status) == RunStatus.running)
    with session_scope() as session:
        again = session.execute(update(QualityRun).where(
            running, col(QualityRun.attempts) < MAX_ATTEMPTS).values(
            status=RunStatus.queued, lease_until=None, not_before=None,
            error=f"{INTERRUPTED}; queued again"))
        given_up = session.execute(update(QualityRun).where(
            running, col(QualityRun.attempts) >= MAX_ATTEMPTS).values(
            status=RunStatus.failed, finished_at=now, lease_until=None,
            error=f"{INTERRUPTED}, {MAX_ATTEMPTS} times; not retried"))
        return bool(again.rowcount or given_up.rowcount)  # type: ignore[attr-defined]


def waiting(run_id: int) -> tuple[RunStatus | None, float]:
    """The run's status and, if it is queued but backing off, the seconds until it is due."""
    with session_scope(write=False) as session:
        run = session.get(QualityRun, run_id)
        if run is None:
            return None, 0.0
        wait = 0.0
        if run.status is RunStatus.queued and run.not_before is not None:
            wait = max(0.0, (_as_utc(run.not_before) - utcnow()).total_seconds())  # type: ignore[operator]
        return run.status, wait


def resource_busy(run_id: int) -> bool:
    """Whether another run of the same resource is running (a resource's runs are serial:
    the worker defers this one)."""
    with session_scope(write=False) as session:
        run = session.get(QualityRun, run_id)
        if run is None:
            return False
        other = session.exec(select(QualityRun.id).where(
            QualityRun.resource_id == run.resource_id, QualityRun.status == RunStatus.running,
            col(QualityRun.id) != run_id)).first()
        return other is not None


def queued_run_ids(limit: int = 100, now: datetime | None = None) -> list[int]:
    """Queued runs that are due, oldest first, at most one per resource (a resource's runs
    are serial)."""
    now = now or utcnow()
    with session_scope(write=False) as session:
        rows = session.exec(select(QualityRun.id, QualityRun.resource_id)
                            .where(QualityRun.status == RunStatus.queued)
                            .where(col(QualityRun.not_before).is_(None)
                                   | (col(QualityRun.not_before) <= now))
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
    """Run one queued run; None if another worker had claimed it (or it is not due).
    Returns ``queued`` when it failed and was queued again for a retry."""
    try:
        job = _claim(run_id)
    except Exception as exc:
        return _fail(run_id, exc)
    if job is None:
        return None
    now = now or utcnow()
    settings = get_quality_settings()
    heartbeat = _Heartbeat(run_id)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality-hash") as hasher:
            # The data's content hash (for the signed log) is read while GX validates.
            data_hash = hasher.submit(attest.data_sha256, job.segments)
            validation = run_suite(job.segments, job.configs, job.masks,
                                   run_date=now.astimezone(scoring.CST).date(),
                                   max_examples=settings.examples,
                                   threads=settings.duckdb_threads or None)
            _raise_if_generated_failed(validation)
            digest = data_hash.result()
        crashpoints.reach("quality.run_validated")  # crash tests: killed before storing
    except Exception as exc:
        heartbeat.stop()
        return _fail(run_id, exc)
    heartbeat.stop()
    _store(job, validation, now, digest)
    return RunStatus.succeeded


class _Heartbeat:
    """Renews a running run's lease until stopped (a daemon thread, one per run)."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"quality-lease-{run_id}",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(_RENEW_SECONDS):
            try:
                with session_scope() as session:
                    session.execute(update(QualityRun).where(
                        col(QualityRun.id) == self.run_id,
                        col(QualityRun.status) == RunStatus.running)
                        .values(lease_until=utcnow() + LEASE))
            except Exception:  # the next beat tries again; a lapsed lease means a re-run
                log.warning("could not renew the lease of quality run %s", self.run_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _claim(run_id: int) -> _Job | None:
    now = utcnow()
    with session_scope() as session:
        claimed = session.execute(update(QualityRun).where(
            col(QualityRun.id) == run_id, col(QualityRun.status) == RunStatus.queued,
            col(QualityRun.not_before).is_(None) | (col(QualityRun.not_before) <= now))
            .values(status=RunStatus.running, started_at=now, lease_until=now + LEASE,
                    attempts=col(QualityRun.attempts) + 1))
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
                    list(suite.suite["expectations"]), masks, suite.fingerprint)


def _raise_if_generated_failed(validation: Validation) -> None:
    """A generated expectation that GX could not evaluate means the run itself failed; a
    custom one that could not be evaluated is a failed expectation, shown as such."""
    for outcome in validation.expectations:
        if outcome.error and outcome.source == "generated":
            raise PermanentRunError(f"{outcome.rule} could not be evaluated: {outcome.error}")


def _error_text(exc: BaseException) -> str:
    """The error, safe to show to auditors (``scrub_error``)."""
    return f"{type(exc).__name__}: {scrub_error(str(exc))}"


def _fail(run_id: int, exc: BaseException) -> RunStatus:
    """Queue the run again after a backoff, or, when the failure is permanent or its
    attempts are used up, record it as failed for good, saying why."""
    log.warning("quality run %s failed: %s", run_id, type(exc).__name__)
    with session_scope() as session:
        run = session.get(QualityRun, run_id)
        if run is None:
            return RunStatus.failed
        attempts = max(run.attempts, 1)
        if not isinstance(exc, _PERMANENT) and attempts < MAX_ATTEMPTS:
            wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
            run.status, run.lease_until = RunStatus.queued, None
            run.not_before = utcnow() + wait
            run.error = f"attempt {attempts} of {MAX_ATTEMPTS} failed, retrying: " \
                        f"{_error_text(exc)}"
            session.add(run)
            return RunStatus.queued
        why = "not retried" if isinstance(exc, _PERMANENT) else \
            f"failed {attempts} times, not retried"
        run.status, run.finished_at, run.lease_until = RunStatus.failed, utcnow(), None
        run.error = f"{_error_text(exc)} ({why})"
        session.add(run)
        resource = session.get(Resource, run.resource_id)
        _finished_event(session, run, resource.code if resource else "", None)
        return RunStatus.failed


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


def _store(job: _Job, validation: Validation, now: datetime, data_sha256: str) -> None:
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
        run.attestation = attest.build(
            run_id=run.id or 0, resource=resource.code, data_version=run.data_version,
            suite_version=run.suite_version, suite_sha256=job.suite_sha256,
            data_sha256=data_sha256, scores=dims, overall=scores.overall, weights=weights,
            scored_at=now, data_as_of=data_as_of)
        _finished_event(session, run, resource.code, scores.overall)
        entry = attest.find_entry(session, run.id or 0, now - timedelta(minutes=1)) \
            if run.attestation else None
        run.log_seq = entry.seq if entry is not None else None


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
    """The run's entry in the signed log. A successful run's entry carries its attestation
    (``quality.attest``): hashes and scores as subjects, the whole as the payload."""
    actor = Actor(user_id=run.requested_by, department_id=None) \
        if run.trigger in (RunTrigger.on_demand, RunTrigger.notice) else queue.SYSTEM
    subjects = {"resource": code, "run": str(run.id), "status": run.status.value}
    if run.attestation is not None:
        payload: dict[str, Any] = run.attestation
        subjects |= attest.subjects(run.attestation)
    else:
        payload = {"status": run.status.value, "trigger": run.trigger.value,
                   "data_version": run.data_version, "overall": overall, "error": run.error}
    publish(session, Event("quality.run_finished", actor, subjects, payload))
