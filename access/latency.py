"""Sharing latency: first delivery − filing, by stage, in hours and in working days.

Stages come from the history (``ApplicationStep``): the time an application spends in each
state up to its first delivery is charged to a stage —

* waiting_for_approval: ``submitted`` (the provider deciding) and ``returned`` (the
  requester revising; also reported alone as ``with_requester``);
* waiting_on_conditions: ``conditions_pending`` (waiting for the requester to accept the
  conditions);
* processing: ``approved`` (masking, checks and writing the package).

The stages add up to the total. Working days use ``access.calendar`` (weekends, holidays and
make-up days), as working-day time, so they add up too.

This module is the one definition of sharing latency: ``STAGE_STATES`` (which state counts
toward which stage), ``QUANTILES`` and ``percentile`` (linear interpolation between closest
ranks, which is DuckDB's ``quantile_cont``) are what the access API reports here and what the
dashboards' mart computes (``metrics.mart`` builds its stage table from ``STAGE_STATES``,
``metrics.service`` asks for ``QUANTILES``), so the two never disagree on a name or a
percentile.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from access.calendar import WorkCalendar
from access.models import Application, ApplicationStep, Bundle
from catalog.models import Resource
from kernel.identity import Department

STAGE_STATES: dict[str, tuple[str, ...]] = {
    "waiting_for_approval": ("submitted", "returned"),
    "waiting_on_conditions": ("conditions_pending",),
    "processing": ("approved",),
}
STAGES = tuple(STAGE_STATES)
_STAGE_OF_STATE = {state: stage for stage, states in STAGE_STATES.items() for state in states}
GROUPS = ("provider", "requester", "sharing_type", "stage", "resource")
QUANTILES = (0.5, 0.9, 0.99)


def quantile_key(q: float) -> str:
    """``p50``, ``p90``, ``p99``: the name of a quantile in every report."""
    return f"p{round(q * 100)}"


@dataclass
class Measured:
    application_id: int
    bundle_id: int | None
    provider: str
    requester: str
    sharing_type: str
    resource: str
    filed_at: datetime
    delivered_at: datetime
    hours: float
    working_days: float
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)  # hours, working days
    with_requester_hours: float = 0.0
    first_download_hours: float | None = None
    bounces: int = 0


def measure(app: Application, history: Sequence[ApplicationStep], cal: WorkCalendar,
            names: dict[str, str]) -> Measured | None:
    """The latency of one delivered application (None until its first delivery)."""
    if app.delivered_at is None:
        return None
    stages = {s: [0.0, 0.0] for s in STAGES}
    with_requester = 0.0
    for step, following in itertools.pairwise(history):
        stage = _STAGE_OF_STATE.get(step.to_state)
        if stage is None:
            continue
        seconds = (following.at - step.at).total_seconds()
        stages[stage][0] += seconds / 3600
        stages[stage][1] += cal.working_days_between(step.at, following.at)
        if step.to_state == "returned":
            with_requester += seconds / 3600
        if following.action == "deliver":
            break
    total = (app.delivered_at - app.filed_at).total_seconds() / 3600
    download = None if app.first_download_at is None else \
        (app.first_download_at - app.delivered_at).total_seconds() / 3600
    return Measured(app.id or 0, app.bundle_id, names["provider"], names["requester"],
                    app.sharing_type.value, names["resource"], app.filed_at, app.delivered_at,
                    total, cal.working_days_between(app.filed_at, app.delivered_at),
                    {s: (v[0], v[1]) for s, v in stages.items()}, with_requester, download,
                    app.bounces)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _summary(hours: Sequence[float], days: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(hours)}
    for q in QUANTILES:
        key = quantile_key(q)
        out[f"{key}_hours"] = round(percentile(hours, q), 3)
        out[f"{key}_working_days"] = round(percentile(days, q), 3)
    out["max_hours"] = round(max(hours), 3)
    return out


def collect(session: Session, since: datetime | None = None,
            until: datetime | None = None) -> list[Measured]:
    query = select(Application).where(col(Application.delivered_at).is_not(None))
    if since is not None:
        query = query.where(col(Application.filed_at) >= since)
    if until is not None:
        query = query.where(col(Application.filed_at) < until)
    apps = list(session.exec(query))
    history = _histories(session, [a.id or 0 for a in apps])
    depts = {d.id: d.code for d in session.exec(select(Department))}
    codes = _resource_codes(session, {a.resource_id for a in apps})
    cal = WorkCalendar.from_settings()
    out = []
    for app in apps:
        names = {"provider": depts.get(app.provider_department_id, "?"),
                 "requester": depts.get(app.requester_department_id, "?"),
                 "resource": codes.get(app.resource_id, "?")}
        m = measure(app, history.get(app.id or 0, []), cal, names)
        if m is not None:
            out.append(m)
    return out


def _histories(session: Session, ids: list[int]) -> dict[int, list[ApplicationStep]]:
    by_app: dict[int, list[ApplicationStep]] = defaultdict(list)
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for step in session.exec(select(ApplicationStep)
                                 .where(col(ApplicationStep.application_id).in_(part))
                                 .order_by(col(ApplicationStep.application_id),
                                           col(ApplicationStep.seq))):
            by_app[step.application_id].append(step)
    return by_app


def _resource_codes(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.exec(select(Resource.id, Resource.code).where(col(Resource.id).in_(ids)))
    return {rid: code for rid, code in rows if rid is not None}


_KEYS: dict[str, Callable[[Measured], str]] = {
    "provider": lambda m: m.provider,
    "requester": lambda m: m.requester,
    "sharing_type": lambda m: m.sharing_type,
    "resource": lambda m: m.resource,
}


def report(measured: Sequence[Measured], group_by: str) -> list[dict[str, Any]]:
    """Percentiles of latency per group; ``stage`` groups by stage instead of by application."""
    if group_by == "stage":
        return [{"group": stage,
                 **_summary([m.stages[stage][0] for m in measured],
                            [m.stages[stage][1] for m in measured])}
                for stage in STAGES if measured]
    groups: dict[str, list[Measured]] = defaultdict(list)
    for m in measured:
        groups[_KEYS[group_by](m)].append(m)
    return [_group_row(name, rows) for name, rows in sorted(groups.items())]


def _group_row(name: str, rows: list[Measured]) -> dict[str, Any]:
    row = {"group": name, **_summary([m.hours for m in rows], [m.working_days for m in rows])}
    for stage in STAGES:
        row[f"{stage}_p50_hours"] = round(percentile([m.stages[stage][0] for m in rows], 0.5), 3)
    row["bounces_mean"] = round(sum(m.bounces for m in rows) / len(rows), 3)
    row["bounced"] = sum(1 for m in rows if m.bounces)
    return row


def bundles(session: Session, measured: Sequence[Measured]) -> list[dict[str, Any]]:
    """Per bundle: elapsed time (parallel approval) next to the sum of its parts' latencies
    (what approving them one after another would have cost)."""
    by_bundle: dict[int, list[Measured]] = defaultdict(list)
    for m in measured:
        if m.bundle_id is not None:
            by_bundle[m.bundle_id].append(m)
    out = []
    for bundle_id, parts in sorted(by_bundle.items()):
        bundle = session.get(Bundle, bundle_id)
        if bundle is None:
            continue
        end = bundle.completed_at or max(p.delivered_at for p in parts)
        out.append({"bundle": bundle_id, "title": bundle.title,
                    "completed": bundle.completed_at is not None,
                    "parts_delivered": len(parts),
                    "elapsed_hours": round((end - bundle.filed_at).total_seconds() / 3600, 3),
                    "sum_of_parts_hours": round(sum(p.hours for p in parts), 3),
                    "max_part_hours": round(max(p.hours for p in parts), 3)})
    return out


def as_rows(measured: Sequence[Measured]) -> list[dict[str, Any]]:
    """One row per application (for export and the CLI's --json)."""
    return [{"application": m.application_id, "bundle": m.bundle_id, "provider": m.provider,
             "requester": m.requester, "sharing_type": m.sharing_type, "resource": m.resource,
             "hours": round(m.hours, 3), "working_days": round(m.working_days, 3),
             **{f"{s}_hours": round(v[0], 3) for s, v in m.stages.items()},
             **{f"{s}_working_days": round(v[1], 3) for s, v in m.stages.items()},
             "with_requester_hours": round(m.with_requester_hours, 3),
             "first_download_hours": None if m.first_download_hours is None
             else round(m.first_download_hours, 3),
             "bounces": m.bounces} for m in measured]
