"""Every main page of every role, in headless Chromium on the demo world: in zh-CN no English
sentence from our code shows (error pages and upload errors included), and axe-core finds no
serious or critical accessibility violation."""

from __future__ import annotations

from typing import Any

from tests.browser.checks import ENGLISH, english_on, serious_violations
from tests.browser.conftest import Live, sign_in


def _pages(live: Live) -> list[tuple[tuple[str, str], str]]:
    code = live.api("GA", "publisher", "/api/v1/resources", size=1, department="GA")
    resource = code["items"][0]["code"] if "items" in code else code["hits"][0]["code"]
    notices = live.api("SJJ", "auditor", "/api/v1/quality/notices")
    notice = [(("SJJ", "auditor"), f"/quality/notices/{notices[0]['id']}")] if notices else []
    return [
        (("GA", "publisher"), "/catalog"),
        (("GA", "publisher"), f"/catalog/{resource}"),
        (("GA", "publisher"), "/publish"),
        (("GA", "publisher"), "/notices"),
        (("GA", "publisher"), "/account"),
        (("SCJG", "requester"), "/requests"),
        (("SCJG", "requester"), "/notifications"),
        (("SCJG", "requester"), "/catalog?q=人口&sharing_type=conditional"),  # facets, one set
        (("GA", "approver"), "/inbox"),
        (("SJJ", "auditor"), "/coordination"),
        (("SJJ", "auditor"), "/quality"),
        # the notice form, opened and filled in from a resource's quality panel
        (("SJJ", "auditor"), f"/quality?resource={resource}&dimension=validity#notice-form"),
        *notice,
        (("SJJ", "leader"), "/dashboard"),
        (("SJJ", "admin"), "/admin/users"),
        (("SJJ", "admin"), "/admin/departments"),
        (("SJJ", "admin"), "/admin/tokens"),
        (("SJJ", "admin"), "/admin/settings"),
        (("SJJ", "admin"), "/admin/keys"),
        (("SJJ", "admin"), "/admin/jobs"),
        (("SJJ", "admin"), "/admin/jobs?state=failed"),
        (("SCJG", "requester"), "/no/such/page"),  # 404 in the UI frame
        (("SCJG", "requester"), "/inbox"),  # 403: another role's page
        (("SCJG", "requester"), "/catalog?q=" + "数据" * 400),  # over-long search
        (("SCJG", "requester"), "/catalog?q=%21%40%23%24"),  # punctuation only
    ]


def test_no_english_sentence_and_no_serious_accessibility_violation(a11y_page: Any,
                                                                    live: Live) -> None:
    page = a11y_page
    english: dict[str, list[str]] = {}
    violations: dict[str, list[str]] = {}
    who = None
    for role, path in _pages(live):
        if role != who:
            sign_in(page, live.token(*role))
            who = role
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert page.get_attribute("html", "lang") == "zh-CN"
        found = english_on(page)
        if found:
            english[path[:60]] = found[:5]
        result = serious_violations(page)
        if result:
            violations[path[:60]] = result
    assert not english, f"English sentences on zh-CN pages: {english}"
    assert not violations, f"serious/critical axe-core violations: {violations}"


def test_upload_errors_are_in_chinese(page: Any, live: Live) -> None:
    sign_in(page, live.token("GA", "publisher"))
    page.goto("/publish")
    page.click("#register")
    page.fill("#name", "错误文件测试")
    page.fill("#name_en", "Bad file test")
    page.select_option("#category", "101")
    page.select_option("#sharing_type", "unconditional")
    row = page.locator("tr.item-row").first
    row.locator("input[name=item_name]").fill("amount")
    row.locator("input[name=item_title]").fill("金额")
    row.locator("select[name=item_type]").select_option("decimal")
    page.set_input_files("#file", files=[{"name": "bad.csv", "mimeType": "text/csv",
                                          "buffer": b"amount\n1.5\nabc\n2\n"}])
    page.click("#submit")
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    text = error.inner_text()
    assert "未保存任何数据" in text and "第 3 行" in text, text
    assert not ENGLISH.search(text.replace("decimal", "")), text
