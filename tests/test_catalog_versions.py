"""Data versions, metadata revisions, preview and department scoping on existing resources."""

from typing import Any

from fastapi.testclient import TestClient

from kernel.identity import Role
from tests.conftest import World
from tests.factories import population_meta, population_rows, to_csv, upload

API = "/api/v1/resources"


def _registered(client: TestClient, world: World, rows: int = 5) -> str:
    r = client.post(API, **upload(population_meta(), to_csv(population_rows(rows))),
                    headers=world.headers("GA", Role.publisher))
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def _version(client: TestClient, world: World, code: str, rows: list[dict[str, Any]],
             mode: str, dept: str = "GA") -> Any:
    return client.post(f"{API}/{code}/versions", data={"mode": mode},
                       files={"file": ("v.csv", to_csv(rows), "text/csv")},
                       headers=world.headers(dept, Role.publisher))


def test_append_and_replace_versions(client: TestClient, world: World) -> None:
    code = _registered(client, world, 5)
    r = _version(client, world, code, population_rows(8)[5:], "append")
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2 and r.json()["total_rows"] == 8
    pub = world.headers("GA", Role.publisher)
    assert client.get(f"{API}/{code}/preview?limit=200", headers=pub).json()["total_rows"] == 8
    assert len(client.get(f"{API}/{code}/preview?limit=200", headers=pub).json()["rows"]) == 8
    r = _version(client, world, code, population_rows(2), "replace")
    assert r.json()["version"] == 3 and r.json()["total_rows"] == 2
    rows = client.get(f"{API}/{code}/preview?limit=200", headers=pub).json()["rows"]
    assert len(rows) == 2
    versions = client.get(f"{API}/{code}/versions", headers=pub).json()
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["mode"] for v in versions] == ["replace", "append", "replace"]
    resource = client.get(f"{API}/{code}", headers=pub).json()
    assert resource["current_version"] == 3 and resource["row_count"] == 2


def test_new_version_with_wrong_columns_changes_nothing(client: TestClient, world: World) -> None:
    code = _registered(client, world, 5)
    bad = [{"id_number": "x", "name": "y"}]
    r = _version(client, world, code, bad, "append")
    assert r.status_code == 422
    resource = client.get(f"{API}/{code}", headers=world.headers("GA", Role.publisher)).json()
    assert resource["current_version"] == 1 and resource["row_count"] == 5


def test_other_departments_cannot_touch_data_or_metadata(client: TestClient,
                                                         world: World) -> None:
    code = _registered(client, world)
    assert _version(client, world, code, population_rows(1), "append", "SCJG").status_code == 403
    r = client.patch(f"{API}/{code}", json={"name": "改名"},
                     headers=world.headers("SCJG", Role.publisher))
    assert r.status_code == 403
    r = client.post(f"{API}/{code}/withdraw", headers=world.headers("SCJG", Role.publisher))
    assert r.status_code == 403


def test_preview_is_for_the_provider_only(client: TestClient, world: World) -> None:
    code = _registered(client, world)
    ok = client.get(f"{API}/{code}/preview", headers=world.headers("GA", Role.publisher))
    assert ok.status_code == 200 and ok.json()["columns"][0] == "id_number"
    for dept, role in [("SCJG", Role.publisher), ("SJJ", Role.auditor), ("GA", Role.auditor),
                       ("SCJG", Role.requester), ("GA", Role.leader)]:
        r = client.get(f"{API}/{code}/preview", headers=world.headers(dept, role))
        assert r.status_code == 403, (dept, role)


def test_everyone_signed_in_reads_metadata(client: TestClient, world: World) -> None:
    code = _registered(client, world)
    for role in Role:
        r = client.get(f"{API}/{code}", headers=world.headers("SCJG", role))
        assert r.status_code == 200
        assert r.json()["items"][0]["sensitivity"] == "sensitive_personal"
    assert client.get(f"{API}/{code}").status_code == 401


def test_metadata_edits_are_versioned(client: TestClient, world: World) -> None:
    code = _registered(client, world)
    pub = world.headers("GA", Role.publisher)
    r = client.patch(f"{API}/{code}", headers=pub,
                     json={"name": "人口基础信息库", "update_cycle": "weekly",
                           "item_descriptions": {"name": "户籍登记姓名"}})
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 2 and r.json()["update_cycle"] == "weekly"
    (rev,) = client.get(f"{API}/{code}/revisions", headers=pub).json()
    assert rev["changed_by"] == "ga-publisher"
    assert rev["changes"] == {"name": ["人口基础信息", "人口基础信息库"],
                              "update_cycle": ["daily", "weekly"],
                              "items.name.description": ["", "户籍登记姓名"]}
    same = client.patch(f"{API}/{code}", headers=pub, json={"name": "人口基础信息库"})
    assert same.json()["revision"] == 2  # no change, no new revision


def test_withdrawn_resources_refuse_new_data(client: TestClient, world: World) -> None:
    code = _registered(client, world)
    pub = world.headers("GA", Role.publisher)
    assert client.post(f"{API}/{code}/withdraw", headers=pub).json()["status"] == "withdrawn"
    assert _version(client, world, code, population_rows(1), "append").status_code == 409
    assert client.post(f"{API}/{code}/reactivate", headers=pub).json()["status"] == "active"


def test_unknown_resource_is_404(client: TestClient, world: World) -> None:
    r = client.get(f"{API}/NOPE-1", headers=world.headers("GA", Role.leader))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
