"""The web UI without a browser: sign-in, CSRF, roles, languages, same-origin pages, and the
whole sharing story through the forms (tests/browser/ repeats the story in Chromium)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from access.masking import Generalization, MaskingRule
from access.models import ApplicationState, Deficiency, RejectionReason
from catalog.models import (
    ItemKind,
    ItemType,
    SecurityLevel,
    Sensitivity,
    SharingMethod,
    SharingType,
    UpdateCycle,
    VersionMode,
)
from govshare.web import i18n
from kernel.identity import Role
from tests.conftest import DrainingClient, World
from tests.factories import POPULATION_ITEMS, population_rows, to_csv
from tests.web_support import csrf_of, page_csrf, sign_in

TEMPLATES = Path(i18n.__file__).parent / "templates"
STATIC = Path(i18n.__file__).parent / "static"


# --- message catalogs ---------------------------------------------------------------------------

def test_both_catalogs_have_the_same_keys_and_no_empty_message() -> None:
    zh, en = i18n.catalog("zh-CN"), i18n.catalog("en")
    assert set(zh) - set(en) == set(), "keys missing in en.json"
    assert set(en) - set(zh) == set(), "keys missing in zh-CN.json"
    assert all(v.strip() for v in [*zh.values(), *en.values()])
    for key in zh:  # the same placeholders in both languages
        assert set(re.findall(r"{(\w+)}", zh[key])) == set(re.findall(r"{(\w+)}", en[key])), key


def test_every_key_the_templates_and_scripts_use_is_in_the_catalogs() -> None:
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_]+\.[a-z_.0-9]+)'\s*[,)]", path.read_text("utf-8")))
    used |= set(re.findall(r'\btr\("([a-z_]+\.[a-z_.0-9]+)"\s*[,)]', (STATIC / "dashboard.js")
                           .read_text("utf-8")))
    zh = i18n.catalog("zh-CN")
    assert used, "no keys found: the pattern is wrong"
    assert sorted(used - set(zh)) == []


@pytest.mark.parametrize("group, values", [
    ("sharing_type", SharingType), ("cycle", UpdateCycle), ("level", SecurityLevel),
    ("method", SharingMethod), ("type", ItemType), ("kind", ItemKind),
    ("sensitivity", Sensitivity), ("mode", VersionMode), ("state", ApplicationState),
    ("reason", RejectionReason), ("deficiency", Deficiency), ("rule", MaskingRule),
])
def test_every_enum_value_has_a_label(group: str, values: type) -> None:
    zh = i18n.catalog("zh-CN")
    for value in values:  # type: ignore[attr-defined]
        if group == "rule" and value is MaskingRule.generalize:
            missing = [m for m in Generalization if f"rule.generalize:{m.value}" not in zh]
            assert missing == []
            continue
        assert f"{group}.{value.value}" in zh, f"{group}.{value.value}"


# --- sign-in, sign-out, roles -------------------------------------------------------------------

def test_pages_redirect_to_sign_in_when_signed_out(client: TestClient) -> None:
    response = client.get("/inbox?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Finbox%3Fx%3D1"


def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_clears_it(
        client: TestClient, world: World) -> None:
    page = client.get("/signin")
    assert page.status_code == 200 and '<html lang="zh-CN">' in page.text
    token = world.tokens[("SCJG", Role.approver)]
    response = client.post("/signin", data={"token": token, "csrf_token": csrf_of(page.text),
                                            "next": "/catalog"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/catalog"
    cookie = next(c for c in response.headers.get_list("set-cookie")
                  if c.startswith("govshare_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    assert client.get("/inbox").status_code == 200
    out = client.post("/signout", data={"csrf_token": page_csrf(client)},
                      follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/inbox", follow_redirects=False).status_code == 303


def test_sign_in_cookie_is_secure_over_https(data_dir: Path, world: World) -> None:
    from govshare.app import create_app

    with DrainingClient(create_app(), base_url="https://testserver") as https:
        page = https.get("/signin")
        response = https.post("/signin", data={"token": world.tokens[("GA", Role.requester)],
                                               "csrf_token": csrf_of(page.text)},
                              follow_redirects=False)
    cookie = next(c for c in response.headers.get_list("set-cookie")
                  if c.startswith("govshare_session="))
    assert "Secure" in cookie


def test_a_wrong_token_is_refused_with_a_readable_message(client: TestClient,
                                                          world: World) -> None:
    page = client.get("/signin")
    response = client.post("/signin", data={"token": "gs_nope",
                                            "csrf_token": csrf_of(page.text)})
    assert response.status_code == 401
    assert "无法识别该令牌" in response.text and "govshare_session" not in response.cookies


def test_a_sign_in_redirect_never_leaves_the_site(client: TestClient, world: World) -> None:
    page = client.get("/signin")
    response = client.post("/signin", data={"token": world.tokens[("GA", Role.leader)],
                                            "csrf_token": csrf_of(page.text),
                                            "next": "//evil.example/"}, follow_redirects=False)
    assert response.headers["location"] == "/dashboard"


@pytest.mark.parametrize("role, path", [
    (Role.requester, "/inbox"), (Role.approver, "/publish"), (Role.publisher, "/dashboard"),
    (Role.leader, "/requests"), (Role.admin, "/quality"), (Role.requester, "/publish/new"),
])
def test_wrong_role_gets_a_403_page(client: TestClient, world: World, role: Role,
                                    path: str) -> None:
    sign_in(client, world.tokens[("GA", role)])
    response = client.get(path)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "无权访问" in response.text and role.value in response.text


# --- CSRF -----------------------------------------------------------------------------------------

def test_forms_without_the_csrf_token_are_refused(client: TestClient, world: World) -> None:
    page = client.get("/signin")
    assert client.post("/signin", data={"token": world.tokens[("GA", Role.requester)]}
                       ).status_code == 403
    assert client.post("/signin", data={"token": world.tokens[("GA", Role.requester)],
                                        "csrf_token": "0" * 64}).status_code == 403
    sign_in(client, world.tokens[("GA", Role.requester)])
    stale = csrf_of(page.text)  # the pre-session token is no good once signed in
    response = client.post("/signout", data={"csrf_token": stale}, follow_redirects=False)
    assert response.status_code == 403
    assert "CSRF" in response.text


def test_cookie_authenticated_api_writes_need_the_csrf_header(client: TestClient,
                                                              world: World) -> None:
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    body = {"resource": "440300-GA-101-99999", "purpose": "核验身份", "legal_basis": "条例",
            "items": ["x"], "period_end": "2099-01-01"}
    refused = client.post("/api/v1/applications", json=body)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "CSRF" in refused.json()["detail"]
    with_header = client.post("/api/v1/applications", json=body,
                              headers={"X-CSRF-Token": page_csrf(client)})
    assert with_header.status_code == 404  # past the CSRF check: no such resource
    assert client.get("/api/v1/me").status_code == 200  # reads need no token
    client.cookies.clear()
    bearer = client.post("/api/v1/applications", json=body,
                         headers=world.headers("SCJG", Role.requester))
    assert bearer.status_code == 404  # bearer clients are not affected


# --- languages and same-origin pages --------------------------------------------------------------

def test_language_switch_sets_the_cookie_and_the_html_lang(client: TestClient,
                                                           world: World) -> None:
    sign_in(client, world.tokens[("GA", Role.publisher)])
    assert '<html lang="zh-CN">' in client.get("/publish").text
    english = client.get("/publish?lang=en")
    assert '<html lang="en">' in english.text and "Register a resource" in english.text
    assert client.cookies.get("lang") == "en"
    assert '<html lang="en">' in client.get("/catalog").text  # remembered
    assert '<html lang="zh-CN">' in client.get("/catalog?lang=zh").text


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data") and value:
                self.urls.append(value)


def _cross_origin(urls: list[str]) -> list[str]:
    return [u for u in urls if urlsplit(u).scheme or urlsplit(u).netloc
            or u.startswith("//") or u.lower().startswith("javascript:")]


PAGES = {Role.publisher: ["/publish", "/publish/new", "/notices", "/catalog"],
         Role.requester: ["/requests", "/catalog"], Role.approver: ["/inbox"],
         Role.auditor: ["/quality", "/dashboard", "/notices", "/coordination"],
         Role.leader: ["/dashboard"]}


def test_every_page_loads_only_from_its_own_origin(client: TestClient, world: World) -> None:
    seen = 0
    for role, paths in PAGES.items():
        sign_in(client, world.tokens[("SJJ" if role is Role.auditor else "GA", role)])
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (role, path)
            assert "default-src 'self'" in response.headers["content-security-policy"]
            parser = _Links()
            parser.feed(response.text)
            assert parser.urls, path
            assert _cross_origin(parser.urls) == [], path
            seen += 1
    for path in STATIC.rglob("*.css"):
        assert "@import" not in path.read_text() and "url(http" not in path.read_text()
    assert seen == sum(len(p) for p in PAGES.values())


# --- the story through the forms ------------------------------------------------------------------

def _register_form(code_hint: str) -> dict[str, object]:
    items = POPULATION_ITEMS
    return {
        "name": "网页登记人口信息", "name_en": code_hint, "category": "101",
        "update_cycle": "monthly", "sharing_type": "conditional",
        "sharing_condition": "仅用于身份核验", "sharing_method": "file",
        "security_level": "important", "keywords": "人口, 网页",
        "item_name": [i["name"] for i in items] + [""],
        "item_title": [i.get("title", "") for i in items] + [""],
        "item_type": [i["type"] for i in items] + ["string"],
        "item_kind": [i.get("kind", "") for i in items] + [""],
        "item_sensitivity": [i.get("sensitivity", "none") for i in items] + ["none"],
        "item_is_key": ["id_number"], "item_required": ["id_number", "name"],
    }


def test_the_whole_story_through_the_forms(client: TestClient, world: World) -> None:
    # a publisher registers a resource with its data
    sign_in(client, world.tokens[("GA", Role.publisher)])
    form = _register_form("Web population") | {"csrf_token": page_csrf(client, "/publish/new")}
    rows = population_rows(12)
    created = client.post("/publish/new", data=form,
                          files={"file": ("people.csv", to_csv(rows), "text/csv")},
                          headers={"Accept": "application/json"})
    assert created.status_code == 200, created.text
    url = created.json()["redirect"]
    code = url.split("/")[2].split("?")[0]
    page = client.get(url)
    assert "网页登记人口信息" in page.text and "有条件共享" in page.text
    assert "id_number" in page.text

    # a requester finds it and applies
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    assert code in client.get("/catalog?q=网页登记").text
    apply_page = client.get(f"/requests/new?resource={code}")
    filed = client.post("/requests/new", data={
        "csrf_token": csrf_of(apply_page.text), "resource": code, "purpose": "企业登记核验身份",
        "legal_basis": "《市场主体登记管理条例》", "items": ["id_number", "name", "birth_date"],
        "period_end": (date.today() + timedelta(days=90)).isoformat(), "file_format": "csv"},
        follow_redirects=False)
    assert filed.status_code == 303, filed.text
    app_url = filed.headers["location"].split("?")[0]
    app_id = int(app_url.rsplit("/", 1)[1])
    assert "待审批" in client.get("/requests").text

    # the approver sees it in the in-tray and approves with a tighter mask
    sign_in(client, world.tokens[("GA", Role.approver)])
    assert f'href="/applications/{app_id}"' in client.get("/inbox").text
    detail = client.get(app_url)
    assert 'name="mask_birth_date"' in detail.text
    assert 'value="keep"' not in detail.text.split('name="mask_name"')[1].split("</select>")[0]
    approved = client.post(f"{app_url}/approve", data={
        "csrf_token": csrf_of(detail.text), "mask_birth_date": "suppress",
        "mask_name": "partial", "mask_id_number": "pseudonymize"}, follow_redirects=False)
    assert approved.status_code == 303, approved.text
    loosen = client.post(f"{app_url}/tighten", data={
        "csrf_token": csrf_of(detail.text), "mask_birth_date": "keep"})
    assert loosen.status_code == 422 and "脱敏方案只能收紧" in loosen.text  # the zh-CN page
    decided = client.get("/inbox").text.split("近期已处理")[1]  # now among the decided
    assert f'href="/applications/{app_id}"' in decided and "市市场监督管理局" in decided

    # the requester downloads the package (delivered by the background task)
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    detail = client.get(app_url)
    assert "已交付" in detail.text, detail.text
    delivery_id = int(re.search(r'id="download-(\d+)"', detail.text).group(1))  # type: ignore[union-attr]
    got = client.post(f"/deliveries/{delivery_id}/download",
                      data={"csrf_token": csrf_of(detail.text)})
    assert got.status_code == 200
    table = list(csv.DictReader(io.StringIO(got.content.decode("utf-8"))))
    assert len(table) == len(rows)
    assert "birth_date" not in table[0]  # suppressed
    assert {r["id_number"] for r in table}.isdisjoint({r["id_number"] for r in rows})
    assert all(r["name"] != orig["name"] for r, orig in zip(table, rows, strict=True))
    assert "等待审批" not in detail.text  # stage names come from the state labels
    assert re.search(r'class="tag state-submitted"', detail.text)


def test_problems_are_shown_as_readable_pages_or_problem_json(client: TestClient,
                                                              world: World) -> None:
    sign_in(client, world.tokens[("GA", Role.publisher)])
    form = _register_form("Broken") | {"csrf_token": page_csrf(client, "/publish/new")}
    bad = to_csv([{"id_number": "x", "name": "y", "birth_date": "not a date",
                   "household_size": "many"}])
    as_page = client.post("/publish/new", data=form,
                          files={"file": ("bad.csv", bad, "text/csv")})
    assert as_page.status_code == 422
    assert as_page.headers["content-type"].startswith("text/html")
    assert "household_size" in as_page.text and "内容不完整或有误" in as_page.text
    as_json = client.post("/publish/new", data=form, headers={"Accept": "application/json"},
                          files={"file": ("bad.csv", bad, "text/csv")})
    assert as_json.status_code == 422
    assert as_json.headers["content-type"] == "application/problem+json"
    assert json.loads(as_json.text)["errors"]
    missing = client.get("/catalog/440300-XX-101-00001")
    assert missing.status_code == 404 and "440300-XX-101-00001" in missing.text


def _filed(client: TestClient, world: World) -> tuple[str, int]:
    """A conditional GA resource (registered through the form) and a SCJG application for it."""
    sign_in(client, world.tokens[("GA", Role.publisher)])
    form = _register_form("Decisions") | {"csrf_token": page_csrf(client, "/publish/new")}
    created = client.post("/publish/new", data=form, headers={"Accept": "application/json"},
                          files={"file": ("p.csv", to_csv(population_rows(5)), "text/csv")})
    code = created.json()["redirect"].split("/")[2].split("?")[0]
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    page = client.get(f"/requests/new?resource={code}")
    filed = client.post("/requests/new", data={
        "csrf_token": csrf_of(page.text), "resource": code, "purpose": "核验身份信息",
        "legal_basis": "条例", "items": ["id_number", "name"],
        "period_end": (date.today() + timedelta(days=30)).isoformat()}, follow_redirects=False)
    return code, int(filed.headers["location"].split("/")[2].split("?")[0])


def test_return_resubmit_and_reject_through_the_forms(client: TestClient,
                                                      world: World) -> None:
    _, app_id = _filed(client, world)
    sign_in(client, world.tokens[("GA", Role.approver)])
    token = page_csrf(client, f"/applications/{app_id}")
    nothing_ticked = client.post(f"/applications/{app_id}/return",
                                 data={"csrf_token": token, "note": "?"})
    assert nothing_ticked.status_code == 422 and "一次性告知" in nothing_ticked.text
    returned = client.post(f"/applications/{app_id}/return", follow_redirects=False, data={
        "csrf_token": token, "deficiency": ["purpose_unclear", "items_not_necessary"],
        "note": "请写明具体事项", "note_items_not_necessary": "姓名不需要"})
    assert returned.status_code == 303
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    page = client.get(f"/applications/{app_id}")
    assert "退回补正" in page.text and 'id="resubmit"' in page.text
    # Every reason, with its note, where the requester acts.
    reasons = page.text.split('id="return-reasons"')[1].split("</section>")[0]
    assert "用途不明确" in reasons
    assert "请写明具体事项" in reasons and "数据项超出必要范围" in reasons
    assert "姓名不需要" in reasons
    again = client.post(f"/applications/{app_id}/resubmit", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "purpose": "办理企业开办时核验法定代表人身份",
        "legal_basis": "条例", "items": ["id_number"], "schedule": "once"})
    assert again.status_code == 303
    page = client.get(f"/applications/{app_id}")
    assert 'id="return-reasons"' not in page.text  # resubmitted: nothing to fix now
    details = page.text.split("<dl class=\"facts\">")[1].split("</dl>")[0]
    assert "<code>id_number</code>" in details and "<code>name</code>" not in details
    sign_in(client, world.tokens[("GA", Role.approver)])
    page = client.get(f"/applications/{app_id}")
    rejected = client.post(f"/applications/{app_id}/reject", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "reason": "insufficient_legal_basis",
        "text": "依据不足"})
    assert rejected.status_code == 303
    page = client.get(f"/applications/{app_id}")
    assert 'id="state">已驳回' in page.text
    assert page.text.count('class="tag state-') >= 4  # the stages: submitted, returned…
    twice = client.post(f"/applications/{app_id}/reject", data={
        "csrf_token": csrf_of(page.text), "reason": "other", "text": "again"})
    assert twice.status_code == 409 and "当前状态不允许此操作" in twice.text


def test_a_notice_issued_by_the_bureau_is_answered_by_the_publisher(client: TestClient,
                                                                    world: World) -> None:
    code, _ = _filed(client, world)
    sign_in(client, world.tokens[("SJJ", Role.auditor)])
    page = client.get("/quality")
    issued = client.post("/quality/notices", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "resource": code, "problem": "身份证号校验位错误",
        "deadline": (date.today() + timedelta(days=10)).isoformat(), "dimension": "validity"})
    assert issued.status_code == 303, issued.text
    assert "身份证号校验位错误" in client.get("/quality").text
    sign_in(client, world.tokens[("GA", Role.publisher)])
    assert "身份证号校验位错误" in client.get("/publish").text
    page = client.get("/notices")
    notice_id = int(re.search(r'action="/notices/(\d+)/respond"', page.text).group(1))  # type: ignore[union-attr]
    answered = client.post(f"/notices/{notice_id}/respond", follow_redirects=False,
                           data={"csrf_token": csrf_of(page.text), "response": "已修正"})
    assert answered.status_code == 303
    assert "已反馈待核验" in client.get("/notices").text or "已关闭" in client.get("/notices").text
    sign_in(client, world.tokens[("SCJG", Role.publisher)])  # another department: not shown
    assert "身份证号校验位错误" not in client.get("/notices").text
