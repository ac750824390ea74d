"""The catalog register in a spreadsheet: 50 resources in one step through the CLI and the
web upload; one bad row refuses the whole file, naming sheet, row and column."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import xlsxwriter
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from govshare.cli import app
from kernel.identity import Role
from tests.conftest import World
from tests.web_support import page_csrf, sign_in

HEADER = ["信息资源代码", "信息资源名称", "资源分类", "信息资源摘要", "关键词", "共享类型",
          "共享条件", "共享方式", "更新周期", "安全级别", "数据项名称", "字段名", "数据类型",
          "是否主键", "是否必填", "敏感级别", "数据项说明"]


# Fifty distinct resources (10 subjects × 5 matters): any two share at most one name bigram
# and two of their three items, so none is close to another (catalog.similar scores ≤ 0.67).
SUBJECTS = ("户籍", "出生", "婚姻", "养老", "医保", "住房", "车辆", "教育", "就业", "兵役")
MATTERS = ("登记", "变更", "注销", "年检", "补贴")


def resource_name(r: int) -> str:
    return f"{SUBJECTS[r % 10]}{MATTERS[r // 10]}信息"


def register_rows(n: int) -> list[list[Any]]:
    """n resources of three data items each; resource-level cells only on the first row."""
    rows: list[list[Any]] = []
    for r in range(n):
        first = ["", resource_name(r), "人口基础信息", "户籍人口登记事项", "户籍，人口",
                 "有条件共享", "用于政务服务身份核验", "文件", "每月", "重要"]
        rest = [""] * len(first)
        rows.append([*first, "公民身份号码", "id_number", "字符型", "是", "是", "敏感个人信息",
                     "18 位"])
        rows.append([*rest, "姓名", "", "字符型", "否", "是", "个人信息", ""])
        rows.append([*rest, f"{resource_name(r)[:4]}日期", "", "日期", "否", "否", "无",
                     "办理的日期"])
    return rows


def workbook(rows: list[list[Any]]) -> bytes:
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    notes = wb.add_worksheet("填报说明")
    notes.write(0, 0, "每行一个数据项；同一资源的资源级信息只需填在第一行。")
    ws = wb.add_worksheet("资源目录")
    ws.write(0, 0, "市公安局政务信息资源目录（2025年版）")
    ws.write_row(1, 0, HEADER)
    for i, row in enumerate(rows, start=2):
        ws.write_row(i, 0, row)
    wb.close()
    return buf.getvalue()


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_fifty_resources_in_one_step_and_again_unchanged(client: TestClient, world: World,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "目录.xlsx"
    path.write_bytes(workbook(register_rows(50)))
    done = _cli("resource", "import-catalog", str(path), "--publisher", "ga-publisher",
                "--json")
    assert done.exit_code == 0, done.output
    applied = json.loads(done.stdout)
    assert len(applied) == 50 and {a["action"] for a in applied} == {"created"}
    code = applied[0]["code"]
    assert code == "440300-GA-101-00001"
    r = client.get(f"/api/v1/resources/{code}",
                   headers=world.headers("SCJG", Role.requester)).json()
    assert [i["name"] for i in r["items"]] == ["id_number", "xing_ming", "hu_ji_deng_ji_ri_qi"]
    assert r["current_version"] == 0 and r["update_cycle"] == "monthly"
    assert r["keywords"] == ["户籍", "人口"] and r["items"][0]["is_key"]

    # The same register with the codes filled in: an update (one description changed).
    rows = register_rows(50)
    for i, a in enumerate(applied):
        rows[3 * i][0] = a["code"]
    rows[2][16] = "首次办理户籍登记的日期"
    path.write_bytes(workbook(rows))
    again = json.loads(_cli("resource", "import-catalog", str(path), "--publisher",
                            "ga-publisher", "--json").stdout)
    assert [a["action"] for a in again].count("updated") == 1
    assert [a["action"] for a in again].count("unchanged") == 49


def test_one_bad_row_refuses_the_file_naming_it(client: TestClient, world: World,
                                                tmp_path: Path) -> None:
    rows = register_rows(50)
    rows[7][12] = "大文本"  # resource 3, second item: an unknown data type
    rows[30][5] = "部分共享"  # resource 11: an unknown sharing type
    path = tmp_path / "目录.xlsx"
    path.write_bytes(workbook(rows))
    done = _cli("resource", "import-catalog", str(path), "--publisher", "ga-publisher",
                "--json")
    assert done.exit_code == 2
    out = done.output.replace("\n", "")  # the console wraps long lines
    assert "2 problem(s); nothing was applied" in out
    assert "sheet '资源目录' row 10 column 数据类型 (M): '大文本' is not one of" in out
    assert "row=33, column=共享类型 (F)" in out
    headers = world.headers("GA", Role.publisher)
    assert client.get("/api/v1/resources", headers=headers).json()["total"] == 0


def test_the_web_upload(client: TestClient, world: World) -> None:
    sign_in(client, world.tokens[("GA", Role.publisher)])
    page = client.get("/publish")
    assert 'action="/publish/import-catalog"' in page.text
    csrf = page_csrf(client, "/publish")
    bad = register_rows(2)
    bad[1][11] = "姓 名"  # not a field name
    r = client.post("/publish/import-catalog", data={"csrf_token": csrf},
                    files={"file": ("目录.xlsx", workbook(bad), "application/octet-stream")})
    assert r.status_code == 422 and "字段名 (L)" in r.text
    assert "资源目录 · 第 4 行" in r.text or "资源目录 · row 4" in r.text
    r = client.post("/publish/import-catalog", data={"csrf_token": csrf},
                    files={"file": ("目录.xlsx", workbook(register_rows(2)),
                                    "application/octet-stream")})
    assert r.status_code == 200, r.text
    assert "440300-GA-101-00002" in r.text and resource_name(1) in r.text


def test_rows_of_one_register_compared_with_each_other(client: TestClient, world: World,
                                                       tmp_path: Path) -> None:
    # A third resource repeating the first under a name one character longer: the register's
    # own rows are compared as a registration is compared with the catalog (catalog.similar).
    rows = register_rows(2)
    copy = [list(r) for r in rows[:3]]
    copy[0][1] = "户籍登记信息表"
    register = rows + copy
    path = tmp_path / "目录.xlsx"
    path.write_bytes(workbook(register))
    args = ("resource", "import-catalog", str(path), "--publisher", "ga-publisher", "--json")
    refused = _cli(*args)
    assert refused.exit_code == 2
    out = refused.output.replace("\n", "")
    assert "1 new resource(s) of the catalog register are similar to other resources" in out
    assert ("“户籍登记信息表” is similar to “户籍登记信息” on row 3 of sheet '资源目录'" in out
            and "row=9, column=信息资源名称 (B)" in out), out
    sign_in(client, world.tokens[("GA", Role.publisher)])
    upload = {"file": ("目录.xlsx", path.read_bytes(), "application/octet-stream")}
    page = client.post("/publish/import-catalog", files=upload,
                       data={"csrf_token": page_csrf(client, "/publish")})
    assert page.status_code == 409
    assert "「户籍登记信息表」与本目录表工作表“资源目录”第 3 行的「户籍登记信息」相近" in page.text

    done = _cli(*args, "--confirm-duplicate")
    assert done.exit_code == 0, done.output
    codes = [a["code"] for a in json.loads(done.stdout)]
    entries = client.get("/api/v1/log/entries", params={"type": "resource.catalogued"},
                         headers=world.headers("SJJ", Role.auditor)).json()
    assert [e["entry"]["subjects"].get("similar_confirmed") for e in entries] == [
        None, None, codes[0]]
    # The three again with their codes: updates, never duplicates of themselves or each other.
    for i, code in enumerate(codes):
        register[3 * i][0] = code
    path.write_bytes(workbook(register))
    again = _cli(*args)
    assert again.exit_code == 0, again.output
    assert {a["action"] for a in json.loads(again.stdout)} == {"unchanged"}


def test_problems_listed_by_sheet_row_and_column(client: TestClient, world: World,
                                                 tmp_path: Path) -> None:
    # Found check by check (a resource's cells field by field, its items' cells, then the
    # similarity of the register's resources), listed in the workbook's order.
    rows = register_rows(2)
    rows[4][2] = "102"  # row 6 C: differs from the resource's first row
    rows[3][5] = "部分共享"  # row 5 F, checked after every row's C
    rows[3][13] = "也许"  # row 5 N, checked before M
    rows[3][12] = "大文本"  # row 5 M
    copy = [list(r) for r in rows[:3]]
    copy[0][1] = "户籍登记信息表"  # row 8 B: close to the resource of row 2, checked last
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    for name, sheet_rows in (("资源目录", rows + copy), ("附表", register_rows(3)[6:])):
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, HEADER)
        for i, row in enumerate(sheet_rows, start=1):
            ws.write_row(i, 0, row)
    wb.worksheets()[1].write(1, 12, "长文本")  # 附表 row 2 M
    wb.close()
    path = tmp_path / "目录.xlsx"
    path.write_bytes(buf.getvalue())
    done = _cli("resource", "import-catalog", str(path), "--publisher", "ga-publisher")
    assert done.exit_code == 2
    listed = re.findall(r"- sheet=(\S+), row=(\d+), column=\S+ \((\w+)\)",
                        done.output.replace("\n", ""))
    assert listed == [("资源目录", "5", "F"), ("资源目录", "5", "M"), ("资源目录", "5", "N"),
                      ("资源目录", "6", "C"), ("资源目录", "8", "B"),
                      ("附表", "2", "M")], done.output
