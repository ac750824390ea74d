"""Upload benchmark: registering a large CSV, against a bare DuckDB read_csv of the same file.

    python -m bench.bench_upload [--rows 10000000]

Both contenders run in their own child process (fresh interpreter) so that peak memory is
their own. The baseline is ``CREATE TABLE AS SELECT * FROM read_csv(file)`` into a new DuckDB
file: the floor for getting the rows into DuckDB at all. govshare additionally streams the
upload into staging while hashing it, checks it is UTF-8, casts to the declared types with
rejected-row capture, and renames the finished segment into place.
"""

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import duckdb

from bench.common import measure_in_child, mib, report_registration

ITEMS = [
    {"name": "id_number", "type": "string", "required": True, "kind": "resident_id",
     "sensitivity": "sensitive_personal"},
    {"name": "name", "type": "string", "sensitivity": "personal"},
    {"name": "mobile", "type": "string", "sensitivity": "personal"},
    {"name": "birth_date", "type": "date"},
    {"name": "district", "type": "string"},
    {"name": "amount", "type": "decimal"},
    {"name": "visits", "type": "integer"},
]
META = {"name": "门诊就诊记录", "category": "202", "items": ITEMS,
        "sharing_type": "conditional", "sharing_condition": "依申请", "update_cycle": "daily"}
DEPARTMENT = {"code": "WJW", "name_zh": "市卫生健康委员会", "name_en": "Health Commission"}


def make_csv(path: Path, rows: int) -> None:
    duckdb.connect().execute(f"""
        COPY (SELECT
            printf('110101%08d%04d', 19500101 + (i % 50) * 10000 + (i % 12) * 100 + i % 28,
                   i % 10000) AS id_number,
            '张' || (i % 997)::VARCHAR AS name,
            printf('138%08d', i % 100000000) AS mobile,
            DATE '1950-01-01' + CAST(i % 20000 AS INTEGER) AS birth_date,
            ['福田区','罗湖区','南山区','宝安区'][1 + i % 4] AS district,
            round((i % 100000) / 7.0, 2) AS amount,
            i % 40 AS visits
        FROM range({rows}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")


def baseline(csv_path: str, out_dir: str) -> int:
    con = duckdb.connect(str(Path(out_dir) / "baseline.duckdb"))
    con.execute("CREATE TABLE data AS SELECT * FROM read_csv(?)", [csv_path])
    row = con.execute("SELECT count(*) FROM data").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="1M rows")
    args = parser.parse_args()
    rows = 1_000_000 if args.quick else args.rows
    work = Path(tempfile.mkdtemp(prefix="govshare-bench-upload-"))
    try:
        csv_path = work / "visits.csv"
        make_csv(csv_path, rows)
        size = csv_path.stat().st_size
        base = measure_in_child("bench.bench_upload", "baseline", str(csv_path), str(work))
        ours = measure_in_child("bench.common", "register_file", str(csv_path),
                                str(work / "gs"), json.dumps(META), "visits.csv",
                                json.dumps(DEPARTMENT))
        report_registration(f"Upload of a {rows:,}-row CSV ({mib(size)})",
                            "duckdb read_csv", rows, base, ours, csv_bytes=size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
