"""Rectification notices: issue → respond → a re-run verifies → closed (or still open), with
role and department checks; on-demand runs are scoped the same way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kernel import events
from kernel.db import utcnow
from kernel.identity import Role
from tests.conftest import World
from tests.factories import to_csv
from tests.test_quality_support import (
    API,
    ITEMS,
    legacy_duplicate,
    people,
    published,
    quiet_quality,
    register,
    run_queued,
)

__all__ = ["published", "quiet_quality"]
pytestmark = pytest.mark.usefixtures("quiet_quality")


def _duplicated(client: TestClient, world: World, dept: str = "GA") -> str:
    """A resource whose rows 4 and 5 share a key."""
    code = register(client, world, people(6), dept=dept)
    legacy_duplicate(code, people(6), keep=4, copy=5)
    return code


def _notice_body(code: str) -> dict[str, Any]:
    return {"resource": code, "problem": "公民身份号码存在重复记录，请核查并去重。",
            "deadline": (utcnow().date() + timedelta(days=30)).isoformat(),
            "dimension": "uniqueness", "min_score": 100, "rules": ["unique:id_number"]}


def _respond(client: TestClient, world: World, notice_id: int, dept: str = "GA",
             role: Role = Role.publisher) -> Any:
    return client.post(f"{API}/quality/notices/{notice_id}/response",
                       json={"response": "已完成去重"}, headers=world.headers(dept, role))


def test_notice_loop_closes_only_when_a_rerun_passes(client: TestClient, world: World,
                                                     published: list[events.Event]) -> None:
    code = _duplicated(client, world)
    run_queued()
    aud, pub = world.headers("SJJ", Role.auditor), world.headers("GA", Role.publisher)
    r = client.post(f"{API}/quality/notices", json=_notice_body(code), headers=aud)
    assert r.status_code == 201, r.text
    notice = r.json()
    assert (notice["status"], notice["department"], notice["issued_by"]) == (
        "open", "GA", "sjj-auditor")

    # Responding without fixing: the verifying run fails the notice's rule; it stays open.
    assert _respond(client, world, notice["id"]).json()["status"] == "responded"
    run_queued()
    notice = client.get(f"{API}/quality/notices/{notice['id']}", headers=pub).json()
    assert notice["status"] == "open"
    assert [h["action"] for h in notice["history"]] == [
        "issued", "responded", "verification_failed"]
    assert "unique:id_number failed" in notice["history"][-1]["note"]

    # Fix the data (a new version), respond again: the re-run passes and closes it.
    fixed = to_csv(people(6), [i["name"] for i in ITEMS])
    r = client.post(f"{API}/resources/{code}/versions", data={"mode": "replace"},
                    files={"file": ("v2.csv", fixed, "text/csv")}, headers=pub)
    assert r.status_code == 201, r.text
    _respond(client, world, notice["id"])
    run_queued()
    notice = client.get(f"{API}/quality/notices/{notice['id']}", headers=aud).json()
    assert notice["status"] == "closed" and notice["closed_at"] is not None
    assert notice["closing_run_id"] == notice["verification_run_id"]
    history = notice["history"]
    assert [h["action"] for h in history][-2:] == ["responded", "closed"]
    assert history[-2]["actor"] == "ga-publisher" and history[-1]["actor"] is None
    kinds = [e.type for e in published if e.type.startswith("notice.")]
    assert kinds == ["notice.issued", "notice.responded", "notice.responded", "notice.closed"]
    assert _respond(client, world, notice["id"]).status_code == 409  # closed is closed


def test_only_auditors_issue_and_only_the_addressed_department_responds(
        client: TestClient, world: World) -> None:
    code = _duplicated(client, world)
    for dept, role in [("GA", Role.publisher), ("SJJ", Role.leader), ("GA", Role.admin)]:
        r = client.post(f"{API}/quality/notices", json=_notice_body(code),
                        headers=world.headers(dept, role))
        assert r.status_code == 403, (dept, role)
    notice = client.post(f"{API}/quality/notices", json=_notice_body(code),
                         headers=world.headers("SJJ", Role.auditor)).json()
    assert _respond(client, world, notice["id"], "SCJG", Role.publisher).status_code == 403
    assert _respond(client, world, notice["id"], "SJJ", Role.auditor).status_code == 403
    assert _respond(client, world, notice["id"], "GA", Role.requester).status_code == 403
    other = world.headers("SCJG", Role.publisher)
    assert client.get(f"{API}/quality/notices/{notice['id']}", headers=other).status_code == 403
    assert client.get(f"{API}/quality/notices", headers=other).json() == []
    mine = client.get(f"{API}/quality/notices", headers=world.headers("GA", Role.publisher))
    assert [n["id"] for n in mine.json()] == [notice["id"]]


def test_on_demand_runs_are_for_auditors_and_the_provider(client: TestClient,
                                                          world: World) -> None:
    code = register(client, world, people(3))
    url = f"{API}/quality/resources/{code}/runs"
    assert client.post(url, headers=world.headers("SCJG", Role.publisher)).status_code == 403
    assert client.post(url, headers=world.headers("GA", Role.requester)).status_code == 403
    assert client.post(url, headers=world.headers("GA", Role.publisher)).status_code == 202
    assert client.post(url, headers=world.headers("SJJ", Role.auditor)).status_code == 202
    other = world.headers("SCJG", Role.publisher)
    assert client.get(url, headers=other).status_code == 403
    assert client.get(f"{API}/quality/resources/{code}/report", headers=other).status_code == 403


def test_rankings_and_threshold_list(client: TestClient, world: World) -> None:
    good = register(client, world, people(4))
    bad = _duplicated(client, world, dept="SCJG")
    run_queued()
    aud = world.headers("SJJ", Role.auditor)
    ranked = client.get(f"{API}/quality/ranking/resources", headers=aud).json()
    assert [r["code"] for r in ranked] == [good, bad] and ranked[0]["rank"] == 1
    depts = client.get(f"{API}/quality/ranking/departments", headers=aud).json()
    assert [d["department"] for d in depts] == ["GA", "SCJG"]
    cut = (ranked[0]["overall"] + ranked[1]["overall"]) / 2
    below = client.get(f"{API}/quality/below-threshold?threshold={cut}", headers=aud).json()
    assert [r["code"] for r in below] == [bad]
    r = client.put(f"{API}/quality/weights", headers=aud, json={
        "freshness": 0, "completeness": 1, "validity": 1, "uniqueness": 2, "consistency": 1,
        "threshold": 99.5})
    assert r.status_code == 200 and r.json()["changed_by"] == "sjj-auditor"
    assert client.put(f"{API}/quality/weights", json=r.json() | {"changed_by": None},
                      headers=world.headers("GA", Role.publisher)).status_code in (403, 422)
    below = client.get(f"{API}/quality/below-threshold", headers=aud).json()
    assert bad in [r["code"] for r in below]
    history = client.get(f"{API}/quality/weights/history", headers=aud).json()
    assert len(history) == 1 and history[0]["uniqueness"] == 2
