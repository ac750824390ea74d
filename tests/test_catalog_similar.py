"""One source for each piece of data: a registration close to an active resource of the same
department is refused unless confirmed (and the confirmation is logged); other departments'
similar resources are shown, never blocking (catalog/similar.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from catalog import service, similar
from catalog.schemas import ResourceIn
from catalog.search import feed
from govshare.cli import app
from kernel.auth import principal_of
from kernel.db import session_scope
from kernel.identity import Role
from tests import pg
from tests.conftest import World
from tests.factories import POPULATION_ITEMS, population_meta, population_rows, to_csv, upload
from tests.test_catalog_register_sheet import register_rows, workbook

API = "/api/v1/resources"
BUSINESS_ITEMS: list[dict[str, Any]] = [
    {"name": "uscc", "title": "统一社会信用代码", "type": "string", "is_key": True},
    {"name": "company", "title": "企业名称", "type": "string"},
    {"name": "registered_on", "title": "成立日期", "type": "date"},
]


def _register(client: TestClient, world: World, meta: dict[str, Any], dept: str = "GA",
              confirm: bool = False, **headers: str) -> Any:
    data = to_csv(population_rows(3), [i["name"] or i["title"] for i in meta["items"]])
    return client.post(API, **upload(meta, data, confirm_duplicate=confirm),
                       headers={**world.headers(dept, Role.publisher), **headers})


def _similar(client: TestClient, world: World, draft: dict[str, Any],
             dept: str = "GA") -> dict[str, Any]:
    r = client.post(f"{API}/similar", json=draft, headers=world.headers(dept, Role.publisher))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_the_measure_on_chinese_names() -> None:
    def alike(a: str, b: str) -> float:
        return round(similar.name_similarity(similar.bigrams(a), similar.bigrams(b)), 2)

    assert alike("人口基础信息", "人口基础信息表") == 1.0  # generic endings are not the subject
    assert alike("人口基础信息", "人口基本信息") == 0.67
    assert alike("人口基础信息", "法人基础信息") == 0.33  # another subject
    assert alike("失业登记信息", "企业登记信息") == 0.67
    assert alike("信息", "信息表") == 1.0  # nothing but endings: compared as they are
    # full-width and spaces fold: the same name
    assert similar.name_similarity(similar.bigrams("人口 基础信息（２０２５）"),
                                   similar.bigrams("人口基础信息(2025)")) == 1.0
    matched = similar.match_items([("xing_ming", "姓名"), ("", "身份证号")],
                                  [("姓名", ""), ("id", "身份证号"), ("x", "地址")])
    assert [(m.item, m.existing, m.by) for m in matched] == [
        ("姓名", "姓名", "title"), ("身份证号", "身份证号", "title")]


def test_a_registers_rows_compared_with_each_other() -> None:
    items = [("id_number", "公民身份号码"), ("", "姓名")]
    drafts = [similar.Draft(1, "人口基础信息", items, new=False),  # updates
              similar.Draft(1, "人口基础信息表", items, new=True),
              similar.Draft(2, "人口基础信息", items, new=True),  # another department
              similar.Draft(1, "人口基础信息", items, new=True),
              similar.Draft(1, "人口基础信息", items, new=False),
              similar.Draft(1, "法人基础信息", [("uscc", "统一社会信用代码")], new=True)]
    found = {j: [k for k, _ in close] for j, close in similar.within(drafts).items()}
    # a new one with the earlier new ones and every update; two updates never
    assert found == {1: [0, 4], 3: [0, 1, 4]}


def test_same_department_refused_then_confirmed_and_logged(client: TestClient,
                                                           world: World) -> None:
    first = _register(client, world, population_meta())
    assert first.status_code == 201, first.text
    code = first.json()["code"]
    # 人口基础信息表: one character more, the same items.
    draft = population_meta(name="人口基础信息表", items=POPULATION_ITEMS[:3])
    found = _similar(client, world, draft)
    (match,) = found["same_department"]
    assert match["code"] == code and match["score"] >= similar.BLOCK_AT
    assert match["name_similarity"] == 1.0
    assert [m["existing"] for m in match["matched_items"]] == ["公民身份号码", "姓名", "出生日期"]
    assert found["other_departments"] == []

    refused = _register(client, world, draft)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"].endswith("/similar-resource-exists")
    assert code in body["detail"] and "人口基础信息" in body["detail"]
    assert body["similar"]["same_department"][0]["code"] == code

    zh = _register(client, world, draft, **{"Accept-Language": "zh-CN,zh;q=0.9"})
    assert zh.status_code == 409
    assert zh.json()["detail"].startswith(f"本部门已有相近的在用资源：{code}「人口基础信息」")
    assert zh.json()["title"] == "已有相近的资源"

    done = _register(client, world, draft, confirm=True)
    assert done.status_code == 201, done.text
    entries = client.get("/api/v1/log/entries", params={"type": "resource.registered"},
                         headers=world.headers("SJJ", Role.auditor)).json()
    subjects = [e["entry"]["subjects"] for e in entries]
    assert subjects[0].get("similar_confirmed") is None  # the first one had nothing to confirm
    assert subjects[-1]["resource"] == done.json()["code"]
    assert subjects[-1]["similar_confirmed"] == code


def test_other_department_shown_not_blocking_and_unrelated_not_flagged(
        client: TestClient, world: World) -> None:
    ga = _register(client, world, population_meta()).json()["code"]
    # The market regulator registers population data too: shown GA's, not refused.
    found = _similar(client, world, population_meta(), dept="SCJG")
    assert found["same_department"] == []
    (other,) = found["other_departments"]
    assert other["code"] == ga and other["provider"]["code"] == "GA"
    assert set(other) >= {"name", "matched_items"} and "rows" not in json.dumps(other)
    assert _register(client, world, population_meta(), dept="SCJG").status_code == 201
    # Business registrations of GA itself: nothing in common with the population resource.
    business = population_meta(name="企业登记信息", category="102", items=BUSINESS_ITEMS,
                               name_en="", keywords=[])
    assert _similar(client, world, business) == {
        "same_department": [], "other_departments": [], "block_at": 0.8, "show_at": 0.6}


def test_same_items_under_another_name_flagged(client: TestClient, world: World) -> None:
    code = _register(client, world, population_meta()).json()["code"]
    # Titles only (field names derived), in another order, under another name.
    items = [{"name": i["name"], "title": i["title"], "type": i["type"]}
             for i in reversed(POPULATION_ITEMS)]
    r = _register(client, world, population_meta(name="户籍居民名册", items=items))
    assert r.status_code == 409, r.text
    (match,) = r.json()["similar"]["same_department"]
    assert match["code"] == code and match["item_overlap"] == 1.0
    assert match["name_similarity"] < 0.3


def test_withdrawn_resources_do_not_count(client: TestClient, world: World) -> None:
    code = _register(client, world, population_meta()).json()["code"]
    headers = world.headers("GA", Role.publisher)
    assert client.post(f"{API}/{code}/withdraw", headers=headers).status_code == 200
    again = _register(client, world, population_meta())
    assert again.status_code == 201

    # Reactivating the withdrawn one would make two similar active resources: checked as a
    # registration is, refused unless confirmed, and the confirmation logged.
    refused = client.post(f"{API}/{code}/reactivate",
                          headers={**headers, "Accept-Language": "zh-CN"})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["type"].endswith("/similar-resource-exists")
    assert body["detail"].startswith(f"重新启用 {code} 会使本部门有两个相近的在用资源")
    assert body["similar"]["same_department"][0]["code"] == again.json()["code"]
    assert client.get(f"{API}/{code}", headers=headers).json()["status"] == "withdrawn"
    done = client.post(f"{API}/{code}/reactivate", params={"confirm_duplicate": True},
                       headers=headers)
    assert done.status_code == 200 and done.json()["status"] == "active", done.text
    (entry,) = client.get("/api/v1/log/entries", params={"type": "resource.active"},
                          headers=world.headers("SJJ", Role.auditor)).json()
    assert entry["entry"]["subjects"]["similar_confirmed"] == again.json()["code"]


def test_a_change_the_index_has_not_applied_is_caught(client: TestClient, world: World) -> None:
    feed.sync()  # the index is built and current; then no writer applies the feed
    feed.stop()
    code = _register(client, world, population_meta()).json()["code"]
    with session_scope(write=False) as session:
        assert code in (feed.unindexed_codes(session) or set())
    assert _register(client, world, population_meta()).status_code == 409


def test_catalog_register_import(client: TestClient, world: World, tmp_path: Path) -> None:
    path = tmp_path / "目录.xlsx"
    path.write_bytes(workbook(register_rows(2)))
    runner = CliRunner()
    args = ["resource", "import-catalog", str(path), "--publisher", "ga-publisher", "--json"]
    assert runner.invoke(app, args).exit_code == 0
    # The same register again without its codes: two new resources like the two just made.
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    out = again.output.replace("\n", "")
    assert "2 new resource(s) of the catalog register are similar" in out
    assert "440300-GA-101-0000" in out and "row=3, column=信息资源名称 (B)" in out
    done = runner.invoke(app, [*args, "--confirm-duplicate"])
    assert done.exit_code == 0, done.output
    assert [a["action"] for a in json.loads(done.stdout)] == ["created", "created"]
    entries = client.get("/api/v1/log/entries", params={"type": "resource.catalogued"},
                         headers=world.headers("SJJ", Role.auditor)).json()
    assert [bool(e["entry"]["subjects"].get("similar_confirmed")) for e in entries] == [
        False, False, True, True]


def test_the_web_form(client: TestClient, world: World) -> None:
    from tests.test_web import _register_form
    from tests.web_support import page_csrf, sign_in

    code = _register(client, world, population_meta()).json()["code"]
    sign_in(client, world.tokens[("GA", Role.publisher)])
    page = client.get("/publish/new")
    assert 'id="similar"' in page.text and 'name="confirm_duplicate"' in page.text
    assert '/static/similar.js' in page.text and client.get("/static/similar.js").is_success
    # What the page's script asks as the form is filled in (with the session's CSRF token).
    csrf = page_csrf(client, "/publish/new")
    found = client.post(f"{API}/similar", json={"name": "人口基础信息表", "items": []},
                        headers={"X-CSRF-Token": csrf})
    assert [m["code"] for m in found.json()["same_department"]] == [code]
    form = _register_form("again") | {"name": "人口基础信息表", "csrf_token": csrf}
    files = {"file": ("people.csv", to_csv(population_rows(3)), "text/csv")}
    refused = client.post("/publish/new", data=form, files=files,
                          headers={"Accept": "application/json"})
    assert refused.status_code == 409  # shown in the form by upload.js, in the page's language
    assert refused.json()["detail"].startswith(f"本部门已有相近的在用资源：{code}")
    assert refused.json()["similar"]["same_department"][0]["code"] == code
    done = client.post("/publish/new", data=form | {"confirm_duplicate": "true"}, files=files,
                       headers={"Accept": "application/json"})
    assert done.status_code == 200, done.text
    # The catalog register's upload: the same two resources again, then confirmed.
    register = {"file": ("目录.xlsx", workbook(register_rows(2)), "application/octet-stream")}
    csrf = page_csrf(client, "/publish")
    assert client.post("/publish/import-catalog", data={"csrf_token": csrf},
                       files=register).status_code == 200
    again = client.post("/publish/import-catalog", data={"csrf_token": csrf}, files=register)
    assert again.status_code == 409 and "目录表中有 2 个新资源与本部门在用的资源相近" in again.text
    assert client.post("/publish/import-catalog", files=register,
                       data={"csrf_token": csrf, "confirm_duplicate": "true"}).status_code == 200


def test_withdraw_and_reactivate_from_the_resource_page(client: TestClient,
                                                       world: World) -> None:
    from tests.web_support import page_csrf, sign_in

    code = _register(client, world, population_meta()).json()["code"]
    sign_in(client, world.tokens[("SCJG", Role.publisher)])  # another department's publisher
    page = client.get(f"/catalog/{code}")
    assert 'id="withdraw"' not in page.text
    csrf = page_csrf(client, f"/catalog/{code}")
    other = client.post(f"/catalog/{code}/status", data={"csrf_token": csrf,
                                                         "status": "withdrawn"})
    assert other.status_code == 403
    assert client.post(f"/catalog/{code}/status", data={"status": "withdrawn"}).status_code \
        == 403  # no CSRF token: refused before anything else
    sign_in(client, world.tokens[("GA", Role.publisher)])
    csrf = page_csrf(client, f"/catalog/{code}")
    done = client.post(f"/catalog/{code}/status", data={"csrf_token": csrf,
                                                        "status": "withdrawn"})
    assert done.status_code == 200 and "资源已撤回" in done.text and 'id="reactivate"' in done.text
    again = _register(client, world, population_meta()).json()["code"]
    # Reactivating meets the similar resource registered meanwhile, in the clerk's language.
    refused = client.post(f"/catalog/{code}/status", data={"csrf_token": csrf,
                                                           "status": "active"})
    assert refused.status_code == 409 and f"重新启用 {code}" in refused.text and again in \
        refused.text
    done = client.post(f"/catalog/{code}/status", data={
        "csrf_token": csrf, "status": "active", "confirm_duplicate": "1"})
    assert done.status_code == 200 and "资源已重新启用" in done.text
    assert 'id="withdraw"' in done.text
    assert client.post(f"/catalog/{code}/status", data={
        "csrf_token": csrf, "status": "deleted"}).status_code == 422


def test_from_source_refused_before_the_pull(client: TestClient, world: World) -> None:
    _register(client, world, population_meta())
    body: dict[str, Any] = {
        "metadata": population_meta(name="人口基础信息表"),
        "source": {"url": "postgresql://reader:x@127.0.0.1:1/dept", "query": "public.people"}}
    headers = world.headers("GA", Role.publisher)
    refused = client.post(f"{API}/from-source", json=body, headers=headers)
    assert refused.status_code == 409, refused.text  # nothing was read from the source
    confirmed = client.post(f"{API}/from-source", json=body | {"confirm_duplicate": True},
                            headers=headers)
    # Past the check, as far as the pull (no database listens on port 1).
    assert confirmed.status_code == 422 and "could not be read" in confirmed.json()["detail"]


def test_a_registration_during_the_load_is_seen_in_the_transaction(
        client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # The same form sent twice: the other registration commits while this one's file loads
    # (after its first check passed). The check in the writing transaction sees it.
    load = service._load
    meta = ResourceIn.model_validate(population_meta())
    csv = tmp_path / "people.csv"
    csv.write_bytes(to_csv(population_rows(3)))

    def racing(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(service, "_load", load)
        with session_scope() as session:
            who = principal_of(session, "ga-publisher")
            service.register_resource(session, who, meta, csv, filename="people.csv")
        return load(*args, **kwargs)

    monkeypatch.setattr(service, "_load", racing)
    refused = _register(client, world, population_meta())
    assert refused.status_code == 409, refused.text
    headers = world.headers("GA", Role.publisher)
    assert client.get(API, headers=headers).json()["total"] == 1


@pytest.mark.skipif(pg.server_url() is None, reason="PostgreSQL's concurrency (the suite's "
                    "PostgreSQL pass); SQLite's write lock orders registrations already")
def test_two_registrations_at_the_same_moment_on_postgresql(
        client: TestClient, world: World, tmp_path: Path) -> None:
    # The same resource sent twice at once: the second passes its first check while the first
    # is inserted but not committed, and reaches the check in its transaction while the first
    # still holds its transaction open. The department's lock makes it wait there, then see
    # the first: one registered, one refused. Without the lock both are registered. Distinct
    # codes: only the similarity check can refuse the second.
    csv = tmp_path / "people.csv"
    csv.write_bytes(to_csv(population_rows(3)))
    with session_scope(write=False) as read:
        who = principal_of(read, "ga-publisher")
    inserted, second_done = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def register(code: str) -> None:
        meta = ResourceIn.model_validate(population_meta(code=code))
        try:
            with session_scope() as session:
                service.register_resource(session, who, meta, csv, filename="people.csv")
                if code == "GA-RACE-1":
                    inserted.set()
                    _until_waiting_or(second_done)
            outcome[code] = "registered"
        except similar.SimilarResourceExists:
            outcome[code] = "similar"
        finally:
            inserted.set()

    def second() -> None:
        inserted.wait(10)
        try:
            register("GA-RACE-2")
        finally:
            second_done.set()

    threads = [threading.Thread(target=register, args=("GA-RACE-1",)),
               threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcome == {"GA-RACE-1": "registered", "GA-RACE-2": "similar"}


def _until_waiting_or(done: threading.Event) -> None:
    """Until another session waits for an advisory lock (or ``done``; at most 10 s)."""
    deadline = time.monotonic() + 10
    while not done.is_set() and time.monotonic() < deadline:
        with session_scope(write=False) as session:
            if session.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = "
                                    "'advisory' AND NOT granted")).scalar():
                return
        time.sleep(0.02)
