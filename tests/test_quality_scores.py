"""Scores of a resource with known defects, masking of everything auditors see, failed runs
and scheduled runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kernel import events
from kernel.db import utcnow
from kernel.identity import Role
from kernel.settings import get_settings
from quality import jobs
from quality.models import RunStatus
from tests.conftest import World
from tests.test_quality_support import (
    API,
    ITEMS,
    birth,
    legacy_duplicate,
    people,
    published,
    quiet_quality,
    register,
    run_queued,
    set_last_update,
)

__all__ = ["published", "quiet_quality"]  # fixtures used by the tests below

N = 20
NULL_NAMES = (3, 7)
BAD_CHECK = (5, 11)
BIRTH_MISMATCH = 9
BAD_MOBILE = 13


def defective_rows() -> list[dict[str, Any]]:
    rows = people(N)
    for i in NULL_NAMES:
        rows[i]["name"] = None  # an empty CSV field: NULL in the data
    for i in BAD_CHECK:
        good = rows[i]["id_number"]
        rows[i]["id_number"] = good[:17] + ("1" if good[17] == "0" else "0")
    rows[BIRTH_MISMATCH]["birth_date"] = (birth(BIRTH_MISMATCH) + timedelta(days=1)).isoformat()
    rows[BAD_MOBILE]["mobile"] = "1290000013"
    return rows


def _latest_run(client: TestClient, world: World, code: str,
                dept: str = "GA", role: Role = Role.publisher) -> dict[str, Any]:
    """The newest run as the provider's publishers see it (or as ``dept``'s ``role``)."""
    who = world.headers(dept, role)
    runs = client.get(f"{API}/quality/resources/{code}/runs", headers=who).json()
    return dict(client.get(f"{API}/quality/runs/{runs[0]['id']}", headers=who).json())


@pytest.mark.usefixtures("quiet_quality")
def test_known_defects_give_exact_scores(client: TestClient, world: World,
                                         published: list[events.Event]) -> None:
    code = register(client, world, defective_rows())
    legacy_duplicate(code, people(N), keep=18, copy=19)
    now = utcnow()
    set_last_update(code, now - timedelta(hours=36))  # daily cycle: half a cycle overdue
    assert list(run_queued(now).values()) == [RunStatus.succeeded]

    run = _latest_run(client, world, code)
    assert run["trigger"] == "registration" and run["row_count"] == N
    # Completeness: 2 required items x 20 rows = 40 cells, 2 names missing.
    completeness = 100 * (2 * N - len(NULL_NAMES)) / (2 * N)
    # Validity: 9 expectations — 5 declared types, row count and the birth-date range pass;
    # resident IDs 2 of 20 bad check characters; mobiles 1 of 20 malformed.
    validity = 100 * (7 + (1 - len(BAD_CHECK) / N) + (1 - 1 / N)) / 9
    # Uniqueness: rows 18 and 19 share a key: GX counts both rows as unexpected.
    uniqueness = 100 * (1 - 2 / N)
    # Consistency: one birth date disagrees with its ID's.
    consistency = 100 * (1 - 1 / N)
    freshness = 100 * (1 - 12 / 24)
    dims = {"freshness": freshness, "completeness": completeness, "validity": validity,
            "uniqueness": uniqueness, "consistency": consistency}
    expected = {d: round(v, 2) for d, v in dims.items()}
    weights = {"freshness": .2, "completeness": .25, "validity": .25, "uniqueness": .15,
               "consistency": .15}
    expected["overall"] = round(sum(weights[d] * expected[d] for d in weights), 2)
    assert expected == {"freshness": 50.0, "completeness": 95.0, "validity": 98.33,
                        "uniqueness": 90.0, "consistency": 95.0, "overall": 86.08}
    score = run["score"]
    assert {k: score[k] for k in expected} == expected
    failing = {e["rule"]: e for e in run["expectations"] if not e["success"]}
    assert set(failing) == {"not_null:name", "resident_id:id_number", "unique:id_number",
                            "mobile:mobile", "id_birth_date:id_number+birth_date"}
    assert failing["resident_id:id_number"]["unexpected_count"] == 2
    example = failing["resident_id:id_number"]["examples"][0]
    assert example["id_number"].startswith("440305********") and example["birth_date"] == "***"
    # The data bureau sees the same scores, but small counts suppressed and no example rows.
    seen = _latest_run(client, world, code, "SJJ", Role.auditor)
    assert {k: seen["score"][k] for k in expected} == expected
    theirs = {e["rule"]: e for e in seen["expectations"] if not e["success"]}
    assert theirs["resident_id:id_number"]["unexpected_count"] is None
    assert theirs["resident_id:id_number"]["suppressed"] is True
    assert all(e["examples"] == [] for e in seen["expectations"])
    by_dim = seen["score"]["failing"]
    assert [f["rule"] for f in by_dim["uniqueness"]] == ["unique:id_number"]
    assert by_dim["uniqueness"][0]["suppressed"] and "examples" not in by_dim["uniqueness"][0]
    entry = client.get(f"{API}/resources/{code}", headers=world.headers("SCJG", Role.requester))
    assert entry.json()["quality_score"] == expected["overall"]
    finished = [e for e in published if e.type == "quality.run_finished"]
    assert finished[-1].payload["status"] == "succeeded"
    assert finished[-1].actor.kind == "system"


@pytest.mark.usefixtures("quiet_quality")
def test_freshness_uses_the_newest_date_in_the_data(client: TestClient, world: World) -> None:
    items = [*ITEMS, {"name": "record_date", "type": "date", "required": True}]
    rows = [{**p, "record_date": "2025-06-20"} for p in people(4)]
    code = register(client, world, rows, items=items, date_item="record_date",
                    update_cycle="weekly")
    now = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
    set_last_update(code, now - timedelta(hours=1))  # re-uploaded, but the data is old
    run_queued(now)
    score = _latest_run(client, world, code)["score"]
    # As of the end of 20 June (CST) = 20 June 16:00 UTC: 9.5 days old, 2.5 days overdue.
    assert score["freshness"] == round(100 * (1 - 2.5 / 7), 2)
    assert score["details"]["freshness"]["as_of"] == "2025-06-21T00:00:00+08:00"


@pytest.mark.usefixtures("quiet_quality")
def test_irregular_resources_are_not_scored_on_freshness(client: TestClient,
                                                         world: World) -> None:
    code = register(client, world, people(3), update_cycle="irregular")
    run_queued()
    score = _latest_run(client, world, code)["score"]
    assert score["freshness"] is None
    others = {"completeness": .25, "validity": .25, "uniqueness": .15, "consistency": .15}
    expected = sum(w * score[d] for d, w in others.items()) / sum(others.values())
    assert score["overall"] == round(expected, 2)


@pytest.mark.usefixtures("quiet_quality")
def test_auditors_never_receive_raw_personal_values(client: TestClient, world: World) -> None:
    rows = defective_rows()
    code = register(client, world, rows)
    aud = world.headers("SJJ", Role.auditor)
    raw_id = rows[0]["id_number"]
    # The provider's own check may name a raw value; the bureau still never sees it.
    r = client.post(f"{API}/quality/resources/{code}/expectations",
                    headers=world.headers("GA", Role.publisher), json={
        "type": "expect_column_values_to_not_be_in_set",
        "kwargs": {"column": "id_number", "value_set": [raw_id]}})
    assert r.status_code == 201, r.text
    run_queued()
    run = _latest_run(client, world, code)
    bodies = [client.get(f"{API}/quality/{path}", headers=aud) for path in (
        f"resources/{code}/runs", f"runs/{run['id']}", f"resources/{code}/score",
        f"resources/{code}/suite", f"resources/{code}/suites",
        f"resources/{code}/expectations", "ranking/resources", "ranking/departments",
        "below-threshold?threshold=100", f"trends?resource={code}", "notices")]
    report = client.get(f"{API}/quality/resources/{code}/report", headers=aud)
    assert report.status_code == 200 and "<table" in report.text
    assert all(b.status_code == 200 for b in bodies), [b.text for b in bodies]
    seen = "\n".join(json.dumps(b.json(), ensure_ascii=False) for b in bodies) + report.text
    for row in rows:
        for column in ("id_number", "name", "mobile", "birth_date"):
            if row[column]:
                assert row[column] not in seen, (column, row[column])
    assert "440305********" in seen  # the provider's value set, masked
    # The provider's own view has the example rows, masked.
    own = json.dumps(_latest_run(client, world, code), ensure_ascii=False)
    assert "欧阳**" in own and not any(r["id_number"] in own for r in rows)


@pytest.mark.usefixtures("quiet_quality")
def test_a_failed_run_is_recorded_as_failed_not_scored(client: TestClient, world: World,
                                                       published: list[events.Event]) -> None:
    code = register(client, world, people(5))
    for segment in (get_settings().warehouse_dir / code).glob("*.duckdb"):
        segment.unlink()
    assert list(run_queued().values()) == [RunStatus.failed]
    run = _latest_run(client, world, code)
    assert run["status"] == "failed" and "segment missing" in run["error"]
    assert run["score"] is None and run["overall"] is None
    aud = world.headers("SJJ", Role.auditor)
    assert client.get(f"{API}/quality/resources/{code}/score", headers=aud).status_code == 404
    assert client.get(f"{API}/resources/{code}", headers=aud).json()["quality_score"] is None
    finished = [e for e in published if e.type == "quality.run_finished"]
    assert finished[-1].payload["status"] == "failed"


@pytest.mark.usefixtures("quiet_quality")
def test_scheduler_ticks_are_recorded(client: TestClient, world: World) -> None:
    code = register(client, world, people(3))
    run_queued()
    later = utcnow() + timedelta(days=1, minutes=1)
    outcome = jobs.tick(later)
    assert list(outcome.values()) == [RunStatus.succeeded]
    runs = client.get(f"{API}/quality/resources/{code}/runs",
                      headers=world.headers("GA", Role.publisher)).json()
    assert [r["trigger"] for r in runs] == ["schedule", "registration"]
    assert all(r["status"] == "succeeded" for r in runs)
    trend = client.get(f"{API}/quality/trends?resource={code}&days=7",
                       headers=world.headers("SJJ", Role.auditor)).json()
    assert sum(p["runs"] for p in trend) == 2


def test_freshness_decays_linearly_to_zero_one_cycle_late() -> None:
    from catalog.models import UpdateCycle
    from quality.scoring import freshness

    now = datetime(2025, 6, 30, tzinfo=UTC)
    week = timedelta(days=7)
    points = [(now - week / 2, 100.0), (now - week, 100.0), (now - week * 1.25, 75.0),
              (now - week * 2, 0.0), (now - week * 3, 0.0)]
    for as_of, expected in points:
        assert freshness(UpdateCycle.weekly, as_of, now)[0] == expected
    assert freshness(UpdateCycle.irregular, now - week * 10, now)[0] is None
