"""Quality HTTP API under ``/api/v1/quality``.

Who sees what: scores are public to everyone signed in (they are on catalog entries);
runs, suites, reports and notices go to the data bureau (``kernel.policy``), leaders and the
provider department. Every value of a personal column in any of them is masked, and outside
the provider department small failing counts are suppressed and example rows withheld
(``quality.guard``).
"""

from __future__ import annotations

from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import HTMLResponse
from sqlmodel import Session, col, select

from catalog.models import Resource
from catalog.service import get_resource
from kernel.auth import DbSession, Principal, WriteSession, require
from kernel.idempotency import IDEMPOTENT, IdempotentRoute
from kernel.identity import Department, Role, User
from kernel.policy import is_data_bureau, require_data_bureau
from kernel.problems import Forbidden, NotFound, Phrase
from quality import audit, explain, guard, notices, report, runs, suites
from quality.masked import ColumnMask, public_kwargs
from quality.models import (
    CustomExpectation,
    NoticeStatus,
    QualityRun,
    QualityScore,
    QualitySuite,
    RectificationNotice,
)
from quality.schemas import (
    CustomExpectationIn,
    CustomExpectationOut,
    FailedRunOut,
    NoticeEventOut,
    NoticeIn,
    NoticeOut,
    NoticeResponseIn,
    RankedDepartment,
    RankedResource,
    RunDetail,
    RunOut,
    ScoreOut,
    SuiteOut,
    TrendPoint,
    WeightsIn,
    WeightsOut,
)
from translog import receipts

router = APIRouter(prefix="/quality", tags=["quality"], route_class=IdempotentRoute)

Anyone = Annotated[Principal, Depends(require())]
Reader = Annotated[Principal, Depends(require(Role.auditor, Role.leader, Role.publisher))]
Editor = Annotated[Principal, Depends(require(Role.auditor, Role.publisher))]
Auditor = Annotated[Principal, Depends(require(Role.auditor))]
Overseer = Annotated[Principal, Depends(require(Role.auditor, Role.leader))]
Publisher = Annotated[Principal, Depends(require(Role.publisher))]


def _check_reader(session: Session, who: Principal, resource: Resource) -> None:
    if who.department_id == resource.provider_id or who.has(Role.leader) or \
            is_data_bureau(session, who):
        return
    raise Forbidden(f"Quality details of {resource.code} are for the data bureau, leaders and "
                    "the provider department.",
                    key="problem.quality.details_forbidden", params={"code": resource.code})


def _check_overseer(session: Session, who: Principal) -> None:
    """City-wide rankings and trends: leaders and the data bureau."""
    if not (who.has(Role.leader) or is_data_bureau(session, who)):
        raise Forbidden("City-wide quality rankings are for leaders and the data bureau "
                        "(auditors of a department of kind 'bureau').")


def _username(session: Session, user_id: int | None) -> str | None:
    user = session.get(User, user_id) if user_id else None
    return user.username if user else None


# --- runs ------------------------------------------------------------------------------------

def _score_of(session: Session, run_id: int | None) -> QualityScore | None:
    return session.exec(select(QualityScore).where(QualityScore.run_id == run_id)).first()


def _run_out(session: Session, run: QualityRun, code: str) -> dict[str, Any]:
    """A run's summary (no values: counts of failing checks only)."""
    score = _score_of(session, run.id)
    failed = None if run.expectations is None else \
        sum(1 for e in run.expectations if not e.get("success"))
    return {**run.model_dump(exclude={"gx_result", "expectations", "resource_id", "notice_id"}),
            "resource": code, "requested_by": _username(session, run.requested_by),
            "overall": score.overall if score else None, "failed_expectations": failed}


@router.post("/resources/{code}/runs", response_model=RunOut,
             status_code=status.HTTP_202_ACCEPTED)
def request_run(code: str, session: WriteSession, who: Editor) -> dict[str, Any]:
    """Queue a run now (auditors; publishers for their own department's resources)."""
    return _run_out(session, runs.request_run(session, who, code), code)


@router.get("/resources/{code}/runs", response_model=list[RunOut])
def list_runs(code: str, session: DbSession, who: Reader,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    resource = get_resource(session, code)
    _check_reader(session, who, resource)
    found = session.exec(select(QualityRun).where(QualityRun.resource_id == resource.id)
                         .order_by(col(QualityRun.id).desc()).limit(limit))
    return [_run_out(session, r, code) for r in found]


@router.get("/runs/{run_id}", response_model=RunDetail)
def get_run(run_id: int, session: WriteSession, who: Reader) -> dict[str, Any]:
    """A run with its masked GX validation result, failing expectations and examples (each
    read of the failing-row samples is an entry of the access log)."""
    run = session.get(QualityRun, run_id)
    if run is None:
        raise NotFound(f"No quality run {run_id}.",
                       key="problem.quality.no_run", params={"run_id": run_id})
    resource = session.get(Resource, run.resource_id)
    assert resource is not None
    _check_reader(session, who, resource)
    _record_samples_read(session, who, resource.code, run.id)
    score = _score_of(session, run.id)
    if guard.is_provider(who, resource):
        expectations, gx_result = run.expectations, run.gx_result
    else:
        expectations = None if run.expectations is None else \
            [guard.outcome_for_outsider(o) for o in run.expectations]
        gx_result = guard.gx_result_for_outsider(run.gx_result)
    finished = receipts.for_subject(session, "run", str(run.id), ("quality.run_finished",))
    return {**_run_out(session, run, resource.code), "expectations": expectations,
            "gx_result": gx_result, "receipt": finished[-1][1] if finished else None,
            "score": _score_out(session, score, resource, who, run) if score else None}


def _score_out(session: Session, score: QualityScore, resource: Resource, who: Principal,
               run: QualityRun | None = None) -> ScoreOut:
    """A score with, per dimension, the checks that failed and their numbers."""
    run = run or session.get(QualityRun, score.run_id)
    out = ScoreOut.model_validate(score)
    out.failing = explain.failing(run.expectations if run else None,
                                  report.notes_of(session, resource),
                                  provider=guard.is_provider(who, resource))
    out.report = f"/api/v1/quality/resources/{resource.code}/report?run={score.run_id}"
    out.log_entry = run.log_seq if run else None
    return out


@router.get("/resources/{code}/score", response_model=ScoreOut)
def latest_score(code: str, session: DbSession, who: Anyone) -> ScoreOut:
    """The newest score of a resource (the overall one is also on its catalog entry), with
    the failing checks per dimension: small counts suppressed outside the provider
    department, whose publishers also get the first (masked) failing rows."""
    resource = get_resource(session, code)
    score = session.exec(select(QualityScore).where(QualityScore.resource_id == resource.id)
                         .order_by(col(QualityScore.id).desc())).first()
    if score is None:
        raise NotFound(f"Resource {code} has not been scored yet.",
                       key="problem.quality.not_scored", params={"code": code})
    out = _score_out(session, score, resource, who)
    if out.failing and explain.shows_examples(out.failing):
        explain.record_samples_viewed(who, code, score.run_id)
    return out


@router.get("/resources/{code}/report", response_class=HTMLResponse)
def html_report(code: str, session: WriteSession, who: Reader,
                run: Annotated[int | None, Query(description="Run id; default newest")] = None,
                ) -> HTMLResponse:
    """The self-contained HTML report of the newest (or a given) successful run; checks are
    named by their note; example rows for the provider department only (each read is an
    entry of the access log)."""
    resource = get_resource(session, code)
    _check_reader(session, who, resource)
    html = report.report_for(session, code, run, provider_view=guard.is_provider(who, resource))
    _record_samples_read(session, who, code, run)
    return HTMLResponse(html)


def _record_samples_read(session: Session, who: Principal, code: str,
                         run_id: int | None) -> None:
    explain.publish_samples_viewed(session, who, code, run_id)


# --- suites and custom expectations -----------------------------------------------------------

def _masks(resource: Resource) -> dict[str, ColumnMask]:
    return {i.name: ColumnMask(i.kind, i.sensitivity) for i in resource.items}


def _masked_configs(resource: Resource, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    masks = _masks(resource)
    con = duckdb.connect()
    try:
        return [{**c, "kwargs": public_kwargs(c, masks, con)} for c in configs]
    finally:
        con.close()


def _suite_out(resource: Resource, suite: QualitySuite) -> SuiteOut:
    stored = suite.id is not None
    return SuiteOut(version=suite.version if stored else None,
                    created_at=suite.created_at if stored else None, stored=stored,
                    fingerprint=suite.fingerprint,
                    expectations=_masked_configs(resource, suite.suite["expectations"]))


@router.get("/resources/{code}/suite", response_model=SuiteOut)
def current_suite(code: str, session: DbSession, who: Reader) -> SuiteOut:
    """The expectation suite the next run will validate. If the catalog entry, the
    row-count baseline or the custom expectations changed since the newest stored version,
    it is shown unstored (``stored: false``, ``version: null``): a GET never writes; the
    next run stores it."""
    resource = get_resource(session, code)
    _check_reader(session, who, resource)
    return _suite_out(resource, suites.next_suite(session, resource))


@router.get("/resources/{code}/suites", response_model=list[SuiteOut])
def suite_versions(code: str, session: DbSession, who: Reader) -> list[SuiteOut]:
    resource = get_resource(session, code)
    _check_reader(session, who, resource)
    return [_suite_out(resource, s) for s in suites.list_suites(session, resource)]


def _custom_out(session: Session, resource: Resource, c: CustomExpectation) -> dict[str, Any]:
    shown = {"kwargs": c.arguments, "meta": {"source": "custom"}}
    kwargs = _masked_configs(resource, [shown])[0]["kwargs"]
    return {"id": c.id, "type": c.type, "kwargs": kwargs, "dimension": c.dimension,
            "note": c.note, "added_by": _username(session, c.added_by), "added_at": c.added_at}


@router.post("/resources/{code}/expectations", response_model=CustomExpectationOut,
             status_code=status.HTTP_201_CREATED, dependencies=[IDEMPOTENT])
def add_expectation(code: str, body: CustomExpectationIn, session: WriteSession,
                    who: Editor) -> dict[str, Any]:
    """Add any Great Expectations expectation by name with its arguments; GX validates them
    before anything is saved (unknown expectation or bad argument: 422)."""
    custom = suites.add_custom(session, who, code, body.type, body.arguments, body.dimension,
                               body.note)
    return _custom_out(session, get_resource(session, code), custom)


@router.get("/resources/{code}/expectations", response_model=list[CustomExpectationOut])
def list_expectations(code: str, session: DbSession, who: Reader) -> list[dict[str, Any]]:
    resource = get_resource(session, code)
    _check_reader(session, who, resource)
    return [_custom_out(session, resource, c) for c in suites.active_customs(session, resource)]


@router.delete("/resources/{code}/expectations/{custom_id}",
               status_code=status.HTTP_204_NO_CONTENT)
def remove_expectation(code: str, custom_id: int, session: WriteSession,
                       who: Editor) -> Response:
    suites.remove_custom(session, who, code, custom_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- the data bureau's audit -----------------------------------------------------------------

def _weights_out(session: Session, row: Any) -> dict[str, Any]:
    return {**runs.weights_dict(row), "threshold": row.threshold,
            "changed_by": _username(session, row.changed_by),
            "changed_at": row.changed_at if row.id else None}


@router.get("/weights", response_model=WeightsOut)
def get_weights(session: DbSession, _: Anyone) -> dict[str, Any]:
    """The weights of the overall score and the audit threshold now in force."""
    return _weights_out(session, runs.current_weights(session))


@router.put("/weights", response_model=WeightsOut)
def put_weights(body: WeightsIn, session: WriteSession, who: Auditor) -> dict[str, Any]:
    """Change the weights (the data bureau); applies to runs from now on, history is kept."""
    require_data_bureau(session, who, Phrase("phrase.bureau.set_weights",
                                             "sets the city-wide quality weights"))
    weights = body.model_dump(exclude={"threshold"})
    return _weights_out(session, audit.set_weights(session, who, weights, body.threshold))


@router.get("/weights/history", response_model=list[WeightsOut])
def weights_history(session: DbSession, who: Overseer) -> list[dict[str, Any]]:
    _check_overseer(session, who)
    return [_weights_out(session, w) for w in audit.weights_history(session)]


def _ranked(entries: list[audit.Latest]) -> list[RankedResource]:
    return [RankedResource(rank=i, code=e.resource.code, name=e.resource.name,
                           department=e.department.code, overall=e.score.overall,
                           freshness=e.score.freshness, completeness=e.score.completeness,
                           validity=e.score.validity, uniqueness=e.score.uniqueness,
                           consistency=e.score.consistency, scored_at=e.score.scored_at,
                           run_id=e.score.run_id) for i, e in enumerate(entries, start=1)]


@router.get("/ranking/departments", response_model=list[RankedDepartment])
def rank_departments(session: DbSession, who: Overseer,
                     threshold: Annotated[float | None, Query(ge=0, le=100)] = None,
                     ) -> list[dict[str, Any]]:
    """Departments by the average of their resources' latest overall scores, with how many
    of their resources are not scored yet and whose newest run failed."""
    _check_overseer(session, who)
    return audit.rank_departments(session, audit.threshold_or_default(session, threshold))


@router.get("/ranking/resources", response_model=list[RankedResource])
def rank_resources(session: DbSession, who: Overseer,
                   department: Annotated[str | None, Query()] = None) -> list[RankedResource]:
    _check_overseer(session, who)
    return _ranked(audit.rank_resources(session, department))


@router.get("/below-threshold", response_model=list[RankedResource])
def below_threshold(session: DbSession, who: Overseer,
                    threshold: Annotated[float | None, Query(ge=0, le=100)] = None,
                    ) -> list[RankedResource]:
    """Resources whose latest overall score is below the threshold, worst first."""
    _check_overseer(session, who)
    limit = audit.threshold_or_default(session, threshold)
    return _ranked(audit.below_threshold(session, limit))


@router.get("/trends", response_model=list[TrendPoint])
def trends(session: DbSession, who: Overseer,
           resource: Annotated[str | None, Query(description="Resource code")] = None,
           department: Annotated[str | None, Query(description="Department code")] = None,
           days: Annotated[int, Query(ge=1, le=3660)] = 90) -> list[dict[str, Any]]:
    """Daily average scores over time, for one resource, one department or everything."""
    _check_overseer(session, who)
    target = get_resource(session, resource) if resource else None
    return audit.trend(session, resource=target, department=department, days=days)


@router.get("/failed-runs", response_model=list[FailedRunOut])
def failed_runs(session: DbSession, who: Overseer) -> list[dict[str, Any]]:
    """Resources whose newest run failed for good, with why (the data bureau's view)."""
    _check_overseer(session, who)
    return audit.failed_latest(session)


# --- rectification notices -------------------------------------------------------------------

def _notice_out(session: Session, notice: RectificationNotice,
                with_history: bool = False) -> dict[str, Any]:
    resource = session.get(Resource, notice.resource_id)
    dept = session.get(Department, notice.department_id)
    events = notices.history(session, notice) if with_history else []
    verifying = list(session.exec(select(QualityRun.id).where(QualityRun.notice_id == notice.id)
                                  .order_by(col(QualityRun.id).desc())))
    return {**notice.model_dump(), **notices.timing(notice),
            "verifying_runs": verifying, "resource": resource.code if resource else "",
            "resource_name": resource.name if resource else "",
            "department": dept.code if dept else "",
            "issued_by": _username(session, notice.issued_by),
            "responded_by": _username(session, notice.responded_by),
            "verification_run_id": verifying[0] if verifying else None,
            "history": [NoticeEventOut(action=e.action, actor=_username(session, e.actor_id),
                                       at=e.at, note=e.note, run_id=e.run_id) for e in events]}


@router.post("/notices", response_model=NoticeOut, status_code=status.HTTP_201_CREATED,
             dependencies=[IDEMPOTENT])
def issue_notice(body: NoticeIn, session: WriteSession, who: Auditor) -> dict[str, Any]:
    """Issue a rectification notice (整改通知) to the resource's provider department."""
    min_score = body.min_score if body.min_score is not None else \
        audit.threshold_or_default(session, None)
    notice = notices.issue(session, who, body.resource, problem=body.problem,
                           deadline=body.deadline, dimension=body.dimension, rules=body.rules,
                           min_score=min_score, run_id=body.run_id)
    return _notice_out(session, notice, with_history=True)


@router.get("/notices", response_model=list[NoticeOut])
def list_notices(session: DbSession, who: Annotated[Principal, Depends(require(
                     Role.auditor, Role.leader, Role.publisher))],
                 status_: Annotated[NoticeStatus | None, Query(alias="status")] = None,
                 department: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
    """The data bureau and leaders see all notices; others their own department's."""
    return [_notice_out(session, n) for n in notices.list_notices(session, who, status_,
                                                                  department)]


@router.get("/notices/{notice_id}", response_model=NoticeOut)
def get_notice(notice_id: int, session: DbSession, who: Reader) -> dict[str, Any]:
    notice = notices.get_notice(session, notice_id)
    if not notices.visible_to(session, who, notice):
        raise Forbidden("This notice is addressed to another department.")
    return _notice_out(session, notice, with_history=True)


@router.post("/notices/{notice_id}/response", response_model=NoticeOut)
def respond(notice_id: int, body: NoticeResponseIn, session: WriteSession,
            who: Publisher) -> dict[str, Any]:
    """The addressed department's publishers report the fix; a verifying run is queued."""
    notices.respond(session, who, notice_id, body.response)
    return _notice_out(session, notices.get_notice(session, notice_id), with_history=True)
