""""Deliver now": the request answers 202 with a status URL, a worker produces the package,
and a double click or a retry is one job and one delivery."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import col, select

from access.models import Delivery
from access.scheduler import DELIVER
from kernel import db, jobs
from kernel.idempotency import HEADER, REPLAYED_HEADER
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    API,
    AccessWorld,
    access_world,
    file_app,
    register,
)
from tests.web_support import sign_in


def _delivery_jobs(app_id: int) -> list[jobs.Job]:
    with db.session_scope(write=False) as session:
        return [j for j in session.exec(select(jobs.Job).where(jobs.Job.kind == DELIVER))
                if j.payload.get("app") == app_id]


def _deliveries(app_id: int) -> int:
    with db.session_scope(write=False) as session:
        return len(session.exec(select(Delivery).where(
            col(Delivery.application_id) == app_id)).all())


def test_deliver_now_queues_one_job_and_the_worker_delivers(aw: AccessWorld,
                                                            tmp_path: Path) -> None:
    app_id = file_app(aw, register(tmp_path), items=["name", "district"])["id"]
    # No worker beside this client: what the requests queue stays queued until drained.
    plain = TestClient(aw.client.app)
    approved = plain.post(f"{API}/applications/{app_id}/approve", headers=aw.h("GA", Role.approver),
                          json={})
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    requester = aw.h("SCJG", Role.requester)
    first = plain.post(f"{API}/applications/{app_id}/deliver", headers=requester)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["state"] == "queued" and body["final"] is False and body["delivery"] is None
    assert first.headers["location"] == body["status_url"]
    assert body["status_url"].endswith(f"/applications/{app_id}/delivery-jobs/{body['job']}")
    # A double click, and a retry under an Idempotency-Key (replayed): the same job.
    again = plain.post(f"{API}/applications/{app_id}/deliver", headers=requester)
    keyed = {**requester, HEADER: "deliver-1"}
    once = plain.post(f"{API}/applications/{app_id}/deliver", headers=keyed)
    replay = plain.post(f"{API}/applications/{app_id}/deliver", headers=keyed)
    assert again.status_code == once.status_code == replay.status_code == 202
    assert replay.headers[REPLAYED_HEADER] == "true"
    assert replay.headers["location"] == body["status_url"]
    assert {r.json()["job"] for r in (again, once, replay)} == {body["job"]}
    assert len(_delivery_jobs(app_id)) == 1
    # The provider's approver and the bureau may follow it too; another line department not.
    for dept, role in (("GA", Role.approver), ("SJJ", Role.auditor)):
        assert plain.get(body["status_url"], headers=aw.h(dept, role)).json()["state"] == \
            "queued"
    assert plain.get(body["status_url"], headers=aw.h("RS", Role.requester)).status_code == 403
    assert plain.get(f"{API}/applications/{app_id}/delivery-jobs/999999",
                     headers=requester).status_code == 404
    assert _deliveries(app_id) == 0  # nothing was built in a request
    from govshare.app import create_app

    page = TestClient(create_app())  # the web UI
    sign_in(page, aw.tokens[("SCJG", Role.requester)])
    assert 'id="delivering"' in page.get(f"/applications/{app_id}").text  # "on its way"

    ran = jobs.run_pending([DELIVER])  # the worker
    assert len(ran) == 1
    done = plain.get(body["status_url"], headers=requester).json()
    assert done["state"] == "delivered" and done["final"] is True and done["attempts"] == 1
    assert done["delivery"]["application_id"] == app_id and done["delivery"]["row_count"] > 0
    got = plain.get(done["delivery_url"], headers=requester)
    assert got.status_code == 200 and got.json()["id"] == done["delivery"]["id"]
    assert _deliveries(app_id) == 1
    # Asked again in the same period: the package exists, nothing is queued (200).
    later = plain.post(f"{API}/applications/{app_id}/deliver", headers=requester)
    assert later.status_code == 200 and later.json()["job"] is None
    assert later.json()["delivery"]["id"] == done["delivery"]["id"]
    assert "location" not in later.headers
    assert 'id="delivering"' not in page.get(f"/applications/{app_id}").text
    assert len(_delivery_jobs(app_id)) == 1 and _deliveries(app_id) == 1


def test_deliver_now_refuses_at_once_what_it_can(aw: AccessWorld, tmp_path: Path) -> None:
    app_id = file_app(aw, register(tmp_path), items=["name"])["id"]
    # Not approved: the state machine refuses in the request (409), nothing is queued.
    r = aw.post(f"/applications/{app_id}/deliver", "SCJG", Role.requester)
    assert r.status_code == 409 and "it is submitted" in r.json()["detail"]
    # Only the requesting department's requesters ask for it.
    assert aw.post(f"/applications/{app_id}/deliver", "RS", Role.requester).status_code == 409
    assert aw.post(f"/applications/{app_id}/deliver", "GA", Role.approver).status_code == 403
    assert _delivery_jobs(app_id) == []


def test_the_cli_queues_the_same_job_and_waits_for_it(aw: AccessWorld, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from access.cli import app as cli

    app_id = file_app(aw, register(tmp_path), items=["district"])["id"]
    plain = TestClient(aw.client.app)
    plain.post(f"{API}/applications/{app_id}/approve", headers=aw.h("GA", Role.approver),
               json={})
    runner = CliRunner()
    queued = runner.invoke(cli, ["deliver", str(app_id), "--queue", "--json"])
    assert queued.exit_code == 0, queued.output
    assert json.loads(queued.stdout)["state"] == "pending"
    assert len(_delivery_jobs(app_id)) == 1  # the approval's job: the same one
    worker = threading.Timer(0.5, lambda: jobs.run_pending([DELIVER]))
    worker.start()
    waited = runner.invoke(cli, ["deliver", str(app_id), "--queue", "--wait", "60", "--json"])
    worker.join()
    assert waited.exit_code == 0, waited.output
    assert json.loads(waited.stdout)["result"]["outcome"] == "delivered"
    assert _deliveries(app_id) == 1
