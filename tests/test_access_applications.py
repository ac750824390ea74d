"""Filing, routing by sharing type, decisions, returns (one-time notice), escalation, bundles."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from access import service as svc
from access.models import Application
from kernel import db, identity
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    PEOPLE_ITEMS,
    AccessWorld,
    access_world,
    application,
    file_app,
    people_rows,
    register,
)


def _problem(r: object) -> dict[str, object]:
    assert r.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    return dict(r.json())  # type: ignore[attr-defined]


def test_bad_applications_are_refused_with_the_reason(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    secret = register(tmp_path, sharing_type="not_shareable", name="重点人员")
    cases = [
        (application(secret), "SCJG", "not shareable"),
        (application(code, ["name", "shoe_size"]), "SCJG", "'shoe_size' is not a data item"),
        (application(code, period_end=(date.today() + timedelta(days=800)).isoformat()),
         "SCJG", "at most 366 are allowed"),
        (application(code, period_start=(date.today() - timedelta(days=3)).isoformat()),
         "SCJG", "cannot start in the past"),
        (application(code, ["name", "name"]), "SCJG", "repeated: name"),
        (application(code), "GA", "your own department's data"),
        (application(code, delivery_method="api", schedule="daily"), "SCJG",
         "schedules apply to file deliveries only"),
    ]
    for body, dept, reason in cases:
        r = aw.post("/applications", dept, Role.requester, json=body)
        assert r.status_code == 422, (reason, r.text)
        assert reason in _problem(r)["detail"], r.text  # type: ignore[operator]
    empty = aw.post("/applications", "SCJG", Role.requester,
                    json=application(code) | {"items": []})
    assert empty.status_code == 422 and "items" in empty.text  # at least one item
    assert aw.get("/applications", "SCJG", Role.requester).json() == []


def test_a_duplicate_points_to_the_active_application(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    first = file_app(aw, code, items=["name", "district"])
    again = aw.post("/applications", "SCJG", Role.requester,
                    json=application(code, ["district", "name"]))  # same set, other order
    assert again.status_code == 409
    assert _problem(again)["existing_application"] == first["id"]
    other_items = aw.post("/applications", "SCJG", Role.requester,
                          json=application(code, ["name"]))
    assert other_items.status_code == 201
    other_dept = aw.post("/applications", "RS", Role.requester,
                         json=application(code, ["name", "district"]))
    assert other_dept.status_code == 201
    aw.post(f"/applications/{first['id']}/withdraw", "SCJG", Role.requester, json={})
    assert aw.post("/applications", "SCJG", Role.requester,
                   json=application(code, ["name", "district"])).status_code == 201


def test_unconditional_is_approved_and_delivered_at_once(aw: AccessWorld,
                                                         tmp_path: Path) -> None:
    code = register(tmp_path, sharing_type="unconditional")
    app = file_app(aw, code)
    assert app["state"] == "approved"  # the response; the delivery follows it
    now = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert now["state"] == "delivered" and now["grant_id"] is not None
    steps = aw.get(f"/applications/{app['id']}/history", "SCJG", Role.requester).json()
    assert [s["action"] for s in steps] == ["file", "auto_approve", "deliver"]
    assert steps[1]["actor"] is None  # approved by govshare, not a person
    from datetime import datetime
    elapsed = datetime.fromisoformat(now["delivered_at"]) - \
        datetime.fromisoformat(now["filed_at"])
    assert elapsed.total_seconds() < 10


def test_conditions_wait_for_the_requesters_commitment(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    app = file_app(aw, code)
    commitment = "签署《数据使用安全责任承诺书》，仅用于核验，不得转授"
    r = aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver,
                json={"conditions": [commitment], "masking": {"name": {"rule": "suppress"}}})
    assert r.status_code == 200 and r.json()["state"] == "conditions_pending"
    assert r.json()["conditions"] == [commitment]
    assert aw.get("/deliveries", "SCJG", Role.requester).json() == []
    wrong = aw.post(f"/applications/{app['id']}/accept-conditions", "RS", Role.requester)
    assert wrong.status_code == 409
    ok = aw.post(f"/applications/{app['id']}/accept-conditions", "SCJG", Role.requester)
    assert ok.status_code == 200
    done = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert done["state"] == "delivered" and done["masking_plan"]["name"] == {"rule": "suppress"}
    steps = aw.get(f"/applications/{app['id']}/history", "GA", Role.approver).json()
    accepted = next(s for s in steps if s["action"] == "accept_conditions")
    assert accepted["detail"] == {"conditions": [commitment], "accepted_by": "scjg-requester"}


def test_rejection_needs_a_structured_reason(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    app = file_app(aw, code)
    url = f"/applications/{app['id']}/reject"
    assert aw.post(url, "GA", Role.approver, json={"text": "不行"}).status_code == 422
    assert aw.post(url, "GA", Role.approver,
                   json={"reason": "because", "text": "不行"}).status_code == 422
    assert aw.post(url, "GA", Role.approver,
                   json={"reason": "ownership_dispute"}).status_code == 422
    r = aw.post(url, "GA", Role.approver,
                json={"reason": "ownership_dispute", "text": "该数据归属市公安局户政支队"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    steps = aw.get(f"/applications/{app['id']}/history", "SCJG", Role.requester).json()
    assert steps[-1]["detail"] == {"reason": "ownership_dispute",
                                   "text": "该数据归属市公安局户政支队"}


def test_returns_list_every_deficiency_once(aw: AccessWorld, tmp_path: Path) -> None:
    """One-time notice (一次性告知): a later return raising a problem that existed at the first
    is flagged, whether it was listed then (repeated) or not (missed)."""
    code = register(tmp_path)
    app = file_app(aw, code, items=["id_number", "name", "mobile", "district"])
    url = f"/applications/{app['id']}"

    def give_back(*codes: str) -> dict[str, object]:
        r = aw.post(f"{url}/return", "GA", Role.approver,
                    json={"deficiencies": [{"code": c, "note": "请补正"} for c in codes]})
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert aw.post(f"{url}/return", "GA", Role.approver,
                   json={"deficiencies": []}).status_code == 422
    first = give_back("purpose_unclear", "items_not_necessary")
    assert first["state"] == "returned" and first["notice_violations"] == 0
    # The requester fixes the purpose but keeps the items.
    aw.post(f"{url}/resubmit", "SCJG", Role.requester,
            json={"purpose": "仅用于企业登记时核验法定代表人身份"})
    second = give_back("items_not_necessary")  # listed at the first return and still there
    assert second["notice_violations"] == 1 and second["returns"] == 2
    aw.post(f"{url}/resubmit", "SCJG", Role.requester, json={"items": ["id_number", "name"]})
    third = give_back("legal_basis_insufficient")  # unchanged since the first, never listed
    assert third["notice_violations"] == 2
    steps = aw.get(f"{url}/history", "SCJG", Role.requester).json()
    returns = [s["detail"] for s in steps if s["action"] == "return"]
    assert returns[1]["repeated"] == ["items_not_necessary"]
    assert returns[2]["missed_at_first"] == ["legal_basis_insufficient"]
    aw.post(f"{url}/resubmit", "SCJG", Role.requester, json={"legal_basis": "《条例》第12条"})
    fine = aw.post(f"{url}/approve", "GA", Role.approver, json={}).json()
    assert fine["bounces"] == 3 and fine["revision"] == 4


def _make_overdue(app_id: int) -> None:
    with db.session_scope() as session:
        app = session.get(Application, app_id)
        assert app is not None
        app.due_date = date.today() - timedelta(days=2)


def test_overdue_escalation_and_the_bureau_coordinating(aw: AccessWorld,
                                                        tmp_path: Path) -> None:
    code = register(tmp_path)
    app = file_app(aw, code)
    url = f"/applications/{app['id']}"
    assert app["due_date"] > date.today().isoformat() and app["overdue"] is False
    early = aw.post(f"{url}/escalate", "SCJG", Role.requester, json={"note": "催办"})
    assert early.status_code == 409 and "not overdue" in early.json()["detail"]
    _make_overdue(app["id"])
    late = aw.get("/applications?overdue=true", "GA", Role.approver).json()
    assert [a["id"] for a in late] == [app["id"]] and late[0]["overdue"] is True
    not_yet = aw.post(f"{url}/coordination", "SJJ", Role.auditor,
                      json={"kind": "remind", "note": "请答复"})
    assert not_yet.status_code == 409  # the bureau acts only on escalated applications
    r = aw.post(f"{url}/escalate", "SCJG", Role.requester, json={"note": "已超过十个工作日"})
    assert r.status_code == 200 and r.json()["escalations"] == 1
    for kind, note in [("remind", "请三日内答复"), ("convene", "召开协调会"),
                       ("outcome", "提供方同意在脱敏后共享")]:
        c = aw.post(f"{url}/coordination", "SJJ", Role.auditor, json={"kind": kind, "note": note})
        assert c.status_code == 200 and c.json()["state"] == "submitted"
    # The bureau coordinates but never decides for the provider.
    assert aw.post(f"{url}/approve", "SJJ", Role.approver, json={}).status_code == 409
    assert aw.post(f"{url}/approve", "SJJ", Role.auditor, json={}).status_code == 403
    assert aw.post(f"{url}/approve", "GA", Role.approver, json={}).status_code == 200
    visible = aw.get(url, "SJJ", Role.auditor)
    assert visible.status_code == 200 and visible.json()["state"] == "delivered"
    actions = [s["action"] for s in aw.get(f"{url}/history", "SJJ", Role.auditor).json()]
    assert actions == ["file", "escalate", "coordinate", "coordinate", "coordinate",
                       "approve", "deliver"]


def test_due_date_counts_working_days(aw: AccessWorld, tmp_path: Path) -> None:
    from access.calendar import WorkCalendar

    code = register(tmp_path)
    app = file_app(aw, code)
    cal = WorkCalendar.from_settings()
    filed = cal.local_date(svc.utcnow())
    assert app["due_date"] == cal.add_working_days(filed, 10).isoformat()


def test_reassigning_counts_as_a_bounce(aw: AccessWorld, tmp_path: Path) -> None:
    with db.session_scope() as session:
        identity.create_user(session, username="ga-approver-2", display_name="GA 2",
                             department="GA", roles=[Role.approver])
    code = register(tmp_path)
    app = file_app(aw, code)
    url = f"/applications/{app['id']}/reassign"
    bad = aw.post(url, "GA", Role.approver, json={"assignee": "scjg-approver"})
    assert bad.status_code == 422
    r = aw.post(url, "GA", Role.approver, json={"assignee": "ga-approver-2"})
    assert r.status_code == 200
    assert r.json()["assignee"] == "ga-approver-2" and r.json()["bounces"] == 1


def test_only_the_two_departments_and_the_bureau_see_it(aw: AccessWorld,
                                                        tmp_path: Path) -> None:
    code = register(tmp_path)
    app = file_app(aw, code)
    url = f"/applications/{app['id']}"
    for dept, role in [("SCJG", Role.requester), ("SCJG", Role.leader), ("GA", Role.approver),
                       ("SJJ", Role.auditor)]:
        assert aw.get(url, dept, role).status_code == 200, (dept, role)
    for dept, role in [("RS", Role.requester), ("RS", Role.approver), ("RS", Role.leader)]:
        assert aw.get(url, dept, role).status_code == 403, (dept, role)
    assert aw.get("/applications", "RS", Role.requester).json() == []
    assert [a["id"] for a in aw.get("/applications", "GA", Role.approver).json()] == [app["id"]]


def test_bundles_are_approved_in_parallel(aw: AccessWorld, tmp_path: Path) -> None:
    """一件事: one filing, parts decided by each provider in parallel; the first part's
    provider coordinates; the bundle completes when every part is delivered or closed."""
    ga = register(tmp_path)
    rs_items = [i for i in PEOPLE_ITEMS if i["name"] in ("id_number", "district", "income")]
    rs = register(tmp_path, provider="RS", name="社保参保信息", items=rs_items,
                  rows=[{k: r[k] for k in ("id_number", "district", "income")}
                        for r in people_rows()])
    open_data = register(tmp_path, provider="RS", name="公开名录", sharing_type="unconditional",
                         items=[i for i in PEOPLE_ITEMS if i["name"] == "district"],
                         rows=[{"district": d} for d in ("福田区", "南山区")])
    body = {"title": "企业开办一件事",
            "parts": [application(ga, ["id_number", "name"]),
                      application(rs, ["id_number", "income"]),
                      application(open_data, ["district"])]}
    r = aw.post("/bundles", "SCJG", Role.requester, json=body)
    assert r.status_code == 201, r.text
    bundle = r.json()
    assert bundle["coordinator"] == "GA" and bundle["completed_at"] is None
    parts = {p["resource"]: p for p in bundle["parts"]}
    assert parts[open_data]["state"] == "approved"  # unconditional: approved at filing
    # Each provider sees and decides its own part only.
    assert aw.post(f"/applications/{parts[rs]['id']}/approve", "GA", Role.approver,
                   json={}).status_code == 409
    reminded = aw.post(f"/bundles/{bundle['id']}/remind", "GA", Role.approver,
                       json={"note": "请尽快办理"})
    assert reminded.status_code == 200
    assert aw.post(f"/bundles/{bundle['id']}/remind", "RS", Role.approver,
                   json={}).status_code == 409  # RS does not coordinate this bundle
    assert aw.post(f"/applications/{parts[rs]['id']}/approve", "RS", Role.approver,
                   json={}).status_code == 200
    assert aw.get(f"/bundles/{bundle['id']}", "SCJG",
                  Role.requester).json()["completed_at"] is None
    aw.post(f"/applications/{parts[ga]['id']}/reject", "GA", Role.approver,
            json={"reason": "security_risk", "text": "涉及敏感人员"})
    done = aw.get(f"/bundles/{bundle['id']}", "SCJG", Role.requester).json()
    assert done["completed_at"] is not None
    assert sorted(p["state"] for p in done["parts"]) == ["delivered", "delivered", "rejected"]
    history = aw.get(f"/applications/{parts[rs]['id']}/history", "RS", Role.approver).json()
    assert any(s["action"] == "coordinate" and s["actor_department"] == "GA" for s in history)
    report = aw.get("/latency/bundles", "SJJ", Role.auditor).json()
    assert len(report) == 1 and report[0]["parts_delivered"] == 2
    assert report[0]["sum_of_parts_hours"] >= report[0]["max_part_hours"]


def test_a_bundle_is_filed_whole_or_not_at_all(aw: AccessWorld, tmp_path: Path) -> None:
    ga = register(tmp_path)
    secret = register(tmp_path, sharing_type="not_shareable", name="重点人员")
    body = {"title": "一件事", "parts": [application(ga), application(secret)]}
    r = aw.post("/bundles", "SCJG", Role.requester, json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["part"] == 1
    assert aw.get("/applications", "SCJG", Role.requester).json() == []
