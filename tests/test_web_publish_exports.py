"""The publish form with a real-shaped export: Chinese field names (or none: derived from the
title), an .xlsx with title rows, the sheet and header row given, and the normalised cells
shown on the resource page."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kernel.identity import Role
from tests.conftest import World
from tests.test_catalog_real_exports import HEADER, _workbook
from tests.web_support import page_csrf, sign_in


def _form() -> dict[str, object]:
    return {
        "name": "高龄津贴发放明细", "category": "208", "update_cycle": "monthly",
        "sharing_type": "conditional", "sharing_condition": "用于津贴核验",
        "sharing_method": "file", "security_level": "important", "keywords": "津贴",
        # 公民身份号码 keeps an ASCII name; 姓名 is its own (Chinese) name; the others are
        # derived from their titles.
        "item_name": ["id_number", "姓名", "", "", "", ""],
        "item_title": ["公民身份号码", "", "手机号码", "出生日期", "发放金额", ""],
        "item_type": ["string", "string", "string", "date", "decimal", "string"],
        "item_kind": ["resident_id", "person_name", "mobile", "", "", ""],
        "item_sensitivity": ["sensitive_personal", "personal", "personal", "none", "none",
                             "none"],
        "item_is_key": ["id_number"], "item_required": ["id_number", "手机号码"],
        "sheet": "发放明细", "header_row": "3",
    }


def test_register_an_xlsx_with_chinese_items_through_the_form(client: TestClient,
                                                              world: World) -> None:
    sign_in(client, world.tokens[("GA", Role.publisher)])
    page = client.get("/publish/new").text
    assert r'pattern="[\p{L}_][\p{L}\p{N}_]*"' in page and ".xlsx" in page
    form = _form() | {"csrf_token": page_csrf(client, "/publish/new")}
    created = client.post("/publish/new", data=form,
                          files={"file": ("发放明细.xlsx", _workbook(), "application/vnd."
                                          "openxmlformats-officedocument.spreadsheetml.sheet")},
                          headers={"Accept": "application/json"})
    assert created.status_code == 200, created.text
    code = created.json()["redirect"].split("/")[2].split("?")[0]
    api = client.get(f"/api/v1/resources/{code}",
                     headers={"Authorization": f"Bearer {world.tokens[('GA', Role.publisher)]}"})
    items = {i["name"]: i for i in api.json()["items"]}
    assert list(items) == ["id_number", "姓名", "shou_ji_hao_ma", "chu_sheng_ri_qi",
                           "fa_fang_jin_e"]
    assert items["shou_ji_hao_ma"]["required"] and items["id_number"]["is_key"]
    assert {i["title"] for i in items.values() if i["title"]} <= set(HEADER)
    shown = client.get(f"/catalog/{code}").text
    assert "去首尾空格 1" in shown and "全角转半角 1" in shown and "x 转大写 1" in shown


def test_a_bad_header_row_is_refused_naming_it(client: TestClient, world: World) -> None:
    sign_in(client, world.tokens[("GA", Role.publisher)])
    form = _form() | {"csrf_token": page_csrf(client, "/publish/new"), "header_row": "2"}
    refused = client.post("/publish/new", data=form,
                          files={"file": ("明细.xlsx", _workbook(), "application/x-excel")},
                          headers={"Accept": "application/json"})
    assert refused.status_code == 422
    assert "公民身份号码" in refused.text or "id_number" in refused.text
