"""Sharing metrics against hand-computed values (docs/metrics.md).

A small March 2026 built through the real access services under a simulated clock (local
time Asia/Shanghai; 2026-03-02 is a Monday; no holidays; replies due 10 working days after
(re)submission):

=====  ========================  ==============================================================
app    flow (provider→requester)  story (local times)
=====  ========================  ==============================================================
A1     R1 GA→SCJG (conditional)   filed Mon 03-02 09:00, approved Wed 03-04 09:00, delivered
                                  10:00, first download Thu 03-05 09:00
A2     R1 GA→RS                   filed 03-02 09:00, returned 03-03 09:00, resubmitted 03-05
                                  09:00, approved with conditions 03-06 09:00, accepted Mon
                                  03-09 09:00, delivered 11:00
A3     R2 GA→SCJG (uncond.)       filed + auto-approved 03-03 09:00, delivered 09:30
A4     R3 SCJG→RS                 filed 03-03 09:00, rejected (security_risk) 03-05 09:00
A5     R3 SCJG→GA                 filed 03-04 09:00 (due 03-18), never answered, escalated 03-20
A6     R2 GA→RS (uncond.)         filed + auto-approved Fri 03-06 09:00, delivered 09:15
A7     R1 GA→RS                   filed 03-02 09:00 (due 03-16), approved 03-19 09:00 (late),
                                  not delivered
=====  ========================  ==============================================================

R4 (GA) is catalogued and never requested. Every delivery has 40 rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from access import delivery as dlv
from access import links, ratings
from access import service as svc
from access.models import Delivery, DeliveryRating
from access.schemas import ApplicationIn, ApprovalIn, RejectIn, ReturnIn, RevisionIn
from catalog.models import Resource
from kernel import db
from kernel.auth import principal_of
from kernel.identity import Role, User
from metrics import mart
from metrics import service as ms
from quality.models import (
    NoticeStatus,
    QualityRun,
    QualityScore,
    RectificationNotice,
    RunStatus,
    RunTrigger,
)
from tests.conftest import World
from tests.factories import population_meta, population_rows, to_csv, upload
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    log_types,
    register,
)

MARCH = ms.Window(date(2026, 3, 1), date(2026, 3, 31), None, today=date(2026, 3, 20))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Local (UTC+8) March 2026 time as UTC."""
    return datetime(2026, 3, day, hour - 8, minute, tzinfo=UTC)


def who(username: str) -> Any:
    with db.session_scope(write=False) as session:
        return principal_of(session, username)


def apply(user: str, code: str, items: list[str] | None = None) -> int:
    data = ApplicationIn(resource=code, purpose="核验办事群众身份", legal_basis="条例第十条",
                         items=items or ["id_number", "name", "district"],
                         period_end=date(2026, 6, 30))
    with db.session_scope() as session:
        return svc.file_application(session, who(user), data).id or 0


def act(fn: Any, user: str, app_id: int, *args: Any) -> None:
    with db.session_scope() as session:
        fn(session, who(user), app_id, *args)


def delivery_of(app_id: int) -> int:
    with db.session_scope(write=False) as session:
        return session.exec(select(Delivery.id).where(Delivery.application_id == app_id)
                            ).one() or 0


@dataclass
class March:
    apps: dict[str, int]
    codes: dict[str, str]
    deliveries: dict[str, int]


def _quality(codes: dict[str, str]) -> None:
    """Scores and notices as the quality context stores them (its runs are tested there)."""
    with db.session_scope() as session:
        auditor = session.exec(select(User).where(User.username == "sjj-auditor")).one()
        for name, overall, validity in (("R1", 92.5, 95.0), ("R2", 75.0, 80.0),
                                        ("R3", 58.0, 40.0)):
            res = session.exec(select(Resource).where(Resource.code == codes[name])).one()
            run = QualityRun(resource_id=res.id or 0, data_version=1,
                             trigger=RunTrigger.on_demand, status=RunStatus.succeeded)
            session.add(run)
            session.flush()
            session.add(QualityScore(run_id=run.id or 0, resource_id=res.id or 0,
                                     department_id=res.provider_id, completeness=99.0,
                                     validity=validity, uniqueness=100.0, overall=overall,
                                     weights={}, details={}))
            res.quality_score = overall
            session.add(res)
            for status in (("open",) if name == "R3" else ("closed",) if name == "R1" else ()):
                session.add(RectificationNotice(
                    resource_id=res.id or 0, department_id=res.provider_id, problem="x",
                    min_score=80, deadline=date(2026, 4, 1), status=NoticeStatus(status),
                    issued_by=auditor.id or 0))


@pytest.fixture
def march(aw: AccessWorld, tmp_path: Path) -> Iterator[March]:
    apps: dict[str, int] = {}
    with db.simulated_clock(at(1, 10) .replace(day=27, month=2)) as move:
        codes = {"R1": register(tmp_path, name="人口基础信息"),
                 "R2": register(tmp_path, name="户籍信息", sharing_type="unconditional"),
                 "R3": register(tmp_path, provider="SCJG", name="企业登记信息"),
                 "R4": register(tmp_path, name="出入境记录")}
        move(at(2, 9))
        apps["A1"] = apply("scjg-requester", codes["R1"])
        apps["A2"] = apply("rs-requester", codes["R1"])
        apps["A7"] = apply("rs-requester", codes["R1"], ["mobile"])
        move(at(3, 9))
        act(svc.return_application, "ga-approver", apps["A2"],
            ReturnIn.model_validate({"deficiencies": [{"code": "purpose_unclear"}]}))
        apps["A3"] = apply("scjg-requester", codes["R2"])
        apps["A4"] = apply("rs-requester", codes["R3"])
        move(at(3, 9, 30))
        dlv.deliver(apps["A3"])
        move(at(4, 9))
        act(svc.approve, "ga-approver", apps["A1"], ApprovalIn())
        apps["A5"] = apply("ga-requester", codes["R3"])
        mart.refresh()  # an early refresh: what follows arrives incrementally
        move(at(4, 10))
        dlv.deliver(apps["A1"])
        move(at(5, 9))
        act(svc.resubmit, "rs-requester", apps["A2"],
            RevisionIn(purpose="核验社保待遇资格", period_start=date(2026, 3, 5)))
        act(svc.reject, "scjg-approver", apps["A4"],
            RejectIn(reason="security_risk", text="涉及企业商业秘密"))
        with db.session_scope() as session:
            d1 = delivery_of(apps["A1"])
            token, _ = links.issue_link(session, who("scjg-requester"), d1)
            links.open_download(session, who("scjg-requester"), d1, token)
        move(at(6, 9))
        act(svc.approve, "ga-approver", apps["A2"], ApprovalIn(conditions=["签署数据使用承诺书"]))
        apps["A6"] = apply("rs-requester", codes["R2"])
        move(at(6, 9, 15))
        dlv.deliver(apps["A6"])
        move(at(9, 9))
        with db.session_scope() as session:
            svc.accept_conditions(session, who("rs-requester"), apps["A2"])
        move(at(9, 11))
        dlv.deliver(apps["A2"])
        deliveries = {k: delivery_of(apps[k]) for k in ("A1", "A2", "A3", "A6")}
        for day, user, key, useful, comment in (
                (10, "scjg-requester", "A1", True, "用于核验"),
                (11, "rs-requester", "A2", False, "缺少字段"),
                (11, "rs-requester", "A6", True, "有用"),
                (12, "rs-requester", "A6", False, "=HYPERLINK(\"x\")")):  # re-rated
            move(at(day, 10))
            with db.session_scope() as session:
                ratings.rate(session, who(user), deliveries[key], useful, comment)
        move(at(19, 9))
        act(svc.approve, "ga-approver", apps["A7"], ApprovalIn())
        move(at(20, 9))
        act(svc.escalate, "ga-requester", apps["A5"], "逾期未答复")
        _quality(codes)
        stats = mart.refresh()  # incremental
        assert stats is not None and not stats.full
    yield March(apps, codes, deliveries)
    mart.close_readers()


def _con() -> Any:
    return mart.snapshot(max_age=3600).con


def test_overview(march: March) -> None:
    with db.session_scope(write=False) as session:
        stored = session.exec(select(Delivery)).all()
    assert [d.row_count for d in stored] == [40, 40, 40, 40]
    body = ms.overview(_con(), MARCH)
    sharing = body.pop("sharing")
    assert sharing == {
        # The headline time per sharing type (checked against the applications themselves in
        # the next test): R2's unconditional deliveries came 0.25 h and 0.5 h after filing,
        # the conditional ones 49 h and 170 h.
        "unconditional": {"delivered": 2, "p50_seconds": 1350.0},
        "conditional": {"delivered": 2, "p50_hours": 109.5,
                        "p50_working_days": sharing["conditional"]["p50_working_days"],
                        "deadline_working_days": 10, "on_time_rate": 0.8, "replied": 5}}
    assert body == {
        "applications": 7, "approved": 5, "delivered": 4, "rejected": 1,
        "rows_delivered": 160, "bytes_delivered": sum(d.bytes for d in stored),
        "latency_p50_hours": 24.75,  # of 0.25, 0.5, 49, 170
        "on_time_rate": 0.8,  # 4 of 5 replies; A7's came 3 days late
        "overdue_now": 1, "open_notices": 1, "quality_avg": 75.17,  # (92.5+75+58)/3
        "rows_delivered_withheld": False, "min_count": 10}  # 160 persons' records: shown


def test_headline_sharing_times_match_the_applications_themselves(march: March) -> None:
    """The dashboard's headline figures, per sharing type, against a computation straight
    from the applications (not from the mart): the median of delivered_at − filed_at over
    the applications delivered in the window, in seconds and in working days."""
    from statistics import median

    from access.calendar import WorkCalendar
    from access.models import Application

    cal = WorkCalendar.from_settings()
    with db.session_scope(write=False) as session:
        delivered = [a for a in session.exec(select(Application))
                     if a.delivered_at is not None
                     and MARCH.start <= cal.local_date(a.delivered_at) <= MARCH.end]
    sharing = ms.overview(_con(), MARCH)["sharing"]
    for kind in ("unconditional", "conditional"):
        apps = [a for a in delivered if a.sharing_type.value == kind]
        assert sharing[kind]["delivered"] == len(apps) > 0
        seconds = median((a.delivered_at - a.filed_at).total_seconds() for a in apps)
        if kind == "unconditional":
            assert sharing[kind]["p50_seconds"] == pytest.approx(seconds, abs=0.1)
        else:
            assert sharing[kind]["p50_hours"] == pytest.approx(seconds / 3600, abs=1e-3)
            days = median(cal.working_days_between(a.filed_at, a.delivered_at) for a in apps)
            assert sharing[kind]["p50_working_days"] == pytest.approx(days, abs=0.01)


def test_volume(march: March) -> None:
    body = ms.volume(_con(), MARCH, "week")
    assert body["series"] == [  # persons' records, but never 1 … 9 of them: shown
        {"period": "2026-03-02", "applications": 7, "approvals": 4, "deliveries": 3,
         "rows": 120, "bytes": body["series"][0]["bytes"], "rows_withheld": False},
        {"period": "2026-03-09", "applications": 0, "approvals": 0, "deliveries": 1,
         "rows": 40, "bytes": body["series"][1]["bytes"], "rows_withheld": False},
        {"period": "2026-03-16", "applications": 0, "approvals": 1, "deliveries": 0,
         "rows": 0, "bytes": 0, "rows_withheld": False}]
    by_dept = {r["department"]["code"]: (r["provided"], r["requested"], r["deliveries"],
                                         r["rows"]) for r in body["by_department"]}
    assert by_dept == {"GA": (5, 1, 4, 160), "RS": (0, 4, 0, 0), "SCJG": (2, 2, 0, 0)}
    top = [(r["resource"]["name_zh"], r["applications"], r["deliveries"])
           for r in body["by_resource"]]
    assert top == [("人口基础信息", 3, 2), ("户籍信息", 2, 2), ("企业登记信息", 2, 0)]
    assert body["by_resource"][0]["provider"] == {
        "code": "GA", "name_zh": "市公安局", "name_en": "Public Security Bureau"}


def test_flows(march: March) -> None:
    body = ms.flows(_con(), MARCH)
    assert [d["code"] for d in body["departments"]] == ["GA", "RS", "SCJG"]
    assert [(c["provider"], c["requester"], c["applications"], c["deliveries"], c["rows"])
            for c in body["cells"]] == [("GA", "RS", 3, 2, 80), ("GA", "SCJG", 2, 2, 80),
                                        ("SCJG", "GA", 1, 0, 0), ("SCJG", "RS", 1, 0, 0)]
    scoped = ms.flows(_con(), ms.Window(MARCH.start, MARCH.end, _dept("SCJG"), MARCH.today))
    assert [(c["provider"], c["requester"]) for c in scoped["cells"]] == [
        ("GA", "SCJG"), ("SCJG", "GA"), ("SCJG", "RS")]


def _dept(code: str) -> int:
    return int(_con().execute("SELECT id FROM department WHERE code = ?", [code]).fetchone()[0])


def test_latency(march: March) -> None:
    overall = ms.latency(_con(), MARCH, "overall", "week")
    assert overall["groups"] == [{
        "key": "all", "label_zh": "全部", "label_en": "All", "n": 4,
        "p50_hours": 24.75, "p90_hours": 133.7, "p99_hours": 166.37,
        # working-day time: A1 Mon 09:00→Wed 10:00 = 49 h = 2.0417 d; A2 skips a weekend
        # (15+96+11 h = 5.0833 d); A3 0.5 h, A6 0.25 h
        "p50_working_days": 1.031, "p90_working_days": 4.171, "p99_working_days": 4.992}]
    assert overall["trend"] == [
        {"period": "2026-03-02", "n": 3, "p50_hours": 0.5, "p90_hours": 39.3},
        {"period": "2026-03-09", "n": 1, "p50_hours": 170.0, "p90_hours": 170.0}]
    stages = {g["key"]: g for g in ms.latency(_con(), MARCH, "stage", "week")["groups"]}
    assert list(stages) == ["waiting_for_approval", "waiting_on_conditions", "processing",
                            "to_first_download"]
    approval = stages["waiting_for_approval"]  # 48, 96 (24 + 48 returned + 24), 0, 0
    assert (approval["n"], approval["p50_hours"], approval["p90_hours"]) == (4, 24.0, 81.6)
    assert approval["p50_working_days"] == 1.0  # 2.0, 4.0, 0, 0
    conditions = stages["waiting_on_conditions"]  # 72 h over a weekend = 1 working day
    assert (conditions["p90_hours"], conditions["p99_working_days"]) == (50.4, 0.97)
    processing = stages["processing"]  # 1, 2, 0.5, 0.25
    assert (processing["p50_hours"], processing["p90_hours"]) == (0.75, 1.7)
    download = stages["to_first_download"]
    assert (download["n"], download["p50_hours"]) == (1, 23.0)
    by_provider = ms.latency(_con(), MARCH, "provider", "week")["groups"]
    assert [(g["key"], g["n"], g["label_zh"]) for g in by_provider] == [("GA", 4, "市公安局")]
    by_type = ms.latency(_con(), MARCH, "sharing_type", "week")["groups"]
    assert [(g["key"], g["n"], g["p50_hours"]) for g in by_type] == [
        ("conditional", 2, 109.5), ("unconditional", 2, 0.375)]


def test_timeliness(march: March) -> None:
    body = ms.timeliness(_con(), MARCH)
    assert (body["replied"], body["on_time"], body["on_time_rate"]) == (5, 4, 0.8)
    assert (body["approval_rate"], body["rejection_rate"]) == (0.8333, 0.1667)
    assert body["overdue_now"] == 1
    assert body["overdue"] == [{
        "application_id": march.apps["A5"],
        "resource": {"code": march.codes["R3"], "name_zh": "企业登记信息", "name_en": ""},
        "provider": {"code": "SCJG", "name_zh": "市市场监督管理局",
                     "name_en": "Market Regulation Administration"},
        "requester": {"code": "GA", "name_zh": "市公安局", "name_en": "Public Security Bureau"},
        "due_date": "2026-03-18", "working_days_overdue": 2}]
    assert [(p["department"]["code"], p["replied"], p["on_time_rate"], p["overdue_now"])
            for p in body["by_provider"]] == [("GA", 4, 0.75, 0), ("SCJG", 1, 1.0, 1)]


def test_failures(march: March) -> None:
    assert ms.failures(_con(), MARCH) == {
        "rejections_by_reason": [{"reason": "security_risk", "count": 1}],
        "bounces": [{"bounces": 0, "applications": 5}, {"bounces": 1, "applications": 2}],
        "notice_violations": 0, "blocked_deliveries": 0,
        "conditions_wait": {"n": 1, "p50_hours": 72.0, "p90_hours": 72.0}}


def test_quality(march: March) -> None:
    body = ms.quality(_con(), MARCH)
    assert [(r["department"]["code"], r["score"], r["resources"]) for r in body["ranking"]] \
        == [("GA", 83.75, 2), ("SCJG", 58.0, 1)]
    dist = {d["bucket"]: d["resources"] for d in body["distribution"]}
    assert dist == {"90-100": 1, "80-90": 0, "70-80": 1, "60-70": 0, "50-60": 1, "40-50": 0,
                    "30-40": 0, "20-30": 0, "10-20": 0, "0-10": 0}
    assert [(n["department"]["code"], n["open"]) for n in body["open_notices"]] == [("SCJG", 1)]
    assert [(f["resource"]["name_zh"], f["score"], f["dimension"]) for f in body["failing"]] \
        == [("企业登记信息", 58.0, "validity"), ("户籍信息", 75.0, "validity"),
            ("人口基础信息", 92.5, "validity")]


def test_resources(march: March) -> None:
    body = ms.resources(_con(), MARCH)
    assert [(r["resource"]["name_zh"], r["applications"], r["deliveries"])
            for r in body["most_requested"]] == [("人口基础信息", 3, 2), ("户籍信息", 2, 2),
                                                 ("企业登记信息", 2, 0)]
    assert [r["resource"]["code"] for r in body["never_requested"]] == [march.codes["R4"]]
    assert body["never_requested"][0]["published_at"] == "2026-02-27"
    assert [r["resource"]["code"] for r in body["never_delivered"]] == [march.codes["R3"]]
    assert (body["catalogued"], body["requested"], body["delivered"]) == (4, 3, 2)


def test_feedback(march: March) -> None:
    body = ms.feedback(_con(), MARCH)
    assert [(p["department"]["code"], p["ratings"], p["useful"], p["useful_rate"])
            for p in body["by_provider"]] == [("GA", 3, 1, 0.3333)]
    assert [(r["delivery_id"], r["requester"]["code"], r["useful"], r["comment"])
            for r in body["recent"]] == [
        (march.deliveries["A6"], "RS", False, "=HYPERLINK(\"x\")"),
        (march.deliveries["A2"], "RS", False, "缺少字段"),
        (march.deliveries["A1"], "SCJG", True, "用于核验")]
    assert body["recent"][0]["rated_at"] == "2026-03-12T02:00:00Z"


def test_incremental_equals_full(march: March) -> None:
    """The incrementally refreshed mart answers exactly like one rebuilt from scratch."""
    def everything() -> list[Any]:
        con = _con()
        return [ms.overview(con, MARCH), ms.volume(con, MARCH, "day"), ms.flows(con, MARCH),
                *[ms.latency(con, MARCH, by, "day")
                  for by in ("overall", "provider", "requester", "sharing_type", "stage")],
                ms.timeliness(con, MARCH), ms.failures(con, MARCH), ms.quality(con, MARCH),
                ms.resources(con, MARCH), ms.feedback(con, MARCH)]

    incremental = everything()
    stats = mart.refresh(full=True)
    assert stats is not None and stats.full
    assert everything() == incremental


def test_ratings(march: March, aw: AccessWorld) -> None:
    d = march.deliveries["A6"]
    with db.session_scope(write=False) as session:
        rows = session.exec(select(DeliveryRating).where(DeliveryRating.delivery_id == d)).all()
    assert [(r.useful, r.comment) for r in rows] == [(False, "=HYPERLINK(\"x\")")]  # replaced
    assert log_types("delivery", str(d)).count("delivery.rated") == 2
    r = aw.post(f"/deliveries/{d}/rating", "RS", Role.requester,
                json={"useful": True, "comment": "补齐后可用"})
    assert r.status_code == 200 and r.json()["useful"] is True and r.json()["rated_by"] == \
        "rs-requester"
    assert aw.post(f"/deliveries/{d}/rating", "SCJG", Role.requester,
                   json={"useful": True}).status_code == 403  # not the requesting department
    listed = aw.get(f"/deliveries/{d}/ratings", "GA", Role.approver)  # the provider sees it
    assert [x["comment"] for x in listed.json()] == ["补齐后可用"]
    assert aw.get(f"/deliveries/{d}/ratings", "SCJG", Role.approver).status_code == 403
    assert aw.get(f"/deliveries/{d}/ratings", "SJJ", Role.auditor).status_code == 200


# --- through the app: CSV, Prometheus ---------------------------------------------------------

def test_csv_export(client: TestClient, world: World) -> None:
    meta = population_meta()
    meta["name"] = "=cmd|' /C calc'!A0 人口"
    r = client.post("/api/v1/resources", **upload(meta, to_csv(population_rows(2))),
                    headers=world.headers("GA", Role.publisher))
    assert r.status_code == 201, r.text
    r = client.get("/api/v1/metrics/resources", params={"format": "csv"},
                   headers=world.headers("SJJ", Role.leader))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "resource_code,resource_name_zh,resource_name_en,provider_code," \
        "provider_name_zh,provider_name_en,published_at"
    assert lines[1].split(",")[1] == "'=cmd|' /C calc'!A0 人口"  # neutralised
    r = client.get("/api/v1/metrics/overview", params={"format": "csv"},
                   headers=world.headers("SJJ", Role.auditor))
    assert r.content.decode("utf-8-sig").splitlines()[1].startswith("0,0,0,0,0,0,,")
    r = client.get("/api/v1/metrics/overview", headers=world.headers("GA", Role.leader),
                   params={"department": "NOPE"})
    assert r.status_code == 422 and "NOPE" in r.json()["detail"]
    assert r.headers["content-type"] == "application/problem+json"


def test_overview_json_has_as_of(client: TestClient, world: World) -> None:
    body = client.get("/api/v1/metrics/overview", headers=world.headers("GA", Role.leader)).json()
    assert body["applications"] == 0 and body["on_time_rate"] is None and "as_of" in body


def test_prometheus(client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.settings import get_settings

    client.get("/api/v1/resources", headers=world.headers("GA", Role.requester))
    client.get("/api/v1/applications/12345", headers=world.headers("GA", Role.requester))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=world.headers("GA", Role.requester)).status_code == 403
    r = client.get("/metrics", headers=world.headers("GA", Role.admin))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'govshare_http_requests_total{method="GET",route="/api/v1/resources",' \
        'status="200"}' in r.text
    assert 'route="/api/v1/applications/{app_id}",status="404"' in r.text  # template, not id
    assert "govshare_access_log_size " in r.text
    assert 'govshare_access_log_entries_total{event_type="user.created"}' in r.text or \
        "govshare_access_log_entries_total" in r.text
    monkeypatch.setenv("GOVSHARE_METRICS_TOKEN", "scrape-secret")
    get_settings.cache_clear()
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert ok.status_code == 200
    bad = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
