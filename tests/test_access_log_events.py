"""Every event of the pipeline reaches the signed access log, in the same transaction as the
change it records (read back from the log's LogEntry table and its API)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from access.models import Application
from kernel import db
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    application,
    file_app,
    log_types,
    register,
)
from translog import canonical
from translog import service as log_service
from translog.models import LogEntry


def _entries() -> list[LogEntry]:
    with db.session_scope(write=False) as session:
        return list(session.exec(select(LogEntry)))


def test_every_pipeline_event_is_logged(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    # Conditional path with every kind of step.
    app = file_app(aw, code, items=["name", "mobile", "district"])
    url = f"/applications/{app['id']}"
    aw.post(f"{url}/return", "GA", Role.approver,
            json={"deficiencies": [{"code": "purpose_unclear"}]})
    aw.post(f"{url}/resubmit", "SCJG", Role.requester, json={"purpose": "核验经营者身份信息"})
    aw.post(f"{url}/reassign", "GA", Role.approver, json={"assignee": "ga-approver"})
    with db.session_scope() as session:
        row = session.get(Application, app["id"])
        assert row is not None
        row.due_date = date.today() - timedelta(days=1)
    aw.post(f"{url}/escalate", "SCJG", Role.requester, json={"note": "超期"})
    aw.post(f"{url}/coordination", "SJJ", Role.auditor, json={"kind": "convene", "note": "会商"})
    aw.post(f"{url}/approve", "GA", Role.approver, json={"conditions": ["承诺书"]})
    aw.post(f"{url}/accept-conditions", "SCJG", Role.requester)
    aw.post(f"{url}/masking", "GA", Role.approver, json={"masking": {"name": {"rule": "suppress"}}})
    (d,) = aw.get(f"/deliveries?application={app['id']}", "SCJG", Role.requester).json()
    link = aw.post(f"/deliveries/{d['id']}/link", "SCJG", Role.requester).json()
    aw.client.get(link["url"], headers=aw.h("SCJG", Role.requester))
    aw.post(f"/grants/{d['grant_id']}/revoke", "GA", Role.approver, json={"reason": "到期停止"})
    assert log_types("application", str(app["id"])) == [
        "application.filed", "application.returned", "application.resubmitted",
        "application.reassigned", "application.escalated", "application.coordinated",
        "application.conditions_set", "application.conditions_accepted",
        "delivery.completed", "application.plan_tightened", "delivery.link_issued",
        "delivery.downloaded", "grant.revoked"]
    # Rejection, withdrawal, bundles.
    other = file_app(aw, code, items=["name"])
    aw.post(f"/applications/{other['id']}/reject", "GA", Role.approver,
            json={"reason": "core_data", "text": "涉及核心数据"})
    third = file_app(aw, code, items=["mobile"])
    aw.post(f"/applications/{third['id']}/withdraw", "SCJG", Role.requester, json={})
    assert log_types("application", str(other["id"]))[-1] == "application.rejected"
    assert log_types("application", str(third["id"]))[-1] == "application.withdrawn"
    api_code = register(tmp_path, sharing_type="unconditional", name="开放名录", method="api")
    bundle = aw.post("/bundles", "SCJG", Role.requester, json={"title": "一件事", "parts": [
        application(api_code, ["district"], delivery_method="api"),
        application(code, ["district"])]}).json()
    part = bundle["parts"][0]
    grant_id = aw.get(f"/applications/{part['id']}", "SCJG", Role.requester).json()["grant_id"]
    aw.post(f"/grants/{grant_id}/query", "SCJG", Role.requester, json={})
    aw.post(f"/applications/{bundle['parts'][1]['id']}/reject", "GA", Role.approver,
            json={"reason": "other", "text": "重复申请"})
    assert log_types("bundle", str(bundle["id"]))[0] == "bundle.filed"
    assert log_types("bundle", str(bundle["id"]))[-1] == "bundle.completed"
    assert "grant.queried" in log_types("application", str(part["id"]))
    # Auditors read the same entries through the log's API.
    seen = aw.get("/log/entries?limit=1000", "SJJ", Role.auditor).json()
    assert {e["entry"]["type"] for e in seen} >= {"application.approved", "grant.queried",
                                                 "bundle.completed", "delivery.downloaded"}


def test_the_approval_event_digests_the_masking_plan(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    app = file_app(aw, code, items=["id_number", "district"])
    body = {"masking": {"district": {"rule": "suppress"}}, "note": "按最小必要"}
    approved = aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver,
                       json=body).json()
    payload = {"state": "approved", "masking_plan": approved["masking_plan"],
               "row_filters": [], "quasi_identifiers": [], "k_min": None,
               "max_suppression": None, "sensitive_items": [], "conditions": [],
               "note": "按最小必要"}
    entry = next(e for e in _entries() if e.event_type == "application.approved")
    assert entry.payload_sha256 == canonical.payload_digest(payload)
    assert entry.subjects == {"application": str(app["id"]), "resource": code}
    assert entry.actor_kind == "user" and entry.actor_user_id is not None


def test_a_failed_log_append_undoes_the_change(aw: AccessWorld, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    code = register(tmp_path)
    app = file_app(aw, code)
    before = len(_entries())
    real = log_service.append

    def failing(session: object, event: object) -> object:
        if getattr(event, "type", "") == "application.rejected":
            raise RuntimeError("log unavailable")
        return real(session, event)  # type: ignore[arg-type]

    monkeypatch.setattr(log_service, "append", failing)
    with pytest.raises(RuntimeError, match="log unavailable"):  # a 500 for a real client
        aw.post(f"/applications/{app['id']}/reject", "GA", Role.approver,
                json={"reason": "other", "text": "测试"})
    got = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert got["state"] == "submitted" and len(_entries()) == before
