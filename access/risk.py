"""Re-identification risk of a delivery, measured in DuckDB SQL over the table as delivered.

A *report* is computed over the masked relation (``SELECT <masked columns> FROM data WHERE
<row filters>``, exactly what the requester would receive) for a set of quasi-identifiers
(QIs: values an attacker can learn elsewhere — birth date, sex, address …) and sensitive
items (what the attacker wants to learn). Rows with equal QI values form an *equivalence
class*; NULL is a value like any other (an attacker sees the blank too).

Definitions (as ARX and El Emam & Arbuckle, *Anonymizing Health Data*, define them; ``f_j``
is the size of class ``j`` in the delivered sample of ``n`` rows, ``F_j`` its size in the
population, ``J`` the number of classes):

* **k** = min ``f_j``; *records below target* = share of rows in classes with ``f_j < k_target``.
* **Prosecutor risk** (the attacker knows the person is in the delivery): record risk
  ``1/f_j``; *highest* = ``1/min f_j`` = 1/k; *average* = ``J / n`` (the mean record risk).
* **Journalist risk** (the attacker does not know whether the person is in it and matches
  against a population register): record risk ``1/F_j``; *highest* = max ``1/F_j`` over the
  classes present in the delivery; *average* = ``(1/n) Σ f_j / F_j``. govshare has no census
  table, so the *population* is the resource's whole table with the same masking: a delivery
  narrowed by row filters is a sample of it. Without row filters sample and population are
  one and journalist risk equals prosecutor risk (ARX's "sample = population" setting, the
  conservative upper bound).
* **Marketer risk** (the attacker wants to re-identify as many people as possible, not a
  particular one): the expected share re-identified, ``(1/n) Σ f_j / F_j``; with sample =
  population that is ``J / n``.
* **Distinct l-diversity** of a sensitive item: min over classes of the number of distinct
  values; **entropy l-diversity**: ``exp(min_j H_j)`` with ``H_j = -Σ_s p_js ln p_js`` (pycanon
  reports ``floor`` of it).
* **t-closeness**: max over classes of the earth mover's distance between the class's
  distribution of the sensitive item and the whole delivery's: for numbers the *ordered*
  distance ``1/(m-1) Σ_i |Σ_{v≤i} (q_v - p_v)|`` over the ``m`` distinct values in order, for
  text the *equal* distance ``½ Σ_v |q_v - p_v|`` (Li, Li & Venkatasubramanian 2007; the
  same as pycanon).

All of it is aggregate SQL: one ``GROUP BY`` of the QIs (classes), one per sensitive item
(class × value counts), and small queries over those; no row passes through Python.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from catalog.models import ItemKind, ItemType
from catalog.warehouse import quote

# Class-size buckets for the histogram shown to the approver (lower bounds).
SIZE_BUCKETS = (1, 2, 3, 5, 10, 20, 100)

# Items whose *name* says they are quasi-identifiers though their kind cannot (the catalog
# has no kind for sex, occupation …). Matched on whole words of the item name or its Chinese.
_QI_NAMES = re.compile(
    r"(?:^|_)(sex|gender|age|birth|birthday|occupation|job|profession|district|county|"
    r"street|township|address|zip|zipcode|postcode|postal_code|ethnicity|nation|marital|"
    r"education|race|nationality)(?:_|$)|性别|年龄|出生|职业|区县|街道|乡镇|住址|地址|邮编|"
    r"民族|婚姻|学历|籍贯|国籍")
_QI_KINDS = frozenset({ItemKind.birth_date, ItemKind.address})
_IDENTIFIER_KINDS = frozenset({ItemKind.resident_id, ItemKind.mobile, ItemKind.person_name,
                               ItemKind.bank_card, ItemKind.email, ItemKind.uscc})


@dataclass(frozen=True)
class Sensitive:
    """A sensitive item of the delivered relation; ``numeric`` picks the ordered distance."""

    name: str
    numeric: bool = False


@dataclass
class SensitiveReport:
    name: str
    distinct_l: int | None
    entropy_l: float | None
    t_closeness: float | None
    distance: str  # "ordered" | "equal"


@dataclass
class Report:
    rows: int
    quasi_identifiers: list[str]
    classes: int
    k: int | None
    k_target: int | None
    records_below_target: float  # share of rows in classes smaller than k_target
    classes_below_target: int
    prosecutor_max: float
    prosecutor_avg: float
    journalist_max: float
    journalist_avg: float
    marketer: float
    population: str  # "sample" (no row filters) | "table" (the whole table, same masking)
    population_rows: int
    size_histogram: list[dict[str, int]] = field(default_factory=list)
    sensitive: list[SensitiveReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The few figures that go into the access log."""
        summary = summary_of(self.as_dict())
        assert summary is not None
        return summary


def summary_of(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The few figures of a report (``Report.as_dict``) that go into the access log."""
    if not report:
        return None
    return {"k": report["k"], "k_target": report["k_target"],
            "quasi_identifiers": report["quasi_identifiers"],
            "records_below_target": round(report["records_below_target"], 6),
            "prosecutor_max": round(report["prosecutor_max"], 6),
            "journalist_max": round(report["journalist_max"], 6),
            "marketer": round(report["marketer"], 6),
            "l": {s["name"]: s["distinct_l"] for s in report["sensitive"]},
            "t": {s["name"]: None if s["t_closeness"] is None else round(s["t_closeness"], 6)
                  for s in report["sensitive"]}}


# --- which items ------------------------------------------------------------------------------

class _ItemLike:  # documentation only: what proposing needs of a catalog DataItem
    name: str
    type: ItemType
    kind: ItemKind | None


def is_identifier(item: Any) -> bool:
    return item.kind in _IDENTIFIER_KINDS or bool(getattr(item, "is_key", False))


def propose_quasi_identifiers(items: Sequence[Any], delivered: Sequence[str]) -> list[str]:
    """QIs proposed from the items' kinds (birth date, address) and names (sex, occupation,
    district …), among the delivered columns; the approver edits the list."""
    chosen = []
    for item in items:
        if item.name not in delivered or is_identifier(item):
            continue
        if item.kind in _QI_KINDS or _QI_NAMES.search(item.name.lower()):
            chosen.append(item.name)
    return chosen


def propose_sensitive(items: Sequence[Any], delivered: Sequence[str],
                      quasi_identifiers: Sequence[str]) -> list[str]:
    """Sensitive items: delivered, neither QI nor identifier, and personal or sensitive."""
    from access.masking import effective_sensitivity  # masking imports this module's users
    from catalog.models import Sensitivity

    return [i.name for i in items
            if i.name in delivered and i.name not in quasi_identifiers and not is_identifier(i)
            and effective_sensitivity(i) != Sensitivity.none]


# --- measuring --------------------------------------------------------------------------------

def measure(con: duckdb.DuckDBPyConnection, relation: str, quasi_identifiers: Sequence[str],
            sensitive: Sequence[Sensitive] = (), *, k_target: int | None = None,
            population: str | None = None) -> Report:
    """The report for ``relation`` (a SQL relation: a table, view or ``(SELECT …)``).

    ``population``: a relation holding every row the delivery was drawn from, with the QIs
    masked the same way (for journalist and marketer risk); None means sample = population.
    """
    qis = list(quasi_identifiers)
    suffix = _unique_suffix()
    ec, qv = f"gs_risk_ec_{suffix}", f"gs_risk_qv_{suffix}"
    cols = ", ".join(quote(c) for c in qis)
    if qis and sensitive:
        # One scan of the rows: class × value counts of the first sensitive item, and the
        # classes summed from those (a few rows per class) rather than scanned again.
        con.execute(f"CREATE TEMP TABLE {qv} AS {_value_counts(relation, qis, sensitive[0])}")
        con.execute(f"CREATE TEMP TABLE {ec} AS SELECT {cols}, sum(c_v) AS f FROM {qv} "
                    f"GROUP BY ALL")
    elif qis:
        con.execute(f"CREATE TEMP TABLE {ec} AS SELECT {cols}, count(*) AS f FROM {relation} "
                    f"GROUP BY ALL")
    else:  # no QIs: the whole delivery is one class
        con.execute(f"CREATE TEMP TABLE {ec} AS SELECT count(*) AS f FROM {relation} "
                    f"HAVING count(*) > 0")
    try:
        return _report(con, relation, ec, qis, sensitive, k_target, population, suffix,
                       qv if qis and sensitive else None)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {ec}")
        con.execute(f"DROP TABLE IF EXISTS {qv}")


def _value_counts(relation: str, qis: list[str], s: Sensitive) -> str:
    cols = ", ".join([*(quote(c) for c in qis), f"{quote(s.name)} AS v"])
    return f"SELECT {cols}, count(*) AS c_v FROM {relation} GROUP BY ALL"


def _report(con: duckdb.DuckDBPyConnection, relation: str, ec: str, qis: list[str],
            sensitive: Sequence[Sensitive], k_target: int | None, population: str | None,
            suffix: str, first_counts: str | None) -> Report:
    target = k_target or 1
    row = con.execute(f"SELECT coalesce(sum(f), 0), count(*), min(f), "
                      f"coalesce(sum(f) FILTER (WHERE f < {target}), 0), "
                      f"count(*) FILTER (WHERE f < {target}) FROM {ec}").fetchone()
    assert row is not None
    n, classes, k, below_rows, below_classes = int(row[0]), int(row[1]), row[2], \
        int(row[3]), int(row[4])
    histogram = _histogram(con, ec)
    prosecutor_max = 1.0 / k if k else 0.0
    prosecutor_avg = classes / n if n else 0.0
    journalist_max, journalist_avg, pop_rows = prosecutor_max, prosecutor_avg, n
    if population is not None and n:
        journalist_max, journalist_avg, pop_rows = _journalist(con, ec, qis, population, suffix)
    report = Report(
        rows=n, quasi_identifiers=qis, classes=classes, k=int(k) if k is not None else None,
        k_target=k_target, records_below_target=below_rows / n if n else 0.0,
        classes_below_target=below_classes, prosecutor_max=prosecutor_max,
        prosecutor_avg=prosecutor_avg, journalist_max=journalist_max,
        journalist_avg=journalist_avg, marketer=journalist_avg,
        population="table" if population is not None else "sample", population_rows=pop_rows,
        size_histogram=histogram)
    for i, s in enumerate(sensitive):
        counts = first_counts if i == 0 and first_counts else \
            f"({_value_counts(relation, qis, s)})"
        report.sensitive.append(_sensitive(con, counts, qis, s, n, suffix))
    return report


def _histogram(con: duckdb.DuckDBPyConnection, ec: str) -> list[dict[str, int]]:
    bounds = ", ".join(map(str, SIZE_BUCKETS))
    rows = con.execute(
        f"SELECT b, count(*), sum(f) FROM (SELECT f, (SELECT max(x) FROM unnest([{bounds}]) "
        f"t(x) WHERE x <= f) AS b FROM {ec}) GROUP BY b ORDER BY b").fetchall()
    return [{"from": int(b), "classes": int(c), "records": int(r)} for b, c, r in rows]


def _journalist(con: duckdb.DuckDBPyConnection, ec: str, qis: list[str], population: str,
                suffix: str) -> tuple[float, float, int]:
    pop = f"gs_risk_pop_{suffix}"
    if not qis:
        row = con.execute(f"SELECT count(*) FROM {population}").fetchone()
        total = int(row[0]) if row else 0
        risk = 1.0 / total if total else 0.0  # one class: F = the population's size
        return risk, risk, total
    cols = ", ".join(quote(c) for c in qis)
    # Only the population classes the sample has matter: a semi-join keeps the table small.
    on = " AND ".join(f"p.{quote(c)} IS NOT DISTINCT FROM e.{quote(c)}" for c in qis)
    con.execute(f"CREATE TEMP TABLE {pop} AS SELECT {cols}, count(*) AS F FROM {population} "
                f"GROUP BY ALL")
    try:
        row = con.execute(f"SELECT max(1.0 / p.F), sum(e.f / p.F) / sum(e.f), "
                          f"(SELECT sum(F) FROM {pop}) FROM {ec} e JOIN {pop} p ON {on}"
                          ).fetchone()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {pop}")
    assert row is not None
    return float(row[0] or 0.0), float(row[1] or 0.0), int(row[2] or 0)


def _sensitive(con: duckdb.DuckDBPyConnection, counts: str, qis: list[str], s: Sensitive,
               n: int, suffix: str) -> SensitiveReport:
    """l and t of ``s`` from ``counts`` (class × value counts: the QIs, ``v``, ``c_v``)."""
    distance = "ordered" if s.numeric else "equal"
    if n == 0:
        return SensitiveReport(s.name, None, None, None, distance)
    cv = f"gs_risk_cv_{suffix}"
    qcols = [quote(c) for c in qis]
    # A 64-bit hash of the QI values names the class, so the queries below join and group
    # on one integer (a collision of two classes is a ~J²/2⁶⁵ chance: 3·10⁻⁶ at 10M).
    cid = f"hash({', '.join(qcols)})" if qcols else "0"
    con.execute(f"CREATE TEMP TABLE {cv} AS WITH g AS (SELECT {cid} AS c, v, c_v "
                f"FROM {counts}) "
                f"SELECT g.c, g.v, g.c_v, s.f FROM g JOIN (SELECT c, sum(c_v) AS f FROM g "
                f"GROUP BY c) s ON g.c = s.c")
    try:
        row = con.execute(
            f"SELECT min(d), min(h) FROM (SELECT c, count(*) AS d, "
            f"-sum((c_v / f) * ln(c_v / f)) AS h FROM {cv} GROUP BY c)").fetchone()
        assert row is not None
        distinct_l, entropy = int(row[0]), float(row[1])
        t = _ordered_emd(con, cv, n) if s.numeric else _equal_distance(con, cv, n)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {cv}")
    return SensitiveReport(s.name, distinct_l, math.exp(max(entropy, 0.0)), t, distance)


def _equal_distance(con: duckdb.DuckDBPyConnection, cv: str, n: int) -> float:
    """½ Σ_v |q_v − p_v| per class; values absent from a class contribute their p_v, so the
    sum over present values is completed with 1 − Σ_present p_v."""
    row = con.execute(
        f"WITH p AS (SELECT v, sum(c_v) / {n} AS p FROM {cv} GROUP BY v) "
        f"SELECT max(0.5 * (d + greatest(0.0, 1.0 - ps))) FROM ("
        f"SELECT c, sum(abs(c_v / f - p.p)) AS d, sum(p.p) AS ps "
        f"FROM {cv} JOIN p ON {cv}.v IS NOT DISTINCT FROM p.v GROUP BY c)").fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def _ordered_emd(con: duckdb.DuckDBPyConnection, cv: str, n: int) -> float:
    """``1/(m−1) Σ_i |Q_c(i) − P(i)|`` over the ranks i of the m distinct values, where Q_c
    and P are the cumulative shares of class c and of the whole delivery.

    A class holds few of the m values; between two of its values Q_c is constant while P
    rises, so each such segment [lo, hi] of ranks adds ``Σ_i |Q − P(i)|``, which splits at the
    last rank x with P(x) ≤ Q (an ASOF join finds it) into ``Q·a − ΣP`` below and ``ΣP − Q·b``
    above, with prefix sums of P. That is O(class values), not O(classes × m)."""
    m_row = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT v FROM {cv})").fetchone()
    m = int(m_row[0]) if m_row else 0
    if m <= 1:
        return 0.0
    sql = f"""
    WITH g AS (SELECT v, sum(c_v) AS c FROM {cv} GROUP BY v),
    r AS (SELECT v, row_number() OVER (ORDER BY v NULLS LAST) AS i,
                 sum(c) OVER (ORDER BY v NULLS LAST) / {n} AS P FROM g),
    cum AS (SELECT i, P, sum(P) OVER (ORDER BY i) AS SP FROM r),
    cr AS (SELECT {cv}.c, r.i, sum(c_v / f) OVER (PARTITION BY {cv}.c ORDER BY r.i) AS Q,
                  lead(r.i, 1, {m} + 1) OVER (PARTITION BY {cv}.c ORDER BY r.i) - 1 AS hi,
                  row_number() OVER (PARTITION BY {cv}.c ORDER BY r.i) AS nth
           FROM {cv} JOIN r ON {cv}.v IS NOT DISTINCT FROM r.v),
    -- segments: from each present value's rank to the rank before the next present value
    seg AS (SELECT c, i AS lo, hi, Q FROM cr),
    x AS (SELECT seg.*, coalesce(cum.i, 0) AS x FROM seg ASOF LEFT JOIN cum ON cum.P <= seg.Q),
    b AS (SELECT x.c, x.lo, x.hi, x.Q, least(greatest(x.x, x.lo - 1), x.hi) AS s FROM x),
    terms AS (
      SELECT b.c,
        b.Q * (b.s - b.lo + 1) - (coalesce(cs.SP, 0) - coalesce(cl.SP, 0))
        + (coalesce(ch.SP, 0) - coalesce(cs.SP, 0)) - b.Q * (b.hi - b.s) AS t
      FROM b LEFT JOIN cum cl ON cl.i = b.lo - 1 LEFT JOIN cum cs ON cs.i = b.s
             LEFT JOIN cum ch ON ch.i = b.hi
      UNION ALL
      -- ranks before a class's first value: Q = 0, so |0 − P(i)| = P(i)
      SELECT cr.c, coalesce(cum.SP, 0) FROM cr LEFT JOIN cum ON cum.i = cr.i - 1
      WHERE cr.nth = 1)
    SELECT max(t) / ({m} - 1) FROM (SELECT c, sum(t) AS t FROM terms GROUP BY c)"""
    result = con.execute(sql).fetchone()
    return max(0.0, float(result[0])) if result and result[0] is not None else 0.0


def _unique_suffix() -> str:
    # Temporary tables are per connection, but a caller may measure twice on one.
    return uuid.uuid4().hex[:12]
