"""The approver sees the re-identification risk of the plan before approving, asks for the
least generalization meeting a target, approves the pre-filled form in one click, and the
requester then sees the report of the decided plan — in headless Chromium on a real server."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import httpx

from tests.browser.conftest import Live, sign_in
from tests.test_access_support import PEOPLE_ITEMS, people_rows, to_csv

PROVIDER, REQUESTER = "GA", "SCJG"


def _post(live: Live, dept: str, role: str, path: str, **kw: Any) -> Any:
    r = httpx.post(live.url + path, timeout=120,
                   headers={"Authorization": f"Bearer {live.token(dept, role)}"}, **kw)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _filed_application(live: Live) -> int:
    # A name unlike test_story's resource of the same department: with half of its items in
    # common, a close name would make that story's registration a refused near-duplicate
    # (一数一源, catalog/similar.py) on the server the tests share.
    code = live.register(PROVIDER, {"name": "再识别风险评估样本", "name_en": "Browser risk test",
                                    "items": PEOPLE_ITEMS, "sharing_condition": "用于政务服务"},
                         "people.csv", to_csv(people_rows(80)))
    app = _post(live, REQUESTER, "requester", "/api/v1/applications", json={
        "resource": code, "purpose": "统计分析各区住户规模",
        "legal_basis": "《政务数据共享条例》第十条",
        "items": ["id_number", "birth_date", "district", "household_size", "income"],
        "period_end": (date.today() + timedelta(days=60)).isoformat()})
    return int(app["id"])


def test_the_approver_sees_the_risk_before_approving(page: Any, live: Live) -> None:
    app_id = _filed_application(live)
    sign_in(page, live.token(REQUESTER, "requester"))
    page.goto(f"/applications/{app_id}")
    assert page.locator("#risk-report").count() == 0  # not before the decision

    sign_in(page, live.token(PROVIDER, "approver"))
    page.goto(f"/applications/{app_id}")
    report = page.locator("#risk-report")
    assert report.is_visible()
    # Shown beside the plan, above the approve button: k, risks, the proposed QIs.
    assert page.locator("#risk-k").inner_text() == "1"
    assert page.locator("#risk-rows").inner_text() == "80"
    assert page.locator("#risk-qis").inner_text().split() == ["birth_date", "district"]
    assert re.search(r"1\.000", page.locator("#risk-prosecutor").inner_text())
    assert page.locator("#risk-sensitive tbody tr").count() == 1  # income
    risk_box = page.locator("#risk").bounding_box()
    approve_box = page.locator("#approve").bounding_box()
    assert risk_box["y"] < approve_box["y"]

    page.fill("#target-k", "3")
    page.fill("#target-suppression", "10")
    page.click("#suggest")
    page.wait_for_selector("#suggestion")
    assert "k = " in page.locator("#suggestion").inner_text()
    assert page.locator("#k-min").input_value() == "3"
    suggested = page.locator("#masking-plan .tag.suggested")
    assert suggested.count() >= 1
    page.click("#approve")
    page.wait_for_url(re.compile(rf"/applications/{app_id}\?ok=approved"))

    sign_in(page, live.token(REQUESTER, "requester"))
    page.goto(f"/applications/{app_id}")
    assert page.locator("#risk-report").is_visible()
    assert int(page.locator("#risk-k").inner_text()) >= 3
    assert page.locator("#suggest-form").count() == 0  # the requester cannot change the plan
