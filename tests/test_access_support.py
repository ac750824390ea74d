"""Fixtures and helpers for the access-pipeline tests (no tests of its own).

The app here is built from the real parts — problem+json handlers, the access and log
routers, the access-log subscriber, migrations — but without the other contexts' routers, so
these tests exercise the pipeline alone. Resources are registered through
``catalog.service``, as the catalog API does.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select
from stdnum.cn import ric

from catalog import service as catalog_service
from catalog.schemas import ResourceIn
from govshare.migrate import upgrade
from kernel import db
from kernel.auth import principal_of
from kernel.identity import DepartmentKind, Role
from kernel.problems import install_handlers
from tests.conftest import DrainingClient
from tests.world import create_departments
from translog import api as log_api
from translog import service as log_service
from translog.models import LogEntry

API = "/api/v1"
DEPARTMENTS = [
    ("GA", "市公安局", "Public Security Bureau", DepartmentKind.line),
    ("SCJG", "市市场监督管理局", "Market Regulation Administration", DepartmentKind.line),
    ("RS", "市人力资源和社会保障局", "Human Resources and Social Security", DepartmentKind.line),
    ("SJJ", "市政务服务和数据管理局", "Data Bureau", DepartmentKind.bureau),
]


def build_app() -> FastAPI:
    from access.api import routers

    app = FastAPI()
    install_handlers(app)
    for router in [*routers, log_api.router]:
        app.include_router(router, prefix=API)
    app.include_router(log_api.well_known)
    return app


@dataclass
class AccessWorld:
    client: TestClient
    tokens: dict[tuple[str, Role], str]

    def h(self, dept: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(dept, role)]}"}

    def post(self, path: str, dept: str, role: Role, **kw: Any) -> Any:
        return self.client.post(API + path, headers=self.h(dept, role), **kw)

    def get(self, path: str, dept: str, role: Role, **kw: Any) -> Any:
        return self.client.get(API + path, headers=self.h(dept, role), **kw)


@pytest.fixture(name="aw")
def access_world(data_dir: Path) -> Iterator[AccessWorld]:
    """Departments GA, SCJG, RS (line) and SJJ (the data bureau), one user per role each."""
    upgrade()
    log_service.subscribe()
    tokens = create_departments(DEPARTMENTS)
    with DrainingClient(build_app()) as client:
        yield AccessWorld(client, tokens)


# --- resources --------------------------------------------------------------------------------

PEOPLE_ITEMS: list[dict[str, Any]] = [
    {"name": "id_number", "type": "string", "sensitivity": "sensitive_personal",
     "kind": "resident_id", "is_key": True},
    {"name": "name", "type": "string", "sensitivity": "personal", "kind": "person_name"},
    {"name": "mobile", "type": "string", "sensitivity": "personal", "kind": "mobile"},
    {"name": "birth_date", "type": "date", "sensitivity": "personal", "kind": "birth_date"},
    {"name": "address", "type": "string", "sensitivity": "personal", "kind": "address"},
    {"name": "income", "type": "decimal", "sensitivity": "personal", "kind": "amount"},
    {"name": "district", "type": "string"},
    {"name": "household_size", "type": "integer"},
]
DISTRICTS = ["福田区", "罗湖区", "南山区", "宝安区"]


def resident_id(n: int) -> str:
    body = f"440304{1950 + n % 50:04d}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body)


def people_rows(n: int = 40) -> list[dict[str, Any]]:
    return [{"id_number": resident_id(i), "name": f"张{'三四五六'[i % 4]}{i}",
             "mobile": f"138{i:08d}",
             "birth_date": f"{1950 + i % 50:04d}-{1 + i % 12:02d}-{1 + i % 28:02d}",
             "address": f"广东省深圳市{DISTRICTS[i % 4]}深南大道{i}号",
             "income": round(1234.5 * (i + 1), 2), "district": DISTRICTS[i % 4],
             "household_size": 1 + i % 5} for i in range(n)]


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def register(tmp: Path, *, provider: str = "GA", sharing_type: str = "conditional",
             items: list[dict[str, Any]] | None = None, rows: list[dict[str, Any]] | None = None,
             name: str = "人口基础信息", method: str = "file") -> str:
    """Register a resource through the catalog service; returns its code. Tests register
    several resources of this one shape on purpose: confirmed as different resources."""
    meta = ResourceIn.model_validate({
        "name": name, "category": "101", "items": items or PEOPLE_ITEMS,
        "sharing_type": sharing_type,
        "sharing_condition": "用于政务服务" if sharing_type == "conditional" else "",
        "update_cycle": "daily", "sharing_method": method,
        "security_level": "core" if sharing_type == "not_shareable" else "general"})
    path = tmp / f"{name}-{provider}-{sharing_type}.csv"
    path.write_bytes(to_csv(rows or people_rows()))
    with db.session_scope() as session:
        who = principal_of(session, f"{provider.lower()}-publisher")
        resource = catalog_service.register_resource(session, who, meta, path,
                                                     filename="people.csv",
                                                     confirm_duplicate=True)
        return resource.code


def add_version(tmp: Path, code: str, rows: list[dict[str, Any]], provider: str = "GA") -> None:
    from catalog.models import VersionMode

    path = tmp / "v.csv"
    path.write_bytes(to_csv(rows))
    with db.session_scope() as session:
        who = principal_of(session, f"{provider.lower()}-publisher")
        catalog_service.add_version(session, who, code, path, filename="v.csv",
                                    mode=VersionMode.append)


def application(code: str, items: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resource": code, "purpose": "核验办事群众身份",
                            "legal_basis": "《政务数据共享条例》第十条",
                            "items": items or ["id_number", "name", "district"],
                            "period_end": (date.today() + timedelta(days=90)).isoformat()}
    body.update(kw)
    return body


def file_app(aw: AccessWorld, code: str, dept: str = "SCJG", **kw: Any) -> dict[str, Any]:
    r = aw.post("/applications", dept, Role.requester, json=application(code, **kw))
    assert r.status_code == 201, r.text
    return dict(r.json())


def log_types(subject: str, value: str) -> list[str]:
    """Event types in the signed log whose subjects include ``subject=value``, in order."""
    with db.session_scope(write=False) as session:
        rows = session.exec(select(LogEntry).order_by(LogEntry.seq)).all()  # type: ignore[arg-type]
        return [r.event_type for r in rows if r.subjects.get(subject) == value]
