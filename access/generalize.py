"""The least generalization of the quasi-identifiers that meets a privacy target.

Each quasi-identifier (QI) has a *hierarchy* of ever coarser rules that govshare can apply
(``access.masking``), starting at the rule the plan already gives it (a suggestion never
loosens a column):

* birth date: keep → month → year → 5-year age band → 10-year age band → suppress;
  other dates: keep → month → year → suppress;
* address: keep → street/town → district → city → suppress;
* numbers: keep → fixed ranges of 5, 10, 50 and 100 units of ``10^(⌊log10 span⌋ − 1)``
  (nested bins) → suppress;
* anything else (sex, occupation codes …): keep → suppress.

A *node* picks one level per QI; the lattice is their product. A node meets the target when,
after suppressing the records of classes smaller than k (as a delivery with outlier
suppression does), the suppressed share is at most the allowed one and every class kept has
at least l distinct values of each sensitive item.

**Information loss** is the generalized information loss of Iyengar (2002), which ARX calls
*Loss*: each cell loses ``(leaves − 1) / (D − 1)``, where ``leaves`` is the number of distinct
original values its generalized value covers and ``D`` the column's distinct values (0 kept
as is, 1 suppressed); a suppressed record loses 1 in every QI; the node's loss is the mean
over all cells of the QIs. Generalization height (sum of levels) and discernibility
(``Σ f_j² + n · suppressed``) are reported beside it.

**Search.** Every QI's every level is computed once: one pass writes a 64-bit hash of each
level's value into a temporary table, and one ``GROUP BY`` per level gives its per-cell loss.
A node is then one ``GROUP BY`` over a few integer columns. Because suppression costs at
least as much as the generalization it replaces, the loss of a node with no suppression is a
lower bound of its loss with any; nodes are visited in order of that bound and the search
stops when the bound reaches the best loss found (branch and bound), so it is exact without
evaluating the whole lattice.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from access import masking
from access.masking import ColumnRule, Generalization, Item, MaskingRule, Plan
from catalog.models import ItemKind, ItemType
from catalog.warehouse import quote
from kernel.problems import Invalid

_KEEP = ColumnRule(rule=MaskingRule.keep)
_SUPPRESS = ColumnRule(rule=MaskingRule.suppress)
_BIRTH_LEVELS = [Generalization.month, Generalization.year, Generalization.age_band_5,
                 Generalization.age_band]
_DATE_LEVELS = [Generalization.month, Generalization.year]
_ADDRESS_LEVELS = [Generalization.street, Generalization.district, Generalization.city]
_RANGE_STEPS = (5, 10, 50, 100)
MAX_NODES = 20_000


@dataclass(frozen=True)
class Target:
    k: int = 5
    max_suppression: float = 0.01  # share of records that may be suppressed
    l: int | None = None  # distinct l-diversity of every sensitive item  # noqa: E741
    sensitive: tuple[str, ...] = ()
    prosecutor_max: float | None = None  # ≤ 1/k: raises k to ⌈1/r⌉

    @property
    def effective_k(self) -> int:
        if self.prosecutor_max:
            return max(self.k, math.ceil(1 / self.prosecutor_max - 1e-9))
        return self.k


@dataclass
class Evaluation:
    levels: tuple[int, ...]
    ok: bool
    suppressed: int
    k: int | None
    loss: float
    discernibility: float
    height: int


@dataclass
class Suggestion:
    """The best node, as plan changes the approver can apply in one click."""

    changes: Plan
    levels: dict[str, int]
    loss: float
    loss_one_level: float  # every QI one level up, for comparison
    one_level_met: bool
    height: int
    discernibility: float
    suppressed_share: float
    k: int | None
    rows: int
    evaluated: int
    seconds: float
    target: Target
    met: bool = True
    hierarchy: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"changes": {n: r.model_dump(mode="json", exclude_none=True)
                            for n, r in self.changes.items()}, "levels": self.levels,
                "loss": self.loss, "loss_one_level": self.loss_one_level,
                "one_level_met": self.one_level_met,
                "height": self.height, "discernibility": self.discernibility,
                "suppressed_share": self.suppressed_share, "k": self.k, "rows": self.rows,
                "evaluated": self.evaluated, "seconds": round(self.seconds, 3),
                "met": self.met, "hierarchy": self.hierarchy,
                "target": {"k": self.target.effective_k,
                           "max_suppression": self.target.max_suppression,
                           "l": self.target.l, "sensitive": list(self.target.sensitive)}}


def describe(rule: ColumnRule) -> str:
    if rule.method is Generalization.range and rule.width is not None:
        return f"generalize:range({rule.width:g})"
    return f"{rule.rule.value}:{rule.method.value}" if rule.method else rule.rule.value


# --- hierarchies ------------------------------------------------------------------------------

def hierarchy(con: duckdb.DuckDBPyConnection, relation: str, item: Item,
              current: ColumnRule) -> list[ColumnRule]:
    """The rules from ``current`` upwards, each coarser than the one before."""
    if current.rule is MaskingRule.suppress:
        return [current]
    ladder = [_KEEP, *_ladder(con, relation, item)]
    at = [i for i, r in enumerate(ladder) if r == current]
    if at:
        return [*ladder[at[0]:], _SUPPRESS]
    # A rule outside the ladder (partial, pseudonymize, a 1-digit range): the coarser rungs
    # that are at least as strict, if any, then suppression.
    above = [r for r in ladder[1:] if masking.at_least_as_strict(r, current) and r != current]
    return [current, *above, _SUPPRESS]


def _ladder(con: duckdb.DuckDBPyConnection, relation: str, item: Item) -> list[ColumnRule]:
    if item.kind == ItemKind.birth_date:
        return [ColumnRule(rule=MaskingRule.generalize, method=m) for m in _BIRTH_LEVELS]
    if item.type in (ItemType.date, ItemType.datetime):
        return [ColumnRule(rule=MaskingRule.generalize, method=m) for m in _DATE_LEVELS]
    if item.kind == ItemKind.address and item.type == ItemType.string:
        return [ColumnRule(rule=MaskingRule.generalize, method=m) for m in _ADDRESS_LEVELS]
    if item.type in (ItemType.integer, ItemType.decimal):
        row = con.execute(f"SELECT max(CAST({quote(item.name)} AS DOUBLE)) - "
                          f"min(CAST({quote(item.name)} AS DOUBLE)) FROM {relation}").fetchone()
        span = float(row[0]) if row and row[0] else 0.0
        if span <= 0:
            return []
        unit = 10.0 ** (math.floor(math.log10(span)) - 1)
        widths = [float(f"{s * unit:.12g}") for s in _RANGE_STEPS]
        if item.type == ItemType.integer:  # bins of 1 or less change nothing
            widths = [w for w in widths if w > 1 and w.is_integer()]
        return [ColumnRule(rule=MaskingRule.generalize, method=Generalization.range, width=w)
                for w in widths]
    return []


# --- the search -------------------------------------------------------------------------------

def search(con: duckdb.DuckDBPyConnection, relation: str, items: Sequence[Item], plan: Plan,
           quasi_identifiers: Sequence[str], target: Target, *, as_of: date,
           fixed: Sequence[int] | None = None) -> Suggestion:
    """The node of least loss meeting ``target`` over ``relation`` (the raw rows the delivery
    would take: ``SELECT * FROM data WHERE <row filters>``). ``fixed``: evaluate only that
    node (levels per QI, clipped to each hierarchy), e.g. to compare with a suggestion."""
    started = time.perf_counter()
    by_name = {i.name: i for i in items}
    qis = [q for q in quasi_identifiers if q in plan]
    if not qis:
        raise Invalid("Name at least one quasi-identifier to search for a generalization.")
    missing = [s for s in target.sensitive if s not in by_name or s in qis]
    if missing:
        names = ", ".join(missing)
        raise Invalid(f"Sensitive items must be other items of the resource: {names}.",
                      key="problem.access.sensitive_not_other", params={"names": names})
    ladders = [hierarchy(con, relation, by_name[q], plan[q]) for q in qis]
    if math.prod(len(ladder) for ladder in ladders) > MAX_NODES:
        raise Invalid(f"Too many combinations of generalization levels (more than "
                      f"{MAX_NODES}); name fewer quasi-identifiers.",
                      key="problem.access.too_many_combinations", params={"MAX_NODES": MAX_NODES})
    space = _Space(con, relation, by_name, qis, ladders, target, as_of)
    try:
        space.materialise()
        if fixed is not None:
            best, evaluated = space.evaluate(tuple(
                min(level, len(ladder) - 1) for level, ladder in zip(fixed, ladders,
                                                                       strict=True))), 1
        else:
            best, evaluated = _branch_and_bound(space)
        one_up = space.evaluate(tuple(min(1, len(ladder) - 1) for ladder in ladders))
    finally:
        space.drop()
    changes = {q: ladders[i][best.levels[i]] for i, q in enumerate(qis)
               if ladders[i][best.levels[i]] != plan[q]}
    return Suggestion(
        changes=changes, levels=dict(zip(qis, best.levels, strict=True)), loss=best.loss,
        loss_one_level=one_up.loss, one_level_met=one_up.ok, height=best.height,
        discernibility=best.discernibility,
        suppressed_share=best.suppressed / space.rows if space.rows else 0.0, k=best.k,
        rows=space.rows, evaluated=evaluated, seconds=time.perf_counter() - started,
        target=target, met=best.ok,
        hierarchy={q: [describe(r) for r in ladders[i]] for i, q in enumerate(qis)})


def _branch_and_bound(space: _Space) -> tuple[Evaluation, int]:
    nodes = sorted(itertools.product(*(range(len(ladder)) for ladder in space.ladders)),
                   key=lambda n: (space.bound(n), sum(n)))
    best: Evaluation | None = None
    evaluated = 0
    for node in nodes:
        if best is not None and space.bound(node) >= best.loss - 1e-12:
            break
        evaluated += 1
        result = space.evaluate(node)
        if result.ok and (best is None or result.loss < best.loss):
            best = result
    if best is None:  # nothing meets it: even suppressing every QI (the top) does not
        top = tuple(len(ladder) - 1 for ladder in space.ladders)
        best = space.evaluate(top)
    return best, evaluated


class _Space:
    """The materialised levels of every QI over the relation, and node evaluation."""

    def __init__(self, con: duckdb.DuckDBPyConnection, relation: str,
                 by_name: dict[str, Item], qis: list[str], ladders: list[list[ColumnRule]],
                 target: Target, as_of: date) -> None:
        self.con, self.relation, self.by_name = con, relation, by_name
        self.qis, self.ladders, self.target, self.as_of = qis, ladders, target, as_of
        self.table = f"gs_gen_{uuid.uuid4().hex[:12]}"
        self.rows = 0
        self.cell_loss: list[list[float]] = []  # per QI, per level: mean loss of a cell
        self.lookups: dict[tuple[int, int], str] = {}  # (qi, level) → table code → loss

    def _column(self, qi: int, level: int) -> str:
        return f"q{qi}_{level}"

    def materialise(self) -> None:
        # Each level is computed over the QI's distinct values only (an address regex per
        # distinct address, not per row), then joined back to the rows as 64-bit hashes.
        selects, joins = [], []
        for qi, ladder in enumerate(self.ladders):
            item = self.by_name[self.qis[qi]]
            raw = quote(item.name)
            levels = ", ".join(f"hash({self._sql(item, rule)}) AS {self._column(qi, level)}"
                               for level, rule in enumerate(ladder))
            dictionary = f"{self.table}_d{qi}"
            self.con.execute(f"CREATE TEMP TABLE {dictionary} AS SELECT v AS {raw}, "
                             f"hash(v) AS q{qi}_raw, * EXCLUDE (v) FROM (SELECT {raw} AS v, "
                             f"{levels} FROM (SELECT DISTINCT {raw} FROM {self.relation}))")
            self.lookups[(qi, -1)] = dictionary
            selects.append(f"d{qi}.* EXCLUDE ({raw})")
            joins.append(f"JOIN {dictionary} d{qi} ON r.{raw} IS NOT DISTINCT FROM d{qi}.{raw}")
        for j, s in enumerate(self.target.sensitive):
            selects.append(f"hash(r.{quote(s)}) AS s{j}")
        self.con.execute(f"CREATE TEMP TABLE {self.table} AS SELECT {', '.join(selects)} "
                         f"FROM {self.relation} r {' '.join(joins)}")
        row = self.con.execute(f"SELECT count(*) FROM {self.table}").fetchone()
        self.rows = int(row[0]) if row else 0
        for qi, ladder in enumerate(self.ladders):
            self.cell_loss.append([self._level_loss(qi, level) for level in range(len(ladder))])

    def _sql(self, item: Item, rule: ColumnRule) -> str:
        if rule.rule is MaskingRule.suppress:
            return "NULL"
        if rule.rule is MaskingRule.keep:
            return quote(item.name)
        if rule.rule is MaskingRule.pseudonymize:
            return quote(item.name)  # one token per value: the same classes as the raw value
        return masking.compile_columns([item], {item.name: rule}, as_of=self.as_of)[0].sql

    def _level_loss(self, qi: int, level: int) -> float:
        """Iyengar's loss per cell at this level: (leaves − 1) / (D − 1) for each generalized
        value, kept as a lookup table for nodes that suppress records."""
        column = self._column(qi, level)
        lookup = f"{self.table}_l{qi}_{level}"
        counts = f"(SELECT q{qi}_raw, {column}, count(*) AS n FROM {self.table} GROUP BY ALL)"
        self.con.execute(
            f"CREATE TEMP TABLE {lookup} AS WITH c AS {counts}, "
            f"d AS (SELECT greatest(count(*) - 1, 1) AS d FROM c) "
            f"SELECT {column} AS code, (count(*) - 1) / (SELECT d FROM d) AS loss, "
            f"sum(n) AS n FROM c GROUP BY {column}")
        if self.ladders[qi][level].rule is MaskingRule.suppress:
            self.con.execute(f"UPDATE {lookup} SET loss = 1.0")
        self.lookups[(qi, level)] = lookup
        row = self.con.execute(f"SELECT sum(loss * n) / greatest(sum(n), 1) FROM {lookup}"
                               ).fetchone()
        return float(row[0]) if row and row[0] is not None else 0.0

    def bound(self, node: tuple[int, ...]) -> float:
        return sum(self.cell_loss[qi][level] for qi, level in enumerate(node)) / len(node)

    def evaluate(self, node: tuple[int, ...]) -> Evaluation:
        k, l_min = self.target.effective_k, self.target.l
        cols = [self._column(qi, level) for qi, level in enumerate(node)]
        group = ", ".join(cols)
        sens = [f"s{j}" for j in range(len(self.target.sensitive))] if l_min else []
        if sens:
            # Distinct values per class in two steps (class × value, then class): cheaper
            # in DuckDB than count(DISTINCT) per group.
            inner = ", ".join(
                [*cols, "count(*) AS n", *[f"grouping({c}) AS g{j}" for j, c in enumerate(sens)]])
            sets = ", ".join(f"({group}, {c})" for c in sens)
            per_value = f"SELECT {inner} FROM {self.table} GROUP BY GROUPING SETS ({sets})"
            d = ", ".join(f"count(*) FILTER (WHERE g{j} = 0) AS d{j}"
                          for j in range(len(sens)))
            ec = (f"SELECT {group}, sum(n) FILTER (WHERE g0 = 0) AS f, {d} "
                  f"FROM ({per_value}) GROUP BY ALL")
        else:
            ec = f"SELECT {group}, count(*) AS f FROM {self.table} GROUP BY ALL"
        # Classes smaller than k are suppressed (as a delivery does); those kept must each be
        # l-diverse, or the node fails.
        diverse = " AND ".join(f"d{j} >= {l_min}" for j in range(len(sens))) or "true"
        joins = " ".join(f"JOIN {self.lookups[(qi, level)]} l{qi} ON l{qi}.code = ec.{c}"
                         for qi, (level, c) in enumerate(zip(node, cols, strict=True)))
        cell = " + ".join(f"l{qi}.loss" for qi in range(len(node)))
        bad = f"f < {k}"
        row = self.con.execute(
            f"WITH ec AS ({ec}), "
            f"m AS (SELECT ec.f, ({bad}) AS bad, ({diverse}) AS diverse, {cell} AS cell "
            f"FROM ec {joins}) "
            f"SELECT coalesce(sum(f) FILTER (WHERE bad), 0), min(f) FILTER (WHERE NOT bad), "
            f"coalesce(sum(f * cell) FILTER (WHERE NOT bad), 0), "
            f"coalesce(sum(f * f) FILTER (WHERE NOT bad), 0), "
            f"coalesce(bool_and(diverse) FILTER (WHERE NOT bad), true) FROM m").fetchone()
        assert row is not None
        suppressed, k_found, kept_loss, squares = int(row[0]), row[1], float(row[2]), \
            float(row[3])
        n, q = max(self.rows, 1), len(node)
        loss = (kept_loss + suppressed * q) / (n * q)
        ok = self.rows > 0 and suppressed <= self.target.max_suppression * self.rows \
            and suppressed < self.rows and bool(row[4])
        return Evaluation(node, ok, suppressed, int(k_found) if k_found is not None else None,
                          loss, squares + float(suppressed) * self.rows, sum(node))

    def drop(self) -> None:
        for lookup in self.lookups.values():
            self.con.execute(f"DROP TABLE IF EXISTS {lookup}")
        self.con.execute(f"DROP TABLE IF EXISTS {self.table}")
