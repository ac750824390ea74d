"""No raw value leaves through quality (quality.guard), one policy for "the data bureau"
(kernel.policy), and every added or removed check in the signed log.

The attack family of issue 14, replayed as the data bureau's auditor and as another
department's publisher: a regex per digit position under a row condition that selects one
person, value-set membership of one ID, a range on a personal item, and any check on rows
selected by a condition. Each is refused saying why; the provider's publishers may write them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from kernel import db
from kernel.db import utcnow
from kernel.identity import Role
from tests.conftest import World
from tests.test_quality_support import API, people, quiet_quality, register, run_queued
from translog.models import LogEntry

__all__ = ["quiet_quality"]
pytestmark = pytest.mark.usefixtures("quiet_quality")

ROWS = people(8)
TARGET = ROWS[3]


def _attacks() -> list[tuple[str, dict[str, Any]]]:
    by_phone = f'col("mobile")=="{TARGET["mobile"]}"'
    return [
        ("regex per position under a row condition", {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "id_number", "regex": "^.{5}5", "row_condition": by_phone,
                       "condition_parser": "great_expectations"}}),
        ("value-set membership of one ID", {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "id_number", "value_set": [TARGET["id_number"]]}}),
        ("not-in-set of one ID", {
            "type": "expect_column_values_to_not_be_in_set",
            "kwargs": {"column": "id_number", "value_set": [TARGET["id_number"]]}}),
        ("a range on a personal item", {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "birth_date", "min_value": "1970-01-01",
                       "max_value": "1970-12-31"}}),
        ("a regex on a personal item", {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "mobile", "regex": "^1390000000"}}),
        ("a harmless-looking check on rows selected by a condition", {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "household_size", "min_value": 1, "max_value": 2,
                       "row_condition": by_phone, "condition_parser": "great_expectations"}}),
        ("a pair check that reads a personal item", {
            "type": "expect_column_pair_values_to_be_equal",
            "kwargs": {"column_A": "name", "column_B": "mobile"}}),
        ("a row expression naming one person", {
            "type": "expect_rows_to_satisfy",
            "kwargs": {"expression": f"id_number != '{TARGET['id_number']}'"}}),
        ("a row expression over a personal item", {
            "type": "expect_rows_to_satisfy",
            "kwargs": {"expression": "length(name) <= 3 or household_size > 9"}}),
    ]


@pytest.mark.parametrize(("label", "body"), _attacks(), ids=[a[0] for a in _attacks()])
def test_the_attack_family_is_refused_outside_the_provider(client: TestClient, world: World,
                                                           label: str,
                                                           body: dict[str, Any]) -> None:
    code = register(client, world, ROWS)
    url = f"{API}/quality/resources/{code}/expectations"
    bureau = client.post(url, json=body, headers=world.headers("SJJ", Role.auditor))
    assert bureau.status_code == 422, (label, bureau.text)
    problem = bureau.json()
    assert bureau.headers["content-type"] == "application/problem+json"
    assert any(w in problem["detail"] for w in ("personal or sensitive", "select rows")), problem
    other = client.post(url, json=body, headers=world.headers("SCJG", Role.publisher))
    assert other.status_code == 403 and "provider department" in other.json()["detail"]
    own = client.post(url, json=body, headers=world.headers("GA", Role.publisher))
    assert own.status_code == 201, (label, own.text)


def test_vocabulary_checks_on_personal_items_take_parameters_from_the_kind(
        client: TestClient, world: World) -> None:
    code = register(client, world, ROWS)
    url = f"{API}/quality/resources/{code}/expectations"
    aud = world.headers("SJJ", Role.auditor)
    r = client.post(url, headers=aud, json={"type": "expect_column_values_to_match_regex",
                                            "kwargs": {"column": "mobile", "mostly": 0.9}})
    assert r.status_code == 201, r.text
    assert r.json()["kwargs"]["regex"].startswith("^1")  # the mobile pattern, not the caller's
    for ok in ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id_number"}},
               {"type": "expect_column_values_to_be_valid_cn_resident_id",
                "kwargs": {"column": "id_number"}},
               # not personal: any check over all rows
               {"type": "expect_column_values_to_be_between",
                "kwargs": {"column": "household_size", "min_value": 1, "max_value": 3}}):
        assert client.post(url, headers=aud, json=ok).status_code == 201, ok


def test_small_counts_are_suppressed_for_the_bureau(client: TestClient, world: World) -> None:
    code = register(client, world, ROWS)
    aud = world.headers("SJJ", Role.auditor)
    # One household of size 4 among... household sizes cycle 1..4: 2 of 8 rows are 4.
    r = client.post(f"{API}/quality/resources/{code}/expectations", headers=aud, json={
        "type": "expect_column_values_to_be_between", "dimension": "validity",
        "kwargs": {"column": "household_size", "min_value": 1, "max_value": 3}})
    assert r.status_code == 201
    run_queued()
    runs = client.get(f"{API}/quality/resources/{code}/runs", headers=aud).json()
    seen = client.get(f"{API}/quality/runs/{runs[0]['id']}", headers=aud).json()
    mine = next(e for e in seen["expectations"] if e["rule"] == f"custom:{r.json()['id']}")
    assert mine["unexpected_count"] is None and mine["suppressed"] and mine["examples"] == []
    gx = next(x for x in seen["gx_result"]["results"]
              if x["expectation_config"]["meta"]["rule"] == mine["rule"])
    assert "unexpected_count" not in gx["result"] and "partial_unexpected_list" not in gx["result"]
    report = client.get(f"{API}/quality/resources/{code}/report", headers=aud).text
    assert "suppressed" in report


def _log(event_type: str) -> list[LogEntry]:
    with db.session_scope(write=False) as session:
        return list(session.exec(select(LogEntry).where(LogEntry.event_type == event_type)
                                 .order_by(col(LogEntry.seq))))


def test_adding_and_removing_checks_is_in_the_signed_log(client: TestClient,
                                                         world: World) -> None:
    code = register(client, world, ROWS)
    aud = world.headers("SJJ", Role.auditor)
    body = {"type": "expect_column_values_to_be_between",
            "kwargs": {"column": "household_size", "min_value": 1, "max_value": 3}}
    added = client.post(f"{API}/quality/resources/{code}/expectations", headers=aud, json=body)
    assert added.status_code == 201
    check = str(added.json()["id"])
    url = f"{API}/quality/resources/{code}/expectations/{check}"
    # The bureau's check is not the provider's to drop.
    assert client.delete(url, headers=world.headers("GA", Role.publisher)).status_code == 403
    assert client.delete(url, headers=aud).status_code == 204
    me = client.get(f"{API}/me", headers=aud).json()
    [add] = [e for e in _log("quality.check_added") if e.subjects.get("check") == check]
    [rm] = [e for e in _log("quality.check_removed") if e.subjects.get("check") == check]
    for entry in (add, rm):
        assert entry.subjects["resource"] == code
        assert entry.subjects["type"] == "expect_column_values_to_be_between"
        assert entry.actor_user_id == me["id"]


def test_an_auditor_outside_the_bureau_does_not_act_for_it(client: TestClient,
                                                           world: World) -> None:
    code = register(client, world, ROWS)
    outsider = world.headers("SCJG", Role.auditor)  # an auditor, but of a line department
    body = {"type": "expect_column_values_to_be_between",
            "kwargs": {"column": "household_size", "min_value": 1, "max_value": 3}}
    checks = client.post(f"{API}/quality/resources/{code}/expectations", headers=outsider,
                         json=body)
    assert checks.status_code == 403 and "data bureau" in checks.json()["detail"]
    notice = client.post(f"{API}/quality/notices", headers=outsider, json={
        "resource": code, "problem": "请核查", "deadline":
        (utcnow() + timedelta(days=10)).date().isoformat()})
    assert notice.status_code == 403 and "kind 'bureau'" in notice.json()["detail"]
    weights = client.put(f"{API}/quality/weights", headers=outsider, json={
        "freshness": 1, "completeness": 1, "validity": 1, "uniqueness": 1, "consistency": 1,
        "threshold": 70})
    assert weights.status_code == 403
    for path in ("ranking/departments", f"resources/{code}/runs",
                 f"resources/{code}/report"):
        assert client.get(f"{API}/quality/{path}", headers=outsider).status_code == 403, path
    assert client.post(f"{API}/quality/resources/{code}/runs",
                       headers=outsider).status_code == 403
    # The bureau's auditor may do all of it.
    bureau = world.headers("SJJ", Role.auditor)
    assert client.post(f"{API}/quality/resources/{code}/expectations", headers=bureau,
                       json=body).status_code == 201
    assert client.get(f"{API}/quality/ranking/departments", headers=bureau).status_code == 200
