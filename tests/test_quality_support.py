"""Helpers for the quality tests (no tests here): a people resource whose defects are known
row by row, registration through the API, and synchronous runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from stdnum.cn import ric

from catalog.models import Resource
from kernel import db, events
from kernel.identity import Role
from quality import jobs
from quality.models import RunStatus
from quality.settings import get_quality_settings
from tests.conftest import World
from tests.factories import population_meta, to_csv, upload

API = "/api/v1"

ITEMS: list[dict[str, Any]] = [
    {"name": "id_number", "title": "公民身份号码", "type": "string", "required": True,
     "is_key": True, "sensitivity": "sensitive_personal", "kind": "resident_id"},
    {"name": "name", "title": "姓名", "type": "string", "required": True,
     "sensitivity": "personal", "kind": "person_name"},
    {"name": "birth_date", "title": "出生日期", "type": "date", "sensitivity": "personal",
     "kind": "birth_date"},
    {"name": "mobile", "title": "手机号码", "type": "string", "sensitivity": "personal",
     "kind": "mobile"},
    {"name": "household_size", "title": "户内人数", "type": "integer"},
]
GIVEN = "伟芳娜敏静强磊军洋勇艳杰娟涛明超秀霞平刚"


@pytest.fixture
def quiet_quality(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No background worker or scheduler: the tests run queued runs themselves."""
    monkeypatch.setenv("GOVSHARE_QUALITY_POLL_SECONDS", "0")
    monkeypatch.setenv("GOVSHARE_QUALITY_SCHEDULE_MINUTES", "0")
    get_quality_settings.cache_clear()
    yield
    get_quality_settings.cache_clear()


@pytest.fixture
def published(quiet_quality: None) -> Iterator[list[events.Event]]:
    """Domain events published during the test (the access log receives the same)."""
    seen: list[events.Event] = []

    def capture(_session: Any, event: events.Event) -> None:
        seen.append(event)

    events.subscribe(capture)
    yield seen


def birth(i: int) -> date:
    return date(1960, 1, 1) + timedelta(days=997 * i)


def resident_id(i: int, region: str = "440305") -> str:
    body = f"{region}{birth(i):%Y%m%d}{i % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum wants the full number


def person(i: int) -> dict[str, Any]:
    return {"id_number": resident_id(i), "name": "欧阳" + GIVEN[i % len(GIVEN)] + GIVEN[-1 - i],
            "birth_date": birth(i).isoformat(), "mobile": f"1390000{i:04d}",
            "household_size": 1 + i % 4}


def people(n: int) -> list[dict[str, Any]]:
    return [person(i) for i in range(n)]


def meta(**overrides: Any) -> dict[str, Any]:
    return population_meta(**{"items": ITEMS, **overrides})


def register(client: TestClient, world: World, rows: list[dict[str, Any]],
             dept: str = "GA", **overrides: Any) -> str:
    columns = [i["name"] for i in overrides.get("items", ITEMS)]
    # Several resources of this one shape on purpose: confirmed as different resources.
    r = client.post(f"{API}/resources", **upload(meta(**overrides), to_csv(rows, columns),
                                                 confirm_duplicate=True),
                    headers=world.headers(dept, Role.publisher))
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def legacy_duplicate(code: str, rows: list[dict[str, Any]], *, keep: int, copy: int) -> None:
    """Row ``copy`` gets row ``keep``'s key (and birth date), as in data stored before
    registration enforced keys (such a file is refused today): written into the stored
    segment directly, so that the quality checks still have a duplicate to find."""
    import duckdb

    from kernel.settings import get_settings

    (segment,) = (get_settings().warehouse_dir / code).glob("*.duckdb")
    con = duckdb.connect(str(segment))
    try:
        con.execute("UPDATE data SET id_number = ?, birth_date = ? WHERE id_number = ?",
                    [rows[keep]["id_number"], rows[keep]["birth_date"],
                     rows[copy]["id_number"]])
    finally:
        con.close()


def run_queued(now: datetime | None = None) -> dict[int, RunStatus | None]:
    return jobs.run_pending(now)


def set_last_update(code: str, when: datetime) -> None:
    with db.session_scope() as session:
        resource = session.exec(select(Resource).where(Resource.code == code)).one()
        resource.last_data_update = when
        session.add(resource)
