"""Planning a delivery: where packages live, which period a package is for (its *run key*),
the snapshot of everything a job needs (taken in the preparing transaction, so the long work
runs outside any session), and which deliveries are due (first ones not yet done, periodic
grants' new periods)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlmodel import Session, col, select

from access import masking, pseudonym
from access.aggregate import AggregateSpec
from access.masking import RowFilter
from access.models import (
    Application,
    ApplicationState,
    Delivery,
    DeliveryMethod,
    FileFormat,
    Grant,
    Schedule,
)
from catalog.models import DataItem, ItemKind, ItemType, Resource, Sensitivity
from catalog.service import segments_for
from kernel.problems import Conflict, Problem
from kernel.settings import get_settings

log = logging.getLogger("govshare")


class DeliveryBlocked(Conflict):
    slug, title = "delivery-blocked", "Delivery blocked by the desensitization check"


class Gone(Problem):
    status, slug, title = 410, "gone", "No longer available"


def deliveries_dir() -> Path:
    return get_settings().data_dir / "deliveries"


def staging() -> Path:
    path = deliveries_dir() / ".staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_key_for(schedule: Schedule, today: date, version: int) -> str:
    """The period a package is for; one package per grant and period."""
    if schedule is Schedule.daily:
        return today.isoformat()
    if schedule is Schedule.weekly:
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}"
    if schedule is Schedule.monthly:
        return today.strftime("%Y-%m")
    if schedule is Schedule.on_new_version:
        return f"v{version}"
    return "once"


@dataclass(frozen=True)
class _Item:
    """A detached copy of a DataItem (the job runs outside any session)."""

    name: str
    type: ItemType
    kind: ItemKind | None
    sensitivity: Sensitivity
    is_key: bool


@dataclass
class Job:
    app_id: int
    grant_id: int
    run_key: str
    method: DeliveryMethod
    file_format: FileFormat
    resource_code: str
    version: int
    segments: list[Path]
    items: list[_Item]
    plan: masking.Plan
    row_filters: list[RowFilter]
    quasi_identifiers: list[str]
    k_min: int | None
    key: bytes | None
    as_of: date
    sensitive_items: list[str] = field(default_factory=list)
    max_suppression: float | None = None
    aggregate: AggregateSpec | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def suffix(self) -> str:
        return ".csv" if self.file_format is FileFormat.csv else ".parquet"


def existing(session: Session, grant_id: int, run_key: str) -> Delivery | None:
    return session.exec(select(Delivery).where(Delivery.grant_id == grant_id,
                                               Delivery.run_key == run_key)).first()


def plan_job(session: Session, app: Application, grant: Grant, resource: Resource, run_key: str,
         today: date) -> Job:
    plan = masking.plan_from_json(app.masking_plan)
    needs_key = any(r.rule is masking.MaskingRule.pseudonymize for r in plan.values())
    return Job(
        app_id=app.id or 0, grant_id=grant.id or 0, run_key=run_key, method=app.delivery_method,
        file_format=app.file_format, resource_code=resource.code,
        version=resource.current_version, segments=segments_for(session, resource),
        items=[detach(i) for i in resource.items], plan=plan,
        row_filters=[RowFilter.model_validate(f) for f in app.row_filters],
        quasi_identifiers=list(app.quasi_identifiers), k_min=app.k_min,
        key=pseudonym.department_key(session, app.requester_department_id) if needs_key
        else None, as_of=today, sensitive_items=list(app.sensitive_items),
        max_suppression=app.max_suppression,
        aggregate=AggregateSpec.model_validate(app.aggregate) if app.aggregate else None)


def detach(item: DataItem) -> _Item:
    return _Item(item.name, item.type, item.kind, item.sensitivity, item.is_key)


def pending_first_deliveries(session: Session, approved_before: datetime) -> list[int]:
    """Approved applications still waiting for their first package (not blocked), approved
    before ``approved_before``: the request that approved one delivers it itself, and the
    scheduler should not race it (it retries after a crash or restart)."""
    rows = session.exec(select(Application.id).where(
        Application.state == ApplicationState.approved,
        col(Application.delivery_blocked).is_(None),
        col(Application.approved_at) < approved_before))
    return [r for r in rows if r is not None]


def due_periodic(session: Session, today: date) -> list[tuple[int, str]]:
    """(application, run key) of periodic grants whose current period has no package yet."""
    rows = session.exec(select(Application, Grant, Resource)
                        .join(Grant, col(Grant.application_id) == Application.id)
                        .join(Resource, col(Resource.id) == Application.resource_id)
                        .where(Application.state == ApplicationState.delivered,
                               col(Application.delivery_blocked).is_(None),
                               Application.schedule != Schedule.once,
                               col(Grant.revoked_at).is_(None))).all()
    due = []
    for app, grant, resource in rows:
        spec = AggregateSpec.model_validate(app.aggregate) if app.aggregate else None
        if spec is not None and grant.privacy_spent + spec.epsilon > spec.budget + 1e-9:
            continue  # its budget is spent: no release is due any more
        key = run_key_for(app.schedule, today, resource.current_version)
        if existing(session, grant.id or 0, key) is None:
            due.append((app.id or 0, key))
    return due
