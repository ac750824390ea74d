"""Quality benchmark: the full generated suite on a 12-column resource, three ways.

    python -m bench.bench_quality [--rows 10000000] [--quick]

* **govshare** — ``quality.validate.run_suite``: GX's SQL execution engine over the DuckDB
  segment (``quality.gx_duckdb``), plus masked example rows for every failing expectation.
* **(A) GX pandas** — the same expectation configurations through GX's pandas datasource on
  the whole table loaded into a DataFrame (the load is counted: it is part of that path).
* **(B) DuckDB floor** — one aggregate query computing, per column, the null count, the
  distinct count, min and max: the least work any profile of the table can do.

Each contender runs in its own child process (``bench.common.measure_in_child``), so peak RSS
is its own. Figures are ratios against (A) and (B) measured in the same run. The data is
generated in DuckDB with known defects: invalid resident-ID check characters, invalid
USCCs, malformed mobiles, birth dates that disagree with the ID, unknown codes, nulls in
required columns and duplicate keys. The per-rule unexpected counts of govshare and (A) are
compared: both must find exactly the same defects.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from bench.common import measure_in_child, mib, print_table

RUN_DATE = date(2025, 6, 30)
DISTRICTS = ["440303", "440304", "440305", "440306", "440307", "440308", "440309", "440310",
             "440311", "440312"]
DISTRICT_NAMES = ["罗湖区", "福田区", "南山区", "宝安区", "龙岗区", "盐田区", "龙华区", "坪山区",
                  "光明区", "大鹏新区"]
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

ITEMS: list[dict[str, Any]] = [
    {"name": "record_no", "type": "string", "required": True, "is_key": True},
    {"name": "id_number", "type": "string", "required": True, "kind": "resident_id",
     "sensitivity": "sensitive_personal"},
    {"name": "name", "type": "string", "required": True, "kind": "person_name",
     "sensitivity": "personal"},
    {"name": "gender", "type": "string", "kind": "code", "code_list": ["1", "2"]},
    {"name": "birth_date", "type": "date", "kind": "birth_date", "sensitivity": "personal"},
    {"name": "mobile", "type": "string", "kind": "mobile", "sensitivity": "personal"},
    {"name": "employer_uscc", "type": "string", "kind": "uscc"},
    {"name": "district", "type": "string", "kind": "code", "code_list": DISTRICTS},
    {"name": "address", "type": "string", "kind": "address", "sensitivity": "personal"},
    {"name": "amount", "type": "decimal", "kind": "amount"},
    {"name": "visits", "type": "integer"},
    {"name": "record_date", "type": "date", "required": True},
]
DATE_ITEM = "record_date"


def _ric_check(body: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = " + ".join(f"{w} * (ord(substr({body}, {i + 1}, 1)) - 48)"
                       for i, w in enumerate(weights))
    return f"substr('10X98765432', (({total}) % 11) + 1, 1)"


def _uscc_check(body: str) -> str:
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = " + ".join(f"{w} * (strpos('{USCC_ALPHABET}', substr({body}, {i + 1}, 1)) - 1)"
                       for i, w in enumerate(weights))
    return f"substr('{USCC_ALPHABET}', ((31 - (({total}) % 31)) % 31) + 1, 1)"


def make_data(path: str, rows: int | str) -> None:
    """A segment-like DuckDB file with table ``data`` and known defects."""
    rows = int(rows)
    con = duckdb.connect(path)
    con.execute("SET enable_progress_bar = false")
    con.execute(f"""
        CREATE TABLE base AS SELECT i, CAST(hash(i) >> 1 AS BIGINT) AS h,
            DATE '1950-01-01' + CAST(hash(i) % 25000 AS INTEGER) AS born,
            '4403' || lpad(CAST(hash(i + 7) % 100 AS VARCHAR), 2, '0') AS region,
            '91440300' || lpad(CAST(hash(i + 3) % 1000000000 AS VARCHAR), 9, '0') AS org
        FROM range({rows}) t(i)""")
    con.execute(f"""
        CREATE TABLE data AS
        WITH ids AS (
            SELECT *, region || strftime(born, '%Y%m%d')
                      || lpad(CAST(h % 1000 AS VARCHAR), 3, '0') AS body FROM base)
        SELECT
            printf('R%010d', CASE WHEN i % 2000 = 1 THEN i - 1 ELSE i END) AS record_no,
            CASE WHEN i % 500 = 3 THEN NULL
                 WHEN i % 100 = 5 THEN body || CASE WHEN {_ric_check('body')} = '0'
                                                    THEN '1' ELSE '0' END
                 ELSE body || {_ric_check('body')} END AS id_number,
            CASE WHEN i % 300 = 4 THEN NULL
                 ELSE ['张','王','李','赵','刘','陈','欧阳','诸葛'][1 + h % 8]
                      || ['伟','芳','娜','敏','静','强'][1 + (h >> 8) % 6] END AS name,
            CASE WHEN i % 1000 = 6 THEN '0' ELSE CAST(1 + h % 2 AS VARCHAR) END AS gender,
            CASE WHEN i % 200 = 7 THEN born + 1 ELSE born END AS birth_date,
            CASE WHEN i % 100 = 8 THEN '12' || lpad(CAST(h % 1000000000 AS VARCHAR), 9, '0')
                 ELSE '1' || CAST(3 + h % 7 AS VARCHAR)
                      || lpad(CAST((h >> 4) % 1000000000 AS VARCHAR), 9, '0') END AS mobile,
            CASE WHEN i % 100 = 9 THEN org || 'A'
                 ELSE org || {_uscc_check('org')} END AS employer_uscc,
            CASE WHEN i % 200 = 10 THEN '449999'
                 ELSE {DISTRICTS}[1 + h % 10] END AS district,
            '广东省深圳市' || {DISTRICT_NAMES}[1 + h % 10] || '科技路' || CAST(h % 999 AS VARCHAR)
                || '号' AS address,
            CAST(round(CAST(h % 1000000 AS DOUBLE) / 100, 2) AS DECIMAL(12, 2)) AS amount,
            CAST(h % 40 AS BIGINT) AS visits,
            DATE '{RUN_DATE.isoformat()}' - CAST(h % 365 AS INTEGER) AS record_date
        FROM ids ORDER BY i""")
    con.execute("DROP TABLE base")
    con.execute("CHECKPOINT")
    con.close()


def _items() -> list[Any]:
    from catalog.models import DataItem

    return [DataItem.model_validate({"position": i, "resource_id": 0, **item})
            for i, item in enumerate(ITEMS)]


# Row-expression rules (expect_rows_to_satisfy), as a provider would add them: a range over two
# items, date order, and a rule that fails a known share of rows (visits 39 with an amount of
# 5,000 or more: about 1.25% of them).
ROW_RULES = ["visits between 0 and 40 and amount >= 0",
             "record_date >= birth_date and year(record_date) >= 2000",
             "visits < 39 or amount < 5000"]


def suite_configs() -> list[dict[str, Any]]:
    from quality.expressions import parse
    from quality.rules import Dimension, Rule, generate

    items = _items()
    configs = [r.as_config() for r in generate(items, date_item=DATE_ITEM, previous_rows=None)]
    types = {i.name: str(i.type) for i in items}
    for n, expression in enumerate(ROW_RULES):
        kwargs = {"expression": expression, "column_list": list(parse(expression, types).items),
                  "item_types": types, "item_aliases": {}}
        configs.append(Rule("expect_rows_to_satisfy", kwargs, f"row:{n}",
                            Dimension.consistency, source="custom").as_config())
    return configs


def _summary(outcomes: list[tuple[str, bool, int | None, str | None]]) -> dict[str, Any]:
    return {rule: {"success": ok, "unexpected": n, "error": err} for rule, ok, n, err in outcomes}


def govshare(path: str) -> dict[str, Any]:
    started = time.perf_counter()
    import quality.gx_duckdb
    import quality.gx_rules  # noqa: F401  (GX itself: imported once per process, not per run)
    from quality.masked import ColumnMask
    from quality.validate import run_suite

    imported = time.perf_counter()
    items = _items()
    masks = {i.name: ColumnMask(i.kind, i.sensitivity) for i in items}
    result = run_suite([Path(path)], suite_configs(), masks, run_date=RUN_DATE)
    return {"import_seconds": imported - started, "seconds": time.perf_counter() - imported,
            "rules": _summary([(e.rule, e.success, e.unexpected_count, e.error)
                               for e in result.expectations])}


def gx_pandas(path: str) -> dict[str, Any]:
    started = time.perf_counter()
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    import quality.gx_rules  # noqa: F401  (registers the custom expectations)

    imported = time.perf_counter()
    con = duckdb.connect(path, read_only=True)
    con.execute("SET enable_progress_bar = false")
    frame = con.execute("SELECT * FROM data").df()
    con.close()
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("pandas").add_dataframe_asset("data") \
        .add_batch_definition_whole_dataframe("whole").get_batch(
            batch_parameters={"dataframe": frame})
    suite = context.suites.add(gx.ExpectationSuite(name="bench", expectations=[
        ExpectationConfiguration(**c).to_domain_obj() for c in _for_pandas(suite_configs())]))
    result = batch.validate(suite, expectation_parameters={"run_date": RUN_DATE.isoformat()},
                            result_format={"result_format": "BASIC",
                                           "partial_unexpected_count": 3})
    return {"import_seconds": imported - started, "seconds": time.perf_counter() - imported,
            "rules": _summary([(r.expectation_config.meta["rule"], r.success,
                                r.result.get("unexpected_count"),
                                (r.exception_info or {}).get("exception_message"))
                               for r in result.results])}


def _for_pandas(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same suite, with what pandas cannot take as SQL can: declared types as pandas
    dtypes, and date bounds as timestamps (pandas does not compare dates with strings)."""
    import pandas as pd

    # DuckDB hands DECIMAL to pandas as float64.
    dtypes = {"VARCHAR": "str", "BIGINT": "int64", "DOUBLE": "float64", "DECIMAL": "float64",
              "DATE": "datetime64[us]",
              "BOOLEAN": "bool", "TIMESTAMP": "datetime64[us]"}
    out = []
    for config in configs:
        kwargs = dict(config["kwargs"])
        if config["type"] == "expect_column_values_to_be_of_type":
            kwargs["type_"] = dtypes[kwargs["type_"]]
        if config["type"] == "expect_column_values_to_be_between" and \
                "row_count" not in config["meta"]["rule"]:
            for bound in ("min_value", "max_value"):
                value = kwargs[bound]
                value = RUN_DATE.isoformat() if isinstance(value, dict) else value
                kwargs[bound] = pd.Timestamp(value).to_pydatetime()
        out.append({**config, "kwargs": kwargs})
    return out


def duckdb_floor(path: str) -> dict[str, Any]:
    started = time.perf_counter()
    con = duckdb.connect(path, read_only=True)
    con.execute("SET enable_progress_bar = false")  # it prints to stdout, the result's channel
    parts = []
    for item in ITEMS:
        col = f'"{item["name"]}"'
        parts += [f"count(*) - count({col})", f"count(DISTINCT {col})", f"min({col})",
                  f"max({col})"]
    row = con.execute(f"SELECT count(*), {', '.join(parts)} FROM data").fetchone()
    con.close()
    return {"rows": int(row[0]) if row else 0, "seconds": time.perf_counter() - started,
            "import_seconds": 0.0}


def _compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Rules where GX-on-DuckDB and GX-on-pandas disagree on the number of defects."""
    return [rule for rule, found in ours.items()
            if rule in theirs and found["unexpected"] != theirs[rule]["unexpected"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="1M rows")
    args = parser.parse_args()
    rows = 1_000_000 if args.quick else args.rows
    work = Path(tempfile.mkdtemp(prefix="govshare-bench-quality-"))
    try:
        path = str(work / "segment.duckdb")
        # In a child too: Linux keeps a process's peak RSS across fork and exec, so a parent
        # that generated the data itself would lend its peak to every contender.
        measure_in_child("bench.bench_quality", "make_data", path, str(rows))
        floor = measure_in_child("bench.bench_quality", "duckdb_floor", path)
        ours = measure_in_child("bench.bench_quality", "govshare", path)
        pandas = measure_in_child("bench.bench_quality", "gx_pandas", path)
        _report(rows, Path(path).stat().st_size, floor, ours, pandas)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _report(rows: int, size: int, floor: dict[str, Any], ours: dict[str, Any],
            pandas: dict[str, Any]) -> None:
    """Time is measured inside each child after its imports (GX takes seconds to import,
    once per process: a server pays it at start-up, not per run); peak RSS includes them."""
    t_a, t_b, t_ours = (m["result"]["seconds"] for m in (pandas, floor, ours))

    def line(name: str, m: dict[str, Any]) -> list[str]:
        t = m["result"]["seconds"]
        return [name, f"{t:.2f}", f"{m['result']['import_seconds']:.1f}", mib(m["peak_rss"]),
                f"{t / t_a:.3f}", f"{t / t_b:.2f}"]

    print_table(f"Full generated suite ({len(ours['result']['rules'])} expectations) on "
                f"{rows:,} rows x {len(ITEMS)} columns (segment file {mib(size)})",
                ["contender", "seconds", "import s", "peak RSS", "time / (A)", "time / (B)"],
                [line("govshare: GX SQL engine on DuckDB", ours),
                 line("(A) GX pandas, whole table", pandas),
                 line("(B) DuckDB one aggregate query", floor)])
    print(f"\ngovshare is {t_a / t_ours:.1f}x faster than (A) and takes {t_ours / t_b:.2f}x "
          f"the time of (B); its peak RSS is {ours['peak_rss'] / pandas['peak_rss']:.2f}x "
          "that of (A).")
    disagree = _compare(ours["result"]["rules"], pandas["result"]["rules"])
    print("defect counts agree with (A) on every rule" if not disagree
          else f"defect counts DISAGREE with (A) on: {', '.join(disagree)}")
    errors = {r: f["error"] for r, f in ours["result"]["rules"].items() if f["error"]}
    if errors:
        print(f"errors in govshare's run: {errors}")
    print(json.dumps({"rows": rows, "segment_bytes": size,
                      "seconds": {"govshare": t_ours, "gx_pandas": t_a, "duckdb_floor": t_b},
                      "peak_rss": {"govshare": ours["peak_rss"], "gx_pandas": pandas["peak_rss"],
                                   "duckdb_floor": floor["peak_rss"]}}))


if __name__ == "__main__":
    main()
