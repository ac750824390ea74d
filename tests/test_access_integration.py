"""The pipeline inside the whole app (``govshare.app.create_app``): catalog registration over
HTTP, the access routers, the scheduler's start and stop, and the signed log's API."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from kernel.identity import Role
from tests.conftest import World
from tests.factories import population_meta, population_rows, to_csv, upload


def test_apply_approve_deliver_download_in_the_app(client: TestClient, world: World) -> None:
    r = client.post("/api/v1/resources", **upload(population_meta(), to_csv(population_rows(30))),
                    headers=world.headers("GA", Role.publisher))
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    body = {"resource": code, "purpose": "核验市场主体登记人员身份",
            "legal_basis": "《优化营商环境条例》", "items": ["id_number", "name", "birth_date"],
            "period_end": (date.today() + timedelta(days=30)).isoformat()}
    filed = client.post("/api/v1/applications", json=body,
                        headers=world.headers("SCJG", Role.requester))
    assert filed.status_code == 201 and filed.json()["state"] == "submitted"
    app_id = filed.json()["id"]
    approved = client.post(f"/api/v1/applications/{app_id}/approve", json={},
                           headers=world.headers("GA", Role.approver))
    assert approved.status_code == 200
    (d,) = client.get("/api/v1/deliveries", headers=world.headers("SCJG", Role.requester)).json()
    link = client.post(f"/api/v1/deliveries/{d['id']}/link",
                       headers=world.headers("SCJG", Role.requester)).json()
    got = client.get(link["url"], headers=world.headers("SCJG", Role.requester))
    assert got.status_code == 200
    rows = pq.read_table(io.BytesIO(got.content)).to_pylist()
    assert len(rows) == 30 and rows[0]["name"].endswith("*")
    assert rows[0]["id_number"] != population_rows(1)[0]["id_number"]
    entries = client.get("/api/v1/log/entries?limit=1000",
                         headers=world.headers("SJJ", Role.auditor)).json()
    mine = [e["entry"]["type"] for e in entries
            if e["entry"]["subjects"].get("application") == str(app_id)]
    assert mine == ["application.filed", "application.approved", "delivery.completed",
                    "delivery.link_issued", "delivery.downloaded"]
    latency = client.get("/api/v1/latency?group_by=provider",
                         headers=world.headers("SJJ", Role.auditor)).json()
    assert latency["groups"][0]["group"] == "GA"
