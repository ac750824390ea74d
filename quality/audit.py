"""The data bureau's view: rankings of departments and resources by their latest scores,
trends over time, resources below the threshold, and the editable weights."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from catalog.models import Resource, ResourceStatus
from kernel.auth import Principal
from kernel.db import utcnow
from kernel.identity import Department
from kernel.problems import Invalid
from quality import runs
from quality.models import QualityRun, QualityScore, QualityWeights, RunStatus
from quality.rules import Dimension


@dataclass
class Latest:
    score: QualityScore
    resource: Resource
    department: Department


def latest_scores(session: Session, department: str | None = None) -> list[Latest]:
    """Each resource's newest score (by run order), with its resource and department."""
    newest = select(func.max(QualityScore.id)).group_by(col(QualityScore.resource_id))
    query = (select(QualityScore, Resource, Department)
             .join(Resource, col(Resource.id) == QualityScore.resource_id)
             .join(Department, col(Department.id) == Resource.provider_id)
             .where(col(QualityScore.id).in_(newest)))
    if department:
        query = query.where(Department.code == department.upper())
    return [Latest(s, r, d) for s, r, d in session.exec(query)]


def rank_resources(session: Session, department: str | None) -> list[Latest]:
    return sorted(latest_scores(session, department),
                  key=lambda x: (-x.score.overall, x.resource.code))


def rank_departments(session: Session, threshold: float) -> list[dict[str, Any]]:
    by_dept: dict[int, list[Latest]] = defaultdict(list)
    for latest in latest_scores(session):
        by_dept[latest.department.id or 0].append(latest)
    unscored, failed = _unscored_and_failed(session)
    rows: list[dict[str, Any]] = []
    for entries in by_dept.values():
        dept = entries[0].department
        overall = [e.score.overall for e in entries]
        rows.append({"department": dept.code, "name_zh": dept.name_zh, "name_en": dept.name_en,
                     "resources": len(entries),
                     "average": round(sum(overall) / len(overall), 2), "lowest": min(overall),
                     "below_threshold": sum(1 for s in overall if s < threshold),
                     "unscored": unscored.get(dept.id or 0, 0),
                     "failed": failed.get(dept.id or 0, 0)})
    rows.sort(key=lambda r: (-r["average"], r["department"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def _newest_runs(session: Session) -> list[tuple[QualityRun, Resource, Department]]:
    """Each active resource's newest finished-or-failed run (queued/running ones skipped)."""
    newest = select(func.max(QualityRun.id)).where(
        col(QualityRun.status).in_([RunStatus.succeeded, RunStatus.failed])) \
        .group_by(col(QualityRun.resource_id))
    rows = session.exec(select(QualityRun, Resource, Department)
                        .join(Resource, col(Resource.id) == QualityRun.resource_id)
                        .join(Department, col(Department.id) == Resource.provider_id)
                        .where(col(QualityRun.id).in_(newest),
                               Resource.status == ResourceStatus.active))
    return [(r, res, d) for r, res, d in rows]


def _unscored_and_failed(session: Session) -> tuple[dict[int, int], dict[int, int]]:
    """Per department: active resources with data and no score; newest run failed."""
    scored = select(QualityScore.resource_id).distinct()
    unscored: dict[int, int] = defaultdict(int)
    for provider_id in session.exec(select(Resource.provider_id).where(
            Resource.status == ResourceStatus.active, col(Resource.current_version) > 0,
            col(Resource.id).not_in(scored))):
        unscored[provider_id] += 1
    failed: dict[int, int] = defaultdict(int)
    for run, resource, _ in _newest_runs(session):
        if run.status is RunStatus.failed:
            failed[resource.provider_id] += 1
    return unscored, failed


def failed_latest(session: Session) -> list[dict[str, Any]]:
    """Resources whose newest run failed for good, with the reason, newest first."""
    rows = [{"run_id": run.id or 0, "resource": resource.code, "name": resource.name,
             "department": dept.code, "finished_at": run.finished_at, "attempts": run.attempts,
             "error": run.error}
            for run, resource, dept in _newest_runs(session) if run.status is RunStatus.failed]
    return sorted(rows, key=lambda r: -r["run_id"])


def below_threshold(session: Session, threshold: float) -> list[Latest]:
    return sorted((x for x in latest_scores(session) if x.score.overall < threshold),
                  key=lambda x: (x.score.overall, x.resource.code))


def trend(session: Session, *, resource: Resource | None, department: str | None,
          days: int) -> list[dict[str, Any]]:
    """Average overall (and dimension) scores per day over the last ``days`` days."""
    since = utcnow() - timedelta(days=days)
    query = select(QualityScore).where(col(QualityScore.scored_at) >= since)
    if resource is not None:
        query = query.where(QualityScore.resource_id == resource.id)
    if department:
        dept = session.exec(select(Department).where(Department.code == department.upper())
                            ).first()
        query = query.where(QualityScore.department_id == (dept.id if dept else -1))
    by_day: dict[date, list[QualityScore]] = defaultdict(list)
    for score in session.exec(query):
        by_day[score.scored_at.date()].append(score)
    return [_day(day, scores) for day, scores in sorted(by_day.items())]


def _day(day: date, scores: list[QualityScore]) -> dict[str, Any]:
    out: dict[str, Any] = {"date": day.isoformat(), "runs": len(scores),
                           "overall": _avg([s.overall for s in scores])}
    for dim in Dimension:
        out[dim.value] = _avg([v for s in scores if (v := getattr(s, dim.value)) is not None])
    return out


def _avg(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def set_weights(session: Session, who: Principal, weights: dict[str, float],
                threshold: float) -> QualityWeights:
    """A new row of weights (the old ones stay, as history)."""
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise Invalid("Weights must be non-negative and at least one must be positive.")
    if not 0 <= threshold <= 100:
        raise Invalid("The threshold is a score between 0 and 100.")
    row = QualityWeights(freshness=weights["freshness"], completeness=weights["completeness"],
                         validity=weights["validity"], uniqueness=weights["uniqueness"],
                         consistency=weights["consistency"], threshold=threshold,
                         changed_by=who.user_id)
    session.add(row)
    session.flush()
    return row


def weights_history(session: Session) -> list[QualityWeights]:
    return list(session.exec(select(QualityWeights).order_by(col(QualityWeights.id).desc())))


def threshold_or_default(session: Session, threshold: float | None) -> float:
    return threshold if threshold is not None else runs.current_weights(session).threshold
