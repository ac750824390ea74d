"""Aggregate releases with differential privacy (delivery method ``aggregate``).

A requester who needs counts, not records (cases per district per month) applies for an
aggregate: ``group_by`` items (delivered as the masking plan generalizes them, so
``birth_date`` → year and ``address`` → district by default) and measures — ``count``,
``sum`` and ``mean`` of a number clamped to declared bounds. Each release adds Laplace noise
calibrated by OpenDP to the release's ε, and the grant's **privacy budget** (total ε) is
spent across its periodic releases; when the next release would exceed it, the delivery is
refused with a clear message (``BudgetExhausted``) and nothing is computed.

Privacy unit: one record (add/remove one row). Every row is in one group, so the vector of
group counts has L1 sensitivity 1; a sum clamped to ``[lower, upper]`` has sensitivity
``max(|lower|, |upper|)``; a mean is a noisy sum over a noisy count (post-processing). The
release's ε is split evenly over the noisy queries (sequential composition), and OpenDP's
privacy map confirms each measurement's ε before it runs.

**The group keys.** The released keys are the groups present in the data (generalized by the
plan). A key set read from the data is not itself differentially private — a group of one
shows up — so groups whose *noisy* count is below ``min_count`` are released as
withheld (``withheld`` true, no figures; pages and dashboards show them as ``<min_count``,
``small_count``), which is the usual thresholding of an (ε, δ) key release; with public key
domains (districts, months) nothing is learnt from the keys at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog.warehouse import quote
from kernel.privacy import small_count  # noqa: F401  (re-exported)
from kernel.problems import Conflict, Invalid


class BudgetExhausted(Conflict):
    slug, title = "privacy-budget-exhausted", "The grant's privacy budget is spent"


class Measure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["count", "sum", "mean"]
    item: str | None = Field(default=None, max_length=64)
    lower: float | None = None
    upper: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Measure:
        if self.op == "count":
            if self.item is not None or self.lower is not None or self.upper is not None:
                raise ValueError("count takes no item or bounds")
            return self
        if self.item is None or self.lower is None or self.upper is None:
            raise ValueError(f"{self.op} needs an item and its bounds (lower, upper): values "
                             "are clamped to them, which fixes the noise")
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)) \
                or self.lower >= self.upper:
            raise ValueError("lower must be below upper")
        return self

    @property
    def label(self) -> str:
        return "count" if self.op == "count" else f"{self.op}_{self.item}"


class AggregateSpec(BaseModel):
    """What an aggregate grant releases, and its privacy budget."""

    model_config = ConfigDict(extra="forbid")
    group_by: list[str] = Field(default_factory=list, max_length=5)
    measures: list[Measure] = Field(min_length=1, max_length=10)
    epsilon: float = Field(default=1.0, gt=0, le=10, description="ε spent by each release")
    budget: float = Field(default=10.0, gt=0, le=100,
                          description="total ε of the grant, over all its releases")
    min_count: int = Field(default=10, ge=0, le=1000,
                           description="groups with a smaller noisy count are withheld")

    @model_validator(mode="after")
    def _fits(self) -> AggregateSpec:
        if self.epsilon > self.budget:
            raise ValueError("one release's epsilon exceeds the whole budget")
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by repeats an item")
        return self

    def items(self) -> list[str]:
        return [*self.group_by, *(m.item for m in self.measures if m.item)]


def check_budget(spec: AggregateSpec, spent: float, *, grant_id: int | None = None) -> None:
    """Refuse a release that would spend more than the budget left."""
    if spent + spec.epsilon > spec.budget + 1e-9:
        left = max(spec.budget - spent, 0.0)
        raise BudgetExhausted(
            f"The privacy budget of grant {grant_id} is spent: ε {spent:g} of {spec.budget:g} "
            f"used, {left:g} left, and a release costs ε {spec.epsilon:g}. No more aggregates "
            "can be released under this grant; file a new application (the provider decides "
            "on a new budget).", spent=spent, budget=spec.budget, epsilon=spec.epsilon,
                              key="problem.access.budget_spent",
                              params={"grant_id": grant_id,
                                      "spent": spent,
                                      "budget": spec.budget,
                                      "left": left,
                                      "epsilon": spec.epsilon})


def exact_sql(spec: AggregateSpec, source: str) -> str:
    """The exact aggregates per group over ``source`` (the masked, filtered relation), with
    sums clamped to their bounds so one record moves a sum by at most its sensitivity."""
    keys = [quote(g) for g in spec.group_by]
    parts = [*keys, "count(*) AS n"]
    for i, m in enumerate(spec.measures):
        if m.op in ("sum", "mean"):
            assert m.item is not None and m.lower is not None and m.upper is not None
            value = f"coalesce(least(greatest(CAST({quote(m.item)} AS DOUBLE), {m.lower!r}), " \
                    f"{m.upper!r}), 0.0)"
            parts.append(f"sum({value}) AS s{i}")
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    order = f" ORDER BY {', '.join(keys)}" if keys else ""
    return f"SELECT {', '.join(parts)} FROM {source}{group}{order}"


def release(con: duckdb.DuckDBPyConnection, spec: AggregateSpec, source: str
            ) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
    """Columns, noisy rows and the accounting of one release over ``source``."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    rows = con.execute(exact_sql(spec, source)).fetchall()
    keys = len(spec.group_by)
    # One noisy count per group (it decides which groups are withheld, and divides means),
    # plus one noisy sum per sum or mean: the release's ε split evenly over them.
    queries = 1 + sum(1 for m in spec.measures if m.op in ("sum", "mean"))
    eps = spec.epsilon / queries
    counts = _noisy(dp, [int(r[keys]) for r in rows], 1.0, eps, integer=True)
    sums: dict[int, list[float]] = {}
    for i, m in enumerate(spec.measures):
        if m.op in ("sum", "mean"):
            assert m.lower is not None and m.upper is not None
            sensitivity = max(abs(m.lower), abs(m.upper))
            column = [float(r[keys + 1 + len(sums)]) for r in rows]
            sums[i] = _noisy(dp, column, sensitivity, eps, integer=False)
    columns = [*spec.group_by, *(m.label for m in spec.measures), "withheld"]
    out: list[list[Any]] = []
    for j, r in enumerate(rows):
        key = [_jsonable(v) for v in r[:keys]]
        if counts[j] < spec.min_count:  # shown as small_count(): no figures at all
            out.append([*key, *([None] * len(spec.measures)), True])
            continue
        values: list[Any] = []
        for i, m in enumerate(spec.measures):
            if m.op == "count":
                values.append(int(counts[j]))
            elif m.op == "sum":
                values.append(round(sums[i][j], 2))
            else:
                assert m.lower is not None and m.upper is not None
                mean = sums[i][j] / max(counts[j], 1)
                values.append(round(min(max(mean, m.lower), m.upper), 4))
        out.append([*key, *values, False])
    accounting = {"epsilon": spec.epsilon, "queries": queries, "epsilon_per_query": eps,
                  "groups": len(rows), "withheld": sum(1 for c in counts
                                                       if c < spec.min_count),
                  "min_count": spec.min_count, "mechanism": "laplace (OpenDP)",
                  "privacy_unit": "one record"}
    return columns, out, accounting


def _noisy(dp: Any, values: Sequence[float], sensitivity: float, epsilon: float, *,
           integer: bool) -> list[Any]:
    """Laplace noise over a vector with L1 sensitivity ``sensitivity`` at ``epsilon``
    (discrete Laplace for counts), checked with OpenDP's privacy map before it runs."""
    if not values:
        return []
    scale = sensitivity / epsilon
    if integer:
        space = (dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int))
        meas = dp.m.make_laplace(*space, scale=scale)
        assert meas.map(int(sensitivity)) <= epsilon + 1e-9
        return list(meas([int(v) for v in values]))
    space = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float))
    meas = dp.m.make_laplace(*space, scale=scale)
    assert meas.map(float(sensitivity)) <= epsilon + 1e-9
    return list(meas([float(v) for v in values]))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def validate(spec: AggregateSpec, items: Sequence[Any]) -> None:
    """Every named item exists; sums and means need numbers."""
    by_name = {i.name: i for i in items}
    unknown = [n for n in spec.items() if n not in by_name]
    if unknown:
        names = ", ".join(unknown)
        raise Invalid(f"The aggregate names items the resource does not have: {names}.",
                      key="problem.access.aggregate_unknown_items", params={"names": names})
    from catalog.models import ItemType

    not_numbers = [m.item for m in spec.measures if m.item and by_name[m.item].type
                   not in (ItemType.integer, ItemType.decimal)]
    if not_numbers:
        names = ", ".join(n for n in not_numbers if n)
        raise Invalid(f"Sums and means need number items: {names}.",
                      key="problem.access.aggregate_not_numbers", params={"names": names})
