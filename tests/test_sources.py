"""Database tables as sources (catalog.sources), against a real PostgreSQL server.

The department's "own" database is a second database on the server that ``.ci/with-postgres``
starts (``make test`` runs this file there); on the SQLite-only run it is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url
from sqlmodel import select

from catalog import service, sources
from catalog.models import DataSource, SourceStatus
from kernel import db
from kernel.identity import Role
from tests import pg
from tests.conftest import World
from tests.factories import resident_id

pytestmark = pytest.mark.skipif(pg.server_url() is None,
                                reason="needs PostgreSQL: run under .ci/with-postgres "
                                       "(make test does)")

PASSWORD = "s3cret-Pa55"
ITEMS: list[dict[str, Any]] = [
    {"name": "id_number", "title": "公民身份号码", "type": "string", "is_key": True,
     "sensitivity": "sensitive_personal", "kind": "resident_id"},
    {"name": "name", "title": "姓名", "type": "string", "sensitivity": "personal",
     "kind": "person_name"},
    {"name": "amount", "title": "发放金额", "type": "decimal"},
    {"name": "paid_on", "title": "发放日期", "type": "date"},
]


def _meta(**overrides: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "高龄津贴发放明细", "name_en": "Elderly allowance payments",
        "summary": "每月高龄津贴发放记录", "category": "101", "keywords": ["津贴"],
        "items": ITEMS, "sharing_type": "conditional", "sharing_condition": "民政业务核验",
        "update_cycle": "monthly", "security_level": "important", "date_item": None}
    meta.update(overrides)
    return meta


@pytest.fixture
def source_db(postgres: tuple[pg.Databases, str] | None) -> Iterator[dict[str, str]]:
    """A department database with a reader role and an allowance table of 3 rows."""
    assert postgres is not None
    databases, _ = postgres
    name = databases.create()
    admin = databases.url_of(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS reader_{name}")
        conn.execute(f"CREATE ROLE reader_{name} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("CREATE TABLE allowance (id_number text, name text, "
                     "amount numeric(10,2), paid_on date, note text)")
        conn.execute("INSERT INTO allowance VALUES "
                     f"('{resident_id(1)}', '张一', 300.10, '2026-11-01', 'x'), "
                     f"('{resident_id(2)}', '李二', 512.35, '2026-11-01', 'y'), "
                     f"('{resident_id(3)}', '王三', 0.05, '2026-11-02', 'z')")
        conn.execute("CREATE VIEW allowance_v AS SELECT id_number, name, amount, paid_on "
                     "FROM allowance")
        conn.execute(f"GRANT SELECT ON allowance, allowance_v TO reader_{name}")
    url = make_url(admin).set(username=f"reader_{name}", password=PASSWORD)
    yield {"admin": admin, "url": url.render_as_string(hide_password=False),
           # .ci/with-postgres trusts loopback, so a wrong *user* is what is refused there
           "bad_url": url.set(username=f"nobody_{name}", password="wrong"
                              ).render_as_string(hide_password=False)}
    with psycopg.connect(databases.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f"DROP ROLE IF EXISTS reader_{name}")


def _register(client: TestClient, world: World, url: str,
              query: str = "public.allowance_v") -> Any:
    return client.post("/api/v1/resources/from-source",
                       headers=world.headers("GA", Role.publisher),
                       json={"metadata": _meta(), "source": {"url": url, "query": query}})


def _rows(code: str) -> list[tuple[Any, ...]]:
    from catalog import warehouse

    with db.session_scope(write=False) as session:
        segments = service.segments_for(session, service.get_resource(session, code))
    with warehouse.open_data(segments) as con:
        return con.execute("SELECT id_number, amount, paid_on FROM data ORDER BY id_number"
                           ).fetchall()


def _amount_type(code: str) -> str:
    from catalog import warehouse

    with db.session_scope(write=False) as session:
        segments = service.segments_for(session, service.get_resource(session, code))
    with warehouse.open_data(segments) as con:
        return str({r[0]: r[1] for r in con.execute("DESCRIBE data").fetchall()}["amount"])


def _source_id(code: str) -> int:
    with db.session_scope(write=False) as session:
        resource = service.get_resource(session, code)
        row = session.exec(select(DataSource).where(DataSource.resource_id == resource.id)).one()
        return row.id or 0


def test_register_from_a_table_stores_exact_decimals_and_never_shows_credentials(
        client: TestClient, world: World, source_db: dict[str, str]) -> None:
    r = _register(client, world, source_db["url"])
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert r.json()["row_count"] == 3
    assert [Decimal(str(row[1])) for row in _rows(code)] == [
        Decimal("300.10"), Decimal("512.35"), Decimal("0.05")]
    assert _amount_type(code) == "DECIMAL(10,2)"  # the column's numeric(10,2)
    got = client.get(f"/api/v1/resources/{code}/source",
                     headers=world.headers("GA", Role.publisher))
    assert got.status_code == 200
    body = got.json()
    assert body["status"] == "ok" and body["location"].endswith(make_url(
        source_db["url"]).database or "")
    assert PASSWORD not in got.text and "reader_" not in got.text
    versions = client.get(f"/api/v1/resources/{code}/versions",
                          headers=world.headers("GA", Role.publisher)).json()
    assert [v["source_format"] for v in versions] == ["database"]
    with db.session_scope(write=False) as session:  # sealed at rest
        stored = session.exec(select(DataSource)).one()
        assert PASSWORD not in stored.credentials and "reader_" not in stored.credentials
    log = client.get("/api/v1/log/entries", headers=world.headers("SJJ", Role.auditor))
    assert PASSWORD not in log.text


def test_an_unconstrained_numeric_is_measured_on_its_values(
        client: TestClient, world: World, source_db: dict[str, str]) -> None:
    query = "SELECT id_number, name, amount::numeric AS amount, paid_on FROM allowance"
    r = _register(client, world, source_db["url"], query)
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert _amount_type(code) == "DECIMAL(5,2)"  # 512.35: 3 digits before, 2 after
    assert [Decimal(str(row[1])) for row in _rows(code)] == [
        Decimal("300.10"), Decimal("512.35"), Decimal("0.05")]


def test_numbers_come_as_the_servers_text_and_a_nan_is_refused_naming_the_column(
        client: TestClient, world: World, source_db: dict[str, str]) -> None:
    # The pull asks PostgreSQL for each numeric column's text (any name, Chinese too)...
    numbers = sources._Numbers(["id", "金额", "n"], frozenset({"金额"}), {"金额": (10, 2)})
    assert sources._numbers_as_text("SELECT * FROM t", numbers) == (
        'SELECT q."id", q."金额"::text AS "金额", q."n" FROM (SELECT * FROM t) AS q')
    # ... but not when two columns share a name (the rewrite could not tell them apart).
    twice = sources._Numbers(["a", "a"], frozenset({"a"}), {})
    assert sources._numbers_as_text("SELECT a, a FROM t", twice) == "SELECT a, a FROM t"
    with psycopg.connect(source_db["admin"], autocommit=True) as conn:
        conn.execute("UPDATE allowance SET amount = 'NaN' WHERE name = '李二'")
    r = _register(client, world, source_db["url"])
    assert r.status_code == 422, r.text
    assert "amount" in r.json()["detail"] and r.json()["errors"][0]["column"] == "amount"


def test_unchanged_source_is_no_new_version_and_a_changed_one_is(
        client: TestClient, world: World, source_db: dict[str, str]) -> None:
    code = _register(client, world, source_db["url"]).json()["code"]
    source_id = _source_id(code)
    assert sources.pull(source_id) is SourceStatus.unchanged
    with psycopg.connect(source_db["admin"], autocommit=True) as conn:
        conn.execute(f"INSERT INTO allowance VALUES ('{resident_id(4)}', '赵四', 99.99, "
                     "'2026-11-03', 'w')")
    assert sources.pull(source_id) is SourceStatus.ok
    versions = client.get(f"/api/v1/resources/{code}/versions",
                          headers=world.headers("GA", Role.publisher)).json()
    assert sorted(v["version"] for v in versions) == [1, 2]
    assert max(versions, key=lambda v: v["version"])["row_count"] == 4
    with db.session_scope(write=False) as session:
        source = session.get(DataSource, source_id)
        assert source is not None and source.next_pull_at is not None
        assert source.last_success_at is not None
        # monthly: next due one cycle after the last success
        assert source.next_pull_at - source.last_success_at == timedelta(days=31)


def test_a_due_source_is_pulled_on_its_cycle_by_the_worker(
        client: TestClient, world: World, source_db: dict[str, str]) -> None:
    code = _register(client, world, source_db["url"]).json()["code"]
    source_id = _source_id(code)
    assert sources.due() == []
    r = client.post(f"/api/v1/resources/{code}/source/pull",
                    headers=world.headers("GA", Role.publisher))
    assert r.status_code == 202
    assert sources.due() == [source_id]
    with psycopg.connect(source_db["admin"], autocommit=True) as conn:
        conn.execute("UPDATE allowance SET amount = amount + 1")
    from govshare import worker

    worker.drain()
    with db.session_scope(write=False) as session:
        source = session.get(DataSource, source_id)
        assert source is not None and source.status is SourceStatus.ok
    assert sources.due() == []
    assert _rows(code)[0][1] == Decimal("301.10")


def test_failures_are_reported_scrubbed_and_store_nothing(
        client: TestClient, world: World, source_db: dict[str, str]) -> None:
    code = _register(client, world, source_db["url"]).json()["code"]
    source_id = _source_id(code)
    # wrong credentials
    put = client.put(f"/api/v1/resources/{code}/source",
                     headers=world.headers("GA", Role.publisher),
                     json={"url": source_db["bad_url"], "query": "public.allowance_v"})
    assert put.status_code == 200
    assert sources.pull(source_id) is SourceStatus.failed
    got = client.get(f"/api/v1/resources/{code}/source",
                     headers=world.headers("GA", Role.publisher)).json()
    assert got["status"] == "failed" and got["failures"] == 1
    assert "***" in got["last_error"] and "nobody_" not in got["last_error"]
    # a column dropped at the source
    client.put(f"/api/v1/resources/{code}/source", headers=world.headers("GA", Role.publisher),
               json={"url": source_db["url"], "query": "SELECT id_number, name, paid_on "
                                                      "FROM public.allowance"})
    assert sources.pull(source_id) is SourceStatus.failed
    got = client.get(f"/api/v1/resources/{code}/source",
                     headers=world.headers("GA", Role.publisher)).json()
    assert "amount" in got["last_error"]
    # the server is not there at all
    down = make_url(source_db["url"]).set(port=1).render_as_string(hide_password=False)
    client.put(f"/api/v1/resources/{code}/source", headers=world.headers("GA", Role.publisher),
               json={"url": down, "query": "public.allowance_v"})
    assert sources.pull(source_id) is SourceStatus.failed
    versions = client.get(f"/api/v1/resources/{code}/versions",
                          headers=world.headers("GA", Role.publisher)).json()
    assert len(versions) == 1  # nothing half-written
    log = client.get("/api/v1/log/entries", headers=world.headers("SJJ", Role.auditor)).text
    assert "resource.source_failed" in log and PASSWORD not in log and "nobody_" not in log


def test_a_refused_first_pull_registers_nothing(
        client: TestClient, world: World, source_db: dict[str, str]) -> None:
    bad = _register(client, world, source_db["bad_url"])
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/problem+json")
    assert "nobody_" not in bad.text and PASSWORD not in bad.text
    missing = _register(client, world, source_db["url"], query="public.allowance")
    assert missing.status_code == 422 and "note" in missing.text  # an undeclared column
    for query in ("DELETE FROM allowance", "SELECT 1; DROP TABLE allowance"):
        assert _register(client, world, source_db["url"], query=query).status_code == 422
    listed = client.get("/api/v1/resources", headers=world.headers("GA", Role.publisher))
    assert listed.json()["total"] == 0
    with psycopg.connect(source_db["admin"]) as conn:
        assert conn.execute("SELECT count(*) FROM allowance").fetchone() == (3,)


@pytest.mark.parametrize(("dept", "role"), [("SCJG", Role.publisher), ("GA", Role.requester),
                                            ("SJJ", Role.auditor)])
def test_only_the_providers_publishers_see_or_change_the_source(
        client: TestClient, world: World, source_db: dict[str, str], dept: str,
        role: Role) -> None:
    code = _register(client, world, source_db["url"]).json()["code"]
    headers = world.headers(dept, role)
    assert client.get(f"/api/v1/resources/{code}/source", headers=headers).status_code == 403
    assert client.post(f"/api/v1/resources/{code}/source/pull",
                       headers=headers).status_code == 403
    assert client.put(f"/api/v1/resources/{code}/source", headers=headers,
                      json={"url": source_db["url"], "query": "x"}).status_code == 403
