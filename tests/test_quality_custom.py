"""Custom expectations: validated by GX before they are saved, versioned into the suite, and
used by the next run."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from catalog.models import Resource
from kernel import db
from kernel.identity import Role
from quality.models import QualitySuite
from tests.conftest import World
from tests.factories import to_csv
from tests.test_quality_support import API, ITEMS, people, quiet_quality, register, run_queued

__all__ = ["quiet_quality"]
pytestmark = pytest.mark.usefixtures("quiet_quality")


def _add(client: TestClient, world: World, code: str, body: dict[str, Any],
         dept: str = "SJJ", role: Role = Role.auditor) -> Any:
    return client.post(f"{API}/quality/resources/{code}/expectations", json=body,
                       headers=world.headers(dept, role))


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "expect_column_values_to_be_purple", "kwargs": {"column": "name"}}, "type"),
    ({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "household_size"}},
     "kwargs"),
    ({"type": "expect_column_values_to_be_between",
      "kwargs": {"column": "household_size", "min_value": 1, "mostly": 2}}, "kwargs"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}}, "kwargs"),
    ({"type": "expect_column_values_to_not_be_null",
      "kwargs": {"column": "name", "result_format": "COMPLETE"}}, "kwargs.result_format"),
    ({"type": "unexpected_rows_expectation",
      "kwargs": {"unexpected_rows_query": "SELECT * FROM read_csv('/etc/passwd')"}}, "type"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"},
      "dimension": "beauty"}, "dimension"),
])
def test_invalid_expectations_are_refused_before_saving(client: TestClient, world: World,
                                                        body: dict[str, Any], field: str) -> None:
    code = register(client, world, people(3))
    r = _add(client, world, code, body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == field
    listed = client.get(f"{API}/quality/resources/{code}/expectations",
                        headers=world.headers("SJJ", Role.auditor)).json()
    assert listed == []


def test_only_auditors_and_the_providers_publishers_add_expectations(client: TestClient,
                                                                     world: World) -> None:
    code = register(client, world, people(3))
    body = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "mobile"}}
    assert _add(client, world, code, body, "SCJG", Role.publisher).status_code == 403
    assert _add(client, world, code, body, "GA", Role.requester).status_code == 403
    assert _add(client, world, code, body, "GA", Role.publisher).status_code == 201


def test_a_custom_expectation_is_used_by_the_next_run(client: TestClient, world: World) -> None:
    code = register(client, world, people(8))
    run_queued()
    aud = world.headers("SJJ", Role.auditor)
    before = client.get(f"{API}/quality/resources/{code}/suite", headers=aud).json()
    r = _add(client, world, code, {
        "type": "expect_column_values_to_be_between", "dimension": "validity",
        "kwargs": {"column": "household_size", "min_value": 1, "max_value": 2},
        "note": "户内人数超过2人的需核实"})
    assert r.status_code == 201, r.text
    custom = r.json()
    assert custom["added_by"] == "sjj-auditor" and custom["kwargs"]["max_value"] == 2
    after = client.get(f"{API}/quality/resources/{code}/suite", headers=aud).json()
    assert after["version"] == before["version"] + 1
    assert client.post(f"{API}/quality/resources/{code}/runs", headers=aud).status_code == 202
    run_queued()
    runs = client.get(f"{API}/quality/resources/{code}/runs", headers=aud).json()
    detail = client.get(f"{API}/quality/runs/{runs[0]['id']}", headers=aud).json()
    assert detail["trigger"] == "on_demand" and detail["suite_version"] == after["version"]
    mine = next(e for e in detail["expectations"] if e["rule"] == f"custom:{custom['id']}")
    # household sizes cycle 1, 2, 3, 4: half of them are above 2 — 4 rows, a small count the
    # bureau does not see; the provider's publishers do.
    assert (mine["success"], mine["unexpected_count"], mine["source"]) == (False, None, "custom")
    pub = world.headers("GA", Role.publisher)
    theirs = client.get(f"{API}/quality/runs/{runs[0]['id']}", headers=pub).json()
    mine = next(e for e in theirs["expectations"] if e["rule"] == f"custom:{custom['id']}")
    assert (mine["success"], mine["unexpected_count"]) == (False, 4)
    previous = client.get(f"{API}/quality/runs/{runs[1]['id']}", headers=aud).json()
    assert detail["score"]["validity"] < previous["score"]["validity"]

    # The bureau's own expectation is not the department's to drop.
    url = f"{API}/quality/resources/{code}/expectations/{custom['id']}"
    assert client.delete(url, headers=world.headers("GA", Role.publisher)).status_code == 403
    assert client.delete(url, headers=aud).status_code == 204
    versions = client.get(f"{API}/quality/resources/{code}/suites", headers=aud).json()
    assert [v["version"] for v in versions] == [3, 2, 1]


def test_an_expectation_gx_cannot_evaluate_fails_without_leaking_values(
        client: TestClient, world: World) -> None:
    rows = people(3)
    code = register(client, world, rows)
    # DuckDB must cast the names to dates to compare them, and quotes the name it fails on.
    r = _add(client, world, code, {
        "type": "expect_column_pair_values_a_to_be_greater_than_b",
        "kwargs": {"column_A": "birth_date", "column_B": "name"}}, "GA", Role.publisher)
    assert r.status_code == 201, r.text
    run_queued()
    aud = world.headers("SJJ", Role.auditor)
    runs = client.get(f"{API}/quality/resources/{code}/runs", headers=aud).json()
    assert runs[0]["status"] == "succeeded"  # a custom expectation's error is its own
    detail = client.get(f"{API}/quality/runs/{runs[0]['id']}", headers=aud)
    mine = next(e for e in detail.json()["expectations"] if e["source"] == "custom")
    assert mine["success"] is False and mine["error"]
    assert detail.json()["score"]["validity"] < 100
    assert not any(row["name"] in detail.text for row in rows)


def _stored_suites(code: str) -> list[int]:
    with db.session_scope(write=False) as session:
        resource = session.exec(select(Resource).where(Resource.code == code)).one()
        return [s.version for s in session.exec(select(QualitySuite).where(
            QualitySuite.resource_id == resource.id))]


def test_reading_the_suite_never_stores_one(client: TestClient, world: World) -> None:
    code = register(client, world, people(8))
    run_queued()
    aud, pub = world.headers("SJJ", Role.auditor), world.headers("GA", Role.publisher)
    stored = client.get(f"{API}/quality/resources/{code}/suite", headers=aud).json()
    assert stored["stored"] is True and _stored_suites(code) == [stored["version"]]
    # A new data version moves the row-count baseline: the generated suite changes.
    more = to_csv(people(12)[8:], [i["name"] for i in ITEMS])
    r = client.post(f"{API}/resources/{code}/versions", data={"mode": "append"},
                    files={"file": ("v2.csv", more, "text/csv")}, headers=pub)
    assert r.status_code == 201, r.text
    seen = [client.get(f"{API}/quality/resources/{code}/suite", headers=who).json()
            for who in (aud, pub)]
    assert _stored_suites(code) == [stored["version"]]  # no write on GET
    for pending in seen:
        assert (pending["stored"], pending["version"], pending["created_at"]) == (
            False, None, None)
        assert pending["fingerprint"] != stored["fingerprint"]
    assert seen[0] == seen[1]
    run_queued()  # the run of the new version stores the pending suite and records it
    after = client.get(f"{API}/quality/resources/{code}/suite", headers=aud).json()
    assert _stored_suites(code) == [stored["version"], stored["version"] + 1]
    assert (after["stored"], after["version"], after["fingerprint"]) == (
        True, stored["version"] + 1, seen[0]["fingerprint"])
    runs = client.get(f"{API}/quality/resources/{code}/runs", headers=aud).json()
    assert runs[0]["suite_version"] == after["version"]
