"""Delivering an application's package: the three phases of one delivery, and reading them.

One delivery runs in three phases, so the long DuckDB work never holds the database's write
lock and a crash at any point leaves nothing visible and nothing lost:

1. *prepare* (short write transaction): check the move is legal (``access.service.check``),
   find or skip the period's run (``(grant, run_key)`` is unique: a retry of a finished run
   returns it, which makes the step idempotent), snapshot what to deliver
   (``access.planning``).
2. *produce* (no transaction): the masked COPY (or an aggregate release), the raw-PII,
   k-anonymity and risk checks, fsync and hash (``access.packaging``), under the job's
   ``flock``.
3. *commit* (short write transaction): insert the Delivery row, rename the file into
   ``deliveries/<application>/``, sign and write the manifest (``access.manifest``), move the
   application to ``delivered`` through the state machine (``access.service.move``), publish
   the event, commit. A rollback removes the renamed files (``on_rollback``).

A crash in phase 2 leaves a ``.partial`` file in the staging directory (never served); a crash
between the rename and the commit leaves a file no Delivery row names. ``access.sweep``
deletes both once their job's lock is free, and every delivery sweeps its own application's
leftovers first, so a retry after a crash (the ``access.deliver`` job re-run by another
worker) simply runs again. Links and downloads: ``access.links``; API queries:
``access.queries``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from access import aggregate, manifest, risk
from access import service as svc
from access.calendar import WorkCalendar
from access.flows import Action
from access.models import (
    Application,
    ApplicationState,
    Delivery,
    Grant,
)
from access.packaging import (
    Produced,
    discard,
    job_lock,
    k_too_small,
    produce,
    too_many_suppressed,
)
from access.planning import (
    DeliveryBlocked,
    Gone,
    Job,
    deliveries_dir,
    existing,
    plan_job,
    run_key_for,
)
from access.sweep import sweep
from catalog.models import Resource
from kernel import crashpoints, db, policy, storage
from kernel.auth import Principal
from kernel.db import on_rollback, utcnow
from kernel.problems import Conflict, NotFound, Phrase, params_to_json

log = logging.getLogger("govshare")


def deliver(app_id: int, *, who: Principal | None = None,
            run_key: str | None = None) -> Delivery:
    """Produce (or return the already produced) package for the current period."""
    sweep(app_id)
    prepared = _prepare(app_id, who, run_key)
    if isinstance(prepared, Delivery):
        return prepared
    with job_lock(prepared.token):
        try:
            produced = produce(prepared)
        except BaseException:
            discard(prepared)
            raise
        if produced.hits or k_too_small(prepared, produced):
            discard(prepared)
            _record_block(prepared, produced, who)
        crashpoints.reach("delivery.after_write")
        return _commit(prepared, produced, who)


def _prepare(app_id: int, who: Principal | None, run_key: str | None) -> Job | Delivery:
    with db.session_scope(write=True) as session:
        app, grant, resource, key, done = admissible(session, app_id, who, run_key)
        if done is not None:
            return done
        cal = WorkCalendar.from_settings()
        job = plan_job(session, app, grant, resource, key, cal.local_date(utcnow()))
        if job.aggregate is not None:  # refused before any work: nothing is computed
            aggregate.check_budget(job.aggregate, grant.privacy_spent, grant_id=grant.id)
        return job


def admissible(session: Session, app_id: int, who: Principal | None,
               run_key: str | None = None
               ) -> tuple[Application, Grant, Resource, str, Delivery | None]:
    """May the application be delivered now (the move is legal for ``who``, the period of
    use has begun and not ended)? Returns it with its grant, resource and the period's run
    key, and the period's package if it exists already. Cheap: the request that asks for a
    delivery checks this before it queues the job, so a refusal is its answer."""
    app = svc.load(session, app_id)
    svc.check(session, app, Action.deliver, who)
    grant = svc.grant_of(session, app)
    assert grant is not None  # created with the approval
    _check_window(grant)
    resource = session.get(Resource, app.resource_id)
    assert resource is not None
    today = WorkCalendar.from_settings().local_date(utcnow())
    key = run_key or run_key_for(app.schedule, today, resource.current_version)
    return app, grant, resource, key, existing(session, grant.id or 0, key)


def _check_window(grant: Grant) -> None:
    now = utcnow()
    if now < grant.valid_from:
        raise Conflict(f"The period of use starts {grant.valid_from:%Y-%m-%d}; the first "
                       "package is produced then.",
                       key="problem.access.period_not_started",
                       params={"valid_from": grant.valid_from})
    if now >= grant.valid_until:
        raise Gone("The period of use is over; file a new application.")


def _record_block(job: Job, produced: Produced, who: Principal | None) -> None:
    """Record why the package was withheld, then refuse (the provider tightens the plan)."""
    k, k_min = produced.k, job.k_min
    if produced.hits:
        found = ", ".join(sorted({f"{h.kind} in {h.column}" for h in produced.hits}))
        why = Phrase("problem.access.blocked.raw_values",
                     f"values that look like raw personal data: {found}", {"found": found})
    elif too_many_suppressed(job, produced):
        suppressed, share = produced.suppressed, job.max_suppression
        total = produced.rows + suppressed
        why = Phrase("problem.access.blocked.suppressed",
                     f"{suppressed} of {total} rows are in classes smaller than k_min {k_min}, "
                     f"more than the {share:.1%} that may be suppressed",
                     {"suppressed": suppressed, "total": total, "k_min": k_min, "share": share})
    else:
        why = Phrase("problem.access.blocked.k_anonymity",
                     f"k-anonymity {k} is below the required {k_min}", {"k": k, "k_min": k_min})
    reason = str(why)
    with db.session_scope(write=True) as session:
        app = svc.load(session, job.app_id, lock=True)
        app.delivery_blocked = reason
        # ``why``: the reason as its catalogue message, so pages show it in their language.
        detail = {"reason": reason, "why": params_to_json({"why": why})["why"],
                  "hits": [h.as_dict() for h in produced.hits],
                  "k_anonymity": produced.k, "run_key": job.run_key}
        svc.move(session, app, Action.block, who, detail, event="delivery.blocked",
                 parties={svc.Party.system})
    raise DeliveryBlocked(f"Delivery of application {job.app_id} was blocked: {why}. The "
                          "provider's approver must tighten the masking plan.",
                          hits=[h.as_dict() for h in produced.hits], k_anonymity=produced.k,
                          key="problem.access.delivery_blocked",
                          params={"app_id": job.app_id, "why": why})


def _commit(job: Job, produced: Produced, who: Principal | None) -> Delivery:
    try:
        with db.session_scope(write=True) as session:
            return _commit_in(session, job, produced, who)
    except IntegrityError:
        # Another worker finished this run first: its package stands, ours goes.
        discard(job)
        with db.session_scope(write=False) as session:
            done = existing(session, job.grant_id, job.run_key)
            assert done is not None
            return done
    except BaseException:
        discard(job)
        raise


def _commit_in(session: Session, job: Job, produced: Produced,
               who: Principal | None) -> Delivery:
    app = svc.load(session, job.app_id, lock=True)
    svc.check(session, app, Action.deliver, who)  # e.g. revoked while we were masking
    if job.aggregate is not None:  # spend the budget with the release, or refuse it
        grant = session.get(Grant, job.grant_id)
        assert grant is not None
        aggregate.check_budget(job.aggregate, grant.privacy_spent, grant_id=grant.id)
        grant.privacy_spent += job.aggregate.epsilon
        session.add(grant)
        assert produced.aggregate is not None
        produced.aggregate["privacy_spent"] = grant.privacy_spent
        produced.aggregate["privacy_budget"] = job.aggregate.budget
    delivery = Delivery(grant_id=job.grant_id, application_id=job.app_id, run_key=job.run_key,
                        method=job.method, resource_version=job.version,
                        row_count=produced.rows, k_anonymity=produced.k, manifest={},
                        signature="", key_id="",
                        file_format=job.file_format if produced.path else None)
    session.add(delivery)
    session.flush()  # the id names the file; a duplicate run fails here, before any rename
    if produced.path is not None:
        _place_file(session, job, produced, delivery)
    manifest.sign(session, job, produced, app, delivery)
    manifest.write(session, delivery)
    crashpoints.reach("delivery.after_rename")
    _mark_delivered(session, app, delivery, who)
    return delivery


def _place_file(session: Session, job: Job, produced: Produced, delivery: Delivery) -> None:
    folder = deliveries_dir() / str(job.app_id)
    folder.mkdir(parents=True, exist_ok=True)
    safe_key = re.sub(r"[^0-9A-Za-z-]", "_", job.run_key)
    final = folder / f"{delivery.id:06d}-{safe_key}-{job.token}{job.suffix}"
    assert produced.path is not None
    storage.publish(produced.path, final, synced=True)  # fsynced while it was hashed
    on_rollback(session, lambda: final.unlink(missing_ok=True))
    delivery.path = str(final.relative_to(deliveries_dir()))
    delivery.bytes, delivery.sha256 = produced.bytes, produced.sha256


def _mark_delivered(session: Session, app: Application, delivery: Delivery,
                    who: Principal | None) -> None:
    now = utcnow()
    app.masked_at = app.masked_at or now
    app.delivered_at = app.delivered_at or now
    app.delivery_blocked = None
    grant = session.get(Grant, delivery.grant_id)
    assert grant is not None
    grant.last_version = delivery.resource_version
    session.add_all([delivery, grant])
    svc.move(session, app, Action.deliver, who,
             {"delivery": delivery.id, "run_key": delivery.run_key, "rows": delivery.row_count,
              "risk": risk.summary_of(delivery.manifest.get("risk"))},
             event="delivery.completed", payload=_completed_payload(delivery))


def _completed_payload(delivery: Delivery) -> dict[str, Any]:
    return {"delivery": delivery.id, "manifest": delivery.manifest,
            "risk": risk.summary_of(delivery.manifest.get("risk"))}


def logged_payload(delivery: Delivery) -> dict[str, Any]:
    """The payload of the delivery's ``delivery.completed`` log entry, exactly as logged
    (``service.move`` adds the new state): what its receipt proves was recorded."""
    return {"state": ApplicationState.delivered.value, **_completed_payload(delivery)}


def get_delivery(session: Session, who: Principal, delivery_id: int
                 ) -> tuple[Delivery, Application]:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"No delivery {delivery_id}.",
                       key="problem.access.no_delivery", params={"delivery_id": delivery_id})
    return delivery, svc.get_application(session, who, delivery.application_id)


def list_deliveries(session: Session, who: Principal, application_id: int | None = None,
                    limit: int = 100) -> list[Delivery]:
    query = select(Delivery).join(Application, col(Application.id) == Delivery.application_id)
    if not policy.is_data_bureau(session, who):
        query = query.where((col(Application.requester_department_id) == who.department_id)
                            | (col(Application.provider_department_id) == who.department_id))
    if application_id is not None:
        query = query.where(Delivery.application_id == application_id)
    return list(session.exec(query.order_by(col(Delivery.id).desc()).limit(limit)))
