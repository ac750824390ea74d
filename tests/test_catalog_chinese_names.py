"""Chinese field names all the way down: masking, Parquet and CSV deliveries, API queries,
quality rules and DCAT; decimals stay exact in every delivery."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from kernel.identity import Role
from tests.conftest import World
from tests.factories import resident_id
from tests.test_access_support import (
    AccessWorld,
    access_world,
    file_app,
    register,
)
from tests.test_quality_support import quiet_quality, run_queued

__all__ = ["access_world", "quiet_quality"]

ITEMS: list[dict[str, Any]] = [
    {"name": "公民身份号码", "type": "string", "is_key": True, "kind": "resident_id",
     "sensitivity": "sensitive_personal", "required": True},
    {"name": "姓名", "type": "string", "kind": "person_name", "sensitivity": "personal"},
    {"name": "手机号码", "type": "string", "kind": "mobile", "sensitivity": "personal"},
    {"name": "所在区", "type": "string"},
    {"name": "补贴金额", "type": "decimal", "precision": 18, "scale": 2},
]
NAMES = [i["name"] for i in ITEMS]
AMOUNTS = ["0.10", "1234.56", "99999999999999.99", "-3.05"]


def _rows(n: int = 8) -> list[dict[str, Any]]:
    return [{"公民身份号码": resident_id(i), "姓名": f"张{i}", "手机号码": f"138{i:08d}",
             "所在区": ["福田区", "南山区"][i % 2], "补贴金额": AMOUNTS[i % len(AMOUNTS)]}
            for i in range(n)]


def _download(aw: AccessWorld, app: dict[str, Any]) -> bytes:
    (d,) = aw.get(f"/deliveries?application={app['id']}", "SCJG", Role.requester).json()
    link = aw.post(f"/deliveries/{d['id']}/link", "SCJG", Role.requester)
    r = aw.client.get(link.json()["url"], headers=aw.h("SCJG", Role.requester))
    assert r.status_code == 200, r.text
    return r.content


def test_deliveries_and_queries_with_chinese_names(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path, sharing_type="unconditional", items=ITEMS, rows=_rows(),
                    name="高龄津贴")
    parquet = pq.read_table(io.BytesIO(_download(aw, file_app(aw, code, items=NAMES))))
    assert parquet.column_names == NAMES
    amounts = parquet.column("补贴金额").to_pylist()
    assert amounts == [Decimal(a) for a in AMOUNTS * 2]  # exact, as DECIMAL(18,2)
    assert str(parquet.schema.field("补贴金额").type) == "decimal128(18, 2)"
    assert all(re.fullmatch("[0-9a-f]{32}", v) for v in parquet.column("公民身份号码").to_pylist())
    assert parquet.column("手机号码").to_pylist()[1] == "138****0001"

    text = _download(aw, file_app(aw, code, items=["所在区", "补贴金额"], file_format="csv"))
    got = list(csv.DictReader(io.StringIO(text.decode("utf-8-sig"))))
    assert [g["补贴金额"] for g in got] == AMOUNTS * 2 and got[0]["所在区"] == "福田区"

    app = file_app(aw, code, items=["姓名", "所在区", "补贴金额"], delivery_method="api")
    r = aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver, json={})
    assert r.status_code in (200, 409), r.text
    grant = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()["grant_id"]
    page = aw.post(f"/grants/{grant}/query", "SCJG", Role.requester, json={
        "filters": [{"column": "所在区", "op": "eq", "values": ["南山区"]}],
        "columns": ["所在区", "补贴金额"]}).json()
    assert page["columns"] == ["所在区", "补贴金额"]
    assert [Decimal(str(v)) for _, v in page["rows"]] == [Decimal(AMOUNTS[i % 4])
                                                          for i in range(1, 8, 2)]


def test_quality_rules_and_dcat_with_chinese_names(client: TestClient, world: World,
                                                   quiet_quality: None) -> None:
    from tests.factories import population_meta, upload

    rows = _rows(6)
    header = ",".join(NAMES)
    data = "\n".join([header, *(",".join(str(r[n]) for n in NAMES) for r in rows)]).encode()
    meta = population_meta(name="高龄津贴", items=ITEMS)
    r = client.post("/api/v1/resources", **upload(meta, data),
                    headers=world.headers("GA", Role.publisher))
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert list(run_queued().values()) == ["succeeded"]
    aud = world.headers("SJJ", Role.auditor)
    (run,) = client.get(f"/api/v1/quality/resources/{code}/runs", headers=aud).json()
    detail = client.get(f"/api/v1/quality/runs/{run['id']}", headers=aud).json()
    results = {e["rule"]: e["success"] for e in detail["expectations"]}
    assert results["type:补贴金额"] and results["unique:公民身份号码"]
    assert results["resident_id:公民身份号码"] and results["mobile:手机号码"]
    dcat = client.get("/api/v1/catalog.jsonld", headers=aud).text
    assert "补贴金额" in dcat and "公民身份号码" in dcat
