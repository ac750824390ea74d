"""Aggregate releases with differential privacy: the noise OpenDP adds, the budget spent
across periodic releases, and the refusal once it is spent."""

from __future__ import annotations

import statistics
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from access import aggregate, delivery, planning
from access.aggregate import AggregateSpec, BudgetExhausted, Measure
from access.models import Delivery, Grant
from kernel import db
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    application,
    people_rows,
    register,
)


def _table() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT CASE WHEN i % 3 = 0 THEN 'a' ELSE 'b' END AS g, "
                "CAST(i % 100 AS DOUBLE) AS x FROM range(3000) r(i)")
    return con


def test_laplace_noise_has_the_scale_the_budget_implies() -> None:
    con = _table()
    spec = AggregateSpec(group_by=["g"], measures=[Measure(op="count")], epsilon=0.5,
                         budget=100, min_count=0)
    counts = [aggregate.release(con, spec, "t")[1][0][1] for _ in range(300)]
    # one query at ε 0.5 with sensitivity 1: Laplace scale b = 2, variance 2b² = 8
    assert abs(statistics.mean(counts) - 1000) < 0.6
    assert 5 < statistics.variance(counts) < 11.5
    names, rows, accounting = aggregate.release(con, AggregateSpec(
        group_by=["g"], measures=[Measure(op="count"), Measure(op="mean", item="x", lower=0,
                                                               upper=100)],
        epsilon=10, budget=100, min_count=0), "t")
    assert names == ["g", "count", "mean_x", "withheld"]
    assert accounting["queries"] == 2 and accounting["epsilon_per_query"] == 5
    exact = {"a": 49.5, "b": 49.5}
    for g, count, mean, withheld in rows:  # a generous ε: close to the exact figures
        assert abs(count - (1000 if g == "a" else 2000)) < 5 and not withheld
        assert abs(mean - exact[g]) < 1


def test_small_groups_are_withheld_and_shown_as_small_counts() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT CASE WHEN i < 3 THEN 'rare' ELSE 'common' END AS g "
                "FROM range(500) r(i)")
    spec = AggregateSpec(group_by=["g"], measures=[Measure(op="count")], epsilon=5,
                         min_count=20)
    _, rows, accounting = aggregate.release(con, spec, "t")
    assert rows[1] == ["rare", None, True] and accounting["withheld"] == 1
    assert aggregate.small_count(None, 20) == "<20" == aggregate.small_count(7, 20)
    assert aggregate.small_count(1234, 20) == "1,234"


def test_a_release_beyond_the_budget_is_refused_with_the_figures() -> None:
    spec = AggregateSpec(measures=[Measure(op="count")], epsilon=1.5, budget=4)
    aggregate.check_budget(spec, 2.5)
    with pytest.raises(BudgetExhausted, match=r"ε 3 of 4 used, 1 left, and a release costs "
                                              r"ε 1.5"):
        aggregate.check_budget(spec, 3, grant_id=7)
    with pytest.raises(ValueError, match="needs an item and its bounds"):
        Measure(op="sum", item="x")


def test_an_aggregate_grant_spends_its_budget_across_periodic_releases(
        aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path, rows=people_rows(120))
    spec = {"group_by": ["district"], "measures": [
        {"op": "count"}, {"op": "mean", "item": "household_size", "lower": 1, "upper": 10}],
        "epsilon": 1.0, "budget": 2.5, "min_count": 5}
    bad = aw.post("/applications", "SCJG", Role.requester, json=application(
        code, ["district", "household_size"], delivery_method="aggregate",
        aggregate=spec | {"group_by": ["income"]}))
    assert bad.status_code == 422 and "among the requested items" in bad.text
    filed = aw.post("/applications", "SCJG", Role.requester, json=application(
        code, ["district", "household_size"], delivery_method="aggregate",
        schedule="monthly", aggregate=spec))
    assert filed.status_code == 201, filed.text
    app_id = filed.json()["id"]
    assert aw.post(f"/applications/{app_id}/approve", "GA", Role.approver,
                   json={}).status_code == 200
    (first,) = aw.get("/deliveries", "SCJG", Role.requester).json()
    manifest = aw.get(f"/deliveries/{first['id']}/manifest", "SCJG",
                      Role.requester).json()["manifest"]
    released = manifest["aggregate"]
    assert released["privacy_spent"] == 1.0 and released["privacy_budget"] == 2.5
    assert released["mechanism"] == "laplace (OpenDP)" and released["groups"] == 4
    assert manifest["risk"] is None
    with db.session_scope(write=False) as session:
        stored = session.get(Delivery, first["id"])
        assert stored is not None and stored.path is not None
        path = planning.deliveries_dir() / stored.path
    table = pq.read_table(path).to_pylist()
    assert {r["district"] for r in table} == {"福田区", "罗湖区", "南山区", "宝安区"}
    assert all(abs(r["count"] - 30) < 15 for r in table)  # ε 0.5 per query: scale 2

    delivery.deliver(app_id, run_key="2099-01")  # the next period: 2 of 2.5 spent
    with pytest.raises(BudgetExhausted) as refused:
        delivery.deliver(app_id, run_key="2099-02")
    assert "privacy budget" in refused.value.detail and "ε 2 of 2.5 used" in refused.value.detail
    with db.session_scope(write=False) as session:
        grant = session.get(Grant, first["grant_id"])
        assert grant is not None and grant.privacy_spent == 2.0
        # the scheduler no longer considers it due
        assert app_id not in [a for a, _ in planning.due_periodic(session, date(2099, 3, 1))]
    out = aw.get(f"/grants/{first['grant_id']}", "SCJG", Role.requester).json()
    assert out["privacy_spent"] == 2.0 and out["privacy_budget"] == 2.5
