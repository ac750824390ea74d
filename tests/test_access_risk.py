"""Risk reports against pycanon (an independent implementation), and the generalization
search on a synthetic population of known structure."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from pycanon import anonymity, metrics

from access import generalize, masking, risk
from access.masking import ColumnRule, Generalization, MaskingRule
from catalog.models import DataItem, ItemKind, ItemType, Sensitivity
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    file_app,
    people_rows,
    register,
)

AS_OF = date(2026, 5, 1)


def item(name: str, type_: ItemType = ItemType.string, kind: ItemKind | None = None,
         sensitivity: Sensitivity = Sensitivity.personal) -> DataItem:
    return DataItem(name=name, type=type_, kind=kind, sensitivity=sensitivity, is_key=False,
                    position=0, resource_id=0)


def table(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(20, 50, n) // 5, "sex": rng.choice(["M", "F"], n),
        "zip": rng.choice(["518000", "518040", "518052", "518101"], n),
        "diagnosis": rng.choice(["flu", "hiv", "cold", "none", "asthma"], n,
                                p=[.4, .05, .25, .2, .1]),
        "income": rng.integers(0, 25, n)})


@pytest.mark.parametrize(("seed", "n", "qis"), [
    (1, 600, ["age", "sex", "zip"]), (2, 250, ["age", "sex", "zip"]), (3, 1000, ["zip"]),
    (4, 150, ["age", "zip"])])
def test_k_l_t_and_risks_agree_with_pycanon(seed: int, n: int, qis: list[str]) -> None:
    df = table(seed, n)
    con = duckdb.connect()
    con.register("t", df)
    report = risk.measure(con, "t", qis, [risk.Sensitive("diagnosis"),
                                          risk.Sensitive("income", numeric=True)], k_target=5)
    assert report.k == anonymity.k_anonymity(df, qis)
    assert report.prosecutor_max == pytest.approx(metrics.max_rir(df, qis))
    sizes = [len(ec) for ec in df.groupby(qis).groups.values()]
    assert report.classes == len(sizes)
    # ARX's average prosecutor risk is per record (J / n); pycanon's average_rir is per class.
    assert report.prosecutor_avg == pytest.approx(len(sizes) / n)
    assert metrics.average_rir(df, qis) == pytest.approx(np.mean([1 / s for s in sizes]))
    assert report.records_below_target == pytest.approx(sum(s for s in sizes if s < 5) / n)
    # No row filters: the sample is the population, journalist = prosecutor, marketer = J / n.
    assert (report.journalist_max, report.marketer) == pytest.approx(
        (report.prosecutor_max, report.prosecutor_avg))
    assert sum(b["records"] for b in report.size_histogram) == n
    for s in report.sensitive:
        assert s.distinct_l == anonymity.l_diversity(df, qis, [s.name])
        # pycanon truncates exp(min entropy) with int(), so exp(ln 3) = 2.9999999999999996
        # becomes 2 there; ours is the real number.
        assert s.entropy_l is not None
        theirs = anonymity.entropy_l_diversity(df, qis, [s.name])
        assert theirs in (math.floor(s.entropy_l - 1e-9), math.floor(s.entropy_l + 1e-9))
        assert s.t_closeness == pytest.approx(anonymity.t_closeness(df, qis, [s.name]),
                                              abs=1e-9)
    assert [s.distance for s in report.sensitive] == ["equal", "ordered"]


def test_journalist_and_marketer_risk_against_the_whole_table() -> None:
    df = table(5, 2000)
    sample = df[df["income"] < 20]
    qis = ["age", "sex", "zip"]
    con = duckdb.connect()
    con.register("population", df)
    con.register("sample", sample)
    report = risk.measure(con, "sample", qis, k_target=3, population="population")
    f = sample.groupby(qis).size()
    big_f = df.groupby(qis).size().reindex(f.index)
    assert report.population == "table" and report.population_rows == len(df)
    assert report.journalist_max == pytest.approx((1 / big_f).max())
    assert report.marketer == pytest.approx((f / big_f).sum() / len(sample))
    assert report.journalist_max <= report.prosecutor_max
    assert report.marketer <= report.prosecutor_avg


def test_null_is_a_value_and_empty_tables_report_nothing() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (NULL, 'a'), (NULL, 'b'), "
                "('x', 'a'), ('x', NULL)) v(q, s)")
    report = risk.measure(con, "t", ["q"], [risk.Sensitive("s")], k_target=2)
    assert (report.k, report.classes) == (2, 2)
    assert report.sensitive[0].distinct_l == 2
    empty = risk.measure(con, "(SELECT * FROM t WHERE false)", ["q"], [risk.Sensitive("s")])
    assert (empty.rows, empty.k, empty.sensitive[0].distinct_l) == (0, None, None)


def test_quasi_identifiers_and_sensitive_items_are_proposed_from_kinds_and_names() -> None:
    items = [item("id_number", kind=ItemKind.resident_id), item("name", kind=ItemKind.person_name),
             item("birth_date", ItemType.date, ItemKind.birth_date),
             item("sex", kind=ItemKind.code, sensitivity=Sensitivity.none),
             item("home_address", kind=ItemKind.address), item("职业"),
             item("diagnosis", sensitivity=Sensitivity.sensitive_personal),
             item("household_size", ItemType.integer, sensitivity=Sensitivity.none)]
    names = [i.name for i in items]
    qis = risk.propose_quasi_identifiers(items, names)
    assert qis == ["birth_date", "sex", "home_address", "职业"]
    assert risk.propose_sensitive(items, names, qis) == ["diagnosis"]
    assert risk.propose_quasi_identifiers(items, ["sex"]) == ["sex"]


# --- the generalization search ----------------------------------------------------------------

POPULATION_ITEMS = [item("birth_date", ItemType.date, ItemKind.birth_date),
                    item("address", kind=ItemKind.address),
                    item("household_size", ItemType.integer, sensitivity=Sensitivity.none),
                    item("diagnosis", sensitivity=Sensitivity.sensitive_personal)]


def population(con: duckdb.DuckDBPyConnection, n: int) -> None:
    """Known structure: birth dates over 1980–1989 (a birth month is shared by ~n/120 people,
    a day by ~n/3650), four districts × three streets × 200 house numbers, household sizes
    1–6 and four diagnoses, all independent and uniform."""
    con.execute("SELECT setseed(0.17)")
    con.execute(f"""CREATE TABLE data AS SELECT
        DATE '1980-01-01' + CAST(floor(random() * 3653) AS INTEGER) AS birth_date,
        '广东省深圳市' || (['南山区', '福田区', '罗湖区', '宝安区'])[1 + CAST(floor(random() * 4)
          AS INTEGER)] || (['粤海街道', '沙河街道', '蛇口街道'])[1 + CAST(floor(random() * 3)
          AS INTEGER)] || CAST(1 + CAST(floor(random() * 200) AS INTEGER) AS VARCHAR) || '号'
          AS address,
        1 + CAST(floor(random() * 6) AS INTEGER) AS household_size,
        (['a', 'b', 'c', 'd'])[1 + CAST(floor(random() * 4) AS INTEGER)] AS diagnosis
        FROM range({n})""")


def test_the_suggested_plan_meets_the_target_with_less_loss_than_one_level_up() -> None:
    con = duckdb.connect()
    population(con, 30_000)
    keep = ColumnRule(rule=MaskingRule.keep)
    plan = {i.name: keep for i in POPULATION_ITEMS}
    qis = ["birth_date", "address", "household_size"]
    target = generalize.Target(k=5, max_suppression=0.05)
    best = generalize.search(con, "data", POPULATION_ITEMS, plan, qis, target, as_of=AS_OF)
    assert best.met and best.suppressed_share <= 0.05
    assert best.hierarchy["birth_date"] == [
        "keep", "generalize:month", "generalize:year", "generalize:age_band_5",
        "generalize:age_band", "suppress"]
    assert best.hierarchy["household_size"][1:3] == ["generalize:range(5)",
                                                     "generalize:range(10)"]
    one_up = generalize.search(con, "data", POPULATION_ITEMS, plan, qis, target, as_of=AS_OF,
                               fixed=(1, 1, 1))
    assert one_up.met, "every QI one level up meets this target too"
    assert best.loss < one_up.loss
    assert best.loss_one_level == pytest.approx(one_up.loss)
    # The search evaluated a fraction of the lattice (6 × 5 × 4 nodes).
    assert best.evaluated < 6 * 5 * 4 / 2

    # The suggested plan, delivered with its outliers suppressed, is what pycanon measures.
    final = masking.tighten(POPULATION_ITEMS, plan, best.changes)
    columns = masking.compile_columns(POPULATION_ITEMS, final, as_of=AS_OF)
    select = ", ".join(f"{c.sql} AS \"{c.name}\"" for c in columns)
    delivered = con.execute(
        f"SELECT * FROM (SELECT {select} FROM data) QUALIFY count(*) OVER (PARTITION BY "
        f"birth_date, address, household_size) >= 5").df()
    delivered = delivered.astype({q: "string" for q in qis})
    assert len(delivered) == best.rows - round(best.suppressed_share * best.rows)
    assert anonymity.k_anonymity(delivered, qis) == best.k >= 5

    # With l-diversity in the target, every class kept holds two diagnoses at least.
    diverse = generalize.search(con, "data", POPULATION_ITEMS, plan, qis,
                                generalize.Target(k=5, max_suppression=0.05, l=2,
                                                  sensitive=("diagnosis",)), as_of=AS_OF)
    assert diverse.met and diverse.loss >= best.loss
    final = masking.tighten(POPULATION_ITEMS, plan, diverse.changes)
    columns = masking.compile_columns(POPULATION_ITEMS, final, as_of=AS_OF)
    select = ", ".join(f"{c.sql} AS \"{c.name}\"" for c in columns)
    delivered = con.execute(
        f"SELECT * FROM (SELECT {select} FROM data) QUALIFY count(*) OVER (PARTITION BY "
        f"birth_date, address, household_size) >= 5").df().astype({q: "string" for q in qis})
    assert anonymity.l_diversity(delivered, qis, ["diagnosis"]) >= 2


def test_a_suggestion_never_loosens_and_reports_an_unreachable_target() -> None:
    con = duckdb.connect()
    population(con, 2_000)
    plan = {"birth_date": ColumnRule(rule=MaskingRule.generalize, method=Generalization.year),
            "address": ColumnRule(rule=MaskingRule.keep),
            "household_size": ColumnRule(rule=MaskingRule.keep),
            "diagnosis": ColumnRule(rule=MaskingRule.keep)}
    best = generalize.search(con, "data", POPULATION_ITEMS, plan, ["birth_date", "address"],
                             generalize.Target(k=3, max_suppression=0.05), as_of=AS_OF)
    assert best.hierarchy["birth_date"][0] == "generalize:year"
    for name, rule in best.changes.items():
        assert masking.at_least_as_strict(rule, plan[name])
    impossible = generalize.search(con, "data", POPULATION_ITEMS, plan, ["birth_date"],
                                   generalize.Target(k=5000, max_suppression=0.0),
                                   as_of=AS_OF)
    assert not impossible.met


# --- through the API --------------------------------------------------------------------------

def test_the_approver_sees_the_report_before_deciding_and_the_manifest_carries_it(
        aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path, rows=people_rows(60))
    app = file_app(aw, code, items=["id_number", "birth_date", "district", "household_size",
                                    "income"])
    path = f"/applications/{app['id']}"
    # The requester sees it only once decided; another department never.
    assert aw.get(f"{path}/risk", "SCJG", Role.requester).status_code == 403
    assert aw.get(f"{path}/risk", "RS", Role.approver).status_code == 403
    before = aw.get(f"{path}/risk", "GA", Role.approver).json()
    assert before["proposed"] and before["quasi_identifiers"] == ["birth_date", "district"]
    assert before["sensitive_items"] == ["income"] and before["rows"] == 60
    assert before["k"] == 1 and before["prosecutor_max"] == 1.0  # default: birth year
    tried = aw.post(f"{path}/risk", "GA", Role.approver,
                    json={"masking": {"birth_date": {"rule": "generalize",
                                                     "method": "age_band"}},
                          "quasi_identifiers": ["birth_date", "district"]}).json()
    assert tried["classes"] < before["classes"]
    loosen = aw.post(f"{path}/risk", "GA", Role.approver,
                     json={"masking": {"birth_date": {"rule": "keep"}}})
    assert loosen.status_code == 422  # tentative plans are tightenings too
    suggested = aw.post(f"{path}/suggestion", "GA", Role.approver,
                        json={"quasi_identifiers": ["birth_date", "district"], "k": 3,
                              "suppression": 0.1})
    assert suggested.status_code == 200, suggested.text
    s = suggested.json()
    assert s["met"] and s["report"]["k"] >= 3
    assert aw.post(f"{path}/suggestion", "SCJG", Role.requester, json={}).status_code == 403

    approve = {"masking": s["changes"], "quasi_identifiers": s["quasi_identifiers"],
               "k_min": 3, "sensitive_items": ["income"],
               "max_suppression": s["max_suppression"]}
    assert aw.post(f"{path}/approve", "GA", Role.approver, json=approve).status_code == 200
    (delivery,) = aw.get("/deliveries", "SCJG", Role.requester).json()
    manifest = aw.get(f"/deliveries/{delivery['id']}/manifest", "SCJG",
                      Role.requester).json()["manifest"]
    report = manifest["risk"]
    assert report["k"] == delivery["k_anonymity"] >= 3
    assert report["quasi_identifiers"] == s["quasi_identifiers"]
    assert [x["name"] for x in report["sensitive"]] == ["income"]
    assert report["rows"] + manifest["suppressed_rows"] == 60
    after = aw.get(f"{path}/risk", "SCJG", Role.requester).json()
    assert after["k"] == report["k"] and not after["proposed"]
    history = aw.get(f"{path}/history", "SCJG", Role.requester).json()
    delivered = [h for h in history if h["action"] == "deliver"][-1]
    assert delivered["detail"]["risk"]["k"] == report["k"]


def test_too_many_outliers_block_the_delivery(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path, rows=people_rows(40))
    app = file_app(aw, code, items=["name", "district", "household_size"])
    r = aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver,
                json={"quasi_identifiers": ["district", "household_size"], "k_min": 3,
                      "max_suppression": 0.01})
    assert r.status_code == 200
    got = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert "more than the 1.0% that may be suppressed" in got["delivery_blocked"]
    bad = aw.post(f"/applications/{app['id']}/masking", "GA", Role.approver,
                  json={"max_suppression": 0.2, "quasi_identifiers": []})
    assert bad.status_code == 422
