"""An application returned and approved with a condition, in headless Chromium on the live
server, each person driving only the UI after signing in:

- the requester finds the resource by its facets and applies for every item;
- the approver is told (the unread count, the notification), returns it listing the
  deficiency with its own note and a general note;
- the requester is told, reads the reasons on the application, drops the item named and
  resubmits;
- the approver is told again and approves it with a condition and a note;
- the requester reads the note and the condition, accepts the condition, is told of the
  delivery and downloads it: the dropped item is not in the file.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from tests.browser.conftest import Live, read_all, sign_in
from tests.factories import resident_id, to_csv

PROVIDER, REQUESTER = "GA", "SCJG"
NAME = "浏览器退回补正测试企业"
CONDITION = "仅用于企业开办身份核验，不得向第三方提供"
ROWS = 20
# Unlike the other stories' resources in items and name: registering a resource close to one of
# the department's own is refused (一数一源, catalog/similar.py), and they share one server.
ITEMS = [
    {"name": "reg_no", "title": "注册号", "type": "string", "required": True, "is_key": True},
    {"name": "legal_rep", "title": "法定代表人", "type": "string", "sensitivity": "personal",
     "kind": "person_name"},
    {"name": "legal_rep_id", "title": "法定代表人证件号码", "type": "string",
     "sensitivity": "sensitive_personal", "kind": "resident_id"},
    {"name": "capital", "title": "注册资本（万元）", "type": "integer"},
]


def _rows() -> bytes:
    return to_csv([{"reg_no": f"4403{i:08d}", "legal_rep": f"李{i}",
                    "legal_rep_id": resident_id(i), "capital": 100 + i} for i in range(ROWS)])


def _registered(live: Live) -> str:
    """The resource the story is about (set up through the API: the publisher's own story is
    test_story's)."""
    return live.register(PROVIDER, {"name": NAME, "name_en": "Browser return test",
                                    "items": ITEMS, "sharing_condition": "仅限身份核验"},
                         "firms.csv", _rows())


def _told(page: Any, app_id: int, text: str) -> None:
    """The header's unread count shows, and the notification leads to the application."""
    assert int(page.locator("#unread-count").inner_text()) >= 1
    page.click("#notifications-link")
    told = page.locator(f"#notifications li.unread a[href='/applications/{app_id}']",
                        has_text=text)
    assert told.count() >= 1, page.locator("#notifications").inner_text()
    told.first.click()
    page.wait_for_url(f"**/applications/{app_id}")


def _find_and_apply(page: Any, code: str) -> int:
    page.goto("/catalog")
    page.fill("#q", NAME)
    page.click("#search")
    page.click("#facet-sharing_type a[data-value=conditional]")  # a facet, clicked
    assert page.locator("#facet-sharing_type a[aria-current=true]").count() == 1
    page.click(f"#results a[href='/catalog/{code}']")
    page.click("#apply")
    page.fill("#purpose", "企业开办时核验法定代表人")
    page.fill("#legal_basis", "《市场主体登记管理条例》第十条")
    page.select_option("#file_format", "csv")
    page.click("#file-application")  # every item is ticked by default
    page.wait_for_url(re.compile(r"/applications/\d+\?ok=filed"))
    return int(page.url.split("/applications/")[1].split("?")[0])


def _state(page: Any) -> str:
    return str(page.locator("#state").inner_text())


def test_an_application_is_returned_resubmitted_and_approved_with_a_condition(
        page: Any, live: Live) -> None:
    code = _registered(live)
    sign_in(page, live.token(PROVIDER, "approver"))
    read_all(page)
    sign_in(page, live.token(REQUESTER, "requester"))
    read_all(page)
    app_id = _find_and_apply(page, code)

    # The approver is told, reads it and returns it: one deficiency with its note.
    sign_in(page, live.token(PROVIDER, "approver"))
    page.click("nav.main-nav a[href='/inbox']")  # waiting in the in-tray too
    assert page.locator(f"#inbox a.open-application[href='/applications/{app_id}']").count() == 1
    _told(page, app_id, "待您答复")
    assert _state(page) == "待审批"
    page.check("#deficiency-items_not_necessary")
    page.fill("input[name=note_items_not_necessary]", "核验企业无需证件号码，请删去 legal_rep_id")
    page.fill("#return-form textarea[name=note]", "其余内容符合要求")
    page.click("#return")
    page.wait_for_url(f"**/applications/{app_id}?ok=returned")
    assert _state(page) == "退回补正"

    # The requester is told, reads every reason, drops the item and resubmits.
    sign_in(page, live.token(REQUESTER, "requester"))
    _told(page, app_id, "退回补正")
    reasons = page.locator("#return-reasons").inner_text()
    assert "数据项超出必要范围" in reasons and "核验企业无需证件号码" in reasons, reasons
    resubmit = page.locator("#resubmit-form")
    resubmit.locator("input[name=items][value=legal_rep_id]").uncheck()
    resubmit.locator("input[name=note]").fill("已删去证件号码")
    page.click("#resubmit")
    page.wait_for_url(f"**/applications/{app_id}?ok=resubmitted")
    assert _state(page) == "待审批"
    items = page.locator("dl.facts code").all_inner_texts()
    assert "legal_rep_id" not in items and "legal_rep" in items

    # The approver is told of the resubmission and approves it with a condition and a note.
    sign_in(page, live.token(PROVIDER, "approver"))
    _told(page, app_id, "已重新提交")
    assert page.locator("#return-reasons").count() == 0  # the return is settled
    page.fill("#approve-form textarea[name=conditions]", CONDITION)
    page.fill("#approve-form input[name=note]", "同意，按条件使用")
    page.click("#approve")
    page.wait_for_url(f"**/applications/{app_id}?ok=approved")
    assert _state(page) == "待接受条件"

    # The requester reads the note and the condition, accepts it and gets the delivery.
    sign_in(page, live.token(REQUESTER, "requester"))
    _told(page, app_id, "附条件同意")
    decision = page.locator("#decision-note").inner_text()
    assert "同意，按条件使用" in decision and CONDITION in decision, decision
    page.click("#accept-conditions")
    page.wait_for_url(f"**/applications/{app_id}?ok=accepted")
    for _ in range(120):  # delivered by the worker after the acceptance's commit
        if _state(page) == "已交付":
            break
        page.wait_for_timeout(250)
        page.reload()
    assert _state(page) == "已交付"
    _told(page, app_id, "已交付")
    with page.expect_download() as download:
        page.locator("#deliveries button.download").first.click()
    table = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert len(table) == ROWS and "legal_rep_id" not in table[0] and "reg_no" in table[0]
