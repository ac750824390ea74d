"""Excel benchmark: registering a large .xlsx (Chinese headers under two title rows), against
reading the same sheet with python-calamine alone.

    python -m bench.bench_excel [--rows 1000000]

Both contenders run in their own child process. The baseline opens the workbook and iterates
every row of the sheet as Python values (``CalamineSheet.iter_rows``): the floor for getting
the cells out of the file at all. govshare additionally stages and hashes the upload, checks
the zip, finds the header below the title rows, turns typed cells into canonical text in
Arrow batches, loads them into DuckDB, normalises and type-checks every cell, checks the key,
and writes the segment.
"""

import argparse
import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

from bench.common import measure_in_child, mib, report_registration

ITEMS = [
    {"name": "id_number", "title": "公民身份号码", "type": "string", "is_key": True,
     "kind": "resident_id", "sensitivity": "sensitive_personal"},
    {"title": "姓名", "type": "string", "sensitivity": "personal", "kind": "person_name"},
    {"title": "手机号码", "type": "string", "sensitivity": "personal", "kind": "mobile"},
    {"title": "出生日期", "type": "date"},
    {"title": "所在区", "type": "string"},
    {"title": "发放金额", "type": "decimal"},
    {"title": "户内人数", "type": "integer"},
]
HEADER = ["公民身份号码", "姓名", "手机号码", "出生日期", "所在区", "发放金额", "户内人数"]
DISTRICTS = ["福田区", "罗湖区", "南山区", "宝安区"]
META = {"name": "高龄津贴发放明细", "category": "208", "items": ITEMS,
        "sharing_type": "conditional", "sharing_condition": "依申请", "update_cycle": "monthly"}
DEPARTMENT = {"code": "MZ", "name_zh": "市民政局", "name_en": "Civil Affairs Bureau"}


def make_xlsx(path: Path, rows: int) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    ws = wb.add_worksheet("发放明细")
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, ["2025年高龄津贴发放明细表"])
    ws.write_row(1, 0, ["填报单位：市民政局"])
    ws.write_row(2, 0, HEADER)
    base = dt.datetime(1950, 1, 1)
    for i in range(rows):
        r = i + 3
        ws.write_string(r, 0, f"110101{i:012d}")  # unique: the key
        ws.write_string(r, 1, f"张{i % 997}")
        ws.write_string(r, 2, f"138{i % 100000000:08d}")
        ws.write_datetime(r, 3, base + dt.timedelta(days=i % 20000), date_fmt)
        ws.write_string(r, 4, DISTRICTS[i % 4])
        ws.write_number(r, 5, (i % 100000) / 4)
        ws.write_number(r, 6, i % 40)
    wb.close()


def baseline(xlsx_path: str) -> int:
    from python_calamine import CalamineWorkbook

    with CalamineWorkbook.from_path(xlsx_path) as wb:
        sheet = wb.get_sheet_by_name("发放明细")
        return sum(1 for _ in sheet.iter_rows()) - 3  # less the title rows and the header


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k rows")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    work = Path(tempfile.mkdtemp(prefix="govshare-bench-excel-"))
    try:
        xlsx_path = work / "allowance.xlsx"
        make_xlsx(xlsx_path, rows)
        size = xlsx_path.stat().st_size
        base = measure_in_child("bench.bench_excel", "baseline", str(xlsx_path))
        ours = measure_in_child("bench.common", "register_file", str(xlsx_path),
                                str(work / "gs"), json.dumps(META), "发放明细.xlsx",
                                json.dumps(DEPARTMENT))
        report_registration(f"Registering a {rows:,}-row .xlsx ({mib(size)})",
                            "calamine iter_rows", rows, base, ours, xlsx_bytes=size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
