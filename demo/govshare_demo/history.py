"""Six months of sharing history for the demo world, made by the real services.

Nothing here inserts rows: every application is filed, decided, revised, escalated, delivered,
downloaded, queried, rated and revoked through ``access.service`` / ``access.delivery`` (and
notices through ``quality.notices``, corrected data through ``catalog.service``) as a user
would through the API, each step in its own transaction. ``kernel.db.simulated_clock``
makes those services stamp the simulated time, so stage timestamps, history steps and the
signed log's entries read as months of work.

The replay is event-driven: each application is a *story*, a generator that makes one step
when resumed and yields when its next step is due. A heap orders the pending steps of all
stories; the clock is moved to each step before it runs, so time never goes backwards. A
nightly tick does the delivery scheduler's work (expiries, periodic packages) synchronously;
no background thread runs during the replay.

Who does what, and how fast, comes from ``govshare_demo.behaviour``; every draw comes from
generators seeded with the demo's seed, so a build is reproducible for a given day.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlmodel import Session, col, select

from access import delivery, links, planning, queries, ratings
from access import service as svc
from access.calendar import WorkCalendar
from access.masking import ColumnRule, Generalization, MaskingRule
from access.models import (
    ApplicationState,
    Deficiency,
    DeliveryMethod,
    FileFormat,
    RejectionReason,
    Schedule,
)
from access.schemas import (
    ApplicationIn,
    ApprovalIn,
    BundleIn,
    CoordinationIn,
    DeficiencyIn,
    QueryIn,
    RejectIn,
    ReturnIn,
    RevisionIn,
    TightenIn,
)
from catalog import service as catalog
from catalog.models import ItemKind, ItemType, Resource, Sensitivity, SharingType, VersionMode
from govshare_demo import behaviour as B
from kernel import db
from kernel.auth import Principal
from kernel.identity import Department, Role, User
from kernel.problems import Problem
from quality import notices, rules, runs
from quality.models import NoticeStatus, QualityRun, RectificationNotice, RunStatus, RunTrigger
from quality.settings import get_quality_settings

log = logging.getLogger("govshare_demo")

# The replay starts this long before the build (the catalog is registered then).
HISTORY_DAYS = 182
# Applications filed over the history, by scale.
APPLICATIONS = {"tiny": 50, "default": 150, "city": 200}
# Local working hours in which people act (the scheduler ticks at night).
WORK_START, WORK_END = time(9, 0), time(17, 30)
TICK_TIME = time(2, 0)

Story = Iterator[datetime]
T = TypeVar("T")
# Writes the data of a resource (spec key) with one defect kind corrected; returns the file.
Corrector = Callable[[str, str], Path]


@dataclass(frozen=True)
class Item:
    name: str
    type: ItemType
    kind: ItemKind | None
    sensitivity: Sensitivity
    is_key: bool


@dataclass(frozen=True)
class Res:
    key: str
    code: str
    provider: str
    rows: int
    sharing: SharingType
    api_only: bool
    items: tuple[Item, ...]


@dataclass
class HistorySummary:
    applications: int = 0
    stats: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # steps the services refused (unexpected)
    answered: list[str] = field(default_factory=list)  # codes whose notices were answered


def start_time(now: datetime, cal: WorkCalendar) -> datetime:
    """T0: 09:00 local on the first working day ``HISTORY_DAYS`` before ``now``."""
    day = cal.local_date(now) - timedelta(days=HISTORY_DAYS)
    while not cal.is_working_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, WORK_START, cal.tz).astimezone(UTC)


class Replay:
    """The world the stories act in: the clock, the people, the resources, the heap."""

    def __init__(self, move: Callable[[datetime], None], start: datetime, end: datetime,
                 seed: int, resources: dict[str, str], rows: dict[str, int],
                 correct: Corrector | None = None) -> None:
        self.cal = WorkCalendar.from_settings()
        self._move, self.now, self.end, self.seed = move, start, end, seed
        self.correct = correct
        self.summary = HistorySummary()
        self._heap: list[tuple[datetime, int, Story]] = []
        self._seq = 0
        with db.session_scope(write=False) as session:
            self.people = _principals(session)
            self.resources = _resources(session, resources, rows)
        self.rejections: list[RejectionReason] = []

    # --- time ---

    def at_work(self, day: date, rng: np.random.Generator) -> datetime:
        """A moment in working hours of ``day`` (moved to the next working day if needed)."""
        while not self.cal.is_working_day(day):
            day += timedelta(days=1)
        span = (datetime.combine(day, WORK_END) - datetime.combine(day, WORK_START)).seconds
        local = datetime.combine(day, WORK_START, self.cal.tz) + \
            timedelta(seconds=int(rng.integers(0, span)))
        return local.astimezone(UTC)

    def after(self, moment: datetime, working_days: int, rng: np.random.Generator) -> datetime:
        """``working_days`` after ``moment``, in working hours; 0 means later the same day
        (or the next working day when the day is over)."""
        day = self.cal.local_date(moment)
        target = self.at_work(self.cal.add_working_days(day, working_days), rng)
        if target <= moment:
            target = moment + timedelta(minutes=int(rng.integers(20, 180)))
            local = target.astimezone(self.cal.tz)
            if local.time() > WORK_END or not self.cal.is_working_day(local.date()):
                target = self.at_work(self.cal.add_working_days(local.date(), 1), rng)
        return target

    def today(self) -> date:
        return self.cal.local_date(self.now)

    # --- running stories ---

    def spawn(self, at: datetime, story: Story) -> None:
        heapq.heappush(self._heap, (at, self._seq, story))
        self._seq += 1

    def run(self) -> None:
        while self._heap:
            at, _, story = heapq.heappop(self._heap)
            if at > self.end:
                continue  # due after the build: it is still pending when the demo starts
            self.now = max(self.now, at)
            self._move(self.now)
            try:
                following = next(story)
            except StopIteration:
                continue
            except Problem as problem:  # a step the services refused: that story ends here
                self.summary.stats["refused"] += 1
                self.summary.refused.append(f"{self.now:%Y-%m-%d}: {problem.detail}")
                continue
            self.spawn(max(following, self.now), story)

    def act(self, fn: Callable[[Session], T]) -> T:
        """One request's worth of work: its own write transaction."""
        with db.session_scope(write=True) as session:
            return fn(session)

    def who(self, department: str, role: Role) -> Principal:
        return self.people[(department, role)]

    def count(self, what: str) -> None:
        self.summary.stats[what] += 1


def _principals(session: Session) -> dict[tuple[str, Role], Principal]:
    people: dict[tuple[str, Role], Principal] = {}
    for user, dept in session.exec(select(User, Department)
                                   .join(Department, col(Department.id) == User.department_id)
                                   .order_by(col(User.id))):
        for role in user.roles:
            people.setdefault((dept.code, role), Principal(
                user_id=user.id or 0, username=user.username, department_id=dept.id or 0,
                department_code=dept.code, roles=frozenset({role}), token_id=0))
    return people


def _resources(session: Session, codes: dict[str, str], rows: dict[str, int]) -> dict[str, Res]:
    out = {}
    for key, code in codes.items():
        resource = session.exec(select(Resource).where(Resource.code == code)).one()
        provider = session.get(Department, resource.provider_id)
        assert provider is not None
        items = tuple(Item(i.name, i.type, i.kind, i.sensitivity, i.is_key)
                      for i in sorted(resource.items, key=lambda i: i.position))
        out[key] = Res(key, code, provider.code, rows[key], resource.sharing_type,
                       resource.sharing_method.value == "api", items)
    return out


# --- the plan of one application ----------------------------------------------------------------

@dataclass
class Plan:
    requester: str
    res: Res
    rng: np.random.Generator
    items: list[str]
    method: DeliveryMethod
    file_format: FileFormat
    schedule: Schedule
    period_days: int
    decisions: list[str]  # the provider's answers in order: return, return, approve, reject
    reason: RejectionReason | None = None
    conditions: bool = False
    withdraw: bool = False
    k_block: bool = False  # approved with a k-anonymity floor the first package misses
    late: bool = False  # the provider answers well after the due date (escalated)
    revoke_after: int | None = None  # days after the first delivery


def draw_plan(replay: Replay, index: int) -> Plan | None:
    """A requester department, a resource of another department, and how it will go."""
    rng = np.random.default_rng([replay.seed, 17, index])
    shareable = [r for r in replay.resources.values()
                 if r.sharing is not SharingType.not_shareable
                 and B.POPULARITY.get(r.key, 1.0) > 0]
    # Big resources are asked for less often than their popularity says: every grant of one
    # scans it whole, and the demo must build in seconds (B.BIG_ROWS).
    weights = np.array([B.POPULARITY.get(r.key, 1.0) * min(1.0, B.BIG_ROWS / max(r.rows, 1))
                        for r in shareable])
    res = shareable[int(rng.choice(len(shareable), p=weights / weights.sum()))]
    requesters = sorted({d for d, _ in replay.people if d != res.provider
                         and (d, Role.requester) in replay.people})
    if not requesters:
        return None
    requester = requesters[int(rng.integers(len(requesters)))]
    return plan_for(replay, rng, requester, res)


def plan_for(replay: Replay, rng: np.random.Generator, requester: str, res: Res) -> Plan:
    names = [i.name for i in res.items]
    k = int(rng.integers(min(2, len(names)), len(names) + 1))
    chosen = set(rng.choice(names, size=k, replace=False).tolist())
    items = [n for n in names if n in chosen]
    big = res.rows > B.BIG_ROWS
    method = DeliveryMethod.api if res.api_only or big else DeliveryMethod.file
    schedule = Schedule.once
    if method is DeliveryMethod.file and res.rows <= B.SMALL_ROWS and rng.random() < B.P_PERIODIC:
        schedule = Schedule.weekly if rng.random() < B.P_WEEKLY else Schedule.monthly
    fmt = FileFormat.csv if rng.random() < B.P_CSV else FileFormat.parquet
    period = int(rng.integers(90, 366)) if method is DeliveryMethod.api else \
        int(rng.integers(30, 181))
    plan = Plan(requester=requester, res=res, rng=rng, items=items, method=method,
                file_format=fmt, schedule=schedule, period_days=period, decisions=["approve"])
    if res.sharing is SharingType.unconditional:
        return plan
    beh = B.behaviour(res.provider)
    u = rng.random()
    if u < beh.p_reject:
        plan.decisions = ["reject"]
        plan.reason = beh.reasons[int(rng.integers(len(beh.reasons)))]
    elif u < beh.p_reject + beh.p_return:
        plan.decisions = ["return", "return", "approve"] if rng.random() < beh.p_second_return \
            else ["return", "approve"]
    plan.conditions = rng.random() < beh.p_conditions
    plan.withdraw = rng.random() < B.P_WITHDRAW
    return plan


# --- stories --------------------------------------------------------------------------------------

def application_story(replay: Replay, plan: Plan, filed_at: datetime) -> Story:
    """File, then follow the application wherever it goes."""
    try:
        app_id = replay.act(lambda s: _file(s, replay, plan))
    except Problem:  # e.g. the department already has this data on an active application
        replay.count("refused_at_filing")
        return
    replay.count("filed")
    yield from follow(replay, plan, app_id, filed_at)


def _application_in(replay: Replay, plan: Plan) -> ApplicationIn:
    rng, res = plan.rng, plan.res
    service = B.SERVICES[int(rng.integers(len(B.SERVICES)))]
    purpose = B.PURPOSES[int(rng.integers(len(B.PURPOSES)))].format(service=service,
                                                                     name=res.key)
    today = replay.today()
    return ApplicationIn(resource=res.code, purpose=purpose,
                         legal_basis=B.LEGAL_BASES[int(rng.integers(len(B.LEGAL_BASES)))],
                         items=plan.items, period_start=today,
                         period_end=today + timedelta(days=plan.period_days - 1),
                         delivery_method=plan.method, file_format=plan.file_format,
                         schedule=plan.schedule)


def _file(session: Session, replay: Replay, plan: Plan) -> int:
    app = svc.file_application(session, replay.who(plan.requester, Role.requester),
                               _application_in(replay, plan))
    return app.id or 0


def follow(replay: Replay, plan: Plan, app_id: int, filed_at: datetime) -> Story:
    if plan.res.sharing is SharingType.unconditional:
        replay.count("auto_approved")
        yield replay.now + timedelta(seconds=int(plan.rng.integers(2, 30)))
        yield from deliver_and_use(replay, plan, app_id)
        return
    yield from review(replay, plan, app_id, filed_at)


def review(replay: Replay, plan: Plan, app_id: int, submitted: datetime) -> Story:
    """The conditional route: answers after the department's usual delay, escalation when
    overdue, returns and resubmissions, then a rejection or an approval."""
    rng, beh = plan.rng, B.behaviour(plan.res.provider)
    requester = replay.who(plan.requester, Role.requester)
    approver = replay.who(plan.res.provider, Role.approver)
    first_codes: list[Deficiency] = []
    for n, decision in enumerate(plan.decisions):
        lo, hi = (14, 18) if plan.late and n == 0 else beh.reply_days
        reply = replay.after(submitted, int(rng.integers(lo, hi + 1)), rng)
        if plan.withdraw and n == 0:
            yield replay.after(submitted, int(rng.integers(1, 4)), rng)
            replay.act(lambda s: svc.withdraw(s, requester, app_id, "业务调整，不再需要"))
            replay.count("withdrawn")
            return
        reply = yield from escalation(replay, plan, app_id, reply)
        yield reply
        if decision == "reject":
            reason = plan.reason or RejectionReason.other
            rejection = RejectIn(reason=reason, text=B.REJECTION_TEXTS[reason])
            replay.act(lambda s: svc.reject(s, approver, app_id, rejection))  # noqa: B023
            replay.count(f"rejected:{reason.value}")
            return
        if decision == "return":
            codes = _deficiencies(plan, first_codes)
            first_codes = first_codes or codes
            notice = ReturnIn(deficiencies=[DeficiencyIn(code=c, note=B.DEFICIENCY_NOTES[c])
                                            for c in codes])
            replay.act(lambda s: svc.return_application(s, approver, app_id,
                                                        notice))  # noqa: B023
            replay.count("returned")
            if rng.random() >= B.P_RESUBMIT:
                if rng.random() < 0.5:
                    yield replay.after(replay.now, int(rng.integers(3, 10)), rng)
                    replay.act(lambda s: svc.withdraw(s, requester, app_id, "暂不申请"))
                    replay.count("withdrawn")
                return  # otherwise it stays with the requester
            yield replay.after(replay.now, int(rng.integers(1, 6)), rng)
            revision = _revision(replay, plan, codes)
            replay.act(lambda s: svc.resubmit(s, requester, app_id, revision))  # noqa: B023
            replay.count("resubmitted")
            submitted = replay.now
            continue
        yield from approval(replay, plan, app_id)
        return


def _deficiencies(plan: Plan, first: list[Deficiency]) -> list[Deficiency]:
    """The first return lists one or two deficiencies; a second one mostly breaks the
    one-time notice: it repeats a first code, or raises something unchanged since then."""
    rng = plan.rng
    choices = [Deficiency.purpose_unclear, Deficiency.legal_basis_insufficient,
               Deficiency.period_too_long, Deficiency.other]
    if len(plan.items) > 1:
        choices.append(Deficiency.items_not_necessary)
    if plan.method is DeliveryMethod.file:
        choices.append(Deficiency.delivery_unsuitable)
    if not first:
        k = 1 if rng.random() < 0.6 else 2
        return [choices[i] for i in sorted(rng.choice(len(choices), size=k, replace=False))]
    if rng.random() < 0.5:
        return [first[0]]  # repeated: the revision did not satisfy it
    unchanged = [c for c in (Deficiency.purpose_unclear, Deficiency.legal_basis_insufficient)
                 if c not in first]
    return [unchanged[0]] if unchanged else [first[0]]


def _revision(replay: Replay, plan: Plan, codes: list[Deficiency]) -> RevisionIn:
    """Fix what the return named; the period always restarts today (it cannot lie in the
    past)."""
    today = replay.today()
    changes: dict[str, Any] = {"period_start": today,
                               "period_end": today + timedelta(days=plan.period_days - 1)}
    for code in codes:
        if code is Deficiency.purpose_unclear:
            changes["purpose"] = _application_in(replay, plan).purpose + "（已补充事项名称）"
        elif code is Deficiency.legal_basis_insufficient:
            changes["legal_basis"] = B.BETTER_LEGAL_BASIS
        elif code is Deficiency.period_too_long:
            plan.period_days = max(30, plan.period_days // 2)
            changes["period_end"] = today + timedelta(days=plan.period_days - 1)
        elif code is Deficiency.items_not_necessary and len(plan.items) > 1:
            plan.items = plan.items[:-1]
            changes["items"] = plan.items
        elif code is Deficiency.delivery_unsuitable:
            plan.file_format = FileFormat.csv if plan.file_format is FileFormat.parquet \
                else FileFormat.parquet
            changes["file_format"] = plan.file_format
    return RevisionIn(note="已按告知意见修改", **changes)


def escalation(replay: Replay, plan: Plan, app_id: int, reply: datetime
               ) -> Generator[datetime, None, datetime]:
    """If the answer would come after the due date, the requester escalates to the data
    bureau, which reminds (and for long delays convenes a meeting); returns the time of the
    answer, which comes after the coordination."""
    rng = plan.rng
    with db.session_scope(write=False) as session:
        due = svc.load(session, app_id).due_date
    if due is None or replay.cal.local_date(reply) <= due or \
            (rng.random() >= B.P_ESCALATE and not plan.late):
        return reply
    escalate_at = replay.at_work(replay.cal.add_working_days(due, int(rng.integers(1, 3))), rng)
    if escalate_at >= reply:
        return reply
    yield escalate_at
    requester = replay.who(plan.requester, Role.requester)
    replay.act(lambda s: svc.escalate(s, requester, app_id, "已超过答复期限，请市数据局协调"))
    replay.count("escalated")
    bureau = _bureau_auditor(replay)
    steps = B.COORDINATION if replay.cal.working_days_between(escalate_at, reply) > 3 \
        else B.COORDINATION[:1]
    for kind, note in steps:
        yield replay.after(replay.now, 1, rng)
        step = CoordinationIn(kind=kind, note=note)
        replay.act(lambda s: svc.coordinate(s, bureau, app_id, step))  # noqa: B023
        replay.count(f"coordinated:{kind}")
    return max(reply, replay.after(replay.now, 1, rng))


def _bureau_auditor(replay: Replay) -> Principal:
    return next(p for (d, role), p in replay.people.items()
                if role is Role.auditor and d == "SJJ")


def approval(replay: Replay, plan: Plan, app_id: int) -> Story:
    rng = plan.rng
    approver = replay.who(plan.res.provider, Role.approver)
    data = ApprovalIn(note="同意共享")
    if plan.conditions:
        k = int(rng.integers(1, len(B.CONDITIONS) + 1))
        data.conditions = list(B.CONDITIONS[:k])
    if plan.k_block:
        data.quasi_identifiers, data.k_min = _k_columns(plan), 10
    replay.act(lambda s: svc.approve(s, approver, app_id, data))
    if not plan.conditions:
        replay.count("approved")
    else:
        replay.count("conditions_set")
        if rng.random() >= B.P_ACCEPT_CONDITIONS:
            return  # the requester never accepts: it waits in conditions_pending
        yield replay.after(replay.now, int(rng.integers(0, 4)), rng)
        requester = replay.who(plan.requester, Role.requester)
        replay.act(lambda s: svc.accept_conditions(s, requester, app_id))
        replay.count("conditions_accepted")
    yield replay.now + timedelta(seconds=int(rng.integers(5, 60)))
    yield from deliver_and_use(replay, plan, app_id)


def _k_columns(plan: Plan) -> list[str]:
    """A date kept as it is: exact dates single people out, so k-anonymity fails."""
    return [i.name for i in plan.res.items if i.name in plan.items and i.type is ItemType.date
            and i.kind is not ItemKind.birth_date and i.sensitivity is Sensitivity.none][:1]


def deliver_and_use(replay: Replay, plan: Plan, app_id: int) -> Story:
    """The first package (or query view), then downloads or queries, a rating, perhaps a
    revocation. Later periodic packages come from the daily scheduler tick."""
    rng = plan.rng
    try:
        made = delivery.deliver(app_id)
    except planning.DeliveryBlocked:
        replay.count("blocked")
        yield replay.after(replay.now, 1, rng)
        approver = replay.who(plan.res.provider, Role.approver)
        column = _k_columns(plan)[0]
        replay.act(lambda s: svc.tighten(s, approver, app_id, TightenIn(masking={
            column: ColumnRule(rule=MaskingRule.generalize, method=Generalization.year)})))
        replay.count("tightened")
        yield replay.now + timedelta(seconds=int(rng.integers(5, 60)))
        try:
            made = delivery.deliver(app_id)
        except planning.DeliveryBlocked:  # still too few per year: the provider gives up
            replay.count("blocked")
            yield from _revoke(replay, plan, app_id, "脱敏后仍无法满足k匿名要求，收回授权")
            return
    replay.count("delivered")
    requester = replay.who(plan.requester, Role.requester)
    delivery_id = made.id or 0
    if plan.method is DeliveryMethod.file:
        if rng.random() < B.P_DOWNLOAD:
            yield replay.now + timedelta(minutes=int(rng.integers(10, 60 * 48)))
            token, _ = replay.act(lambda s: links.issue_link(s, requester, delivery_id))
            yield replay.now + timedelta(seconds=int(rng.integers(5, 120)))
            replay.act(lambda s: links.open_download(s, requester, delivery_id, token))
            replay.count("downloaded")
    else:
        for _ in range(int(rng.integers(1, 3))):
            yield replay.after(replay.now, int(rng.integers(0, 12)), rng)
            if not _active(app_id):
                break
            replay.act(lambda s: queries.query(s, requester, made.grant_id, QueryIn(size=50)))
            replay.count("queried")
    if rng.random() < B.P_RATE:
        yield replay.after(replay.now, int(rng.integers(1, 8)), rng)
        useful = bool(rng.random() < B.behaviour(plan.res.provider).p_useful)
        comments = B.RATING_COMMENTS[useful]
        comment = comments[int(rng.integers(len(comments)))]
        replay.act(lambda s: ratings.rate(s, requester, delivery_id, useful, comment))
        replay.count("rated")
    if plan.revoke_after is not None:
        yield replay.after(replay.now, plan.revoke_after, rng)
        if _active(app_id):
            yield from _revoke(replay, plan, app_id, B.REVOKE_REASON)


def _active(app_id: int) -> bool:
    with db.session_scope(write=False) as session:
        return svc.load(session, app_id).state is ApplicationState.delivered


def _revoke(replay: Replay, plan: Plan, app_id: int, reason: str) -> Story:
    approver = replay.who(plan.res.provider, Role.approver)

    def revoke(session: Session) -> None:
        grant = svc.grant_of(session, svc.load(session, app_id))
        assert grant is not None
        svc.revoke(session, approver, grant.id or 0, reason)

    replay.act(revoke)
    replay.count("revoked")
    yield from ()


def bundle_story(replay: Replay, title: str, requester: str, keys: tuple[str, ...],
                 index: int) -> Story:
    """File a bundle (一件事); each part goes its own way; the coordinator reminds."""
    rng = np.random.default_rng([replay.seed, 23, index])
    parts = [plan_for(replay, np.random.default_rng([replay.seed, 29, index, i]), requester,
                      replay.resources[k]) for i, k in enumerate(keys)]
    for part in parts:
        part.withdraw, part.k_block, part.revoke_after = False, False, None
    who = replay.who(requester, Role.requester)

    def file(session: Session) -> tuple[int, list[int]]:
        bundle = svc.file_bundle(session, who, BundleIn(
            title=title, parts=[_application_in(replay, p) for p in parts]))
        return bundle.id or 0, [a.id or 0 for a in svc.bundle_parts(session, bundle.id or 0)]

    bundle_id, app_ids = replay.act(file)
    replay.count("bundles")
    filed = replay.now
    for part, app_id in zip(parts, app_ids, strict=True):
        replay.count("filed")
        replay.spawn(replay.now, follow(replay, part, app_id, filed))
    yield replay.after(filed, 5, rng)
    coordinator = replay.who(parts[0].res.provider, Role.approver)
    with db.session_scope(write=False) as session:
        waiting = [a for a in svc.bundle_parts(session, bundle_id)
                   if a.state in (ApplicationState.submitted, ApplicationState.returned,
                                  ApplicationState.conditions_pending)]
    if waiting:
        replay.act(lambda s: svc.remind_bundle(s, coordinator, bundle_id,
                                               "请尽快办理本一件事的其他事项"))
        replay.count("bundle_reminders")


def notice_story(replay: Replay, res: Res, defect: str, index: int) -> Story:
    """The data bureau issues a rectification notice naming the expectations the defect
    fails; the department may answer it, with a corrected data version (a replacement
    through the catalog) or without one. The verifying runs are made by
    ``verify_answered`` once the replay is over."""
    rng = np.random.default_rng([replay.seed, 31, index])
    dimension, problem = B.NOTICE_TEXTS[defect]
    auditor = _bureau_auditor(replay)
    deadline = replay.cal.add_working_days(replay.today(), 15)

    def issue(session: Session) -> int:
        named = _notice_rules(catalog.get_resource(session, res.code), defect)
        return notices.issue(session, auditor, res.code, problem=problem, deadline=deadline,
                             dimension=dimension, rules=named, min_score=90.0,
                             run_id=None).id or 0

    notice_id = replay.act(issue)
    replay.count("notices_issued")
    beh = B.behaviour(res.provider)
    if rng.random() >= beh.p_answer_notice:
        return
    fixes = bool(rng.random() < beh.p_fix_notice) and defect in B.NOTICE_RULES
    yield replay.after(replay.now, int(rng.integers(3, 13)), rng)
    publisher = replay.who(res.provider, Role.publisher)
    if fixes and replay.correct is not None:
        path = replay.correct(res.key, defect)
        try:
            replay.act(lambda s: catalog.add_version(s, publisher, res.code, path,
                                                     filename=path.name,
                                                     mode=VersionMode.replace))
        finally:
            path.unlink(missing_ok=True)
        replay.count("notices_fixed")
        yield replay.now + timedelta(minutes=int(rng.integers(10, 90)))
    replay.act(lambda s: notices.respond(s, publisher, notice_id, "已完成整改，请复核"))
    replay.count("notices_answered")
    replay.summary.answered.append(res.code)


def _notice_rules(resource: Resource, defect: str) -> list[str]:
    """The generated expectations of ``resource`` the defect makes fail (by name prefix)."""
    prefix = B.NOTICE_RULES.get(defect)
    if prefix is None:
        return []
    generated = rules.generate(resource.items, date_item=resource.date_item,
                               previous_rows=None)
    return [r.rule for r in generated if r.rule.startswith(prefix)]


def verify_answered(summary: HistorySummary) -> None:
    """What the quality worker does first when the server starts, done in the build for the
    resources whose notices were answered: the verifying run, which closes the notice if the
    data now passes and reopens it otherwise, preceded, where the data was corrected, by the
    queued registration run (the score before the fix). Other queued runs are left to the
    worker (GX time: about a second a run). Resources run in parallel, as the worker does."""
    with db.session_scope(write=False) as session:
        plans = [_verifying_runs(session, code) for code in dict.fromkeys(summary.answered)]
    workers = get_quality_settings().workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-quality") as pool:
        for outcomes in pool.map(lambda ids: [runs.execute(i) for i in ids], plans):
            for outcome in outcomes:
                summary.stats[f"quality_runs_{outcome.value if outcome else 'claimed'}"] += 1
    with db.session_scope(write=False) as session:
        for status in session.exec(select(RectificationNotice.status)):
            summary.stats[f"notices_{NoticeStatus(status).value}"] += 1


def _verifying_runs(session: Session, code: str) -> list[int]:
    resource = catalog.get_resource(session, code)
    wanted = [RunTrigger.notice]
    if resource.current_version > 1:  # corrected: its score before the fix, for the trend
        wanted.append(RunTrigger.registration)
    return [int(i or 0) for i in session.exec(select(QualityRun.id).where(
        QualityRun.resource_id == resource.id, QualityRun.status == RunStatus.queued,
        col(QualityRun.trigger).in_(wanted))
        .order_by(col(QualityRun.queued_at), col(QualityRun.id)))]


def ticks(replay: Replay) -> Story:
    """The delivery scheduler's work once a night: what ``access.scheduler.run_due`` does,
    minus its crash sweep (nothing crashes here, and walking every delivery folder each
    simulated night was a good part of the replay's time)."""
    day = replay.today() + timedelta(days=1)
    while True:
        yield datetime.combine(day, TICK_TIME, replay.cal.tz).astimezone(UTC)
        expired = replay.act(lambda s: svc.expire_due(s, replay.now))
        with db.session_scope(write=False) as session:
            due = planning.due_periodic(session, replay.today())
        for app_id, run_key in due:
            delivery.deliver(app_id, run_key=run_key)
        replay.summary.stats["expired"] += len(expired)
        replay.summary.stats["periodic_packages"] += len(due)
        day += timedelta(days=1)


# --- the replay ------------------------------------------------------------------------------

def replay_history(move: Callable[[datetime], None], *, start: datetime, end: datetime,
                   scale: str, seed: int, resources: dict[str, str], rows: dict[str, int],
                   defects: dict[str, list[str]],
                   correct: Corrector | None = None) -> HistorySummary:
    """Replay the history from ``start`` (after the catalog's registration) to ``end``.

    ``resources`` maps spec keys to catalog codes, ``rows`` gives their row counts and
    ``defects`` their catalogued defect kinds (for rectification notices); ``correct``
    writes a resource's data with a defect corrected (without it, no notice is fixed).
    """
    replay = Replay(move, start, end, seed, resources, rows, correct)
    rng = np.random.default_rng([seed, 11])
    first = replay.cal.add_working_days(replay.today(), 1)
    span = (replay.cal.local_date(end) - first).days
    n = APPLICATIONS.get(scale, APPLICATIONS["default"])
    plans = [p for p in (draw_plan(replay, i) for i in range(n)) if p is not None]
    _cast_stories(replay, plans)
    for plan in plans:
        # Filings grow over the months (density rising linearly): the platform catches on.
        day = first + timedelta(days=int(span * np.sqrt(rng.random())))
        if plan.k_block or plan.late or plan.revoke_after is not None or \
                plan.reason is not None or len(plan.decisions) > 2:
            day = first + timedelta(days=int(span * 0.7 * rng.random()))  # room to unfold
        at = replay.at_work(day, rng)
        replay.spawn(at, application_story(replay, plan, at))
    for i, (title, requester, keys) in enumerate(B.BUNDLES):
        if requester in {d for d, _ in replay.people} and all(k in replay.resources
                                                              for k in keys):
            replay.spawn(replay.at_work(first + timedelta(days=int(span * (0.3 + 0.3 * i))),
                                        rng), bundle_story(replay, title, requester, keys, i))
    for i, (key, kinds) in enumerate(sorted(defects.items())):
        if kinds and key in replay.resources and rng.random() < B.P_NOTICE:
            day = first + timedelta(days=int(span * 0.85 * rng.random()))
            replay.spawn(replay.at_work(day, rng),
                         notice_story(replay, replay.resources[key], kinds[0], i))
    replay.spawn(replay.now, ticks(replay))
    replay.run()
    replay.summary.applications = replay.summary.stats["filed"]
    for line in replay.summary.refused:
        log.warning("demo history: refused: %s", line)
    return replay.summary


def _cast_stories(replay: Replay, plans: list[Plan]) -> None:
    """Make sure the rarer stories happen at every scale: each rejection reason once, a
    blocked delivery, a revocation, an escalation at the slow department."""
    conditional = [p for p in plans if p.res.sharing is SharingType.conditional
                   and not p.withdraw]
    approving = [p for p in conditional if p.decisions == ["approve"]]
    rejected = [p for p in conditional if p.decisions == ["reject"]]
    given = {p.reason for p in rejected}
    for reason in RejectionReason:
        if reason in given:
            continue
        pool = [p for p in approving if p not in rejected]
        if pool:
            plan = pool[len(rejected) % len(pool)]
            plan.decisions, plan.reason = ["reject"], reason
            rejected.append(plan)
    approving = [p for p in approving if p.decisions == ["approve"]]
    blockable = [p for p in approving if p.method is DeliveryMethod.file and _k_columns(p)]
    if blockable:
        blockable[0].k_block = True
    revocable = [p for p in approving if not p.k_block]
    for plan in revocable[1:2] + revocable[150:151]:
        plan.revoke_after = int(plan.rng.integers(10, 30))
    slow = [p for p in approving if p.res.provider == "WJW" and not p.k_block
            and p.revoke_after is None] or [p for p in approving if p.revoke_after is None
                                            and not p.k_block]
    for plan in slow[:2]:
        plan.late = True
    # Two approvers who return twice, the second time breaking the one-time notice.
    sloppy = [p for p in approving if not (p.k_block or p.late or p.revoke_after)]
    for plan in sloppy[-2:]:
        plan.decisions = ["return", "return", "approve"]
