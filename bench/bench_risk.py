"""Risk-report and generalization-search benchmark.

    python -m bench.bench_risk [--rows 10000000] [--search-rows 1000000] [--quick]

1. **Risk report** (``access.risk.measure``) over a table of ``--rows`` rows with 4
   quasi-identifiers (birth year, sex, district, occupation code) and one sensitive item
   (a diagnosis), against **one DuckDB ``GROUP BY``** of the same 4 columns (``count(*)`` per
   class, the least work any equivalence-class measure needs) in the same run and process.
   The report also computes k, the class-size histogram, the three risks and the sensitive
   item's distinct/entropy l-diversity and t-closeness (target ≤ 2× the GROUP BY alone).
2. **Generalization search** (``access.generalize.search``, target k ≥ 5 with ≤ 1 %
   suppression, l ≥ 2) on ``--search-rows`` rows of birth date, sex, address and household
   size, against **pycanon** computing k-anonymity and l-diversity of the table the search
   suggests (one evaluation of one node, in pandas) on the same rows.

Each contender is timed in this process, one after the other, after one warm-up of DuckDB;
the table is generated in DuckDB with a fixed seed.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import duckdb

from access import generalize, masking, risk
from access.masking import ColumnRule, MaskingRule
from bench.common import print_table
from catalog.models import DataItem, ItemKind, ItemType, Sensitivity

AS_OF = date(2026, 6, 30)


def _table(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    con.execute("SELECT setseed(0.42)")
    con.execute(f"""CREATE TABLE people AS SELECT
        1940 + CAST(floor(random() * 70) AS INTEGER) AS birth_year,
        CASE WHEN random() < 0.5 THEN '1' ELSE '2' END AS sex,
        '4403' || lpad(CAST(CAST(floor(random() * 10) AS INTEGER) AS VARCHAR), 2, '0')
          AS district,
        CAST(CAST(floor(random() * 40) AS INTEGER) AS VARCHAR) AS occupation,
        (['J45', 'E11', 'I10', 'C34', 'F32', 'K29', 'N18', 'B20'])[
          1 + CAST(floor(random() * 8) AS INTEGER)] AS diagnosis
        FROM range({rows})""")


def report_vs_group_by(rows: int) -> list[list[str]]:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    _table(con, rows)
    qis = ["birth_year", "sex", "district", "occupation"]
    cols = ", ".join(qis)
    con.execute(f"SELECT count(*) FROM (SELECT {cols}, count(*) FROM people GROUP BY ALL)")
    t = time.perf_counter()
    (classes,), = con.execute(f"SELECT count(*) FROM (SELECT {cols}, count(*) AS f "
                              f"FROM people GROUP BY ALL)").fetchall()
    base = time.perf_counter() - t
    t = time.perf_counter()
    con.execute(f"SELECT count(*) FROM (SELECT {cols}, diagnosis, count(*) AS f "
                f"FROM people GROUP BY ALL)").fetchall()
    base5 = time.perf_counter() - t
    t = time.perf_counter()
    report = risk.measure(con, "people", qis, k_target=5)
    qi_only = time.perf_counter() - t
    t = time.perf_counter()
    full = risk.measure(con, "people", qis, [risk.Sensitive("diagnosis")], k_target=5)
    with_sensitive = time.perf_counter() - t
    assert report.classes == classes == full.classes
    return [["one GROUP BY of the 4 QIs (baseline)", f"{base:.2f}", "1.00×", f"{classes:,}"],
            ["risk report: classes, k, histogram, 3 risks", f"{qi_only:.2f}",
             f"{qi_only / base:.2f}×", f"k={report.k}"],
            ["one GROUP BY of the 4 QIs + the sensitive item", f"{base5:.2f}",
             f"{base5 / base:.2f}×", ""],
            ["risk report + l, entropy l, t of 1 sensitive item", f"{with_sensitive:.2f}",
             f"{with_sensitive / base:.2f}× ({with_sensitive / base5:.2f}× the 5-column one)",
             f"l={full.sensitive[0].distinct_l} t={full.sensitive[0].t_closeness:.3f}"]]


def _item(name: str, type_: ItemType, kind: ItemKind | None = None,
          sensitivity: Sensitivity = Sensitivity.personal) -> DataItem:
    return DataItem(name=name, type=type_, kind=kind, sensitivity=sensitivity, is_key=False,
                    position=0, resource_id=0)


SEARCH_ITEMS = [_item("birth_date", ItemType.date, ItemKind.birth_date),
                _item("sex", ItemType.string, ItemKind.code),
                _item("address", ItemType.string, ItemKind.address),
                _item("household_size", ItemType.integer, sensitivity=Sensitivity.none),
                _item("diagnosis", ItemType.string, sensitivity=Sensitivity.sensitive_personal)]


def search_vs_pycanon(rows: int) -> list[list[str]]:
    import pandas as pd
    from pycanon import anonymity

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SELECT setseed(0.17)")
    con.execute(f"""CREATE TABLE data AS SELECT
        DATE '1940-01-01' + CAST(floor(random() * 25000) AS INTEGER) AS birth_date,
        CASE WHEN random() < 0.5 THEN 'M' ELSE 'F' END AS sex,
        '广东省深圳市' || (['南山区', '福田区', '罗湖区', '宝安区'])[1 + CAST(floor(random() * 4)
          AS INTEGER)] || (['粤海街道', '沙河街道', '蛇口街道'])[1 + CAST(floor(random() * 3)
          AS INTEGER)] || CAST(1 + CAST(floor(random() * 300) AS INTEGER) AS VARCHAR) || '号'
          AS address,
        1 + CAST(floor(random() * 6) AS INTEGER) AS household_size,
        (['a', 'b', 'c', 'd'])[1 + CAST(floor(random() * 4) AS INTEGER)] AS diagnosis
        FROM range({rows})""")
    keep = ColumnRule(rule=MaskingRule.keep)
    plan = {i.name: keep for i in SEARCH_ITEMS}
    qis = ["birth_date", "sex", "address", "household_size"]
    target = generalize.Target(k=5, max_suppression=0.01, l=2, sensitive=("diagnosis",))
    t = time.perf_counter()
    found = generalize.search(con, "data", SEARCH_ITEMS, plan, qis, target, as_of=AS_OF)
    seconds = time.perf_counter() - t
    final = masking.tighten(SEARCH_ITEMS, plan, found.changes)
    columns = masking.compile_columns(SEARCH_ITEMS, final, as_of=AS_OF)
    kept = [q for q in qis if final[q].rule is not MaskingRule.suppress]
    select = ", ".join(f'{c.sql} AS "{c.name}"' for c in columns)
    partition = ", ".join(kept)
    df: pd.DataFrame = con.execute(
        f"SELECT * FROM (SELECT {select} FROM data) QUALIFY count(*) OVER (PARTITION BY "
        f"{partition}) >= 5").df().astype({q: "string" for q in kept})
    t = time.perf_counter()
    k = anonymity.k_anonymity(df, kept)
    l_div = anonymity.l_diversity(df, kept, ["diagnosis"])
    theirs = time.perf_counter() - t
    changes = ", ".join(f"{n}→{generalize.describe(r)}" for n, r in found.changes.items())
    return [["govshare search (whole lattice, branch and bound)", f"{seconds:.2f}",
             f"{found.evaluated} nodes, loss {found.loss:.3f} (one level up "
             f"{found.loss_one_level:.3f}{'' if found.one_level_met else ', misses target'})",
             changes],
            ["pycanon k + l of the suggested table (1 node)", f"{theirs:.2f}",
             f"k={k} l={l_div}", f"{len(df):,} rows kept"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--search-rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows, search_rows = (200_000, 50_000) if args.quick else (args.rows, args.search_rows)
    print_table(f"Risk report on {rows:,} rows × 4 quasi-identifiers",
                ["contender", "seconds", "ratio", "result"], report_vs_group_by(rows))
    print_table(f"Generalization search on {search_rows:,} rows (k ≥ 5, ≤ 1 % suppressed, "
                "l ≥ 2)", ["contender", "seconds", "work", "result"],
                search_vs_pycanon(search_rows))


if __name__ == "__main__":
    main()
