"""The demo's sharing history: made by the real services, coherent in time and state.

One tiny-scale build with history (about 30 s) is shared by the module's tests.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from govshare_demo import DemoSummary, build_world
from govshare_demo.history import HISTORY_DAYS
from sqlmodel import Session, col, func, select

from access import planning, scheduler
from access.flows import MOVES, Action
from access.models import (
    Application,
    ApplicationState,
    ApplicationStep,
    Bundle,
    Delivery,
    DeliveryRating,
    Grant,
    RejectionReason,
)
from catalog.models import DataVersion, Resource, VersionMode
from kernel import db, events
from kernel.identity import User
from kernel.settings import get_settings
from quality.models import (
    NoticeEvent,
    NoticeStatus,
    QualityRun,
    QualityScore,
    RectificationNotice,
    RunStatus,
    RunTrigger,
)
from translog import export, keys, verify
from translog.models import LogEntry, TreeHead

S = ApplicationState


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoSummary, datetime]]:
    data = tmp_path_factory.mktemp("history") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVSHARE_DATA_DIR", str(data))
        mp.setenv("GOVSHARE_KEY_PASSPHRASE", "test-passphrase")
        get_settings.cache_clear()
        db.reset_engines()
        from govshare.migrate import upgrade
        from govshare.wiring import subscribe_events

        upgrade()
        subscribe_events()
        started = datetime.now(UTC)
        summary = build_world(db.session_scope, scale="tiny")
        yield summary, started
        db.reset_engines()
        events.unsubscribe_all()
        get_settings.cache_clear()


@pytest.fixture
def session(built: tuple[DemoSummary, datetime]) -> Iterator[Session]:
    with db.session_scope(write=False) as s:
        yield s


def applications(session: Session) -> list[Application]:
    return list(session.exec(select(Application).order_by(col(Application.id))))


def test_nothing_was_refused_and_the_volume_fits_the_scale(
        built: tuple[DemoSummary, datetime], session: Session) -> None:
    summary, _ = built
    assert summary.history is not None
    assert summary.history.refused == []
    apps = applications(session)
    assert 40 <= len(apps) <= 70
    states = Counter(a.state for a in apps)
    granted = states[S.delivered] + states[S.expired] + states[S.revoked]
    assert granted >= len(apps) // 2, states
    assert 6 <= states[S.rejected] <= len(apps) // 3, states
    assert states[S.approved] == 0, "every approval was delivered (or blocked and fixed)"


def test_every_step_is_a_legal_move_in_time_order(built: tuple[DemoSummary, datetime],
                                                 session: Session) -> None:
    _, started = built
    t0 = started - timedelta(days=HISTORY_DAYS + 7)
    steps: dict[int, list[ApplicationStep]] = {}
    for step in session.exec(select(ApplicationStep).order_by(col(ApplicationStep.application_id),
                                                              col(ApplicationStep.seq))):
        steps.setdefault(step.application_id, []).append(step)
    for app in applications(session):
        history = steps[app.id or 0]
        assert history[0].action == "file" and history[0].to_state == S.submitted
        for before, after in itertools.pairwise(history):
            assert after.seq == before.seq + 1
            assert after.at >= before.at, (app.id, before.action, after.action)
            assert after.from_state == before.to_state
            move = MOVES[Action(after.action)]
            assert S(after.from_state) in move.sources, (app.id, after.action)
            assert S(after.to_state) == (move.target or S(after.from_state))
        assert history[-1].to_state == app.state
        assert t0 < history[0].at == app.filed_at < started


def test_stage_timestamps_are_ordered(built: tuple[DemoSummary, datetime],
                                      session: Session) -> None:
    _, started = built
    for app in applications(session):
        chain = [app.filed_at, app.decided_at, app.approved_at, app.delivered_at,
                 app.first_download_at]
        present = [t for t in chain if t is not None]
        assert present == sorted(present), app.id
        assert all(t < started for t in present)
        if app.closed_at is not None:
            assert app.closed_at >= app.filed_at
        if app.state in (S.delivered, S.expired, S.revoked):
            assert app.delivered_at is not None


def test_the_stories_all_happen(built: tuple[DemoSummary, datetime], session: Session) -> None:
    apps = applications(session)
    reasons = Counter(s.detail.get("reason") for s in session.exec(
        select(ApplicationStep).where(ApplicationStep.action == "reject")))
    assert set(reasons) == {r.value for r in RejectionReason}
    assert sum(a.escalations for a in apps) >= 1
    coordinated = session.exec(select(ApplicationStep).where(
        ApplicationStep.action == "coordinate")).all()
    assert {s.detail["kind"] for s in coordinated} >= {"remind"}
    assert sum(a.returns for a in apps) >= 2
    assert sum(a.notice_violations for a in apps) >= 1
    actions = Counter(s.action for s in session.exec(select(ApplicationStep)))
    for action in ("auto_approve", "approve", "set_conditions", "accept_conditions",
                   "resubmit", "deliver", "revoke", "expire"):
        assert actions[action] >= 1, action
    assert session.exec(select(func.count()).select_from(Bundle)).one() >= 1
    assert session.exec(select(func.count()).select_from(DeliveryRating)).one() >= 1
    assert any(a.first_download_at for a in apps)
    entries = Counter(e for e in session.exec(select(LogEntry.event_type)))
    assert entries["grant.queried"] >= 1 and entries["delivery.downloaded"] >= 1
    assert entries["delivery.rated"] >= 1
    notices = session.exec(select(RectificationNotice)).all()
    assert notices and any(n.responded_at for n in notices)
    assert session.exec(select(func.count()).select_from(NoticeEvent)).one() >= len(notices)


def test_periodic_grants_produced_one_package_per_period(session: Session) -> None:
    keys_by_grant: dict[int, list[str]] = {}
    for d in session.exec(select(Delivery)):
        keys_by_grant.setdefault(d.grant_id, []).append(d.run_key)
    periodic = session.exec(select(Grant).where(Grant.schedule != "once")).all()
    assert periodic
    assert max(len(keys_by_grant.get(g.id or 0, [])) for g in periodic) >= 2
    for runs in keys_by_grant.values():
        assert len(runs) == len(set(runs))


def test_the_log_is_monotonic_and_verifies(built: tuple[DemoSummary, datetime],
                                           tmp_path: Path) -> None:
    _, started = built
    with db.session_scope(write=False) as session:
        times = list(session.exec(select(LogEntry.time).order_by(col(LogEntry.seq))))
        heads = list(session.exec(select(TreeHead.time).order_by(col(TreeHead.tree_size))))
        first_registration = session.exec(select(func.min(Resource.created_at))).one()
    assert times == sorted(times) and heads == sorted(heads)
    assert times[0] < started - timedelta(days=HISTORY_DAYS - 7)
    assert first_registration is not None and first_registration <= times[-1]
    with db.session_scope() as session:
        export.export_to_path(session, tmp_path / "log.jsonl")
        (tmp_path / "keys.json").write_text(
            json.dumps(keys.key_document(keys.all_keys(session))))
    result = verify.verify_export(tmp_path / "log.jsonl",
                                  verify.load_public_keys(tmp_path / "keys.json"))
    assert result.ok, result.summary()
    assert result.tree_size == len(times)


def test_the_catalog_looks_as_before(built: tuple[DemoSummary, datetime],
                                     session: Session) -> None:
    """Registered months ago, yet fresh where the defects catalogue says fresh, and every
    demo token valid now."""
    summary, started = built
    resources = {r.code: r for r in session.exec(select(Resource))}
    for made in summary.resources:
        stored = resources[made.code]
        assert stored.created_at < started - timedelta(days=HISTORY_DAYS - 7)
        assert stored.last_data_update is not None
        assert (summary.as_of - stored.last_data_update.date()).days == made.stale_days
        assert stored.published_at <= stored.created_at.date()
    from kernel.auth import authenticate
    from kernel.identity import Role

    principal = authenticate(session, summary.token("GA", Role.requester))
    assert principal.department_code == "GA"


def test_the_scheduler_does_not_catch_up_months(built: tuple[DemoSummary, datetime]) -> None:
    """Starting the server after the build: at most one package per active periodic grant
    (the current period), no retried first deliveries, nothing fails."""
    with db.session_scope(write=False) as session:
        now = datetime.now(UTC)
        pending = planning.pending_first_deliveries(session, now)
        active = [g for g in session.exec(select(Grant).where(Grant.schedule != "once"))
                  if g.revoked_at is None and g.valid_until > now]
    assert pending == []
    report = scheduler.run_due()
    assert not report.failed, report.failed
    assert len(report.delivered) <= len(active)


def _actions(session: Session, notice: RectificationNotice) -> list[str]:
    return list(session.exec(select(NoticeEvent.action).where(
        NoticeEvent.notice_id == notice.id).order_by(col(NoticeEvent.id))))


def test_notices_are_closed_by_a_fix_reopened_without_one_or_still_open(
        built: tuple[DemoSummary, datetime], session: Session) -> None:
    """Some departments correct the data (a new version; the verifying run passes and
    closes the notice, and the scores go up), some answer without a fix (the verifying run
    reopens the notice), some never answer."""
    notices = session.exec(select(RectificationNotice)).all()
    by_story: dict[tuple[str, ...], list[RectificationNotice]] = {}
    for notice in notices:
        by_story.setdefault(tuple(_actions(session, notice)), []).append(notice)
    fixed = by_story.get(("issued", "responded", "closed"), [])
    reopened = by_story.get(("issued", "responded", "verification_failed"), [])
    silent = by_story.get(("issued",), [])
    assert fixed and reopened and silent, list(by_story)
    assert len(fixed) + len(reopened) + len(silent) == len(notices), list(by_story)
    for notice in fixed:
        resource = session.get(Resource, notice.resource_id)
        assert resource is not None and notice.status is NoticeStatus.closed
        assert notice.rules, "a fixable defect's notice names the expectations it fails"
        run = session.get(QualityRun, notice.closing_run_id)
        assert run is not None and run.trigger is RunTrigger.notice
        assert run.status is RunStatus.succeeded and run.data_version == resource.current_version
        version = session.exec(select(DataVersion).where(
            DataVersion.resource_id == resource.id,
            DataVersion.version == resource.current_version)).one()
        publisher = session.get(User, version.created_by)
        assert resource.current_version == 2 and version.mode is VersionMode.replace
        assert publisher is not None and publisher.department_id == notice.department_id
        assert notice.responded_at is not None and version.created_at <= notice.responded_at
        scores = session.exec(select(QualityScore).where(
            QualityScore.resource_id == resource.id).order_by(col(QualityScore.id))).all()
        before, after = scores[0], next(s for s in scores if s.run_id == run.id)
        dimension = str(notice.dimension)
        assert getattr(after, dimension) > getattr(before, dimension), dimension
        assert after.overall > before.overall and resource.quality_score == after.overall
        outcomes = {o["rule"]: o["success"] for o in run.expectations or []}
        assert all(outcomes[rule] for rule in notice.rules)
    for notice in reopened:
        resource = session.get(Resource, notice.resource_id)
        assert resource is not None and resource.current_version == 1
        assert notice.status is NoticeStatus.open and notice.closed_at is None
    assert all(n.status is NoticeStatus.open and n.responded_at is None for n in silent)
    summary, _ = built
    assert summary.history.stats["notices_fixed"] == len(fixed)
