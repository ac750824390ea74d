"""Row-expression rules (``expect_rows_to_satisfy``): parsed in Python, compiled to typed SQL
over the declared items, counted in the consistency dimension."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from kernel.identity import Role
from quality.expressions import ExpressionError, on_pandas, parse
from tests.conftest import World
from tests.test_quality_support import API, quiet_quality, register, run_queued

__all__ = ["quiet_quality"]

COUNTS = [
    {"name": "office", "title": "办理点", "type": "string", "required": True, "is_key": True},
    {"name": "online_cases", "title": "网上办件量", "type": "integer"},
    {"name": "offline_cases", "title": "线下办件量", "type": "integer"},
    {"name": "total_cases", "title": "办件总量", "type": "integer"},
    {"name": "start_date", "title": "开始日期", "type": "date"},
    {"name": "end_date", "title": "结束日期", "type": "date"},
]
RULE = "abs(online_cases + offline_cases - total_cases) <= 0.01 * total_cases"
BROKEN = {3, 7, 11}  # rows whose parts do not add up to the total (beyond 1%)


def _counts(n: int = 20) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        online, offline = 100 + 7 * i, 50 + 3 * i
        total = online + offline
        if i in BROKEN:
            total += 40
        elif i == 5:
            total += 1  # within 1%: passes
        rows.append({"office": f"窗口{i:02d}", "online_cases": online, "offline_cases": offline,
                     "total_cases": total, "start_date": "2026-01-01", "end_date": "2026-01-31"})
    return rows


def _register(client: TestClient, world: World) -> str:
    return register(client, world, _counts(), items=COUNTS, name="政务服务办件量统计",
                    name_en="Service case counts", category="101")


@pytest.mark.usefixtures("quiet_quality")
def test_parts_that_do_not_add_up_fail_exactly_those_rows(client: TestClient,
                                                          world: World) -> None:
    code = _register(client, world)
    pub = world.headers("GA", Role.publisher)
    url = f"{API}/quality/resources/{code}/expectations"
    for body in ({"type": "expect_rows_to_satisfy", "dimension": "consistency",
                  "kwargs": {"expression": RULE}, "note": "线上+线下=总量（1%以内）"},
                 {"type": "expect_rows_to_satisfy", "dimension": "consistency",
                  "kwargs": {"expression": "开始日期 <= 结束日期"}, "note": "起止日期有序"}):
        r = client.post(url, headers=pub, json=body)
        assert r.status_code == 201, r.text
    # The bureau may write it too: no personal item in it.
    bureau = client.post(url, headers=world.headers("SJJ", Role.auditor), json={
        "type": "expect_rows_to_satisfy", "dimension": "consistency",
        "kwargs": {"expression": "total_cases >= 0 and year(开始日期) between 2000 and 2100"}})
    assert bureau.status_code == 201, bureau.text
    run_queued()
    runs = client.get(f"{API}/quality/resources/{code}/runs", headers=pub).json()
    detail = client.get(f"{API}/quality/runs/{runs[0]['id']}", headers=pub).json()
    assert detail["status"] == "succeeded", detail["error"]
    sums = next(e for e in detail["expectations"] if e["kwargs"].get("expression") == RULE)
    assert (sums["success"], sums["unexpected_count"], sums["element_count"]) == (False, 3, 20)
    assert sums["dimension"] == "consistency" and sums["error"] is None
    assert sorted(e["office"] for e in sums["examples"]) == [f"窗口{i:02d}" for i in sorted(BROKEN)]
    others = [e for e in detail["expectations"]
              if e["type"] == "expect_rows_to_satisfy" and e is not sums]
    assert [e["success"] for e in others] == [True, True]
    # Consistency: the mean pass ratio of its checks — (17/20 + 1 + 1) / 3.
    assert detail["score"]["consistency"] == round(100 * (17 / 20 + 2) / 3, 2)
    failing = detail["score"]["failing"]["consistency"]
    assert [f["name"] for f in failing] == ["线上+线下=总量（1%以内）"]
    assert failing[0]["share"] == 0.15 and failing[0]["expected"]["expression"] == RULE


@pytest.mark.usefixtures("quiet_quality")
@pytest.mark.parametrize(("expression", "position", "says"), [
    ("online_cases + office > 1", 16, "'+' works on numbers"),
    ("办件总量 < 线下", 8, "not a data item"),
    ("onlin_cases > 1", 1, "not a data item"),
    ("total_cases >= 开始日期", 13, "cannot compare number with date"),
    ("abs(total_cases) <=", 20, "unexpected the end"),
    ("total_cases > 1; DROP TABLE data", 16, "unexpected character"),
])
def test_a_bad_expression_is_a_422_naming_the_position(client: TestClient, world: World,
                                                       expression: str, position: int,
                                                       says: str) -> None:
    code = _register(client, world)
    r = client.post(f"{API}/quality/resources/{code}/expectations",
                    headers=world.headers("GA", Role.publisher),
                    json={"type": "expect_rows_to_satisfy", "dimension": "consistency",
                          "kwargs": {"expression": expression}})
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "kwargs.expression" and error["position"] == position, error
    assert says in error["message"] and f"position {position}" in r.json()["detail"]


def test_sql_and_pandas_agree_and_nulls_fail() -> None:
    import duckdb
    from sqlalchemy.dialects import postgresql

    from quality.expressions import to_sql

    types = {"a": "integer", "b": "decimal", "s": "string", "d": "date"}
    frame = pd.DataFrame({"a": [1, 2, None, 4], "b": [1.0, 2.5, 3.0, None],
                          "s": ["x", "it's", None, "长文本"],
                          "d": pd.to_datetime(["2024-01-31", "2023-12-01", None, "2024-02-29"])})
    con = duckdb.connect()
    con.register("frame", frame)
    for text in ("a + b >= 2", "coalesce(a, 0) * 2 < 9", "length(s) = 3 or s = 'it''s'",
                 "month(d) = 1 and year(d) = 2024", "s is null or a / b > 0.5",
                 "not (a between 2 and 3)", "round(b, 1) = 2.5", "d >= date '2024-01-01'"):
        parsed = parse(text, types)
        sql = str(to_sql(parsed).compile(dialect=postgresql.dialect(),
                                         compile_kwargs={"literal_binds": True}))
        in_sql = [bool(r[0]) for r in con.execute(f"SELECT {sql} FROM frame").fetchall()]
        assert in_sql == on_pandas(parsed, frame).tolist(), text
    with pytest.raises(ExpressionError):
        parse("a = null", types)
