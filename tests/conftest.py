"""Shared fixtures: every test gets its own data directory, metadata store and app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from govshare import db, events, identity
from govshare.identity import AdminLevel, DepartmentKind, Role
from govshare.settings import get_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("GOVSHARE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GOVSHARE_KEY_PASSPHRASE", "test-passphrase")
    get_settings.cache_clear()
    db.reset_engines()
    yield tmp_path / "data"
    db.reset_engines()
    events.unsubscribe_all()
    get_settings.cache_clear()


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    from govshare.app import create_app

    with TestClient(create_app()) as c:
        yield c


@dataclass
class World:
    """Two line departments and the data bureau, with one user per role in each."""

    tokens: dict[tuple[str, Role], str]

    def headers(self, dept: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(dept, role)]}"}


DEPARTMENTS = [
    ("GA", "市公安局", "Public Security Bureau", DepartmentKind.line),
    ("SCJG", "市市场监督管理局", "Market Regulation Administration", DepartmentKind.line),
    ("SJJ", "市政务服务和数据管理局", "Data Bureau", DepartmentKind.bureau),
]


@pytest.fixture
def world(client: TestClient) -> World:
    tokens: dict[tuple[str, Role], str] = {}
    with db.session_scope() as session:
        for code, zh, en, kind in DEPARTMENTS:
            identity.create_department(session, code=code, name_zh=zh, name_en=en, kind=kind,
                                       level=AdminLevel.municipal)
            for role in Role:
                user = identity.create_user(session, username=f"{code.lower()}-{role.value}",
                                            display_name=f"{code} {role.value}", department=code,
                                            roles=[role])
                _, plain = identity.issue_token(session, user, name="test", days=1)
                tokens[(code, role)] = plain
    return World(tokens)
