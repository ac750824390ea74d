"""Background jobs: a table in the metadata database, claimed with leases by ``govshare worker``
processes on any number of hosts.

* ``enqueue(session, kind, payload, key=…)`` inserts a row in the caller's transaction, so a
  job exists exactly when the change that needs it committed. A ``key`` dedupes: while a job
  with that key is pending or running, enqueueing it again is a no-op (a partial unique index,
  ``INSERT … ON CONFLICT DO NOTHING``).
* A worker claims one due job at a time: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED``
  (workers never wait on each other's claims), on SQLite inside ``BEGIN IMMEDIATE`` (the
  single write lock serialises claims; SQLite serves one host). The claim sets a lease
  (``GOVSHARE_JOBS_LEASE_SECONDS``, 30 s); a heartbeat thread renews it while the handler
  runs. A worker that dies (SIGKILL, power cut) stops renewing, and once the lease has passed
  any other worker claims the job again: crash pickup within one lease.
* Never two runs of one job at once: a claim requires the job to be pending or its lease to
  have expired, and completion is conditional on the claim token. A worker that cannot renew
  its lease (the database unreachable for a whole lease, a process frozen that long) has lost
  the job to another worker, and ``govshare worker`` then exits at once rather than finish a
  run that is no longer its own (its supervisor restarts it).
* Failures are retried with exponential backoff (``GOVSHARE_JOBS_BACKOFF_SECONDS`` × 2^n, with
  jitter, capped at an hour) up to the handler's ``max_attempts``; then the job is ``failed``
  with the error text. ``Permanent`` fails at once; ``Defer`` reschedules without counting.
* Periodic schedules are rows with ``next_run_at``, claimed the same way (one transaction moves
  ``next_run_at`` and enqueues the job), so a schedule fires once per period however many
  workers run.

Why a table of our own rather than procrastinate (a well-kept PostgreSQL queue built on the
same ``SKIP LOCKED`` claim, with LISTEN/NOTIFY and retries): it is PostgreSQL-only, and the
embedded default (``make run``, one host, SQLite) has to run the same jobs with the same code
and tests. It also keeps its own connection pool and schema outside Alembic, and enqueueing
in the caller's SQLModel transaction — the point of the design — would need its
``connector`` bridged onto our session. What we need is ~300 lines on top of tables and
transactions we already test on both backends; procrastinate would add a second queue
implementation for SQLite anyway.

Handlers run outside any transaction (they open their own short ones, like the request code
does); they must tolerate a re-run after a crash (every handler here is idempotent: a
delivery is unique per grant and period, a quality run stores its result once).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, and_, func, or_, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel, col, select

from kernel import db
from kernel.db import UTCDateTime
from kernel.problems import Conflict, NotFound, Phrase
from kernel.settings import get_settings

log = logging.getLogger("govshare.jobs")


class JobState(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


_ACTIVE_SQL = "state IN ('pending', 'running')"


def _wall() -> datetime:
    """Leases and due times use the wall clock, never the demo's simulated one."""
    return datetime.now(UTC)


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (
        # One active job per key (dedupe), through the partial index ON CONFLICT targets.
        Index("ux_job_key_active", "key", unique=True,
              sqlite_where=text(_ACTIVE_SQL), postgresql_where=text(_ACTIVE_SQL)),
        Index("ix_job_claim", "state", "run_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    key: str | None = Field(default=None, max_length=200)
    state: str = Field(default=JobState.pending.value, max_length=16)
    attempts: int = 0
    max_attempts: int = 5
    run_at: datetime = Field(default_factory=_wall, sa_column=Column(UTCDateTime,
                                                                      nullable=False))
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # The claim's token (host, pid, random): renewal and completion require it.
    claimed_by: str | None = Field(default=None, max_length=120)
    error: str | None = Field(default=None, sa_column=Column(Text))
    # What the handler returned (e.g. the delivery it produced, or why it produced none):
    # what a client following the job's status URL reads once it is done.
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=_wall, sa_column=Column(UTCDateTime))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class JobSchedule(SQLModel, table=True):
    """A periodic job: whoever moves ``next_run_at`` (one transaction) enqueues the run."""

    __tablename__ = "job_schedule"
    name: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    every_seconds: int
    next_run_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_run_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


# --- errors a handler may raise -----------------------------------------------------------------

class Permanent(Exception):
    """Retrying cannot help (bad payload, a refusal recorded elsewhere): fail at once."""


class Defer(Exception):
    """Not now (e.g. another run of the same resource is in progress): try again later
    without counting an attempt."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        super().__init__(reason or f"deferred {seconds:g} s")
        self.seconds = seconds


# --- handlers and schedules ---------------------------------------------------------------------

# A handler may return a small JSON-able dict: stored as the job's ``result`` when it is done.
Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class Spec:
    kind: str
    fn: Handler
    max_attempts: int
    # At most this many of this kind at once in one worker process (GX: 1).
    per_process: int | None


_handlers: dict[str, Spec] = {}


def handler(kind: str, *, max_attempts: int = 5,
            per_process: int | None = None) -> Callable[[Handler], Handler]:
    """Register ``fn(payload)`` as the handler of ``kind`` (the composition root imports the
    modules that declare them: ``govshare.worker``)."""
    def register(fn: Handler) -> Handler:
        _handlers[kind] = Spec(kind, fn, max_attempts, per_process)
        return fn
    return register


def handlers() -> dict[str, Spec]:
    return dict(_handlers)


@dataclass(frozen=True)
class Periodic:
    name: str
    kind: str
    every: timedelta
    payload: dict[str, Any] = field(default_factory=dict)


_schedules: dict[str, Periodic] = {}


def every(name: str, kind: str, interval: timedelta,
          payload: dict[str, Any] | None = None) -> None:
    """Declare a periodic job; ``sync_schedules`` stores it (idempotent, any worker)."""
    if interval.total_seconds() <= 0:
        _schedules.pop(name, None)
        return
    _schedules[name] = Periodic(name, kind, interval, payload or {})


# --- enqueueing -----------------------------------------------------------------------------------

def enqueue(session: Session, kind: str, payload: dict[str, Any] | None = None, *,
            key: str | None = None, run_at: datetime | None = None,
            max_attempts: int | None = None) -> int | None:
    """Add a job in the caller's transaction; returns its id, or the id of the active job
    with the same ``key`` (then nothing is added)."""
    spec = _handlers.get(kind)
    values: dict[str, Any] = {"kind": kind, "payload": payload or {}, "key": key,
              "state": JobState.pending.value, "attempts": 0,
              "max_attempts": max_attempts or (spec.max_attempts if spec else 5),
              "run_at": run_at or _wall(), "created_at": _wall()}
    if key is None:
        job = Job(**values)
        session.add(job)
        session.flush()
        return job.id
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Job).values(**values).on_conflict_do_nothing(
        index_elements=["key"], index_where=text(_ACTIVE_SQL)).returning(col(Job.id))
    new = session.execute(stmt).scalar()
    if new is not None:
        return int(new)
    return session.exec(select(Job.id).where(Job.key == key, text(_ACTIVE_SQL))).first()


# --- claiming, renewing, finishing ----------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    token: str


def _token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease() -> timedelta:
    return timedelta(seconds=get_settings().jobs_lease_seconds)


def claim(kinds: Iterable[str], now: datetime | None = None) -> Claim | None:
    """Claim the oldest due job of one of ``kinds``: pending and due, or running with an
    expired lease (its worker died)."""
    kinds = list(kinds)
    if not kinds:
        return None
    while True:
        now = now or _wall()
        with db.session_scope(write=True) as session:
            due = or_(and_(col(Job.state) == JobState.pending.value, col(Job.run_at) <= now),
                      and_(col(Job.state) == JobState.running.value,
                           col(Job.lease_until) < now))
            job = session.exec(select(Job).where(due, col(Job.kind).in_(kinds))
                               .order_by(col(Job.run_at), col(Job.id)).limit(1)
                               .with_for_update(skip_locked=True)).first()
            if job is None:
                return None
            if job.state == JobState.running.value and job.attempts >= job.max_attempts:
                # Its last allowed attempt died with its worker: give up, and look again.
                _finish(job, JobState.failed, now, job.error or
                        f"the worker running attempt {job.attempts} stopped (lease expired)")
                session.add(job)
                continue
            if job.state == JobState.running.value:
                log.warning("job %s (%s): lease of %s expired; running it again", job.id,
                            job.kind, job.claimed_by)
            token = _token()
            job.state, job.claimed_by = JobState.running.value, token
            job.attempts += 1
            job.started_at, job.lease_until = now, now + lease()
            session.add(job)
            return Claim(job.id or 0, job.kind, dict(job.payload), job.attempts, token)


def renew(c: Claim) -> bool:
    """Extend the lease; False if the job is no longer ours (another worker took it)."""
    with db.session_scope(write=True) as session:
        result = session.execute(update(Job).where(
            col(Job.id) == c.id, col(Job.claimed_by) == c.token,
            col(Job.state) == JobState.running.value).values(lease_until=_wall() + lease()))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _finish(job: Job, state: JobState, now: datetime, error: str | None = None) -> None:
    job.state, job.finished_at, job.lease_until = state.value, now, None
    if error is not None:
        job.error = error[:4000]


def backoff(attempt: int) -> timedelta:
    """Exponential with ±25 % jitter (so failed jobs of one outage do not retry in step)."""
    base = get_settings().jobs_backoff_seconds * 2 ** max(attempt - 1, 0)
    return timedelta(seconds=min(base, 3600) * random.uniform(0.75, 1.25))


def _settle(c: Claim, outcome: BaseException | None, now: datetime,
            result: dict[str, Any] | None = None) -> JobState | None:
    """Record the outcome (and the handler's result) if the claim is still ours; None if
    it was lost."""
    with db.session_scope(write=True) as session:
        job = session.exec(select(Job).where(col(Job.id) == c.id).with_for_update()).first()
        if job is None or job.claimed_by != c.token or job.state != JobState.running.value:
            log.error("job %s (%s): the lease was lost before it finished; the other worker's "
                      "run counts", c.id, c.kind)
            return None
        if outcome is None:
            _finish(job, JobState.done, now)
            job.result = result
        elif isinstance(outcome, Defer):
            job.state, job.lease_until = JobState.pending.value, None
            job.attempts -= 1
            job.run_at = now + timedelta(seconds=outcome.seconds)
        else:
            error = f"{type(outcome).__name__}: {outcome}"
            if isinstance(outcome, Permanent) or job.attempts >= job.max_attempts:
                _finish(job, JobState.failed, now, error)
            else:
                job.state, job.lease_until, job.error = JobState.pending.value, None, error
                job.run_at = now + backoff(job.attempts)
        session.add(job)
        return JobState(job.state)


class _Heartbeat:
    """Renews a claim's lease every third of the lease until stopped; ``lost`` is set when
    it could not (``on_lost`` decides what the process does then)."""

    def __init__(self, c: Claim, on_lost: Callable[[Claim], None] | None) -> None:
        self.claim, self.on_lost = c, on_lost
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{c.id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        period = lease().total_seconds() / 3
        deadline = time.monotonic() + lease().total_seconds()
        while not self._stop.wait(period):
            try:
                if renew(self.claim):
                    deadline = time.monotonic() + lease().total_seconds()
                    continue
            except Exception:  # the database away for a moment: try again next period
                log.warning("job %s: lease renewal failed", self.claim.id, exc_info=True)
                if time.monotonic() < deadline:
                    continue
            self.lost.set()
            log.error("job %s (%s): lease lost", self.claim.id, self.claim.kind)
            if self.on_lost is not None:
                self.on_lost(self.claim)
            return


_current: ContextVar[Claim | None] = ContextVar("govshare_job", default=None)


def current() -> Claim | None:
    """The claim of the job this thread is running (its ``attempt``: > 1 after a failure or
    after its previous worker died), or None outside a job."""
    return _current.get()


def execute(c: Claim, now: datetime | None = None,
            on_lost: Callable[[Claim], None] | None = None) -> JobState | None:
    """Run a claimed job's handler under a heartbeat and record the outcome."""
    spec = _handlers.get(c.kind)
    token = _current.set(c)
    try:
        outcome, result = _call(spec, c, on_lost)
    finally:
        _current.reset(token)
    return _settle(c, outcome, now or _wall(), result)


def _call(spec: Spec | None, c: Claim, on_lost: Callable[[Claim], None] | None
          ) -> tuple[BaseException | None, dict[str, Any] | None]:
    outcome: BaseException | None = None
    result: dict[str, Any] | None = None
    with _Heartbeat(c, on_lost):
        try:
            if spec is None:
                raise Permanent(f"no handler for job kind {c.kind!r} in this worker")
            result = spec.fn(c.payload)
        except Exception as exc:
            outcome = exc
            if not isinstance(exc, Defer):
                log.warning("job %s (%s) attempt %s failed: %s", c.id, c.kind, c.attempt,
                            exc, exc_info=not isinstance(exc, Permanent))
    return outcome, result


# --- schedules ------------------------------------------------------------------------------------

def sync_schedules() -> None:
    """Store the declared schedules (new ones due now; a changed interval takes effect at
    the next run; schedules no longer declared are removed)."""
    now = _wall()
    with db.session_scope(write=True) as session:
        stored = {s.name: s for s in session.exec(select(JobSchedule))}
        for name, p in _schedules.items():
            row = stored.pop(name, None)
            seconds = int(p.every.total_seconds())
            if row is None:
                dialect = session.get_bind().dialect.name
                insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
                session.execute(insert(JobSchedule).values(
                    name=name, kind=p.kind, payload=p.payload, every_seconds=seconds,
                    next_run_at=now).on_conflict_do_nothing(index_elements=["name"]))
            elif (row.kind, row.payload, row.every_seconds) != (p.kind, p.payload, seconds):
                row.kind, row.payload, row.every_seconds = p.kind, p.payload, seconds
                row.next_run_at = min(row.next_run_at, now + p.every)
                session.add(row)
        for row in stored.values():
            session.delete(row)


def fire_schedules(now: datetime | None = None) -> list[str]:
    """Enqueue the run of every due schedule, once: the row is locked (skipped by others)
    and moved to its next time in the same transaction as the enqueue."""
    now = now or _wall()
    fired = []
    with db.session_scope(write=True) as session:
        due = session.exec(select(JobSchedule).where(col(JobSchedule.next_run_at) <= now)
                           .with_for_update(skip_locked=True)).all()
        for row in due:
            enqueue(session, row.kind, row.payload, key=f"schedule:{row.name}", run_at=now)
            step = timedelta(seconds=row.every_seconds)
            row.last_run_at = now
            # Missed periods (every worker down) are not caught up one by one.
            row.next_run_at = max(row.next_run_at + step, now + step / 2)
            session.add(row)
            fired.append(row.name)
    return fired


# --- draining (tests, the CLI) and the worker loop -----------------------------------------------

def run_one(kinds: Iterable[str] | None = None, now: datetime | None = None,
            on_lost: Callable[[Claim], None] | None = None) -> tuple[Claim, JobState | None] | None:
    c = claim(kinds if kinds is not None else _handlers, now)
    if c is None:
        return None
    return c, execute(c, now, on_lost)


def run_pending(kinds: Iterable[str] | None = None, now: datetime | None = None,
                max_jobs: int = 10_000) -> list[tuple[Claim, JobState | None]]:
    """Run every due job (of ``kinds``) in this thread until none is left; with ``now``,
    as if at that time (tests of backoff). Jobs enqueued meanwhile are run too."""
    wanted = list(kinds) if kinds is not None else None
    done = []
    for _ in range(max_jobs):
        ran = run_one(wanted, now)
        if ran is None:
            break
        done.append(ran)
    return done


@dataclass
class Worker:
    """``govshare worker``: ``concurrency`` threads, each claiming and running one job at a
    time; schedules fired by whichever thread finds them due. ``stop`` lets running jobs
    finish (SIGTERM); a lost lease ends the process (see the module's docstring)."""

    concurrency: int = 1
    poll_seconds: float = 1.0
    exit_on_lost_lease: bool = True
    stop: threading.Event = field(default_factory=threading.Event)
    _running: dict[str, int] = field(default_factory=dict)
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        sync_schedules()
        threads = [threading.Thread(target=self._loop, name=f"worker-{i}", daemon=True)
                   for i in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.5)

    def _take(self, kind: str, delta: int) -> None:
        with self._mutex:
            self._running[kind] = self._running.get(kind, 0) + delta

    def _lost(self, c: Claim) -> None:
        if self.exit_on_lost_lease:
            log.critical("job %s ran past its lease; another worker owns it now: exiting",
                         c.id)
            logging.shutdown()
            os._exit(75)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                fire_schedules()
                ran = self._one()
            except Exception:  # the database away: wait and try again
                log.exception("worker iteration failed")
                ran = False
            if not ran:
                self.stop.wait(self.poll_seconds * random.uniform(0.8, 1.2))

    def _one(self) -> bool:
        with self._mutex:  # claim under the mutex, so per-process limits hold
            free = [k for k, s in _handlers.items()
                    if s.per_process is None or self._running.get(k, 0) < s.per_process]
            c = claim(free)
            if c is None:
                return False
            self._running[c.kind] = self._running.get(c.kind, 0) + 1
        try:
            execute(c, on_lost=self._lost)
        finally:
            self._take(c.kind, -1)
        return True


# --- for people: what the queue holds, and a retry --------------------------------------------

class View(StrEnum):
    """How the admin console groups jobs: ``queued`` (never tried yet), ``running``,
    ``failed`` (an attempt failed; retried at ``run_at`` with backoff), ``dead`` (gave up:
    attempts exhausted or a permanent error) and ``done``."""

    queued = "queued"
    running = "running"
    failed = "failed"
    dead = "dead"
    done = "done"


def view_of(job: Job) -> View:
    if job.state == JobState.pending.value:
        return View.failed if job.error else View.queued
    return {JobState.running.value: View.running, JobState.failed.value: View.dead}.get(
        job.state, View.done)


def _view_filter(view: View) -> Any:
    pending = col(Job.state) == JobState.pending.value
    return {View.queued: and_(pending, col(Job.error).is_(None)),
            View.failed: and_(pending, col(Job.error).is_not(None)),
            View.running: col(Job.state) == JobState.running.value,
            View.dead: col(Job.state) == JobState.failed.value,
            View.done: col(Job.state) == JobState.done.value}[view]


def counts(session: Session) -> dict[tuple[str, View], int]:
    """(kind, view) → number of jobs."""
    out: dict[tuple[str, View], int] = {}
    for view in View:
        rows = session.exec(select(Job.kind, func.count()).where(_view_filter(view))
                            .group_by(col(Job.kind))).all()
        for kind, n in rows:
            out[(kind, view)] = int(n)
    return out


def listing(session: Session, view: View | None = None, kind: str | None = None,
            limit: int = 100) -> list[Job]:
    """The newest jobs, optionally of one view and one kind."""
    query = select(Job).order_by(col(Job.id).desc()).limit(limit)
    if view is not None:
        query = query.where(_view_filter(view))
    if kind:
        query = query.where(col(Job.kind) == kind)
    return list(session.exec(query))


def retry(session: Session, job_id: int, now: datetime | None = None) -> Job:
    """Run a failed or dead job again now (an administrator's "retry", in the caller's
    transaction). A failed job waiting for its backoff is brought forward; a dead one gets a
    fresh round of attempts. Its last error stays visible until it succeeds."""
    job = session.exec(select(Job).where(col(Job.id) == job_id).with_for_update()).first()
    if job is None:
        raise NotFound(f"No background job {job_id}.", key="problem.jobs.no_job",
                       params={"job_id": job_id})
    view = view_of(job)
    if view not in (View.failed, View.dead):
        state = Phrase(f"jobs.view.{view.value}", view.value)
        raise Conflict(f"Job {job_id} is {state}; only failed or dead jobs are retried.",
                       key="problem.jobs.not_retryable", params={"job_id": job_id,
                                                                 "state": state})
    if view is View.dead:
        if job.key is not None and session.exec(select(Job.id).where(
                col(Job.key) == job.key, text(_ACTIVE_SQL))).first() is not None:
            raise Conflict(f"Job {job_id} was enqueued again since it failed; that job runs "
                           "instead.", key="problem.jobs.superseded", params={"job_id": job_id})
        job.state, job.attempts, job.finished_at = JobState.pending.value, 0, None
    job.run_at, job.lease_until, job.claimed_by = now or _wall(), None, None
    session.add(job)
    session.flush()
    return job


def prune(older_than: timedelta = timedelta(days=7)) -> int:
    """Delete finished jobs older than ``older_than`` (failed ones stay thrice as long)."""
    now = _wall()
    with db.session_scope(write=True) as session:
        from sqlalchemy import delete

        done = session.execute(delete(Job).where(
            col(Job.state) == JobState.done.value, col(Job.finished_at) < now - older_than))
        failed = session.execute(delete(Job).where(
            col(Job.state) == JobState.failed.value,
            col(Job.finished_at) < now - 3 * older_than))
        return int(done.rowcount or 0) + int(failed.rowcount or 0)  # type: ignore[attr-defined]


@handler("jobs.prune", max_attempts=1)
def _prune(_payload: dict[str, Any]) -> None:
    prune()


every("jobs.prune", "jobs.prune", timedelta(hours=6))
