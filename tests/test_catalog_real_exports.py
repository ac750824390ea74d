"""Department exports as they really arrive: Chinese headers in GBK or UTF-8 with a BOM,
Excel workbooks with title rows and several sheets, padded and full-width cells, duplicate
headers and keys, exact decimals."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import xlsxwriter
from fastapi.testclient import TestClient

from catalog import ingest
from kernel.identity import Role
from tests.conftest import World
from tests.factories import population_meta, upload

API = "/api/v1/resources"
FIXTURES = Path(__file__).parent / "fixtures"

# Items as a civil-affairs export declares them: titles as in the file, field names given
# for some, derived (pinyin) for the others.
ITEMS: list[dict[str, Any]] = [
    {"name": "id_number", "title": "公民身份号码", "type": "string", "is_key": True,
     "kind": "resident_id", "sensitivity": "sensitive_personal"},
    {"name": "姓名", "type": "string", "kind": "person_name", "sensitivity": "personal"},
    {"title": "手机号码", "type": "string", "kind": "mobile", "sensitivity": "personal"},
    {"title": "出生日期", "type": "date"},
    {"title": "发放金额", "type": "decimal"},
]
HEADER = ["姓名", "公民身份号码", "出生日期", "发放金额", "手机号码"]  # not the declared order
ROWS = [
    ["  张三 ", "11010519491231002x", "1949-12-31", "1234.56", "１３８００１３８０００"],
    ["李四", "110105491231002", "1950/01/02", "0.10", "13800138001"],
    ["王五\u3000", "440304195001010012", "1951年2月3日", "12345678901234.5", " 13800138002"],
]


def _meta(**kw: Any) -> dict[str, Any]:
    return population_meta(**{"name": "高龄津贴发放明细", "items": ITEMS, "category": "208",
                              **kw})


def _csv(header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    lines = [",".join(header)] + [",".join(r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def _post(client: TestClient, world: World, meta: dict[str, Any], data: bytes,
          filename: str, **form: Any) -> Any:
    # The tests register one shape of allowance data many times: different resources.
    kw = upload(meta, data, filename, confirm_duplicate=True)
    kw["data"].update({k: str(v) for k, v in form.items()})
    return client.post(API, **kw, headers=world.headers("MZ", Role.publisher))


@pytest.fixture(name="mz")
def civil_affairs(world: World, client: TestClient) -> World:
    from kernel.identity import DepartmentKind
    from tests.world import create_departments

    world.tokens.update(create_departments(
        [("MZ", "市民政局", "Civil Affairs Bureau", DepartmentKind.line)]))
    return world


def _preview(client: TestClient, world: World, code: str) -> dict[str, Any]:
    r = client.get(f"{API}/{code}/preview", headers=world.headers("MZ", Role.publisher))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _segment_types(data_dir: Path, code: str) -> dict[str, str]:
    (seg,) = (data_dir / "warehouse" / code).glob("*.duckdb")
    con = duckdb.connect(str(seg), read_only=True)
    try:
        return dict(con.execute("SELECT column_name, data_type FROM information_schema.columns"
                                " WHERE table_name = 'data'").fetchall())
    finally:
        con.close()


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
def test_chinese_headers_in_any_order_gbk_and_bom(client: TestClient, mz: World,
                                                  data_dir: Path, encoding: str) -> None:
    r = _post(client, mz, _meta(), _csv(HEADER, ROWS, encoding), "发放明细.csv")
    assert r.status_code == 201, r.text
    body = r.json()
    names = [i["name"] for i in body["items"]]
    # 手机号码 → shou_ji_hao_ma: derived as pinyin when no field name was given.
    assert names == ["id_number", "姓名", "shou_ji_hao_ma", "chu_sheng_ri_qi", "fa_fang_jin_e"]
    # Normalisation, counted per column and step.
    assert body["normalised"] == {
        "id_number": {"upper_case": 1}, "姓名": {"trimmed": 2},
        "shou_ji_hao_ma": {"trimmed": 1, "half_width": 1}}
    preview = _preview(client, mz, body["code"])
    assert preview["columns"] == names
    by_id = {row[0]: row for row in preview["rows"]}
    assert by_id["11010519491231002X"][1:4] == ["张三", "13800138000", "1949-12-31"]
    # A 15-digit legacy ID is kept as written; year-first Chinese dates are read.
    assert by_id["110105491231002"][3] == "1950-01-02"
    assert by_id["440304195001010012"][1:4] == ["王五", "13800138002", "1951-02-03"]
    types = _segment_types(data_dir, body["code"])
    assert types["fa_fang_jin_e"] == "DECIMAL(16,2)"  # exact: 14 digits before, 2 after
    versions = client.get(f"{API}/{body['code']}/versions",
                          headers=mz.headers("MZ", Role.publisher)).json()
    assert versions[0]["normalised"] == body["normalised"]


def test_decimals_are_exact_in_storage(client: TestClient, mz: World, data_dir: Path) -> None:
    r = _post(client, mz, _meta(), _csv(HEADER, ROWS), "a.csv")
    code = r.json()["code"]
    (seg,) = (data_dir / "warehouse" / code).glob("*.duckdb")
    con = duckdb.connect(str(seg), read_only=True)
    got = sorted(v for (v,) in con.execute("SELECT fa_fang_jin_e FROM data").fetchall())
    con.close()
    assert got == [Decimal("0.10"), Decimal("1234.56"), Decimal("12345678901234.50")]


def test_declared_scale_refuses_extra_places_instead_of_rounding(client: TestClient,
                                                                 mz: World) -> None:
    items = [dict(i) for i in ITEMS]
    items[4] = {**items[4], "precision": 12, "scale": 1}
    r = _post(client, mz, _meta(items=items), _csv(HEADER, ROWS), "a.csv")
    assert r.status_code == 422
    (err,) = r.json()["errors"]
    assert err["column"] == "fa_fang_jin_e" and err["header"] == "发放金额"
    assert err["lines"] == [2, 3, 4]  # 1234.56, 0.10 (two places), 14 digits > DECIMAL(12,1)


def test_decimals_in_exponent_notation_are_refused(client: TestClient, mz: World) -> None:
    rows = [list(r) for r in ROWS]
    rows[1][3] = "1e3"  # DuckDB's cast would take it; an exact decimal item does not guess
    r = _post(client, mz, _meta(), _csv(HEADER, rows), "a.csv")
    assert r.status_code == 422
    (err,) = r.json()["errors"]
    assert err["header"] == "发放金额" and err["lines"] == [3]


def test_a_parquet_decimal_keeps_its_own_type_and_is_written_in_place(
        client: TestClient, mz: World, data_dir: Path, tmp_path: Path) -> None:
    """Every type known before reading (the file's DECIMAL(12,2)): the staged table is the
    segment's own, its check columns dropped and its columns renamed to the items'."""
    pq = tmp_path / "a.parquet"
    values = ", ".join(f"('{r[0].strip()}', '{r[1]}', DATE '1950-01-0{i + 1}', "
                       f"CAST('{r[3]}' AS DECIMAL(16,2)), '13800138000')"
                       for i, r in enumerate(ROWS))
    duckdb.connect().execute(
        f"COPY (SELECT * FROM (VALUES {values}) t(姓名, 公民身份号码, 出生日期, 发放金额, "
        f"手机号码)) TO '{pq}' (FORMAT parquet)")
    r = _post(client, mz, _meta(), pq.read_bytes(), "a.parquet")
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    types = _segment_types(data_dir, code)
    assert list(types) == ["id_number", "姓名", "shou_ji_hao_ma", "chu_sheng_ri_qi",
                           "fa_fang_jin_e"]
    assert types["fa_fang_jin_e"] == "DECIMAL(16,2)"
    (seg,) = (data_dir / "warehouse" / code).glob("*.duckdb")
    con = duckdb.connect(str(seg), read_only=True)
    got = sorted(v for (v,) in con.execute("SELECT fa_fang_jin_e FROM data").fetchall())
    con.close()
    assert got == [Decimal("0.10"), Decimal("1234.56"), Decimal("12345678901234.50")]


def test_duplicate_headers_are_named_with_both_positions(client: TestClient,
                                                         mz: World) -> None:
    header = [*HEADER, "姓名"]
    rows = [[*row, "x"] for row in ROWS]
    r = _post(client, mz, _meta(), _csv(header, rows), "a.csv")
    assert r.status_code == 422
    body = r.json()
    assert "'姓名'" in body["detail"] and "name_1" not in body["detail"]
    (err,) = body["errors"]
    assert err["column"] == "姓名" and err["positions"] == [1, 6]
    assert "columns 1 (A) and 6 (F)" in err["problem"]


@pytest.mark.parametrize("sorted_rows", [50_000_000, 0], ids=["sorted", "grouped"])
def test_duplicate_keys_in_one_file_name_the_key_and_lines(
        client: TestClient, mz: World, sorted_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Hashes sorted in memory, or (beyond the bound) grouped by DuckDB: the same answer.
    monkeypatch.setattr(ingest, "SORTED_KEY_ROWS", sorted_rows)
    rows = [*ROWS, ["赵六", "11010519491231002X", "1949-12-31", "1", "13800138009"]]
    r = _post(client, mz, _meta(), _csv(HEADER, rows), "a.csv")
    assert r.status_code == 422
    (err,) = r.json()["errors"]
    # The lower-case x of line 2 was normalised first: the two are the same person.
    assert err["key"] == ["11010519491231002X"] and err["lines"] == [2, 5]
    assert "11010519491231002X" in r.json()["detail"]
    assert client.get(API, headers=mz.headers("MZ", Role.publisher)).json()["total"] == 0


def test_an_append_repeating_keys_is_refused_naming_the_lines(client: TestClient,
                                                              mz: World) -> None:
    code = _post(client, mz, _meta(), _csv(HEADER, ROWS), "a.csv").json()["code"]
    more = [["孙八", "440304195001010020", "1950-01-01", "5", "13800138010"], ROWS[1]]
    r = client.post(f"{API}/{code}/versions", data={"mode": "append"},
                    files={"file": ("b.csv", _csv(HEADER, more), "text/csv")},
                    headers=mz.headers("MZ", Role.publisher))
    assert r.status_code == 422
    (err,) = r.json()["errors"]
    assert err["key"] == ["110105491231002"] and err["lines"] == [3]
    assert "is already in the resource's data" in err["problem"]
    res = client.get(f"{API}/{code}", headers=mz.headers("MZ", Role.publisher)).json()
    assert res["current_version"] == 1 and res["row_count"] == 3
    ok = client.post(f"{API}/{code}/versions", data={"mode": "append"},
                     files={"file": ("b.csv", _csv(HEADER, more[:1]), "text/csv")},
                     headers=mz.headers("MZ", Role.publisher))
    assert ok.status_code == 201 and ok.json()["total_rows"] == 4


def test_invalid_values_name_header_and_lines(client: TestClient, mz: World) -> None:
    rows = [*ROWS, ["赵六", "440304195001010039", "明天", "12.5.1", "13800138009"]]
    r = _post(client, mz, _meta(), _csv(HEADER, rows), "a.csv")
    assert r.status_code == 422
    errors = {e["header"]: e for e in r.json()["errors"]}
    assert set(errors) == {"出生日期", "发放金额"}
    assert errors["出生日期"]["lines"] == [5] and errors["发放金额"]["lines"] == [5]


def test_titles_and_names_must_not_collide() -> None:
    from pydantic import ValidationError

    from catalog.schemas import ResourceIn

    items = [{"name": "xm", "title": "姓名", "type": "string"},
             {"name": "姓名", "type": "string"}]
    with pytest.raises(ValidationError, match="distinct"):
        ResourceIn.model_validate(_meta(items=items))
    with pytest.raises(ValidationError, match="field name or a title"):
        ResourceIn.model_validate(_meta(items=[{"type": "string"}]))
    with pytest.raises(ValidationError):
        ResourceIn.model_validate(_meta(items=[{"name": "姓 名", "type": "string"}]))


def test_derived_names_are_pinyin_and_unique() -> None:
    from catalog.headers import derive_name

    taken: set[str] = set()
    names = []
    for title in ["公民身份号码", "公民身份号码", "2025年金额（元）", "Email地址"]:
        names.append(derive_name(title, taken))
        taken.add(names[-1])
    assert names == ["gong_min_shen_fen_hao_ma", "gong_min_shen_fen_hao_ma_2",
                     "_2025_nian_jin_e_yuan", "email_di_zhi"]


# --- Excel -------------------------------------------------------------------------------


def _xlsx(sheets: dict[str, list[list[Any]]]) -> bytes:
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    date_fmt = wb.add_format({"num_format": "yyyy年m月d日"})  # display text is not ISO
    money = wb.add_format({"num_format": "#,##0.00"})
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                if isinstance(v, dt.date):
                    ws.write_datetime(r, c, dt.datetime.combine(v, dt.time()), date_fmt)
                elif isinstance(v, float):
                    ws.write_number(r, c, v, money)
                elif v is not None:
                    ws.write(r, c, v)
    wb.close()
    return buf.getvalue()


EXCEL_ROWS: list[list[Any]] = [
    ["  张三 ", "11010519491231002x", dt.date(1949, 12, 31), 1234.56, "１３８００１３８０００"],
    # A 15-digit legacy ID typed as a number: its digits, not 1.10105491231002E+14.
    ["李四", 110105491231002, dt.date(1950, 1, 2), 0.1, 13800138001],
    ["王五", "440304195001010012", "1951-02-03", 300, "13800138002"],
]


def _workbook() -> bytes:
    return _xlsx({
        "填表说明": [["本表由各区民政局填报"], ["金额单位：元"]],
        "发放明细": [["2025年高龄津贴发放明细表"], ["填报单位：市民政局", None, "2025年12月"],
                 HEADER, *EXCEL_ROWS, [None] * 5],
    })


def test_xlsx_with_title_rows_on_the_second_sheet(client: TestClient, mz: World,
                                                  data_dir: Path) -> None:
    r = _post(client, mz, _meta(), _workbook(), "发放明细.xlsx")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["row_count"] == 3
    assert body["normalised"] == {
        "id_number": {"upper_case": 1}, "姓名": {"trimmed": 1},
        "shou_ji_hao_ma": {"half_width": 1}}
    rows = {row[0]: row for row in _preview(client, mz, body["code"])["rows"]}
    assert rows["110105491231002"][1:] == ["李四", "13800138001", "1950-01-02", "0.10"]
    assert rows["11010519491231002X"][1:] == ["张三", "13800138000", "1949-12-31", "1234.56"]
    assert _segment_types(data_dir, body["code"])["fa_fang_jin_e"] == "DECIMAL(6,2)"
    versions = client.get(f"{API}/{body['code']}/versions",
                          headers=mz.headers("MZ", Role.publisher)).json()
    assert versions[0]["source_format"] == "xlsx"


def test_xlsx_sheet_and_header_row_given(client: TestClient, mz: World) -> None:
    data = _workbook()
    for form in ({"sheet": "发放明细"}, {"sheet": 2, "header_row": 3}):
        r = _post(client, mz, _meta(name=f"高龄津贴{len(form)}"), data, "a.xlsx", **form)
        assert r.status_code == 201, r.text
    r = _post(client, mz, _meta(), data, "a.xlsx", sheet="填表说明")
    assert r.status_code == 422 and "填表说明" in r.json()["detail"]
    r = _post(client, mz, _meta(), data, "a.xlsx", sheet="汇总")
    assert r.status_code == 422 and "发放明细" in r.json()["detail"]
    r = _post(client, mz, _meta(), data, "a.xlsx", sheet=2, header_row=2)
    assert r.status_code == 422  # row 2 is a title row: the items are missing


def test_xlsx_refusals_name_sheet_rows(client: TestClient, mz: World) -> None:
    bad = [*EXCEL_ROWS, ["赵六", "440304195001010039", "不详", 5.0, "13800138009"]]
    data = _xlsx({"发放明细": [["2025年高龄津贴发放明细表"], HEADER, *bad]})
    r = _post(client, mz, _meta(), data, "a.xlsx")
    assert r.status_code == 422
    (err,) = r.json()["errors"]
    assert err["header"] == "出生日期" and err["lines"] == [6]
    assert "on rows 6 of sheet '发放明细'" in err["problem"]


def test_xls_fixture(client: TestClient, mz: World) -> None:
    items = [{"name": "id_number", "title": "公民身份号码", "type": "string", "is_key": True,
              "kind": "resident_id"},
             {"title": "姓名", "type": "string"}, {"title": "出生日期", "type": "date"},
             {"title": "户内人数", "type": "integer"}, {"title": "发放金额", "type": "decimal"}]
    r = _post(client, mz, _meta(items=items), (FIXTURES / "allowance.xls").read_bytes(),
              "allowance.xls")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["row_count"] == 3
    assert body["normalised"] == {"id_number": {"upper_case": 1}, "xing_ming": {"trimmed": 1}}
    rows = {row[0]: row for row in _preview(client, mz, body["code"])["rows"]}
    assert rows["110105491231002"][1:] == ["赵六", "1949-12-31", 1, "300.00"]


def test_refusals_speak_chinese_when_asked(client: TestClient, mz: World) -> None:
    import json as _json

    from catalog.messages import ENGLISH
    from govshare.web import i18n

    en, zh = i18n.catalog("en"), i18n.catalog("zh-CN")
    assert {k: en[k] for k in ENGLISH} == ENGLISH and set(ENGLISH) <= set(zh)
    header = [*HEADER, "姓名"]
    kw = upload(_meta(), _csv(header, [[*row, "x"] for row in ROWS]), "a.csv")
    r = client.post(API, **kw, headers={**mz.headers("MZ", Role.publisher),
                                        "Accept-Language": "zh-CN,zh;q=0.9"})
    assert r.status_code == 422
    body = r.json()
    assert body["detail"].startswith("文件表头有重复的列名（'姓名'）")
    assert "第 1 列（A）和第 6 列（F）" in _json.dumps(body["errors"], ensure_ascii=False)
