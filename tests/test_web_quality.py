"""Quality where people look: the resource page explains the score (failing checks with their
numbers, the report link, a failed run's reason), offers row rules; the bureau picks a
resource for a notice from a search box; each notice has a page with its working-day
deadline, overdue flag and verifying runs."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from kernel import db
from kernel.identity import Role
from quality.models import RectificationNotice
from tests.conftest import World
from tests.test_quality_scores import defective_rows
from tests.test_quality_support import quiet_quality, register, run_queued
from tests.web_support import csrf_of, sign_in

__all__ = ["quiet_quality"]
pytestmark = pytest.mark.usefixtures("quiet_quality")


def test_the_resource_page_explains_the_score(client: TestClient, world: World) -> None:
    code = register(client, world, defective_rows())
    run_queued()
    sign_in(client, world.tokens[("GA", Role.publisher)])
    page = client.get(f"/catalog/{code}").text
    assert 'id="quality-failing"' in page and "resident_id:id_number" in page
    assert f"/api/v1/quality/resources/{code}/report?run=" in page  # the full report
    assert "440305********" in page  # the provider sees (masked) failing rows
    # A row rule through the page, named by its note in the explanation.
    added = client.post(f"/catalog/{code}/quality/rules", follow_redirects=False, data={
        "csrf_token": csrf_of(page), "expression": "household_size <= 3",
        "note": "户内人数不超过3人"})
    assert added.status_code == 303, added.text
    bad = client.post(f"/catalog/{code}/quality/rules", data={
        "csrf_token": csrf_of(page), "expression": "household_size <= 'x'", "note": ""})
    assert bad.status_code == 422 and "不能将数值与文本比较" in bad.text  # zh-CN, with why
    run_queued()
    page = client.get(f"/catalog/{code}").text
    assert "户内人数不超过3人" in page
    sign_in(client, world.tokens[("SJJ", Role.auditor)])
    seen = client.get(f"/catalog/{code}").text
    assert "resident_id:id_number" in seen and "440305********" not in seen  # no rows for others
    assert "小数抑制" in seen


def test_the_bureau_issues_from_a_search_box_and_each_notice_has_a_page(
        client: TestClient, world: World) -> None:
    code = register(client, world, defective_rows())
    run_queued()
    sign_in(client, world.tokens[("SJJ", Role.auditor)])
    page = client.get("/quality").text
    assert 'list="notice-resources"' in page and f'<option value="{code}">' in page
    issued = client.post("/quality/notices", follow_redirects=False, data={
        "csrf_token": csrf_of(page), "resource": code, "problem": "身份证号校验位错误",
        "deadline": (date.today() + timedelta(days=30)).isoformat()})
    assert issued.status_code == 303
    page = client.get("/quality").text
    notice_id = int(re.search(r'href="/quality/notices/(\d+)"', page).group(1))  # type: ignore[union-attr]
    detail = client.get(f"/quality/notices/{notice_id}").text
    assert "个工作日" in detail and 'id="notice-overdue"' not in detail
    with db.session_scope() as session:  # the deadline passes
        notice = session.exec(select(RectificationNotice)).one()
        notice.deadline = date.today() - timedelta(days=7)
        session.add(notice)
    detail = client.get(f"/quality/notices/{notice_id}").text
    assert 'id="notice-overdue"' in detail and "已超期" in detail
    assert "已逾期" in client.get("/quality").text  # flagged in the list too
    # The provider department sees its notice; another department does not.
    sign_in(client, world.tokens[("GA", Role.publisher)])
    assert client.get(f"/quality/notices/{notice_id}").status_code == 200
    sign_in(client, world.tokens[("SCJG", Role.publisher)])
    assert client.get(f"/quality/notices/{notice_id}").status_code == 403
    # An auditor outside the bureau does not get the city-wide audit page.
    sign_in(client, world.tokens[("SCJG", Role.auditor)])
    assert client.get("/quality").status_code == 403


def test_the_bureau_issues_a_notice_from_a_filled_in_form_without_typing_a_code(
        client: TestClient, world: World) -> None:
    code = register(client, world, defective_rows())
    run_queued()
    sign_in(client, world.tokens[("GA", Role.publisher)])
    assert 'id="issue-notice"' not in client.get(f"/catalog/{code}").text  # the bureau's
    sign_in(client, world.tokens[("SJJ", Role.auditor)])
    panel = client.get(f"/catalog/{code}").text
    link = re.search(r'href="(/quality\?[^"]+)" id="issue-notice"', panel)
    assert link, panel
    form = client.get(link.group(1).replace("&amp;", "&")).text
    assert '<details id="notice-details" open>' in form
    assert f'id="notice-resource" required list="notice-resources" autocomplete="off" ' \
           f'placeholder="搜索资源…" value="{code}"' in form
    assert "已选资源：人口基础信息" in form
    rules = re.search(r'id="notice-rules"[^>]*value="([^"]*)"', form)
    assert rules and "resident_id:id_number" in rules.group(1).split(","), form
    # A person may type the resource's name instead of picking it.
    deadline = (date.today() + timedelta(days=30)).isoformat()
    issued = client.post("/quality/notices", follow_redirects=False, data={
        "csrf_token": csrf_of(form), "resource": "人口基础信息", "problem": "校验位错误",
        "deadline": deadline})
    assert issued.status_code == 303, issued.text
    with db.session_scope(write=False) as session:
        notice = session.exec(select(RectificationNotice)).one()
        assert notice.problem == "校验位错误"
    unknown = client.post("/quality/notices", data={
        "csrf_token": csrf_of(form), "resource": "没有这个资源", "problem": "校验位错误",
        "deadline": deadline})
    assert unknown.status_code == 422 and "没有编码或名称与之相符的在用资源" in unknown.text
