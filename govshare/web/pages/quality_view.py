"""The quality panel of a resource page: the newest score with, per dimension, the checks that
failed and their numbers (quality.explain), the report link, why the newest run failed if it
did, and the custom checks with the form to add a row rule. What a viewer sees follows the
API's rules: details for the provider department, the data bureau and leaders; outside the
provider department small counts are suppressed and example rows withheld."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session, col, select

from catalog.models import Resource
from kernel.auth import Principal
from kernel.identity import Role
from kernel.policy import is_data_bureau
from quality import explain, guard, report, suites
from quality.models import QualityRun, QualityScore, RunStatus


def can_read_details(session: Session, who: Principal, resource: Resource) -> bool:
    return who.department_id == resource.provider_id or who.has(Role.leader) or \
        is_data_bureau(session, who)


def can_add_checks(session: Session, who: Principal, resource: Resource) -> bool:
    own = who.has(Role.publisher) and who.department_id == resource.provider_id
    return own or is_data_bureau(session, who)


def panel(session: Session, who: Principal, resource: Resource) -> dict[str, Any]:
    details = can_read_details(session, who, resource)
    newest = session.exec(select(QualityRun).where(
        QualityRun.resource_id == resource.id,
        col(QualityRun.status).in_([RunStatus.succeeded, RunStatus.failed]))
        .order_by(col(QualityRun.id).desc())).first()
    score = session.exec(select(QualityScore).where(QualityScore.resource_id == resource.id)
                         .order_by(col(QualityScore.id).desc())).first()
    scored_run = session.get(QualityRun, score.run_id) if score else None
    failing: dict[str, list[dict[str, Any]]] = {}
    if scored_run is not None:
        failing = explain.failing(scored_run.expectations, report.notes_of(session, resource),
                                  provider=guard.is_provider(who, resource))
        if explain.shows_examples(failing):  # masked failing rows: a read on record
            explain.record_samples_viewed(who, resource.code, scored_run.id)
    return {
        "failing": failing,
        "report_url": f"/api/v1/quality/resources/{resource.code}/report?run={score.run_id}"
        if score and details else None,
        "failed_run": newest if newest is not None and newest.status is RunStatus.failed
        else None,
        "details": details,
        "customs": suites.active_customs(session, resource) if details else [],
        "can_add": can_add_checks(session, who, resource),
        # The data bureau issues rectification notices: a link to the form, filled in.
        "notice_link": _notice_link(resource, failing) if is_data_bureau(session, who)
        and score is not None else None,
        "small": guard.SMALL_COUNT,
    }


def notice_link(code: str, dimension: str | None, rules: list[str]) -> str:
    """The /quality link that opens the bureau's notice form filled in for ``code``."""
    query = {"resource": code, "dimension": dimension or "", "rules": ",".join(rules)}
    return "/quality?" + urlencode({k: v for k, v in query.items() if v}) + "#notice-form"


def _notice_link(resource: Resource, failing: dict[str, list[dict[str, Any]]]) -> str:
    weak = [d for d, checks in failing.items() if checks]
    return notice_link(resource.code, weak[0] if len(weak) == 1 else None,
                       [str(c["rule"]) for checks in failing.values() for c in checks
                        if c.get("rule")])
