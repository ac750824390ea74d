"""Deliveries: signed manifests, download links and who may use them, CSV, API queries,
periodic packages, expiry and revocation, idempotency."""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from access import links, planning, scheduler
from access import service as svc
from access.manifest import verify_manifest
from access.models import Grant
from kernel import db
from kernel.db import utcnow
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    PEOPLE_ITEMS,
    AccessWorld,
    access_world,
    add_version,
    application,
    file_app,
    log_types,
    people_rows,
    register,
)

ALL_ITEMS = [i["name"] for i in PEOPLE_ITEMS]


def _delivered(aw: AccessWorld, tmp_path: Path, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(application, its first delivery) for an unconditional resource."""
    code = register(tmp_path, sharing_type="unconditional")
    app = file_app(aw, code, **kw)
    (d,) = aw.get(f"/deliveries?application={app['id']}", "SCJG", Role.requester).json()
    return app, d


def _download(aw: AccessWorld, delivery_id: int, dept: str = "SCJG") -> Any:
    link = aw.post(f"/deliveries/{delivery_id}/link", dept, Role.requester)
    assert link.status_code == 200, link.text
    return aw.client.get(link.json()["url"], headers=aw.h(dept, Role.requester))


def test_without_the_c_api_the_arrow_function_delivers_the_same_tokens(
        aw: AccessWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries run their COPY through DuckDB's C API when they can; the fallback (the
    Arrow function on the Python connection) gives the same package."""
    from access import native

    lib = native.load()
    if lib is None or lib.api is None:
        pytest.skip("no C compiler or no DuckDB C API: only the fallback exists here")
    code = register(tmp_path, sharing_type="unconditional")
    fast = file_app(aw, code, items=["id_number", "mobile", "district"])
    monkeypatch.setattr(native, "load", lambda: dataclasses.replace(lib, api=None))
    slow = file_app(aw, code, items=["id_number", "mobile"])  # same department: same key
    tables = []
    for app in (fast, slow):
        (d,) = aw.get(f"/deliveries?application={app['id']}", "SCJG", Role.requester).json()
        tables.append(pq.read_table(io.BytesIO(_download(aw, d["id"]).content)))
    assert tables[0].num_rows == tables[1].num_rows == 40
    for column in ("id_number", "mobile"):
        assert tables[0].column(column).to_pylist() == tables[1].column(column).to_pylist()
    assert all(re.fullmatch("[0-9a-f]{32}", v) for v in tables[0].column("id_number").to_pylist())


def test_the_package_and_its_signed_manifest(aw: AccessWorld, tmp_path: Path) -> None:
    app, d = _delivered(aw, tmp_path, items=ALL_ITEMS)
    r = _download(aw, d["id"])
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == d["sha256"] == r.headers["x-content-sha256"]
    table = pq.read_table(io.BytesIO(r.content))  # Parquet v2 + zstd: Arrow reads it
    assert table.num_rows == d["row_count"] == 40
    assert pq.ParquetFile(io.BytesIO(r.content)).metadata.row_group(0).column(0) \
        .compression == "ZSTD"
    assert table.column_names == ALL_ITEMS
    row = table.slice(0, 1).to_pylist()[0]
    assert row["mobile"] == "138****0000" and row["income"] == "[1000, 2000)"
    assert row["address"] == "广东省深圳市福田区" and row["birth_date"] == 1950

    m = aw.get(f"/deliveries/{d['id']}/manifest", "SCJG", Role.requester).json()
    manifest = m["manifest"]
    assert manifest["application"] == app["id"] and manifest["resource_version"] == 1
    assert manifest["items"] == ALL_ITEMS and manifest["row_count"] == 40
    assert manifest["file"]["sha256"] == d["sha256"]
    assert manifest["masking_plan"]["id_number"] == {"rule": "pseudonymize"}
    keys = aw.client.get("/.well-known/govshare-log-keys").json()["keys"]
    public = next(base64.b64decode(k["public_key"]) for k in keys if k["key_id"] == m["key_id"])
    assert verify_manifest(manifest, m["signature"], public)
    assert not verify_manifest(manifest | {"row_count": 41}, m["signature"], public)
    on_disk = Path(os.environ["GOVSHARE_DATA_DIR"]) / "deliveries" / str(app["id"])
    files = sorted(p.name for p in on_disk.iterdir())
    assert len(files) == 2 and files[1] == files[0] + ".manifest.json"
    assert hashlib.sha256((on_disk / files[0]).read_bytes()).hexdigest() == d["sha256"]


def test_csv_packages_neutralise_formulas(aw: AccessWorld, tmp_path: Path) -> None:
    items = [{"name": "district", "type": "string"}, {"name": "note", "type": "string"}]
    rows = [{"district": "福田区", "note": "=HYPERLINK(\"http://x\")"},
            {"district": "南山区", "note": "-1+2"}, {"district": "罗湖区", "note": "正常"}]
    code = register(tmp_path, sharing_type="unconditional", items=items, rows=rows)
    app = file_app(aw, code, items=["district", "note"], file_format="csv")
    (d,) = aw.get(f"/deliveries?application={app['id']}", "SCJG", Role.requester).json()
    r = _download(aw, d["id"])
    assert r.headers["content-type"].startswith("text/csv")
    got = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert [g["note"] for g in got] == ["'=HYPERLINK(\"http://x\")", "'-1+2", "正常"]


def test_download_is_for_the_requesting_department_only(aw: AccessWorld,
                                                        tmp_path: Path) -> None:
    app, d = _delivered(aw, tmp_path)
    link = aw.post(f"/deliveries/{d['id']}/link", "SCJG", Role.requester).json()
    url = link["url"]
    assert aw.client.get(url, headers=aw.h("RS", Role.requester)).status_code == 403
    assert aw.client.get(url, headers=aw.h("GA", Role.requester)).status_code == 403
    assert aw.client.get(url, headers=aw.h("SCJG", Role.approver)).status_code == 403
    assert aw.client.get(url).status_code == 401
    assert aw.post(f"/deliveries/{d['id']}/link", "RS", Role.requester).status_code == 403
    bare = f"/api/v1/deliveries/{d['id']}/download?token="
    assert aw.client.get(bare + "forged.token",
                         headers=aw.h("SCJG", Role.requester)).status_code == 403
    other_delivery = url.replace(f"/deliveries/{d['id']}/", "/deliveries/999/")
    assert aw.client.get(other_delivery, headers=aw.h("SCJG", Role.requester)).status_code \
        in (403, 404)
    assert aw.client.get(url, headers=aw.h("SCJG", Role.requester)).status_code == 200
    assert log_types("delivery", str(d["id"])) == ["delivery.link_issued", "delivery.downloaded"]
    got = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert got["first_download_at"] is not None


def test_expired_links_and_grants(aw: AccessWorld, tmp_path: Path) -> None:
    app, d = _delivered(aw, tmp_path)
    with db.session_scope() as session:
        dept = svc.load(session, app["id"]).requester_department_id
    stale = links.make_token(d["id"], dept, utcnow() - timedelta(seconds=1))
    url = f"/api/v1/deliveries/{d['id']}/download?token={stale}"
    r = aw.client.get(url, headers=aw.h("SCJG", Role.requester))
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    fresh = aw.post(f"/deliveries/{d['id']}/link", "SCJG", Role.requester).json()["url"]
    with db.session_scope() as session:
        grant = session.get(Grant, app["grant_id"] or d["grant_id"])
        assert grant is not None
        grant.valid_until = utcnow() - timedelta(minutes=1)
    assert aw.client.get(fresh, headers=aw.h("SCJG", Role.requester)).status_code == 410
    report = scheduler.run_due()
    assert report.expired == [app["id"]]
    assert aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()["state"] == \
        "expired"
    assert "grant.expired" in log_types("application", str(app["id"]))


def test_revoked_grants_serve_nothing(aw: AccessWorld, tmp_path: Path) -> None:
    app, d = _delivered(aw, tmp_path)
    url = aw.post(f"/deliveries/{d['id']}/link", "SCJG", Role.requester).json()["url"]
    grant_id = d["grant_id"]
    other = aw.post(f"/grants/{grant_id}/revoke", "RS", Role.approver, json={"reason": "撤销"})
    assert other.status_code == 409  # an illegal move: only the provider revokes
    r = aw.post(f"/grants/{grant_id}/revoke", "GA", Role.approver,
                json={"reason": "需求部门违规转授数据"})
    assert r.status_code == 200 and r.json()["active"] is False
    gone = aw.client.get(url, headers=aw.h("SCJG", Role.requester))
    assert gone.status_code == 410 and "revoked" in gone.json()["detail"]
    assert aw.post(f"/deliveries/{d['id']}/link", "SCJG", Role.requester).status_code == 410
    assert aw.post(f"/applications/{app['id']}/deliver", "SCJG",
                   Role.requester).status_code == 409
    assert aw.post(f"/grants/{grant_id}/revoke", "GA", Role.approver,
                   json={"reason": "again"}).status_code == 409


def test_delivering_twice_returns_the_same_package(aw: AccessWorld, tmp_path: Path) -> None:
    app, d = _delivered(aw, tmp_path)
    again = aw.post(f"/applications/{app['id']}/deliver", "SCJG", Role.requester)
    assert again.status_code == 200 and again.json()["delivery"]["id"] == d["id"]
    assert len(aw.get("/deliveries", "SCJG", Role.requester).json()) == 1


def _api_grant(aw: AccessWorld, tmp_path: Path) -> tuple[dict[str, Any], int]:
    code = register(tmp_path, method="api")
    app = file_app(aw, code, items=["id_number", "name", "mobile", "district"],
                   delivery_method="api")
    r = aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver, json={
        "row_filters": [{"column": "district", "op": "in", "values": ["福田区", "南山区"]}]})
    assert r.status_code == 200
    got = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert got["state"] == "delivered"
    return got, int(got["grant_id"])


def test_api_queries_serve_only_the_desensitized_view(aw: AccessWorld, tmp_path: Path) -> None:
    _, grant_id = _api_grant(aw, tmp_path)
    url = f"/grants/{grant_id}/query"
    page = aw.post(url, "SCJG", Role.requester, json={"size": 15}).json()
    assert page["columns"] == ["id_number", "name", "mobile", "district"]
    assert len(page["rows"]) == 15 and page["has_more"] is True
    assert {r[3] for r in page["rows"]} <= {"福田区", "南山区"}  # the approver's filter
    assert all("****" in r[2] and re.fullmatch("[0-9a-f]{32}", r[0]) for r in page["rows"])
    second = aw.post(url, "SCJG", Role.requester, json={"size": 15, "page": 2}).json()
    assert len(second["rows"]) == 5 and second["has_more"] is False  # 20 rows in all
    token = page["rows"][0][0]
    one = aw.post(url, "SCJG", Role.requester, json={
        "filters": [{"column": "id_number", "op": "eq", "values": [token]}],
        "columns": ["id_number", "district"]}).json()
    assert one["rows"] == [[token, page["rows"][0][3]]]
    # Filters apply to masked values: a raw mobile number finds nothing.
    raw = aw.post(url, "SCJG", Role.requester, json={
        "filters": [{"column": "mobile", "op": "eq", "values": ["13800000000"]}]}).json()
    assert raw["rows"] == []
    assert aw.post(url, "SCJG", Role.requester, json={"size": 5000}).status_code == 422
    assert aw.post(url, "SCJG", Role.requester,
                   json={"columns": ["household_size"]}).status_code == 422
    assert aw.post(url, "RS", Role.requester, json={}).status_code == 403
    assert aw.post(url, "SCJG", Role.approver, json={}).status_code == 403
    # The four answered queries are logged; refused ones roll back with their transaction.
    assert log_types("grant", str(grant_id)).count("grant.queried") == 4


def test_api_grants_stop_when_revoked(aw: AccessWorld, tmp_path: Path) -> None:
    _, grant_id = _api_grant(aw, tmp_path)
    aw.post(f"/grants/{grant_id}/revoke", "GA", Role.approver, json={"reason": "停止"})
    r = aw.post(f"/grants/{grant_id}/query", "SCJG", Role.requester, json={})
    assert r.status_code == 410


def test_periodic_grants_deliver_each_period_and_each_version(aw: AccessWorld,
                                                              tmp_path: Path) -> None:
    code = register(tmp_path, sharing_type="unconditional")
    daily = file_app(aw, code, items=["name", "district"], schedule="daily")
    versions = file_app(aw, code, items=["district"], schedule="on_new_version")
    assert scheduler.run_due().delivered == []  # both have this period's package already
    tomorrow = scheduler.run_due(utcnow() + timedelta(days=1))
    assert tomorrow.delivered == [daily["id"]]
    add_version(tmp_path, code, people_rows(45)[40:])
    report = scheduler.run_due(utcnow() + timedelta(days=1))
    assert report.delivered == [versions["id"]]
    packages = aw.get(f"/deliveries?application={versions['id']}", "SCJG",
                      Role.requester).json()
    assert [(p["run_key"], p["resource_version"], p["row_count"]) for p in packages] == [
        ("v2", 2, 45), ("v1", 1, 40)]
    assert len(aw.get(f"/deliveries?application={daily['id']}", "SCJG",
                      Role.requester).json()) == 2


def test_a_delivery_waits_for_the_period_to_start(aw: AccessWorld, tmp_path: Path) -> None:
    from datetime import date

    code = register(tmp_path, sharing_type="unconditional")
    later = (date.today() + timedelta(days=3)).isoformat()
    app = file_app(aw, code, period_start=later)
    got = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert got["state"] == "approved"
    r = aw.post(f"/applications/{app['id']}/deliver", "SCJG", Role.requester)
    assert r.status_code == 409 and "period of use starts" in r.json()["detail"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_run_keys(fmt: str) -> None:
    from datetime import date

    from access.models import Schedule

    day = date(2026, 5, 1)
    assert planning.run_key_for(Schedule.daily, day, 3) == "2026-05-01"
    assert planning.run_key_for(Schedule.weekly, day, 3) == "2026-W18"
    assert planning.run_key_for(Schedule.monthly, day, 3) == "2026-05"
    assert planning.run_key_for(Schedule.on_new_version, day, 3) == "v3"
    assert planning.run_key_for(Schedule.once, day, 3) == "once"


def test_files_listed_by_application_in_other_departments_are_hidden(
        aw: AccessWorld, tmp_path: Path) -> None:
    _, d = _delivered(aw, tmp_path)
    assert aw.get(f"/deliveries/{d['id']}", "RS", Role.requester).status_code == 403
    assert aw.get("/deliveries", "RS", Role.requester).json() == []
    assert len(aw.get("/deliveries", "GA", Role.approver).json()) == 1
    assert aw.get(f"/grants/{d['grant_id']}", "SCJG", Role.requester).json()["active"] is True
